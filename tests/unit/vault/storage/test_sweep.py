"""The storage sweep over the local folder store, on SQLite and PostgreSQL: what it deletes
(objects no row owns, older than the grace period; temp files of dead uploads), what it spares
(owned objects, young ones, builds in progress, keys it does not know), its audit event and
its dry run. The same sweep on S3 (moto), with multipart uploads: integration/test_storage_sweep.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from infra.db import session_factory
from tests.factories import NOW, Vault, local_vault, make_case, make_patient, png_bytes
from vault.audit.checkpoints import CHECKPOINT_PREFIX
from vault.audit.models import AuditEvent
from vault.clock import utcnow
from vault.documents.models import Document
from vault.documents.service import object_key_for
from vault.errors import StorageUnavailable
from vault.extracts.models import Extract, ExtractStatus
from vault.extracts.service import extract_prefix
from vault.storage.local import LocalFolderBlobStore
from vault.storage.sweep import (
    DEFAULT_GRACE,
    DOCUMENTS_PREFIX,
    EXPORTS_PREFIX,
    EXTRACTS_PREFIX,
    StorageSweepReport,
    sweep_storage,
)
from vault.subject_rights.exports import export_prefix
from vault.subject_rights.models import ExportStatus, Right, RightsRequest, SubjectExport

LATER = timedelta(days=2)  # sweeping this long after the writes makes every object "old"


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


@pytest.fixture
def store(vault: Vault) -> LocalFolderBlobStore:
    assert isinstance(vault.store, LocalFolderBlobStore)
    return vault.store


@pytest.fixture
def sessions(engine: sa.Engine, session: Session) -> Callable[[], Session]:
    factory = session_factory(engine)

    def new_session() -> Session:
        session.commit()  # on SQLite the test's own session must not hold the write lock
        return factory()

    return new_session


def sweep(
    sessions: Callable[[], Session], store: LocalFolderBlobStore, **options: object
) -> StorageSweepReport:
    now = options.pop("now", utcnow() + LATER)
    return sweep_storage(sessions=sessions, store=store, now=now, **options)  # type: ignore[arg-type]


def put(store: LocalFolderBlobStore, key: str, *, modified: datetime | None = None) -> str:
    store.put(key, [b"ciphertext"])
    if modified is not None:
        path = store.root / "objects" / key
        os.utime(path, (modified.timestamp(), modified.timestamp()))
    return key


def sweep_events(session: Session) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == "storage.sweep")))


# -- documents ---------------------------------------------------------------------------------


def test_an_object_without_its_document_row_is_deleted_and_the_owned_one_kept(
    vault: Vault, store: LocalFolderBlobStore, sessions: Callable[[], Session], session: Session
) -> None:
    case = make_case(session, vault.keys)
    document = vault.upload(case, png_bytes(seed=3), filename="scan.png")
    orphan = put(store, object_key_for(case_id=case.id, document_id=uuid.uuid4()))

    report = sweep(sessions, store)

    assert list(store.keys()) == [document.object_key]
    assert report == StorageSweepReport(
        objects_checked=2, orphans_found=1, orphans_deleted=1, uploads_aborted=0
    )
    assert not store.exists(orphan)
    [event] = sweep_events(session)
    assert (event.actor_kind, event.outcome) == ("system", "ok")
    ids = (event.patient_id, event.case_id, event.document_id, event.user_id)
    assert ids == (None, None, None, None)  # the objects had no row: nothing to name


def test_an_orphan_younger_than_the_grace_period_is_spared(
    store: LocalFolderBlobStore, sessions: Callable[[], Session], session: Session
) -> None:
    now = utcnow()
    young = put(store, f"cases/{uuid.uuid4()}/{uuid.uuid4()}", modified=now - timedelta(hours=23))
    old = put(store, f"cases/{uuid.uuid4()}/{uuid.uuid4()}", modified=now - timedelta(hours=25))

    report = sweep(sessions, store, now=now)

    assert list(store.keys()) == [young]
    assert not store.exists(old)
    assert (report.orphans_found, report.orphans_deleted) == (1, 1)
    assert timedelta(hours=24) == DEFAULT_GRACE


def test_the_object_of_a_shredded_document_is_an_orphan(
    vault: Vault, store: LocalFolderBlobStore, sessions: Callable[[], Session], session: Session
) -> None:
    """A shred deletes the objects before it marks the rows: one left behind is removed."""
    case = make_case(session, vault.keys)
    document = vault.upload(case, png_bytes(seed=4))
    document.shredded_at = NOW
    session.add(document)
    session.commit()

    report = sweep(sessions, store)

    assert list(store.keys()) == []
    assert report.orphans_deleted == 1


def test_a_dry_run_counts_and_changes_nothing(
    store: LocalFolderBlobStore, sessions: Callable[[], Session], session: Session
) -> None:
    orphan = put(store, f"cases/{uuid.uuid4()}/{uuid.uuid4()}")
    store.check()
    leftover = store.root / "tmp" / "dead-upload.part"
    leftover.write_bytes(b"half")

    report = sweep(sessions, store, dry_run=True)

    assert report == StorageSweepReport(
        objects_checked=1, orphans_found=1, orphans_deleted=0, uploads_aborted=0, dry_run=True
    )
    assert store.exists(orphan)
    assert leftover.exists()
    assert sweep_events(session) == []


def test_nothing_to_delete_writes_no_event(
    vault: Vault, store: LocalFolderBlobStore, sessions: Callable[[], Session], session: Session
) -> None:
    vault.upload(make_case(session, vault.keys), png_bytes(seed=5))

    report = sweep(sessions, store)

    assert (report.objects_checked, report.orphans_found, report.uploads_aborted) == (1, 0, 0)
    assert sweep_events(session) == []


def test_objects_outside_the_swept_prefixes_and_odd_keys_are_left_alone(
    store: LocalFolderBlobStore, sessions: Callable[[], Session]
) -> None:
    kept = [
        put(store, f"{CHECKPOINT_PREFIX}000000000007.json"),  # no row by design
        put(store, "elsewhere/object"),
        put(store, f"extracts/{uuid.uuid4()}/not-a-build/data.csv"),
        put(store, f"exports/{uuid.uuid4()}/archive.zip"),
    ]

    report = sweep(sessions, store)

    assert sorted(store.keys()) == sorted(kept)
    assert report.orphans_found == 0


def test_temp_files_of_dead_uploads_are_removed_after_the_grace_period(
    store: LocalFolderBlobStore, sessions: Callable[[], Session], session: Session
) -> None:
    now = utcnow()
    store.check()
    dead, running = store.root / "tmp" / "dead.part", store.root / "tmp" / "running.part"
    for path, age in ((dead, timedelta(hours=30)), (running, timedelta(minutes=5))):
        path.write_bytes(b"half an upload")
        moment = (now - age).timestamp()
        os.utime(path, (moment, moment))

    report = sweep(sessions, store, now=now)

    assert report.uploads_aborted == 1
    assert [p.name for p in (store.root / "tmp").iterdir()] == ["running.part"]
    assert len(sweep_events(session)) == 1


def test_a_failing_store_raises_after_recording_what_was_deleted(
    store: LocalFolderBlobStore,
    sessions: Callable[[], Session],
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orphans = [put(store, f"cases/{uuid.uuid4()}/{uuid.uuid4()}") for _ in range(3)]
    real_delete = store.delete
    deleted: list[str] = []

    def delete_then_fail(key: str) -> None:
        if deleted:
            raise StorageUnavailable("object store unavailable during DeleteObjects (test)")
        real_delete(key)
        deleted.append(key)

    monkeypatch.setattr(store, "delete", delete_then_fail)

    with pytest.raises(StorageUnavailable):
        sweep(sessions, store)

    assert sorted(store.keys()) == sorted(set(orphans) - set(deleted))
    assert len(sweep_events(session)) == 1  # the one deletion is on record


def test_a_negative_grace_is_refused(
    store: LocalFolderBlobStore, sessions: Callable[[], Session]
) -> None:
    orphan = put(store, f"cases/{uuid.uuid4()}/{uuid.uuid4()}")

    with pytest.raises(ValueError, match="grace"):
        sweep(sessions, store, grace=timedelta(seconds=-1))

    assert store.exists(orphan)


# -- extracts and exports ----------------------------------------------------------------------


def make_extract(session: Session, status: ExtractStatus, build_id: uuid.UUID) -> Extract:
    extract = Extract(
        requested_by=uuid.uuid4(),
        scope_key_id=uuid.uuid4(),
        key_id=uuid.uuid4(),
        period_from=date(2026, 1, 1),
        period_to=date(2026, 6, 30),
        fields=["sex"],
        k=5,
        status=status,
        build_id=build_id,
        created_at=NOW,
    )
    if status is ExtractStatus.READY:
        extract.parquet_key = f"{extract_prefix(extract.id)}{build_id}/data.parquet"
        extract.csv_key = f"{extract_prefix(extract.id)}{build_id}/data.csv"
    session.add(extract)
    session.commit()
    return extract


def extract_objects(store: LocalFolderBlobStore, extract: Extract, build: uuid.UUID) -> list[str]:
    return [
        put(store, f"{extract_prefix(extract.id)}{build}/data.{fmt}") for fmt in ("csv", "parquet")
    ]


def test_extract_objects_are_kept_while_ready_or_building_and_deleted_otherwise(
    store: LocalFolderBlobStore, sessions: Callable[[], Session], session: Session
) -> None:
    ready_build, old_build, running_build = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ready = make_extract(session, ExtractStatus.READY, ready_build)
    building = make_extract(session, ExtractStatus.BUILDING, running_build)
    failed_build = uuid.uuid4()
    failed = make_extract(session, ExtractStatus.FAILED, failed_build)
    kept = extract_objects(store, ready, ready_build) + extract_objects(
        store, building, running_build
    )
    swept = (
        extract_objects(store, ready, old_build)  # an older build the winner did not clean up
        + extract_objects(store, building, old_build)  # a build that was overtaken
        + extract_objects(store, failed, failed_build)
        + [put(store, f"extracts/{uuid.uuid4()}/{uuid.uuid4()}/data.csv")]  # no row at all
    )

    report = sweep(sessions, store)

    assert sorted(store.keys()) == sorted(kept)
    assert report.orphans_deleted == len(swept) == 7


def make_export(
    session: Session, patient_id: uuid.UUID, status: ExportStatus, build_id: uuid.UUID
) -> SubjectExport:
    request = RightsRequest(
        patient_id=patient_id, right=Right.ACCESS, received_at=NOW, due_at=NOW + timedelta(days=30)
    )
    export = SubjectExport(
        request_id=request.id,
        patient_id=patient_id,
        status=status,
        build_id=build_id,
        created_at=NOW,
    )
    if status is ExportStatus.READY:
        export.object_key = f"{export_prefix(export.id)}{build_id}/archive.zip"
    session.add(request)
    session.add(export)
    session.commit()
    return export


def test_export_archives_are_kept_while_ready_or_pending_and_deleted_otherwise(
    vault: Vault, store: LocalFolderBlobStore, sessions: Callable[[], Session], session: Session
) -> None:
    patient = make_patient(session, vault.keys)
    builds = {status: uuid.uuid4() for status in ExportStatus}
    exports = {
        status: make_export(session, patient.id, status, builds[status]) for status in ExportStatus
    }
    archives = {
        status: put(store, f"{export_prefix(export.id)}{builds[status]}/archive.zip")
        for status, export in exports.items()
    }
    overtaken = put(
        store, f"{export_prefix(exports[ExportStatus.PENDING].id)}{uuid.uuid4()}/archive.zip"
    )

    report = sweep(sessions, store)

    assert sorted(store.keys()) == sorted(
        [archives[ExportStatus.READY], archives[ExportStatus.PENDING]]
    )
    assert not store.exists(overtaken)
    assert report.orphans_deleted == 3  # failed, deleted, overtaken


def test_the_swept_prefixes_are_those_the_writers_use() -> None:
    some_id = uuid.uuid4()
    assert object_key_for(case_id=some_id, document_id=some_id).startswith(DOCUMENTS_PREFIX)
    assert extract_prefix(some_id).startswith(EXTRACTS_PREFIX)
    assert export_prefix(some_id).startswith(EXPORTS_PREFIX)


def test_rows_committed_after_the_listing_are_seen(
    vault: Vault, store: LocalFolderBlobStore, sessions: Callable[[], Session], session: Session
) -> None:
    """The store is listed before the rows are read: an upload whose row is committed while
    the sweep lists is never taken for an orphan, even with no grace at all."""
    case = make_case(session, vault.keys)
    real_listing = store.listing
    committed: list[Document] = []

    def listing_then_commit(prefix: str = "") -> Iterator[object]:
        listed = list(real_listing(prefix))
        if prefix == DOCUMENTS_PREFIX and not committed:
            committed.append(vault.upload(case, png_bytes(seed=6)))
            listed = list(real_listing(prefix))
        return iter(listed)

    store.listing = listing_then_commit  # type: ignore[method-assign, assignment]

    report = sweep(sessions, store, now=utcnow(), grace=timedelta(0))

    assert report.orphans_found == 0
    assert [committed[0].object_key] == list(store.keys())
    assert session.exec(select(col(Document.id))).all() == [committed[0].id]
