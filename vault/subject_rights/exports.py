"""Access (Art. 15) and portability (Art. 20) exports: request, build (a worker), read, signed
download links, and deletion after a few days.

The patient asks (``request_export``): the request is opened in the register and a pending
export recorded in one transaction; the caller enqueues the build after that commit. The build
(``build_export``) collects everything held about the patient
(``vault.subject_rights.export_data``), streams a ZIP (``vault.subject_rights.archive``) of it
and of every document, decrypted, through the envelope encryptor under a key of the export's own
(kind ``export``) into ONE object, then marks the export ready and closes the request.

Building is idempotent and kill-safe, like QA extracts: every (re)delivery claims the row with a
new ``build_id``, which names its object and is its envelope object id; only the build that
still owns the row when it finishes commits, and it then deletes whatever older builds left.
A document that vanishes while a build runs (its case shredded) starts the build over, so the
archive never describes a document it does not hold.

Downloads go through a link signed with HMAC-SHA256 under the service's export link key over
the export id and the link's expiry (unix seconds): nothing to store, nothing to revoke but the
export itself. Deleting an export destroys its key first (crypto-shredding: from then on the
archive is unreadable, backups included), then removes its object; a deleted export keeps
``object_key`` until the object is gone, so the sweep finishes what a failed delete left.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from keys import errors as key_errors
from keys.models import KeyKind
from keys.store import KeyStore
from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.clock import as_utc
from vault.crypto.envelope import EnvelopeEncryptor, decrypt
from vault.crypto.primitives import constant_time_equal, hmac_sha256
from vault.documents.service import read_document
from vault.errors import (
    DecryptionFailed,
    ExportExpired,
    ExportLinkExpired,
    ExportLinkInvalid,
    ExportNotReady,
    ExportPending,
    Gone,
    KeyDestroyed,
    NotFound,
    StorageUnavailable,
)
from vault.keyring import translated_key_errors
from vault.patients.models import Patient
from vault.storage.interfaces import BlobStore
from vault.subject_rights.archive import archive_chunks
from vault.subject_rights.erased import ERASURE_REASON
from vault.subject_rights.export_data import (
    ExportedDocument,
    unsafe_collect_subject_data,
)
from vault.subject_rights.fhir import fhir_bundle
from vault.subject_rights.models import (
    ExportStatus,
    RequestStatus,
    Right,
    RightsRequest,
    SubjectExport,
)
from vault.subject_rights.requests import close_request, open_request

EXPORT_RIGHTS = (Right.ACCESS, Right.PORTABILITY)
DEFAULT_STALE_AFTER = timedelta(minutes=30)
MAX_LIST = 100
EXPIRY_REASON = "expiry"
FAILED_REASON = "export-failed"
LINK_LABEL = b"medvault export link v1\x00"
SIGNATURE_BYTES = 32
MAX_EXPIRES = 2**40  # unix seconds, far beyond any real link; keeps the signed integer small
# A document that vanishes mid-build starts the build over, at most this many times.
_MAX_PASSES = 3


@dataclass(frozen=True)
class PatientExport:
    """An export with the request it answers (which right, when it is due)."""

    export: SubjectExport
    request: RightsRequest


@dataclass(frozen=True)
class ExportLink:
    """A signed download link: its parts; the API turns them into a URL."""

    export_id: uuid.UUID
    expires: int  # unix seconds
    signature: str  # hex

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires, UTC)


@dataclass(frozen=True)
class ExportDownload:
    """A ready export's archive, decrypted as it streams (plaintext: never log it)."""

    export_id: uuid.UUID
    size: int
    chunks: Iterator[bytes]


def export_prefix(export_id: uuid.UUID) -> str:
    return f"exports/{export_id}/"


# -- requesting and reading --------------------------------------------------------------------


def request_export(
    *,
    session: Session,
    patient_id: uuid.UUID,
    right: Right,
    now: datetime,
    audit: AuditContext,
) -> PatientExport:
    """Open an access or portability request with its pending export; commits (the caller
    enqueues the build after this). One pending export per patient: ExportPending otherwise."""
    if right not in EXPORT_RIGHTS:
        raise ValueError(f"an export answers {[r.value for r in EXPORT_RIGHTS]}")
    pending = session.exec(
        select(SubjectExport.id).where(
            SubjectExport.patient_id == patient_id,
            SubjectExport.status == ExportStatus.PENDING,
        )
    ).first()
    if pending is not None:
        raise ExportPending("your previous export is still being built: wait for it")
    request = open_request(session, patient_id=patient_id, right=right, now=now, audit=audit)
    export = SubjectExport(request_id=request.id, patient_id=patient_id, created_at=now)
    session.add(export)
    try:
        session.flush()
    except IntegrityError:  # another request of the patient's won the race
        session.rollback()
        raise ExportPending("your previous export is still being built: wait for it") from None
    session.commit()
    return PatientExport(export=export, request=request)


def list_exports(
    *, session: Session, patient_id: uuid.UUID, now: datetime, audit: AuditContext
) -> list[PatientExport]:
    """The patient's exports, newest first (deleted ones too: they say when they went)."""
    rows = session.exec(
        select(SubjectExport, RightsRequest)
        .join(RightsRequest, col(RightsRequest.id) == col(SubjectExport.request_id))
        .where(SubjectExport.patient_id == patient_id)
        .order_by(col(SubjectExport.created_at).desc(), col(SubjectExport.id))
        .limit(MAX_LIST)
    ).all()
    append_event(
        session, context=audit, action=AuditAction.RIGHTS_LIST, now=now, patient_id=patient_id
    )
    session.commit()
    return [PatientExport(export=export, request=request) for export, request in rows]


def read_export(
    *,
    session: Session,
    export_id: uuid.UUID,
    patient_id: uuid.UUID,
    now: datetime,
    audit: AuditContext,
) -> PatientExport:
    """One of the patient's own exports; another's answers NotFound (denial recorded)."""
    found = _own_export(session, export_id, patient_id, AuditAction.RIGHTS_LIST, now, audit)
    _event(session, audit, AuditAction.RIGHTS_LIST, found, now)
    session.commit()
    return found


def issue_export_link(
    *,
    session: Session,
    link_key: bytes,
    export_id: uuid.UUID,
    patient_id: uuid.UUID,
    ttl: timedelta,
    now: datetime,
    audit: AuditContext,
) -> ExportLink:
    """A download link for one of the patient's ready exports, valid ``ttl`` (never past the
    export's own deletion). Commits its event."""
    found = _own_export(session, export_id, patient_id, AuditAction.EXPORT_LINK, now, audit)
    export = found.export
    ready = _require_ready(export, now)
    expires = int(min(now + ttl, ready.expires_at).timestamp())
    _event(session, audit, AuditAction.EXPORT_LINK, found, now)
    session.commit()
    return ExportLink(
        export_id=export_id, expires=expires, signature=link_signature(link_key, export_id, expires)
    )


def link_signature(link_key: bytes, export_id: uuid.UUID, expires: int) -> str:
    """HMAC-SHA256 under the link key over a label, the export id and the expiry, in hex."""
    if not 0 <= expires < MAX_EXPIRES:
        raise ValueError("expiry out of range")
    return hmac_sha256(link_key, _signed(export_id, expires)).hex()


def open_export_download(
    *,
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    link_key: bytes,
    export_id: uuid.UUID,
    expires: int,
    signature: str,
    now: datetime,
    audit: AuditContext,
) -> ExportDownload:
    """The decrypted archive behind a signed link; the download event is committed before the
    first byte is handed out (fail closed).

    Checks, in this order: the signature (ExportLinkInvalid, 403, the same for any mistake and
    for an unknown export, so a link reveals nothing it was not made for), the link's expiry
    (ExportLinkExpired, 410), the export still there and ready, its patient not erased
    (ExportExpired, 410), its archive readable (ExportExpired if its key or object is gone).
    """
    if not _signature_valid(link_key, export_id, expires, signature):
        raise ExportLinkInvalid("this download link is not valid")
    if expires <= now.timestamp():
        raise ExportLinkExpired("this download link has expired: ask for a new one")
    export = session.get(SubjectExport, export_id)
    if export is None:
        raise ExportLinkInvalid("this download link is not valid")
    request = _request_of(session, export)
    ready = _require_ready(export, now)
    patient = session.get(Patient, export.patient_id)
    if patient is None or patient.erased_at is not None:
        raise ExportExpired("this export was deleted with your data")
    try:
        with translated_key_errors():
            export_key = keys.unsafe_key_material(session, ready.key_id)
        chunks = _primed(
            decrypt(
                _stored(store, ready.object_key),
                case_key=export_key,
                key_id=ready.key_id,
                object_id=ready.build_id,
            )
        )
    except KeyDestroyed:
        raise ExportExpired("this export was deleted") from None
    _event(session, audit, AuditAction.EXPORT_DOWNLOAD, PatientExport(export, request), now)
    session.commit()
    # Nothing of the row is touched after the commit: on SQLite a new transaction would hold
    # the write lock for as long as the download streams.
    return ExportDownload(export_id=export_id, size=ready.size, chunks=chunks)


# -- building ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What a build needs from the export row, read once when it claims the row."""

    export_id: uuid.UUID
    build_id: uuid.UUID
    request_id: uuid.UUID
    patient_id: uuid.UUID
    right: Right
    key_id: uuid.UUID

    @property
    def object_key(self) -> str:
        return f"{export_prefix(self.export_id)}{self.build_id}/archive.zip"


class _SourceChanged(Exception):
    """A document vanished while the archive was being written: build again."""


def build_export(
    *,
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    export_id: uuid.UUID,
    retention_years: int,
    export_retention: timedelta,
    frame_size: int,
    now: datetime,
) -> ExportStatus:
    """Build a pending export; returns its status afterwards. Safe to run again at any time.

    A ready, failed or deleted export is left alone. StorageUnavailable and KmsUnavailable
    propagate (the task retries; the row stays pending for the sweep). An integrity failure, an
    erased patient or documents that keep vanishing mark the export and its request failed; its
    key is then destroyed and its objects removed.
    """
    plan = _claim(sessions, keys, export_id, now)
    if plan is None:
        with sessions() as session:
            return _get(session, export_id).status
    size: int | None = None
    try:
        for _ in range(_MAX_PASSES):
            try:
                size = _write_archive(
                    sessions, store, keys, plan, retention_years, export_retention, frame_size, now
                )
                break
            except _SourceChanged:
                continue
    except (DecryptionFailed, KeyDestroyed, NotFound):
        size = None
    return _finish(sessions, store, keys, plan, now=now, retention=export_retention, size=size)


def _claim(
    sessions: Callable[[], Session], keys: KeyStore, export_id: uuid.UUID, now: datetime
) -> _Plan | None:
    """Take the row over with a new build id (compare-and-swap); None if it needs no build.

    The export's key is made by the first claim and kept by later ones: a second key made by a
    claim that loses the race is rolled back with it.
    """
    build_id = uuid.uuid4()
    with sessions() as session:
        export = _get(session, export_id)
        if export.status is not ExportStatus.PENDING:
            return None
        request = _request_of(session, export)
        key_id = export.key_id
        same_key = col(SubjectExport.key_id) == key_id
        if key_id is None:
            with translated_key_errors():
                key_id = keys.create_key(session, kind=KeyKind.EXPORT, now=now)
            same_key = col(SubjectExport.key_id).is_(None)
        claimed = session.execute(
            sa.update(SubjectExport)
            .where(
                col(SubjectExport.id) == export_id,
                col(SubjectExport.status) == ExportStatus.PENDING,
                same_key,
            )
            .values(key_id=key_id, build_id=build_id, started_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            session.rollback()
            return None
        session.commit()
        return _Plan(
            export_id=export.id,
            build_id=build_id,
            request_id=request.id,
            patient_id=export.patient_id,
            right=request.right,
            key_id=key_id,
        )


def _write_archive(
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    plan: _Plan,
    retention_years: int,
    export_retention: timedelta,
    frame_size: int,
    now: datetime,
) -> int:
    """Collect, then stream the archive into the store; its plaintext size once it is there."""
    with sessions() as session, translated_key_errors():
        export_key = keys.unsafe_key_material(session, plan.key_id)
        data = unsafe_collect_subject_data(
            session=session,
            keys=keys,
            patient_id=plan.patient_id,
            retention_years=retention_years,
            now=now,
        )
    fhir = fhir_bundle(data) if plan.right is Right.PORTABILITY else None
    archive = _Counted(
        archive_chunks(
            data=data,
            right=plan.right,
            fhir=fhir,
            open_document=lambda document: _document_chunks(
                sessions, store, keys, plan, document, now
            ),
            kept_for=export_retention,
            now=now,
        )
    )
    encryptor = EnvelopeEncryptor(
        case_key=export_key, key_id=plan.key_id, object_id=plan.build_id, frame_size=frame_size
    )
    try:
        store.put(plan.object_key, encryptor.encrypt(archive))
    except Gone:  # a document, its object or its case key (KeyDestroyed) went meanwhile
        raise _SourceChanged() from None
    return archive.size


def _document_chunks(
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    plan: _Plan,
    document: ExportedDocument,
    now: datetime,
) -> Iterator[bytes]:
    """One document's plaintext, read as the patient's own (the read is audited as the system's
    on their behalf); a document shredded since the data was collected raises Gone."""
    with sessions() as session:
        stream = read_document(
            session=session,
            store=store,
            keys=keys,
            document_id=document.id,
            now=now,
            audit=AuditContext.SYSTEM,
            patient_id=plan.patient_id,
        )
    return stream.chunks


def _finish(
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    plan: _Plan,
    *,
    now: datetime,
    retention: timedelta,
    size: int | None,
) -> ExportStatus:
    """Commit the outcome if this build still owns the row; then tidy the objects up."""
    ready = size is not None
    values: dict[str, Any] = {"status": ExportStatus.READY if ready else ExportStatus.FAILED}
    if ready:
        values |= {
            "object_key": plan.object_key,
            "size": size,
            "ready_at": now,
            "expires_at": now + retention,
        }
    with sessions() as session:
        won = session.execute(
            sa.update(SubjectExport)
            .where(
                col(SubjectExport.id) == plan.export_id,
                col(SubjectExport.build_id) == plan.build_id,
                col(SubjectExport.status) == ExportStatus.PENDING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(won, "rowcount", 0) == 1:
            export = _get(session, plan.export_id)
            found = PatientExport(export, _request_of(session, export))
            close_request(
                session,
                found.request,
                status=RequestStatus.COMPLETED if ready else RequestStatus.FAILED,
                now=now,
                audit=AuditContext.SYSTEM,
            )
            outcome = "ok" if ready else "refused"
            _event(
                session, AuditContext.SYSTEM, AuditAction.EXPORT_BUILD, found, now, outcome=outcome
            )
            if not ready:
                with translated_key_errors():
                    keys.destroy(session, plan.key_id, reason=FAILED_REASON, now=now)
        session.commit()
        current = _get(session, plan.export_id)
        final_status = current.status
        keep = {current.object_key} if final_status is ExportStatus.READY else set()
    # Objects of older builds (killed, or overtaken), and ours if we lost or failed.
    for key in list(store.keys(export_prefix(plan.export_id))):
        if key not in keep and (key == plan.object_key or final_status is not ExportStatus.PENDING):
            store.delete(key)
    if final_status is ExportStatus.DELETED:
        _forget_objects(sessions, plan.export_id)
    return final_status


class _Counted:
    """Passes chunks through, counting their bytes."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.size += len(chunk)
            yield chunk


# -- sweeping and deleting ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSweepReport:
    requeue: tuple[uuid.UUID, ...]  # pending exports whose build seems lost: send it again
    deleted: int  # exports past their few days, deleted by this sweep


def sweep_exports(
    *,
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    now: datetime,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> ExportSweepReport:
    """Delete exports past their expiry, remove objects a deletion left behind, and find
    builds to send again (never claimed, or claimed long ago by a build that died)."""
    cutoff = now - stale_after
    with sessions() as session:
        stale = session.exec(
            select(SubjectExport.id).where(
                SubjectExport.status == ExportStatus.PENDING,
                sa.func.coalesce(col(SubjectExport.started_at), col(SubjectExport.created_at))
                < cutoff,
            )
        ).all()
        expired = session.exec(
            select(SubjectExport.id).where(
                SubjectExport.status == ExportStatus.READY, col(SubjectExport.expires_at) <= now
            )
        ).all()
        leftovers = session.exec(
            select(SubjectExport.id).where(
                SubjectExport.status == ExportStatus.DELETED,
                col(SubjectExport.object_key).is_not(None),
            )
        ).all()
        session.rollback()
    for export_id in expired:
        delete_export(sessions=sessions, store=store, keys=keys, export_id=export_id, now=now)
    for export_id in leftovers:
        remove_export_objects(sessions=sessions, store=store, export_id=export_id)
    return ExportSweepReport(requeue=tuple(stale), deleted=len(expired))


def delete_export(
    *,
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    export_id: uuid.UUID,
    now: datetime,
    reason: str = EXPIRY_REASON,
) -> None:
    """Destroy the export's key and mark it deleted (committed with its event), then remove its
    objects. Idempotent."""
    with sessions() as session:
        export = _get(session, export_id)
        if export.status is not ExportStatus.DELETED:
            _mark_deleted(session, keys, export, now=now, reason=reason)
            session.commit()
    remove_export_objects(sessions=sessions, store=store, export_id=export_id)


def delete_exports_of_patient(
    *,
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    patient_id: uuid.UUID,
    now: datetime,
) -> int:
    """Delete every export of a patient whatever its state (an erasure); flushes, the caller
    commits. Returns how many were deleted by this call.

    Keys are destroyed and rows marked first; the objects, unreadable from then on, are removed
    after that, best effort: one the store fails to remove keeps its ``object_key`` for the
    sweep. (Should the caller roll back, the exports keep their keys but may have lost their
    objects: they then answer 410 and the patient asks again; no plaintext is ever exposed.)
    """
    exports = session.exec(
        select(SubjectExport).where(
            SubjectExport.patient_id == patient_id,
            SubjectExport.status != ExportStatus.DELETED,
        )
    ).all()
    for export in exports:
        _mark_deleted(session, keys, export, now=now, reason=ERASURE_REASON)
    session.flush()
    for export in session.exec(
        select(SubjectExport).where(
            SubjectExport.patient_id == patient_id,
            col(SubjectExport.object_key).is_not(None),
        )
    ).all():
        with suppress(StorageUnavailable):
            for key in list(store.keys(export_prefix(export.id))):
                store.delete(key)
            export.object_key = None
            session.add(export)
    session.flush()
    return len(exports)


def remove_export_objects(
    *, sessions: Callable[[], Session], store: BlobStore, export_id: uuid.UUID
) -> None:
    """Remove the objects of a deleted export and note they are gone. Idempotent."""
    with sessions() as session:
        if _get(session, export_id).status is not ExportStatus.DELETED:
            return
    for key in list(store.keys(export_prefix(export_id))):
        store.delete(key)
    _forget_objects(sessions, export_id)


def _forget_objects(sessions: Callable[[], Session], export_id: uuid.UUID) -> None:
    with sessions() as session:
        session.execute(
            sa.update(SubjectExport)
            .where(
                col(SubjectExport.id) == export_id,
                col(SubjectExport.status) == ExportStatus.DELETED,
            )
            .values(object_key=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()


def _mark_deleted(
    session: Session, keys: KeyStore, export: SubjectExport, *, now: datetime, reason: str
) -> None:
    """Destroy the key, mark the row deleted, close a request still open, append the event."""
    request = _request_of(session, export)
    if export.key_id is not None:
        # A key that does not exist (a row restored without its key) needs no destroying.
        with translated_key_errors(), suppress(key_errors.KeyNotFound):
            keys.destroy(session, export.key_id, reason=reason, now=now)
    export.status = ExportStatus.DELETED
    export.deleted_at = now
    session.add(export)
    # A pending export deleted (with its patient's data) never answered its request.
    close_request(session, request, status=RequestStatus.FAILED, now=now, audit=AuditContext.SYSTEM)
    found = PatientExport(export, request)
    _event(session, AuditContext.SYSTEM, AuditAction.EXPORT_DELETE, found, now)


# -- helpers -----------------------------------------------------------------------------------


def _get(session: Session, export_id: uuid.UUID) -> SubjectExport:
    export = session.get(SubjectExport, export_id, populate_existing=True)
    if export is None:
        raise NotFound("no such export")
    return export


def _request_of(session: Session, export: SubjectExport) -> RightsRequest:
    request = session.get(RightsRequest, export.request_id)
    if request is None:
        raise NotFound("no such request")
    return request


def _own_export(
    session: Session,
    export_id: uuid.UUID,
    patient_id: uuid.UUID,
    action: AuditAction,
    now: datetime,
    audit: AuditContext,
) -> PatientExport:
    """The export if it is the patient's; NotFound otherwise (a denial committed first)."""
    export = session.get(SubjectExport, export_id)
    if export is not None and export.patient_id == patient_id:
        return PatientExport(export, _request_of(session, export))
    if export is not None:
        append_event(
            session,
            context=audit,
            action=action,
            now=now,
            outcome="denied",
            patient_id=patient_id,
            document_id=export_id,
        )
        session.commit()
    raise NotFound("no such export")


@dataclass(frozen=True)
class _Ready:
    """The columns a ready export always has, typed as present."""

    key_id: uuid.UUID
    build_id: uuid.UUID
    object_key: str
    size: int
    expires_at: datetime


def _require_ready(export: SubjectExport, now: datetime) -> _Ready:
    expired = export.expires_at is not None and as_utc(export.expires_at) <= now
    if export.status is ExportStatus.DELETED or (export.status is ExportStatus.READY and expired):
        raise ExportExpired("this export was deleted: ask for a new one")
    if export.status is ExportStatus.FAILED:
        raise ExportNotReady("this export could not be built: ask for a new one")
    if (
        export.status is not ExportStatus.READY
        or export.key_id is None
        or export.build_id is None
        or export.object_key is None
        or export.size is None
        or export.expires_at is None
    ):
        raise ExportNotReady("this export is still being built")
    return _Ready(
        key_id=export.key_id,
        build_id=export.build_id,
        object_key=export.object_key,
        size=export.size,
        expires_at=as_utc(export.expires_at),
    )


def _signed(export_id: uuid.UUID, expires: int) -> bytes:
    return LINK_LABEL + export_id.bytes + expires.to_bytes(8, "big")


def _signature_valid(link_key: bytes, export_id: uuid.UUID, expires: int, signature: str) -> bool:
    try:
        tag = bytes.fromhex(signature)
    except ValueError:
        return False
    if len(tag) != SIGNATURE_BYTES or not 0 <= expires < MAX_EXPIRES:
        return False
    return constant_time_equal(hmac_sha256(link_key, _signed(export_id, expires)), tag)


def _stored(store: BlobStore, object_key: str) -> Iterator[bytes]:
    try:
        yield from store.open(object_key)
    except NotFound:
        raise ExportExpired("this export was deleted") from None


def _primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Pull the first chunk now, so that integrity, key and storage errors surface before the
    download is recorded and the response starts."""
    first = next(chunks, None)
    return chain(() if first is None else (first,), chunks)


def _event(
    session: Session,
    audit: AuditContext,
    action: AuditAction,
    found: PatientExport,
    now: datetime,
    *,
    outcome: str = "ok",
) -> None:
    # The audit chain has no export column: an export is a stored object, so its id is
    # recorded as the document id (as for QA extracts), the right it answers as the purpose.
    append_event(
        session,
        context=audit,
        action=action,
        now=now,
        outcome=outcome,
        patient_id=found.export.patient_id,
        document_id=found.export.id,
        purpose=found.request.right.value,
    )
