"""A production-like run on one machine, without containers: what docker-compose.yml runs.

Two API processes (`medvault serve`, as on two hosts) and two worker processes (`medvault
worker`) on PostgreSQL, Redis and a moto server standing in for S3 and KMS, with the settings the
compose file uses (production mode, S3 store, KMS root keys, Redis broker). 200 uploads go in
at once, spread over both API processes, while an analyst's extracts are built and a retention
run shreds the cases that fell due. Afterwards every document reads back byte-identical, the
audit chain verifies with no fork, and nothing is lost or duplicated: one row per upload, one
object per row, no object without its row, the shredded cases' objects gone.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import httpx2 as httpx
import pytest
from sqlmodel import col, select

from infra.tasks import RETENTION_RUN
from infra.wiring import Runtime
from tests.conftest import free_port
from tests.e2e.service import PASSWORD, mailed_code, medvault, medvault_running, sign_in
from tests.factories import make_qa_patient, png_bytes
from tests.workers.conftest import (
    WorkerProcess,
    require_redis_url,
    runtime_for,
    wait_until,
)
from tests.workers.test_celery import client_for
from tests.workers.test_retention import completed_case
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseOutcome, CaseStatus
from vault.cases.service import complete_case, open_case, record_outcome
from vault.documents.models import Document

pytestmark = [pytest.mark.postgres, pytest.mark.moto, pytest.mark.slow]

PATIENTS = 20
UPLOADS_PER_PATIENT = 10  # 200 uploads in all
API_PROCESSES = 2
WORKER_PROCESSES = 2
QA_CASES = 12


@pytest.fixture
def env(tmp_path: Path, own_postgres_url: str, moto_url: str) -> dict[str, str]:
    """The compose file's settings, pointed at this machine's services."""
    redis_url = require_redis_url()
    bucket = f"medvault-prod-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="eu-central-1")
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return {
        "MEDVAULT_MODE": "production",
        "MEDVAULT_SECRET_KEY": secrets.token_hex(32),
        "MEDVAULT_DATA_DIR": str(tmp_path / "var"),
        "MEDVAULT_DATABASE_URL": own_postgres_url,
        "MEDVAULT_BLOB_STORE": "s3",
        "MEDVAULT_S3_BUCKET": bucket,
        "MEDVAULT_S3_ENDPOINT_URL": moto_url,
        "MEDVAULT_KEY_PROVIDER": "kms",
        "MEDVAULT_KMS_ENDPOINT_URL": moto_url,
        "MEDVAULT_BROKER_URL": redis_url,
        "MEDVAULT_RESULT_BACKEND": redis_url,
        "MEDVAULT_TASK_QUEUE": f"medvault-prod-{uuid.uuid4().hex}",
        "MEDVAULT_WORKER_CONCURRENCY": "2",
        "MEDVAULT_PUBLIC_BASE_URL": "https://medvault.example",
    }


def own_host(folder: Path, port: int) -> dict[str, str]:
    """What differs between two hosts running the same service: the port and the local folder
    of per-process metrics (everything else they share is in PostgreSQL, Redis and S3)."""
    return {"MEDVAULT_PORT": str(port), "MEDVAULT_METRICS_DIR": str(folder / "metrics")}


@pytest.fixture
def apis(env: dict[str, str], tmp_path: Path) -> Iterator[list[httpx.Client]]:
    """Two API processes on ports of their own, as on two hosts; a client for each."""
    medvault("db", "upgrade", env=env)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    with ExitStack() as stack:
        clients = []
        for index in range(API_PROCESSES):
            port = free_port()
            host_env = env | own_host(tmp_path / f"api-{index}", port)
            log_path = tmp_path / f"api-{index}.log"
            stack.enter_context(
                medvault_running("serve", env=host_env, log_path=log_path, port=port)
            )
            clients.append(
                stack.enter_context(
                    httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits)
                )
            )
        yield clients


@pytest.fixture
def workers(env: dict[str, str], apis: list[httpx.Client], tmp_path: Path) -> Iterator[None]:
    started = []
    try:
        for index in range(WORKER_PROCESSES):
            started.append(WorkerProcess(env, tmp_path / f"worker-{index}.log"))
        yield
    finally:
        for worker in started:
            worker.stop()


def patient_with_case(client: httpx.Client, env: dict[str, str]) -> tuple[dict[str, str], str]:
    login = f"patient-{uuid.uuid4().hex[:8]}@example.org"
    registered = client.post(
        "/auth/register",
        json={
            "email": login,
            "password": PASSWORD,
            "name": "Test Patient",
            "birth_date": "1970-01-01",
        },
    )
    assert registered.status_code == 202, registered.text
    confirmed = client.post("/auth/confirm", json={"token": mailed_code(env, login)})
    assert confirmed.status_code == 204, confirmed.text
    headers = sign_in(client, login)
    case = client.post("/cases", headers=headers)
    assert case.status_code == 201, case.text
    return headers, case.json()["id"]


def qa_cases(runtime: Runtime, count: int, completed_at: datetime) -> None:
    """Completed cases with an outcome, all with the same quasi-identifiers (k holds)."""
    outcome = CaseOutcome.model_validate({
        "diagnosis_codes": ["M17.1"], "result": "improved", "treatment_start": "2026-01-05",
        "treatment_end": "2026-02-01", "final_invoice_total": "9120.00", "currency": "EUR",
    })  # fmt: skip
    with runtime.sessions() as session:
        for _ in range(count):
            patient = make_qa_patient(session, runtime.key_store)
            case = open_case(
                session=session, keys=runtime.key_store, patient_id=patient.id,
                now=completed_at - timedelta(days=60), audit=AuditContext.SYSTEM,
            )  # fmt: skip
            record_outcome(
                session=session, keys=runtime.key_store, case_id=case.id, outcome=outcome,
                now=completed_at, audit=AuditContext.SYSTEM,
            )  # fmt: skip
            complete_case(
                session=session, keys=runtime.key_store, case_id=case.id,
                completed_at=completed_at, retention_years=runtime.settings.retention_years,
                now=completed_at, audit=AuditContext.SYSTEM,
            )  # fmt: skip


def test_two_apis_and_two_workers_keep_every_document_under_load(
    env: dict[str, str], apis: list[httpx.Client], workers: None
) -> None:
    runtime = runtime_for(env)
    try:
        now = datetime.now(UTC)
        five_years_ago = now.replace(year=now.year - runtime.settings.retention_years)
        due = [
            completed_case(runtime, completed_at=five_years_ago - timedelta(days=d))
            for d in (1, 2, 3)
        ]
        qa_cases(runtime, QA_CASES, completed_at=now - timedelta(days=3))
        with runtime.sessions() as session:
            due_objects = {
                document.object_key
                for document in session.exec(select(Document).where(col(Document.case_id).in_(due)))
            }
        assert len(due_objects) == len(due)

        medvault("user", "add", "analyst-prod", "--role", "analyst", env=env, stdin=PASSWORD)
        analyst = sign_in(apis[0], "analyst-prod")
        patients = [patient_with_case(apis[i % API_PROCESSES], env) for i in range(PATIENTS)]

        # -- at once: 200 uploads over both APIs, two extracts, a retention run ----------------
        originals = {
            (case_id, n): png_bytes(24, 16, seed=p * 100 + n)
            for p, (_, case_id) in enumerate(patients)
            for n in range(UPLOADS_PER_PATIENT)
        }
        headers_of = {case_id: headers for headers, case_id in patients}
        start = threading.Barrier(len(originals))

        def upload(job: tuple[int, tuple[str, int]]) -> tuple[str, int, httpx.Response]:
            index, (case_id, n) = job
            client = apis[index % API_PROCESSES]
            start.wait()
            response = client.put(
                f"/cases/{case_id}/uploads/scan-{n}.png",
                params={"kind": "record"},
                headers=headers_of[case_id],
                content=originals[(case_id, n)],
            )
            return case_id, n, response

        period = {
            "period_from": str(date.today() - timedelta(days=30)),
            "period_to": str(date.today()),
        }
        with ThreadPoolExecutor(max_workers=len(originals)) as pool:
            uploads = pool.map(upload, enumerate(originals))
            extracts = [
                apis[i].post(
                    "/extracts",
                    headers=analyst,
                    json=period | {"fields": ["age_band", "sex", "diagnoses"]},
                )
                for i in range(API_PROCESSES)
            ]
            with client_for(env) as celery:
                celery.send_task(RETENTION_RUN)
            results = list(uploads)

        # -- every upload stored once, and reads back byte-identical ---------------------------
        refused = [(r.status_code, r.text) for _, _, r in results if r.status_code != 201]
        assert refused == []
        stored = {response.json()["id"]: (case_id, n) for case_id, n, response in results}
        assert len(stored) == len(originals)  # no upload recorded twice, none lost
        for document_id, (case_id, n) in stored.items():
            client = apis[hash(document_id) % API_PROCESSES]
            content = client.get(f"/documents/{document_id}/content", headers=headers_of[case_id])
            assert content.status_code == 200, content.text
            assert (
                hashlib.sha256(content.content).digest()
                == hashlib.sha256(originals[(case_id, n)]).digest()
            )
        for headers, case_id in patients:
            listed = apis[0].get(f"/cases/{case_id}/documents", headers=headers)
            assert sorted(d["id"] for d in listed.json()) == sorted(
                document_id for document_id, (owner, _) in stored.items() if owner == case_id
            )

        # -- the extracts and the shred ran beside the uploads ---------------------------------
        for requested in extracts:
            assert requested.status_code == 202, requested.text
            extract_id = requested.json()["id"]

            def ready(extract_id: str = extract_id) -> bool:
                state = apis[1].get(f"/extracts/{extract_id}", headers=analyst).json()["status"]
                assert state != "failed"
                return state == "ready"

            wait_until(ready, timeout=120, what="the extract to be built")
            content = apis[0].get(
                f"/extracts/{extract_id}/content", params={"format": "csv"}, headers=analyst
            )
            assert content.status_code == 200, content.text
            assert len(content.text.splitlines()) == QA_CASES + 1  # header and one row a case

        def shredded() -> bool:
            with runtime.sessions() as session:
                statuses = session.exec(select(Case.status).where(col(Case.id).in_(due))).all()
            return set(statuses) == {CaseStatus.SHREDDED}

        wait_until(shredded, timeout=120, what="the due cases to be shredded")

        # -- nothing lost, nothing duplicated, nothing left behind -----------------------------
        objects = set(runtime.blob_store.keys("cases/"))
        with runtime.sessions() as session:
            rows = session.exec(
                select(Document.object_key).where(col(Document.shredded_at).is_(None))
            ).all()
        assert len(rows) == len(set(rows))
        assert set(rows) == objects  # one object per row, no object without its row
        assert not objects & due_objects

        verified = medvault("audit", "verify", env=env)
        assert "ok" in verified.stdout
        with runtime.sessions() as session:
            # No fork: each event follows exactly one other, in one unbroken sequence.
            seqs = session.exec(select(AuditEvent.seq).order_by(col(AuditEvent.seq))).all()
            prev_hashes = session.exec(select(AuditEvent.prev_hash)).all()
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert len(prev_hashes) == len(set(prev_hashes))
    finally:
        runtime.close()
