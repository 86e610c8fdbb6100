"""Benchmark: ``extract_rows_per_s`` and ``extract_peak_rss_mib`` of one QA extract build.

Setup (not timed) makes a fresh installation (SQLite, local folder store, local keyring, on
disk) with ``MEDVAULT_BENCH_EXTRACT_CASES`` completed cases (default 1,000,000), one patient
each, written with bulk core inserts: real patient and case keys wrapped by the keyring, and
every identity field and outcome really sealed under them; a third of the cases have a survey
with QA consent, a fifth were forwarded to a partner. Then a separate process (so its peak RSS
is the build's own, imports included) requests and builds one extract of every field, k = 5,
with ``build_extract`` as the worker runs it: both passes (the first spooling what it decoded,
encrypted, to the runtime's spool folder), Parquet and CSV, encrypted into the store.
Targets: 1,000,000 rows in under 2 minutes of wall time, peak RSS below 500 MiB.

Run alone: ``python -m tests.perf.extracts [work folder] [cases]``; prints one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from infra.settings import Settings
from infra.wiring import Runtime, build_runtime
from keys.models import KeyKind, KeyRecord
from keys.store import KEY_SIZE
from tests.factories import NOW
from tests.perf.measure import peak_rss_mib
from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseOutcome, CaseStatus
from vault.crypto.fields import seal_field
from vault.extracts.models import ExtractField
from vault.extracts.service import build_extract, request_extract
from vault.partners.models import Partner, PartnerKind
from vault.patients.models import Patient
from vault.surveys.models import Survey
from vault.surveys.questions import CURRENT
from vault.transfers.models import LegalBasis, Purpose, Transfer

DEFAULT_CASES = 1_000_000
CHUNK = 10_000
ROOT = Path(__file__).resolve().parents[2]
CODES = ("M17.1", "I10", "E11.9", "C50.9", "J45.0", "K80.2", "F32.1", "S72.0", "N18.3", "Z96.6")
COUNTRIES = ("DE", "AT", "CH", "NL", "PL", "FR", "IT", "DK", "LU", "CZ")
SEXES = ("female", "male", "diverse", "unknown")
SEX_WEIGHTS = (48, 48, 1, 3)
PERIOD = (date(2026, 11, 1), date(2026, 11, 30))


def _settings(work: Path) -> Settings:
    return Settings(data_dir=work)


def _new_keys(
    runtime: Runtime, root_key_id: str, kind: KeyKind, count: int
) -> list[tuple[uuid.UUID, bytes]]:
    """``count`` real keys: random, wrapped by the keyring, inserted as key records in bulk."""
    made = [(uuid.uuid4(), os.urandom(KEY_SIZE)) for _ in range(count)]
    rows = [
        {
            "id": key_id,
            "kind": kind,
            "root_key_id": root_key_id,
            "wrapped": runtime.root_keys.wrap(
                root_key_id=root_key_id, key=material, owner=f"{kind.value}:{key_id}"
            ),
            "created_at": NOW,
        }
        for key_id, material in made
    ]
    with runtime.engine.begin() as connection:
        connection.execute(sa.insert(KeyRecord), rows)
    return made


def setup(work: Path, cases: int) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    runtime = build_runtime(_settings(work))
    import infra.models  # noqa: F401 - registers every table on SQLModel.metadata

    SQLModel.metadata.create_all(runtime.engine)
    rng = random.Random(7)
    started = time.perf_counter()
    with runtime.sessions() as session:
        root_key_id = runtime.key_store.ensure_active_root_key(session, now=NOW)
        partners = [
            Partner(
                kind=kind, name=f"bench {kind.value}", contact_email="p@example.org", created_at=NOW
            )
            for kind in PartnerKind
        ]
        session.add_all(partners)
        session.commit()
        partner_ids = [partner.id for partner in partners]
    for offset in range(0, cases, CHUNK):
        count = min(CHUNK, cases - offset)
        patient_keys = _new_keys(runtime, root_key_id, KeyKind.PATIENT, count)
        case_keys = _new_keys(runtime, root_key_id, KeyKind.CASE, count)
        patients, case_rows, surveys, transfers = [], [], [], []
        for (patient_key_id, patient_key), (case_key_id, case_key) in zip(
            patient_keys, case_keys, strict=True
        ):
            patient_id, case_id = uuid.uuid4(), uuid.uuid4()

            def seal(
                field: str, value: str, key: bytes = patient_key, pid: uuid.UUID = patient_id
            ) -> bytes:
                return seal_field(key, value.encode(), context=f"patient:{pid}:{field}".encode())

            birth = date(1940, 1, 1) + timedelta(days=rng.randrange(65 * 365))
            patients.append({
                "id": patient_id, "key_id": patient_key_id, "created_at": NOW,
                "name_sealed": seal("name", f"Bench Patient {offset}"),
                "birth_date_sealed": seal("birth_date", birth.isoformat()),
                "email_sealed": seal("email", "bench@example.org"),
                "phone_sealed": seal("phone", "+49 30 1234567"),
                "sex_sealed": seal("sex", rng.choices(SEXES, SEX_WEIGHTS)[0]),
                "country_sealed": seal("country", rng.choice(COUNTRIES)),
            })  # fmt: skip
            start = date(2026, 1, 1) + timedelta(days=rng.randrange(300))
            outcome = CaseOutcome.model_validate({
                "diagnosis_codes": rng.sample(CODES, rng.randint(1, 3)),
                "result": rng.choice(("cured", "improved", "unchanged")),
                "treatment_start": start.isoformat(),
                "treatment_end": (start + timedelta(days=rng.randrange(1, 60))).isoformat(),
                "final_invoice_total": f"{rng.randrange(500, 50_000)}.{rng.randrange(100):02d}",
                "currency": "EUR",
            })  # fmt: skip
            completed = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(
                minutes=rng.randrange(29 * 1440)
            )
            case_rows.append({
                "id": case_id, "patient_id": patient_id, "key_id": case_key_id,
                "status": CaseStatus.COMPLETED, "created_at": NOW - timedelta(days=400),
                "treatment_completed_at": completed, "outcome_recorded_at": completed,
                "outcome_sealed": seal_field(
                    case_key, outcome.model_dump_json().encode(),
                    context=f"case:{case_id}:outcome".encode(),
                ),
            })  # fmt: skip
            if rng.random() < 1 / 3:
                surveys.append({
                    "id": uuid.uuid4(), "case_id": case_id, "patient_id": patient_id,
                    "version": CURRENT.version, "answered_at": completed, "qa_consent": True,
                    "scores": {qid: rng.randint(1, 5) for qid in CURRENT.ids},
                })  # fmt: skip
            if rng.random() < 1 / 5:
                transfers.append({
                    "id": uuid.uuid4(), "case_id": case_id, "partner_id": rng.choice(partner_ids),
                    "purpose": Purpose.TREATMENT_CHECK, "legal_basis": LegalBasis.ART9_2_H,
                    "created_at": completed,
                })  # fmt: skip
        with runtime.engine.begin() as connection:
            connection.execute(sa.insert(Patient), patients)
            connection.execute(sa.insert(Case), case_rows)
            if surveys:
                connection.execute(sa.insert(Survey), surveys)
            if transfers:
                connection.execute(sa.insert(Transfer), transfers)
    runtime.close()
    return {"cases": cases, "setup_seconds": round(time.perf_counter() - started, 1)}


def build(work: Path) -> dict[str, Any]:
    """Request and build one extract of every field; the figures of this process alone."""
    runtime = build_runtime(_settings(work))
    with runtime.sessions() as session:
        extract = request_extract(
            session=session, keys=runtime.key_store, analyst_id=uuid.uuid4(),
            period_from=PERIOD[0], period_to=PERIOD[1], fields=list(ExtractField),
            icd_chapter_only=False, scope_id=None, k=5, now=NOW, audit=AuditContext.SYSTEM,
        )  # fmt: skip
        extract_id = extract.id
    os.sync()
    started = time.perf_counter()
    status = build_extract(
        sessions=runtime.sessions, store=runtime.blob_store, keys=runtime.key_store,
        extract_id=extract_id, retention=timedelta(days=90), frame_size=runtime.frame_size,
        now=NOW, spool_dir=runtime.spool_dir,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    with runtime.sessions() as session:
        from vault.extracts.models import Extract

        found = session.get(Extract, extract_id)
        assert found is not None
        assert found.report is not None
        report = found.report
    runtime.close()
    rows = report["rows"] + report["suppressed"] + report["unreadable"]
    return {
        "status": status.value,
        "cases": rows,
        "seconds": round(seconds, 1),
        "extract_rows_per_s": round(rows / seconds, 1),
        "extract_peak_rss_mib": round(peak_rss_mib(), 1),
        "report": report,
    }


def extract_benchmarks(work: Path) -> dict[str, Any]:
    """Setup, then the build in a process of its own; the targets checked."""
    cases = int(os.environ.get("MEDVAULT_BENCH_EXTRACT_CASES", DEFAULT_CASES))
    print(f"  extract setup {cases} cases", flush=True)
    figures = {**_child("setup", work, cases)}
    print("  extract build", flush=True)
    figures |= _child("build", work)
    shutil.rmtree(work, ignore_errors=True)
    figures["targets"] = {
        "rows_under_2_min_per_million": figures["seconds"] * 1_000_000 / cases < 120,
        "peak_rss_below_500_mib": figures["extract_peak_rss_mib"] < 500,
    }
    return figures


def _child(step: str, work: Path, *args: object) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.perf.extracts", step, str(work), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"bench: extracts {step} failed:\n{out.stderr.strip()}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    step, target, *rest = sys.argv[1:]
    if step == "setup":
        print(json.dumps(setup(Path(target), int(rest[0]))))
    elif step == "build":
        print(json.dumps(build(Path(target))))
    else:
        print(json.dumps(extract_benchmarks(Path(target))))
