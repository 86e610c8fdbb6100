"""Who may do what, proven over the whole OpenAPI document: every operation x every caller
(patient A, patient B, coordinator, analyst, admin, anonymous, an expired token), aimed at the
objects of patient A. Whoever may not reach A's data gets 401, 403 or 404 (or, for a list, a
list without any of it); nobody gets a byte of it. A new operation must be classified here
before this test passes, so no endpoint ships unchecked."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from tests.apiharness import ApiHarness, TestUser
from tests.factories import PATIENT_EMAIL, PATIENT_NAME, png_bytes
from vault.accounts.models import Role
from vault.extracts.models import ExtractStatus
from vault.extracts.service import build_extract
from vault.subject_rights.exports import build_export
from vault.subject_rights.models import ExportStatus

CALLERS = ("patient_a", "patient_b", "coordinator", "analyst", "admin", "anonymous", "expired")
EVERYONE = frozenset(CALLERS)

# Operations anyone may call: they expose no one's data (sign-in, sign-up, health, the public
# consent text) or are capability URLs, where the link token is the authorisation (their
# lifecycle, code and limits are proven in tests/api/test_links.py).
PUBLIC = {
    "issue_token",
    "refresh_token",
    "register_as_patient",
    "confirm_address",
    "accept_patient_invitation",
    "healthz",
    "readyz",
    "list_consent_texts",
    "get_survey_questions",
    "open_partner_link",
    "download_partner_document",
    "download_partner_archive",
    "download_subject_export",  # a signed link: tests/api/test_subject_exports.py
    "get_subject_export_schema",  # the published format of exports: no one's data
}

# Who may reach patient A's objects through each operation. Everybody else must be refused.
ALLOWED: dict[str, frozenset[str]] = {
    "log_out": frozenset({"patient_a", "patient_b", "coordinator", "analyst", "admin"}),
    "who_am_i": frozenset({"patient_a", "patient_b", "coordinator", "analyst", "admin"}),
    "list_accounts": frozenset({"admin"}),
    "add_account": frozenset({"admin"}),
    "disable_account": frozenset({"admin"}),
    "invite_new_patient": frozenset({"coordinator"}),
    "open_own_case": frozenset({"patient_a", "patient_b"}),
    "list_visible_cases": frozenset({"patient_a", "coordinator"}),
    "get_case_detail": frozenset({"patient_a", "coordinator"}),
    "put_case_outcome": frozenset({"coordinator"}),
    "complete_treatment": frozenset({"coordinator"}),
    "upload_form": frozenset({"patient_a", "coordinator"}),
    "upload_raw": frozenset({"patient_a", "coordinator"}),
    "list_case_documents": frozenset({"patient_a", "coordinator"}),
    "download_document": frozenset({"patient_a", "coordinator"}),
    "give_case_consent": frozenset({"patient_a"}),
    "list_case_consents": frozenset({"patient_a", "coordinator"}),
    "withdraw_case_consent": frozenset({"patient_a"}),
    "place_processing_restriction": frozenset({"admin"}),
    "lift_processing_restriction": frozenset({"admin"}),
    "list_partner_records": frozenset({"admin"}),
    "create_partner_record": frozenset({"admin"}),
    "update_partner_record": frozenset({"admin"}),
    "disable_partner_record": frozenset({"admin"}),
    "list_enabled_partners": frozenset({"coordinator"}),
    "create_case_transfer": frozenset({"coordinator"}),
    "list_case_transfers": frozenset({"coordinator"}),
    "revoke_case_transfer": frozenset({"coordinator"}),
    "list_my_disclosures": frozenset({"patient_a"}),
    "verify_audit_chain": frozenset({"admin"}),
    "write_audit_checkpoint": frozenset({"admin"}),
    "list_audit_events": frozenset({"admin"}),
    "answer_case_survey": frozenset({"patient_a"}),
    # These two act on the caller's own record only: patient B changes nothing of A's.
    "withdraw_my_qa_consent": frozenset({"patient_a", "patient_b"}),
    "object_to_qa": frozenset({"patient_a", "patient_b"}),
    "list_qa_extracts": frozenset({"analyst"}),
    "request_qa_extract": frozenset({"analyst"}),
    "read_qa_extract": frozenset({"analyst"}),
    "download_qa_extract": frozenset({"analyst"}),
    "create_extract_scope": frozenset({"admin"}),
    "list_extract_scopes": frozenset({"analyst", "admin"}),
    "place_case_legal_hold": frozenset({"admin"}),
    "lift_case_legal_hold": frozenset({"admin"}),
    "preview_retention": frozenset({"admin"}),
    # -- rights: requests, rectification, restriction, objection
    # The patient's own register, profile and restrictions: B gets B's (SCOPED_LISTS).
    "list_my_rights_requests": frozenset({"patient_a"}),
    "read_my_profile": frozenset({"patient_a"}),
    "list_my_restrictions": frozenset({"patient_a"}),
    # These act on the caller's own record only: patient B changes nothing of A's.
    "rectify_my_profile": frozenset({"patient_a", "patient_b"}),
    "restrict_my_processing": frozenset({"patient_a", "patient_b"}),
    "object_to_legitimate_interests_use": frozenset({"patient_a", "patient_b"}),
    "list_rights_requests": frozenset({"admin"}),
    "read_rights_request": frozenset({"admin"}),
    "list_processing_restrictions": frozenset({"admin"}),
    # -- rights: exports
    # The patient's own exports: B lists B's (SCOPED_LISTS); a request is for the caller.
    "request_my_export": frozenset({"patient_a", "patient_b"}),
    "list_my_exports": frozenset({"patient_a"}),
    "read_my_export": frozenset({"patient_a"}),
    "link_my_export": frozenset({"patient_a"}),
    # -- rights: erasure
    # Acts on the caller's own record only (patient B erases B); runs last but for log_out.
    "erase_my_data": frozenset({"patient_a", "patient_b"}),
    "list_erasure_retained_parts": frozenset({"admin"}),
    # -- operations: Prometheus metrics need the metrics token (set below); no role's access
    # token opens them, the privacy officer's included.
    "get_metrics": frozenset(),
}
ANALYST_OPERATIONS = {operation for operation, who in ALLOWED.items() if "analyst" in who}

# Lists answer 200 to any caller of the right role, scoped to what that caller may see.
SCOPED_LISTS = {
    "list_visible_cases",
    "list_my_disclosures",
    "list_my_rights_requests",
    "read_my_profile",
    "list_my_restrictions",
    "list_my_exports",
}
DENIED = {401, 403, 404}
METRICS_TOKEN = "matrix-metrics-token-" + "x" * 24


@pytest.fixture(autouse=True)
def _metrics_endpoint_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """``GET /metrics`` exists only with a token set: set one, so that anonymous callers must
    get 401 and every role's access token is refused like any wrong token."""
    monkeypatch.setenv("MEDVAULT_METRICS_TOKEN", METRICS_TOKEN)


@dataclass
class World:
    callers: dict[str, TestUser | None]
    path_values: dict[str, str]
    secrets: list[str]  # anything of patient A that must never reach another caller
    bodies: dict[str, dict[str, Any]]


def build_world(api: ApiHarness) -> World:
    expired = api.user(Role.COORDINATOR)
    api.clock.advance(minutes=api.runtime.settings.access_token_minutes + 1)
    admin, coordinator = api.user(Role.ADMIN), api.user(Role.COORDINATOR)
    analyst = api.user(Role.ANALYST)
    patient_a, patient_b = api.patient(name=PATIENT_NAME), api.patient(name="Max Beispiel")

    case_a = _created(api.client.post("/cases", headers=patient_a.headers))["id"]
    version = api.client.get("/consent-texts").json()[0]["version"]
    consent_a = _created(
        api.client.post(
            f"/cases/{case_a}/consents", headers=patient_a.headers, json={"text_version": version}
        )
    )["id"]
    document_a = _created(
        api.client.put(
            f"/cases/{case_a}/uploads/{PATIENT_NAME}.png",
            params={"kind": "record"},
            headers=patient_a.headers,
            content=png_bytes(),
        )
    )["id"]
    partner = _created(
        api.client.post(
            "/admin/partners",
            headers=admin.headers,
            json={"kind": "clinic", "name": "Klinik am See", "contact_email": "a@klinik.example"},
        )
    )["id"]
    transfer = _created(
        api.client.post(
            f"/cases/{case_a}/transfers",
            headers=coordinator.headers,
            json={
                "document_ids": [document_a],
                "partner_id": partner,
                "purpose": "treatment-check",
                "legal_basis": "art9-2-a",
                "consent_id": consent_a,
            },
        )
    )
    token = transfer["link_url"].rsplit("/", 1)[-1]
    extract = _built_extract(api, analyst)
    restriction = _created(
        api.client.post(
            "/admin/restrictions",
            headers=admin.headers,
            json={"patient_id": str(patient_a.patient_id), "case_id": case_a},
        )
    )["id"]
    rights_request = _created(
        api.client.patch("/me/profile", headers=patient_a.headers, json={"phone": "+49 30 765"})
    )["request_id"]
    path_values = {
        "case_id": case_a,
        "document_id": document_a,
        "consent_id": consent_a,
        "transfer_id": transfer["transfer"]["id"],
        "partner_id": partner,
        "user_id": str(patient_a.id),
        "restriction_id": restriction,
        "request_id": rights_request,
        "export_id": _built_export(api, patient_a),
        "token": token,
        "extract_id": extract,
        "filename": "befund.png",
    }
    bodies: dict[str, dict[str, Any]] = {
        "add_account": {"json": {"login": "new-user", "role": "coordinator", "password": "x" * 16}},
        "invite_new_patient": {
            "json": {"email": "new@example.org", "name": "N", "birth_date": "1970-01-01"}
        },
        "put_case_outcome": {
            "json": {
                "diagnosis_codes": ["M17.1"],
                "result": "improved",
                "treatment_start": "2026-10-01",
                "treatment_end": "2026-10-20",
                "final_invoice_total": "1234.50",
                "currency": "EUR",
            }
        },
        "complete_treatment": {"json": {"completed_at": "2026-11-01T00:00:00Z"}},
        "upload_form": {
            "files": {"file": ("scan.png", png_bytes(), "image/png")},
            "data": {"kind": "record"},
        },
        "upload_raw": {"content": png_bytes(), "params": {"kind": "record"}},
        "give_case_consent": {"json": {"text_version": version}},
        "answer_case_survey": {"json": {"scores": {"information": 5}, "qa_consent": True}},
        "place_processing_restriction": {"json": {"patient_id": str(patient_a.patient_id)}},
        "rectify_my_profile": {"json": {"phone": "+49 30 7654321"}},
        "erase_my_data": {"json": {"confirm": True}},
        "request_my_export": {"json": {"right": "access"}},
        "create_partner_record": {
            "json": {"kind": "insurer", "name": "Kasse", "contact_email": "k@kasse.example"}
        },
        "update_partner_record": {"json": {"name": "Klinik am Berg"}},
        "create_case_transfer": {
            "json": {
                "document_ids": [document_a],
                "partner_id": partner,
                "purpose": "treatment-check",
                "legal_basis": "art9-2-h",
            }
        },
    }
    secrets = [
        PATIENT_NAME,
        PATIENT_EMAIL,
        patient_a.login,
        case_a,
        document_a,
        consent_a,
        transfer["transfer"]["id"],
        str(patient_a.patient_id),
        rights_request,
        path_values["export_id"],
    ]
    callers: dict[str, TestUser | None] = {
        "patient_a": patient_a,
        "patient_b": patient_b,
        "coordinator": coordinator,
        "analyst": analyst,
        "admin": admin,
        "anonymous": None,
        "expired": expired,
    }
    return World(callers, path_values, secrets, bodies)


def _built_extract(api: ApiHarness, analyst: TestUser) -> str:
    """An extract the analyst requested, built at once (the worker's job, run in process)."""
    requested = api.client.post(
        "/extracts",
        headers=analyst.headers,
        json={"period_from": "2026-01-01", "period_to": "2026-12-31", "fields": ["sex"]},
    )
    assert requested.status_code == 202, requested.text
    extract_id: str = requested.json()["id"]
    runtime = api.runtime
    status = build_extract(
        sessions=runtime.sessions,
        store=runtime.blob_store,
        keys=runtime.key_store,
        extract_id=uuid.UUID(extract_id),
        retention=timedelta(days=runtime.settings.extract_retention_days),
        frame_size=runtime.frame_size,
        now=api.clock(),
        spool_dir=runtime.spool_dir,
    )
    assert status is ExtractStatus.READY
    return extract_id


def _built_export(api: ApiHarness, patient: TestUser) -> str:
    """An access export the patient requested, built at once (the worker's job, in process)."""
    requested = api.client.post("/me/exports", headers=patient.headers, json={"right": "access"})
    assert requested.status_code == 202, requested.text
    export_id: str = requested.json()["id"]
    runtime = api.runtime
    status = build_export(
        sessions=runtime.sessions,
        store=runtime.blob_store,
        keys=runtime.key_store,
        export_id=uuid.UUID(export_id),
        retention_years=runtime.settings.retention_years,
        export_retention=timedelta(days=runtime.settings.export_retention_days),
        frame_size=runtime.frame_size,
        now=api.clock(),
    )
    assert status is ExportStatus.READY
    return export_id


def _created(response: Any) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def operations(api: ApiHarness) -> list[tuple[str, str, str]]:
    spec = api.client.get("/openapi.json").json()
    found = [
        (operation["operationId"], method.upper(), path)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]
    # Signing out ends the caller's session: it goes last; erasing ends it too, and A's data.
    return sorted(
        found, key=lambda operation: (operation[0] == "log_out", operation[0] == "erase_my_data")
    )


def test_every_operation_is_classified(api: ApiHarness) -> None:
    ids = {operation_id for operation_id, _, _ in operations(api)}
    assert ids == PUBLIC | set(ALLOWED), "classify new operations in ALLOWED or PUBLIC"
    assert not PUBLIC & set(ALLOWED)


@pytest.mark.parametrize("caller", CALLERS)
def test_no_caller_reaches_what_it_may_not(api: ApiHarness, caller: str) -> None:
    world = build_world(api)
    user = world.callers[caller]
    headers = user.headers if user is not None else {}
    leaks, refused = [], 0
    for operation_id, method, template in operations(api):
        if operation_id in PUBLIC:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: world.path_values[m.group(1)], template)
        request = world.bodies.get(operation_id, {})
        response = api.client.request(method, path, headers=headers, **request)
        allowed = caller in ALLOWED[operation_id]
        if caller in ("anonymous", "expired"):
            if response.status_code != 401:
                leaks.append(f"{operation_id}: {response.status_code} instead of 401")
            continue
        if allowed:
            if method == "GET" and response.status_code != 200:
                leaks.append(f"{operation_id}: allowed but answered {response.status_code}")
            continue
        leaked = [secret for secret in world.secrets if secret in response.text]
        scoped_list = operation_id in SCOPED_LISTS and response.status_code == 200
        if (response.status_code in DENIED or scoped_list) and not leaked:
            refused += 1
        else:
            leaks.append(f"{operation_id}: {response.status_code}, leaked {len(leaked)} values")
    assert leaks == []
    if caller not in ("anonymous", "expired"):
        assert refused == sum(caller not in roles for roles in ALLOWED.values())


def test_the_analyst_reaches_no_personal_data(api: ApiHarness) -> None:
    world = build_world(api)
    analyst = world.callers["analyst"]
    assert analyst is not None
    for operation_id, method, template in operations(api):
        if operation_id in PUBLIC:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: world.path_values[m.group(1)], template)
        response = api.client.request(
            method, path, headers=analyst.headers, **world.bodies.get(operation_id, {})
        )
        assert not [secret for secret in world.secrets if secret in response.text], operation_id
        if operation_id not in ANALYST_OPERATIONS | {"who_am_i", "log_out"}:
            assert response.status_code in DENIED, operation_id
