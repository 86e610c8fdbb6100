"""The extracts API: request (enqueued after commit), status, download, scopes, who may do what."""

from __future__ import annotations

import io
from datetime import timedelta

import pyarrow.parquet as pq

from tests.api.test_cases import assert_problem
from tests.apiharness import ApiHarness
from tests.factories import NOW, intake_limits, make_qa_case, make_qa_patient
from tests.factories import Vault as FactoryVault
from vault.accounts.models import Role
from vault.extracts.service import build_extract

REQUEST = {
    "period_from": "2026-11-01",
    "period_to": "2026-11-30",
    "fields": ["age_band", "sex", "country", "diagnoses", "survey_scores"],
    "icd_chapter_only": True,
}


def seed_cases(api: ApiHarness, count: int) -> None:
    with api.session() as session:
        vault = FactoryVault(
            session=session,
            store=api.runtime.blob_store,
            keys=api.runtime.key_store,
            spool_dir=api.runtime.spool_dir,
            limits=intake_limits(),
        )
        for _ in range(count):
            make_qa_case(vault, make_qa_patient(session, vault.keys))


def run_build(api: ApiHarness, extract_id: str) -> None:
    """What the worker does when it receives the task."""
    import uuid

    build_extract(
        sessions=api.runtime.sessions,
        store=api.runtime.blob_store,
        keys=api.runtime.key_store,
        extract_id=uuid.UUID(extract_id),
        retention=timedelta(days=api.runtime.settings.extract_retention_days),
        frame_size=api.runtime.frame_size,
        now=NOW,
    )


def test_an_analyst_requests_builds_and_downloads_an_extract(api: ApiHarness) -> None:
    seed_cases(api, 6)
    analyst = api.user(Role.ANALYST)
    response = api.client.post("/extracts", json=REQUEST, headers=analyst.headers)
    assert response.status_code == 202, response.text
    extract_id = response.json()["id"]
    assert response.json()["status"] == "requested"
    assert response.json()["k"] == api.runtime.settings.extract_k
    assert api.tasks.sent == [("medvault.extracts.build", (extract_id,))]
    early = api.client.get(f"/extracts/{extract_id}/content", headers=analyst.headers)
    assert early.status_code == 409

    run_build(api, extract_id)
    status = api.client.get(f"/extracts/{extract_id}", headers=analyst.headers).json()
    assert status["status"] == "ready"
    assert status["report"]["rows"] == 6
    assert status["report"]["k_achieved"] >= 5
    parquet = api.client.get(f"/extracts/{extract_id}/content", headers=analyst.headers)
    assert parquet.status_code == 200
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 6
    assert set(table.column("diagnoses").to_pylist()) == {"XIII"}  # chapter only
    csv = api.client.get(
        f"/extracts/{extract_id}/content", params={"format": "csv"}, headers=analyst.headers
    )
    assert csv.status_code == 200
    assert csv.text.splitlines()[0].startswith("pseudonym,age_band,sex,country,diagnoses")
    listed = api.client.get("/extracts", headers=analyst.headers).json()
    assert [item["id"] for item in listed] == [extract_id]


def test_extracts_are_the_requesting_analysts_only(api: ApiHarness) -> None:
    analyst, other = api.user(Role.ANALYST), api.user(Role.ANALYST)
    extract_id = api.client.post("/extracts", json=REQUEST, headers=analyst.headers).json()["id"]
    assert api.client.get(f"/extracts/{extract_id}", headers=other.headers).status_code == 404
    content = api.client.get(f"/extracts/{extract_id}/content", headers=other.headers)
    assert content.status_code == 404
    assert api.client.get("/extracts", headers=other.headers).json() == []
    for role in (Role.COORDINATOR, Role.ADMIN):
        user = api.user(role)
        assert api.client.get(f"/extracts/{extract_id}", headers=user.headers).status_code == 403
        assert api.client.post("/extracts", json=REQUEST, headers=user.headers).status_code == 403
    patient = api.patient()
    assert api.client.get("/extracts", headers=patient.headers).status_code == 403


def test_bad_requests_are_refused_and_nothing_is_enqueued(api: ApiHarness) -> None:
    analyst = api.user(Role.ANALYST)
    for body in (
        {**REQUEST, "fields": []},
        {**REQUEST, "fields": ["name"]},
        {**REQUEST, "period_from": "2026-12-01"},
        {**REQUEST, "scope_id": "0b6c6f0e-3a51-4a4e-9d5e-2f1d0c9a7b11"},
        # Unix times were read as dates (0.0 as 1970-01-01; found by OpenAPI fuzzing)
        {**REQUEST, "period_from": "1969-12-01", "period_to": 0.0},
        {**REQUEST, "period_to": "1795996800"},
    ):
        response = api.client.post("/extracts", json=body, headers=analyst.headers)
        assert response.status_code == 422, body
    assert api.tasks.sent == []
    assert api.client.get("/extracts", headers=analyst.headers).json() == []


def test_admins_create_named_scopes_that_analysts_use(api: ApiHarness) -> None:
    admin, analyst = api.user(Role.ADMIN), api.user(Role.ANALYST)
    created = api.client.post(
        "/admin/extract-scopes", json={"name": "qa-2027"}, headers=admin.headers
    )
    assert created.status_code == 201
    scope_id = created.json()["id"]
    duplicate = api.client.post(
        "/admin/extract-scopes", json={"name": "qa-2027"}, headers=admin.headers
    )
    assert_problem(duplicate, 409, "scope-name-taken")
    refused = api.client.post(
        "/admin/extract-scopes", json={"name": "mine"}, headers=analyst.headers
    )
    assert refused.status_code == 403
    scopes = api.client.get("/extract-scopes", headers=analyst.headers).json()
    assert [scope["name"] for scope in scopes] == ["qa-2027"]
    response = api.client.post(
        "/extracts", json={**REQUEST, "scope_id": scope_id}, headers=analyst.headers
    )
    assert response.status_code == 202
    assert response.json()["scope_id"] == scope_id
