"""Hostile files through the upload endpoints of a real `medvault serve`, while a process of its
own polls the health endpoints: no server error, no crash, every file sanitised or refused, nothing
half-stored, no sanitiser process left behind, and every health check answered within 1 s.

Short form (`make test`): the whole corpus once through each endpoint, plus a few seeded
mutations. Long form (`make soak`, ``MEDVAULT_SOAK=long``): bigger bombs and counts, then rounds
of the corpus and of seeded mutations (bit flips, cuts, inserted, repeated or zeroed bytes)
from two uploaders at once, for ``MEDVAULT_SOAK_SECONDS`` (default 300). ``MEDVAULT_SOAK_SEED``
fixes the mutations (default 1). Figures go to ``soak-results.json`` under
``hostile_uploads_short`` or ``hostile_uploads_long``.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.soak import results
from tests.soak.corpus import Sample, base_corpus, mutations
from tests.soak.findings import findings
from tests.soak.server import HealthProbe, Patient, Server, running_server

FORM = results.soak_form()
SUITE = f"hostile_uploads_{FORM}"  # short and long figures side by side
MAX_HEALTH_SECONDS = 1.0
REFUSAL_TYPES = {
    "https://medvault.invalid/problems/invalid-document": 422,
    "https://medvault.invalid/problems/document-too-large": 413,
}
ENDPOINTS = ("raw", "form")
MAX_DOCUMENT_MIB = 32
# Small PDF child limits, so hostile PDFs end quickly (as in the intake unit tests).
SERVER_SETTINGS = {
    "max_document_mib": str(MAX_DOCUMENT_MIB),
    "pdf_memory_mib": "256",
    "pdf_cpu_seconds": "5",
    "pdf_wall_seconds": "10",
}
UPLOAD_TIMEOUT_SECONDS = 60.0  # far above the PDF wall limit: running into it is a hang
SHORT_MUTATIONS = 24
LONG_SECONDS = float(os.environ.get("MEDVAULT_SOAK_SECONDS", "300"))
LONG_MUTATIONS_PER_ROUND = 150
LONG_UPLOADERS = 2
SEED = int(os.environ.get("MEDVAULT_SOAK_SEED", "1"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300 if FORM == "short" else LONG_SECONDS + 900),
]


@dataclass
class Tally:
    """What happened to every upload, filled in by one or more uploader threads."""

    sent: int = 0
    stored: int = 0
    stored_ids: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    hangs: int = 0
    mutated_sent: int = 0
    upload_seconds: list[float] = field(default_factory=list)
    spans: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, what
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def upload(client: httpx.Client, patient: Patient, sample: Sample, endpoint: str) -> httpx.Response:
    if endpoint == "raw":
        return client.put(
            f"/cases/{patient.case_id}/uploads/{sample.name}.bin",
            params={"kind": "record"},
            headers=patient.headers,
            content=sample.data,
        )
    return client.post(
        f"/cases/{patient.case_id}/documents",
        headers=patient.headers,
        data={"kind": "record"},
        files={"file": (f"{sample.name}.bin", sample.data, "application/octet-stream")},
    )


def send(
    client: httpx.Client, patient: Patient, sample: Sample, endpoint: str, tally: Tally
) -> None:
    """Upload one sample, judge the answer, and download and inspect what was stored."""
    where = f"{sample.name} via {endpoint}"
    started = time.monotonic()
    try:
        response = upload(client, patient, sample, endpoint)
    except httpx.TimeoutException:
        with tally.lock:
            tally.sent += 1
            tally.hangs += 1
            tally.violations.append(f"{where}: no answer in {UPLOAD_TIMEOUT_SECONDS:.0f}s")
        return
    elapsed = time.monotonic() - started
    problems: list[str] = []
    outcome = judge(response, sample, problems)
    if outcome == "stored":
        problems += inspect_stored(client, patient, sample, response.json())
    with tally.lock:
        tally.sent += 1
        tally.mutated_sent += not sample.planted
        tally.upload_seconds.append(elapsed)
        tally.spans.append((started, started + elapsed, where))
        if outcome == "stored":
            tally.stored += 1
            tally.stored_ids.append(response.json()["id"])
        elif outcome.startswith("refused:"):
            tally.refused[outcome.removeprefix("refused:")] += 1
            tally.reasons[str(response.json().get("detail"))] += 1
        elif response.status_code >= 500:
            tally.server_errors += 1
        tally.violations += [f"{where}: {problem}" for problem in problems]


def judge(response: httpx.Response, sample: Sample, problems: list[str]) -> str:
    """``stored``, ``refused:<slug>`` or ``wrong``; what is wrong goes into ``problems``."""
    status = response.status_code
    if status == 201:
        if sample.expect == "refused":
            problems.append("stored, but must be refused")
        return "stored"
    if 400 <= status < 500:
        content_type = response.headers.get("content-type", "")
        if content_type != "application/problem+json":
            problems.append(f"{status} answered as {content_type}")
            return "wrong"
        problem_type = response.json().get("type")
        if REFUSAL_TYPES.get(problem_type) != status:
            problems.append(f"{status} with problem type {problem_type}")
            return "wrong"
        if sample.expect == "stored":
            problems.append(f"refused ({response.json().get('detail')}), but must be stored")
        return "refused:" + str(problem_type).rsplit("/", 1)[1]
    problems.append(f"answered {status}")
    return "wrong"


def inspect_stored(
    client: httpx.Client, patient: Patient, sample: Sample, document: dict[str, object]
) -> list[str]:
    downloaded = client.get(f"/documents/{document['id']}/content", headers=patient.headers)
    if downloaded.status_code != 200:
        return [f"download answered {downloaded.status_code}"]
    body = downloaded.content
    problems = []
    if hashlib.sha256(body).hexdigest() != document["sha256"] or len(body) != document["size"]:
        problems.append("downloaded bytes differ from the stored hash or size")
    return problems + findings(body, str(document["media_type"]), planted=sample.planted)


def run_short(client: httpx.Client, patient: Patient, tally: Tally) -> None:
    corpus = base_corpus(max_document_mib=MAX_DOCUMENT_MIB)
    corpus += mutations(corpus, random.Random(SEED), SHORT_MUTATIONS)
    for index, sample in enumerate(corpus):
        for endpoint in ENDPOINTS if sample.planted else ENDPOINTS[index % 2 :][:1]:
            send(client, patient, sample, endpoint, tally)


def run_long(server: Server, patient: Patient, tally: Tally) -> None:
    corpus = base_corpus(big=True, max_document_mib=MAX_DOCUMENT_MIB)
    deadline = time.monotonic() + LONG_SECONDS

    def uploader(number: int) -> None:
        rng = random.Random(SEED * 1000 + number)
        with httpx.Client(base_url=server.base_url, timeout=UPLOAD_TIMEOUT_SECONDS) as client:
            while time.monotonic() < deadline:
                batch = corpus + mutations(corpus, rng, LONG_MUTATIONS_PER_ROUND)
                rng.shuffle(batch)
                for sample in batch:
                    if time.monotonic() >= deadline:
                        return
                    send(client, patient, sample, rng.choice(ENDPOINTS), tally)

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(LONG_UPLOADERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def leftovers(server: Server, client: httpx.Client, patient: Patient, tally: Tally) -> list[str]:
    """What a finished run must not leave: rows without objects or objects without rows,
    files in the spool or the store's temporary folder, open spool files, child processes."""
    problems = []
    listed = client.get(f"/cases/{patient.case_id}/documents", headers=patient.headers)
    assert listed.status_code == 200, listed.text
    rows = sorted(document["id"] for document in listed.json())
    objects = sorted(
        path.name for path in server.data_dir.glob(f"objects/**/cases/{patient.case_id}/*")
    )
    if rows != sorted(tally.stored_ids) or objects != rows:
        problems.append(f"{len(tally.stored_ids)} stored, {len(rows)} rows, {len(objects)} objects")
    for folder in (server.data_dir / "spool", server.data_dir / "objects" / "tmp"):
        if folder.exists() and (files := list(folder.iterdir())):
            problems.append(f"{len(files)} files left in {folder.name}/")
    if open_files := server.open_spool_files():
        problems.append(f"the server still has {len(open_files)} spool files open")
    if children := server.children():
        problems.append(f"the server has {len(children)} child processes left")
    return problems


def test_hostile_uploads_are_sanitised_or_refused_and_health_stays_fast(tmp_path: Path) -> None:
    tally = Tally()
    started = time.monotonic()
    with running_server(tmp_path, **SERVER_SETTINGS) as server:
        probe = HealthProbe(server.base_url, tmp_path / "health.log")
        with httpx.Client(base_url=server.base_url, timeout=UPLOAD_TIMEOUT_SECONDS) as client:
            patient = Patient(client, server.env)
            probe.start()
            try:
                if FORM == "short":
                    run_short(client, patient, tally)
                else:
                    run_long(server, patient, tally)
            finally:
                probe.stop()
            duration = time.monotonic() - started
            alive = server.alive()
            left = leftovers(server, client, patient, tally) if alive else []
        unhandled = server.log_lines("unhandled error")

    health = probe.all_latencies
    figures = {
        "form": FORM,
        "seed": SEED,
        "duration_s": round(duration, 1),
        "files_sent": tally.sent,
        "mutated_sent": tally.mutated_sent,
        "sanitised_stored": tally.stored,
        "refused": tally.refused.total(),
        "refused_by_type": dict(tally.refused),
        "refused_by_reason": dict(tally.reasons),
        "server_errors": tally.server_errors,
        "unhandled_errors_logged": len(unhandled),
        "hangs": tally.hangs,
        "server_crashes": 0 if alive else 1,
        "leftovers": left,
        "violations": len(tally.violations),
        "violations_first": tally.violations[:20],
        "slowest_health_checks": [
            {
                "path": path,
                "ms": round(seconds * 1000, 1),
                "at_s": round(start - started, 1),
                "during": [w for s, e, w in tally.spans if s < start + seconds and e > start],
            }
            for start, seconds, path in probe.slowest(3)
        ],
        "health_failures": len(probe.failures),
        **results.latency_figures(health, "health"),
        **{
            key.replace("health_", f"health{path.replace('/', '_')}_"): value
            for path, values in probe.latencies.items()
            for key, value in results.latency_figures(values, "health").items()
            if not key.endswith("_count")
        },
        **results.latency_figures(tally.upload_seconds, "upload"),
    }
    results.record(SUITE, figures)

    assert alive, "the server died during the run"
    assert tally.violations == [], "\n".join(tally.violations[:50])
    assert tally.server_errors == 0
    assert unhandled == []
    assert left == []
    assert probe.failures == []
    assert len(health) > 10
    slowest = max(health)
    assert slowest < MAX_HEALTH_SECONDS, f"a health check took {slowest * 1000:.0f} ms"
