"""``make bench``: every figure of the benchmark in one run on this machine, to bench-results.json.

Each measurement runs in its own process (tests/perf/measure.py) so its peak RSS is its own.
Set MEDVAULT_BENCH_MIB to change the large file's size (default 1024).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.perf.files import write_large_png, write_text_pdf

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "var" / "bench"
DEFAULT_FRAME = 1024 * 1024
FRAME_SIZES = [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024]


def measure(name: str, src: Path, *args: object) -> dict[str, Any]:
    print(f"  {name} {' '.join(map(str, args))}".rstrip(), flush=True)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.perf.measure",
            name,
            str(src),
            str(WORK / name),
            *map(str, args),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def openssl_aes_gcm_mbps() -> float:
    """``openssl speed -evp aes-256-gcm``, the largest block size it reports, in MB/s."""
    out = subprocess.run(
        ["openssl", "speed", "-evp", "aes-256-gcm", "-seconds", "2"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    row = next(line for line in out.splitlines() if line.upper().startswith("AES-256-GCM"))
    largest = re.findall(r"([\d.]+)k", row)[-1]
    return round(float(largest) / 1000, 1)  # openssl reports 1000s of bytes per second


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    size_mib = int(os.environ.get("MEDVAULT_BENCH_MIB", "1024"))
    big, medium, pdf = WORK / "scan-large.png", WORK / "scan-256.png", WORK / "letter-200.pdf"
    print(f"generating inputs ({size_mib} MiB image, 256 MiB image, 200-page PDF)", flush=True)
    write_large_png(big, target_bytes=size_mib * 1024 * 1024)
    write_large_png(medium, target_bytes=256 * 1024 * 1024)
    write_text_pdf(pdf, pages=200)

    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "file_mib": round(big.stat().st_size / 2**20, 1),
        "frame_size": DEFAULT_FRAME,
    }
    print("measuring", flush=True)
    results |= measure("raw_local", big)
    vault = measure("vault_local", big, DEFAULT_FRAME)
    results |= {
        "vault_put_mbps": vault["put_mbps"],
        "vault_get_mbps": vault["get_mbps"],
        "vault_roundtrip_peak_rss_mib": vault["peak_rss_mib"],
    }
    results["openssl_aes_gcm_mbps"] = openssl_aes_gcm_mbps()
    s3 = measure("vault_s3", big, DEFAULT_FRAME)
    results |= {"vault_s3_put_mbps": s3["put_mbps"], "vault_s3_get_mbps": s3["get_mbps"]}
    results |= measure("raw_s3", big)
    results["esdk_put_mbps"] = measure("esdk", big, "committing-no-signature-1mib")["mbps"]
    results["esdk_default_put_mbps"] = measure("esdk", big, "default")["mbps"]
    results["pdf_sanitise_pages_per_s"] = measure("pdf_sanitise", pdf, 200)["pages_per_s"]
    results["frame_size_sweep_256mib"] = {
        str(frame): measure("vault_local", medium, frame) for frame in FRAME_SIZES
    }
    results["targets"] = {
        "vault_put_over_raw_put": round(results["vault_put_mbps"] / results["raw_put_mbps"], 2),
        "vault_put_at_least_0_6_raw": results["vault_put_mbps"] >= 0.6 * results["raw_put_mbps"],
        "vault_put_at_least_esdk": results["vault_put_mbps"] >= results["esdk_put_mbps"],
        "peak_rss_below_150_mib": results["vault_roundtrip_peak_rss_mib"] < 150,
    }
    out = Path(os.environ.get("MEDVAULT_BENCH_OUT", ROOT / "bench-results.json"))
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    for name in (big, medium, pdf):
        name.unlink()


if __name__ == "__main__":
    main()
