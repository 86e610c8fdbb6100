"""Benchmark: ``shred_cases_per_s`` for 10,000 and 100,000 due cases (``make bench``).

Each size runs in a fresh process on a fresh installation (SQLite, local folder store and local
keyring under the work folder, on disk). Every case has its own patient, a sealed outcome and
one small encrypted document, its key under the retention epoch of its expiry month, as
completion leaves it. Setup writes rows in bulk (no audit events, no sanitiser: those are not
what is measured); the timed part is one ``run_retention`` the day after the cases fell due:
mark, delete every object, destroy every case and patient key, empty the fields, append a
case.shred and a patient.erase event per case. Linear means the rate at 100k is within 20% of
the rate at 10k.

Run alone: ``python -m tests.perf.retention [N ...]``; prints one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel

from infra.settings import Settings
from infra.wiring import build_runtime
from tests.factories import NOW, identity
from tests.perf.measure import peak_rss_mib
from vault.cases.models import Case, CaseOutcome, CaseStatus
from vault.cases.service import retention_epoch
from vault.crypto.envelope import EnvelopeEncryptor
from vault.crypto.fields import seal_field
from vault.documents.models import Document, DocumentKind
from vault.documents.service import object_key_for
from vault.patients.service import register_patient
from vault.retention.service import run_retention

SIZES = (10_000, 100_000)
YEARS = 5
DAY_AFTER_DUE = datetime(2031, 11, 25, 9, 0, tzinfo=UTC)
PAYLOAD = os.urandom(4096)  # one small scan's worth of bytes per document
COMMIT_EVERY = 1000
ROOT = Path(__file__).resolve().parents[2]


def _outcome_json() -> bytes:
    return (
        CaseOutcome.model_validate(
            {
                "diagnosis_codes": ["M17.1"],
                "result": "improved",
                "treatment_start": "2026-09-01",
                "treatment_end": "2026-10-15",
                "final_invoice_total": "12480.50",
                "currency": "EUR",
            }
        )
        .model_dump_json()
        .encode()
    )


def shred_benchmark(work: Path, cases: int) -> dict[str, Any]:
    """Set up ``cases`` due cases under ``work``, then time one retention run over them."""
    shutil.rmtree(work, ignore_errors=True)
    runtime = build_runtime(Settings(data_dir=work))
    import infra.models  # noqa: F401 - registers every table on SQLModel.metadata

    SQLModel.metadata.create_all(runtime.engine)
    keys, store, outcome = runtime.key_store, runtime.blob_store, _outcome_json()
    started = time.perf_counter()
    with runtime.sessions() as session:
        epoch = keys.epoch_root_key(session, epoch=retention_epoch(NOW, years=YEARS), now=NOW)
        for index in range(cases):
            patient = register_patient(session=session, keys=keys, identity=identity(), now=NOW)
            case_id, document_id = uuid.uuid4(), uuid.uuid4()
            key_id = keys.create_key(session, kind="case", now=NOW, root_key_id=epoch)
            case_key = keys.unsafe_key_material(session, key_id)
            encryptor = EnvelopeEncryptor(
                case_key=case_key, key_id=key_id, object_id=document_id, frame_size=64 * 1024
            )
            object_key = object_key_for(case_id=case_id, document_id=document_id)
            store.put(object_key, encryptor.encrypt([PAYLOAD]))
            session.add(
                Case(
                    id=case_id,
                    patient_id=patient.id,
                    key_id=key_id,
                    status=CaseStatus.COMPLETED,
                    created_at=NOW,
                    treatment_completed_at=NOW,
                    outcome_sealed=seal_field(
                        case_key, outcome, context=f"case:{case_id}:outcome".encode()
                    ),
                    outcome_recorded_at=NOW,
                )
            )
            session.add(
                Document(
                    id=document_id,
                    case_id=case_id,
                    kind=DocumentKind.RECORD,
                    media_type="image/png",
                    filename_sealed=seal_field(
                        case_key, b"scan.png", context=f"document:{document_id}:filename".encode()
                    ),
                    size=len(PAYLOAD),
                    sha256="0" * 64,
                    object_key=object_key,
                    key_id=key_id,
                    wrapped_dek=encryptor.wrapped_dek,
                    frame_size=64 * 1024,
                    created_at=NOW,
                )
            )
            if index % COMMIT_EVERY == COMMIT_EVERY - 1:
                session.commit()
        session.commit()
    setup_seconds = time.perf_counter() - started

    os.sync()
    with runtime.sessions() as session:
        started = time.perf_counter()
        report = run_retention(
            session=session, store=store, keys=keys, retention_years=YEARS, now=DAY_AFTER_DUE
        )
        seconds = time.perf_counter() - started
    runtime.close()
    if len(report.shredded) != cases or report.patients_erased != cases:
        raise RuntimeError("the run did not shred every case it was given")
    shutil.rmtree(work, ignore_errors=True)
    return {
        "cases": cases,
        "seconds": round(seconds, 2),
        "shred_cases_per_s": round(cases / seconds, 1),
        "setup_seconds": round(setup_seconds, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def retention_benchmarks(work: Path, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    """Each size in its own process; the rates and whether they scale linearly (within 20%)."""
    runs = {}
    for cases in sizes:
        print(f"  retention shred {cases} cases", flush=True)
        out = subprocess.run(
            [sys.executable, "-m", "tests.perf.retention", str(work), str(cases)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if out.returncode != 0:
            sys.exit(f"bench: retention {cases} failed:\n{out.stderr.strip()}")
        runs[str(cases)] = json.loads(out.stdout.strip().splitlines()[-1])
    rates = [runs[str(cases)]["shred_cases_per_s"] for cases in sizes]
    ratio = round(rates[-1] / rates[0], 2)
    return {
        "runs": runs,
        "shred_cases_per_s": rates[-1],
        "largest_over_smallest_rate": ratio,
        "linear_within_20_percent": 0.8 <= ratio <= 1.2,
    }


if __name__ == "__main__":
    target, *counts = sys.argv[1:]
    print(json.dumps(shred_benchmark(Path(target), int(counts[0]))))
