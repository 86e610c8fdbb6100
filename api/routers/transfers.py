"""Transfers: coordinators forward documents to partners under a legal basis and revoke them;
patients see every disclosure of their data.

The link goes to the partner's contact address through the notifier once the transfer is
committed; the access code is only in this response, to be passed on by another channel.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import (
    AuditDep,
    CoordinatorUser,
    NowDep,
    PatientUser,
    RuntimeDep,
    SessionDep,
)
from api.routers.cases import own_patient_id
from infra.settings import Settings
from infra.wiring import Runtime
from vault.audit.service import AuditContext
from vault.documents.models import DocumentKind
from vault.errors import NotificationFailed
from vault.links.service import LinkPolicy
from vault.notifications.interfaces import Notification, Notifier
from vault.partners.models import PartnerKind
from vault.partners.service import get_partner
from vault.transfers.models import LegalBasis, Purpose, Transfer
from vault.transfers.service import (
    MAX_DOCUMENTS,
    Disclosure,
    KeptBecause,
    Revocation,
    TransferEffect,
    TransferRecord,
    create_transfer,
    disclosures_for_patient,
    list_transfers_for_case,
    revoke_transfer,
)

router = APIRouter(tags=["transfers"])
MAX_LINK_DOWNLOADS = 100
REFUSALS = (
    "Refused, with the reason as the problem type: legal-basis-missing, consent-withdrawn "
    "or processing-restricted."
)


MAX_EXPIRES_IN_DAYS = 3650


class TransferRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "document_ids": ["5d0f5d1c-8a43-4c8e-a0b0-7f7b5a1f2c3d"],
                    "partner_id": "9a3e4c55-2b1d-4e6f-8a7b-1c2d3e4f5a6b",
                    "purpose": "treatment-check",
                    "legal_basis": "art9-2-a",
                    "consent_id": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
                    "expires_in_days": 7,
                    "max_downloads": 5,
                }
            ]
        },
    )

    document_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    partner_id: uuid.UUID
    purpose: Purpose
    legal_basis: LegalBasis
    consent_id: uuid.UUID | None = Field(
        default=None, description="Required for the consent bases art6-1-a and art9-2-a."
    )
    # The setting caps the lifetime further; this bound only keeps an absurd number from
    # overflowing the date arithmetic (a 500 before it was there).
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EXPIRES_IN_DAYS,
        description="Default and maximum come from the settings.",
    )
    max_downloads: int | None = Field(default=None, ge=1, le=MAX_LINK_DOWNLOADS)


class LinkState(BaseModel):
    expires_at: AwareDatetime
    max_downloads: int
    downloads: int
    locked: bool


class TransferOut(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    partner_id: uuid.UUID
    purpose: Purpose
    legal_basis: LegalBasis
    consent_id: uuid.UUID | None
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None
    document_ids: list[uuid.UUID]

    @classmethod
    def of(cls, transfer: Transfer, document_ids: list[uuid.UUID]) -> TransferOut:
        fields = transfer.model_dump()
        return cls.model_validate({**fields, "document_ids": document_ids})


class TransferWithLink(TransferOut):
    link: LinkState

    @classmethod
    def of_record(cls, record: TransferRecord) -> TransferWithLink:
        link = record.link
        state = LinkState(
            expires_at=link.expires_at,
            max_downloads=link.max_downloads,
            downloads=link.downloads,
            locked=link.locked_at is not None,
        )
        base = TransferOut.of(record.transfer, record.document_ids)
        return cls.model_validate({**base.model_dump(), "link": state})


class IssuedTransferOut(BaseModel):
    transfer: TransferOut
    link_url: str = Field(description="Sent to the partner's contact address.")
    access_code: str = Field(
        description="Shown only here, once: pass it to the partner by another channel."
    )
    expires_at: AwareDatetime
    notified: bool = Field(description="Whether the link could be handed to the mail system.")


class DisclosedPartnerOut(BaseModel):
    id: uuid.UUID
    kind: PartnerKind
    name: str


class DisclosedDocumentOut(BaseModel):
    id: uuid.UUID
    kind: DocumentKind


class DisclosedDownloadOut(BaseModel):
    document_id: uuid.UUID
    at: AwareDatetime


class DisclosureOut(BaseModel):
    transfer_id: uuid.UUID
    case_id: uuid.UUID
    partner: DisclosedPartnerOut
    documents: list[DisclosedDocumentOut]
    purpose: Purpose
    legal_basis: LegalBasis
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None
    downloads: list[DisclosedDownloadOut]

    @classmethod
    def of(cls, disclosure: Disclosure) -> DisclosureOut:
        return cls.model_validate(disclosure, from_attributes=True)


class TransferEffectOut(BaseModel):
    """A transfer that relied on a withdrawn consent or an objected basis, as its patient is
    told: revoked now (its link stops working), or kept and why."""

    transfer_id: uuid.UUID
    case_id: uuid.UUID
    partner: DisclosedPartnerOut
    purpose: Purpose
    legal_basis: LegalBasis


class KeptTransferOut(TransferEffectOut):
    why: KeptBecause = Field(
        description="downloaded: the partner already has the documents; expired: the link "
        "no longer works anyway."
    )


class RevocationOut(BaseModel):
    revoked_transfers: list[TransferEffectOut]
    kept_transfers: list[KeptTransferOut]

    @classmethod
    def of(cls, revocation: Revocation) -> RevocationOut:
        return cls(
            revoked_transfers=[_effect(effect) for effect in revocation.revoked],
            kept_transfers=[
                KeptTransferOut.model_validate(
                    {**_effect(effect).model_dump(), "why": effect.kept_because}
                )
                for effect in revocation.kept
            ],
        )


def _effect(effect: TransferEffect) -> TransferEffectOut:
    return TransferEffectOut.model_validate(effect, from_attributes=True)


def link_policy(settings: Settings) -> LinkPolicy:
    return LinkPolicy(
        ttl=timedelta(days=settings.link_ttl_days),
        max_ttl=timedelta(days=settings.link_max_ttl_days),
        max_downloads=settings.link_max_downloads,
        max_code_attempts=settings.link_code_attempts,
    )


@router.post(
    "/cases/{case_id}/transfers",
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "Unknown case, a document of another case, or unknown partner."},
        409: {"description": REFUSALS},
    },
)
def create_case_transfer(
    case_id: uuid.UUID,
    body: TransferRequest,
    _coordinator: CoordinatorUser,
    runtime: RuntimeDep,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
) -> IssuedTransferOut:
    """Forward documents of a case to a partner under a legal basis; issue the partner's link."""
    return forward_documents(
        runtime=runtime, session=session, case_id=case_id, body=body, now=now, audit=audit
    )


def forward_documents(
    *,
    runtime: Runtime,
    session: Session,
    case_id: uuid.UUID,
    body: TransferRequest,
    now: datetime,
    audit: AuditContext,
) -> IssuedTransferOut:
    """Create the transfer, mail the partner its link (never the code) once it is committed,
    and answer with the link and the access code, shown this once (the API and the console)."""
    issued = create_transfer(
        session,
        case_id=case_id,
        document_ids=body.document_ids,
        partner_id=body.partner_id,
        purpose=body.purpose,
        legal_basis=body.legal_basis,
        consent_id=body.consent_id,
        now=now,
        audit=audit,
        link_policy=link_policy(runtime.settings),
        expires_in=None if body.expires_in_days is None else timedelta(body.expires_in_days),
        max_downloads=body.max_downloads,
    )
    link = issued.link
    link_url = f"{runtime.settings.public_base_url.rstrip('/')}/l/{link.token}"
    partner = get_partner(session, partner_id=body.partner_id)
    session.commit()  # no transaction (on SQLite: the write lock) while the mail is handed over
    notified = _send_link(
        runtime.notifier, to=partner.contact_email, url=link_url, expires_at=link.link.expires_at
    )
    return IssuedTransferOut(
        transfer=TransferOut.of(issued.transfer, list(dict.fromkeys(body.document_ids))),
        link_url=link_url,
        access_code=link.access_code,
        expires_at=link.link.expires_at,
        notified=notified,
    )


def _send_link(notifier: Notifier, *, to: str, url: str, expires_at: datetime) -> bool:
    """Mail the link (never the code, never content). A failure leaves the transfer standing:
    the coordinator still has the link in the response and can pass it on."""
    body = (
        "Documents have been shared with you through medvault.\n\n"
        f"Open this link to see them: {url}\n\n"
        "To download, you need the access code, which you receive separately.\n"
        f"The link expires at {expires_at:%Y-%m-%d %H:%M} UTC and may be revoked earlier.\n"
    )
    try:
        notifier.send(Notification(to=to, subject="Documents shared with you", body=body))
    except NotificationFailed:
        return False
    return True


@router.get("/cases/{case_id}/transfers")
def list_case_transfers(
    case_id: uuid.UUID,
    _coordinator: CoordinatorUser,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
) -> list[TransferWithLink]:
    """Every transfer of a case with the state of its link."""
    records = list_transfers_for_case(session, case_id=case_id, now=now, audit=audit)
    return [TransferWithLink.of_record(record) for record in records]


class RevokedTransferOut(BaseModel):
    id: uuid.UUID
    revoked_at: AwareDatetime


@router.post("/transfers/{transfer_id}/revoke")
def revoke_case_transfer(
    transfer_id: uuid.UUID,
    _coordinator: CoordinatorUser,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
) -> RevokedTransferOut:
    """Revoke a transfer: its link stops working at once (revoking again changes nothing)."""
    transfer = revoke_transfer(session, transfer_id=transfer_id, now=now, audit=audit)
    return RevokedTransferOut.model_validate(transfer, from_attributes=True)


@router.get("/me/disclosures")
def list_my_disclosures(
    user: PatientUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[DisclosureOut]:
    """Every disclosure of your data: who received which document, when, why, under which
    legal basis, and each time they downloaded it (GDPR Art. 15(1)(c))."""
    disclosures = disclosures_for_patient(
        session, patient_id=own_patient_id(user), now=now, audit=audit
    )
    return [DisclosureOut.of(disclosure) for disclosure in disclosures]
