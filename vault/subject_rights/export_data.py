"""Collecting the personal-data document of a data-subject export (Art. 15 and 20).

``unsafe_collect_subject_data`` reads everything the database holds about one patient and
unseals what is sealed (identity, outcomes, file names, survey comments) into ``SubjectData``
(the published format, ``vault.subject_rights.export_schema``). It only reads: it neither
commits nor appends an audit event (the export build that calls it does both), and it never
reads a document's content (the build streams each document into the archive at its
``archive_path``).

Every item carries ``retention_until`` (when medvault deletes it) and ``source`` (who put it
there). Left out on purpose, and why (the model walk in the tests keeps this list honest):

- one-way digests and hashes of secrets (login, password, tokens, access codes): they reveal
  nothing and would only help an attacker;
- key ids, wrapped keys, object keys, frame sizes: how medvault stores data, not data about you;
- which staff member acted (a transfer's creator, an audit event's account and network): the
  export names the role that acted, not the employee (CJEU C-579/21);
- the audit chain's own hashes.

Nothing about anyone else is included: an audit event about another patient's object that the
patient touched (a refused attempt) keeps only what is theirs.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from keys.store import KeyStore
from vault.accounts.models import AuthToken, LoginThrottle, OneTimeToken, Role, User
from vault.accounts.throttle import account_key
from vault.audit.models import ActorKind, AuditAction, AuditEvent
from vault.cases.models import Case, CaseStatus
from vault.cases.service import retention_due_at, unsafe_case_outcome
from vault.consents.models import Consent, Restriction, RestrictionReason
from vault.consents.texts import CONSENT_TEXTS
from vault.documents.models import Document
from vault.documents.service import unsafe_document_filename
from vault.links.models import Link, LinkDownload
from vault.partners.models import Partner
from vault.patients.service import get_patient, unsafe_patient_identity
from vault.subject_rights.export_schema import (
    SCHEMA_VERSION,
    Account,
    Actor,
    CaseRecord,
    ConsentRecord,
    DownloadRecord,
    EmailedCode,
    ExportedDocument,
    ExportRecord,
    FailedSignIns,
    LegalHold,
    LinkRecord,
    ObjectionRecord,
    Outcome,
    ProcessingEvent,
    Profile,
    Recipient,
    RestrictionRecord,
    RetainedRecord,
    RightsRequestRecord,
    SessionToken,
    ShreddedDocument,
    Source,
    SubjectData,
    SurveyRecord,
    TransferRecord,
    TransferredDocument,
    archive_path,
    subject_data_schema,
)
from vault.subject_rights.models import (
    ErasedCase,
    InterestObjection,
    RetainedPart,
    RightsRequest,
    SubjectExport,
)
from vault.surveys.models import QaObjection, Survey
from vault.surveys.service import unsafe_survey_free_text
from vault.transfers.models import Transfer, TransferDocument

__all__ = [  # the contract the export build relies on
    "SCHEMA_VERSION",
    "ExportedDocument",
    "SubjectData",
    "subject_data_schema",
    "unsafe_collect_subject_data",
]

_GONE_STATUSES = (CaseStatus.SHREDDING, CaseStatus.SHREDDED)

_ROLE_ACTORS = {
    Role.COORDINATOR: Actor.COORDINATOR,
    Role.ADMIN: Actor.PRIVACY_OFFICER,
    Role.ANALYST: Actor.ANALYST,
    Role.PATIENT: Actor.ANOTHER_PATIENT,
}
_ACTOR_SOURCES = {
    Actor.YOU: Source.YOU,
    Actor.COORDINATOR: Source.COORDINATOR,
    Actor.PRIVACY_OFFICER: Source.PRIVACY_OFFICER,
    Actor.PARTNER: Source.PARTNER,
}
_RESTRICTION_SOURCES = {
    RestrictionReason.PRIVACY_OFFICER: Source.PRIVACY_OFFICER,
    RestrictionReason.PATIENT_REQUEST: Source.YOU,
    RestrictionReason.ERASURE_RETAINED: Source.SYSTEM,
}


# -- collecting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Retention:
    """When each case's data goes, and when the identity goes with the last case."""

    by_case: dict[uuid.UUID, datetime | None]
    identity: datetime | None

    @classmethod
    def of(cls, cases: Sequence[Case], *, years: int) -> _Retention:
        by_case = {case.id: _case_retention(case, years=years) for case in cases}
        live = [by_case[case.id] for case in cases if case.status not in _GONE_STATUSES]
        known = [due for due in live if due is not None]
        identity = max(known) if live and len(known) == len(live) else None
        return cls(by_case=by_case, identity=identity)

    def of_case(self, case_id: uuid.UUID | None) -> datetime | None:
        return self.identity if case_id is None else self.by_case.get(case_id)


def _case_retention(case: Case, *, years: int) -> datetime | None:
    if case.status in _GONE_STATUSES or case.legal_hold_at is not None:
        return None
    if case.treatment_completed_at is None:
        return None
    return retention_due_at(case.treatment_completed_at, years=years)


@dataclass(frozen=True)
class _Actors:
    """Turns an audit actor into a role, knowing which accounts are the patient's own."""

    own_accounts: frozenset[uuid.UUID]
    roles: dict[uuid.UUID, Role]

    def of_user(self, user_id: uuid.UUID | None) -> Actor:
        if user_id is None:
            return Actor.SYSTEM
        if user_id in self.own_accounts:
            return Actor.YOU
        role = self.roles.get(user_id)
        return Actor.UNKNOWN if role is None else _ROLE_ACTORS[role]

    def of_event(self, event: AuditEvent) -> Actor:
        kind = event.actor_kind
        if kind == ActorKind.USER:
            return self.of_user(event.actor_id)
        if kind == ActorKind.PARTNER:
            return Actor.PARTNER
        if kind == ActorKind.ANONYMOUS:
            return Actor.ANONYMOUS
        return Actor.SYSTEM


def _source_of(actor: Actor) -> Source:
    return _ACTOR_SOURCES.get(actor, Source.SYSTEM)


@dataclass(frozen=True)
class _OwnIds:
    """The patient's own ids: an audit event keeps an object id only if it is one of these."""

    cases: frozenset[uuid.UUID]
    documents: frozenset[uuid.UUID]
    transfers: frozenset[uuid.UUID]
    links: frozenset[uuid.UUID]
    accounts: frozenset[uuid.UUID]


def unsafe_collect_subject_data(
    *,
    session: Session,
    keys: KeyStore,
    patient_id: uuid.UUID,
    retention_years: int,
    now: datetime,
) -> SubjectData:
    """Everything the database holds about one patient, unsealed (never log the result).

    Only reads: no commit, no audit event (the caller records both). Raises NotFound for an
    unknown patient, KeyDestroyed (a Gone) for an erased one, DecryptionFailed if anything
    sealed was tampered with, KmsUnavailable when the key service is down.
    """
    patient = get_patient(session=session, patient_id=patient_id)
    identity = unsafe_patient_identity(session=session, keys=keys, patient=patient)
    cases = list(
        session.exec(
            select(Case)
            .where(Case.patient_id == patient_id)
            .order_by(col(Case.created_at), col(Case.id))
        )
    )
    retention = _Retention.of(cases, years=retention_years)
    accounts = list(
        session.exec(
            select(User)
            .where(User.patient_id == patient_id)
            .order_by(col(User.created_at), col(User.id))
        )
    )
    documents = list(
        session.exec(
            select(Document)
            .where(col(Document.case_id).in_([case.id for case in cases]))
            .order_by(col(Document.created_at), col(Document.id))
        )
    )
    transfers = list(
        session.exec(
            select(Transfer)
            .where(col(Transfer.case_id).in_([case.id for case in cases]))
            .order_by(col(Transfer.created_at), col(Transfer.id))
        )
    )
    links = list(
        session.exec(select(Link).where(col(Link.transfer_id).in_([t.id for t in transfers])))
    )
    own = _OwnIds(
        cases=frozenset(case.id for case in cases),
        documents=frozenset(document.id for document in documents),
        transfers=frozenset(transfer.id for transfer in transfers),
        links=frozenset(link.id for link in links),
        accounts=frozenset(account.id for account in accounts),
    )
    events = _events(session, patient_id=patient_id, own=own)
    actors = _Actors(
        own_accounts=own.accounts,
        roles=_roles(
            session,
            [e.actor_id for e in events if e.actor_kind == ActorKind.USER]
            + [t.created_by for t in transfers],
        ),
    )
    acted = _latest_actors(events, actors)
    return SubjectData(
        schema_version=SCHEMA_VERSION,
        generated_at=now,
        profile=Profile(
            id=patient.id,
            name=identity.name,
            birth_date=identity.birth_date,
            email=identity.email,
            phone=identity.phone,
            sex=identity.sex,
            country=identity.country,
            registered_at=patient.created_at,
            retention_until=retention.identity,
            source=_profile_source(events, patient_id=patient_id),
        ),
        accounts=[_account(session, account, retention=retention) for account in accounts],
        cases=[_case(session, keys, case, retention=retention, acted=acted) for case in cases],
        **_documents(session, keys, documents, cases, retention=retention, acted=acted),
        consents=_consents(session, patient_id=patient_id, retention=retention),
        restrictions=_restrictions(session, patient_id=patient_id, retention=retention),
        surveys=_surveys(session, keys, patient_id=patient_id, cases=cases, retention=retention),
        qa_objection=_objection(session.get(QaObjection, patient_id), retention=retention),
        interest_objection=_objection(
            session.get(InterestObjection, patient_id), retention=retention
        ),
        transfers=_transfers(session, transfers, links, actors=actors, retention=retention),
        rights_requests=_rights_requests(session, patient_id=patient_id),
        exports=_exports(session, patient_id=patient_id),
        processing_log=[
            _processing_event(event, own=own, actors=actors, retention=retention)
            for event in events
        ],
    )


# -- the readers, one per table (or group of tables) -------------------------------------------


def _events(session: Session, *, patient_id: uuid.UUID, own: _OwnIds) -> list[AuditEvent]:
    """Audit events about the patient, their cases or their accounts, or by their accounts."""
    accounts = list(own.accounts)
    statement = (
        select(AuditEvent)
        .where(
            sa.or_(
                col(AuditEvent.patient_id) == patient_id,
                col(AuditEvent.case_id).in_(list(own.cases)),
                col(AuditEvent.user_id).in_(accounts),
                sa.and_(
                    col(AuditEvent.actor_kind) == ActorKind.USER.value,
                    col(AuditEvent.actor_id).in_(accounts),
                ),
            )
        )
        .order_by(col(AuditEvent.seq))
    )
    return list(session.exec(statement))


def _roles(session: Session, user_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, Role]:
    wanted = {user_id for user_id in user_ids if user_id is not None}
    rows = session.exec(select(User.id, User.role).where(col(User.id).in_(wanted)))
    return {user_id: Role(role) for user_id, role in rows}


_ActedKey = tuple[AuditAction, uuid.UUID]


def _latest_actors(events: Sequence[AuditEvent], actors: _Actors) -> dict[_ActedKey, Actor]:
    """Who last did what to which object: an opening of a case, a store of a document, the
    recording of an outcome (only successful events count)."""
    acted: dict[_ActedKey, Actor] = {}
    for event in events:
        if event.outcome != "ok":
            continue
        if event.action == AuditAction.DOCUMENT_STORE and event.document_id is not None:
            acted[(AuditAction.DOCUMENT_STORE, event.document_id)] = actors.of_event(event)
        elif event.action in (AuditAction.CASE_OPEN, AuditAction.CASE_OUTCOME) and event.case_id:
            acted[(AuditAction(event.action), event.case_id)] = actors.of_event(event)
    return acted


def _profile_source(events: Sequence[AuditEvent], *, patient_id: uuid.UUID) -> Source:
    """A coordinator's, if one invited the patient and the patient never corrected the details."""
    mine = [e.action for e in events if e.patient_id == patient_id and e.outcome == "ok"]
    invited = AuditAction.PATIENT_INVITE in mine
    return Source.COORDINATOR if invited and AuditAction.PATIENT_RECTIFY not in mine else Source.YOU


def _account(session: Session, account: User, *, retention: _Retention) -> Account:
    sessions = session.exec(
        select(AuthToken)
        .where(AuthToken.user_id == account.id)
        .order_by(col(AuthToken.created_at), col(AuthToken.id))
    )
    codes = session.exec(
        select(OneTimeToken)
        .where(OneTimeToken.user_id == account.id)
        .order_by(col(OneTimeToken.created_at), col(OneTimeToken.id))
    )
    throttle = session.get(LoginThrottle, account_key(account.login_digest))
    return Account(
        id=account.id,
        role=account.role,
        created_at=account.created_at,
        email_confirmed_at=account.email_confirmed_at,
        disabled_at=account.disabled_at,
        sessions=[
            SessionToken(
                id=token.id,
                kind=token.kind,
                family_id=token.family_id,
                created_at=token.created_at,
                expires_at=token.expires_at,
                revoked_at=token.revoked_at,
            )
            for token in sessions
        ],
        emailed_codes=[
            EmailedCode(
                id=code.id,
                purpose=code.purpose,
                created_at=code.created_at,
                expires_at=code.expires_at,
                used_at=code.used_at,
            )
            for code in codes
        ],
        failed_sign_ins=None
        if throttle is None
        else FailedSignIns(
            failures=throttle.failures,
            window_started_at=throttle.window_started_at,
            last_failure_at=throttle.last_failure_at,
            locked_until=throttle.locked_until,
        ),
        retention_until=retention.identity,
        source=Source.SYSTEM,
    )


def _case(
    session: Session,
    keys: KeyStore,
    case: Case,
    *,
    retention: _Retention,
    acted: dict[_ActedKey, Actor],
) -> CaseRecord:
    gone = case.status in _GONE_STATUSES
    outcome = None if gone else unsafe_case_outcome(session=session, keys=keys, case=case)
    return CaseRecord(
        id=case.id,
        status=case.status,
        opened_at=case.created_at,
        treatment_completed_at=case.treatment_completed_at,
        shredded_at=case.shredded_at,
        legal_hold=(
            LegalHold(reason=case.legal_hold_reason, placed_at=case.legal_hold_at)
            if case.legal_hold_at is not None and case.legal_hold_reason is not None
            else None
        ),
        outcome_recorded_at=case.outcome_recorded_at,
        outcome=None
        if outcome is None
        else Outcome(
            diagnosis_codes=list(outcome.diagnosis_codes),
            result=outcome.result,
            treatment_start=outcome.treatment_start,
            treatment_end=outcome.treatment_end,
            final_invoice_total=outcome.final_invoice_total,
            currency=outcome.currency,
            source=_source_of(acted.get((AuditAction.CASE_OUTCOME, case.id), Actor.SYSTEM)),
        ),
        retention_until=retention.of_case(case.id),
        source=_source_of(acted.get((AuditAction.CASE_OPEN, case.id), Actor.SYSTEM)),
    )


def _documents(
    session: Session,
    keys: KeyStore,
    documents: Sequence[Document],
    cases: Sequence[Case],
    *,
    retention: _Retention,
    acted: dict[_ActedKey, Actor],
) -> dict[str, Any]:
    """``documents`` (still there, numbered for the archive) and ``shredded_documents``."""
    gone_cases = {case.id for case in cases if case.status in _GONE_STATUSES}
    live: list[ExportedDocument] = []
    shredded: list[ShreddedDocument] = []
    for document in documents:
        source = _source_of(acted.get((AuditAction.DOCUMENT_STORE, document.id), Actor.SYSTEM))
        if document.shredded_at is not None or document.case_id in gone_cases:
            shredded.append(
                ShreddedDocument(
                    id=document.id,
                    case_id=document.case_id,
                    kind=document.kind,
                    media_type=document.media_type,
                    size=document.size,
                    stored_at=document.created_at,
                    shredded_at=document.shredded_at,
                    retention_until=None,
                    source=source,
                )
            )
            continue
        filename = unsafe_document_filename(session=session, keys=keys, document=document)
        live.append(
            ExportedDocument(
                id=document.id,
                case_id=document.case_id,
                kind=document.kind,
                media_type=document.media_type,
                size=document.size,
                sha256=document.sha256,
                filename=filename,
                stored_at=document.created_at,
                archive_path=archive_path(len(live) + 1, filename),
                retention_until=retention.of_case(document.case_id),
                source=source,
            )
        )
    return {"documents": live, "shredded_documents": shredded}


def _consents(
    session: Session, *, patient_id: uuid.UUID, retention: _Retention
) -> list[ConsentRecord]:
    consents = session.exec(
        select(Consent)
        .where(Consent.patient_id == patient_id)
        .order_by(col(Consent.given_at), col(Consent.id))
    )
    return [
        ConsentRecord(
            id=consent.id,
            case_id=consent.case_id,
            text_version=consent.text_version,
            text_sha256=consent.text_sha256,
            text=text.text if (text := CONSENT_TEXTS.get(consent.text_version)) else None,
            given_at=consent.given_at,
            withdrawn_at=consent.withdrawn_at,
            retention_until=retention.of_case(consent.case_id),
            source=Source.YOU,
        )
        for consent in consents
    ]


def _restrictions(
    session: Session, *, patient_id: uuid.UUID, retention: _Retention
) -> list[RestrictionRecord]:
    restrictions = session.exec(
        select(Restriction)
        .where(Restriction.patient_id == patient_id)
        .order_by(col(Restriction.placed_at), col(Restriction.id))
    )
    return [
        RestrictionRecord(
            id=restriction.id,
            case_id=restriction.case_id,
            reason=restriction.reason,
            placed_at=restriction.placed_at,
            lifted_at=restriction.lifted_at,
            retention_until=retention.of_case(restriction.case_id),
            source=_RESTRICTION_SOURCES[restriction.reason],
        )
        for restriction in restrictions
    ]


def _surveys(
    session: Session,
    keys: KeyStore,
    *,
    patient_id: uuid.UUID,
    cases: Sequence[Case],
    retention: _Retention,
) -> list[SurveyRecord]:
    gone_cases = {case.id for case in cases if case.status in _GONE_STATUSES}
    surveys = session.exec(
        select(Survey)
        .where(Survey.patient_id == patient_id)
        .order_by(col(Survey.answered_at), col(Survey.id))
    )
    return [
        SurveyRecord(
            id=survey.id,
            case_id=survey.case_id,
            questionnaire_version=survey.version,
            scores=dict(survey.scores),
            comment=None
            if survey.case_id in gone_cases
            else unsafe_survey_free_text(session=session, keys=keys, survey=survey),
            answered_at=survey.answered_at,
            qa_consent=survey.qa_consent,
            qa_consent_withdrawn_at=survey.qa_consent_withdrawn_at,
            retention_until=retention.of_case(survey.case_id),
            source=Source.YOU,
        )
        for survey in surveys
    ]


def _objection(
    objection: QaObjection | InterestObjection | None, *, retention: _Retention
) -> ObjectionRecord | None:
    if objection is None:
        return None
    return ObjectionRecord(
        objected_at=objection.objected_at, retention_until=retention.identity, source=Source.YOU
    )


def _transfers(
    session: Session,
    transfers: Sequence[Transfer],
    links: Sequence[Link],
    *,
    actors: _Actors,
    retention: _Retention,
) -> list[TransferRecord]:
    transfer_ids = [transfer.id for transfer in transfers]
    partners = {
        partner.id: partner
        for partner in session.exec(
            select(Partner).where(col(Partner.id).in_({t.partner_id for t in transfers}))
        )
    }
    sent: dict[uuid.UUID, list[TransferredDocument]] = defaultdict(list)
    for row in session.exec(
        select(TransferDocument)
        .where(col(TransferDocument.transfer_id).in_(transfer_ids))
        .order_by(col(TransferDocument.position))
    ):
        sent[row.transfer_id].append(
            TransferredDocument(document_id=row.document_id, position=row.position)
        )
    link_by_transfer = {link.transfer_id: link for link in links}
    downloads: dict[uuid.UUID, list[LinkDownload]] = defaultdict(list)
    for download in session.exec(
        select(LinkDownload)
        .where(col(LinkDownload.link_id).in_([link.id for link in links]))
        .order_by(col(LinkDownload.at), col(LinkDownload.id))
    ):
        downloads[download.link_id].append(download)
    records = []
    for transfer in transfers:
        kept = retention.of_case(transfer.case_id)
        partner = partners[transfer.partner_id]
        link = link_by_transfer.get(transfer.id)
        records.append(
            TransferRecord(
                id=transfer.id,
                case_id=transfer.case_id,
                recipient=Recipient(id=partner.id, kind=partner.kind, name=partner.name),
                purpose=transfer.purpose,
                legal_basis=transfer.legal_basis,
                consent_id=transfer.consent_id,
                documents=sent[transfer.id],
                sent_at=transfer.created_at,
                revoked_at=transfer.revoked_at,
                link=None if link is None else _link(link, downloads[link.id], retention=kept),
                retention_until=kept,
                source=_source_of(actors.of_user(transfer.created_by)),
            )
        )
    return records


def _link(
    link: Link, downloads: Sequence[LinkDownload], *, retention: datetime | None
) -> LinkRecord:
    return LinkRecord(
        id=link.id,
        issued_at=link.created_at,
        expires_at=link.expires_at,
        max_downloads=link.max_downloads,
        downloads_used=link.downloads,
        max_code_attempts=link.max_code_attempts,
        failed_codes=link.failed_codes,
        locked_at=link.locked_at,
        downloads=[
            DownloadRecord(
                id=download.id,
                document_id=download.document_id,
                at=download.at,
                retention_until=retention,
                source=Source.PARTNER,
            )
            for download in downloads
        ],
    )


def _rights_requests(session: Session, *, patient_id: uuid.UUID) -> list[RightsRequestRecord]:
    requests = list(
        session.exec(
            select(RightsRequest)
            .where(RightsRequest.patient_id == patient_id)
            .order_by(col(RightsRequest.received_at), col(RightsRequest.id))
        )
    )
    request_ids = [request.id for request in requests]
    retained: dict[uuid.UUID, list[RetainedRecord]] = defaultdict(list)
    for part in session.exec(
        select(RetainedPart)
        .where(col(RetainedPart.request_id).in_(request_ids))
        .order_by(col(RetainedPart.case_id))
    ):
        retained[part.request_id].append(
            RetainedRecord(
                case_id=part.case_id, ground=part.ground, reason=part.reason, until=part.until
            )
        )
    erased: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for request_id, case_id in session.exec(
        select(ErasedCase.request_id, ErasedCase.case_id)
        .where(col(ErasedCase.request_id).in_(request_ids))
        .order_by(col(ErasedCase.case_id))
    ):
        erased[request_id].append(case_id)
    return [
        RightsRequestRecord(
            id=request.id,
            right=request.right,
            status=request.status,
            received_at=request.received_at,
            due_at=request.due_at,
            completed_at=request.completed_at,
            erased_case_ids=erased[request.id],
            retained=retained[request.id],
            retention_until=None,
            source=Source.YOU,
        )
        for request in requests
    ]


def _exports(session: Session, *, patient_id: uuid.UUID) -> list[ExportRecord]:
    exports = session.exec(
        select(SubjectExport)
        .where(SubjectExport.patient_id == patient_id)
        .order_by(col(SubjectExport.created_at), col(SubjectExport.id))
    )
    return [
        ExportRecord(
            id=export.id,
            request_id=export.request_id,
            status=export.status,
            size=export.size,
            created_at=export.created_at,
            started_at=export.started_at,
            ready_at=export.ready_at,
            expires_at=export.expires_at,
            deleted_at=export.deleted_at,
            retention_until=export.expires_at,
            source=Source.SYSTEM,
        )
        for export in exports
    ]


def _processing_event(
    event: AuditEvent, *, own: _OwnIds, actors: _Actors, retention: _Retention
) -> ProcessingEvent:
    """An audit event as its patient sees it: ids of objects not theirs are left out."""
    case_id = _own_or_none(event.case_id, own.cases)
    return ProcessingEvent(
        seq=event.seq,
        at=event.at,
        action=event.action,
        actor=actors.of_event(event),
        outcome=event.outcome,
        case_id=case_id,
        document_id=_own_or_none(event.document_id, own.documents),
        transfer_id=_own_or_none(event.transfer_id, own.transfers),
        link_id=_own_or_none(event.link_id, own.links),
        partner_id=event.partner_id,
        account_id=_own_or_none(event.user_id, own.accounts),
        legal_basis=event.legal_basis,
        purpose=event.purpose,
        retention_until=None if case_id is None else retention.of_case(case_id),
        source=Source.SYSTEM,
    )


def _own_or_none(value: uuid.UUID | None, own: frozenset[uuid.UUID]) -> uuid.UUID | None:
    return value if value in own else None
