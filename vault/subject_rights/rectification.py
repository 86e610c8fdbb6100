"""The patient's own profile (their identity fields) and its rectification (Art. 16).

Corrected fields are sealed again under the patient key, overwriting the old ciphertext: the
old value is not kept. When the e-mail address changes and it is the account's login, the
login changes with it, in the same transaction; an address that is another account's login
is refused before anything is stored. Audit events carry which patient and account, never a
value or which fields.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from keys.store import KeyStore
from vault.accounts.models import User
from vault.accounts.passwords import login_digest
from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.errors import EmailTaken
from vault.patients.service import (
    PatientField,
    PatientIdentity,
    get_patient,
    reseal_patient_fields,
    unsafe_patient_identity,
)
from vault.subject_rights.models import RequestStatus, Right, RightsRequest
from vault.subject_rights.requests import close_request, open_request


@dataclass(frozen=True)
class Rectification:
    request: RightsRequest
    fields: list[PatientField]  # the fields given, in a fixed order (values are never returned)
    login_changed: bool


def unsafe_read_profile(
    session: Session, *, keys: KeyStore, patient_id: uuid.UUID, now: datetime, audit: AuditContext
) -> PatientIdentity:
    """The patient's identity in the clear, for the patient themselves (KeyDestroyed once
    erased). Commits its audit event."""
    patient = get_patient(session=session, patient_id=patient_id)
    identity = unsafe_patient_identity(session=session, keys=keys, patient=patient)
    append_event(
        session, context=audit, action=AuditAction.PATIENT_READ, now=now, patient_id=patient_id
    )
    session.commit()
    return identity


def rectify_profile(
    session: Session,
    *,
    keys: KeyStore,
    lookup_key: bytes,
    patient_id: uuid.UUID,
    values: Mapping[PatientField, str | None],
    now: datetime,
    audit: AuditContext,
) -> Rectification:
    """Correct identity fields of the patient (None clears an optional one). Commits.

    Raises KeyDestroyed for an erased patient, EmailTaken when a new address that is to be the
    login already is another account's login, InvalidLogin for an impossible login; nothing is
    stored then.
    """
    if not values:
        raise ValueError("a rectification changes at least one field")
    patient = get_patient(session=session, patient_id=patient_id)
    current = unsafe_patient_identity(session=session, keys=keys, patient=patient)
    new_email = values.get(PatientField.EMAIL)
    relogged: list[User] = []
    new_digest = ""
    if new_email is not None:
        relogged, new_digest = _accounts_to_relog(
            session,
            lookup_key=lookup_key,
            patient_id=patient_id,
            old_email=current.email,
            new_email=new_email,
        )
    request = open_request(
        session, patient_id=patient_id, right=Right.RECTIFICATION, now=now, audit=audit
    )
    reseal_patient_fields(session=session, keys=keys, patient=patient, values=values)
    for user in relogged:
        user.login_digest = new_digest
        session.add(user)
    append_event(
        session,
        context=audit,
        action=AuditAction.PATIENT_RECTIFY,
        now=now,
        patient_id=patient_id,
        purpose=Right.RECTIFICATION.value,
    )
    close_request(session, request, status=RequestStatus.COMPLETED, now=now, audit=audit)
    try:
        session.commit()
    except IntegrityError:
        # Only the login is unique here: another account took the address since the check.
        session.rollback()
        raise EmailTaken("this e-mail address is already the login of another account") from None
    fields = [field for field in PatientField if field in values]
    return Rectification(request=request, fields=fields, login_changed=bool(relogged))


def _accounts_to_relog(
    session: Session, *, lookup_key: bytes, patient_id: uuid.UUID, old_email: str, new_email: str
) -> tuple[list[User], str]:
    """The patient's accounts whose login is the old address, and the new address's digest.

    EmailTaken if that digest is another account's login already (checked before any write).
    """
    old_digest = login_digest(lookup_key, old_email)
    new_digest = login_digest(lookup_key, new_email)
    if new_digest == old_digest:
        return [], new_digest
    accounts = list(
        session.exec(
            select(User).where(User.patient_id == patient_id, User.login_digest == old_digest)
        ).all()
    )
    taken = session.exec(select(User.id).where(User.login_digest == new_digest)).first()
    if accounts and taken is not None:
        raise EmailTaken("this e-mail address is already the login of another account")
    return accounts, new_digest
