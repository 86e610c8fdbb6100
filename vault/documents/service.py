"""Document verbs: store (sanitise, encrypt, upload, then record), list, and read (stream back).

Order of effects in ``store_document``: the object is uploaded first and the row committed
last, together with its audit event, so a failure at any step leaves neither; if the commit
itself fails, the uploaded object is deleted again, unless the row turns out to be committed
after all (the answer to the commit was lost) or the database cannot say (then the storage
sweep decides later). No database transaction is held open during the upload.

``patient_id`` scoping works as in :mod:`vault.cases.service`: given a patient id, a verb
acts only on that patient's cases and answers NotFound for any other (denial recorded).
"""

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from keys.store import KeyStore
from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.cases.service import case_in_scope, get_live_case
from vault.crypto.envelope import HEADER_SIZE, EnvelopeEncryptor, EnvelopeHeader, decrypt
from vault.crypto.fields import open_field, seal_field
from vault.documents.hashing import BackgroundSha256
from vault.documents.models import Document, DocumentKind
from vault.errors import DecryptionFailed, Gone, NotFound
from vault.intake import IntakeLimits, sanitised
from vault.keyring import translated_key_errors
from vault.storage.interfaces import BlobStore


def object_key_for(*, case_id: uuid.UUID, document_id: uuid.UUID) -> str:
    return f"cases/{case_id}/{document_id}"


def _filename_context(document_id: uuid.UUID) -> bytes:
    return f"document:{document_id}:filename".encode()


def store_document(
    *,
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    case_id: uuid.UUID,
    kind: DocumentKind,
    filename: str,
    source: BinaryIO,
    limits: IntakeLimits,
    spool_dir: Path,
    frame_size: int,
    now: datetime,
    audit: AuditContext,
    patient_id: uuid.UUID | None = None,
) -> Document:
    """Sanitise, encrypt and store a document of a case; commit its row once the object exists.

    Raises InvalidDocument (or DocumentTooLarge) for a refused file, Gone for a shredded case,
    NotFound for a case outside ``patient_id``'s, StorageUnavailable / KmsUnavailable /
    AuditUnavailable when a dependency is down. Commits ``session``.
    """
    case = case_in_scope(
        session=session,
        case_id=case_id,
        patient_id=patient_id,
        action=AuditAction.DOCUMENT_STORE,
        now=now,
        audit=audit,
    )
    get_live_case(session=session, case_id=case_id)
    case_patient_id = case.patient_id
    case_key_id = case.key_id
    with translated_key_errors():
        case_key = keys.unsafe_key_material(session, case_key_id)
    session.commit()  # end the read transaction: nothing is held open during the upload

    document_id = uuid.uuid4()
    object_key = object_key_for(case_id=case_id, document_id=document_id)
    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=case_key_id, object_id=document_id, frame_size=frame_size
    )
    digest = BackgroundSha256()
    try:
        with sanitised(source, limits=limits, spool_dir=spool_dir) as intake:
            store.put(object_key, encryptor.encrypt(digest.passing_through(intake.chunks())))
            media_type = intake.media_type
        sha256 = digest.hexdigest()
    finally:
        digest.close()

    document = Document(
        id=document_id,
        case_id=case_id,
        kind=kind,
        media_type=media_type,
        filename_sealed=seal_field(
            case_key, filename.encode(), context=_filename_context(document_id)
        ),
        size=digest.size,
        sha256=sha256,
        object_key=object_key,
        key_id=case_key_id,
        wrapped_dek=encryptor.wrapped_dek,
        frame_size=frame_size,
        created_at=now,
    )
    try:
        session.add(document)
        session.flush()
        append_event(
            session,
            context=audit,
            action=AuditAction.DOCUMENT_STORE,
            now=now,
            patient_id=case_patient_id,
            case_id=case_id,
            document_id=document_id,
        )
    except BaseException:
        session.rollback()
        store.delete(object_key)  # no object may outlive a row that was never written
        raise
    try:
        session.commit()
    except BaseException:
        stored = _stored_after_all(session, store, document_id=document_id, object_key=object_key)
        if stored is None:
            raise
        return stored
    return document


def _stored_after_all(
    session: Session, store: BlobStore, *, document_id: uuid.UUID, object_key: str
) -> Document | None:
    """After a commit that raised: the row if it was committed all the same (the connection
    broke after the server committed and before its answer came back), else None.

    Without the row the object is deleted. When the database cannot say, the object stays: the
    row may exist, and the storage sweep deletes the object later if it does not
    (``vault.storage.sweep``). Deleting it here would leave a row without its object.
    """
    try:
        session.rollback()
        stored = session.get(Document, document_id)
        session.commit()  # end the read
    except SQLAlchemyError:
        return None
    if stored is None:
        store.delete(object_key)
    return stored


def get_document(*, session: Session, document_id: uuid.UUID) -> Document:
    document = session.get(Document, document_id)
    if document is None:
        raise NotFound("no such document")
    return document


@dataclass(frozen=True)
class DocumentStream:
    """A document's row and its verified plaintext, streamed frame by frame; ``filename`` is
    the uploader's file name unsealed, when asked for (it may hold a name: never log it)."""

    document: Document
    chunks: Iterator[bytes]
    filename: str | None = None


def list_documents(
    *,
    session: Session,
    case_id: uuid.UUID,
    patient_id: uuid.UUID | None = None,
    now: datetime,
    audit: AuditContext,
) -> list[Document]:
    """The case's documents that still exist, oldest first. Commits the list event."""
    case = case_in_scope(
        session=session,
        case_id=case_id,
        patient_id=patient_id,
        action=AuditAction.DOCUMENT_LIST,
        now=now,
        audit=audit,
    )
    get_live_case(session=session, case_id=case_id)
    documents = list(
        session.exec(
            select(Document)
            .where(Document.case_id == case_id, col(Document.shredded_at).is_(None))
            .order_by(col(Document.created_at), col(Document.id))
        )
    )
    append_event(
        session,
        context=audit,
        action=AuditAction.DOCUMENT_LIST,
        now=now,
        patient_id=case.patient_id,
        case_id=case_id,
    )
    session.commit()
    return documents


def read_document(
    *,
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    document_id: uuid.UUID,
    now: datetime,
    audit: AuditContext,
    patient_id: uuid.UUID | None = None,
    with_filename: bool = False,
) -> DocumentStream:
    """Open a document for streaming. Checks run, and the read event is committed, before the
    first byte is returned (fail closed: no event, no bytes).

    Raises NotFound (also for a document outside ``patient_id``'s cases), Gone (shredded
    document or case, destroyed key, missing object), DecryptionFailed (anything tampered),
    StorageUnavailable, KmsUnavailable, AuditUnavailable.
    """
    document = get_document(session=session, document_id=document_id)
    try:
        case = case_in_scope(
            session=session,
            case_id=document.case_id,
            patient_id=patient_id,
            action=AuditAction.DOCUMENT_READ,
            now=now,
            audit=audit,
        )
    except NotFound:
        raise NotFound("no such document") from None  # the same answer as an unknown id
    if document.shredded_at is not None:
        raise Gone("this document was deleted for good")
    get_live_case(session=session, case_id=document.case_id)
    with translated_key_errors():
        case_key = keys.unsafe_key_material(session, document.key_id)

    plaintext = decrypt(
        _checked_ciphertext(store, document),
        case_key=case_key,
        key_id=document.key_id,
        object_id=document.id,
    )
    chunks = _primed(plaintext)  # integrity and key errors surface here, before the event
    filename = _open_filename(case_key, document) if with_filename else None
    append_event(
        session,
        context=audit,
        action=AuditAction.DOCUMENT_READ,
        now=now,
        patient_id=case.patient_id,
        case_id=document.case_id,
        document_id=document.id,
    )
    session.commit()
    return DocumentStream(document=document, chunks=chunks, filename=filename)


def unsafe_document_filename(*, session: Session, keys: KeyStore, document: Document) -> str:
    """The uploader's file name, unsealed (it may contain a name: never log it)."""
    with translated_key_errors():
        case_key = keys.unsafe_key_material(session, document.key_id)
    return _open_filename(case_key, document)


def unsafe_document_filenames(
    *, session: Session, keys: KeyStore, documents: Sequence[Document]
) -> list[str]:
    """The uploaders' file names of ``documents``, in order, unsealed (they may contain names:
    never log them); each case key is read once, not once per document."""
    case_keys: dict[uuid.UUID, bytes] = {}
    names = []
    for document in documents:
        if document.key_id not in case_keys:
            with translated_key_errors():
                case_keys[document.key_id] = keys.unsafe_key_material(session, document.key_id)
        names.append(_open_filename(case_keys[document.key_id], document))
    return names


def _open_filename(case_key: bytes, document: Document) -> str:
    return open_field(
        case_key, document.filename_sealed, context=_filename_context(document.id)
    ).decode()


def _checked_ciphertext(store: BlobStore, document: Document) -> Iterator[bytes]:
    """The object's bytes, after checking its header carries the data key the row recorded."""
    try:
        head = b""
        chunks = store.open(document.object_key)
        for chunk in chunks:
            head += chunk
            if len(head) >= HEADER_SIZE:
                break
        if len(head) >= HEADER_SIZE:
            header = EnvelopeHeader.parse(head[:HEADER_SIZE])
            if header.wrapped_dek != document.wrapped_dek:
                raise DecryptionFailed()
        yield head  # a stream too short to hold a header is refused by decrypt()
        yield from chunks
    except NotFound:
        raise Gone("the stored object of this document no longer exists") from None


def _primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Pull the first chunk now so that integrity and key errors surface before streaming."""
    first = next(chunks, None)

    def rest() -> Iterator[bytes]:
        if first is not None:
            yield first
        yield from chunks

    return rest()
