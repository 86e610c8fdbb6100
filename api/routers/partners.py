"""Partners: the privacy officer manages them; coordinators pick from the enabled ones."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field
from sqlmodel import Session

from api.deps import AdminUser, AuditDep, CoordinatorUser, NowDep, SessionDep
from vault.audit.service import AuditContext
from vault.partners.models import Partner, PartnerKind
from vault.partners.service import (
    MAX_NAME_LENGTH,
    create_partner,
    disable_partner,
    list_partners,
    update_partner,
)

router = APIRouter(tags=["partners"])


class PartnerCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "clinic",
                    "name": "Klinik am See",
                    "contact_email": "aufnahme@klinik.example",
                }
            ]
        },
    )

    kind: PartnerKind
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    contact_email: EmailStr = Field(max_length=320)


class PartnerUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"contact_email": "neu@klinik.example"}]},
    )

    kind: PartnerKind | None = None
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    contact_email: EmailStr | None = Field(default=None, max_length=320)


class PartnerSummary(BaseModel):
    """What a coordinator needs to choose a recipient."""

    id: uuid.UUID
    kind: PartnerKind
    name: str


class PartnerOut(PartnerSummary):
    contact_email: str
    created_at: AwareDatetime
    disabled_at: AwareDatetime | None

    @classmethod
    def of(cls, partner: Partner) -> PartnerOut:
        return cls.model_validate(partner, from_attributes=True)


def add_partner(
    *, session: Session, body: PartnerCreate, now: datetime, audit: AuditContext
) -> Partner:
    """Register the partner ``body`` describes (InvalidPartner: nothing stored)."""
    return create_partner(
        session,
        kind=body.kind,
        name=body.name,
        contact_email=body.contact_email,
        now=now,
        audit=audit,
    )


def change_partner(
    *,
    session: Session,
    partner_id: uuid.UUID,
    body: PartnerUpdate,
    now: datetime,
    audit: AuditContext,
) -> Partner:
    """Change the fields ``body`` gives (NotFound, InvalidPartner: nothing changed)."""
    return update_partner(
        session,
        partner_id=partner_id,
        kind=body.kind,
        name=body.name,
        contact_email=body.contact_email,
        now=now,
        audit=audit,
    )


@router.post("/admin/partners", status_code=status.HTTP_201_CREATED)
def create_partner_record(
    body: PartnerCreate, _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> PartnerOut:
    """Register a partner with the address its links are sent to."""
    return PartnerOut.of(add_partner(session=session, body=body, now=now, audit=audit))


@router.get("/admin/partners")
def list_partner_records(
    _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[PartnerOut]:
    """Every partner, disabled ones included."""
    partners = list_partners(session, include_disabled=True, now=now, audit=audit)
    return [PartnerOut.of(partner) for partner in partners]


@router.patch("/admin/partners/{partner_id}")
def update_partner_record(
    partner_id: uuid.UUID,
    body: PartnerUpdate,
    _admin: AdminUser,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
) -> PartnerOut:
    """Change a partner's kind, name or contact address."""
    partner = change_partner(
        session=session, partner_id=partner_id, body=body, now=now, audit=audit
    )
    return PartnerOut.of(partner)


@router.post("/admin/partners/{partner_id}/disable")
def disable_partner_record(
    partner_id: uuid.UUID, _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> PartnerOut:
    """Stop new transfers to a partner (links already sent stay valid until revoked)."""
    return PartnerOut.of(disable_partner(session, partner_id=partner_id, now=now, audit=audit))


@router.get("/partners")
def list_enabled_partners(
    _coordinator: CoordinatorUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[PartnerSummary]:
    """The partners documents can be forwarded to."""
    partners = list_partners(session, include_disabled=False, now=now, audit=audit)
    return [PartnerSummary(id=p.id, kind=p.kind, name=p.name) for p in partners]
