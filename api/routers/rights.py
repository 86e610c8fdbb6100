"""Data-subject rights: the request register (patients and the privacy officer), rectification,
restriction, objection and withdrawal of consent.

A patient acts on their own record only; every answer says what changed. The register shows
each request with its due date (one month, Art. 12(3)); only the privacy officer sees everyone's.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Literal, Self

from fastapi import APIRouter, Response, status
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session

from api.deps import AdminUser, AuditDep, NowDep, PatientUser, RuntimeDep, SessionDep
from api.routers.auth import PatientName, PhoneNumber
from api.routers.cases import own_patient_id
from api.routers.consents import RestrictionOut
from api.routers.documents import NO_STORE
from api.routers.transfers import RevocationOut
from infra.wiring import Runtime
from vault.audit.service import AuditContext
from vault.consents.service import list_restrictions
from vault.json_types import JsonPastDate
from vault.patients.models import CountryCode, Sex
from vault.patients.service import PatientField, PatientIdentity
from vault.subject_rights.models import RequestStatus, Right, RightsRequest
from vault.subject_rights.rectification import rectify_profile, unsafe_read_profile
from vault.subject_rights.requests import is_overdue, list_requests, read_request
from vault.subject_rights.service import object_to_legitimate_interests, restrict_processing

router = APIRouter(tags=["rights"])


class RightsRequestOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    right: Right
    status: RequestStatus
    received_at: AwareDatetime
    due_at: AwareDatetime = Field(description="One month after receipt (GDPR Art. 12(3)).")
    completed_at: AwareDatetime | None
    overdue: bool = Field(description="Still open after its due date.")

    @classmethod
    def of(cls, request: RightsRequest, *, now: datetime) -> RightsRequestOut:
        fields = request.model_dump()
        return cls.model_validate({**fields, "overdue": is_overdue(request, now=now)})


class ProfileOut(BaseModel):
    name: str
    birth_date: date
    email: str
    phone: str | None
    sex: Sex
    country: str | None

    @classmethod
    def of(cls, identity: PatientIdentity) -> ProfileOut:
        return cls.model_validate(identity, from_attributes=True)


class ProfileUpdate(BaseModel):
    """Any of the profile's fields, each validated as at registration; ``null`` removes the
    phone number or the country (the other fields can only be corrected)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"phone": "+49 30 7654321"}], "minProperties": 1},
    )

    # null removes an optional field; the schema offers it only for those.
    email: EmailStr | SkipJsonSchema[None] = None
    name: PatientName | SkipJsonSchema[None] = None
    birth_date: JsonPastDate | SkipJsonSchema[None] = None
    phone: PhoneNumber | None = None
    sex: Sex | SkipJsonSchema[None] = None
    country: CountryCode | None = None

    @model_validator(mode="after")
    def _a_correction(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("name at least one field to correct")
        kept = [
            name
            for name in sorted(self.model_fields_set)
            if getattr(self, name) is None and not PatientField(name).optional
        ]
        if kept:
            raise ValueError(f"{', '.join(kept)} can be corrected, not removed")
        return self

    def values(self) -> dict[PatientField, str | None]:
        given = self.model_dump(mode="json", include=self.model_fields_set)
        return {PatientField(name): value for name, value in given.items()}


class RectificationOut(BaseModel):
    request_id: uuid.UUID
    fields: list[PatientField] = Field(description="The fields corrected (never their values).")
    login_changed: bool = Field(description="Your login is now the new e-mail address.")


class RestrictionAsk(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"case_id": None}]})

    case_id: uuid.UUID | None = Field(
        default=None, description="One case of yours; without it, all of your data."
    )


class RestrictionPlacedOut(BaseModel):
    request_id: uuid.UUID
    restriction: RestrictionOut
    placed: bool = Field(description="False: a restriction you asked for already covered it.")


class ObjectionOut(RevocationOut):
    request_id: uuid.UUID
    objected_at: AwareDatetime = Field(
        description="Your first objection: objecting again keeps it."
    )
    changed: bool = Field(description="False when you had objected before.")


def own_profile(
    *, runtime: Runtime, session: Session, patient_id: uuid.UUID, now: datetime, audit: AuditContext
) -> ProfileOut:
    """The patient's profile, for the patient themselves (KeyDestroyed once erased)."""
    identity = unsafe_read_profile(
        session, keys=runtime.key_store, patient_id=patient_id, now=now, audit=audit
    )
    return ProfileOut.of(identity)


def rectify_own_profile(
    *,
    runtime: Runtime,
    session: Session,
    patient_id: uuid.UUID,
    update: ProfileUpdate,
    now: datetime,
    audit: AuditContext,
) -> RectificationOut:
    """Correct the fields ``update`` names (Art. 16); EmailTaken, nothing stored, when the new
    address is another account's login."""
    done = rectify_profile(
        session,
        keys=runtime.key_store,
        lookup_key=runtime.secrets.login_lookup_key,
        patient_id=patient_id,
        values=update.values(),
        now=now,
        audit=audit,
    )
    return RectificationOut(
        request_id=done.request.id, fields=done.fields, login_changed=done.login_changed
    )


@router.get("/me/rights-requests")
def list_my_rights_requests(
    user: PatientUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[RightsRequestOut]:
    """Your requests (access, rectification, erasure, restriction, objection, withdrawal),
    the latest first, each with its due date and outcome."""
    requests = list_requests(
        session, patient_id=own_patient_id(user), newest_first=True, now=now, audit=audit
    )
    return [RightsRequestOut.of(request, now=now) for request in requests]


@router.get("/admin/rights-requests")
def list_rights_requests(
    _admin: AdminUser,
    runtime: RuntimeDep,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
    state: Literal["open", "all"] = "open",
    due_soon: bool = False,
) -> list[RightsRequestOut]:
    """Every patient's requests, the soonest due first: the open ones, or all; ``due_soon``
    keeps the open ones due within the next ``rights_due_soon_days`` (overdue included)."""
    within = timedelta(days=runtime.settings.rights_due_soon_days) if due_soon else None
    requests = list_requests(
        session, open_only=state == "open", due_within=within, now=now, audit=audit
    )
    return [RightsRequestOut.of(request, now=now) for request in requests]


@router.get("/admin/rights-requests/{request_id}")
def read_rights_request(
    request_id: uuid.UUID, _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> RightsRequestOut:
    """One request of the register."""
    request = read_request(session, request_id=request_id, now=now, audit=audit)
    return RightsRequestOut.of(request, now=now)


@router.get("/me/profile")
def read_my_profile(
    user: PatientUser,
    runtime: RuntimeDep,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
    response: Response,
) -> ProfileOut:
    """What is held about who you are (410 once your data was erased)."""
    profile = own_profile(
        runtime=runtime, session=session, patient_id=own_patient_id(user), now=now, audit=audit
    )
    response.headers.update(NO_STORE)
    return profile


@router.patch(
    "/me/profile",
    responses={
        409: {"description": "email-taken: the new address is another account's login."},
        410: {"description": "Your data was erased."},
    },
)
def rectify_my_profile(
    body: ProfileUpdate,
    user: PatientUser,
    runtime: RuntimeDep,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
) -> RectificationOut:
    """Correct your profile (GDPR Art. 16); the old values are not kept. If your e-mail address
    is your login, the new address is your login from now on."""
    return rectify_own_profile(
        runtime=runtime,
        session=session,
        patient_id=own_patient_id(user),
        update=body,
        now=now,
        audit=audit,
    )


@router.post(
    "/me/restriction",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "A restriction you asked for already covered it."}},
)
def restrict_my_processing(
    user: PatientUser,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
    response: Response,
    body: RestrictionAsk | None = None,
) -> RestrictionPlacedOut:
    """Restrict the processing of your data, or of one case (GDPR Art. 18): it is kept, but no
    longer forwarded, downloaded through links or used for quality assurance, until the
    privacy officer lifts the restriction."""
    outcome = restrict_processing(
        session,
        patient_id=own_patient_id(user),
        case_id=body.case_id if body is not None else None,
        now=now,
        audit=audit,
    )
    if not outcome.placed:
        response.status_code = status.HTTP_200_OK
    return RestrictionPlacedOut(
        request_id=outcome.request.id,
        restriction=RestrictionOut.of(outcome.restriction),
        placed=outcome.placed,
    )


@router.get("/me/restrictions")
def list_my_restrictions(
    user: PatientUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[RestrictionOut]:
    """The restrictions of processing of your data, newest first (lifted ones included)."""
    restrictions = list_restrictions(
        session, patient_id=own_patient_id(user), live_only=False, now=now, audit=audit
    )
    return [RestrictionOut.of(restriction) for restriction in restrictions]


@router.post("/me/objections/legitimate-interests")
def object_to_legitimate_interests_use(
    user: PatientUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> ObjectionOut:
    """Object (GDPR Art. 21(1)) to processing based on legitimate interests (Art. 6(1)(f)):
    no new transfer may rely on it, and links issued on it that were not used yet stop working.
    """
    outcome = object_to_legitimate_interests(
        session, patient_id=own_patient_id(user), now=now, audit=audit
    )
    return ObjectionOut.model_validate(
        {
            **RevocationOut.of(outcome.revocation).model_dump(),
            "request_id": outcome.request.id,
            "objected_at": outcome.objected_at,
            "changed": outcome.changed,
        }
    )
