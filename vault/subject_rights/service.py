"""Restriction (Art. 18), withdrawal of consent (Art. 7(3)) and objection (Art. 21) as the
patient exercises them: each verb registers the request, does the work and closes the request
in one transaction, so the register, the change and their audit events land together or not
at all.

Withdrawal and objection act on the future at once: new transfers relying on the basis are
refused (``vault.transfers``), and links issued on it and not yet used are revoked. Transfers
whose link was already used, or has expired, are kept and reported as such: what a partner
already holds cannot be called back by the service.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, and_, col, or_, select

from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.cases.models import Case
from vault.consents.models import Consent, Restriction, RestrictionReason
from vault.consents.service import add_restriction, mark_consent_withdrawn, own_consent
from vault.patients.service import get_patient
from vault.subject_rights.models import InterestObjection, RequestStatus, Right, RightsRequest
from vault.subject_rights.requests import close_request, open_request
from vault.transfers.models import LegalBasis, Transfer
from vault.transfers.service import Revocation, revoke_unused_transfers


@dataclass(frozen=True)
class RestrictionOutcome:
    request: RightsRequest
    restriction: Restriction
    placed: bool  # False: a restriction the patient asked for already covered it


@dataclass(frozen=True)
class WithdrawalOutcome:
    request: RightsRequest
    consent: Consent
    changed: bool  # False: withdrawn before; the first withdrawal stands
    revocation: Revocation


@dataclass(frozen=True)
class ObjectionOutcome:
    request: RightsRequest
    objected_at: datetime
    changed: bool  # False: objected before; the first objection stands
    revocation: Revocation


NOTHING_REVOKED = Revocation(revoked=[], kept=[])


def restrict_processing(
    session: Session,
    *,
    patient_id: uuid.UUID,
    case_id: uuid.UUID | None,
    now: datetime,
    audit: AuditContext,
) -> RestrictionOutcome:
    """The patient restricts processing (Art. 18(1)) of all their data, or of one live case of
    theirs (NotFound for any other; nothing stored). Only the privacy officer lifts it.

    A live restriction the patient asked for that already covers the same data is kept as it
    is (its date stays); the request is registered either way. Commits.
    """
    request = open_request(
        session, patient_id=patient_id, right=Right.RESTRICTION, now=now, audit=audit
    )
    covering = session.exec(
        select(Restriction)
        .where(
            Restriction.patient_id == patient_id,
            Restriction.reason == RestrictionReason.PATIENT_REQUEST,
            col(Restriction.lifted_at).is_(None),
            or_(col(Restriction.case_id).is_(None), Restriction.case_id == case_id),
        )
        .order_by(col(Restriction.placed_at))
    ).first()
    restriction = covering or add_restriction(
        session,
        patient_id=patient_id,
        case_id=case_id,
        reason=RestrictionReason.PATIENT_REQUEST,
        now=now,
        audit=audit,
        purpose=Right.RESTRICTION.value,
    )
    close_request(session, request, status=RequestStatus.COMPLETED, now=now, audit=audit)
    session.commit()
    return RestrictionOutcome(request=request, restriction=restriction, placed=covering is None)


def withdraw_consent_and_revoke_links(
    session: Session,
    *,
    patient_id: uuid.UUID,
    case_id: uuid.UUID,
    consent_id: uuid.UUID,
    now: datetime,
    audit: AuditContext,
) -> WithdrawalOutcome:
    """The patient withdraws a consent of theirs (Art. 7(3)): no new transfer may rely on it,
    and every transfer that did and whose link is still unused is revoked. NotFound for any
    other consent (nothing stored). Withdrawing again changes nothing but the register. Commits.
    """
    own_consent(session, patient_id=patient_id, case_id=case_id, consent_id=consent_id)
    request = open_request(
        session, patient_id=patient_id, right=Right.CONSENT_WITHDRAWAL, now=now, audit=audit
    )
    consent, changed = mark_consent_withdrawn(
        session,
        patient_id=patient_id,
        case_id=case_id,
        consent_id=consent_id,
        now=now,
        audit=audit,
    )
    revocation = NOTHING_REVOKED
    if changed:
        revocation = revoke_unused_transfers(
            session, where=col(Transfer.consent_id) == consent.id, now=now, audit=audit
        )
    close_request(session, request, status=RequestStatus.COMPLETED, now=now, audit=audit)
    session.commit()
    return WithdrawalOutcome(
        request=request, consent=consent, changed=changed, revocation=revocation
    )


def object_to_legitimate_interests(
    session: Session, *, patient_id: uuid.UUID, now: datetime, audit: AuditContext
) -> ObjectionOutcome:
    """The patient objects (Art. 21(1)) to processing based on legitimate interests
    (Art. 6(1)(f)): no new transfer of their data may rely on that basis, and transfers that
    did and whose link is still unused are revoked. Objecting again changes nothing but the
    register. Commits.
    """
    get_patient(session=session, patient_id=patient_id)
    request = open_request(
        session, patient_id=patient_id, right=Right.OBJECTION, now=now, audit=audit
    )
    objection = session.get(InterestObjection, patient_id)
    changed = objection is None
    revocation = NOTHING_REVOKED
    if objection is None:
        objection = InterestObjection(patient_id=patient_id, objected_at=now)
        session.add(objection)
        append_event(
            session,
            context=audit,
            action=AuditAction.INTERESTS_OBJECTION,
            now=now,
            patient_id=patient_id,
            legal_basis=LegalBasis.ART6_1_F,
            purpose=Right.OBJECTION.value,
        )
        patients_cases = select(Case.id).where(Case.patient_id == patient_id)
        revocation = revoke_unused_transfers(
            session,
            where=and_(
                col(Transfer.legal_basis) == LegalBasis.ART6_1_F,
                col(Transfer.case_id).in_(patients_cases),
            ),
            now=now,
            audit=audit,
        )
    close_request(session, request, status=RequestStatus.COMPLETED, now=now, audit=audit)
    session.commit()
    return ObjectionOutcome(
        request=request,
        objected_at=objection.objected_at,
        changed=changed,
        revocation=revocation,
    )
