"""Case verbs needed by the core: open a case with its own key, fetch it."""

import uuid
from datetime import datetime

from sqlmodel import Session

from keys.store import KeyStore
from vault.cases.models import Case, CaseStatus
from vault.errors import Gone, NotFound
from vault.keyring import translated_key_errors
from vault.patients.service import get_patient


def open_case(*, session: Session, keys: KeyStore, patient_id: uuid.UUID, now: datetime) -> Case:
    """Open a treatment request for a patient, with a fresh case key."""
    get_patient(session=session, patient_id=patient_id)
    with translated_key_errors():
        key_id = keys.create_key(session, kind="case", now=now)
    case = Case(patient_id=patient_id, key_id=key_id, created_at=now)
    session.add(case)
    session.flush()
    return case


def get_case(*, session: Session, case_id: uuid.UUID) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("no such case")
    return case


def get_live_case(*, session: Session, case_id: uuid.UUID) -> Case:
    """A case whose data still exists; a shredded case answers Gone."""
    case = get_case(session=session, case_id=case_id)
    if case.status is CaseStatus.SHREDDED:
        raise Gone("this case was deleted for good at the end of its retention period")
    return case
