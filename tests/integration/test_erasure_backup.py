"""Erasure (Art. 17) against backups: a copy of the database and of the objects, taken just
before the erasure, still decrypts while the backup window runs (the control: this test can
fail), and decrypts nothing once the root key that wrapped the erased keys is gone.

The erasure destroys the case and patient keys, which leaves a tombstone in the live
database; the copy still holds them wrapped under the active root key. The erasure makes the
daily root-key run rotate at once (``KeyStore.rotation_due``), and the retired root key is
destroyed once the backup window has passed. Run on a local folder and local keyring, and on
versioned S3 and KMS over a moto server (every object version must go).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from api.app import create_app
from infra.db import make_engine
from keys.store import KeyStore
from tests.api.test_cases import assert_problem, open_case
from tests.api.test_transfers import forward, forwardable, upload
from tests.apiharness import (
    ApiHarness,
    MemoryNotifier,
    MutableClock,
    RecordingTaskQueue,
    harness_settings,
)
from tests.factories import PATIENT_NAME, pdf_bytes
from vault.audit.service import AuditContext
from vault.cases.models import Case
from vault.documents.models import Document
from vault.documents.service import read_document
from vault.errors import KeyDestroyed
from vault.keyring import translated_key_errors
from vault.patients.models import Patient
from vault.patients.service import unsafe_patient_identity
from vault.retention.service import RootKeyReport, case_object_prefix, maintain_root_keys
from vault.storage.local import LocalFolderBlobStore
from vault.storage.s3 import S3BlobStore, make_s3_client

REGION = "eu-central-1"


@dataclass
class Backend:
    api: ApiHarness
    versions: Callable[[str], int]  # object versions and delete markers under a prefix


@pytest.fixture(params=["local", pytest.param("s3-kms", marks=pytest.mark.moto)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    overrides: dict[str, Any] = {}
    versions: Callable[[str], int]
    if request.param == "local":

        def versions(prefix: str) -> int:
            return len(list(LocalFolderBlobStore(tmp_path / "var" / "objects").keys(prefix)))

    else:
        moto_url = request.getfixturevalue("moto_url")
        bucket = f"erasure-{uuid.uuid4().hex[:12]}"
        client = make_s3_client(endpoint_url=moto_url, region=REGION)
        S3BlobStore(
            bucket=bucket, endpoint_url=moto_url, region=REGION, client=client
        ).ensure_bucket(versioning=True)
        overrides = {
            "blob_store": "s3",
            "s3_bucket": bucket,
            "s3_endpoint_url": moto_url,
            "key_provider": "kms",
            "kms_endpoint_url": moto_url,
        }

        def versions(prefix: str) -> int:
            listed = client.list_object_versions(Bucket=bucket, Prefix=prefix)
            return len([*listed.get("Versions", []), *listed.get("DeleteMarkers", [])])

    clock, notifier, tasks = MutableClock(), MemoryNotifier(), RecordingTaskQueue()
    app = create_app(
        harness_settings(tmp_path, **overrides), clock=clock, notifier=notifier, tasks=tasks
    )
    with TestClient(app, base_url="http://testserver") as client_:
        yield Backend(ApiHarness(client_, app.state.runtime, clock, notifier, tasks), versions)


@dataclass(frozen=True)
class Backup:
    """A copy of the database file and of every object, as a nightly backup would hold."""

    database: Path
    objects: LocalFolderBlobStore


def take_backup(api: ApiHarness, tmp_path: Path) -> Backup:
    live = api.runtime.engine.url.database
    assert live is not None
    copy = tmp_path / "backup.db"
    with sqlite3.connect(live) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # a consistent copy, whatever sits in the WAL
    objects = LocalFolderBlobStore(tmp_path / "backup-objects")
    for key in api.runtime.blob_store.keys("cases/"):
        objects.put(key, api.runtime.blob_store.open(key))
    return Backup(copy, objects)


def decrypt_from_backup(api: ApiHarness, backup: Backup, case_ids: list[str]) -> list[bytes]:
    """Every document of ``case_ids`` read from the copy, with a key store that has no cache
    (only the root keys in the provider are shared with the live service)."""
    keys = KeyStore(provider=api.runtime.root_keys)
    engine = make_engine(f"sqlite:///{backup.database}")
    try:
        with Session(engine) as session:
            documents = session.exec(
                select(Document)
                .where(col(Document.case_id).in_([uuid.UUID(c) for c in case_ids]))
                .order_by(col(Document.id))
            ).all()
            assert documents
            opened = []
            for document in documents:
                stream = read_document(
                    session=session,
                    store=backup.objects,
                    keys=keys,
                    document_id=document.id,
                    now=api.clock(),
                    audit=AuditContext.SYSTEM,
                )
                opened.append(b"".join(stream.chunks))
            return opened
    finally:
        engine.dispose()


def keys_in_backup_unwrap(api: ApiHarness, backup: Backup, patient_id: uuid.UUID) -> int:
    """How many of the patient's keys (patient key, case keys) the copy still unwraps; the
    patient's name is read back too whenever the patient key unwraps."""
    keys = KeyStore(provider=api.runtime.root_keys)
    engine = make_engine(f"sqlite:///{backup.database}")
    unwrapped = 0
    try:
        with Session(engine) as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            assert patient.erased_at is None  # the copy predates the erasure
            try:
                identity = unsafe_patient_identity(session=session, keys=keys, patient=patient)
                assert identity.name == PATIENT_NAME
                unwrapped += 1
            except KeyDestroyed:
                pass
            for case in session.exec(select(Case).where(Case.patient_id == patient_id)).all():
                try:
                    with translated_key_errors():
                        assert len(keys.unsafe_key_material(session, case.key_id)) == 32
                    unwrapped += 1
                except KeyDestroyed:
                    pass
    finally:
        engine.dispose()
    return unwrapped


def maintain(api: ApiHarness) -> RootKeyReport:
    settings = api.runtime.settings
    with api.session() as session:
        return maintain_root_keys(
            session=session,
            keys=api.runtime.key_store,
            sessions=api.runtime.sessions,
            rotation_days=settings.root_key_rotation_days,
            backup_window_days=settings.backup_window_days,
            now=api.clock(),
        )


def test_nothing_of_an_erased_patient_is_readable_anywhere_nor_from_an_old_backup(
    backend: Backend, tmp_path: Path
) -> None:
    api = backend.api
    setup = forwardable(api)
    patient = setup.patient
    assert patient.patient_id is not None
    issued = forward(api, setup).json()
    token = issued["link_url"].rsplit("/", 1)[1]
    second_case = open_case(api, patient)
    upload(api, patient, second_case, pdf_bytes(pages=2), "entlassbrief.pdf")
    case_ids = [setup.case_id, second_case]
    bystander = api.patient(name="Max Beispiel")
    their_case = open_case(api, bystander)
    their_document = upload(api, bystander, their_case, pdf_bytes(), "arztbrief.pdf")
    plaintexts = sorted(
        api.client.get(f"/documents/{document_id}/content", headers=patient.headers).content
        for document_id in setup.document_ids
    )
    assert maintain(api).rotated is False  # a young root key, nothing destroyed yet
    backup = take_backup(api, tmp_path)

    erased = api.client.post("/me/erasure", headers=patient.headers, json={"confirm": True})

    assert erased.status_code == 200, erased.text
    assert sorted(erased.json()["erased_cases"]) == sorted(case_ids)
    # Through the API: the account is gone, documents and links answer 410.
    assert_problem(api.client.get("/auth/me", headers=patient.headers), 401, "not-authenticated")
    for document_id in setup.document_ids:
        assert_problem(
            api.client.get(f"/documents/{document_id}/content", headers=setup.coordinator.headers),
            410,
            "gone",
        )
    assert_problem(api.client.get(f"/l/{token}"), 410, "gone")
    cases = api.client.get("/cases", headers=setup.coordinator.headers).json()
    assert {case["id"]: case["status"] for case in cases if case["id"] in case_ids} == {
        case_id: "shredded" for case_id in case_ids
    }
    # In the object store: no object, no old version, no delete marker under the cases.
    for case_id in case_ids:
        assert backend.versions(case_object_prefix(uuid.UUID(case_id))) == 0
    assert backend.versions(case_object_prefix(uuid.UUID(their_case))) == 1

    # The control: within the backup window the old copy still opens everything.
    assert sorted(decrypt_from_backup(api, backup, [setup.case_id])) == plaintexts
    assert keys_in_backup_unwrap(api, backup, patient.patient_id) == 3

    api.clock.advance(hours=6)
    rotation = maintain(api)  # the next daily run: due because keys were destroyed
    assert rotation.rotated is True
    assert rotation.root_keys_destroyed == ()
    api.clock.advance(days=api.runtime.settings.backup_window_days - 1)
    assert maintain(api) == RootKeyReport(rotated=False, rewrapped=0, root_keys_destroyed=())
    assert keys_in_backup_unwrap(api, backup, patient.patient_id) == 3

    api.clock.advance(days=2)  # the backup window has passed since the rotation
    destroyed = maintain(api)

    assert len(destroyed.root_keys_destroyed) == 1
    assert keys_in_backup_unwrap(api, backup, patient.patient_id) == 0
    with pytest.raises(KeyDestroyed):
        decrypt_from_backup(api, backup, [setup.case_id])
    with pytest.raises(KeyDestroyed):
        decrypt_from_backup(api, backup, [second_case])
    # Everyone else's keys moved on with the rotation: their data is intact.
    again = api.sign_in(bystander.login, bystander.password)
    other = api.client.get(
        f"/documents/{their_document}/content", headers={"Authorization": f"Bearer {again}"}
    )
    assert other.status_code == 200
    assert other.content.startswith(b"%PDF")
