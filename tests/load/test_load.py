"""Load: concurrent clients of mixed upload, list, forward and link download against a real
`medvault up` (API, worker and beat on the embedded installation), driven by locust headless in
a process of its own (tests/load/locustfile.py says what the clients do), while this process
samples the resident memory of the API and the worker every 2 s from /proc.

Short form (`make test`): 20 clients (spawned 4 a second) for 45 s on 6 seeded patients.
Long form (`make soak`, ``MEDVAULT_SOAK=long``): 50 clients (5 a second) for
``MEDVAULT_SOAK_SECONDS`` (default 300) on 10 seeded patients.

Both assert: no server error (5xx), no unexpected 4xx, no request left unanswered, no exception
in the clients, no unhandled error in the server log, every process of the service alive at
the end, every upload stored exactly once (document rows = objects = seeded + uploads counted),
nothing left in the spool, and the audit chain verifies. The long form also asserts that the
memory of the API and of the worker is flat after the first minute (see tests/load/report.py
for the windows and the tolerance). Figures go to ``soak-results.json`` under ``load_short`` or
``load_long``: requests, failures by kind, p50/p95/p99/max latency per request type and
overall, requests/s, uploaded MB/s, and the memory samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.service import medvault, sign_in
from tests.load.payloads import write_payloads
from tests.load.report import MIB, memory_figures, memory_is_flat, read_locust_results
from tests.load.stack import MemorySampler, Stack, running_stack
from tests.load.world import COORDINATOR, seed_world
from tests.load.world_format import WORLD_ENV, World
from tests.soak import results


@dataclass(frozen=True)
class LoadShape:
    users: int
    spawn_rate: float  # clients started per second
    seconds: int
    patients: int


FORM = results.soak_form()
SUITE = f"load_{FORM}"
SHAPE = (
    LoadShape(users=20, spawn_rate=4, seconds=45, patients=6)
    if FORM == "short"
    else LoadShape(
        users=50,
        spawn_rate=5,
        seconds=int(float(os.environ.get("MEDVAULT_SOAK_SECONDS", "300"))),
        patients=10,
    )
)
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STOP_TIMEOUT_SECONDS = 60  # clients finish the request they are in when the time is up
SAMPLE_EVERY_SECONDS = 2.0
SAMPLES_KEPT_EVERY = 5  # the results keep one sample in five (every 10 s)
# Every kind of request the clients make must have been made: the workload really ran.
REQUEST_KINDS = (
    "POST /auth/token",
    "PUT /cases/{case_id}/uploads/{filename} (small)",
    "PUT /cases/{case_id}/uploads/{filename} (large)",
    "POST /cases/{case_id}/documents (small)",
    "GET /cases/{case_id}/documents",
    "GET /cases",
    "GET /cases/{case_id}/documents (coordinator)",
    "POST /cases/{case_id}/transfers",
    "GET /l/{token}",
    "POST /l/{token}/documents/{document_id}",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300 if FORM == "short" else SHAPE.seconds + 600),
]


def run_locust(base_url: str, world_path: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    """locust headless in its own process (it must never be imported into pytest's)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
    env |= {WORLD_ENV: str(world_path), "PYTHONPATH": str(REPO_ROOT)}
    command = [
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"),
        *("--host", base_url, "--users", str(SHAPE.users), "--spawn-rate", str(SHAPE.spawn_rate)),
        *("--run-time", f"{SHAPE.seconds}s", "--stop-timeout", str(STOP_TIMEOUT_SECONDS)),
        *("--csv", str(folder / "locust"), "--only-summary", "--loglevel", "WARNING"),
        # Failures are judged here from the CSV files; a non-zero exit is locust's own trouble.
        *("--exit-code-on-error", "0"),
    ]
    with (folder / "locust.log").open("w") as log:
        return subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=SHAPE.seconds + STOP_TIMEOUT_SECONDS + 120,
            check=False,
        )


def stored_documents(stack: Stack, world: World) -> tuple[int, int]:
    """Document rows of the seeded cases (as the coordinator lists them) and their objects."""
    rows = objects = 0
    with httpx.Client(base_url=stack.base_url, timeout=120) as client:
        coordinator = sign_in(client, COORDINATOR)
        for patient in world.patients:
            listed = client.get(f"/cases/{patient.case_id}/documents", headers=coordinator)
            assert listed.status_code == 200, listed.text
            rows += len(listed.json())
            objects += len(list(stack.data_dir.glob(f"objects/**/cases/{patient.case_id}/*")))
    return rows, objects


def kept_samples(sampler: MemorySampler) -> list[list[float]]:
    return [
        [at, round(api / MIB, 1), round(worker / MIB, 1)]
        for at, api, worker in sampler.samples[::SAMPLES_KEPT_EVERY]
    ]


def test_mixed_load_gets_no_server_error_and_memory_stays_flat(tmp_path: Path) -> None:
    payloads = write_payloads(tmp_path / "payloads")
    with running_stack(tmp_path) as stack:
        world = seed_world(
            base_url=stack.base_url,
            env=stack.env,
            patients=SHAPE.patients,
            payloads=payloads,
            folder=tmp_path,
        )
        sampler = MemorySampler(stack, interval=SAMPLE_EVERY_SECONDS)
        sampler.start()
        try:
            locust = run_locust(stack.base_url, tmp_path / "world.json", tmp_path)
        finally:
            sampler.stop()
        alive = stack.alive()
        rows, objects = stored_documents(stack, world) if all(alive.values()) else (-1, -1)
        spool = stack.data_dir / "spool"
        spool_left = len(list(spool.iterdir())) if spool.exists() else 0
        verified = medvault("audit", "verify", env=stack.env).stdout if alive["api"] else ""
        unhandled = stack.log_lines("unhandled error")

    assert locust.returncode == 0, (tmp_path / "locust.log").read_text()[-3000:]
    run = read_locust_results(tmp_path / "locust")
    counts = json.loads(Path(world.counts_path).read_text())
    duration = counts["stopped"] - counts["started"]
    api_memory = memory_figures(
        [(at, api) for at, api, _ in sampler.samples], load_seconds=SHAPE.seconds, prefix="api"
    )
    worker_memory = memory_figures(
        [(at, worker) for at, _, worker in sampler.samples],
        load_seconds=SHAPE.seconds,
        prefix="worker",
    )
    figures: dict[str, Any] = {
        "form": FORM,
        "clients": SHAPE.users,
        "spawn_rate_per_s": SHAPE.spawn_rate,
        "load_seconds": SHAPE.seconds,
        "duration_s": round(duration, 1),
        "patients_seeded": SHAPE.patients,
        "requests": run.total.count,
        "failures": run.total.failures,
        "failures_by_kind": dict(run.failures),
        "server_errors": run.server_errors,
        "unexpected_4xx": run.unexpected_4xx,
        "no_answers": run.no_answers,
        "client_exceptions": len(run.exceptions),
        "unhandled_errors_logged": len(unhandled),
        "requests_per_s": round(run.total.requests_per_s, 2),
        "p50_ms": run.total.p50_ms,
        "p95_ms": run.total.p95_ms,
        "p99_ms": run.total.p99_ms,
        "max_ms": run.total.max_ms,
        "uploads": int(counts["uploads"]),
        "uploaded_mb": round(counts["uploaded_bytes"] / 1e6, 1),
        "uploaded_mb_per_s": round(counts["uploaded_bytes"] / 1e6 / duration, 2),
        "downloaded_mb": round(counts["downloaded_bytes"] / 1e6, 1),
        "links_issued": int(counts["links_issued"]),
        "links_used_up": int(counts["links_used_up"]),
        "partner_waits": int(counts["partner_waits"]),
        "by_request": {name: figures.as_dict() for name, figures in run.by_request.items()},
        "documents_stored": rows,
        "objects_stored": objects,
        "spool_files_left": spool_left,
        "audit_verified": "ok" in verified,
        "alive_at_end": alive,
        **api_memory,
        **worker_memory,
        "rss_samples_s_api_worker_mib": kept_samples(sampler),
    }
    results.record(SUITE, figures)

    assert all(alive.values()), f"a process of the service died: {alive}"
    assert run.server_errors == 0, dict(run.failures)
    assert run.unexpected_4xx == 0, dict(run.failures)
    assert run.no_answers == 0, dict(run.failures)
    assert run.failures.total() == 0, dict(run.failures)
    assert run.exceptions == [], run.exceptions[:5]
    assert unhandled == []
    missing = [kind for kind in REQUEST_KINDS if kind not in run.by_request]
    assert missing == [], f"the workload never made: {missing}"
    assert rows == objects == SHAPE.patients + counts["uploads"], (rows, objects, counts)
    assert spool_left == 0
    assert "ok" in verified, verified
    if FORM == "long":
        assert memory_is_flat(api_memory, "api"), api_memory
        assert memory_is_flat(worker_memory, "worker"), worker_memory
