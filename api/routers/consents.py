"""Consents (patients give and withdraw them for their own cases) and restrictions (admin)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, ConfigDict

from api.deps import AdminUser, AuditDep, CaseWorker, NowDep, PatientUser, SessionDep
from api.routers.cases import own_patient_id, patient_scope
from vault.consents.models import Consent, Restriction
from vault.consents.service import (
    give_consent,
    lift_restriction,
    list_consents,
    place_restriction,
    withdraw_consent,
)
from vault.consents.texts import CONSENT_TEXTS, FORWARDING_2026_11

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

    text_version: str


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
) -> ConsentOut:
    """Withdraw a consent with effect for the future: no new transfer may rely on it."""
    consent = withdraw_consent(
        session,
        patient_id=own_patient_id(user),
        case_id=case_id,
        consent_id=consent_id,
        now=now,
        audit=audit,
    )
    return ConsentOut.of(consent)


@router.post("/admin/restrictions", status_code=status.HTTP_201_CREATED)
def place_processing_restriction(
    body: RestrictionRequest, _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> RestrictionOut:
    """Restrict processing (GDPR Art. 18) of a patient's data, or of one of their cases."""
    restriction = place_restriction(
        session, patient_id=body.patient_id, case_id=body.case_id, now=now, audit=audit
    )
    return RestrictionOut.of(restriction)


@router.post("/admin/restrictions/{restriction_id}/lift")
def lift_processing_restriction(
    restriction_id: uuid.UUID, _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> RestrictionOut:
    """Lift a restriction of processing."""
    restriction = lift_restriction(session, restriction_id=restriction_id, now=now, audit=audit)
    return RestrictionOut.of(restriction)
