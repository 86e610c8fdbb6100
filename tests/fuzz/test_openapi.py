"""OpenAPI fuzzing with schemathesis: every operation of the API, every check schemathesis has
(ignored auth and use-after-free included), as the admin, a coordinator, a patient and the
analyst, on a small seeded world, with a fixed seed; then the state machine over the OpenAPI
links. The bar: no server error and no failed check.

Short form (``make test``): 50 examples per operation, each operation as the role whose work it
is. Long form (``make soak``, ``MEDVAULT_SOAK=long``): 1,000 per operation as that role, and 50
as each other role: a role the operation refuses is refused before its input is validated (the
role check is a dependency, which FastAPI solves before it validates parameters and body), so
more examples there find nothing more; the other roles' own reads (a patient's own case) are
covered at 50 here and endpoint by endpoint in tests/security. The figures go to
``soak-results.json`` under ``openapi_fuzzing``.

The checks' exceptions are few and written down with their reasons (``DOMAIN_REFUSALS``, the
link lifecycle, the link lifetime cap): refusals of schema-valid data that no JSON Schema can
state. Everything else the server refuses is a gap in the schema and fails the suite."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import hypothesis
import jsonschema
import pytest
import schemathesis
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData

from api.app import create_app
from infra.wiring import Runtime
from tests.apiharness import (
    PASSWORD,
    MemoryNotifier,
    MutableClock,
    RecordingTaskQueue,
    harness_settings,
)
from tests.factories import identity, png_bytes
from tests.soak.results import record, soak_form
from vault.accounts import passwords
from vault.accounts.models import Role
from vault.accounts.service import create_user
from vault.extracts.models import ExtractStatus
from vault.extracts.service import build_extract
from vault.patients.service import register_patient

SEED = 20261124
FORM = soak_form()
EXAMPLES = 1_000 if FORM == "long" else 50  # per operation, as its working role
OTHER_ROLE_EXAMPLES = 50 if FORM == "long" else 0  # per operation, as each other role
STATEFUL_SCENARIOS = 200 if FORM == "long" else 20
STATEFUL_STEPS = 10
ROLES = ("admin", "coordinator", "patient", "analyst")

# A role's long form takes minutes (the patient's about ten), past the suite's 300 s default.
pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.slow,
    pytest.mark.timeout(3600 if FORM == "long" else 300),
]


@dataclass
class World:
    app: FastAPI
    runtime: Runtime
    clock: MutableClock
    tokens: dict[str, list[str]]  # fresh access tokens per role, one per operation
    path_values: dict[str, str]


@dataclass
class Figures:
    operations: set[str] = field(default_factory=set)
    examples: int = 0
    server_errors: int = 0
    check_failures: int = 0
    per_role_seconds: dict[str, float] = field(default_factory=dict)
    stateful_steps: int = 0


FIGURES = Figures()


@pytest.fixture(scope="module", autouse=True)
def _figures_recorded() -> Iterator[None]:
    """Whatever the outcome, the run's figures go to soak-results.json under openapi_fuzzing."""
    started = time.monotonic()
    yield
    record(
        "openapi_fuzzing",
        {
            "form": FORM,
            "seed": SEED,
            "roles": list(ROLES),
            "examples_per_operation": EXAMPLES,
            "examples_per_operation_as_other_roles": OTHER_ROLE_EXAMPLES,
            "operations": len(FIGURES.operations),
            "examples_run": FIGURES.examples,
            "server_errors": FIGURES.server_errors,
            "check_failures": FIGURES.check_failures,
            "stateful_steps": FIGURES.stateful_steps,
            "seconds_per_role": {k: round(v, 1) for k, v in FIGURES.per_role_seconds.items()},
            "duration_seconds": round(time.monotonic() - started, 1),
        },
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        # as tests/conftest.py's cheap_password_hashing, for the whole module
        patch.setattr(passwords, "_hasher", PasswordHasher.from_parameters(CHEAPEST))
        patch.setattr(passwords, "_dummy_hash", functools.cache(passwords._dummy_hash.__wrapped__))
        tmp = tmp_path_factory.mktemp("fuzz")
        clock = MutableClock()
        app = create_app(
            harness_settings(tmp),
            clock=clock,
            notifier=MemoryNotifier(),
            tasks=RecordingTaskQueue(),
        )
        runtime: Runtime = app.state.runtime
        yield _seeded(app, runtime, clock)
        runtime.close()


def _seeded(app: FastAPI, runtime: Runtime, clock: MutableClock) -> World:
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="http://testserver")
    logins: dict[str, str] = {}
    with runtime.sessions() as session:
        patient = register_patient(
            session=session, keys=runtime.key_store, identity=identity(), now=clock()
        )
        session.flush()
        for role in Role:
            login = f"fuzz-{role.value}@example.org"
            create_user(
                session,
                login=login,
                password=PASSWORD,
                role=role,
                patient_id=patient.id if role is Role.PATIENT else None,
                lookup_key=runtime.secrets.login_lookup_key,
                now=clock(),
            )
            logins[role.value] = login
        spare = create_user(
            session,
            login="fuzz-spare@example.org",
            password=PASSWORD,
            role=Role.COORDINATOR,
            lookup_key=runtime.secrets.login_lookup_key,
            now=clock(),
        )
        session.commit()
        spare_id = str(spare.id)

    def bearer(role: str) -> dict[str, str]:
        answer = client.post("/auth/token", data={"username": logins[role], "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    patient_h, coordinator_h = bearer("patient"), bearer("coordinator")
    admin_h, analyst_h = bearer("admin"), bearer("analyst")
    case_id = _ok(client.post("/cases", headers=patient_h))["id"]
    version = client.get("/consent-texts").json()[0]["version"]
    consent_id = _ok(
        client.post(f"/cases/{case_id}/consents", headers=patient_h, json={"text_version": version})
    )["id"]
    document_id = _ok(
        client.put(
            f"/cases/{case_id}/uploads/befund.png",
            params={"kind": "record"},
            headers=patient_h,
            content=png_bytes(),
        )
    )["id"]
    partner_id = _ok(
        client.post(
            "/admin/partners",
            headers=admin_h,
            json={"kind": "clinic", "name": "Klinik am See", "contact_email": "a@klinik.example"},
        )
    )["id"]
    transfer = _ok(
        client.post(
            f"/cases/{case_id}/transfers",
            headers=coordinator_h,
            json={
                "document_ids": [document_id],
                "partner_id": partner_id,
                "purpose": "treatment-check",
                "legal_basis": "art9-2-a",
                "consent_id": consent_id,
            },
        )
    )
    extract_id = _ok(
        client.post(
            "/extracts",
            headers=analyst_h,
            json={"period_from": "2026-01-01", "period_to": "2026-12-31", "fields": ["sex"]},
        )
    )["id"]
    status = build_extract(
        sessions=runtime.sessions,
        store=runtime.blob_store,
        keys=runtime.key_store,
        extract_id=uuid.UUID(extract_id),
        retention=timedelta(days=runtime.settings.extract_retention_days),
        frame_size=runtime.frame_size,
        now=clock(),
        spool_dir=runtime.spool_dir,
    )
    assert status is ExtractStatus.READY
    path_values = {
        "case_id": case_id,
        "consent_id": consent_id,
        "document_id": document_id,
        "partner_id": partner_id,
        "transfer_id": transfer["transfer"]["id"],
        "token": transfer["link_url"].rsplit("/", 1)[-1],
        "extract_id": extract_id,
        "user_id": spare_id,  # the admin may disable this one: nobody else signs in with it
        "filename": "befund.png",
    }
    # Signed in before any fuzzing: fuzzed sign-ins lock the client address out (429), and a
    # fuzzed sign-out revokes the token it is sent with, so each operation gets its own.
    operations = sum(len(methods) for methods in app.openapi()["paths"].values())
    tokens = {
        role: [bearer(role)["Authorization"] for _ in range(operations + 1)] for role in ROLES
    }
    return World(app, runtime, clock, tokens, path_values)


def _ok(response: Any) -> Any:
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


# Partner-link operations: a link answers 410 once used up, revoked or locked (5 wrong codes,
# which the fuzzer sends within its first examples). That is the link's lifecycle
# (tests/api/test_links.py), not a refusal of valid data.
LINK_OPERATIONS = {"open_partner_link", "download_partner_document", "download_partner_archive"}


# Refusals of schema-valid data that no JSON Schema can state, by operation: the problem type
# answered and, for invalid-request, the field whose rule it is ("" for the whole body).
# Anything else the server refuses is a gap in the schema, and fails.
DOMAIN_REFUSALS: dict[str, set[tuple[str, str | None]]] = {
    # Only the server knows which one-time codes are live.
    "confirm_address": {("invalid-one-time-token", None)},
    "accept_patient_invitation": {("invalid-one-time-token", None)},
    # A birth date must lie in the past: relative to today.
    "register_as_patient": {("invalid-request", "birth_date")},
    "invite_new_patient": {("invalid-request", "birth_date")},
    "rectify_my_profile": {("invalid-request", "birth_date")},
    # The treatment ends on or after its start: a relation between two fields.
    "put_case_outcome": {("invalid-request", "")},
    # Completion cannot predate the case's opening: a relation to the stored case.
    "complete_treatment": {("invalid-case-update", None)},
    # The period ends on or after its start: a relation between two fields.
    "request_qa_extract": {("invalid-extract-request", None)},
    # An upload's bytes must be a well-formed PDF, PNG, JPEG or TIFF: content, not schema.
    "upload_form": {("invalid-document", None), ("document-too-large", None)},
    "upload_raw": {("invalid-document", None), ("document-too-large", None)},
}


# e-mail-validator's words for a domain no mail can reach: none of a single label, none
# special-use ("localhost", ".test"), though JSON Schema's "email" format admits both.
UNDELIVERABLE_DOMAIN = ("It should have a period", "special-use or reserved name")


def _is_excepted(world: World, failure: Failure, case: schemathesis.Case, response: Any) -> bool:
    """The narrow exceptions to the checks, each with its reason. Nothing else is excused."""
    if not isinstance(failure, RejectedPositiveData):
        return False
    operation_id = case.operation.definition.raw.get("operationId")
    if operation_id in LINK_OPERATIONS and response.status_code == 410:
        return True
    # A link's lifetime is capped by a setting (MEDVAULT_LINK_MAX_TTL_DAYS), so the schema
    # cannot carry the maximum: a longer one is a 422 invalid-transfer, by design.
    if operation_id == "create_case_transfer" and response.status_code == 422:
        body = case.body if isinstance(case.body, dict) else {}
        days = body.get("expires_in_days")
        limit = world.runtime.settings.link_max_ttl_days
        return isinstance(days, int | float) and days > limit  # JSON 31.0 is an integer too
    return _is_domain_refusal(DOMAIN_REFUSALS.get(operation_id, set()), response)


def _is_domain_refusal(allowed: set[tuple[str, str | None]], response: Any) -> bool:
    slug = _problem_type(response)
    if slug != "invalid-request":
        return (slug, None) in allowed
    # A field's location continues with the union member it was checked as: its first part names
    # it. An undeliverable e-mail domain is excused wherever it is, and with it the error of the
    # nullable field's other member ("Input should be None").
    errors = response.json().get("errors", [])
    fields = {
        str(error["location"][1]) if len(error["location"]) > 1 else ""
        for error in errors
        if not any(words in error["message"] for words in UNDELIVERABLE_DOMAIN)
        and error["message"] != "Input should be None"
    }
    return bool(errors) and all((slug, field) in allowed for field in fields)


def _schema(world: World) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)

    @schema.hook
    def filter_failure(context: Any, failure: Failure, case: Any, response: Any) -> bool:
        return not _is_excepted(world, failure, case, response)

    return schema


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_holds_under_fuzzing(world: World, role: str) -> None:
    schema = _schema(world)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        # Half the time, the seeded objects instead of random ids (which all meet 404); but only
        # in place of valid values: a negative case's invalid path must reach the server as is.
        if not path_parameters or not _valid_path(context.operation, path_parameters):
            return st.just(path_parameters)
        seeded = {
            name: world.path_values.get(name, value) for name, value in path_parameters.items()
        }
        return st.sampled_from([seeded, path_parameters])

    failures: list[str] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        examples = EXAMPLES if _working_role(operation.path) == role else OTHER_ROLE_EXAMPLES
        if not examples:
            continue
        FIGURES.operations.add(operation.label)
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, hooks=schema.hooks),
            operation.as_strategy(GenerationMode.NEGATIVE, hooks=schema.hooks),
        )
        headers = {"Authorization": world.tokens[role].pop()}

        _fuzz(operation, strategy, headers, failures, role, examples)
    FIGURES.per_role_seconds[role] = time.monotonic() - started
    assert not failures, _summary(failures)


def _valid_path(operation: Any, values: dict[str, Any]) -> bool:
    """Whether every path parameter in ``values`` is valid for its schema."""
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    schemas = {each.name: each.definition["schema"] for each in operation.path_parameters}
    return all(
        jsonschema.Draft202012Validator(schemas[name], format_checker=checker).is_valid(value)
        for name, value in values.items()
    )


def _working_role(path: str) -> str:
    """The role whose work an operation is (the short form fuzzes each operation as that role
    at full strength; other roles mostly meet 403 there, which tests/security covers)."""
    if path.startswith("/admin"):
        return "admin"
    if path.startswith(("/extracts", "/extract-scopes")):
        return "analyst"
    if path.startswith(("/cases", "/patients", "/partners", "/transfers", "/documents")):
        return "patient" if path.endswith(("/survey", "/consents")) else "coordinator"
    return "patient"  # /me, /auth, partner links, the public texts and health


def _summary(failures: list[str]) -> str:
    """One line per distinct (operation, failure) with its count, then the first of each."""
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    for failure in failures:
        key = failure.split("\n", 1)[0]
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, failure)
    lines = [f"{count:5} x {key}" for key, count in sorted(counts.items())]
    return "\n".join([*lines, "", *first.values()])


def _fuzz(
    operation: Any,
    strategy: Any,
    headers: dict[str, str],
    failures: list[str],
    role: str,
    examples: int,
) -> None:
    @hypothesis.seed(SEED)
    @hypothesis.settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        FIGURES.examples += 1
        try:
            response = case.call(headers=headers)
        except Exception as error:  # noqa: BLE001 - an unhandled error in the app is a 500
            FIGURES.server_errors += 1
            failures.append(f"{role} {operation.label}: {error!r}\n{case.as_curl_command()}")
            return
        if response.status_code >= 500:
            FIGURES.server_errors += 1
        try:
            case.validate_response(response, headers=headers)
        except FailureGroup as group:
            found = list(group.exceptions)
        except Failure as failure:
            found = [failure]
        else:
            return
        FIGURES.check_failures += len(found)
        for each in found:
            failures.append(
                f"{role} {operation.label} -> {response.status_code} {_problem_type(response)}: "
                f"{each.title}\n{each.message}\n{response.content[:300]!r}\n{case.as_curl_command()}"
            )

    run()


def _problem_type(response: Any) -> str:
    """The slug of a problem+json answer's type (what the failure is grouped by), or ''."""
    content_types = response.headers.get("content-type") or [""]  # schemathesis: name -> list
    if not content_types[0].startswith("application/problem+json"):
        return ""
    return str(response.json().get("type", "")).rsplit("/", 1)[-1]


def test_linked_operations_hold_as_a_state_machine(world: World) -> None:
    """Chains of operations along the OpenAPI links (create, then read what was created),
    as the coordinator, with every check."""
    schema = _schema(world)
    headers = {"Authorization": world.tokens["coordinator"].pop()}
    base = schema.as_state_machine()

    class Chains(base):  # type: ignore[valid-type, misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            FIGURES.stateful_steps += 1
            if response.status_code >= 500:
                FIGURES.server_errors += 1

    try:
        Chains.run(
            settings=hypothesis.settings(
                max_examples=STATEFUL_SCENARIOS,
                stateful_step_count=STATEFUL_STEPS,
                database=None,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
        )
    except (FailureGroup, Failure):
        FIGURES.check_failures += 1
        raise
