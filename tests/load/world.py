"""Seeds the installation under load through its own front doors, as its users would: staff
accounts with the `medvault` command, patients who register, confirm the mailed code, open a
case, consent to forwarding and upload a first document, a partner made by the admin, and one
link per case issued by the coordinator, so partners have something to download from the start.
"""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx

from tests.e2e.service import PASSWORD, medvault, sign_in
from tests.load.world_format import IssuedLink, SeededPatient, World
from tests.soak.server import Patient

COORDINATOR = "coordinator-load"
ADMIN = "admin-load"
LINK_DOWNLOADS = 100  # the most a transfer may allow: a partner client uses many per link
SEED_TIMEOUT_SECONDS = 120.0


def forward(
    client: httpx.Client,
    coordinator: dict[str, str],
    *,
    patient: SeededPatient,
    partner_id: str,
    document_ids: list[str],
) -> IssuedLink:
    """Forward documents of the patient's case under their consent; the partner's link."""
    transfer = client.post(
        f"/cases/{patient.case_id}/transfers",
        headers=coordinator,
        json={
            "document_ids": document_ids,
            "partner_id": partner_id,
            "purpose": "treatment-check",
            "legal_basis": "art9-2-a",
            "consent_id": patient.consent_id,
            "max_downloads": LINK_DOWNLOADS,
        },
    )
    assert transfer.status_code == 201, transfer.text
    issued = transfer.json()
    return IssuedLink(
        path=httpx.URL(issued["link_url"]).path,
        code=issued["access_code"],
        document_ids=document_ids,
        uses_left=LINK_DOWNLOADS,
    )


def seed_world(
    *, base_url: str, env: dict[str, str], patients: int, payloads: dict[str, Path], folder: Path
) -> World:
    """Seed ``patients`` patients (case, consent, one PDF, one link each), the coordinator and
    a partner; the world the locust process loads, saved as ``folder/world.json``."""
    medvault("user", "add", COORDINATOR, "--role", "coordinator", env=env, stdin=PASSWORD)
    medvault("user", "add", ADMIN, "--role", "admin", env=env, stdin=PASSWORD)
    with httpx.Client(base_url=base_url, timeout=SEED_TIMEOUT_SECONDS) as client:
        coordinator, admin = sign_in(client, COORDINATOR), sign_in(client, ADMIN)
        partner = client.post(
            "/admin/partners",
            headers=admin,
            json={
                "kind": "clinic",
                "name": "Load Test Clinic",
                "contact_email": "intake@load-test-clinic.example",
            },
        )
        assert partner.status_code == 201, partner.text
        partner_id = partner.json()["id"]
        text_version = client.get("/consent-texts").json()[0]["version"]
        first_upload = payloads["small_pdf"].read_bytes()

        seeded, links = [], []
        for _ in range(patients):
            patient = Patient(client, env)
            consent = client.post(
                f"/cases/{patient.case_id}/consents",
                headers=patient.headers,
                json={"text_version": text_version},
            )
            assert consent.status_code == 201, consent.text
            uploaded = client.put(
                f"/cases/{patient.case_id}/uploads/first-scan.pdf",
                params={"kind": "record"},
                headers=patient.headers,
                content=first_upload,
            )
            assert uploaded.status_code == 201, uploaded.text
            account = SeededPatient(patient.login, patient.case_id, consent.json()["id"])
            seeded.append(account)
            links.append(
                forward(
                    client,
                    coordinator,
                    patient=account,
                    partner_id=partner_id,
                    document_ids=[uploaded.json()["id"]],
                )
            )

    world = World(
        password=PASSWORD,
        coordinator=COORDINATOR,
        partner_id=partner_id,
        patients=seeded,
        links=links,
        payloads={name: str(path) for name, path in payloads.items()},
        counts_path=str(folder / "locust-counts.json"),
        link_downloads=LINK_DOWNLOADS,
    )
    world.save(folder / "world.json")
    return world
