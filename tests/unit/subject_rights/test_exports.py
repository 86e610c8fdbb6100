"""Exports in the vault: the archive's shape and streaming, idempotent and kill-safe builds,
documents that vanish mid-build, failures, the sweep, deletion with a patient's data, and the
link signature."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from tests.factories import (
    NOW,
    RETENTION_YEARS,
    SMALL_FRAME,
    Vault,
    local_vault,
    make_case,
    make_patient,
    png_bytes,
)
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.documents.models import Document
from vault.errors import (
    ExportLinkExpired,
    ExportLinkInvalid,
    Gone,
    KeyDestroyed,
    NotFound,
    StorageUnavailable,
)
from vault.keyring import translated_key_errors
from vault.patients.models import Patient
from vault.storage.interfaces import BlobStore
from vault.subject_rights import exports
from vault.subject_rights.archive import DATA, README, archive_chunks
from vault.subject_rights.export_data import unsafe_collect_subject_data
from vault.subject_rights.export_schema import ExportedDocument
from vault.subject_rights.exports import (
    build_export,
    delete_exports_of_patient,
    export_prefix,
    link_signature,
    open_export_download,
    request_export,
    sweep_exports,
)
from vault.subject_rights.models import (
    ExportStatus,
    RequestStatus,
    Right,
    RightsRequest,
    SubjectExport,
)

SYSTEM = AuditContext.SYSTEM
RETENTION = timedelta(days=3)
LINK_KEY = bytes(range(32))
Row = TypeVar("Row", Patient, Document)


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


@pytest.fixture
def sessions(engine: sa.Engine) -> Callable[[], Session]:
    return lambda: Session(engine)


def subject(vault: Vault, documents: int = 2) -> tuple[Patient, list[Document]]:
    patient = make_patient(vault.session, vault.keys)
    case = make_case(vault.session, vault.keys, patient)
    stored = [vault.upload(case, png_bytes(40, 30, seed=index)) for index in range(documents)]
    return loose(vault, patient), [loose(vault, document) for document in stored]


def loose(vault: Vault, row: Row) -> Row:
    """The row loaded and detached, its session's transaction ended: on SQLite a transaction
    holds the write lock, and the build works in sessions of its own."""
    vault.session.refresh(row)
    vault.session.expunge(row)
    vault.session.rollback()
    return row


def requested(vault: Vault, patient: Patient, right: Right = Right.ACCESS) -> uuid.UUID:
    found = request_export(
        session=vault.session, patient_id=patient.id, right=right, now=NOW, audit=SYSTEM
    )
    export_id = found.export.id
    vault.session.rollback()
    return export_id


def build(
    vault: Vault,
    sessions: Callable[[], Session],
    export_id: uuid.UUID,
    *,
    store: BlobStore | None = None,
) -> ExportStatus:
    return build_export(
        sessions=sessions,
        store=store or vault.store,
        keys=vault.keys,
        export_id=export_id,
        retention_years=RETENTION_YEARS,
        export_retention=RETENTION,
        frame_size=SMALL_FRAME,
        now=NOW,
    )


def current(sessions: Callable[[], Session], export_id: uuid.UUID) -> SubjectExport:
    with sessions() as session:
        export = session.get(SubjectExport, export_id)
        assert export is not None
        return export


def archive(vault: Vault, export_id: uuid.UUID) -> zipfile.ZipFile:
    expires = int((NOW + timedelta(minutes=5)).timestamp())
    download = open_export_download(
        session=vault.session,
        store=vault.store,
        keys=vault.keys,
        link_key=LINK_KEY,
        export_id=export_id,
        expires=expires,
        signature=link_signature(LINK_KEY, export_id, expires),
        now=NOW,
        audit=SYSTEM,
    )
    raw = b"".join(download.chunks)
    assert len(raw) == download.size
    return zipfile.ZipFile(io.BytesIO(raw))


def build_events(sessions: Callable[[], Session], export_id: uuid.UUID) -> list[str]:
    with sessions() as session:
        return list(
            session.exec(
                select(AuditEvent.outcome).where(
                    AuditEvent.action == "export.build", AuditEvent.document_id == export_id
                )
            )
        )


def objects(store: BlobStore, export_id: uuid.UUID) -> set[str]:
    return set(store.keys(export_prefix(export_id)))


class FlakyStore:
    """A store whose ``open`` of chosen objects fails as if they had been deleted (``times``
    times each), and whose ``put``/``delete`` can be made to fail as if it were down."""

    def __init__(self, inner: BlobStore, *, vanish: Iterable[str] = (), times: int = 1) -> None:
        self.inner = inner
        self.vanishing = dict.fromkeys(vanish, times)
        self.down_for: set[str] = set()

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        if "put" in self.down_for:
            raise StorageUnavailable("down")
        return self.inner.put(key, chunks)

    def open(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        if self.vanishing.get(key):
            self.vanishing[key] -= 1
            raise NotFound("no such object")
        return self.inner.open(key, chunk_size=chunk_size)

    def delete(self, key: str) -> None:
        if "delete" in self.down_for:
            raise StorageUnavailable("down")
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        return self.inner.keys(prefix)

    def check(self) -> None:
        self.inner.check()


# -- the archive -------------------------------------------------------------------------------


def test_the_archive_holds_readme_documents_then_data(vault: Vault) -> None:
    patient, stored = subject(vault)
    data = unsafe_collect_subject_data(
        session=vault.session, keys=vault.keys, patient_id=patient.id, retention_years=5, now=NOW
    )
    contents = {document.id: png_bytes(40, 30, seed=index) for index, document in enumerate(stored)}
    raw = b"".join(
        archive_chunks(
            data=data,
            right=Right.ACCESS,
            fhir=None,
            open_document=lambda document: [contents[document.id]],
            kept_for=RETENTION,
            now=NOW,
        )
    )
    packed = zipfile.ZipFile(io.BytesIO(raw))
    paths = [document.archive_path for document in data.documents]
    assert packed.namelist() == [README, *paths, DATA]
    assert json.loads(packed.read(DATA)) == json.loads(data.model_dump_json())
    for document in data.documents:
        assert packed.read(document.archive_path) == contents[document.id]
    assert "3 days" in packed.read(README).decode()
    with pytest.raises(ValueError, match="export answers"):
        archive_chunks(
            data=data,
            right=Right.ERASURE,
            fhir=None,
            open_document=lambda document: [],
            kept_for=RETENTION,
            now=NOW,
        )


def test_documents_are_opened_one_at_a_time_when_the_archive_reaches_them(
    vault: Vault,
) -> None:
    patient, _ = subject(vault, documents=3)
    data = unsafe_collect_subject_data(
        session=vault.session, keys=vault.keys, patient_id=patient.id, retention_years=5, now=NOW
    )
    log: list[str] = []

    def open_document(document: ExportedDocument) -> Iterator[bytes]:
        log.append(f"open {document.archive_path}")

        def chunks() -> Iterator[bytes]:
            for _ in range(4):
                yield bytes(256 * 1024)  # each document is 1 MiB, pulled 256 KiB at a time
            log.append(f"done {document.archive_path}")

        return chunks()

    stream = archive_chunks(
        data=data,
        right=Right.ACCESS,
        fhir=None,
        open_document=open_document,
        kept_for=RETENTION,
        now=NOW,
    )
    largest = max(len(chunk) for chunk in stream)
    paths = [document.archive_path for document in data.documents]
    assert log == [f"{step} {path}" for path in paths for step in ("open", "done")]
    assert largest <= 1024 * 1024  # chunks, never a whole archive


def test_a_document_gone_mid_archive_stops_it_before_the_data_is_written(
    vault: Vault,
) -> None:
    patient, _ = subject(vault)
    data = unsafe_collect_subject_data(
        session=vault.session, keys=vault.keys, patient_id=patient.id, retention_years=5, now=NOW
    )
    second = data.documents[1].id

    def open_document(document: ExportedDocument) -> list[bytes]:
        if document.id == second:
            raise Gone("deleted meanwhile")
        return [b"content"]

    made: list[bytes] = []
    stream = archive_chunks(
        data=data,
        right=Right.ACCESS,
        fhir=None,
        open_document=open_document,
        kept_for=RETENTION,
        now=NOW,
    )
    with pytest.raises(Gone):
        made.extend(stream)
    assert DATA.encode() not in b"".join(made)


# -- building ----------------------------------------------------------------------------------


def test_a_build_run_twice_makes_one_archive(vault: Vault, sessions: Callable[[], Session]) -> None:
    patient, stored = subject(vault)
    export_id = requested(vault, patient)
    assert build(vault, sessions, export_id) is ExportStatus.READY
    first = current(sessions, export_id)
    assert build(vault, sessions, export_id) is ExportStatus.READY
    again = current(sessions, export_id)
    assert (again.build_id, again.object_key, again.key_id) == (
        first.build_id,
        first.object_key,
        first.key_id,
    )
    assert objects(vault.store, export_id) == {first.object_key}
    assert build_events(sessions, export_id) == ["ok"]
    packed = archive(vault, export_id)
    assert {document.sha256 for document in stored} == {
        item["sha256"] for item in json.loads(packed.read(DATA))["documents"]
    }


def test_a_build_killed_after_its_upload_is_taken_over(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patient, _ = subject(vault)
    export_id = requested(vault, patient)
    killed = exports._claim(sessions, vault.keys, export_id, NOW)
    assert killed is not None
    vault.store.put(killed.object_key, [b"the upload of a build that died before finishing"])

    assert build(vault, sessions, export_id) is ExportStatus.READY
    export = current(sessions, export_id)
    assert export.key_id == killed.key_id  # the key made by the first claim is kept
    assert export.build_id != killed.build_id
    assert objects(vault.store, export_id) == {export.object_key}  # the dead build's is gone
    assert archive(vault, export_id).testzip() is None


def test_an_overtaken_build_loses_and_removes_only_its_own_object(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patient, _ = subject(vault)
    export_id = requested(vault, patient)
    slow = exports._claim(sessions, vault.keys, export_id, NOW)
    fast = exports._claim(sessions, vault.keys, export_id, NOW)  # a redelivery takes over
    assert slow is not None
    assert fast is not None
    size = exports._write_archive(
        sessions, vault.store, vault.keys, slow, RETENTION_YEARS, RETENTION, SMALL_FRAME, NOW
    )
    vault.store.put(fast.object_key, [b"the faster build's upload, still running"])
    status = exports._finish(
        sessions, vault.store, vault.keys, slow, now=NOW, retention=RETENTION, size=size
    )
    assert status is ExportStatus.PENDING  # the row is the faster build's
    assert objects(vault.store, export_id) == {fast.object_key}
    assert build_events(sessions, export_id) == []
    assert current(sessions, export_id).build_id == fast.build_id


def test_a_document_that_vanishes_mid_build_starts_the_build_over(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patient, stored = subject(vault)
    export_id = requested(vault, patient)
    flaky = FlakyStore(vault.store, vanish=[stored[1].object_key], times=1)
    assert build(vault, sessions, export_id, store=flaky) is ExportStatus.READY
    packed = archive(vault, export_id)
    assert len(json.loads(packed.read(DATA))["documents"]) == 2
    assert objects(vault.store, export_id) == {current(sessions, export_id).object_key}


def test_documents_that_keep_vanishing_fail_the_export(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patient, stored = subject(vault)
    export_id = requested(vault, patient)
    flaky = FlakyStore(vault.store, vanish=[stored[0].object_key], times=99)
    assert build(vault, sessions, export_id, store=flaky) is ExportStatus.FAILED
    export = current(sessions, export_id)
    assert objects(vault.store, export_id) == set()
    assert build_events(sessions, export_id) == ["refused"]
    assert export.key_id is not None
    with sessions() as session, pytest.raises(KeyDestroyed), translated_key_errors():
        vault.keys.unsafe_key_material(session, export.key_id)
    with sessions() as session:
        request = session.get(RightsRequest, export.request_id)
        assert request is not None
        assert request.status is RequestStatus.FAILED


def test_an_unreachable_store_leaves_the_export_pending_for_the_sweep(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patient, _ = subject(vault)
    export_id = requested(vault, patient)
    down = FlakyStore(vault.store)
    down.down_for.add("put")
    with pytest.raises(StorageUnavailable):
        build(vault, sessions, export_id, store=down)
    assert current(sessions, export_id).status is ExportStatus.PENDING
    assert objects(vault.store, export_id) == set()

    def requeued(after: timedelta) -> tuple[uuid.UUID, ...]:
        return sweep_exports(
            sessions=sessions, store=vault.store, keys=vault.keys, now=NOW + after
        ).requeue

    assert requeued(exports.DEFAULT_STALE_AFTER) == ()
    assert requeued(exports.DEFAULT_STALE_AFTER + timedelta(seconds=1)) == (export_id,)
    assert build(vault, sessions, export_id) is ExportStatus.READY
    assert requeued(timedelta(days=1)) == ()


def test_a_build_of_an_erased_patient_fails(vault: Vault, sessions: Callable[[], Session]) -> None:
    patient, _ = subject(vault)
    export_id = requested(vault, patient)
    with translated_key_errors():
        vault.keys.destroy(vault.session, patient.key_id, reason="erasure", now=NOW)
    vault.session.commit()
    assert build(vault, sessions, export_id) is ExportStatus.FAILED
    assert objects(vault.store, export_id) == set()


# -- requesting, deleting ----------------------------------------------------------------------


def test_only_access_and_portability_are_exports(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    with pytest.raises(ValueError, match="export answers"):
        requested(vault, patient, Right.ERASURE)
    assert vault.session.exec(select(RightsRequest)).all() == []


def test_the_database_allows_one_pending_export_per_patient(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    first = requested(vault, patient)
    request = vault.session.exec(select(RightsRequest)).one()
    other = RightsRequest(
        patient_id=patient.id, right=Right.PORTABILITY, received_at=NOW, due_at=NOW
    )
    vault.session.add(other)
    vault.session.flush()
    vault.session.add(SubjectExport(request_id=other.id, patient_id=patient.id, created_at=NOW))
    with pytest.raises(IntegrityError):
        vault.session.flush()
    vault.session.rollback()
    assert vault.session.exec(select(SubjectExport.id)).all() == [first]
    assert request.right is Right.ACCESS


def test_deleting_a_patients_exports_shreds_first_and_the_sweep_finishes(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patient, _ = subject(vault)
    ready = requested(vault, patient)
    assert build(vault, sessions, ready) is ExportStatus.READY
    pending = requested(vault, patient, Right.PORTABILITY)
    orphan = requested(vault, make_patient(vault.session, vault.keys))  # someone else's
    ready_key = current(sessions, ready).key_id
    assert ready_key is not None
    down = FlakyStore(vault.store)
    down.down_for.add("delete")
    deleted = delete_exports_of_patient(
        session=vault.session, store=down, keys=vault.keys, patient_id=patient.id, now=NOW
    )
    vault.session.commit()
    assert deleted == 2
    rows = {export_id: current(sessions, export_id) for export_id in (ready, pending, orphan)}
    assert rows[ready].status is rows[pending].status is ExportStatus.DELETED
    assert rows[orphan].status is ExportStatus.PENDING
    with sessions() as session, pytest.raises(KeyDestroyed), translated_key_errors():
        vault.keys.unsafe_key_material(session, ready_key)  # unreadable already
    assert rows[ready].object_key is not None  # the store was down: left for the sweep
    assert objects(vault.store, ready) != set()
    with sessions() as session:
        request = session.get(RightsRequest, rows[pending].request_id)
        assert request is not None
        assert request.status is RequestStatus.FAILED
        events = session.exec(
            select(AuditEvent.document_id).where(AuditEvent.action == "export.delete")
        ).all()
    assert sorted(events) == sorted([ready, pending])

    report = sweep_exports(sessions=sessions, store=vault.store, keys=vault.keys, now=NOW)
    assert current(sessions, ready).object_key is None
    assert objects(vault.store, ready) == set()
    assert report.deleted == 0  # nothing was due: it finished what the deletion left
    again = delete_exports_of_patient(
        session=vault.session, store=vault.store, keys=vault.keys, patient_id=patient.id, now=NOW
    )
    assert again == 0


def test_an_export_row_without_its_key_is_still_deleted(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    export_id = requested(vault, patient)
    export = vault.session.get(SubjectExport, export_id)
    assert export is not None
    export.key_id = uuid.uuid4()  # e.g. a row restored without its key
    vault.session.add(export)
    vault.session.commit()
    assert (
        delete_exports_of_patient(
            session=vault.session,
            store=vault.store,
            keys=vault.keys,
            patient_id=patient.id,
            now=NOW,
        )
        == 1
    )
    assert export.status is ExportStatus.DELETED


# -- the link signature ------------------------------------------------------------------------


def test_the_signature_binds_the_key_the_export_and_the_expiry() -> None:
    export_id, expires = uuid.uuid4(), 1_800_000_000
    signature = link_signature(LINK_KEY, export_id, expires)
    assert len(bytes.fromhex(signature)) == 32
    assert signature == link_signature(LINK_KEY, export_id, expires)
    assert signature != link_signature(bytes(32), export_id, expires)
    assert signature != link_signature(LINK_KEY, uuid.uuid4(), expires)
    assert signature != link_signature(LINK_KEY, export_id, expires + 1)
    for out_of_range in (-1, exports.MAX_EXPIRES):
        with pytest.raises(ValueError, match="expiry"):
            link_signature(LINK_KEY, export_id, out_of_range)


def test_a_download_refuses_before_it_reads_anything(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patient, _ = subject(vault)
    export_id = requested(vault, patient)
    assert build(vault, sessions, export_id) is ExportStatus.READY
    expires = int((NOW + timedelta(minutes=5)).timestamp())
    good = link_signature(LINK_KEY, export_id, expires)
    flipped = f"{int(good[0], 16) ^ 8:x}{good[1:]}"
    past = int(NOW.timestamp())
    refused: list[tuple[uuid.UUID, int, str, type[Exception]]] = [
        (export_id, expires, flipped, ExportLinkInvalid),
        (export_id, expires, good + "00", ExportLinkInvalid),
        (export_id, expires, good[:-1] + "x", ExportLinkInvalid),
        (export_id, expires, link_signature(bytes(32), export_id, expires), ExportLinkInvalid),
        (export_id, -1, good, ExportLinkInvalid),
        (uuid.uuid4(), expires, good, ExportLinkInvalid),
        (export_id, past, link_signature(LINK_KEY, export_id, past), ExportLinkExpired),
    ]
    for target, when, signature, error in refused:
        with pytest.raises(error):
            open_export_download(
                session=vault.session,
                store=vault.store,
                keys=vault.keys,
                link_key=LINK_KEY,
                export_id=target,
                expires=when,
                signature=signature,
                now=NOW,
                audit=SYSTEM,
            )
        vault.session.rollback()
    with sessions() as session:
        downloads = session.exec(
            select(AuditEvent.seq).where(col(AuditEvent.action) == "export.download")
        ).all()
    assert downloads == []
