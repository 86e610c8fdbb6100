"""The whole service as users meet it: `medvault serve` over real HTTP, on PostgreSQL, with the
S3 store and KMS on a moto server. A patient uploads, a coordinator forwards, a partner downloads
the same (sanitised) bytes with the access code, and the audit chain verifies."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx2 as httpx
import pikepdf
import pytest

from tests.conftest import free_port
from tests.e2e.service import PASSWORD, mailed_code, medvault, medvault_running, sign_in
from tests.factories import PATIENT_NAME, pdf_bytes

pytestmark = [pytest.mark.postgres, pytest.mark.moto, pytest.mark.slow]


@pytest.fixture
def env(tmp_path: Path, own_postgres_url: str, moto_url: str) -> dict[str, str]:
    bucket = f"medvault-e2e-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_url, region_name="eu-central-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MEDVAULT_")}
    port = free_port()
    return clean | {
        "MEDVAULT_DATA_DIR": str(tmp_path / "var"),
        "MEDVAULT_DATABASE_URL": own_postgres_url,
        "MEDVAULT_BLOB_STORE": "s3",
        "MEDVAULT_S3_BUCKET": bucket,
        "MEDVAULT_S3_ENDPOINT_URL": moto_url,
        "MEDVAULT_KEY_PROVIDER": "kms",
        "MEDVAULT_KMS_ENDPOINT_URL": moto_url,
        "MEDVAULT_PORT": str(port),
        "MEDVAULT_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[httpx.Client]:
    medvault("db", "upgrade", env=env)
    port = int(env["MEDVAULT_PORT"])
    with (
        medvault_running("serve", env=env, log_path=tmp_path / "server.log", port=port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        yield client


def test_patient_uploads_coordinator_forwards_partner_downloads(
    env: dict[str, str], server: httpx.Client
) -> None:
    client = server
    assert client.get("/readyz").status_code == 200
    medvault("user", "add", "coordinator-e2e", "--role", "coordinator", env=env, stdin=PASSWORD)
    medvault("user", "add", "admin-e2e", "--role", "admin", env=env, stdin=PASSWORD)
    coordinator, admin = sign_in(client, "coordinator-e2e"), sign_in(client, "admin-e2e")

    email = f"patient-{uuid.uuid4().hex[:6]}@example.org"
    registered = client.post(
        "/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "name": PATIENT_NAME,
            "birth_date": "1964-08-12",
        },
    )
    assert registered.status_code == 202, registered.text
    confirmed = client.post("/auth/confirm", json={"token": mailed_code(env, email)})
    assert confirmed.status_code == 204, confirmed.text
    patient = sign_in(client, email)

    case = client.post("/cases", headers=patient)
    assert case.status_code == 201, case.text
    case_id = case.json()["id"]
    text_version = client.get("/consent-texts").json()[0]["version"]
    consent = client.post(
        f"/cases/{case_id}/consents", headers=patient, json={"text_version": text_version}
    )
    assert consent.status_code == 201, consent.text

    original = pdf_bytes(3, with_javascript=True)
    uploaded = client.put(
        f"/cases/{case_id}/uploads/befund.pdf",
        params={"kind": "record"},
        headers=patient,
        content=original,
    )
    assert uploaded.status_code == 201, uploaded.text
    document = uploaded.json()
    assert document["media_type"] == "application/pdf"

    partner = client.post(
        "/admin/partners",
        headers=admin,
        json={"kind": "clinic", "name": "Klinik am See", "contact_email": "intake@klinik.example"},
    )
    assert partner.status_code == 201, partner.text
    transfer = client.post(
        f"/cases/{case_id}/transfers",
        headers=coordinator,
        json={
            "document_ids": [document["id"]],
            "partner_id": partner.json()["id"],
            "purpose": "treatment-check",
            "legal_basis": "art9-2-a",
            "consent_id": consent.json()["id"],
        },
    )
    assert transfer.status_code == 201, transfer.text
    link_url, code = transfer.json()["link_url"], transfer.json()["access_code"]
    assert link_url.startswith(str(client.base_url))
    link_path = httpx.URL(link_url).path

    listing = client.get(link_path, headers={"Accept": "application/json"})
    assert listing.status_code == 200, listing.text
    assert [d["id"] for d in listing.json()["documents"]] == [document["id"]]

    downloaded = client.post(f"{link_path}/documents/{document['id']}", data={"code": code})
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.headers["cache-control"] == "no-store"
    assert downloaded.headers["referrer-policy"] == "no-referrer"
    body = downloaded.content
    assert hashlib.sha256(body).hexdigest() == document["sha256"]
    with pikepdf.open(io.BytesIO(body)) as pdf:
        assert len(pdf.pages) == 3
        assert "/OpenAction" not in pdf.Root
        assert "/Names" not in pdf.Root

    disclosures = client.get("/me/disclosures", headers=patient)
    assert disclosures.status_code == 200, disclosures.text
    [disclosure] = disclosures.json()
    assert disclosure["legal_basis"] == "art9-2-a"
    assert [d["document_id"] for d in disclosure["downloads"]] == [document["id"]]

    verified = medvault("audit", "verify", env=env)
    assert "ok" in verified.stdout
