"""Partner links: issue, open (see what was sent) and download (with the access code).

A link is a random token (256 bits, ``secrets.token_urlsafe(32)``) known to the database only by
its SHA-256, plus an access code of ten characters from an unambiguous alphabet (about 49.5
bits) known only by its argon2id hash; the code travels by another channel than the link.

Opening never uses a download, so a link-preview bot or virus scanner that fetches the page
changes nothing. A download checks, in this order: the token is known (else NotFound), the
transfer is not revoked, the link is not locked, not expired (gone from ``expires_at`` on), not
used up, the document is still there (else Gone), processing of the patient's data or of the
case is not restricted (Art. 18: ProcessingRestricted while it lasts; the link works again once
the privacy officer lifts it), and then the code; opening checks all but the code. A wrong code
is counted and committed with its event before AccessCodeWrong is raised; the link locks at its
limit. A right code counts the download, records it with its event and commits, and only then
is the stream handed back: if the event cannot be written, nothing is streamed (fail closed).

All documents as one ZIP (``download_archive_from_link``) is one use of the link: it passes the
same checks in the same order (a wrong code is counted the same way), uses one download of the
link's limit however many documents it holds, and records every document in it as downloaded
(a ``LinkDownload`` row and a ``link.download`` event each, as a single download would). The
first document is opened, the use counted and the first document recorded before the first
byte; each further document is opened, recorded and committed only when the archive reaches
it, so the record says exactly which documents left. A document that cannot be read by then
(deleted meanwhile, store unavailable) ends the archive there, cut short; the use stays spent.
A revocation or lock after the archive has started does not stop it, as it does not stop a
single download already streaming.
"""

import hashlib
import hmac
import re
import secrets
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import update
from sqlmodel import Session, col, select
from stream_zip import ZIP_AUTO, MemberFile, stream_zip

from keys.store import KeyStore
from vault.accounts.passwords import hash_secret, verify_password
from vault.audit.models import ActorKind, AuditAction
from vault.audit.service import AuditContext, append_event
from vault.cases.service import get_case, get_live_case
from vault.consents.service import assert_not_restricted
from vault.documents.models import Document, DocumentKind
from vault.documents.service import DocumentStream, read_document
from vault.errors import (
    AccessCodeWrong,
    Gone,
    InvalidTransfer,
    LinkExpired,
    LinkLocked,
    LinkRevoked,
    LinkUsedUp,
    NotFound,
    ProcessingRestricted,
)
from vault.links.models import Link, LinkDownload
from vault.partners.models import Partner, PartnerKind
from vault.storage.interfaces import BlobStore
from vault.transfers.models import Transfer, TransferDocument

TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # what token_urlsafe(32) produces
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud or typed safely
CODE_LENGTH = 10
_CODE_SEPARATORS = str.maketrans("", "", " -")

# The cost chosen for passwords (vault.accounts.passwords) protects the codes too.

ARCHIVE_FILENAME = "documents.zip"
_ARCHIVE_MEMBER_MODE = stat.S_IFREG | 0o600
_ARCHIVE_CHUNK = 64 * 1024
# PDF, PNG, JPEG and TIFF are compressed already: deflate level 0 only frames them.
_ARCHIVE_LEVEL = 0

_EXTENSIONS = {
    "application/pdf": "pdf",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/tiff": "tif",
}


@dataclass(frozen=True)
class LinkPolicy:
    """Defaults and limits for new links (from the settings)."""

    ttl: timedelta
    max_ttl: timedelta
    max_downloads: int
    max_code_attempts: int


@dataclass(frozen=True, repr=False)
class IssuedLink:
    """A new link with its token and access code in the clear: shown once, never stored."""

    link: Link
    token: str
    access_code: str

    def __repr__(self) -> str:
        return f"IssuedLink(link_id={self.link.id}, <token and code redacted>)"


@dataclass(frozen=True)
class LinkedDocument:
    id: uuid.UUID
    kind: DocumentKind
    media_type: str
    size: int
    filename: str  # generic ("document-2.pdf"): the uploader's file name stays sealed


@dataclass(frozen=True)
class LinkView:
    """What a link shows before any code is entered: what was sent, and for how long."""

    link_id: uuid.UUID
    transfer_id: uuid.UUID
    partner_kind: PartnerKind
    documents: list[LinkedDocument]
    sent_at: datetime
    expires_at: datetime
    downloads_left: int


@dataclass(frozen=True)
class LinkStream:
    """A document released through a link: its generic file name and its plaintext stream."""

    filename: str
    stream: DocumentStream


@dataclass(frozen=True)
class LinkArchive:
    """Every document of a link as one ZIP, made as it is pulled (see the module)."""

    filename: str
    chunks: Iterator[bytes]


@dataclass(frozen=True)
class LinkTerms:
    """The checked terms of one new link."""

    lifetime: timedelta
    max_downloads: int
    max_code_attempts: int


def link_terms(
    policy: LinkPolicy, *, expires_in: timedelta | None, max_downloads: int | None
) -> LinkTerms:
    """The policy's defaults, or the terms asked for if the policy allows them (InvalidTransfer
    for an expiry beyond its maximum, or a download limit below one)."""
    lifetime = policy.ttl if expires_in is None else expires_in
    if not timedelta(0) < lifetime <= policy.max_ttl:
        raise InvalidTransfer(f"a link expires within {policy.max_ttl.days} days at the most")
    downloads = policy.max_downloads if max_downloads is None else max_downloads
    if downloads < 1:
        raise InvalidTransfer("a link allows at least one download")
    return LinkTerms(lifetime, downloads, policy.max_code_attempts)


@dataclass(frozen=True)
class LinkSecrets:
    """A new link's token and access code, and the code's argon2 hash."""

    token: str
    access_code: str
    code_hash: str


def new_link_secrets() -> LinkSecrets:
    """A fresh token and access code. Made before the transaction that stores the link: no
    transaction (on SQLite: no write lock) is held during the argon2 hash."""
    access_code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return LinkSecrets(secrets.token_urlsafe(TOKEN_BYTES), access_code, hash_secret(access_code))


def issue_link(
    session: Session,
    *,
    transfer_id: uuid.UUID,
    terms: LinkTerms,
    now: datetime,
    link_secrets: LinkSecrets | None = None,
) -> IssuedLink:
    """Add a link for a transfer with a fresh token and access code (``link_secrets``, or new
    ones made here) (flushed, not committed)."""
    made = link_secrets or new_link_secrets()
    token, access_code = made.token, made.access_code
    link = Link(
        transfer_id=transfer_id,
        token_digest=token_digest(token),
        code_hash=made.code_hash,
        created_at=now,
        expires_at=now + terms.lifetime,
        max_downloads=terms.max_downloads,
        max_code_attempts=terms.max_code_attempts,
    )
    session.add(link)
    session.flush()
    return IssuedLink(link=link, token=token, access_code=access_code)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def downloads_left(link: Link) -> int:
    return max(0, link.max_downloads - link.downloads)


def open_link(session: Session, *, token: str, now: datetime, audit: AuditContext) -> LinkView:
    """Show what a link holds. Uses no download; appends ``link.open`` and commits.

    Raises NotFound for an unknown token, a Gone subclass for a link that can no longer be used.
    """
    found = _known_link(session, token, audit)
    try:
        _check_usable(found.link, found.transfer, now)
        documents = _sent_documents(session, found.transfer)
        assert_not_restricted(session, patient_id=found.patient_id, case_id=found.transfer.case_id)
    except (Gone, ProcessingRestricted):
        _record_refusal(session, found, now=now)
        raise
    partner = session.get(Partner, found.transfer.partner_id)
    if partner is None:  # pragma: no cover - a foreign key guarantees the partner
        raise NotFound("no such link")
    view = LinkView(
        link_id=found.link.id,
        transfer_id=found.transfer.id,
        partner_kind=partner.kind,
        documents=documents,
        sent_at=found.transfer.created_at,
        expires_at=found.link.expires_at,
        downloads_left=downloads_left(found.link),
    )
    _append(session, AuditAction.LINK_OPEN, found, now=now)
    session.commit()
    return view


def download_from_link(
    session: Session,
    *,
    store: BlobStore,
    keys: KeyStore,
    token: str,
    document_id: uuid.UUID,
    code: str,
    now: datetime,
    audit: AuditContext,
) -> LinkStream:
    """Release one document of the link's transfer for the right access code (see the module).

    Raises NotFound (unknown token, or a document not in the transfer), a Gone subclass,
    AccessCodeWrong (with the attempts left), AuditUnavailable, StorageUnavailable, KmsUnavailable.
    """
    found, released = _released(
        session, token=token, document_id=document_id, code=code, now=now, audit=audit
    )
    [document] = released
    opened = _downloaded(session, store, keys, found, document.id, now=now, counted=True)
    return LinkStream(filename=document.filename, stream=opened)


def download_archive_from_link(
    session: Session,
    *,
    store: BlobStore,
    keys: KeyStore,
    token: str,
    code: str,
    now: datetime,
    audit: AuditContext,
) -> LinkArchive:
    """Release every document of the link as one ZIP for the right access code: one use of the
    link, each document recorded as downloaded when the archive reaches it (see the module).

    Raises what ``download_from_link`` raises before the first byte; afterwards a failure to
    read a document ends the stream early (the archive is then incomplete).
    """
    found, released = _released(
        session, token=token, document_id=None, code=code, now=now, audit=audit
    )
    first, *others = released
    opened = _downloaded(session, store, keys, found, first.id, now=now, counted=True)

    def members() -> Iterator[MemberFile]:
        yield _archive_member(first, opened.chunks, now)
        for document in others:
            stream = _downloaded(session, store, keys, found, document.id, now=now, counted=False)
            yield _archive_member(document, stream.chunks, now)

    chunks = iter(stream_zip(members(), _ARCHIVE_CHUNK))
    return LinkArchive(filename=ARCHIVE_FILENAME, chunks=chunks)


def _archive_member(document: LinkedDocument, chunks: Iterator[bytes], now: datetime) -> MemberFile:
    method = ZIP_AUTO(document.size, level=_ARCHIVE_LEVEL)
    return document.filename, now, _ARCHIVE_MEMBER_MODE, method, chunks


def _released(
    session: Session,
    *,
    token: str,
    document_id: uuid.UUID | None,
    code: str,
    now: datetime,
    audit: AuditContext,
) -> tuple["_FoundLink", list[LinkedDocument]]:
    """The checks of a download in the module's order, then the code: the link and what it
    releases (the document asked for, or with ``document_id`` None all of them)."""
    found = _known_link(session, token, audit)
    try:
        _check_usable(found.link, found.transfer, now)
        released = _sent_documents(session, found.transfer)
        if document_id is not None:
            released = [_sent_document(session, found.transfer, released, document_id)]
        assert_not_restricted(session, patient_id=found.patient_id, case_id=found.transfer.case_id)
    except (Gone, ProcessingRestricted):
        _record_refusal(session, found, now=now)
        raise
    code_hash = found.link.code_hash
    session.commit()  # no transaction (on SQLite: no write lock) held during the argon2 check

    if not _code_matches(code_hash, code):
        _record_wrong_code(session, found, now=now)
    return found, released


def _sent_document(
    session: Session, transfer: Transfer, sent: list[LinkedDocument], document_id: uuid.UUID
) -> LinkedDocument:
    """One document of the transfer: NotFound if it never was one, Gone if it was deleted."""
    for document in sent:
        if document.id == document_id:
            return document
    if session.get(TransferDocument, (transfer.id, document_id)) is None:
        raise NotFound("no such document in this link")
    raise Gone("this document was deleted for good")


def _downloaded(
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    found: "_FoundLink",
    document_id: uuid.UUID,
    *,
    now: datetime,
    counted: bool,
) -> DocumentStream:
    """Open a document, record it as downloaded through the link (``counted``: using one
    download of the link first) and commit, then hand back its stream. read_document commits
    its own document.read event once the first frame has decrypted, so a store or key failure
    uses up no download and records none."""
    opened = read_document(
        session=session,
        store=store,
        keys=keys,
        document_id=document_id,
        now=now,
        audit=found.audit,
    )
    try:
        if counted:
            _count_download(session, found, now=now)
        session.add(LinkDownload(link_id=found.link.id, document_id=document_id, at=now))
        _append(session, AuditAction.LINK_DOWNLOAD, found, now=now, document_id=document_id)
        session.commit()
    except BaseException:
        session.rollback()
        _close(opened.chunks)
        raise
    return opened


@dataclass(frozen=True)
class _FoundLink:
    link: Link
    transfer: Transfer
    patient_id: uuid.UUID
    audit: AuditContext  # whoever holds the link acts as its partner, from the caller's address


def _known_link(session: Session, token: str, audit: AuditContext) -> _FoundLink:
    if not _TOKEN_SHAPE.fullmatch(token):
        raise NotFound("no such link")
    digest = token_digest(token)
    link = session.exec(select(Link).where(Link.token_digest == digest)).first()
    if link is None or not hmac.compare_digest(link.token_digest, digest):
        raise NotFound("no such link")
    transfer = session.get(Transfer, link.transfer_id)
    if transfer is None:  # pragma: no cover - a foreign key guarantees the transfer
        raise NotFound("no such link")
    case = get_case(session=session, case_id=transfer.case_id)
    return _FoundLink(
        link=link,
        transfer=transfer,
        patient_id=case.patient_id,
        audit=AuditContext(ActorKind.PARTNER, transfer.partner_id, audit.client),
    )


def _check_usable(link: Link, transfer: Transfer, now: datetime) -> None:
    if transfer.revoked_at is not None:
        raise LinkRevoked("this link was revoked by the sender")
    if link.locked_at is not None:
        raise LinkLocked("this link was locked after too many wrong access codes")
    if now >= link.expires_at:
        raise LinkExpired("this link has expired")
    if link.downloads >= link.max_downloads:
        raise LinkUsedUp("this link has reached its download limit")


def _sent_documents(session: Session, transfer: Transfer) -> list[LinkedDocument]:
    """The transfer's documents that still exist, in order; Gone when none is left."""
    try:
        get_live_case(session=session, case_id=transfer.case_id)
    except Gone:
        raise Gone("the documents of this link were deleted for good") from None
    statement = (
        select(Document, TransferDocument.position)
        .join(TransferDocument, col(TransferDocument.document_id) == col(Document.id))
        .where(TransferDocument.transfer_id == transfer.id, col(Document.shredded_at).is_(None))
        .order_by(col(TransferDocument.position))
    )
    documents = [
        LinkedDocument(
            id=document.id,
            kind=document.kind,
            media_type=document.media_type,
            size=document.size,
            filename=download_filename(position, document.media_type),
        )
        for document, position in session.exec(statement).all()
    ]
    if not documents:
        raise Gone("the documents of this link were deleted for good")
    return documents


def download_filename(position: int, media_type: str) -> str:
    return f"document-{position}.{_EXTENSIONS.get(media_type, 'bin')}"


def _code_matches(code_hash: str, code: str) -> bool:
    """Constant-time (argon2) check of a code as typed: case and separators do not matter."""
    return verify_password(code_hash, code.translate(_CODE_SEPARATORS).upper())


def _record_refusal(session: Session, found: _FoundLink, *, now: datetime) -> None:
    """A denied use of a known link leaves its event, committed."""
    session.rollback()
    _append(session, AuditAction.LINK_REFUSED, found, now=now, ok=False)
    session.commit()


def _record_wrong_code(session: Session, found: _FoundLink, *, now: datetime) -> NoReturn:
    """Count a wrong code (locking the link at its limit), commit, raise AccessCodeWrong."""
    counted = session.execute(
        update(Link)
        .where(col(Link.id) == found.link.id, col(Link.locked_at).is_(None))
        .values(failed_codes=col(Link.failed_codes) + 1)
        .returning(col(Link.failed_codes), col(Link.max_code_attempts))
    ).first()
    if counted is None:  # another wrong code locked the link since it was checked
        _record_refusal(session, found, now=now)
        raise LinkLocked("this link was locked after too many wrong access codes")
    failed, limit = counted
    _append(session, AuditAction.LINK_CODE_FAILED, found, now=now, ok=False)
    attempts_left = max(0, limit - failed)
    if attempts_left == 0:
        session.execute(update(Link).where(col(Link.id) == found.link.id).values(locked_at=now))
        _append(session, AuditAction.LINK_LOCKED, found, now=now, ok=False)
    session.commit()
    raise AccessCodeWrong(attempts_left)


def _count_download(session: Session, found: _FoundLink, *, now: datetime) -> None:
    """Use one download, atomically (concurrent downloads never pass the limit); the caller
    records what was downloaded and commits."""
    counted = session.execute(
        update(Link)
        .where(
            col(Link.id) == found.link.id,
            col(Link.locked_at).is_(None),
            col(Link.downloads) < col(Link.max_downloads),
        )
        .values(downloads=col(Link.downloads) + 1)
        .returning(col(Link.downloads))
    ).first()
    if counted is None:  # the last download (or a lock) happened since the link was checked
        _record_refusal(session, found, now=now)
        raise LinkUsedUp("this link has reached its download limit")


def _append(
    session: Session,
    action: AuditAction,
    found: _FoundLink,
    *,
    now: datetime,
    ok: bool = True,
    document_id: uuid.UUID | None = None,
) -> None:
    transfer = found.transfer
    append_event(
        session,
        context=found.audit,
        action=action,
        now=now,
        outcome="ok" if ok else "denied",
        patient_id=found.patient_id,
        case_id=transfer.case_id,
        document_id=document_id,
        transfer_id=transfer.id,
        link_id=found.link.id,
        partner_id=transfer.partner_id,
        legal_basis=transfer.legal_basis,
        purpose=transfer.purpose,
    )


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
