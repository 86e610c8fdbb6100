"""What must hold once the faults are over, read straight from PostgreSQL and the bucket (never
through the proxies): each returns a list of problems, empty when all is well.

- every live document row has its object, and every acknowledged upload has its row;
- after the sweep, no object and no stored version without the row that owns it, and no open
  multipart upload;
- the audit chain: no sequence gap; each document row has exactly one ``document.store`` event
  and each such event its row (no half-done upload); each acknowledged upload, read, transfer and
  partner download has its event.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import col, select

from infra.wiring import Runtime
from tests.faults.operations import Ledger
from vault.audit.models import AuditAction, AuditEvent, AuditHead
from vault.documents.models import Document
from vault.extracts.models import Extract, ExtractStatus
from vault.storage.sweep import SWEPT_PREFIXES
from vault.subject_rights.models import ExportStatus, SubjectExport
from vault.transfers.models import Transfer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Bucket:
    """What the bucket holds under the prefixes the vault writes."""

    objects: frozenset[str]  # current objects
    versioned: frozenset[str]  # keys with any stored version or delete marker
    open_uploads: int  # multipart uploads begun and never completed nor aborted


def read_bucket(s3: S3Client, bucket: str) -> Bucket:
    objects: set[str] = set()
    versioned: set[str] = set()
    for prefix in SWEPT_PREFIXES:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            objects.update(item["Key"] for item in page.get("Contents", []))
        for listed in s3.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            versioned.update(version["Key"] for version in listed.get("Versions", []))
            versioned.update(marker["Key"] for marker in listed.get("DeleteMarkers", []))
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return Bucket(frozenset(objects), frozenset(versioned), len(uploads))


def owned_keys(runtime: Runtime) -> set[str]:
    """Every object key a row owns now (no build is running any more)."""
    with runtime.sessions() as session:
        documents = session.exec(
            select(col(Document.object_key)).where(col(Document.shredded_at).is_(None))
        ).all()
        extracts = session.exec(select(Extract).where(Extract.status == ExtractStatus.READY)).all()
        exports = session.exec(
            select(col(SubjectExport.object_key)).where(SubjectExport.status == ExportStatus.READY)
        ).all()
    keys = set(documents) | {key for key in exports if key is not None}
    for extract in extracts:
        keys |= {key for key in (extract.parquet_key, extract.csv_key) if key is not None}
    return keys


def orphans(runtime: Runtime, bucket: Bucket) -> set[str]:
    """Objects (or stored versions) no row owns."""
    return set(bucket.objects | bucket.versioned) - owned_keys(runtime)


def documents_and_objects(runtime: Runtime, bucket: Bucket, ledger: Ledger) -> list[str]:
    problems = []
    with runtime.sessions() as session:
        rows = {
            str(document.id): document
            for document in session.exec(
                select(Document).where(col(Document.shredded_at).is_(None))
            )
        }
    without_object = [d for d in rows.values() if d.object_key not in bucket.objects]
    if without_object:
        problems.append(f"{len(without_object)} document row(s) without their object")
    lost = [u for u in ledger.uploads.values() if u.document_id not in rows]
    if lost:
        problems.append(f"{len(lost)} acknowledged upload(s) without a document row")
    changed = [
        u
        for u in ledger.uploads.values()
        if u.document_id in rows and rows[u.document_id].sha256 != u.sha256
    ]
    if changed:
        problems.append(f"{len(changed)} acknowledged upload(s) recorded with another SHA-256")
    return problems


def after_the_sweep(runtime: Runtime, bucket: Bucket) -> list[str]:
    problems = []
    if left := orphans(runtime, bucket):
        problems.append(f"{len(left)} object(s) or version(s) without a row after the sweep")
    if bucket.open_uploads:
        problems.append(f"{bucket.open_uploads} open multipart upload(s) after the sweep")
    return problems


def audit_trail(runtime: Runtime, ledger: Ledger) -> list[str]:
    problems = []
    with runtime.sessions() as session:
        seqs = session.exec(select(AuditEvent.seq).order_by(col(AuditEvent.seq))).all()
        head = session.get(AuditHead, 1)
        events = session.exec(
            select(AuditEvent.action, AuditEvent.document_id, AuditEvent.transfer_id).where(
                col(AuditEvent.outcome) == "ok"
            )
        ).all()
        document_ids = {str(i) for i in session.exec(select(col(Document.id))).all()}
        transfer_ids = {str(i) for i in session.exec(select(col(Transfer.id))).all()}
    if not seqs or seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        problems.append("the audit chain has a gap in its sequence")
    if head is not None and seqs and head.seq != seqs[-1]:
        problems.append("the audit head is not the last event")
    stored = Counter(_id(d) for action, d, _ in events if action == AuditAction.DOCUMENT_STORE)
    reads = Counter(_id(d) for action, d, _ in events if action == AuditAction.DOCUMENT_READ)
    created = Counter(_id(t) for action, _, t in events if action == AuditAction.TRANSFER_CREATE)
    downloads = Counter(_id(t) for action, _, t in events if action == AuditAction.LINK_DOWNLOAD)
    if twice := [d for d, n in stored.items() if n != 1]:
        problems.append(f"{len(twice)} document(s) with more than one document.store event")
    if unrecorded := document_ids - set(stored):
        problems.append(f"{len(unrecorded)} document row(s) without their document.store event")
    if eventless := set(stored) - document_ids:
        problems.append(f"{len(eventless)} document.store event(s) without their row")
    if lost := [u for u in ledger.uploads if u not in stored]:
        problems.append(f"{len(lost)} acknowledged upload(s) without their document.store event")
    if unread := [d for d, n in ledger.reads.items() if reads[d] < n]:
        problems.append(f"{len(unread)} document(s) read more often than document.read says")
    if missing := [t for t in ledger.transfers if t not in transfer_ids or not created[t]]:
        problems.append(f"{len(missing)} acknowledged transfer(s) without row or event")
    if untold := [t for t, n in ledger.link_downloads.items() if downloads[t] < n]:
        problems.append(f"{len(untold)} partner download(s) without their link.download event")
    return problems


def _id(value: uuid.UUID | None) -> str:
    return "" if value is None else str(value)
