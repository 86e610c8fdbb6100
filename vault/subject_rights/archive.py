"""The ZIP archive of a data-subject export, written as a stream.

``archive_chunks`` yields the archive's bytes as they are made (``stream-zip``: ZIP64 where a
member or the archive needs it, every member's size and CRC in a data descriptor after it), so
the export build hands them straight to the envelope encryptor and the object store: no temp
file, and memory bounded by a few frames whatever the size of the documents. The documents are
pulled one at a time, only when the archive reaches them.

What is in it::

    README.txt         what is in the archive, in plain words
    documents/nnn-...  every document of the patient's cases that still exists, decrypted
    data.json          SubjectData: everything the database holds (the published schema)
    fhir-bundle.json   portability (Art. 20) only: a FHIR R4 Bundle for another provider

The documents come before data.json so that a build notices a document that vanished while it
ran (``Gone``, raised from ``open_document``) before it has written the description of it.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from stream_zip import ZIP_AUTO, MemberFile, stream_zip

from vault.subject_rights.export_schema import SCHEMA_ID, ExportedDocument, SubjectData
from vault.subject_rights.models import Right

README = "README.txt"
DATA = "data.json"
FHIR_BUNDLE = "fhir-bundle.json"
_FILE_MODE = stat.S_IFREG | 0o600
# Documents are PDF, PNG, JPEG or TIFF: compressed already, so deflate only frames them
# (level 0: stored blocks, close to copying speed). README and JSON compress well.
DOCUMENT_LEVEL = 0
TEXT_LEVEL = 6
ZIP_CHUNK = 64 * 1024

_README = """\
Your data held by medvault
==========================

This archive answers your request for {what} ({article} GDPR). It was made on {made} (UTC)
and is deleted from medvault {kept} after that: download it and keep it somewhere safe. It
holds your medical documents and personal details; anyone who has this file can read them.

What is in it
-------------
data.json
    Everything medvault holds about you: your identity and contact details, your accounts,
    your cases with their outcomes, your documents (described), the consents you gave with
    their texts, restrictions, survey answers, objections, every transfer of your data with
    its recipient, purpose and legal basis and every download of it, your data-protection
    requests, and every event of medvault's log about you or your data. Each item says when
    medvault will delete it ("retention_until") and who put it there ("source").
    Items that were deleted for good are listed as tombstones (for example
    "shredded_documents"): what they were and when they went, never their contents.
    The format is JSON, described by the schema {schema_id}, published by medvault at
    /schemas/subject-export.json.

documents/
    Your documents that still exist, decrypted, {documents} in all. data.json lists each
    one with its "archive_path" in this folder, its size and its SHA-256 checksum, so you
    can check each copy is complete.
{fhir}
Times are in UTC. Numbers like 0b6c6f0e-3a51-... are medvault's identifiers of your cases,
documents and other items.
"""

_FHIR_SECTION = """
fhir-bundle.json
    The same data as a FHIR R4 Bundle (HL7 FHIR, https://hl7.org/fhir/R4/): a Patient, a
    DocumentReference per document (pointing at its file in documents/), a Consent per
    consent and an AuditEvent per disclosure. Another healthcare provider can import it.
"""

_WHAT = {
    Right.ACCESS: ("access to your data (right of access)", "Art. 15"),
    Right.PORTABILITY: ("your data to take to another provider (data portability)", "Art. 20"),
}


def archive_chunks(
    *,
    data: SubjectData,
    right: Right,
    fhir: dict[str, Any] | None,
    open_document: Callable[[ExportedDocument], Iterable[bytes]],
    kept_for: timedelta,
    now: datetime,
) -> Iterator[bytes]:
    """The archive's bytes, made as they are pulled. ``open_document`` gives the plaintext of a
    document in chunks; it is called when the archive reaches that document, never earlier."""
    if right not in _WHAT:
        raise ValueError(f"an export answers {sorted(_WHAT)}, not {right}")
    return iter(stream_zip(_members(data, right, fhir, open_document, kept_for, now), ZIP_CHUNK))


def _members(
    data: SubjectData,
    right: Right,
    fhir: dict[str, Any] | None,
    open_document: Callable[[ExportedDocument], Iterable[bytes]],
    kept_for: timedelta,
    now: datetime,
) -> Iterator[MemberFile]:
    yield _small_member(README, readme(data, right, fhir is not None, kept_for).encode(), now)
    for document in data.documents:
        chunks = open_document(document)
        method = ZIP_AUTO(document.size, level=DOCUMENT_LEVEL)
        yield document.archive_path, now, _FILE_MODE, method, chunks
    yield _small_member(DATA, data.model_dump_json(indent=2).encode(), now)
    if fhir is not None:
        yield _small_member(FHIR_BUNDLE, json.dumps(fhir, indent=2).encode(), now)


def readme(data: SubjectData, right: Right, with_fhir: bool, kept_for: timedelta) -> str:
    """README.txt: what the archive holds, in plain words (nothing personal in it)."""
    what, article = _WHAT[right]
    days = kept_for.days
    return _README.format(
        what=what,
        article=article,
        made=data.generated_at.strftime("%Y-%m-%d %H:%M"),
        kept="one day" if days == 1 else f"{days} days",
        schema_id=SCHEMA_ID,
        documents=len(data.documents),
        fhir=_FHIR_SECTION if with_fhir else "",
    )


def _small_member(name: str, content: bytes, now: datetime) -> MemberFile:
    """README and JSON: made in memory whole (their size is that of the database's rows)."""
    return name, now, _FILE_MODE, ZIP_AUTO(len(content), level=TEXT_LEVEL), (content,)
