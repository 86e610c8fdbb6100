"""Access (Art. 15) and portability (Art. 20) exports through the API: request, build (the
worker's job, run in process), signed link, download and unzip; every refusal with its problem
type and nothing stored; deletion after a few days and with the patient's data."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import uuid
import zipfile
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlmodel import col, select

from tests.api.test_cases import assert_problem, open_case
from tests.apiharness import ApiHarness, TestUser
from tests.factories import PATIENT_NAME, pdf_bytes, png_bytes
from vault.accounts.models import Role
from vault.audit.models import AuditEvent
from vault.documents.models import Document
from vault.errors import KeyDestroyed
from vault.keyring import translated_key_errors
from vault.patients.models import Patient
from vault.subject_rights.exports import (
    build_export,
    delete_export,
    delete_exports_of_patient,
    export_prefix,
    sweep_exports,
)
from vault.subject_rights.models import (
    ExportStatus,
    RequestStatus,
    RightsRequest,
    SubjectExport,
)

OTHER_NAME = "Max Beispiel-Anders"


def upload(api: ApiHarness, patient: TestUser, case_id: str, name: str, data: bytes) -> str:
    response = api.client.put(
        f"/cases/{case_id}/uploads/{name}",
        params={"kind": "record"},
        headers=patient.headers,
        content=data,
    )
    assert response.status_code == 201, response.text
    document_id: str = response.json()["id"]
    return document_id


def patient_with_documents(api: ApiHarness, name: str = PATIENT_NAME) -> tuple[TestUser, list[str]]:
    patient = api.patient(name=name)
    case_id = open_case(api, patient)
    documents = [
        upload(api, patient, case_id, f"{name}.png", png_bytes(64, 48, seed=2)),
        upload(api, patient, case_id, "befund.pdf", pdf_bytes()),
    ]
    return patient, documents


def request(api: ApiHarness, patient: TestUser, right: str = "access") -> Any:
    return api.client.post("/me/exports", json={"right": right}, headers=patient.headers)


def requested(api: ApiHarness, patient: TestUser, right: str = "access") -> str:
    response = request(api, patient, right)
    assert response.status_code == 202, response.text
    export_id: str = response.json()["id"]
    return export_id


def run_build(api: ApiHarness, export_id: str) -> ExportStatus:
    """What the worker does when it receives the task."""
    runtime = api.runtime
    return build_export(
        sessions=runtime.sessions,
        store=runtime.blob_store,
        keys=runtime.key_store,
        export_id=uuid.UUID(export_id),
        retention_years=runtime.settings.retention_years,
        export_retention=timedelta(days=runtime.settings.export_retention_days),
        frame_size=runtime.frame_size,
        now=api.clock(),
    )


def ready_export(api: ApiHarness, patient: TestUser, right: str = "access") -> str:
    export_id = requested(api, patient, right)
    assert run_build(api, export_id) is ExportStatus.READY
    return export_id


def link(api: ApiHarness, patient: TestUser, export_id: str) -> str:
    response = api.client.post(f"/me/exports/{export_id}/link", headers=patient.headers)
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url


def download(api: ApiHarness, url: str) -> zipfile.ZipFile:
    response = api.client.get(url)
    assert response.status_code == 200, response.text
    return zipfile.ZipFile(io.BytesIO(response.content))


def signed_in_again(api: ApiHarness, user: TestUser) -> TestUser:
    """The user with a fresh access token (after the clock moved past the old one's life)."""
    return dataclasses.replace(user, access_token=api.sign_in(user.login, user.password))


def stored_export(api: ApiHarness, export_id: str) -> SubjectExport:
    with api.session() as session:
        export = session.get(SubjectExport, uuid.UUID(export_id))
        assert export is not None
        return export


def export_events(api: ApiHarness, export_id: str) -> list[AuditEvent]:
    with api.session() as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(AuditEvent.document_id == uuid.UUID(export_id))
                .order_by(col(AuditEvent.seq))
            )
        )


def actions(api: ApiHarness, export_id: str) -> list[str]:
    return [event.action for event in export_events(api, export_id)]


def counts(api: ApiHarness) -> tuple[int, int, int]:
    """Exports, requests, audit events: what a refused call must leave as it was."""
    with api.session() as session:
        return (
            len(session.exec(select(SubjectExport.id)).all()),
            len(session.exec(select(RightsRequest.id)).all()),
            len(session.exec(select(AuditEvent.seq)).all()),
        )


def resigned(url: str, **changes: str) -> str:
    """The link with some of its query parameters replaced."""
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()} | changes
    return f"{parts.path}?" + "&".join(f"{name}={value}" for name, value in query.items())


# -- the whole way -----------------------------------------------------------------------------


def test_a_patient_requests_builds_and_downloads_an_access_export(api: ApiHarness) -> None:
    patient, document_ids = patient_with_documents(api)
    other, other_documents = patient_with_documents(api, OTHER_NAME)
    response = request(api, patient)
    assert response.status_code == 202, response.text
    body = response.json()
    export_id = body["id"]
    assert body["right"] == "access"
    assert body["status"] == "pending"
    assert body["due_at"] == "2026-12-24T09:00:00Z"  # one month after the request (Art. 12(3))
    assert api.tasks.sent == [("medvault.exports.build", (export_id,))]

    assert run_build(api, export_id) is ExportStatus.READY
    shown = api.client.get(f"/me/exports/{export_id}", headers=patient.headers).json()
    assert shown["status"] == "ready"
    assert shown["request_id"] == body["request_id"]
    assert shown["expires_at"] == "2026-11-27T09:00:00Z"  # export_retention_days after
    listed = api.client.get("/me/exports", headers=patient.headers).json()
    assert [item["id"] for item in listed] == [export_id]
    issued = api.client.post(f"/me/exports/{export_id}/link", headers=patient.headers)
    assert issued.status_code == 200
    assert issued.json()["expires_at"] == "2026-11-24T09:15:00Z"  # export_link_minutes
    url = issued.json()["url"]
    assert url.startswith(f"/exports/{export_id}/download?expires=")

    response = api.client.get(url)  # no sign-in: the link is the permission
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert int(response.headers["content-length"]) == shown["size"] == len(response.content)
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names[0] == "README.txt"
    assert "data.json" in names
    assert "fhir-bundle.json" not in names  # access: the documents and data.json only
    readme = archive.read("README.txt").decode()
    assert "Art. 15" in readme
    assert "fhir-bundle.json" not in readme
    assert PATIENT_NAME not in readme

    data = json.loads(archive.read("data.json"))
    published = api.client.get("/schemas/subject-export.json")
    assert published.status_code == 200
    schema = published.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(data)) == []
    assert data["profile"]["name"] == PATIENT_NAME
    with api.session() as session:
        stored = {
            str(document.id): document
            for document in session.exec(
                select(Document).where(col(Document.id).in_(map(uuid.UUID, document_ids)))
            )
        }
    assert {item["id"] for item in data["documents"]} == set(document_ids)
    for item in data["documents"]:
        content = archive.read(item["archive_path"])
        assert hashlib.sha256(content).hexdigest() == stored[item["id"]].sha256 == item["sha256"]
        assert len(content) == stored[item["id"]].size
    assert sorted(names) == sorted(
        ["README.txt", "data.json", *(item["archive_path"] for item in data["documents"])]
    )
    # Nothing about anyone else.
    everything = b"".join(archive.read(name) for name in names).decode("latin-1")
    for foreign in (OTHER_NAME, other.login, str(other.patient_id), *other_documents):
        assert foreign not in everything

    with api.session() as session:
        closed = session.get(RightsRequest, uuid.UUID(body["request_id"]))
        assert closed is not None
        assert closed.status is RequestStatus.COMPLETED
    events = export_events(api, export_id)
    assert [e.action for e in events] == [
        "export.build",
        "rights.list",  # the patient read the export's state (the list names no export)
        "export.link",
        "export.download",
    ]
    assert {e.purpose for e in events} == {"access"}
    assert {e.patient_id for e in events} == {patient.patient_id}
    with api.session() as session:
        mine = session.exec(
            select(AuditEvent.action, AuditEvent.purpose).where(
                AuditEvent.patient_id == patient.patient_id,
                col(AuditEvent.action).in_(["rights.request", "rights.complete"]),
            )
        ).all()
    assert sorted(mine) == [("rights.complete", "access"), ("rights.request", "access")]


def test_a_portability_export_holds_a_fhir_bundle_that_validates(api: ApiHarness) -> None:
    patient, document_ids = patient_with_documents(api)
    export_id = ready_export(api, patient, "portability")
    archive = download(api, link(api, patient, export_id))
    assert {"README.txt", "data.json", "fhir-bundle.json"} <= set(archive.namelist())
    bundle = json.loads(archive.read("fhir-bundle.json"))
    Bundle.model_validate(bundle)  # raises if it is not a valid FHIR R4(B) Bundle
    kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    assert kinds.count("Patient") == 1
    assert kinds.count("DocumentReference") == len(document_ids)
    paths = {
        entry["resource"]["content"][0]["attachment"]["url"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "DocumentReference"
    }
    assert paths <= set(archive.namelist())
    readme = archive.read("README.txt").decode()
    assert "Art. 20" in readme
    assert "fhir-bundle.json" in readme
    assert {e.purpose for e in export_events(api, export_id)} == {"portability"}


def test_a_document_of_many_frames_arrives_whole(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)
    data = png_bytes(700, 500, seed=5)  # about 1 MB of noise: several envelope frames
    document_id = upload(api, patient, case_id, "scan.png", data)
    archive = download(api, link(api, patient, ready_export(api, patient)))
    [item] = json.loads(archive.read("data.json"))["documents"]
    assert item["id"] == document_id
    assert hashlib.sha256(archive.read(item["archive_path"])).hexdigest() == item["sha256"]


# -- refusals ----------------------------------------------------------------------------------


def test_one_pending_export_at_a_time(api: ApiHarness) -> None:
    patient = api.patient()
    requested(api, patient)
    before, sent = counts(api), list(api.tasks.sent)
    for right in ("access", "portability"):
        assert_problem(request(api, patient, right), 409, "export-pending")
    assert counts(api) == before
    assert api.tasks.sent == sent
    other = api.patient()  # another patient is not held up
    assert request(api, other).status_code == 202


def test_a_build_that_fails_leaves_no_archive_and_says_so(api: ApiHarness) -> None:
    patient, document_ids = patient_with_documents(api)
    with api.session() as session:
        document = session.get(Document, uuid.UUID(document_ids[0]))
        assert document is not None
        object_key = document.object_key
    store = api.runtime.blob_store
    ciphertext = bytearray(b"".join(store.open(object_key)))
    ciphertext[-1] ^= 1  # the stored document was tampered with
    store.put(object_key, [bytes(ciphertext)])
    export_id = requested(api, patient)

    assert run_build(api, export_id) is ExportStatus.FAILED
    export = stored_export(api, export_id)
    assert (export.status, export.object_key, export.size) == (ExportStatus.FAILED, None, None)
    assert list(store.keys(export_prefix(uuid.UUID(export_id)))) == []
    assert export.key_id is not None
    with api.session() as session, pytest.raises(KeyDestroyed), translated_key_errors():
        api.runtime.key_store.unsafe_key_material(session, export.key_id)
    with api.session() as session:
        request_row = session.get(RightsRequest, export.request_id)
        assert request_row is not None
        assert request_row.status is RequestStatus.FAILED
        closed = session.exec(
            select(AuditEvent.outcome).where(
                AuditEvent.action == "rights.complete", AuditEvent.patient_id == patient.patient_id
            )
        ).all()
    assert closed == ["refused"]
    assert [(e.action, e.outcome) for e in export_events(api, export_id)] == [
        ("export.build", "refused")
    ]
    shown = api.client.get(f"/me/exports/{export_id}", headers=patient.headers).json()
    assert shown["status"] == "failed"
    before = counts(api)
    response = api.client.post(f"/me/exports/{export_id}/link", headers=patient.headers)
    assert_problem(response, 409, "export-not-ready")
    assert counts(api) == before
    assert run_build(api, export_id) is ExportStatus.FAILED  # a redelivery changes nothing
    assert request(api, patient).status_code == 202  # a failed export blocks no new request


def test_a_ready_export_does_not_block_a_new_one(api: ApiHarness) -> None:
    patient = api.patient()
    first = ready_export(api, patient)
    second = requested(api, patient, "portability")
    assert first != second


@pytest.mark.parametrize(
    "body", [{"right": "erasure"}, {"right": "ACCESS"}, {}, {"right": "access", "extra": 1}]
)
def test_a_bad_request_body_is_refused(api: ApiHarness, body: dict[str, Any]) -> None:
    patient = api.patient()
    before = counts(api)
    response = api.client.post("/me/exports", json=body, headers=patient.headers)
    assert_problem(response, 422, "invalid-request")
    assert counts(api) == before
    assert api.tasks.sent == []


def test_staff_cannot_request_or_read_a_patients_export(api: ApiHarness) -> None:
    patient = api.patient()
    export_id = ready_export(api, patient)
    before = counts(api)
    for role in (Role.COORDINATOR, Role.ANALYST, Role.ADMIN):
        staff = api.user(role)
        before = counts(api)
        assert_problem(request(api, staff), 403, "forbidden")
        for method, path in (
            ("GET", "/me/exports"),
            ("GET", f"/me/exports/{export_id}"),
            ("POST", f"/me/exports/{export_id}/link"),
        ):
            assert_problem(
                api.client.request(method, path, headers=staff.headers), 403, "forbidden"
            )
        assert counts(api) == before


def test_another_patients_export_is_not_found_and_the_attempt_recorded(api: ApiHarness) -> None:
    owner, intruder = api.patient(), api.patient()
    export_id = ready_export(api, owner)
    before = actions(api, export_id)
    assert_problem(
        api.client.get(f"/me/exports/{export_id}", headers=intruder.headers), 404, "not-found"
    )
    assert_problem(
        api.client.post(f"/me/exports/{export_id}/link", headers=intruder.headers),
        404,
        "not-found",
    )
    unknown = uuid.uuid4()
    assert_problem(
        api.client.post(f"/me/exports/{unknown}/link", headers=intruder.headers), 404, "not-found"
    )
    assert api.client.get("/me/exports", headers=intruder.headers).json() == []
    denials = export_events(api, export_id)[len(before) :]
    assert [(e.action, e.outcome, e.patient_id) for e in denials] == [
        ("rights.list", "denied", intruder.patient_id),
        ("export.link", "denied", intruder.patient_id),
    ]


def test_no_link_before_the_export_is_ready(api: ApiHarness) -> None:
    patient = api.patient()
    export_id = requested(api, patient)
    before = counts(api)
    response = api.client.post(f"/me/exports/{export_id}/link", headers=patient.headers)
    assert_problem(response, 409, "export-not-ready")
    assert counts(api) == before
    assert "export.link" not in actions(api, export_id)


def test_a_wrong_signature_is_refused(api: ApiHarness) -> None:
    patient = api.patient()
    export_id = ready_export(api, patient)
    other_id = ready_export(api, api.patient())
    url = link(api, patient, export_id)
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    flipped = f"{int(signature[0], 16) ^ 1:x}{signature[1:]}"
    before = counts(api)
    for bad in (
        resigned(url, signature=flipped),
        resigned(url, signature=signature[:-2]),
        resigned(url, signature="zz" + signature[2:]),
        resigned(url, signature=""),
        resigned(url, expires=str(expires + 3600)),  # a later expiry is not what was signed
        url.replace(export_id, other_id),  # this signature is for another export
        url.replace(export_id, str(uuid.uuid4())),  # or for no export at all
    ):
        assert_problem(api.client.get(bad), 403, "export-link-invalid")
    assert counts(api) == before


def test_an_expired_link_is_refused_and_a_new_one_works(api: ApiHarness) -> None:
    patient = api.patient()
    export_id = ready_export(api, patient)
    url = link(api, patient, export_id)
    api.clock.advance(minutes=api.runtime.settings.export_link_minutes)
    before = counts(api)
    assert_problem(api.client.get(url), 410, "export-link-expired")
    assert counts(api) == before
    patient = signed_in_again(api, patient)
    assert download(api, link(api, patient, export_id)).testzip() is None


def test_a_deleted_export_refuses_its_link_and_new_links(api: ApiHarness) -> None:
    patient = api.patient()
    export_id = ready_export(api, patient)
    url = link(api, patient, export_id)
    delete_export(
        sessions=api.runtime.sessions,
        store=api.runtime.blob_store,
        keys=api.runtime.key_store,
        export_id=uuid.UUID(export_id),
        now=api.clock(),
    )
    before = counts(api)
    assert_problem(api.client.get(url), 410, "export-expired")
    response = api.client.post(f"/me/exports/{export_id}/link", headers=patient.headers)
    assert_problem(response, 410, "export-expired")
    assert counts(api) == before
    shown = api.client.get(f"/me/exports/{export_id}", headers=patient.headers).json()
    assert (shown["status"], shown["deleted_at"]) == ("deleted", "2026-11-24T09:00:00Z")


def test_the_sweep_deletes_exports_after_their_few_days(api: ApiHarness) -> None:
    patient = api.patient()
    export_id = ready_export(api, patient)
    key_id = stored_export(api, export_id).key_id
    assert key_id is not None

    def sweep() -> int:
        return sweep_exports(
            sessions=api.runtime.sessions,
            store=api.runtime.blob_store,
            keys=api.runtime.key_store,
            now=api.clock(),
        ).deleted

    api.clock.advance(days=api.runtime.settings.export_retention_days, seconds=-1)
    assert sweep() == 0
    assert stored_export(api, export_id).status is ExportStatus.READY
    api.clock.advance(seconds=1)
    assert sweep() == 1
    export = stored_export(api, export_id)
    assert (export.status, export.object_key) == (ExportStatus.DELETED, None)
    assert list(api.runtime.blob_store.keys(export_prefix(uuid.UUID(export_id)))) == []
    with api.session() as session, pytest.raises(KeyDestroyed), translated_key_errors():
        api.runtime.key_store.unsafe_key_material(session, key_id)  # crypto-shredded
    assert actions(api, export_id)[-1] == "export.delete"
    assert sweep() == 0  # once
    patient = signed_in_again(api, patient)
    shown = api.client.get(f"/me/exports/{export_id}", headers=patient.headers).json()
    assert shown["status"] == "deleted"
    assert_problem(
        api.client.post(f"/me/exports/{export_id}/link", headers=patient.headers),
        410,
        "export-expired",
    )


def test_an_erased_patients_export_cannot_be_downloaded(api: ApiHarness) -> None:
    patient = api.patient()
    export_id = ready_export(api, patient)
    pending_id = requested(api, patient, "portability")
    url = link(api, patient, export_id)
    with api.session() as session:
        deleted = delete_exports_of_patient(
            session=session,
            store=api.runtime.blob_store,
            keys=api.runtime.key_store,
            patient_id=patient.patient_id,  # type: ignore[arg-type]
            now=api.clock(),
        )
        row = session.get(Patient, patient.patient_id)
        assert row is not None
        row.erased_at = api.clock()  # what the erasure does besides (not this helper's part)
        session.add(row)
        session.commit()
    assert deleted == 2
    assert list(api.runtime.blob_store.keys("exports/")) == []
    before = counts(api)
    assert_problem(api.client.get(url), 410, "export-expired")
    assert counts(api) == before
    with api.session() as session:
        pending = session.get(SubjectExport, uuid.UUID(pending_id))
        assert pending is not None
        request_row = session.get(RightsRequest, pending.request_id)
        assert request_row is not None
        assert (pending.status, request_row.status) == (ExportStatus.DELETED, RequestStatus.FAILED)
    # A build of the pending export that arrives afterwards does nothing.
    assert run_build(api, pending_id) is ExportStatus.DELETED
    assert list(api.runtime.blob_store.keys("exports/")) == []


def test_what_the_patient_and_the_audit_chain_see_holds_no_personal_data(
    api: ApiHarness,
) -> None:
    patient, _ = patient_with_documents(api)
    export_id = ready_export(api, patient)
    download(api, link(api, patient, export_id))
    listed = api.client.get("/me/exports", headers=patient.headers).text
    with api.session() as session:
        chain = " ".join(str(event.model_dump()) for event in session.exec(select(AuditEvent)))
    for text in (listed, chain, str(api.tasks.sent)):
        assert PATIENT_NAME not in text
        assert patient.login not in text
