"""The storage sweep: deletes objects no row owns and what unfinished uploads left behind.

Every writer puts its object first and records it in the database after (a document's row, an
extract's or export's keys), and removes the object again when the record fails. A process that
dies in between, a store that fails that clean-up too, or a commit whose answer never arrived
(the row may exist: the object must stay) leaves an object that nothing points to: encrypted
data nobody can reach, but personal data all the same. This sweep finds and deletes them.

What owns an object, by prefix (the keys are made by ``vault.documents.service.object_key_for``,
``vault.extracts.service`` and ``vault.subject_rights.exports``):

``cases/<case>/<document>``
    a document row with this ``object_key`` that is not shredded.
``extracts/<extract>/<build>/data.<format>``
    the extract's row: ready, with this key as its Parquet or CSV key; or requested/building
    with ``build_id`` = ``<build>`` (a build writing right now).
``exports/<export>/<build>/archive.zip``
    the export's row: ready with this ``object_key``; or pending with ``build_id`` = ``<build>``.

Anything else under these prefixes that was last written before the grace period is an orphan.
A key that does not have the expected shape is left alone (not ours to judge), and so is
everything outside these prefixes (audit checkpoints have no row by design). The grace period
spares an upload in flight: its object exists a little before its row. Objects are listed
before rows are read, so a row committed meanwhile is seen.

Then the store drops what uploads that never finished left: S3 multipart uploads, local temp
files, started before the same grace period.

One ``storage.sweep`` audit event (no ids: the objects had no row to name) is appended when
the sweep deleted or aborted anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from sqlmodel import Session, col, select

from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.clock import as_utc
from vault.documents.models import Document
from vault.errors import StorageUnavailable
from vault.extracts.models import Extract, ExtractStatus
from vault.storage.interfaces import BlobStore, ListedObject
from vault.subject_rights.models import ExportStatus, SubjectExport

DOCUMENTS_PREFIX = "cases/"
EXTRACTS_PREFIX = "extracts/"
EXPORTS_PREFIX = "exports/"
SWEPT_PREFIXES = (DOCUMENTS_PREFIX, EXTRACTS_PREFIX, EXPORTS_PREFIX)
# Longer than any upload or build takes to record its object (a 512 MiB upload on a slow link
# takes minutes; S3 dates a multipart object from when its upload began). AWS's own lifecycle
# rule for incomplete multipart uploads counts in days, one at the least.
DEFAULT_GRACE = timedelta(hours=24)
BATCH_SIZE = 500  # keys looked up in one query

_BUILDING_EXTRACT = frozenset({ExtractStatus.REQUESTED, ExtractStatus.BUILDING})


@dataclass(frozen=True)
class StorageSweepReport:
    """Counts only: never keys (they hold case and document ids)."""

    objects_checked: int  # listed under the swept prefixes
    orphans_found: int  # no row owns them and they are older than the grace period
    orphans_deleted: int  # 0 on a dry run
    uploads_aborted: int  # multipart uploads / temp files removed (0 on a dry run)
    dry_run: bool = False


def sweep_storage(
    *,
    sessions: Callable[[], Session],
    store: BlobStore,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    audit: AuditContext = AuditContext.SYSTEM,
) -> StorageSweepReport:
    """Delete orphaned objects and abort stale uploads (see the module doc); idempotent.

    ``grace`` below the time an upload takes would delete uploads in flight: 0 is for tests of
    a quiet installation only. Raises StorageUnavailable when the store fails (what was deleted
    until then is recorded first), AuditUnavailable when the event cannot be written.
    """
    if grace < timedelta(0):
        raise ValueError("grace must not be negative")
    cutoff = now - grace
    checked = found = deleted = 0
    failure: StorageUnavailable | None = None
    try:
        for prefix in SWEPT_PREFIXES:
            for batch in _batches(store.listing(prefix), BATCH_SIZE):
                checked += len(batch)
                old = [listed.key for listed in batch if as_utc(listed.modified_at) < cutoff]
                owned = _owned(sessions, prefix, old)
                orphans = [key for key in old if key not in owned]
                found += len(orphans)
                for key in orphans if not dry_run else ():
                    store.delete(key)
                    deleted += 1
        aborted = 0 if dry_run else store.abort_incomplete_uploads(older_than=cutoff)
    except StorageUnavailable as error:
        failure, aborted = error, 0
    if deleted or aborted:
        with sessions() as session:
            append_event(session, context=audit, action=AuditAction.STORAGE_SWEEP, now=now)
            session.commit()
    if failure is not None:
        raise failure
    return StorageSweepReport(
        objects_checked=checked,
        orphans_found=found,
        orphans_deleted=deleted,
        uploads_aborted=aborted,
        dry_run=dry_run,
    )


def _batches(listed: Iterable[ListedObject], size: int) -> Iterator[list[ListedObject]]:
    iterator = iter(listed)
    while batch := list(islice(iterator, size)):
        yield batch


def _owned(sessions: Callable[[], Session], prefix: str, keys: list[str]) -> set[str]:
    """Those of ``keys`` (all under ``prefix``) that a row owns; a key of an unexpected shape
    counts as owned, so that it is never deleted."""
    if not keys:
        return set()
    with sessions() as session:
        try:
            if prefix == DOCUMENTS_PREFIX:
                return _owned_documents(session, keys)
            if prefix == EXTRACTS_PREFIX:
                return _owned_extract_objects(session, keys)
            return _owned_export_objects(session, keys)
        finally:
            session.rollback()  # read only: end the transaction before the deletes


def _owned_documents(session: Session, keys: list[str]) -> set[str]:
    return set(
        session.exec(
            select(col(Document.object_key)).where(
                col(Document.object_key).in_(keys), col(Document.shredded_at).is_(None)
            )
        )
    )


def _owned_extract_objects(session: Session, keys: list[str]) -> set[str]:
    parsed = _parsed(keys)
    wanted = {ids[0] for ids in parsed.values() if ids is not None}
    rows = {row.id: row for row in session.exec(select(Extract).where(col(Extract.id).in_(wanted)))}

    def owns(key: str, extract: Extract | None, build_id: uuid.UUID) -> bool:
        if extract is None:
            return False
        if extract.status is ExtractStatus.READY:
            return key in (extract.parquet_key, extract.csv_key)
        return extract.status in _BUILDING_EXTRACT and extract.build_id == build_id

    return {
        key for key, ids in parsed.items() if ids is None or owns(key, rows.get(ids[0]), ids[1])
    }


def _owned_export_objects(session: Session, keys: list[str]) -> set[str]:
    parsed = _parsed(keys)
    wanted = {ids[0] for ids in parsed.values() if ids is not None}
    rows = {
        row.id: row
        for row in session.exec(select(SubjectExport).where(col(SubjectExport.id).in_(wanted)))
    }

    def owns(key: str, export: SubjectExport | None, build_id: uuid.UUID) -> bool:
        if export is None:
            return False
        if export.status is ExportStatus.READY:
            return key == export.object_key
        return export.status is ExportStatus.PENDING and export.build_id == build_id

    return {
        key for key, ids in parsed.items() if ids is None or owns(key, rows.get(ids[0]), ids[1])
    }


def _parsed(keys: list[str]) -> dict[str, tuple[uuid.UUID, uuid.UUID] | None]:
    """Each ``<prefix>/<row id>/<build id>/<file>`` key's two ids; None for another shape (a
    key this sweep does not know how to judge, so it is left alone)."""
    parsed: dict[str, tuple[uuid.UUID, uuid.UUID] | None] = {}
    for key in keys:
        parts = key.split("/")
        try:
            parsed[key] = (uuid.UUID(parts[1]), uuid.UUID(parts[2])) if len(parts) == 4 else None
        except ValueError:
            parsed[key] = None
    return parsed
