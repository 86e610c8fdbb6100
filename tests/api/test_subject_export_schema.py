"""The published schema of the personal-data document in every export: public, the same for
everyone, and it validates a real export."""

from __future__ import annotations

import jsonschema
import sqlalchemy as sa

from tests.apiharness import ApiHarness
from vault.accounts.models import Role
from vault.audit.models import AuditEvent
from vault.subject_rights.export_data import (
    subject_data_schema,
    unsafe_collect_subject_data,
)

SCHEMA_PATH = "/schemas/subject-export.json"


def test_anyone_gets_the_schema(api: ApiHarness) -> None:
    anonymous = api.client.get(SCHEMA_PATH)
    assert anonymous.status_code == 200
    assert anonymous.headers["content-type"] == "application/schema+json"
    assert anonymous.json() == subject_data_schema()
    assert anonymous.json()["properties"]["schema_version"]["const"] == (
        "medvault-subject-export/1"
    )
    signed_in = api.client.get(SCHEMA_PATH, headers=api.user(Role.COORDINATOR).headers)
    assert signed_in.json() == anonymous.json()


def test_the_published_schema_validates_an_export(api: ApiHarness) -> None:
    patient = api.patient()
    assert api.client.post("/cases", headers=patient.headers).status_code == 201
    schema = api.client.get(SCHEMA_PATH).json()
    with api.session() as session:
        assert patient.patient_id is not None
        data = unsafe_collect_subject_data(
            session=session,
            keys=api.runtime.key_store,
            patient_id=patient.patient_id,
            retention_years=api.runtime.settings.retention_years,
            now=api.clock(),
        )
    document = data.model_dump(mode="json")
    assert len(document["cases"]) == 1
    jsonschema.Draft202012Validator(schema).validate(document)


def test_the_schema_is_read_only(api: ApiHarness) -> None:
    with api.session() as session:
        before = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    response = api.client.post(SCHEMA_PATH, json={"type": "object"})
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://medvault.invalid/problems/method-not-allowed"
    assert api.client.get(SCHEMA_PATH).json() == subject_data_schema()  # nothing was stored
    with api.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before
