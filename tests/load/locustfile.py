"""The load suite's clients, run by `locust` in a process of its own (locust patches the standard
library with gevent on import, so pytest never imports this file; tests/load/test_load.py starts
``python -m locust -f tests/load/locustfile.py --headless`` and reads its CSV files).

Three kinds of client, in the proportion patients 6 : coordinators 2 : partners 2, each waiting
1-3 s between its actions, as people do:

- patients sign in, then upload a small scan as a raw PDF body (weight 3) or a small PNG as a
  multipart form (2), now and then a large scan (1: a 2 MiB PDF or a 4 MiB PNG), and list their
  case's documents (4);
- coordinators sign in, list cases (3), and forward the three newest documents of a case to
  the partner under the patient's consent (2), which issues a link with 100 downloads;
- partners open a link (1) and download one of its documents with the access code (3), from
  the links seeded before the run and those the coordinators issue during it.

Every request is named by its route template (link tokens travel in paths and never reach the
figures) and judged here: the expected status is a success, anything else a failure whose
message is its kind only: ``server-error <status> <problem>``, ``unexpected <status>
<problem>`` or ``no-answer <exception class>``. The flows avoid expected refusals by design: a
link is used only while it has downloads left, and tokens are renewed before they expire.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment

from tests.load.world_format import WORLD_ENV, IssuedLink, SeededPatient, World

WORLD = World.load(Path(os.environ[WORLD_ENV]))
PAYLOADS = {name: Path(path).read_bytes() for name, path in WORLD.payloads.items()}
REQUEST_TIMEOUT_SECONDS = 120.0  # no answer by then is a hang, counted as a failure
TOKEN_RENEW_SECONDS = 10 * 60  # access tokens last 15 minutes
LISTED_FOR_FORWARDING = 3
PROBLEM_PREFIX = "https://medvault.invalid/problems/"

# Shared by every client of this (single, cooperative) process.
patients_in_turn = itertools.cycle(WORLD.patients)
links: list[IssuedLink] = list(WORLD.links)
counts: dict[str, float] = {
    "uploaded_bytes": 0,
    "uploads": 0,
    "downloaded_bytes": 0,
    "links_issued": 0,
    "links_used_up": 0,
    "partner_waits": 0,
    "started": 0.0,
    "stopped": 0.0,
}


def problem_slug(response: Any) -> str:
    """The problem type's last segment (a fixed word, never personal), or ``-``."""
    if "problem+json" not in (response.headers.get("content-type") or ""):
        return "-"
    try:
        kind = str(json.loads(response.content).get("type", ""))
    except ValueError:
        return "-"
    return kind.removeprefix(PROBLEM_PREFIX) or "-"


def judge(response: ResponseContextManager, expected: int) -> bool:
    """Mark ``response`` a success if it has the ``expected`` status, else a failure by kind."""
    status = response.status_code
    if status == expected:
        response.success()
        return True
    if not status:
        error = getattr(response, "error", None)  # set by locust when no answer came
        response.failure(f"no-answer {type(error).__name__}")
    elif status >= 500:
        response.failure(f"server-error {status} {problem_slug(response)}")
    else:
        response.failure(f"unexpected {status} {problem_slug(response)}")
    return False


class SignedIn(FastHttpUser):
    """A client with a password account; signs in first and again before its token expires."""

    abstract = True
    network_timeout = REQUEST_TIMEOUT_SECONDS
    connection_timeout = REQUEST_TIMEOUT_SECONDS
    login = ""
    _authorization: dict[str, str] | None = None
    _signed_in_at = 0.0

    def sign_in(self) -> None:
        with self.client.post(
            "/auth/token",
            data={"username": self.login, "password": WORLD.password},
            name="POST /auth/token",
            catch_response=True,
        ) as response:
            if judge(response, 200):
                token = json.loads(response.content)["access_token"]
                self._authorization = {"Authorization": f"Bearer {token}"}
                self._signed_in_at = time.monotonic()

    def auth(self) -> dict[str, str]:
        if (
            self._authorization is None
            or time.monotonic() - self._signed_in_at > TOKEN_RENEW_SECONDS
        ):
            self.sign_in()
        return dict(self._authorization or {})


class PatientClient(SignedIn):
    weight = 6
    wait_time = between(1, 3)
    account: SeededPatient

    def on_start(self) -> None:
        self.account = next(patients_in_turn)
        self.login = self.account.login
        self.sign_in()

    def _upload_raw(self, payload: str, filename: str, kind: str, size: str) -> None:
        data = PAYLOADS[payload]
        with self.client.put(
            f"/cases/{self.account.case_id}/uploads/{filename}?kind={kind}",
            data=data,  # type: ignore[arg-type]  # geventhttpclient sends bytes as they are
            headers={**self.auth(), "Content-Type": "application/octet-stream"},
            name=f"PUT /cases/{{case_id}}/uploads/{{filename}} ({size})",
            catch_response=True,
        ) as response:
            if judge(response, 201):
                counts["uploaded_bytes"] += len(data)
                counts["uploads"] += 1

    @task(3)
    def upload_small_pdf(self) -> None:
        self._upload_raw("small_pdf", "scan.pdf", "record", "small")

    @task(2)
    def upload_small_png_form(self) -> None:
        data = PAYLOADS["small_png"]
        with self.client.post(
            f"/cases/{self.account.case_id}/documents",
            data={"kind": "invoice"},
            files={"file": ("invoice.png", data, "image/png")},
            headers=self.auth(),
            name="POST /cases/{case_id}/documents (small)",
            catch_response=True,
        ) as response:
            if judge(response, 201):
                counts["uploaded_bytes"] += len(data)
                counts["uploads"] += 1

    @task(1)
    def upload_large(self) -> None:
        if random.random() < 0.5:
            self._upload_raw("large_pdf", "report.pdf", "record", "large")
        else:
            self._upload_raw("large_png", "scan.png", "record", "large")

    @task(4)
    def list_documents(self) -> None:
        with self.client.get(
            f"/cases/{self.account.case_id}/documents",
            headers=self.auth(),
            name="GET /cases/{case_id}/documents",
            catch_response=True,
        ) as response:
            judge(response, 200)


class CoordinatorClient(SignedIn):
    weight = 2
    wait_time = between(1, 3)
    login = WORLD.coordinator

    def on_start(self) -> None:
        self.sign_in()

    @task(3)
    def list_cases(self) -> None:
        with self.client.get(
            "/cases?limit=50", headers=self.auth(), name="GET /cases", catch_response=True
        ) as response:
            judge(response, 200)

    @task(2)
    def forward(self) -> None:
        patient = random.choice(WORLD.patients)
        with self.client.get(
            f"/cases/{patient.case_id}/documents",
            headers=self.auth(),
            name="GET /cases/{case_id}/documents (coordinator)",
            catch_response=True,
        ) as listed:
            if not judge(listed, 200):
                return
            newest = [document["id"] for document in json.loads(listed.content)]
        chosen = newest[-LISTED_FOR_FORWARDING:]
        with self.client.post(
            f"/cases/{patient.case_id}/transfers",
            json={
                "document_ids": chosen,
                "partner_id": WORLD.partner_id,
                "purpose": "treatment-check",
                "legal_basis": "art9-2-a",
                "consent_id": patient.consent_id,
                "max_downloads": WORLD.link_downloads,
            },
            headers=self.auth(),
            name="POST /cases/{case_id}/transfers",
            catch_response=True,
        ) as response:
            if judge(response, 201):
                issued = json.loads(response.content)
                path = "/l/" + issued["link_url"].rsplit("/l/", 1)[1]
                links.append(IssuedLink(path, issued["access_code"], chosen, WORLD.link_downloads))
                counts["links_issued"] += 1


class PartnerClient(FastHttpUser):
    weight = 2
    wait_time = between(1, 3)
    network_timeout = REQUEST_TIMEOUT_SECONDS
    connection_timeout = REQUEST_TIMEOUT_SECONDS

    @task(1)
    def open_link(self) -> None:
        if not links:
            counts["partner_waits"] += 1
            return
        link = random.choice(links)
        with self.client.get(
            link.path,
            headers={"Accept": "application/json"},
            name="GET /l/{token}",
            catch_response=True,
        ) as response:
            judge(response, 200)

    @task(3)
    def download(self) -> None:
        if not links:
            counts["partner_waits"] += 1
            return
        link = random.choice(links)
        link.uses_left -= 1  # taken before the request: no two clients spend the last one
        if link.uses_left == 0:
            links.remove(link)
            counts["links_used_up"] += 1
        document_id = random.choice(link.document_ids)
        with self.client.post(
            f"{link.path}/documents/{document_id}",
            data={"code": link.code},
            name="POST /l/{token}/documents/{document_id}",
            catch_response=True,
        ) as response:
            if judge(response, 200):
                counts["downloaded_bytes"] += len(response.content or b"")


@events.test_start.add_listener
def _started(environment: Environment, **_kwargs: Any) -> None:
    counts["started"] = time.time()


@events.test_stop.add_listener
def _stopped(environment: Environment, **_kwargs: Any) -> None:
    counts["stopped"] = time.time()
    Path(WORLD.counts_path).write_text(json.dumps(counts))
