"""The portability export as a FHIR R4 Bundle: it validates (``fhir.resources`` R4B, whose
Patient, DocumentReference, Consent and AuditEvent are those of R4), every entry says what the
export document says, every reference resolves inside the Bundle, the codes come from the
value sets FHIR binds them to, and nothing of anyone else is in it."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.patient import Patient
from sqlmodel import Session

from tests.factories import (
    NOW,
    RETENTION_YEARS,
    SubjectWorld,
    Vault,
    local_vault,
    make_patient,
    make_subject_world,
)
from vault.accounts import passwords
from vault.patients.models import Sex
from vault.subject_rights.export_data import SubjectData, unsafe_collect_subject_data
from vault.subject_rights.fhir import fhir_bundle

# Codes FHIR R4 binds with strength "required": nothing else is a valid value.
REQUIRED_CODES = {
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("DocumentReference", "status"): {"current", "superseded", "entered-in-error"},
    ("Consent", "status"): {
        "draft",
        "proposed",
        "active",
        "rejected",
        "inactive",
        "entered-in-error",
    },
    ("AuditEvent", "action"): {"C", "R", "U", "D", "E"},
    ("AuditEvent", "outcome"): {"0", "4", "8", "12"},
}
CONTACT_SYSTEMS = {"phone", "fax", "email", "pager", "url", "sms", "other"}
RESOURCE_CLASSES = {
    "Patient": Patient,
    "DocumentReference": DocumentReference,
    "Consent": Consent,
    "AuditEvent": AuditEvent,
}


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2's cost is not what these tests are about (it is most of a world's making)."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher.from_parameters(CHEAPEST))


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


@pytest.fixture
def world(vault: Vault) -> SubjectWorld:
    return make_subject_world(vault)


@pytest.fixture
def data(vault: Vault, world: SubjectWorld) -> SubjectData:
    return collect(vault, world.patient.id)


@pytest.fixture
def bundle(data: SubjectData) -> dict[str, Any]:
    return fhir_bundle(data)


def collect(vault: Vault, patient_id: uuid.UUID) -> SubjectData:
    return unsafe_collect_subject_data(
        session=vault.session,
        keys=vault.keys,
        patient_id=patient_id,
        retention_years=RETENTION_YEARS,
        now=NOW,
    )


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def walk(node: Any, key: str | None = None) -> Iterator[tuple[str | None, Any]]:
    yield key, node
    if isinstance(node, dict):
        for name, value in node.items():
            yield from walk(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


def test_the_bundle_validates_as_fhir(bundle: dict[str, Any]) -> None:
    validated = Bundle.model_validate(bundle)
    assert validated.type == "collection"
    assert validated.entry is not None
    for entry, raw in zip(validated.entry, bundle["entry"], strict=True):
        assert isinstance(entry.resource, RESOURCE_CLASSES[raw["resource"]["resourceType"]])
    json.dumps(bundle)  # JSON-ready as it is


def test_one_entry_per_item(bundle: dict[str, Any], data: SubjectData) -> None:
    downloads = [d for t in data.transfers if t.link for d in t.link.downloads]
    counts = {kind: len(resources(bundle, kind)) for kind in RESOURCE_CLASSES}
    assert counts == {
        "Patient": 1,
        "DocumentReference": len(data.documents),
        "Consent": len(data.consents),
        "AuditEvent": len(data.transfers) + len(downloads),
    }
    assert len(downloads) == 1  # else the download events go untested
    assert len(bundle["entry"]) == sum(counts.values())


def test_every_reference_resolves_inside_the_bundle(bundle: dict[str, Any]) -> None:
    full_urls = [entry["fullUrl"] for entry in bundle["entry"]]
    assert len(set(full_urls)) == len(full_urls)
    assert all(url.startswith("urn:uuid:") and uuid.UUID(url[9:]) for url in full_urls)
    references = [value for key, value in walk(bundle) if key == "reference"]
    assert references
    assert set(references) <= set(full_urls)
    [patient_url] = [
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    for document in resources(bundle, "DocumentReference"):
        assert document["subject"] == {"reference": patient_url}
    for consent in resources(bundle, "Consent"):
        assert consent["patient"] == {"reference": patient_url}
    for event in resources(bundle, "AuditEvent"):
        assert {"reference": patient_url} in [entity["what"] for entity in event["entity"]]
    systems = {
        v["system"] for key, v in walk(bundle) if key == "identifier" and isinstance(v, dict)
    }
    assert systems
    assert all(system.startswith("urn:medvault:") for system in systems)


def test_codes_come_from_their_value_sets(bundle: dict[str, Any]) -> None:
    for (kind, element), allowed in REQUIRED_CODES.items():
        found = {resource[element] for resource in resources(bundle, kind)}
        assert found
        assert found <= allowed, (kind, element)
    [patient] = resources(bundle, "Patient")
    assert {point["system"] for point in patient["telecom"]} <= CONTACT_SYSTEMS
    assert {c["provision"]["type"] for c in resources(bundle, "Consent")} == {"permit"}
    assert bundle["type"] == "collection"


def test_no_empty_values(bundle: dict[str, Any]) -> None:
    """FHIR JSON has no nulls, empty strings, arrays or objects."""
    empty = [key for key, value in walk(bundle) if value in (None, "", [], {})]
    assert empty == []


def test_the_patient(bundle: dict[str, Any], world: SubjectWorld) -> None:
    [patient] = resources(bundle, "Patient")
    identity = world.identity
    assert identity.sex is Sex.DIVERSE
    assert patient["gender"] == "other"
    assert patient["name"] == [{"text": identity.name}]
    assert patient["birthDate"] == identity.birth_date.isoformat()
    assert {(p["system"], p["value"]) for p in patient["telecom"]} == {
        ("email", identity.email),
        ("phone", identity.phone),
    }
    assert patient["address"] == [{"country": "AT"}]
    assert patient["identifier"] == [
        {"system": "urn:medvault:patient", "value": str(world.patient.id)}
    ]


def test_a_patient_with_nothing_but_a_profile(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    bundle = fhir_bundle(collect(vault, patient.id))
    Bundle.model_validate(bundle)
    [only] = bundle["entry"]
    assert only["resource"]["gender"] == "unknown"
    assert "address" not in only["resource"]


def test_document_references(bundle: dict[str, Any], data: SubjectData) -> None:
    by_id = {d.id: d for d in data.documents}
    for resource in resources(bundle, "DocumentReference"):
        document = by_id[uuid.UUID(resource["masterIdentifier"]["value"])]
        [content] = resource["content"]
        assert content["attachment"]["url"] == document.archive_path
        assert content["attachment"]["contentType"] == document.media_type
        assert content["attachment"]["size"] == document.size
        assert content["attachment"]["title"] == document.filename
        assert resource["identifier"] == [
            {"system": "urn:medvault:sha256", "value": document.sha256}
        ]
        assert resource["type"]["coding"][0]["code"] == document.kind
        assert resource["context"]["related"] == [
            {"identifier": {"system": "urn:medvault:case", "value": str(document.case_id)}}
        ]


def test_consents_given_and_withdrawn(bundle: dict[str, Any], data: SubjectData) -> None:
    by_id = {c.id: c for c in data.consents}
    statuses = []
    for resource in resources(bundle, "Consent"):
        consent = by_id[uuid.UUID(resource["identifier"][0]["value"])]
        withdrawn = consent.withdrawn_at is not None
        statuses.append(resource["status"])
        assert resource["status"] == ("inactive" if withdrawn else "active")
        assert ("end" in resource["provision"]["period"]) is withdrawn
        assert resource["policy"] == [{"uri": f"urn:medvault:consent-text:{consent.text_version}"}]
        attachment = resource["sourceAttachment"]
        text = base64.b64decode(attachment["data"])
        assert consent.text is not None
        assert text == consent.text.encode()
        assert hashlib.sha256(text).hexdigest() == consent.text_sha256
        sha1 = hashlib.sha1(text).digest()  # the hash FHIR asks for
        assert base64.b64decode(attachment["hash"]) == sha1
    assert sorted(statuses) == ["active", "active", "inactive"]


def test_an_audit_event_per_disclosure_and_download(
    bundle: dict[str, Any], data: SubjectData
) -> None:
    events = resources(bundle, "AuditEvent")
    transfers = {t.id: t for t in data.transfers}
    documents = {f"urn:uuid:{d.id}" for d in data.documents}
    disclosures, downloads = [], []
    for event in events:
        transfer_entity = next(
            e
            for e in event["entity"]
            if e["what"].get("identifier", {}).get("system", "").endswith(":transfer")
        )
        transfer = transfers[uuid.UUID(transfer_entity["what"]["identifier"]["value"])]
        assert event["type"] == {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110106",
            "display": "Export",
        }
        source, recipient = event["agent"]
        assert source["policy"] == [f"urn:medvault:legal-basis:{transfer.legal_basis}"]
        assert recipient["who"]["identifier"]["value"] == str(transfer.recipient.id)
        assert transfer.recipient.name in recipient["who"]["display"]
        codings = [c for concept in event["purposeOfEvent"] for c in concept["coding"]]
        assert {"system": "urn:medvault:purpose", "code": transfer.purpose} in codings
        details = {d["type"]: d["valueString"] for d in transfer_entity["detail"]}
        assert details["purpose"] == transfer.purpose
        assert ("revoked" in details) is (transfer.revoked_at is not None)
        what = [e["what"] for e in event["entity"]]
        if event["subtype"][0]["code"] == "disclose":
            disclosures.append(transfer.id)
            assert event["recorded"] == transfer.sent_at.isoformat()
            sent = [d.document_id for d in transfer.documents]
            for document_id in sent:
                url = f"urn:uuid:{document_id}"
                expected = (
                    {"reference": url}
                    if url in documents
                    else {
                        "identifier": {"system": "urn:medvault:document", "value": str(document_id)}
                    }
                )
                assert expected in what
            if transfer.consent_id is not None:
                assert {"reference": f"urn:uuid:{transfer.consent_id}"} in what
        else:
            assert event["subtype"][0]["code"] == "transmit"
            assert transfer.link is not None
            [download] = transfer.link.downloads
            downloads.append(download.id)
            assert event["recorded"] == download.at.isoformat()
            assert {"reference": f"urn:uuid:{download.document_id}"} in what
    assert sorted(disclosures) == sorted(transfers)
    assert len(downloads) == 1


def test_a_shredded_document_is_named_not_referenced(
    bundle: dict[str, Any], data: SubjectData
) -> None:
    [gone] = data.shredded_documents
    text = json.dumps(bundle)
    assert f"urn:uuid:{gone.id}" not in text
    assert {"system": "urn:medvault:document", "value": str(gone.id)} in [
        value for key, value in walk(bundle) if key == "identifier"
    ]


def test_nothing_about_anyone_else(vault: Vault, world: SubjectWorld) -> None:
    other = make_subject_world(
        vault,
        name="Max Beispiel-Andersperson",
        email="max.beispiel@example.net",
        phone="+43 1 9999999",
        filename="Laborwerte Beispiel.pdf",
        comment="Ein ganz anderer Kommentar von Max.",
        partner=world.partner,
    )
    text = json.dumps(fhir_bundle(collect(vault, world.patient.id)), ensure_ascii=False)
    theirs = collect(vault, other.patient.id)
    their_ids = {str(theirs.profile.id)} | {str(a.id) for a in theirs.accounts}
    their_ids |= {str(c.id) for c in theirs.cases} | {str(d.id) for d in theirs.documents}
    their_ids |= {str(c.id) for c in theirs.consents} | {str(t.id) for t in theirs.transfers}
    planted = [other.identity.name, other.identity.email, other.filename, str(other.identity.phone)]
    assert [value for value in [*their_ids, *planted] if value in text] == []
