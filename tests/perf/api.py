"""The API benchmark: a 256 MiB upload and download through uvicorn, and partner-link downloads.

A uvicorn subprocess serves ``tests.perf.bench_app`` on a throwaway data folder (SQLite, local
folder store, local keyring), once with glibc's default malloc and once with
:func:`infra.malloc.tune_malloc`. The file is the benchmark's PNG scan without metadata: PNGs
stream through intake without being spooled, so the upload measures the real path (body ->
bridge -> sanitiser -> SHA-256 -> AES-GCM -> store) rather than a PDF's spool-and-rewrite.

Each round sends the file, in this order, to the bare echo route, through the upload bridge to
a thread that discards it, to ``store_document`` in a separate process (no HTTP: the pipeline's
own speed on the same disk), as a raw ``PUT`` and as a multipart form, then downloads it. The
disk's write speed drifts a lot on this VM, so rounds interleave the figures and report medians.
The server's RSS is sampled from /proc during the raw upload. Last, 16 partners download a
100 KiB document through a link at once, each with the access code (one argon2id check each).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.conftest import free_port, wait_for_port
from tests.perf.files import write_large_png

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 1 << 20
LOGIN, PASSWORD = "bench-patient@example.org", "bench password, long enough"
LINK_DOCUMENT_BYTES = 100 * 1024
LINK_CLIENTS = 16
LINK_REQUESTS_PER_CLIENT = 6


def mbps(size: int, seconds: float) -> float:
    return round(size / seconds / 1e6, 1)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Samples a process's VmRSS every few milliseconds on a thread while in use."""

    def __init__(self, pid: int) -> None:
        self.pid, self.start, self.peak = pid, rss_mib(pid), 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid))

    @property
    def growth(self) -> float:
        return round(self.peak - self.start, 1)


@dataclass(frozen=True)
class Prepared:
    """What the benchmark needs from the throwaway vault: the patient's case and a partner link."""

    case_id: str
    link_path: str  # POST here with the code: /l/{token}/documents/{id}
    code: str


def prepare(data_dir: Path) -> Prepared:
    """Tables, a patient user and their case, and a 100 KiB scan forwarded to a partner under
    Art. 9(2)(h) with a link allowing many downloads, made directly through the vault services."""
    from sqlmodel import SQLModel

    import infra.models  # noqa: F401 - registers the tables
    from api.routers.transfers import link_policy
    from infra.settings import Settings
    from infra.wiring import build_runtime
    from vault.accounts.models import Role
    from vault.accounts.service import create_user
    from vault.audit.service import AuditContext
    from vault.cases.service import open_case
    from vault.clock import utcnow
    from vault.documents.models import DocumentKind
    from vault.documents.service import store_document
    from vault.partners.models import PartnerKind
    from vault.partners.service import create_partner
    from vault.patients.service import PatientIdentity, register_patient
    from vault.transfers.models import LegalBasis, Purpose
    from vault.transfers.service import create_transfer

    runtime = build_runtime(Settings(data_dir=data_dir))
    SQLModel.metadata.create_all(runtime.engine)
    small = data_dir / "letter-scan.png"
    write_large_png(small, target_bytes=LINK_DOCUMENT_BYTES, width=256)
    system = AuditContext.SYSTEM
    try:
        with runtime.sessions() as session:
            who = PatientIdentity(name="Bench", birth_date=utcnow().date(), email=LOGIN)
            patient = register_patient(
                session=session, keys=runtime.key_store, identity=who, now=utcnow()
            )
            session.commit()
            create_user(
                session,
                lookup_key=runtime.secrets.login_lookup_key,
                login=LOGIN,
                role=Role.PATIENT,
                password=PASSWORD,
                now=utcnow(),
                patient_id=patient.id,
            )
            case = open_case(
                session=session,
                keys=runtime.key_store,
                patient_id=patient.id,
                now=utcnow(),
                audit=system,
            )
            with small.open("rb") as source:
                document = store_document(
                    session=session,
                    store=runtime.blob_store,
                    keys=runtime.key_store,
                    case_id=case.id,
                    kind=DocumentKind.RECORD,
                    filename=small.name,
                    source=source,
                    limits=runtime.intake_limits,
                    spool_dir=runtime.spool_dir,
                    frame_size=runtime.frame_size,
                    now=utcnow(),
                    audit=system,
                )
            partner = create_partner(
                session,
                kind=PartnerKind.CLINIC,
                name="Bench Clinic",
                contact_email="clinic@example.org",
                now=utcnow(),
                audit=system,
            )
            issued = create_transfer(
                session,
                case_id=case.id,
                document_ids=[document.id],
                partner_id=partner.id,
                purpose=Purpose.TREATMENT_CHECK,
                legal_basis=LegalBasis.ART9_2_H,
                consent_id=None,
                now=utcnow(),
                audit=system,
                link_policy=link_policy(runtime.settings),
                max_downloads=1_000_000,
            )
            return Prepared(
                case_id=str(case.id),
                link_path=f"/l/{issued.link.token}/documents/{document.id}",
                code=issued.link.access_code,
            )
    finally:
        small.unlink()
        runtime.close()


@contextmanager
def server(data_dir: Path, *, tune_malloc: bool) -> Iterator[tuple[int, int]]:
    """A uvicorn process serving the bench app; yields (port, pid)."""
    port = free_port()
    env = {
        **os.environ,
        "MEDVAULT_DATA_DIR": str(data_dir),
        "MEDVAULT_MAX_DOCUMENT_MIB": "1024",
        "MEDVAULT_BENCH_TUNE_MALLOC": "1" if tune_malloc else "0",
    }
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tests.perf.bench_app:create_bench_app",
    ]
    proc = subprocess.Popen(
        [
            *command,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        if not wait_for_port("127.0.0.1", port, timeout=60):
            raise RuntimeError("the bench server did not start")
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def request(port: int, method: str, path: str, **kwargs: Any) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request(method, path, **kwargs)
    return connection.getresponse()


def file_chunks(src: Path) -> Iterator[bytes]:
    with src.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


def timed_upload(
    port: int, path: str, body: Iterator[bytes], size: int, headers: dict[str, str]
) -> tuple[Any, float]:
    """Send ``size`` bytes of ``body``, PUT (POST for a multipart form); (answer, seconds)."""
    method = "POST" if headers.get("Content-Type", "").startswith("multipart/") else "PUT"
    started = time.perf_counter()
    response = request(
        port, method, path, body=body, headers={**headers, "Content-Length": str(size)}
    )
    answer = json.loads(response.read())
    seconds = time.perf_counter() - started
    if response.status not in (200, 201):
        raise RuntimeError(f"bench upload to {path} failed: {response.status} {answer}")
    return answer, seconds


def multipart_body(src: Path) -> tuple[Iterator[bytes], int, str]:
    """A streamed ``multipart/form-data`` body (``kind`` then ``file``): chunks, length, type."""
    boundary = "medvault-bench-" + "7" * 24
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\nrecord\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{src.name}"'
        "\r\nContent-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        yield from file_chunks(src)
        yield tail

    size = len(head) + src.stat().st_size + len(tail)
    return chunks(), size, f"multipart/form-data; boundary={boundary}"


def timed_download(port: int, path: str, headers: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    response = request(port, "GET", path, headers=headers)
    received = 0
    while piece := response.read(CHUNK):
        received += len(piece)
    return received, time.perf_counter() - started


def sign_in(port: int) -> dict[str, str]:
    response = request(
        port,
        "POST",
        "/auth/token",
        body=urlencode({"username": LOGIN, "password": PASSWORD}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    token = json.loads(response.read())["access_token"]
    return {"Authorization": f"Bearer {token}"}


def link_downloads(port: int, prepared: Prepared) -> dict[str, float]:
    """LINK_CLIENTS threads, each on one keep-alive connection, each downloading the linked
    document LINK_REQUESTS_PER_CLIENT times with the access code: rps and latency."""
    body = urlencode({"code": prepared.code})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    latencies: list[float] = []
    failures: list[str] = []
    start = threading.Barrier(LINK_CLIENTS + 1)

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            start.wait()
            for _ in range(LINK_REQUESTS_PER_CLIENT):
                began = time.perf_counter()
                connection.request("POST", prepared.link_path, body=body, headers=headers)
                response = connection.getresponse()
                size = len(response.read())
                latencies.append(time.perf_counter() - began)
                if response.status != 200 or size < LINK_DOCUMENT_BYTES // 2:
                    failures.append(f"{response.status} ({size} bytes)")
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(LINK_CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"link downloads failed: {failures[:3]} ({len(failures)} in all)")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "link_download_rps": round(len(latencies) / seconds, 1),
        "link_download_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "link_download_p99_ms": round(cuts[98] * 1000, 1),
    }


def argon2_verify_ms(rounds: int = 5) -> dict[str, float]:
    """One access-code check (argon2id at the password parameters), wall and CPU time, median."""
    from argon2 import PasswordHasher

    from vault.accounts.passwords import ARGON2_PARAMETERS

    hasher = PasswordHasher.from_parameters(ARGON2_PARAMETERS)
    digest = hasher.hash("ABCDEFGHJK")
    wall, cpu = [], []
    for _ in range(rounds):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        hasher.verify(digest, "ABCDEFGHJK")
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    return {
        "argon2_verify_ms": round(statistics.median(wall) * 1000, 1),
        "argon2_verify_cpu_ms": round(statistics.median(cpu) * 1000, 1),
    }


def vault_put_inprocess(src: Path, work: Path) -> float:
    """``store_document`` straight from the file in a fresh process (tests/perf/measure.py),
    on the same disk as the server's data folder: the pipeline's own speed, in MB/s."""
    work.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-m", "tests.perf.measure", "vault_local", str(src), str(work), "1048576"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    shutil.rmtree(work, ignore_errors=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["put_mbps"])


def one_round(
    port: int, pid: int, src: Path, prepared: Prepared, auth: dict[str, str], work: Path
) -> dict[str, Any]:
    """Each transfer once, in the same order: MB/s, and the server's RSS during the upload."""
    size = src.stat().st_size
    case = prepared.case_id
    _, echo_s = timed_upload(port, "/_bench/echo", file_chunks(src), size, {})
    _, bridge_s = timed_upload(port, "/_bench/bridge", file_chunks(src), size, {})
    inprocess = vault_put_inprocess(src, work / "inprocess")
    with RssSampler(pid) as upload_rss:
        stored, upload_s = timed_upload(
            port, f"/cases/{case}/uploads/scan.png?kind=record", file_chunks(src), size, auth
        )
    body, body_size, content_type = multipart_body(src)
    form, multipart_s = timed_upload(
        port, f"/cases/{case}/documents", body, body_size, {**auth, "Content-Type": content_type}
    )
    received, download_s = timed_download(port, f"/documents/{stored['id']}/content", auth)
    zeros, zeros_s = timed_download(port, f"/_bench/zeros?size={size}", {})
    if not received == zeros == stored["size"] == form["size"] == size:
        raise RuntimeError("the API round trip changed the size")
    return {
        "http_echo_mbps": mbps(size, echo_s),
        "bridge_discard_mbps": mbps(size, bridge_s),
        "vault_put_inprocess_mbps": inprocess,
        "api_upload_mbps": mbps(size, upload_s),
        "api_multipart_mbps": mbps(size, multipart_s),
        "api_download_mbps": mbps(size, download_s),
        "http_zeros_mbps": mbps(size, zeros_s),
        "server_rss_growth_mib": upload_rss.growth,
        "server_rss_peak_mib": round(upload_rss.peak, 1),
    }


def one_server(work: Path, src: Path, *, tune_malloc: bool, rounds: int) -> dict[str, Any]:
    """Rounds of every transfer, then the link downloads, in one fresh server; medians."""
    data_dir = work / ("tuned" if tune_malloc else "default")
    prepared = prepare(data_dir)
    with server(data_dir, tune_malloc=tune_malloc) as (port, pid):
        auth = sign_in(port)
        samples = [one_round(port, pid, src, prepared, auth, work) for _ in range(rounds)]
        links = link_downloads(port, prepared)
        hwm = rss_mib(pid, "VmHWM")
    shutil.rmtree(data_dir, ignore_errors=True)
    result: dict[str, Any] = {
        field: round(statistics.median(sample[field] for sample in samples), 1)
        for field in samples[0]
    }
    result["server_rss_growth_mib"] = max(sample["server_rss_growth_mib"] for sample in samples)
    result["server_rss_peak_mib"] = max(sample["server_rss_peak_mib"] for sample in samples)
    upload = result["api_upload_mbps"]
    result |= {
        "upload_echo_ratio": round(upload / result["http_echo_mbps"], 2),
        "upload_inprocess_ratio": round(upload / result["vault_put_inprocess_mbps"], 2),
        "server_vmhwm_mib": round(hwm, 1),
        **links,
        "samples": samples,
    }
    return result


def api_benchmarks(work: Path, src: Path) -> dict[str, Any]:
    """Both malloc settings, each in its own fresh server and data folder."""
    work.mkdir(parents=True, exist_ok=True)
    rounds = int(os.environ.get("MEDVAULT_BENCH_API_ROUNDS", "3"))
    results: dict[str, Any] = {
        "file_mib": round(src.stat().st_size / 2**20, 1),
        "rounds": rounds,
        "link_clients": LINK_CLIENTS,
        "link_document_bytes": LINK_DOCUMENT_BYTES,
        **argon2_verify_ms(),
    }
    for tuned in (False, True):
        label = "malloc_tuned" if tuned else "malloc_default"
        print(f"  api {label}", flush=True)
        results[label] = one_server(work, src, tune_malloc=tuned, rounds=rounds)
    results["targets"] = {
        label: {
            "upload_echo_ratio_at_least_0_7": results[label]["upload_echo_ratio"] >= 0.7,
            "server_rss_growth_below_100_mib": results[label]["server_rss_growth_mib"] < 100,
        }
        for label in ("malloc_default", "malloc_tuned")
    }
    return results


if __name__ == "__main__":  # python -m tests.perf.api FILE WORK: just this part
    print(json.dumps(api_benchmarks(Path(sys.argv[2]), Path(sys.argv[1])), indent=2))
