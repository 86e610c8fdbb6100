"""The clients' side of the fault suite: the people, the mixed operations, and how each answer
is judged and written down.

Every answer must be the operation's success, a documented refusal (409 ``export-pending``),
or a problem+json 503 that names an unavailable dependency; anything else (a 500, another
status, a success that is not what was sent, a reset or a timeout of the API connection) is a
violation. Every acknowledged upload (201) is kept with its SHA-256, to be read back later.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx2 as httpx

from tests.e2e.service import PASSWORD, mailed_code, medvault
from tests.factories import pdf_bytes, png_bytes
from tests.faults.installation import BROKER, DATABASE, KEY_PROVIDER, OBJECT_STORE

PROBLEM_BASE = "https://medvault.invalid/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
# The 503 answers and the dependency each of them names.
UNAVAILABLE = {
    "database-unavailable": DATABASE,
    "audit-unavailable": DATABASE,  # the event cannot be written: the database does not answer
    "queue-unavailable": BROKER,
    "storage-unavailable": OBJECT_STORE,
    "kms-unavailable": KEY_PROVIDER,
}
# Big enough (with its envelope) to go to S3 as a multipart upload of 5 MiB parts.
BIG_PNG_SIDE = (1500, 1300)
REQUEST_TIMEOUT_SECONDS = 60.0
SIGN_IN_AGAIN_SECONDS = 10 * 60
# A client's pause after a 503: without it, operations failing in milliseconds while a
# dependency is down would use up the run in a burst.
BACKOFF_SECONDS = 0.5  # access tokens last 15 minutes
# Operation -> weight in the mix.
MIX = {
    "upload_png": 28,
    "upload_big_png": 6,
    "upload_pdf_form": 10,
    "list_documents": 15,
    "read_document": 20,
    "forward_to_partner": 8,
    "request_export": 5,
    "sign_in": 5,
}


@dataclass
class Person:
    login: str
    headers: dict[str, str]
    signed_in_at: float


@dataclass
class PatientCase:
    person: Person
    case_id: str
    consent_id: str


@dataclass
class World:
    """Who acts: patients with a case and a forwarding consent, a coordinator, a partner."""

    patients: list[PatientCase]
    coordinator: Person
    partner_id: str


@dataclass(frozen=True)
class Acknowledged:
    """An upload the API answered 201: it must exist and read back as ``sha256``."""

    document_id: str
    case_id: str
    sha256: str
    at: float  # time.monotonic() when the answer arrived


@dataclass
class Ledger:
    """What the clients saw; filled by several threads under ``lock``."""

    outcomes: Counter[str] = field(default_factory=Counter)  # ok, unavailable:<dep>, ...
    by_operation: dict[str, Counter[str]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    uploads: dict[str, Acknowledged] = field(default_factory=dict)
    reads: Counter[str] = field(default_factory=Counter)  # document id -> reads answered 200
    transfers: list[str] = field(default_factory=list)  # ids answered 201
    link_downloads: Counter[str] = field(default_factory=Counter)  # transfer id -> 200s
    exports: list[str] = field(default_factory=list)  # ids answered 202
    seconds: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, operation: str, outcome: str, seconds: float, problem: str = "") -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.by_operation.setdefault(operation, Counter())[outcome] += 1
            self.seconds.append(seconds)
            if problem:
                self.violations.append(f"{operation}: {problem}")

    def acknowledged_for(self, case_id: str, before: float) -> set[str]:
        with self.lock:
            return {
                upload.document_id
                for upload in self.uploads.values()
                if upload.case_id == case_id and upload.at < before
            }


class Refused(Exception):
    """One step of an operation did not succeed; ``outcome`` says how it was judged."""

    def __init__(self, outcome: str, problem: str = "") -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.problem = problem


def judge(
    response: httpx.Response, success: int, *, refusals: frozenset[str] = frozenset()
) -> None:
    """Return if ``response`` is the success; raise Refused with the outcome otherwise."""
    status = response.status_code
    if status == success:
        return
    media_type = response.headers.get("content-type", "").split(";")[0]
    slug = ""
    if media_type == PROBLEM_MEDIA_TYPE:
        slug = str(response.json().get("type", "")).removeprefix(PROBLEM_BASE)
    if status == 503 and slug in UNAVAILABLE:
        raise Refused(f"unavailable:{UNAVAILABLE[slug]}")
    if slug in refusals:
        raise Refused(f"refused:{slug}")
    raise Refused("other", f"{status} {media_type} {slug or response.text[:80]!r}")


class Clients:
    """Runs operations against the API and writes every outcome into a ledger."""

    def __init__(self, base_url: str, env: dict[str, str], world: World, *, seed: int) -> None:
        self.env = env
        self.world = world
        self.seed = seed
        # Idle connections are dropped well before uvicorn's 5 s keep-alive timeout: a request
        # sent on a connection the server is closing at that moment fails whatever the service
        # does, and that race is not what this suite is about.
        limits = httpx.Limits(
            max_connections=32, max_keepalive_connections=32, keepalive_expiry=2.0
        )
        self.http = httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits)
        self._big_pngs = [png_bytes(*BIG_PNG_SIDE, seed=seed * 10 + n) for n in range(3)]
        self._sign_in_lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # -- running one operation -----------------------------------------------------------------

    def run(self, number: int, ledger: Ledger, operation: str | None = None) -> str:
        """Run operation ``number`` of the mix (or ``operation``); returns its outcome."""
        rng = random.Random(self.seed * 1_000_003 + number)
        name = operation or rng.choices(list(MIX), weights=list(MIX.values()))[0]
        step: Callable[[random.Random, Ledger], None] = getattr(self, name)
        started = time.monotonic()
        try:
            step(rng, ledger)
            outcome, problem = "ok", ""
        except Refused as refused:
            outcome, problem = refused.outcome, refused.problem
        except httpx.TransportError as error:  # the API connection itself failed: never allowed
            outcome, problem = "other", f"connection to the API: {_described(error)}"
        ledger.note(name, outcome, time.monotonic() - started, problem)
        if outcome.startswith("unavailable:"):
            time.sleep(BACKOFF_SECONDS)  # as a client told "try again shortly" would
        return outcome

    # -- the operations ------------------------------------------------------------------------

    def upload_png(self, rng: random.Random, ledger: Ledger) -> None:
        data = png_bytes(rng.randint(16, 64), rng.randint(16, 64), seed=rng.randrange(1 << 30))
        self._upload_raw(rng, ledger, data, "scan.png")

    def upload_big_png(self, rng: random.Random, ledger: Ledger) -> None:
        self._upload_raw(rng, ledger, rng.choice(self._big_pngs), "big-scan.png")

    def upload_pdf_form(self, rng: random.Random, ledger: Ledger) -> None:
        patient = rng.choice(self.world.patients)
        response = self.http.post(
            f"/cases/{patient.case_id}/documents",
            headers=self.headers_of(patient.person),
            data={"kind": "invoice"},
            files={"file": ("invoice.pdf", pdf_bytes(rng.randint(1, 3)), "application/pdf")},
        )
        judge(response, 201)
        self._acknowledge(ledger, patient, response, original=None)

    def list_documents(self, rng: random.Random, ledger: Ledger) -> None:
        patient = rng.choice(self.world.patients)
        started = time.monotonic()
        response = self.http.get(
            f"/cases/{patient.case_id}/documents", headers=self.headers_of(patient.person)
        )
        judge(response, 200)
        listed = {document["id"] for document in response.json()}
        missing = ledger.acknowledged_for(patient.case_id, before=started) - listed
        if missing:
            raise Refused("other", f"{len(missing)} acknowledged upload(s) not listed")

    def read_document(self, rng: random.Random, ledger: Ledger) -> None:
        upload = self._some_upload(rng, ledger)
        if upload is None:
            return self.upload_png(rng, ledger)
        owner = next(p for p in self.world.patients if p.case_id == upload.case_id)
        response = self.http.get(
            f"/documents/{upload.document_id}/content", headers=self.headers_of(owner.person)
        )
        judge(response, 200)
        if hashlib.sha256(response.content).hexdigest() != upload.sha256:
            raise Refused("other", "a document read back with other bytes than acknowledged")
        with ledger.lock:
            ledger.reads[upload.document_id] += 1
        return None

    def forward_to_partner(self, rng: random.Random, ledger: Ledger) -> None:
        """A coordinator forwards a document; the partner downloads it with the access code."""
        upload = self._some_upload(rng, ledger)
        if upload is None:
            return self.upload_png(rng, ledger)
        patient = next(p for p in self.world.patients if p.case_id == upload.case_id)
        created = self.http.post(
            f"/cases/{upload.case_id}/transfers",
            headers=self.headers_of(self.world.coordinator),
            json={
                "document_ids": [upload.document_id],
                "partner_id": self.world.partner_id,
                "purpose": "treatment-check",
                "legal_basis": "art9-2-a",
                "consent_id": patient.consent_id,
            },
        )
        judge(created, 201)
        issued = created.json()
        transfer_id = issued["transfer"]["id"]
        with ledger.lock:
            ledger.transfers.append(transfer_id)
        link_path = httpx.URL(issued["link_url"]).path
        downloaded = self.http.post(
            f"{link_path}/documents/{upload.document_id}", data={"code": issued["access_code"]}
        )
        judge(downloaded, 200)
        if hashlib.sha256(downloaded.content).hexdigest() != upload.sha256:
            raise Refused("other", "the partner downloaded other bytes than acknowledged")
        with ledger.lock:
            ledger.link_downloads[transfer_id] += 1
        return None

    def request_export(self, rng: random.Random, ledger: Ledger) -> None:
        patient = rng.choice(self.world.patients)
        response = self.http.post(
            "/me/exports", headers=self.headers_of(patient.person), json={"right": "access"}
        )
        judge(response, 202, refusals=frozenset({"export-pending"}))
        with ledger.lock:
            ledger.exports.append(response.json()["id"])

    def sign_in(self, rng: random.Random, ledger: Ledger) -> None:
        person = rng.choice([p.person for p in self.world.patients] + [self.world.coordinator])
        response = self.http.post(
            "/auth/token", data={"username": person.login, "password": PASSWORD}
        )
        judge(response, 200)

    # -- helpers -------------------------------------------------------------------------------

    def _upload_raw(self, rng: random.Random, ledger: Ledger, data: bytes, name: str) -> None:
        patient = rng.choice(self.world.patients)
        response = self.http.put(
            f"/cases/{patient.case_id}/uploads/{name}",
            params={"kind": "record"},
            headers=self.headers_of(patient.person),
            content=data,
        )
        judge(response, 201)
        self._acknowledge(ledger, patient, response, original=data)

    def _acknowledge(
        self,
        ledger: Ledger,
        patient: PatientCase,
        response: httpx.Response,
        *,
        original: bytes | None,
    ) -> None:
        stored = response.json()
        if original is not None and hashlib.sha256(original).hexdigest() != stored["sha256"]:
            raise Refused("other", "a clean PNG was not stored unchanged")
        with ledger.lock:
            ledger.uploads[stored["id"]] = Acknowledged(
                stored["id"], patient.case_id, stored["sha256"], time.monotonic()
            )

    def _some_upload(self, rng: random.Random, ledger: Ledger) -> Acknowledged | None:
        with ledger.lock:
            uploads = sorted(ledger.uploads)
            return ledger.uploads[rng.choice(uploads)] if uploads else None

    def headers_of(self, person: Person) -> dict[str, str]:
        """The person's bearer token, signing in again before it expires (retried through
        faults: a sign-in answered 503 is tried again, anything else fails the run)."""
        with self._sign_in_lock:
            if time.monotonic() - person.signed_in_at > SIGN_IN_AGAIN_SECONDS:
                person.headers = self.signed_in(person.login)
                person.signed_in_at = time.monotonic()
            return dict(person.headers)

    def signed_in(self, login: str, *, attempts: int = 60) -> dict[str, str]:
        for _ in range(attempts):
            response = self.http.post("/auth/token", data={"username": login, "password": PASSWORD})
            try:
                judge(response, 200)
            except Refused as refused:
                if not refused.outcome.startswith("unavailable:"):
                    raise
                time.sleep(1.0)  # a dependency is down: try again shortly
                continue
            return {"Authorization": f"Bearer {response.json()['access_token']}"}
        raise Refused("other", "could not sign in again through the faults")


def _described(error: httpx.TransportError) -> str:
    """The error and the request it broke, with ids and tokens taken out of the path."""
    try:
        request = error.request
    except RuntimeError:  # no request attached
        return f"{type(error).__name__}: {error}"
    path = re.sub(r"/[0-9a-f-]{36}|/l/[^/]+", "/{id}", request.url.path)
    return f"{type(error).__name__} on {request.method} {path}: {error}"


# -- setting the world up (no faults yet) --------------------------------------------------------


def make_world(
    http: httpx.Client, env: dict[str, str], *, patients: int, coordinator: str, admin: str
) -> World:
    """Staff by the `medvault` command; the partner, patients, cases and consents through the
    API, as people make them."""
    text_version = http.get("/consent-texts").json()[0]["version"]
    with ThreadPoolExecutor(max_workers=patients + 2) as pool:  # each waits on a password hash
        staff = [
            pool.submit(medvault, "user", "add", login, "--role", role, env=env, stdin=PASSWORD)
            for login, role in ((coordinator, "coordinator"), (admin, "admin"))
        ]
        made = [pool.submit(_patient_with_case, http, env, text_version) for _ in range(patients)]
        for added in staff:
            added.result()
        cases = [case.result() for case in made]
    partner = http.post(
        "/admin/partners",
        headers=_sign_in(http, admin),
        json={"kind": "clinic", "name": "Klinik am See", "contact_email": "intake@klinik.example"},
    )
    assert partner.status_code == 201, partner.text
    return World(
        patients=cases,
        coordinator=Person(coordinator, _sign_in(http, coordinator), time.monotonic()),
        partner_id=partner.json()["id"],
    )


def _sign_in(http: httpx.Client, login: str) -> dict[str, str]:
    response = http.post("/auth/token", data={"username": login, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _confirmation_code(env: dict[str, str], login: str) -> str:
    """The mailed code; patients register side by side, so another's mail may be renamed from
    its temporary name while the outbox is read: read it again."""
    for _ in range(50):
        try:
            return mailed_code(env, login)
        except FileNotFoundError:
            time.sleep(0.05)
    return mailed_code(env, login)


def _patient_with_case(http: httpx.Client, env: dict[str, str], text_version: str) -> PatientCase:
    login = f"patient-{uuid.uuid4().hex[:8]}@example.org"
    registered = http.post(
        "/auth/register",
        json={
            "email": login,
            "password": PASSWORD,
            "name": "Fault Patient",
            "birth_date": "1970-01-01",
        },
    )
    assert registered.status_code == 202, registered.text
    confirmed = http.post("/auth/confirm", json={"token": _confirmation_code(env, login)})
    assert confirmed.status_code == 204, confirmed.text
    headers = _sign_in(http, login)
    case = http.post("/cases", headers=headers)
    assert case.status_code == 201, case.text
    case_id = case.json()["id"]
    consent = http.post(
        f"/cases/{case_id}/consents", headers=headers, json={"text_version": text_version}
    )
    assert consent.status_code == 201, consent.text
    person = Person(login, headers, time.monotonic())
    return PatientCase(person, case_id, consent.json()["id"])
