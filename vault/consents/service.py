"""Consent and restriction verbs. Each change appends its audit event and commits with it.

A consent belongs to one patient and one of their cases. A live restriction (Art. 18) of the
patient, or of the case, refuses every new transfer; transfers check both through
``assert_not_restricted`` and ``live_consent``.

``mark_consent_withdrawn`` and ``add_restriction`` only flush: the data-subject rights verbs
(``vault.subject_rights``) put them in one transaction with their request and its effects.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, or_, select

from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.cases.service import case_in_scope, get_case, get_live_case
from vault.consents.models import Consent, Restriction, RestrictionReason
from vault.consents.texts import CONSENT_TEXTS
from vault.errors import (
    ConsentWithdrawn,
    LegalBasisMissing,
    NotFound,
    ProcessingRestricted,
    UnknownConsentText,
)
from vault.patients.service import get_patient


def give_consent(
    session: Session,
    *,
    patient_id: uuid.UUID,
    case_id: uuid.UUID,
    text_version: str,
    now: datetime,
    audit: AuditContext,
) -> Consent:
    """Record the patient's consent to ``text_version`` for their case (NotFound otherwise)."""
    text = CONSENT_TEXTS.get(text_version)
    if text is None:
        raise UnknownConsentText(f"no consent text has the version {text_version!r}")
    _own_case(session, patient_id=patient_id, case_id=case_id)
    consent = Consent(
        patient_id=patient_id,
        case_id=case_id,
        text_version=text.version,
        text_sha256=text.sha256,
        given_at=now,
    )
    session.add(consent)
    append_event(
        session,
        context=audit,
        action=AuditAction.CONSENT_GIVE,
        now=now,
        patient_id=patient_id,
        case_id=case_id,
    )
    session.commit()
    return consent


def withdraw_consent(
    session: Session,
    *,
    patient_id: uuid.UUID,
    case_id: uuid.UUID,
    consent_id: uuid.UUID,
    now: datetime,
    audit: AuditContext,
) -> Consent:
    """Withdraw a consent with effect for the future. Withdrawing twice changes nothing."""
    consent, _ = mark_consent_withdrawn(
        session,
        patient_id=patient_id,
        case_id=case_id,
        consent_id=consent_id,
        now=now,
        audit=audit,
    )
    session.commit()
    return consent


def own_consent(
    session: Session, *, patient_id: uuid.UUID, case_id: uuid.UUID, consent_id: uuid.UUID
) -> Consent:
    """A consent of this patient for this case; any other is NotFound (no oracle)."""
    consent = session.get(Consent, consent_id)
    if consent is None or consent.patient_id != patient_id or consent.case_id != case_id:
        raise NotFound("no such consent")
    return consent


def mark_consent_withdrawn(
    session: Session,
    *,
    patient_id: uuid.UUID,
    case_id: uuid.UUID,
    consent_id: uuid.UUID,
    now: datetime,
    audit: AuditContext,
) -> tuple[Consent, bool]:
    """Withdraw a consent and append its event (flushes; the caller commits); whether it
    changed (False when it was withdrawn already: the first withdrawal stands)."""
    consent = own_consent(session, patient_id=patient_id, case_id=case_id, consent_id=consent_id)
    if consent.withdrawn_at is not None:
        return consent, False
    consent.withdrawn_at = now
    session.add(consent)
    append_event(
        session,
        context=audit,
        action=AuditAction.CONSENT_WITHDRAW,
        now=now,
        patient_id=patient_id,
        case_id=case_id,
    )
    session.flush()
    return consent, True


def list_consents(
    session: Session,
    *,
    case_id: uuid.UUID,
    patient_id: uuid.UUID | None,
    now: datetime,
    audit: AuditContext,
) -> Sequence[Consent]:
    """Every consent given for a case, oldest first (withdrawn ones included).

    With ``patient_id`` (a patient asking), another patient's case is NotFound.
    """
    case = case_in_scope(
        session=session,
        case_id=case_id,
        patient_id=patient_id,
        action=AuditAction.CONSENT_LIST,
        now=now,
        audit=audit,
    )
    statement = select(Consent).where(Consent.case_id == case_id).order_by(col(Consent.given_at))
    consents = session.exec(statement).all()
    append_event(
        session,
        context=audit,
        action=AuditAction.CONSENT_LIST,
        now=now,
        patient_id=case.patient_id,
        case_id=case_id,
    )
    session.commit()
    return consents


def live_consent(
    session: Session, *, patient_id: uuid.UUID, case_id: uuid.UUID, consent_id: uuid.UUID | None
) -> Consent:
    """The consent a transfer relies on: of this patient, for this case, not withdrawn.

    Raises LegalBasisMissing when there is no such consent, ConsentWithdrawn when it was withdrawn.
    """
    if consent_id is None:
        raise LegalBasisMissing("a transfer based on consent must name the patient's consent")
    consent = session.get(Consent, consent_id)
    if consent is None or consent.patient_id != patient_id or consent.case_id != case_id:
        raise LegalBasisMissing("the consent named is not a consent of this patient for this case")
    if consent.withdrawn_at is not None:
        raise ConsentWithdrawn("the patient has withdrawn the consent this transfer relies on")
    return consent


def place_restriction(
    session: Session,
    *,
    patient_id: uuid.UUID,
    case_id: uuid.UUID | None,
    now: datetime,
    audit: AuditContext,
) -> Restriction:
    """Restrict processing of a patient's data (of one case when ``case_id`` is given)."""
    restriction = add_restriction(
        session,
        patient_id=patient_id,
        case_id=case_id,
        reason=RestrictionReason.PRIVACY_OFFICER,
        now=now,
        audit=audit,
    )
    session.commit()
    return restriction


def add_restriction(
    session: Session,
    *,
    patient_id: uuid.UUID,
    case_id: uuid.UUID | None,
    reason: RestrictionReason,
    now: datetime,
    audit: AuditContext,
    purpose: str | None = None,
) -> Restriction:
    """Add a restriction and its event (flushes; the caller commits); a data-subject request
    names its right as the event's ``purpose``. The patient must exist, and a ``case_id`` be a
    live case of theirs (NotFound)."""
    get_patient(session=session, patient_id=patient_id)
    if case_id is not None:
        _own_case(session, patient_id=patient_id, case_id=case_id)
    restriction = Restriction(patient_id=patient_id, case_id=case_id, placed_at=now, reason=reason)
    session.add(restriction)
    append_event(
        session,
        context=audit,
        action=AuditAction.RESTRICTION_PLACE,
        now=now,
        patient_id=patient_id,
        case_id=case_id,
        purpose=purpose,
    )
    session.flush()
    return restriction


def list_restrictions(
    session: Session,
    *,
    patient_id: uuid.UUID | None,
    live_only: bool,
    now: datetime,
    audit: AuditContext,
) -> Sequence[Restriction]:
    """Restrictions newest first: one patient's (``patient_id``) or everyone's (the privacy
    officer); ``live_only`` leaves out lifted ones. Commits its audit event."""
    statement = select(Restriction).order_by(col(Restriction.placed_at).desc(), col(Restriction.id))
    if patient_id is not None:
        statement = statement.where(Restriction.patient_id == patient_id)
    if live_only:
        statement = statement.where(col(Restriction.lifted_at).is_(None))
    restrictions = session.exec(statement).all()
    append_event(
        session,
        context=audit,
        action=AuditAction.RESTRICTION_LIST,
        now=now,
        patient_id=patient_id,
    )
    session.commit()
    return restrictions


def lift_restriction(
    session: Session, *, restriction_id: uuid.UUID, now: datetime, audit: AuditContext
) -> Restriction:
    """Lift a restriction. Lifting twice changes nothing."""
    restriction = session.get(Restriction, restriction_id)
    if restriction is None:
        raise NotFound("no such restriction")
    if restriction.lifted_at is not None:
        return restriction
    restriction.lifted_at = now
    session.add(restriction)
    append_event(
        session,
        context=audit,
        action=AuditAction.RESTRICTION_LIFT,
        now=now,
        patient_id=restriction.patient_id,
        case_id=restriction.case_id,
    )
    session.commit()
    return restriction


def assert_not_restricted(session: Session, *, patient_id: uuid.UUID, case_id: uuid.UUID) -> None:
    """Raise ProcessingRestricted while a restriction of the patient or of this case is live."""
    statement = select(Restriction.id).where(
        Restriction.patient_id == patient_id,
        col(Restriction.lifted_at).is_(None),
        or_(col(Restriction.case_id).is_(None), Restriction.case_id == case_id),
    )
    if session.exec(statement.limit(1)).first() is not None:
        raise ProcessingRestricted("processing of this patient's data is restricted (Art. 18)")


def _own_case(session: Session, *, patient_id: uuid.UUID, case_id: uuid.UUID) -> None:
    """The case must exist, be live and belong to the patient; any other case is NotFound."""
    case = get_case(session=session, case_id=case_id)
    if case.patient_id != patient_id:
        raise NotFound("no such case")
    get_live_case(session=session, case_id=case_id)
