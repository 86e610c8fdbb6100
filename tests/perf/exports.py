"""Benchmark: ``export_mbps`` and ``export_peak_rss_mib`` of one data-subject export build.

Setup (not timed) makes a fresh installation (SQLite, local folder store, local keyring, on
disk) with one patient who has ``MEDVAULT_BENCH_EXPORT_DOCUMENTS`` documents (default 20) of
``MEDVAULT_BENCH_EXPORT_MIB`` MiB each (default 5), PNG scans of noise stored through the
real intake (sanitised, encrypted). Then a separate process (so its peak RSS is the build's
own, imports included) requests a portability export and builds it with ``build_export`` as
the worker runs it: every document decrypted and streamed into the ZIP, the ZIP encrypted into
the store. ``export_mbps`` is archive bytes per second of the build. Targets: peak RSS below
150 MiB whatever the documents' total size (it must not grow with it).

Run alone: ``python -m tests.perf.exports [work folder]``; prints one JSON object.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel

from infra.settings import Settings
from infra.wiring import build_runtime
from tests.factories import NOW, intake_limits, make_case, make_patient
from tests.perf.files import write_large_png
from tests.perf.measure import peak_rss_mib
from vault.audit.service import AuditContext
from vault.documents.models import DocumentKind
from vault.documents.service import store_document
from vault.patients.models import Patient
from vault.subject_rights.exports import build_export, request_export
from vault.subject_rights.models import Right, SubjectExport

DEFAULT_DOCUMENTS = 20
DEFAULT_MIB = 5
ROOT = Path(__file__).resolve().parents[2]


def _settings(work: Path) -> Settings:
    return Settings(data_dir=work)


def setup(work: Path, documents: int, mib: int) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    runtime = build_runtime(_settings(work))
    import infra.models  # noqa: F401 - registers every table on SQLModel.metadata

    SQLModel.metadata.create_all(runtime.engine)
    scan = work / "scan.png"
    write_large_png(scan, target_bytes=mib * 1024 * 1024)
    started = time.perf_counter()
    with runtime.sessions() as session:
        patient = make_patient(session, runtime.key_store)
        case = make_case(session, runtime.key_store, patient)
        for index in range(documents):
            store_document(
                session=session,
                store=runtime.blob_store,
                keys=runtime.key_store,
                case_id=case.id,
                kind=DocumentKind.RECORD,
                filename=f"scan-{index}.png",
                source=io.BytesIO(scan.read_bytes()),
                limits=intake_limits(max_bytes=(mib + 1) * 1024 * 1024),
                spool_dir=runtime.spool_dir,
                frame_size=runtime.frame_size,
                now=NOW,
                audit=AuditContext.SYSTEM,
            )
    scan.unlink()
    runtime.close()
    return {
        "documents": documents,
        "document_mib": mib,
        "setup_seconds": round(time.perf_counter() - started, 1),
    }


def build(work: Path) -> dict[str, Any]:
    """Request and build one portability export; the figures of this process alone."""
    runtime = build_runtime(_settings(work))
    with runtime.sessions() as session:
        patient = session.query(Patient).one()
        found = request_export(
            session=session,
            patient_id=patient.id,
            right=Right.PORTABILITY,
            now=NOW,
            audit=AuditContext.SYSTEM,
        )
        export_id = found.export.id
    os.sync()
    started = time.perf_counter()
    status = build_export(
        sessions=runtime.sessions,
        store=runtime.blob_store,
        keys=runtime.key_store,
        export_id=export_id,
        retention_years=5,
        export_retention=timedelta(days=3),
        frame_size=runtime.frame_size,
        now=NOW,
    )
    seconds = time.perf_counter() - started
    with runtime.sessions() as session:
        export = session.get(SubjectExport, export_id)
        assert export is not None
        size = export.size or 0
    runtime.close()
    return {
        "status": status.value,
        "archive_mib": round(size / 2**20, 1),
        "seconds": round(seconds, 2),
        "export_mbps": round(size / seconds / 1e6, 1),
        "export_peak_rss_mib": round(peak_rss_mib(), 1),
    }


def export_benchmarks(work: Path) -> dict[str, Any]:
    """Setup, then the build in a process of its own; the target checked."""
    documents = int(os.environ.get("MEDVAULT_BENCH_EXPORT_DOCUMENTS", DEFAULT_DOCUMENTS))
    mib = int(os.environ.get("MEDVAULT_BENCH_EXPORT_MIB", DEFAULT_MIB))
    print(f"  export setup {documents} x {mib} MiB", flush=True)
    figures = {**_child("setup", work, documents, mib)}
    print("  export build", flush=True)
    figures |= _child("build", work)
    shutil.rmtree(work, ignore_errors=True)
    figures["targets"] = {"export_peak_rss_below_150_mib": figures["export_peak_rss_mib"] < 150}
    return figures


def _child(step: str, work: Path, *args: object) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.perf.exports", step, str(work), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"bench: exports {step} failed:\n{out.stderr.strip()}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    step, target, *rest = sys.argv[1:]
    if step == "setup":
        print(json.dumps(setup(Path(target), int(rest[0]), int(rest[1]))))
    elif step == "build":
        print(json.dumps(build(Path(target))))
    else:
        print(json.dumps(export_benchmarks(Path(target))))
