"""The portability export (Art. 20) as a FHIR R4 Bundle, so that another provider can import it.

A Bundle of type ``collection`` holds: the Patient; a DocumentReference per document still
there (its ``content.attachment.url`` is the document's path inside the export archive); a
Consent per consent given, withdrawn ones ``inactive``; and an AuditEvent per disclosure (each
transfer) and per download by a recipient, naming the recipient, the documents, the purpose and
the legal basis. Entries are addressed by ``urn:uuid:`` full URLs (medvault's own ids) and refer
to each other by them; medvault's ids travel again as identifiers under ``urn:medvault:...``
systems, so a second import can recognise what it already holds.

Where FHIR has no element for a value medvault keeps, the value goes where FHIR allows a
system-scoped value rather than into an extension: the documents' SHA-256 (FHIR's
``attachment.hash`` is SHA-1, which medvault does not compute) is an identifier, the case a
document belongs to an identifier reference in ``context.related``, the legal basis a policy
URI of the AuditEvent's agent. Built from ``SubjectData`` only: whatever is not in the export
document is not in the Bundle either. Plain dictionaries, ready for ``json.dumps``; the tests
validate them with ``fhir.resources`` (R4B, identical to R4 for these four resources).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from vault.documents.models import DocumentKind
from vault.patients.models import Sex
from vault.subject_rights.export_schema import (
    ConsentRecord,
    DownloadRecord,
    ExportedDocument,
    Profile,
    SubjectData,
    TransferRecord,
)
from vault.transfers.models import LegalBasis, Purpose

Resource = dict[str, Any]

SYSTEM = "urn:medvault"  # the prefix of every identifier system medvault mints
DCM = "http://dicom.nema.org/resources/ontology/DCM"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

_GENDERS = {Sex.FEMALE: "female", Sex.MALE: "male", Sex.DIVERSE: "other", Sex.UNKNOWN: "unknown"}
_DOCUMENT_KINDS = {
    DocumentKind.RECORD: "Medical record",
    DocumentKind.INVOICE: "Invoice",
    DocumentKind.EXTRACT: "Extract",
}
# The closest HL7 purpose of use for each purpose (medvault's own code travels beside it).
_PURPOSES_OF_USE = {
    Purpose.TREATMENT_CHECK: ("TREAT", "treatment"),
    Purpose.TREATMENT_ORGANISATION: ("TREAT", "treatment"),
    Purpose.COST_COVERAGE: ("COVAUTH", "coverage authorization"),
    Purpose.BILLING: ("HPAYMT", "healthcare payment"),
    Purpose.AFTERCARE: ("TREAT", "treatment"),
}
_LEGAL_BASES = {
    LegalBasis.ART6_1_A: "GDPR Art. 6(1)(a): consent",
    LegalBasis.ART6_1_B: "GDPR Art. 6(1)(b): contract",
    LegalBasis.ART6_1_C: "GDPR Art. 6(1)(c): legal obligation",
    LegalBasis.ART6_1_F: "GDPR Art. 6(1)(f): legitimate interests",
    LegalBasis.ART9_2_A: "GDPR Art. 9(2)(a): explicit consent",
    LegalBasis.ART9_2_C: "GDPR Art. 9(2)(c): vital interests",
    LegalBasis.ART9_2_H: "GDPR Art. 9(2)(h): health care",
}


def fhir_bundle(data: SubjectData) -> dict[str, Any]:
    """The export document as a FHIR R4 Bundle (``collection``), ready for ``json.dumps``."""
    patient = _url(data.profile.id)
    documents = {document.id: document for document in data.documents}
    consents = {consent.id for consent in data.consents}
    entries: list[tuple[uuid.UUID, Resource]] = [(data.profile.id, _patient(data.profile))]
    entries += [(d.id, _document_reference(d, patient=patient)) for d in data.documents]
    entries += [(c.id, _consent(c, patient=patient)) for c in data.consents]
    for transfer in data.transfers:
        links = _Links(patient=patient, documents=documents, consents=consents)
        entries.append((transfer.id, _disclosure(transfer, links)))
        for download in transfer.link.downloads if transfer.link is not None else []:
            entries.append((download.id, _download(download, transfer, links)))
    return {
        "resourceType": "Bundle",
        "meta": {"tag": [_coding(f"{SYSTEM}:export", data.schema_version)]},
        "identifier": _identifier("export", f"{data.profile.id}/{_instant(data.generated_at)}"),
        "type": "collection",
        "timestamp": _instant(data.generated_at),
        "entry": [{"fullUrl": _url(id_), "resource": resource} for id_, resource in entries],
    }


# -- the resources -----------------------------------------------------------------------------


def _patient(profile: Profile) -> Resource:
    telecom = [{"system": "email", "value": profile.email, "use": "home"}]
    if profile.phone is not None:
        telecom.append({"system": "phone", "value": profile.phone})
    resource: Resource = {
        "resourceType": "Patient",
        "identifier": [_identifier("patient", profile.id)],
        "name": [{"text": profile.name}],
        "telecom": telecom,
        "gender": _GENDERS[profile.sex],
        "birthDate": profile.birth_date.isoformat(),
    }
    if profile.country is not None:
        resource["address"] = [{"country": profile.country}]
    return resource


def _document_reference(document: ExportedDocument, *, patient: str) -> Resource:
    kind = _concept(f"{SYSTEM}:document-kind", document.kind, _DOCUMENT_KINDS[document.kind])
    return {
        "resourceType": "DocumentReference",
        "masterIdentifier": _identifier("document", document.id),
        "identifier": [_identifier("sha256", document.sha256)],
        "status": "current",
        "type": kind,
        "category": [kind],
        "subject": {"reference": patient},
        "date": _instant(document.stored_at),
        "description": document.filename,
        "content": [
            {
                "attachment": {
                    "contentType": document.media_type,
                    "url": document.archive_path,
                    "size": document.size,
                    "title": document.filename,
                    "creation": _instant(document.stored_at),
                }
            }
        ],
        "context": {"related": [{"identifier": _identifier("case", document.case_id)}]},
    }


def _consent(consent: ConsentRecord, *, patient: str) -> Resource:
    period = {"start": _instant(consent.given_at)}
    if consent.withdrawn_at is not None:
        period["end"] = _instant(consent.withdrawn_at)
    resource: Resource = {
        "resourceType": "Consent",
        "identifier": [
            _identifier("consent", consent.id),
            _identifier("case", consent.case_id),
        ],
        "status": "inactive" if consent.withdrawn_at is not None else "active",
        "scope": _concept(CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
        "category": [_concept(LOINC, "59284-0", "Patient Consent")],
        "patient": {"reference": patient},
        "dateTime": _instant(consent.given_at),
        "policy": [{"uri": f"{SYSTEM}:consent-text:{consent.text_version}"}],
        "policyRule": _concept(ACT_CODE, "OPTIN", "opt-in"),
        "provision": {
            "type": "permit",
            "period": period,
            "purpose": [{"system": ACT_REASON, "code": "TREAT", "display": "treatment"}],
        },
    }
    if (text := consent.text) is not None:
        resource["sourceAttachment"] = {
            "contentType": "text/plain; charset=utf-8",
            "data": base64.b64encode(text.encode()).decode(),
            # FHIR's attachment hash is SHA-1, base64 (of exactly these bytes).
            "hash": base64.b64encode(
                hashlib.sha1(text.encode(), usedforsecurity=False).digest()
            ).decode(),
            "title": consent.text_version,
        }
    return resource


class _Links:
    """Turns ids of the export into references: entries of the Bundle where there are some,
    identifiers otherwise (a shredded document, a consent of another case)."""

    def __init__(
        self,
        *,
        patient: str,
        documents: dict[uuid.UUID, ExportedDocument],
        consents: set[uuid.UUID],
    ) -> None:
        self.patient = patient
        self.documents = documents
        self.consents = consents

    def document(self, document_id: uuid.UUID) -> dict[str, Any]:
        if document_id in self.documents:
            return {"reference": _url(document_id)}
        return {"identifier": _identifier("document", document_id)}

    def consent(self, consent_id: uuid.UUID) -> dict[str, Any]:
        if consent_id in self.consents:
            return {"reference": _url(consent_id)}
        return {"identifier": _identifier("consent", consent_id)}


def _disclosure(transfer: TransferRecord, links: _Links) -> Resource:
    """A transfer: medvault disclosed the documents to the recipient (DICOM "Export")."""
    entities = list(_entities(transfer, links, [d.document_id for d in transfer.documents]))
    if transfer.consent_id is not None:
        entities.append(
            {
                "what": links.consent(transfer.consent_id),
                "type": _code(ENTITY_TYPE, "2", "System Object"),
                "description": "the consent this transfer relied on",
            }
        )
    return _audit_event(
        transfer,
        subtype=_code(LIFECYCLE, "disclose", "Disclose Record Lifecycle Event"),
        action="E",
        recorded=transfer.sent_at,
        entities=entities,
    )


def _download(download: DownloadRecord, transfer: TransferRecord, links: _Links) -> Resource:
    """A download by the transfer's recipient: the document left medvault."""
    return _audit_event(
        transfer,
        subtype=_code(LIFECYCLE, "transmit", "Transmit Record Lifecycle Event"),
        action="R",
        recorded=download.at,
        entities=[
            *_entities(transfer, links, [download.document_id]),
            {
                "what": {"identifier": _identifier("download", download.id)},
                "type": _code(ENTITY_TYPE, "4", "Other"),
            },
        ],
    )


def _audit_event(
    transfer: TransferRecord,
    *,
    subtype: dict[str, str],
    action: str,
    recorded: datetime,
    entities: list[dict[str, Any]],
) -> Resource:
    purposes = _purposes(transfer.purpose)
    recipient = transfer.recipient
    return {
        "resourceType": "AuditEvent",
        "type": _code(DCM, "110106", "Export"),
        "subtype": [subtype],
        "action": action,
        "recorded": _instant(recorded),
        "outcome": "0",
        "purposeOfEvent": purposes,
        "agent": [
            {
                "type": _concept(DCM, "110153", "Source Role ID"),
                "who": {"display": "medvault"},
                "requestor": True,
                "policy": [f"{SYSTEM}:legal-basis:{transfer.legal_basis}"],
                "purposeOfUse": purposes,
            },
            {
                "type": _concept(DCM, "110152", "Destination Role ID"),
                "who": {
                    "identifier": _identifier("partner", recipient.id),
                    "display": f"{recipient.name} ({recipient.kind})",
                },
                "name": recipient.name,
                "requestor": False,
            },
        ],
        "source": {
            "site": "medvault",
            "observer": {"display": "medvault"},
            "type": [_code(SOURCE_TYPE, "4", "Application Server")],
        },
        "entity": entities,
    }


def _entities(
    transfer: TransferRecord, links: _Links, document_ids: list[uuid.UUID]
) -> Iterator[dict[str, Any]]:
    yield {
        "what": {"reference": links.patient},
        "type": _code(ENTITY_TYPE, "1", "Person"),
        "role": _code(OBJECT_ROLE, "1", "Patient"),
    }
    yield {
        "what": {"identifier": _identifier("transfer", transfer.id)},
        "type": _code(ENTITY_TYPE, "4", "Other"),
        "detail": [
            {"type": "legal-basis", "valueString": _LEGAL_BASES[transfer.legal_basis]},
            {"type": "purpose", "valueString": str(transfer.purpose)},
            {"type": "case", "valueString": str(transfer.case_id)},
            *(
                [{"type": "revoked", "valueString": _instant(transfer.revoked_at)}]
                if transfer.revoked_at is not None
                else []
            ),
        ],
    }
    for document_id in document_ids:
        yield {
            "what": links.document(document_id),
            "type": _code(ENTITY_TYPE, "2", "System Object"),
            "role": _code(OBJECT_ROLE, "3", "Report"),
        }


# -- small pieces ------------------------------------------------------------------------------


def _url(id_: uuid.UUID) -> str:
    return f"urn:uuid:{id_}"


def _identifier(kind: str, value: object) -> dict[str, str]:
    return {"system": f"{SYSTEM}:{kind}", "value": str(value)}


def _code(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _coding(system: str, code: str) -> dict[str, str]:
    return {"system": system, "code": code}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [_code(system, code, display)], "text": display}


def _purposes(purpose: Purpose) -> list[dict[str, Any]]:
    code, display = _PURPOSES_OF_USE[purpose]
    return [
        {
            "coding": [_code(ACT_REASON, code, display), _coding(f"{SYSTEM}:purpose", purpose)],
            "text": str(purpose),
        }
    ]


def _instant(moment: datetime) -> str:
    """An instant as FHIR wants it: seconds always present, a time zone always given."""
    return moment.isoformat(timespec="seconds" if moment.microsecond == 0 else "microseconds")
