"""store_document and read_document over the local store and keyring, SQLite and PostgreSQL."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pikepdf
import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from keys.local import LocalKeyringProvider
from keys.store import KeyStore
from tests.factories import (
    NOW,
    PATIENT_NAME,
    Vault,
    intake_limits,
    make_case,
    make_patient,
    pdf_bytes,
    png_bytes,
)
from vault.audit.models import ActorKind, AuditEvent
from vault.audit.service import AuditContext
from vault.crypto.envelope import HEADER_SIZE
from vault.documents.models import Document, DocumentKind
from vault.documents.service import (
    list_documents,
    read_document,
    store_document,
    unsafe_document_filename,
)
from vault.errors import (
    AuditUnavailable,
    DecryptionFailed,
    DocumentTooLarge,
    Gone,
    InvalidDocument,
    KeyDestroyed,
    NotFound,
    StorageUnavailable,
)
from vault.storage.local import LocalFolderBlobStore


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    return Vault(
        session=session,
        store=LocalFolderBlobStore(tmp_path / "store"),
        keys=KeyStore(provider=LocalKeyringProvider(tmp_path / "keys" / "keyring.json")),
        spool_dir=spool,
        limits=intake_limits(),
    )


def read_all(vault: Vault, document_id: uuid.UUID) -> bytes:
    opened = vault.read(document_id)
    return b"".join(opened.chunks)


def assert_nothing_stored(vault: Vault) -> None:
    assert list(vault.store.keys("")) == []
    assert vault.session.exec(select(Document)).all() == []


def test_png_round_trip_records_digest_size_and_type(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    data = png_bytes()

    document = vault.upload(case, data, filename="röntgen.png")

    assert read_all(vault, document.id) == data
    import hashlib

    assert document.sha256 == hashlib.sha256(data).hexdigest()
    assert document.size == len(data)
    assert document.media_type == "image/png"
    assert unsafe_document_filename(session=vault.session, keys=vault.keys, document=document) == (
        "röntgen.png"
    )
    assert list(vault.store.keys("")) == [document.object_key]


def test_pdf_is_sanitised_before_it_is_encrypted(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)

    document = vault.upload(case, pdf_bytes(pages=2, with_javascript=True))

    stored = read_all(vault, document.id)
    with pikepdf.open(io.BytesIO(stored)) as pdf:
        assert len(pdf.pages) == 2
        assert "/OpenAction" not in pdf.Root
        assert "/Author" not in pdf.docinfo
    assert PATIENT_NAME.encode() not in stored


def test_the_stored_object_holds_no_plaintext(vault: Vault, tmp_path: Path) -> None:
    case = make_case(vault.session, vault.keys)
    data = png_bytes(64, 64)

    vault.upload(case, data, filename=f"{PATIENT_NAME}.png")

    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert data[16:80] not in on_disk
    assert PATIENT_NAME.encode() not in on_disk


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"PK\x03\x04 a zip archive", InvalidDocument),
        (b"", InvalidDocument),
        (b"%PDF-1.7\nthis is not a pdf at all", InvalidDocument),
    ],
)
def test_refused_files_leave_nothing(vault: Vault, data: bytes, error: type[Exception]) -> None:
    case = make_case(vault.session, vault.keys)

    with pytest.raises(error):
        vault.upload(case, data)

    assert_nothing_stored(vault)


def test_too_large_leaves_nothing(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    vault.limits = intake_limits(max_bytes=1000)

    with pytest.raises(DocumentTooLarge):
        vault.upload(case, png_bytes(200, 200))

    assert_nothing_stored(vault)


class FailingStore(LocalFolderBlobStore):
    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        iterator = iter(chunks)
        next(iterator)
        raise StorageUnavailable("object store unavailable")


def test_store_failure_leaves_no_row(vault: Vault, tmp_path: Path) -> None:
    case = make_case(vault.session, vault.keys)
    vault.store = FailingStore(tmp_path / "store")

    with pytest.raises(StorageUnavailable):
        vault.upload(case, png_bytes())

    assert_nothing_stored(vault)


def test_commit_failure_deletes_the_uploaded_object(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)

    def refuse_documents(session: Session) -> None:
        if any(isinstance(obj, Document) for obj in session.new):
            raise sa.exc.OperationalError("INSERT", {}, Exception("database went away"))

    sa.event.listen(vault.session, "before_flush", lambda s, *_: refuse_documents(s))
    with pytest.raises(sa.exc.OperationalError):
        vault.upload(case, png_bytes())

    assert_nothing_stored(vault)


def fail_the_commit_of_the_upload(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, *, committed: bool
) -> list[bool]:
    """Make the upload's final commit raise as a lost connection does: after the server
    committed (``committed``: its answer was lost) or before. Returns a switch that, once set,
    makes every later query fail too (the database still unreachable)."""
    real_commit = vault.session.commit
    unreachable: list[bool] = []
    failed: list[bool] = []

    def commit() -> None:
        holds_the_row = any(isinstance(o, Document) for o in vault.session.identity_map.values())
        if holds_the_row and not failed:
            failed.append(True)
            if committed:
                real_commit()
            raise sa.exc.OperationalError("COMMIT", {}, ConnectionResetError("answer lost"))
        real_commit()

    def refuse_when_unreachable(*_: object) -> None:
        if unreachable:
            raise sa.exc.OperationalError("SELECT", {}, ConnectionRefusedError())

    monkeypatch.setattr(vault.session, "commit", commit)
    sa.event.listen(vault.session.get_bind(), "before_cursor_execute", refuse_when_unreachable)
    return unreachable


def test_a_commit_whose_answer_was_lost_keeps_the_stored_document(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cut of the database connection (what tests/faults does) can fall after the server
    committed and before its answer came back: the object was then deleted although its row
    and event were stored, a row without its object. Now the row is looked up and the upload
    stands."""
    case = make_case(vault.session, vault.keys)
    fail_the_commit_of_the_upload(vault, monkeypatch, committed=True)
    data = png_bytes(seed=7)

    document = vault.upload(case, data)

    assert vault.store.exists(document.object_key)
    assert read_all(vault, document.id) == data
    stored = vault.session.exec(select(AuditEvent).where(AuditEvent.document_id == document.id))
    assert [event.action for event in stored] == ["document.store", "document.read"]


def test_a_commit_that_failed_deletes_the_uploaded_object(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = make_case(vault.session, vault.keys)
    fail_the_commit_of_the_upload(vault, monkeypatch, committed=False)

    with pytest.raises(sa.exc.OperationalError):
        vault.upload(case, png_bytes())

    assert_nothing_stored(vault)


def test_when_the_database_cannot_tell_the_object_stays_for_the_sweep(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = make_case(vault.session, vault.keys)
    unreachable = fail_the_commit_of_the_upload(vault, monkeypatch, committed=True)
    real_rollback = vault.session.rollback

    def rollback_then_unreachable() -> None:
        real_rollback()
        unreachable.append(True)

    monkeypatch.setattr(vault.session, "rollback", rollback_then_unreachable)

    with pytest.raises(sa.exc.OperationalError, match="COMMIT"):
        vault.upload(case, png_bytes())

    unreachable.clear()
    [key] = vault.store.keys("")
    assert vault.session.exec(select(Document.object_key)).all() == [key]  # it was committed


def test_destroyed_case_key_means_gone_for_reads_and_writes(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    document = vault.upload(case, png_bytes())
    vault.keys.destroy(vault.session, case.key_id, reason="test", now=NOW)
    vault.session.commit()

    with pytest.raises(KeyDestroyed):
        read_all(vault, document.id)
    with pytest.raises(KeyDestroyed):
        vault.upload(case, png_bytes())
    assert issubclass(KeyDestroyed, Gone)


def object_path(tmp_path: Path, document: Document) -> Path:
    return tmp_path / "store" / "objects" / document.object_key


def flip_byte(path: Path, offset: int) -> None:
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))


def test_a_flipped_byte_in_the_first_frame_fails_before_any_plaintext(
    vault: Vault, tmp_path: Path
) -> None:
    case = make_case(vault.session, vault.keys)
    document = vault.upload(case, png_bytes(300, 300))
    flip_byte(object_path(tmp_path, document), HEADER_SIZE + 10)

    with pytest.raises(DecryptionFailed):
        vault.read(document.id)


def test_a_flipped_byte_in_a_later_frame_stops_the_stream_there(
    vault: Vault, tmp_path: Path
) -> None:
    case = make_case(vault.session, vault.keys)
    document = vault.upload(case, png_bytes(300, 300))
    path = object_path(tmp_path, document)
    flip_byte(path, path.stat().st_size - 100)
    opened = vault.read(document.id)
    released: list[int] = []

    with pytest.raises(DecryptionFailed):
        released.extend(len(chunk) for chunk in opened.chunks)

    assert 0 < sum(released) < document.size
    assert sum(released) % vault.frame_size == 0  # only whole verified frames came out


def test_an_object_moved_to_another_case_fails(vault: Vault, tmp_path: Path) -> None:
    first = vault.upload(make_case(vault.session, vault.keys), png_bytes())
    second = vault.upload(make_case(vault.session, vault.keys), png_bytes(10, 10))
    object_path(tmp_path, second).write_bytes(object_path(tmp_path, first).read_bytes())

    with pytest.raises(DecryptionFailed):
        read_all(vault, second.id)


def test_a_row_whose_data_key_differs_from_the_header_fails(vault: Vault) -> None:
    document = vault.upload(make_case(vault.session, vault.keys), png_bytes())
    other = vault.upload(make_case(vault.session, vault.keys), png_bytes(8, 8))
    document.wrapped_dek = other.wrapped_dek
    vault.session.add(document)
    vault.session.commit()

    with pytest.raises(DecryptionFailed):
        read_all(vault, document.id)


def test_a_missing_object_is_gone(vault: Vault) -> None:
    document = vault.upload(make_case(vault.session, vault.keys), png_bytes())
    vault.store.delete(document.object_key)

    with pytest.raises(Gone):
        read_all(vault, document.id)


def test_reading_streams_frame_by_frame(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    data = png_bytes(400, 400)  # several 64 KiB frames
    document = vault.upload(case, data)

    opened = vault.read(document.id)
    pieces: Iterator[bytes] = opened.chunks
    sizes = [len(piece) for piece in pieces]

    assert max(sizes) <= vault.frame_size
    assert sum(sizes) == len(data)
    assert len(sizes) > 1


# --- audit, listing and patient scope ---

PATIENT_CONTEXT = AuditContext(ActorKind.USER, uuid.uuid4(), None)


def audit_trail(vault: Vault) -> list[tuple[str, str, uuid.UUID | None]]:
    rows = vault.session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    return [(row.action, row.outcome, row.document_id) for row in rows]


def test_store_and_read_each_leave_their_event(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)

    document = vault.upload(case, png_bytes())
    read_all(vault, document.id)

    assert audit_trail(vault) == [
        ("case.open", "ok", None),
        ("document.store", "ok", document.id),
        ("document.read", "ok", document.id),
    ]


def test_a_refused_upload_leaves_no_store_event(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)

    with pytest.raises(InvalidDocument):
        vault.upload(case, b"PK\x03\x04 a zip archive")

    assert [action for action, _, _ in audit_trail(vault)] == ["case.open"]


def test_when_the_audit_write_fails_nothing_is_stored_or_read(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    stored = vault.upload(case, png_bytes())

    def refuse_events(session: Session) -> None:
        if any(isinstance(obj, AuditEvent) for obj in session.new):
            raise sa.exc.OperationalError("INSERT", {}, Exception("audit table locked"))

    sa.event.listen(vault.session, "before_flush", lambda s, *_: refuse_events(s))
    with pytest.raises(AuditUnavailable):
        vault.read(stored.id)
    vault.session.rollback()
    with pytest.raises(AuditUnavailable):
        vault.upload(case, png_bytes(8, 8))
    vault.session.rollback()

    assert [row.id for row in vault.session.exec(select(Document)).all()] == [stored.id]
    assert list(vault.store.keys("")) == [stored.object_key]


def test_list_documents_oldest_first_and_audited(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    first = vault.upload(case, png_bytes())
    second = vault.upload(case, png_bytes(8, 8))
    vault.upload(make_case(vault.session, vault.keys), png_bytes())  # another case's

    listed = list_documents(
        session=vault.session, case_id=case.id, now=NOW, audit=AuditContext.SYSTEM
    )

    assert {document.id for document in listed} == {first.id, second.id}
    assert audit_trail(vault)[-1] == ("document.list", "ok", None)


def test_a_patient_reaches_only_their_own_cases_documents(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    document = vault.upload(case, png_bytes())
    stranger = make_patient(vault.session, vault.keys)

    own = read_document(
        session=vault.session,
        store=vault.store,
        keys=vault.keys,
        document_id=document.id,
        patient_id=case.patient_id,
        now=NOW,
        audit=PATIENT_CONTEXT,
    )
    assert b"".join(own.chunks) == png_bytes()
    with pytest.raises(NotFound) as denied:
        read_document(
            session=vault.session,
            store=vault.store,
            keys=vault.keys,
            document_id=document.id,
            patient_id=stranger.id,
            now=NOW,
            audit=PATIENT_CONTEXT,
        )
    with pytest.raises(NotFound) as unknown:
        vault.read(uuid.uuid4())
    with pytest.raises(NotFound):
        list_documents(
            session=vault.session,
            case_id=case.id,
            patient_id=stranger.id,
            now=NOW,
            audit=PATIENT_CONTEXT,
        )

    assert str(denied.value) == str(unknown.value)  # no existence oracle
    assert audit_trail(vault)[-2:] == [
        ("document.read", "denied", None),
        ("document.list", "denied", None),
    ]


def test_a_patient_cannot_upload_to_another_patients_case(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    stranger = make_patient(vault.session, vault.keys)

    with pytest.raises(NotFound):
        store_document(
            session=vault.session,
            store=vault.store,
            keys=vault.keys,
            case_id=case.id,
            kind=DocumentKind.RECORD,
            filename="x.png",
            source=io.BytesIO(png_bytes()),
            limits=vault.limits,
            spool_dir=vault.spool_dir,
            frame_size=vault.frame_size,
            now=NOW,
            audit=PATIENT_CONTEXT,
            patient_id=stranger.id,
        )

    assert_nothing_stored(vault)
    assert audit_trail(vault)[-1] == ("document.store", "denied", None)
