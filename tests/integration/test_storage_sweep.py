"""The storage sweep against each store: the listing with times and the abort of unfinished
uploads both stores gained for it (local folder, and S3 on a moto server), the sweep over S3
with multipart objects and an open multipart upload, and `medvault storage sweep`.

The sweep's rules (which row owns which object): unit/vault/storage/test_sweep.py.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import Session, select

from infra.db import session_factory
from keys.local import LocalKeyringProvider
from keys.store import KeyStore
from tests.factories import Vault, intake_limits, make_case, png_bytes
from tests.integration.stores import PART, Backend, local_backend, s3_backend
from tests.integration.test_cli import medvault as run
from vault.audit.models import AuditEvent
from vault.clock import utcnow
from vault.documents.service import object_key_for
from vault.storage.local import LocalFolderBlobStore
from vault.storage.s3 import S3BlobStore
from vault.storage.sweep import sweep_storage

if TYPE_CHECKING:
    import sqlalchemy as sa
    from mypy_boto3_s3 import S3Client


def start_unfinished_upload(backend: Backend, key: str) -> None:
    """What a process that died mid-upload leaves: an open multipart upload, a temp file."""
    store = backend.store
    if isinstance(store, S3BlobStore):
        client: S3Client = store._client
        client.create_multipart_upload(Bucket=store.bucket, Key=key)
    else:
        assert isinstance(store, LocalFolderBlobStore)
        store.check()  # creates tmp/
        (store.root / "tmp" / f"{uuid.uuid4().hex}.part").write_bytes(b"half an upload")


# -- what the stores gained --------------------------------------------------------------------


def test_listing_gives_each_key_in_order_with_when_it_was_written(backend: Backend) -> None:
    before = utcnow() - timedelta(seconds=5)  # S3 dates objects to the second
    for key in ["b/2", "a/1", "a/sub/3"]:
        backend.store.put(key, [key.encode()])
    after = utcnow() + timedelta(seconds=5)

    listed = list(backend.store.listing("a"))

    assert [entry.key for entry in listed] == ["a/1", "a/sub/3"]
    assert all(before <= entry.modified_at <= after for entry in listed)
    assert all(entry.modified_at.tzinfo is not None for entry in listed)
    assert [entry.key for entry in backend.store.listing()] == list(backend.store.keys())


def test_abort_incomplete_uploads_removes_those_started_before_the_cutoff(
    backend: Backend,
) -> None:
    start_unfinished_upload(backend, "cases/c1/dead")
    assert len(backend.leftovers()) == 1

    assert backend.store.abort_incomplete_uploads(older_than=utcnow() + timedelta(seconds=5)) == 1
    assert backend.leftovers() == []
    assert backend.store.abort_incomplete_uploads(older_than=utcnow() + timedelta(seconds=5)) == 0


def test_abort_incomplete_uploads_spares_a_recent_temp_file(tmp_path: Path) -> None:
    """(S3: moto dates every multipart upload to 2010, so that side is tested with botocore's
    Stubber in unit/vault/storage/test_s3_blob_store.py.)"""
    backend = local_backend(tmp_path / "store")
    start_unfinished_upload(backend, "cases/c1/running")

    assert backend.store.abort_incomplete_uploads(older_than=utcnow() - timedelta(hours=1)) == 0
    assert len(backend.leftovers()) == 1


def test_abort_incomplete_uploads_wants_an_aware_time(backend: Backend) -> None:
    with pytest.raises(ValueError, match="timezone"):
        backend.store.abort_incomplete_uploads(older_than=utcnow().replace(tzinfo=None))


# -- the sweep on S3 -----------------------------------------------------------------------------


@pytest.mark.moto
def test_the_sweep_on_s3_keeps_multipart_documents_and_removes_orphans_and_open_uploads(
    moto_url: str, s3_client: S3Client, session: Session, engine: sa.Engine, tmp_path: Path
) -> None:
    backend = s3_backend(moto_url, s3_client)
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    vault = Vault(
        session=session,
        store=backend.store,
        keys=KeyStore(provider=LocalKeyringProvider(tmp_path / "keys" / "keyring.json")),
        spool_dir=spool,
        limits=intake_limits(),
    )
    case = make_case(session, vault.keys)
    big = vault.upload(case, png_bytes(1500, 1300, seed=9), filename="scan.png")  # > one part
    assert big.size > PART
    small = vault.upload(case, png_bytes(seed=10), filename="small.png")
    orphan = object_key_for(case_id=case.id, document_id=uuid.uuid4())
    backend.store.put(orphan, [os.urandom(PART + 1)])  # a multipart orphan, too
    start_unfinished_upload(backend, object_key_for(case_id=case.id, document_id=uuid.uuid4()))
    session.commit()

    report = sweep_storage(
        sessions=session_factory(engine), store=backend.store, now=utcnow() + timedelta(days=2)
    )

    assert (report.orphans_deleted, report.uploads_aborted) == (1, 1)
    assert sorted(backend.store.keys()) == sorted([big.object_key, small.object_key])
    assert backend.versions(orphan) == 0
    assert backend.leftovers() == []
    assert b"".join(vault.read(big.id).chunks) == png_bytes(1500, 1300, seed=9)
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "storage.sweep")).all()
    assert len(events) == 1


# -- the command -------------------------------------------------------------------------------


def test_storage_sweep_command_dry_run_then_sweep(env: dict[str, str], tmp_path: Path) -> None:
    assert run("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    orphan = tmp_path / "data" / "objects" / "objects" / "cases" / str(uuid.uuid4()) / "doc"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"ciphertext nobody points to")
    young = orphan.with_name("doc-2")
    young.write_bytes(b"an upload whose row is on its way")
    two_days_ago = (utcnow() - timedelta(days=2)).timestamp()
    os.utime(orphan, (two_days_ago, two_days_ago))

    dry = run("storage", "sweep", "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "orphans_found" in dry.stdout
    assert orphan.exists()

    swept = run("storage", "sweep", env=env, cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    assert not orphan.exists()
    assert young.exists()
    assert str(orphan.name) not in swept.stdout + swept.stderr  # counts only, never keys

    again = run("storage", "sweep", "--grace-hours", "0", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert not young.exists()

    refused = run("storage", "sweep", "--grace-hours", "-1", env=env, cwd=tmp_path)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
