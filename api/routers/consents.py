"""Consents (patients give and withdraw them for their own cases) and restrictions (admin).

Withdrawing is a data-subject request (Art. 7(3)): it is registered, and its answer says what
changed: the transfers relying on the consent whose links were revoked, and those kept.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import AdminUser, AuditDep, CaseWorker, NowDep, PatientUser, SessionDep
from api.routers.cases import own_patient_id, patient_scope
from api.routers.transfers import KeptTransferOut, RevocationOut, TransferEffectOut
from vault.consents.models import Consent, Restriction, RestrictionReason
from vault.consents.service import (
    give_consent,
    lift_restriction,
    list_consents,
    list_restrictions,
    place_restriction,
)
from vault.consents.texts import CONSENT_TEXTS, FORWARDING_2026_11
from vault.subject_rights.service import WithdrawalOutcome, withdraw_consent_and_revoke_links

router = APIRouter(tags=["consents"])


class ConsentTextOut(BaseModel):
    version: str
    text: str
    sha256: str


class ConsentRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text_version": FORWARDING_2026_11.version}]},
    )

    text_version: str = Field(json_schema_extra={"enum": list(CONSENT_TEXTS)})


class ConsentOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    case_id: uuid.UUID
    text_version: str
    text_sha256: str
    given_at: AwareDatetime
    withdrawn_at: AwareDatetime | None

    @classmethod
    def of(cls, consent: Consent) -> ConsentOut:
        return cls.model_validate(consent, from_attributes=True)


class ConsentWithdrawalOut(ConsentOut):
    """The consent as withdrawn, and what that changed (nothing when it was withdrawn before)."""

    revoked_transfers: list[TransferEffectOut]
    kept_transfers: list[KeptTransferOut]
    changed: bool = Field(description="False when the consent had been withdrawn before.")
    request_id: uuid.UUID = Field(description="The request in your register of requests.")

    @classmethod
    def of_outcome(cls, outcome: WithdrawalOutcome) -> ConsentWithdrawalOut:
        return cls.model_validate(
            {
                **ConsentOut.of(outcome.consent).model_dump(),
                **RevocationOut.of(outcome.revocation).model_dump(),
                "changed": outcome.changed,
                "request_id": outcome.request.id,
            }
        )


class RestrictionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"patient_id": "0b6c6f0e-3a51-4a4e-9d5e-2f1d0c9a7b11", "case_id": None}]
        },
    )

    patient_id: uuid.UUID
    case_id: uuid.UUID | None = None


class RestrictionOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    case_id: uuid.UUID | None
    reason: RestrictionReason
    placed_at: AwareDatetime
    lifted_at: AwareDatetime | None

    @classmethod
    def of(cls, restriction: Restriction) -> RestrictionOut:
        return cls.model_validate(restriction, from_attributes=True)


@router.get("/consent-texts")
def list_consent_texts() -> list[ConsentTextOut]:
    """The consent texts a patient can agree to, by version (public)."""
    texts = CONSENT_TEXTS.values()
    return [ConsentTextOut(version=t.version, text=t.text, sha256=t.sha256) for t in texts]


@router.post("/cases/{case_id}/consents", status_code=status.HTTP_201_CREATED)
def give_case_consent(
    case_id: uuid.UUID,
    body: ConsentRequest,
    user: PatientUser,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
) -> ConsentOut:
    """Give explicit consent (GDPR Art. 9(2)(a)) to forwarding this case's documents."""
    consent = give_consent(
        session,
        patient_id=own_patient_id(user),
        case_id=case_id,
        text_version=body.text_version,
        now=now,
        audit=audit,
    )
    return ConsentOut.of(consent)


@router.get("/cases/{case_id}/consents")
def list_case_consents(
    case_id: uuid.UUID, user: CaseWorker, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[ConsentOut]:
    """The consents of a case (the patient's own, or any case for a coordinator)."""
    consents = list_consents(
        session, case_id=case_id, patient_id=patient_scope(user), now=now, audit=audit
    )
    return [ConsentOut.of(consent) for consent in consents]


@router.post("/cases/{case_id}/consents/{consent_id}/withdraw")
def withdraw_case_consent(
    case_id: uuid.UUID,
    consent_id: uuid.UUID,
    user: PatientUser,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
) -> ConsentWithdrawalOut:
    """Withdraw a consent (GDPR Art. 7(3)) with effect for the future: no new transfer may rely
    on it, and links issued on it that were not used yet stop working at once."""
    outcome = withdraw_consent_and_revoke_links(
        session,
        patient_id=own_patient_id(user),
        case_id=case_id,
        consent_id=consent_id,
        now=now,
        audit=audit,
    )
    return ConsentWithdrawalOut.of_outcome(outcome)


@router.post("/admin/restrictions", status_code=status.HTTP_201_CREATED)
def place_processing_restriction(
    body: RestrictionRequest, _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> RestrictionOut:
    """Restrict processing (GDPR Art. 18) of a patient's data, or of one of their cases."""
    restriction = place_restriction(
        session, patient_id=body.patient_id, case_id=body.case_id, now=now, audit=audit
    )
    return RestrictionOut.of(restriction)


@router.get("/admin/restrictions")
def list_processing_restrictions(
    _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep, live: bool = True
) -> list[RestrictionOut]:
    """Restrictions of processing, newest first: the live ones, or all with ``live=false``."""
    restrictions = list_restrictions(session, patient_id=None, live_only=live, now=now, audit=audit)
    return [RestrictionOut.of(restriction) for restriction in restrictions]


@router.post("/admin/restrictions/{restriction_id}/lift")
def lift_processing_restriction(
    restriction_id: uuid.UUID, _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> RestrictionOut:
    """Lift a restriction of processing."""
    restriction = lift_restriction(session, restriction_id=restriction_id, now=now, audit=audit)
    return RestrictionOut.of(restriction)
