"""Transfer verbs: forward documents of a case to a partner under a legal basis, revoke, list,
and tell a patient every disclosure of their data.

``create_transfer`` checks everything before it writes anything: the case is live, every
document belongs to it and still exists (else NotFound: no oracle), the partner exists and is
enabled, no restriction (Art. 18) of the patient or the case is live, a basis of consent
points to a live consent of that patient for that case, and a basis of legitimate interests
meets no objection (Art. 21) of the patient. A transfer refused on legal grounds stores nothing
but its ``transfer.refused`` event (committed), then raises the reason.

``revoke_unused_transfers`` is how a withdrawal of consent or an objection reaches transfers
already made: links not yet used stop working, those already used stay in the record.
"""

import enum
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from vault.audit.models import ActorKind, AuditAction
from vault.audit.service import AuditContext, append_event
from vault.cases.models import Case
from vault.cases.service import get_case, get_live_case
from vault.consents.service import assert_not_restricted, live_consent
from vault.documents.models import Document, DocumentKind
from vault.errors import (
    ConsentWithdrawn,
    InvalidTransfer,
    LegalBasisMissing,
    NotFound,
    ObjectionRaised,
    ProcessingRestricted,
)
from vault.links.models import Link, LinkDownload
from vault.links.service import (
    IssuedLink,
    LinkPolicy,
    issue_link,
    link_terms,
    new_link_secrets,
)
from vault.partners.models import Partner, PartnerKind
from vault.partners.service import get_enabled_partner
from vault.subject_rights.models import InterestObjection
from vault.transfers.models import LegalBasis, Purpose, Transfer, TransferDocument

MAX_DOCUMENTS = 100


@dataclass(frozen=True, repr=False)
class IssuedTransfer:
    """A new transfer and its link, with the token and access code in the clear (shown once)."""

    transfer: Transfer
    link: IssuedLink

    def __repr__(self) -> str:
        return f"IssuedTransfer(transfer_id={self.transfer.id}, <token and code redacted>)"


@dataclass(frozen=True)
class TransferRecord:
    """A transfer with its documents and the state of its link, for the coordinators."""

    transfer: Transfer
    document_ids: list[uuid.UUID]
    link: Link


@dataclass(frozen=True)
class DisclosedPartner:
    id: uuid.UUID
    kind: PartnerKind
    name: str


@dataclass(frozen=True)
class DisclosedDocument:
    id: uuid.UUID
    kind: DocumentKind


@dataclass(frozen=True)
class DisclosedDownload:
    document_id: uuid.UUID
    at: datetime


@dataclass(frozen=True)
class Disclosure:
    """One transfer as its patient sees it: who received what, why, and every download."""

    transfer_id: uuid.UUID
    case_id: uuid.UUID
    partner: DisclosedPartner
    documents: list[DisclosedDocument]
    purpose: Purpose
    legal_basis: LegalBasis
    created_at: datetime
    revoked_at: datetime | None
    downloads: list[DisclosedDownload]


class KeptBecause(enum.StrEnum):
    """Why a transfer was left standing when the basis it relied on fell away."""

    DOWNLOADED = "downloaded"  # the partner already has the documents: nothing to call back
    EXPIRED = "expired"  # its link no longer works anyway


@dataclass(frozen=True)
class TransferEffect:
    """What a withdrawal or objection did to one transfer, as its patient is told."""

    transfer_id: uuid.UUID
    case_id: uuid.UUID
    partner: DisclosedPartner
    purpose: Purpose
    legal_basis: LegalBasis
    kept_because: KeptBecause | None = None  # None: revoked now


@dataclass(frozen=True)
class Revocation:
    revoked: list[TransferEffect]
    kept: list[TransferEffect]


def create_transfer(
    session: Session,
    *,
    case_id: uuid.UUID,
    document_ids: Sequence[uuid.UUID],
    partner_id: uuid.UUID,
    purpose: Purpose,
    legal_basis: LegalBasis,
    consent_id: uuid.UUID | None,
    now: datetime,
    audit: AuditContext,
    link_policy: LinkPolicy,
    expires_in: timedelta | None = None,
    max_downloads: int | None = None,
) -> IssuedTransfer:
    """Forward documents of a case to a partner and issue the partner's link; commits.

    Raises InvalidTransfer, NotFound, Gone (shredded case), ProcessingRestricted,
    LegalBasisMissing, ConsentWithdrawn, AuditUnavailable.
    """
    wanted = list(dict.fromkeys(document_ids))  # de-duplicated, order kept
    if not 1 <= len(wanted) <= MAX_DOCUMENTS:
        raise InvalidTransfer(f"a transfer sends 1 to {MAX_DOCUMENTS} documents")
    terms = link_terms(link_policy, expires_in=expires_in, max_downloads=max_downloads)
    # Hashed before the first query, so no transaction waits on argon2 (wasted if refused).
    link_secrets = new_link_secrets()
    case = get_live_case(session=session, case_id=case_id)
    _check_documents(session, case_id=case_id, document_ids=wanted)
    get_enabled_partner(session, partner_id=partner_id)
    try:
        assert_not_restricted(session, patient_id=case.patient_id, case_id=case_id)
        if legal_basis.needs_consent or consent_id is not None:
            live_consent(
                session, patient_id=case.patient_id, case_id=case_id, consent_id=consent_id
            )
        if legal_basis is LegalBasis.ART6_1_F:
            _assert_no_objection(session, patient_id=case.patient_id)
    except (ProcessingRestricted, LegalBasisMissing, ConsentWithdrawn, ObjectionRaised):
        session.rollback()
        _append(
            session,
            AuditAction.TRANSFER_REFUSED,
            case,
            audit=audit,
            now=now,
            outcome="refused",
            partner_id=partner_id,
            purpose=purpose,
            legal_basis=legal_basis,
        )
        session.commit()
        raise

    try:
        transfer = Transfer(
            case_id=case_id,
            partner_id=partner_id,
            purpose=purpose,
            legal_basis=legal_basis,
            consent_id=consent_id,
            created_by=audit.actor_id if audit.actor_kind is ActorKind.USER else None,
            created_at=now,
        )
        session.add(transfer)
        session.flush()
        session.add_all(
            TransferDocument(transfer_id=transfer.id, document_id=document_id, position=position)
            for position, document_id in enumerate(wanted, start=1)
        )
        link = issue_link(
            session, transfer_id=transfer.id, terms=terms, now=now, link_secrets=link_secrets
        )
        _append(session, AuditAction.TRANSFER_CREATE, case, audit=audit, now=now, transfer=transfer)
    except BaseException:
        session.rollback()  # fail closed: without its event, no transfer and no link
        raise
    transfer_id, link_id = transfer.id, link.link.id
    try:
        session.commit()
    except BaseException:
        stored = _committed_after_all(session, transfer_id=transfer_id, link_id=link_id)
        if stored is None:
            raise
        # The answer to the commit was lost, not the commit: the coordinator still gets the
        # link and its code (held here, never stored), rather than a transfer nobody can use.
        transfer = stored[0]
        link = IssuedLink(link=stored[1], token=link.token, access_code=link.access_code)
    return IssuedTransfer(transfer=transfer, link=link)


def _committed_after_all(
    session: Session, *, transfer_id: uuid.UUID, link_id: uuid.UUID
) -> tuple[Transfer, Link] | None:
    """After a commit that raised: the transfer and its link if the server committed them all
    the same (the connection broke before its answer came back); None if it did not, or if
    the database cannot say."""
    try:
        session.rollback()
        transfer = session.get(Transfer, transfer_id)
        link = session.get(Link, link_id)
        session.commit()  # end the read
    except SQLAlchemyError:
        return None
    if transfer is None or link is None:
        return None
    return transfer, link


def revoke_transfer(
    session: Session, *, transfer_id: uuid.UUID, now: datetime, audit: AuditContext
) -> Transfer:
    """Revoke a transfer: its link stops working at once. Revoking twice changes nothing."""
    transfer = get_transfer(session, transfer_id=transfer_id)
    if transfer.revoked_at is not None:
        return transfer
    transfer.revoked_at = now
    session.add(transfer)
    case = get_case(session=session, case_id=transfer.case_id)
    _append(session, AuditAction.TRANSFER_REVOKE, case, audit=audit, now=now, transfer=transfer)
    session.commit()
    return transfer


def revoke_unused_transfers(
    session: Session, *, where: sa.ColumnElement[bool], now: datetime, audit: AuditContext
) -> Revocation:
    """Revoke every transfer matching ``where`` (a condition on ``Transfer``) whose link was
    never used and still works; the others are kept, saying why. Flushes; the caller commits.

    Each revocation is conditional on the link still being unused, so a download counted in
    the meantime keeps its transfer, and is reported as kept rather than falsely revoked.
    Transfers revoked before are left out.
    """
    rows = session.exec(
        select(Transfer, Link)
        .join(Link, col(Link.transfer_id) == col(Transfer.id))
        .where(where, col(Transfer.revoked_at).is_(None))
        .order_by(col(Transfer.created_at), col(Transfer.id))
    ).all()
    partners = {
        p.id: _disclosed_partner(p)
        for p in session.exec(
            select(Partner).where(col(Partner.id).in_({t.partner_id for t, _ in rows}))
        ).all()
    }
    revoked: list[TransferEffect] = []
    kept: list[TransferEffect] = []
    for transfer, link in rows:
        why = _kept_because(link, now)
        if why is None:
            if _revoke_if_unused(session, transfer, now=now):
                case = get_case(session=session, case_id=transfer.case_id)
                _append(
                    session,
                    AuditAction.TRANSFER_REVOKE,
                    case,
                    audit=audit,
                    now=now,
                    transfer=transfer,
                )
                revoked.append(_effect(transfer, partners, None))
                continue
            if transfer.revoked_at is not None:  # revoked by someone else meanwhile
                continue
            why = KeptBecause.DOWNLOADED  # a download was counted meanwhile
        kept.append(_effect(transfer, partners, why))
    session.flush()
    return Revocation(revoked=revoked, kept=kept)


def _kept_because(link: Link, now: datetime) -> KeptBecause | None:
    if link.downloads > 0:
        return KeptBecause.DOWNLOADED
    if now >= link.expires_at:
        return KeptBecause.EXPIRED
    return None


def _revoke_if_unused(session: Session, transfer: Transfer, *, now: datetime) -> bool:
    """Set ``revoked_at`` only if it is unset and the link still has no download; the
    transfer is re-read either way."""
    used = sa.exists().where(col(Link.transfer_id) == transfer.id, col(Link.downloads) > 0)
    done = session.execute(
        sa.update(Transfer)
        .where(col(Transfer.id) == transfer.id, col(Transfer.revoked_at).is_(None), ~used)
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(transfer)
    return int(getattr(done, "rowcount", 0)) == 1


def _effect(
    transfer: Transfer, partners: dict[uuid.UUID, DisclosedPartner], why: KeptBecause | None
) -> TransferEffect:
    return TransferEffect(
        transfer_id=transfer.id,
        case_id=transfer.case_id,
        partner=partners[transfer.partner_id],
        purpose=transfer.purpose,
        legal_basis=transfer.legal_basis,
        kept_because=why,
    )


def _assert_no_objection(session: Session, *, patient_id: uuid.UUID) -> None:
    """Raise ObjectionRaised if the patient objected to processing on legitimate interests."""
    if session.get(InterestObjection, patient_id) is not None:
        raise ObjectionRaised(
            "the patient objected to processing based on legitimate interests (Art. 21)"
        )


def get_transfer(session: Session, *, transfer_id: uuid.UUID) -> Transfer:
    transfer = session.get(Transfer, transfer_id)
    if transfer is None:
        raise NotFound("no such transfer")
    return transfer


def list_transfers_for_case(
    session: Session, *, case_id: uuid.UUID, now: datetime, audit: AuditContext
) -> list[TransferRecord]:
    """Every transfer of a case, oldest first, with its documents and link state."""
    case = get_case(session=session, case_id=case_id)
    transfers = _transfers_of(session, [case_id])
    documents = _document_ids_by_transfer(session, [t.id for t in transfers])
    links = {
        link.transfer_id: link
        for link in session.exec(
            select(Link).where(col(Link.transfer_id).in_([t.id for t in transfers]))
        ).all()
    }
    _append(session, AuditAction.TRANSFER_LIST, case, audit=audit, now=now)
    session.commit()
    return [
        TransferRecord(transfer=t, document_ids=documents[t.id], link=links[t.id])
        for t in transfers
    ]


def disclosures_for_patient(
    session: Session, *, patient_id: uuid.UUID, now: datetime, audit: AuditContext
) -> list[Disclosure]:
    """Every transfer of the patient's data (Art. 15(1)(c)): recipient, documents, purpose,
    legal basis, when, revocation, and each download by the recipient. Oldest first."""
    case_ids = list(session.exec(select(Case.id).where(Case.patient_id == patient_id)).all())
    transfers = _transfers_of(session, case_ids)
    transfer_ids = [t.id for t in transfers]
    partners = {
        p.id: p
        for p in session.exec(
            select(Partner).where(col(Partner.id).in_({t.partner_id for t in transfers}))
        ).all()
    }
    documents: dict[uuid.UUID, list[DisclosedDocument]] = defaultdict(list)
    sent = session.exec(
        select(TransferDocument.transfer_id, Document.id, Document.kind)
        .join(Document, col(Document.id) == col(TransferDocument.document_id))
        .where(col(TransferDocument.transfer_id).in_(transfer_ids))
        .order_by(col(TransferDocument.position))
    ).all()
    for transfer_id, document_id, kind in sent:
        documents[transfer_id].append(DisclosedDocument(id=document_id, kind=DocumentKind(kind)))
    downloads: dict[uuid.UUID, list[DisclosedDownload]] = defaultdict(list)
    fetched = session.exec(
        select(Link.transfer_id, LinkDownload.document_id, LinkDownload.at)
        .join(Link, col(Link.id) == col(LinkDownload.link_id))
        .where(col(Link.transfer_id).in_(transfer_ids))
        .order_by(col(LinkDownload.at), col(LinkDownload.id))
    ).all()
    for transfer_id, document_id, at in fetched:
        downloads[transfer_id].append(DisclosedDownload(document_id=document_id, at=at))
    append_event(
        session,
        context=audit,
        action=AuditAction.DISCLOSURE_LIST,
        now=now,
        patient_id=patient_id,
    )
    session.commit()
    return [
        Disclosure(
            transfer_id=t.id,
            case_id=t.case_id,
            partner=_disclosed_partner(partners[t.partner_id]),
            documents=documents[t.id],
            purpose=t.purpose,
            legal_basis=t.legal_basis,
            created_at=t.created_at,
            revoked_at=t.revoked_at,
            downloads=downloads[t.id],
        )
        for t in transfers
    ]


def _check_documents(
    session: Session, *, case_id: uuid.UUID, document_ids: list[uuid.UUID]
) -> None:
    """Every document exists, belongs to the case and is not shredded; else NotFound for all."""
    found = session.exec(
        select(Document.id).where(
            col(Document.id).in_(document_ids),
            Document.case_id == case_id,
            col(Document.shredded_at).is_(None),
        )
    ).all()
    if len(set(found)) != len(document_ids):
        raise NotFound("no such document in this case")


def _transfers_of(session: Session, case_ids: list[uuid.UUID]) -> Sequence[Transfer]:
    statement = (
        select(Transfer)
        .where(col(Transfer.case_id).in_(case_ids))
        .order_by(col(Transfer.created_at), col(Transfer.id))
    )
    return session.exec(statement).all()


def _document_ids_by_transfer(
    session: Session, transfer_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    rows = session.exec(
        select(TransferDocument.transfer_id, TransferDocument.document_id)
        .where(col(TransferDocument.transfer_id).in_(transfer_ids))
        .order_by(col(TransferDocument.position))
    ).all()
    grouped: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for transfer_id, document_id in rows:
        grouped[transfer_id].append(document_id)
    return grouped


def _disclosed_partner(partner: Partner) -> DisclosedPartner:
    return DisclosedPartner(id=partner.id, kind=partner.kind, name=partner.name)


def _append(
    session: Session,
    action: AuditAction,
    case: Case,
    *,
    audit: AuditContext,
    now: datetime,
    outcome: str = "ok",
    transfer: Transfer | None = None,
    partner_id: uuid.UUID | None = None,
    purpose: Purpose | None = None,
    legal_basis: LegalBasis | None = None,
) -> None:
    """An event about a case's transfers; a given ``transfer`` supplies the other fields."""
    if transfer is not None:
        partner_id, purpose, legal_basis = (
            transfer.partner_id,
            transfer.purpose,
            transfer.legal_basis,
        )
    append_event(
        session,
        context=audit,
        action=action,
        now=now,
        outcome=outcome,
        patient_id=case.patient_id,
        case_id=case.id,
        transfer_id=None if transfer is None else transfer.id,
        partner_id=partner_id,
        purpose=purpose,
        legal_basis=legal_basis,
    )
