"""Faults: `medvault serve` and `medvault worker` whose PostgreSQL, Redis, S3 and KMS connections
each run through a FaultProxy, while a seeded chaos thread takes a dependency (or two) down,
slows it, or cuts a connection mid-message (chaos.py), and client threads run operations through
the API (uploads of small and multipart-sized PNGs and of PDFs, lists, reads, forwarding to a
partner who downloads through the link, exports, sign-ins).

During the faults every answer is the success, a documented refusal or a problem+json 503
naming the dependency; never a 500, never a reset or timeout of the API connection. After them
(all proxies up), the same processes must serve again within RECOVERY_LIMIT_SECONDS and the
worker must build the exports left pending; then the storage sweep runs (`medvault storage
sweep --grace-hours 0`), and: every document row has its object and every acknowledged upload
reads back byte-identical; no object or version without a row; no open multipart upload; the
audit chain verifies with no gap, and every acknowledged upload, read, transfer and partner
download has its event (invariants.py).

Short form (`make test`): SHORT_OPERATIONS operations from CLIENTS threads. Long form
(``MEDVAULT_SOAK=long``, `make soak`): LONG_OPERATIONS, continuing until
``MEDVAULT_SOAK_SECONDS`` have passed if that is longer. ``MEDVAULT_SOAK_SEED`` (default 1)
fixes the faults and the operations. Figures go to ``soak-results.json`` under
``faults_short`` / ``faults_long``.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx2 as httpx
import pytest
from sqlmodel import col, select

from infra.tasks import EXPORTS_BUILD
from tests.conftest import moto_server
from tests.e2e.service import medvault
from tests.faults import invariants
from tests.faults.chaos import Chaos
from tests.faults.installation import REGION, Installation, running_installation
from tests.faults.operations import Clients, Ledger, World, make_world
from tests.soak import results
from tests.workers.conftest import require_redis_url, runtime_for
from tests.workers.test_celery import client_for
from vault.documents.models import Document
from vault.subject_rights.models import ExportStatus, SubjectExport
from vault.transfers.models import Transfer

FORM = results.soak_form()
SUITE = f"faults_{FORM}"
SEED = int(os.environ.get("MEDVAULT_SOAK_SEED", "1"))
SHORT_OPERATIONS = 200
LONG_OPERATIONS = 500
LONG_SECONDS = float(os.environ.get("MEDVAULT_SOAK_SECONDS", "0"))
CLIENTS = 4
PATIENTS = 4
RECOVERY_LIMIT_SECONDS = 60.0
EXPORTS_LIMIT_SECONDS = 180.0
RECOVERY_ROUND = ("sign_in", "upload_png", "upload_big_png", "list_documents", "read_document")
SWEEP_FIELDS = ("objects_checked", "orphans_found", "orphans_deleted", "uploads_aborted")

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.moto,
    pytest.mark.slow,
    pytest.mark.timeout(600 if FORM == "short" else LONG_SECONDS + 1800),
]


def run_mix(clients: Clients, ledger: Ledger) -> int:
    """The operations, from CLIENTS threads; returns how many ran."""
    wanted = SHORT_OPERATIONS if FORM == "short" else LONG_OPERATIONS
    deadline = time.monotonic() + (LONG_SECONDS if FORM == "long" else 0.0)
    counter = iter(range(1 << 30))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                number = next(counter)
            if number >= wanted and time.monotonic() >= deadline:
                return
            clients.run(number, ledger)

    threads = [threading.Thread(target=client, name=f"client-{n}") for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(ledger.outcomes.values())


def recover(clients: Clients, ledger: Ledger, since: float) -> float | None:
    """Seconds from ``since`` until a whole round of operations succeeded (None: never, within
    RECOVERY_LIMIT_SECONDS). The answers of the rounds are judged like all others."""
    for attempt in range(1_000):
        if time.monotonic() - since > RECOVERY_LIMIT_SECONDS:
            return None
        ready = clients.http.get("/readyz").status_code == 200
        outcomes = [
            clients.run(10_000_000 + attempt * 10 + n, ledger, operation)
            for n, operation in enumerate(RECOVERY_ROUND)
        ]
        if ready and set(outcomes) == {"ok"}:
            return time.monotonic() - since
        time.sleep(0.5)
    return None


def finish_exports(installation: Installation, ledger: Ledger) -> dict[str, Any]:
    """Send again the builds of exports still pending (what the exports sweep does after 30
    minutes), then wait until the worker has built every export."""
    runtime = runtime_for(installation.direct_env)
    try:

        def states() -> Counter[str]:
            with runtime.sessions() as session:
                rows = session.exec(select(SubjectExport.status)).all()
            return Counter(str(status) for status in rows)

        with runtime.sessions() as session:
            pending = session.exec(
                select(col(SubjectExport.id)).where(SubjectExport.status == ExportStatus.PENDING)
            ).all()
        with client_for(installation.direct_env) as celery:
            for export_id in pending:
                celery.send_task(EXPORTS_BUILD, args=[str(export_id)])
        started = time.monotonic()
        while states()[ExportStatus.PENDING] and time.monotonic() - started < EXPORTS_LIMIT_SECONDS:
            time.sleep(0.5)
        final = states()
    finally:
        runtime.close()
    return {
        "exports_requested": len(ledger.exports),
        "exports_resent_after_faults": len(pending),
        "exports_by_status": dict(final),
        "exports_built_s": round(time.monotonic() - started, 1),
    }


def read_back(clients: Clients, world: World, ledger: Ledger) -> list[str]:
    """Every acknowledged upload, downloaded once more now that nothing is broken."""
    owners = {patient.case_id: patient for patient in world.patients}
    problems = []
    for upload in list(ledger.uploads.values()):
        patient = owners[upload.case_id]
        response = clients.http.get(
            f"/documents/{upload.document_id}/content", headers=clients.headers_of(patient.person)
        )
        if response.status_code != 200:
            problems.append(f"an acknowledged upload answered {response.status_code}")
        elif hashlib.sha256(response.content).hexdigest() != upload.sha256:
            problems.append("an acknowledged upload read back with other bytes")
    return problems


def sweep(installation: Installation) -> dict[str, int]:
    """`medvault storage sweep --grace-hours 0`: nothing is in flight any more."""
    output = medvault("storage", "sweep", "--grace-hours", "0", env=installation.direct_env)
    counts = {}
    for name in SWEEP_FIELDS:
        found = re.search(rf"{name}\W+(\d+)", output.stdout)
        assert found, output.stdout
        counts[name] = int(found.group(1))
    return counts


@pytest.fixture
def moto_url() -> Iterator[str]:
    """The suite's own moto server (or CI's), not the session's: a long run leaves moto holding
    gigabytes, thrown away with this one when the test ends."""
    with moto_server() as url:
        yield url


def test_faults_in_every_dependency_lose_nothing_and_the_service_recovers(
    tmp_path: Path, own_postgres_url: str, moto_url: str
) -> None:
    redis_url = require_redis_url()
    problems: list[str] = []
    figures: dict[str, Any] = {"form": FORM, "seed": SEED, "clients": CLIENTS}
    started = time.monotonic()
    with running_installation(
        tmp_path, postgres_url=own_postgres_url, redis_url=redis_url, moto_url=moto_url
    ) as installation:
        with httpx.Client(base_url=installation.base_url, timeout=60) as setup:
            world = make_world(
                setup, installation.direct_env, patients=PATIENTS, coordinator="coordinator-faults",
                admin="admin-faults",
            )  # fmt: skip
        figures["setup_s"] = round(time.monotonic() - started, 1)
        clients = Clients(installation.base_url, installation.direct_env, world, seed=SEED)
        process_ids = installation.process_ids()
        chaos = Chaos(installation.proxies, seed=SEED)
        ledger = Ledger()
        chaos_started = time.monotonic()
        chaos.start()
        try:
            operations = run_mix(clients, ledger)
        finally:
            chaos.stop()
        # What the operations met during the faults (the recovery rounds add to the ledger).
        outcomes = Counter(ledger.outcomes)
        by_operation = {name: dict(counted) for name, counted in ledger.by_operation.items()}
        seconds = list(ledger.seconds)
        figures["chaos_s"] = round(chaos.last_fault_ended - chaos_started, 1)
        recovered = recover(clients, ledger, since=chaos.last_fault_ended)
        checks_started = time.monotonic()
        if recovered is None:
            problems.append(f"no recovery within {RECOVERY_LIMIT_SECONDS:.0f} s")
        figures |= finish_exports(installation, ledger)
        if set(figures["exports_by_status"]) - {ExportStatus.READY}:
            problems.append(f"exports not built after the faults: {figures['exports_by_status']}")
        problems += read_back(clients, world, ledger)
        clients.close()

        s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
        runtime = runtime_for(installation.direct_env)
        try:
            before = invariants.read_bucket(s3, installation.bucket)
            problems += invariants.documents_and_objects(runtime, before, ledger)
            orphaned = invariants.orphans(runtime, before)
            swept = sweep(installation)
            after = invariants.read_bucket(s3, installation.bucket)
            problems += invariants.after_the_sweep(runtime, after)
            verified = medvault("audit", "verify", env=installation.direct_env)
            problems += invariants.audit_trail(runtime, ledger)
            with runtime.sessions() as session:
                rows = session.exec(select(col(Document.id))).all()
                transfers = session.exec(select(col(Transfer.id))).all()
        finally:
            runtime.close()
        figures["checks_s"] = round(time.monotonic() - checks_started, 1)
        unhandled = installation.api_log_lines("unhandled error")
        alive = installation.processes_alive()
        same_processes = installation.process_ids() == process_ids
        connections = {name: proxy.connections for name, proxy in installation.proxies.items()}

    figures |= {
        "duration_s": round(time.monotonic() - started, 1),
        "operations": operations,
        "operations_ok": outcomes["ok"],
        "operations_503_by_dependency": {
            key.removeprefix("unavailable:"): n
            for key, n in sorted(outcomes.items())
            if key.startswith("unavailable:")
        },
        "operations_refused": {
            key.removeprefix("refused:"): n
            for key, n in outcomes.items()
            if key.startswith("refused:")
        },
        "operations_other": outcomes["other"],
        "outcomes_by_operation": by_operation,
        "violations": len(ledger.violations),
        "violations_first": ledger.violations[:20],
        "faults_injected": sum(1 for fault in chaos.faults if fault.fired),
        "faults_by_kind_and_target": chaos.by_kind_and_target(),
        "cuts_armed_not_fired": sum(1 for f in chaos.faults if f.kind == "cut" and not f.fired),
        "proxy_connections": connections,
        "recovery_s": None if recovered is None else round(recovered, 1),
        "acknowledged_uploads": len(ledger.uploads),
        "document_rows": len(rows),
        "rows_not_acknowledged": len({str(i) for i in rows} - set(ledger.uploads)),
        # Stored although the answer was a 503 (the commit's answer lost): the client may
        # send them again, as it would after any 503.
        "transfers_not_acknowledged": len({str(i) for i in transfers} - set(ledger.transfers)),
        "orphans_before_sweep": len(orphaned),
        "orphans_before_sweep_by_prefix": dict(Counter(key.split("/")[0] for key in orphaned)),
        "open_multipart_uploads_before_sweep": before.open_uploads,
        "sweep": swept,
        "open_multipart_uploads_after_sweep": after.open_uploads,
        "audit_verify": verified.stdout.strip(),
        "unhandled_errors_logged": len(unhandled),
        "processes_alive_and_unchanged": alive and same_processes,
        "problems": problems,
        **results.latency_figures(seconds, "operation"),
    }
    results.record(SUITE, figures)

    assert ledger.violations == [], "\n".join(ledger.violations[:50])
    assert problems == []
    assert unhandled == []
    assert alive, "a process died during the run"
    assert same_processes, "a process was restarted"
    assert figures["faults_injected"] > 0
    assert outcomes["ok"] > 0
    assert swept["orphans_found"] == len(orphaned)
    assert swept["uploads_aborted"] >= before.open_uploads
