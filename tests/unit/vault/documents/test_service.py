"""store_document and read_document over the local store and keyring, SQLite and PostgreSQL."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pikepdf
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from keys.local import LocalKeyringProvider
from keys.store import KeyStore
from tests.factories import NOW, PATIENT_NAME, Vault, intake_limits, make_case, pdf_bytes, png_bytes
from vault.crypto.envelope import HEADER_SIZE
from vault.documents.models import Document
from vault.documents.service import read_document, unsafe_document_filename
from vault.errors import (
    DecryptionFailed,
    DocumentTooLarge,
    Gone,
    InvalidDocument,
    KeyDestroyed,
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
    opened = read_document(
        session=vault.session, store=vault.store, keys=vault.keys, document_id=document_id
    )
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
        read_document(
            session=vault.session, store=vault.store, keys=vault.keys, document_id=document.id
        )


def test_a_flipped_byte_in_a_later_frame_stops_the_stream_there(
    vault: Vault, tmp_path: Path
) -> None:
    case = make_case(vault.session, vault.keys)
    document = vault.upload(case, png_bytes(300, 300))
    path = object_path(tmp_path, document)
    flip_byte(path, path.stat().st_size - 100)
    opened = read_document(
        session=vault.session, store=vault.store, keys=vault.keys, document_id=document.id
    )
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

    opened = read_document(
        session=vault.session, store=vault.store, keys=vault.keys, document_id=document.id
    )
    pieces: Iterator[bytes] = opened.chunks
    sizes = [len(piece) for piece in pieces]

    assert max(sizes) <= vault.frame_size
    assert sum(sizes) == len(data)
    assert len(sizes) > 1
