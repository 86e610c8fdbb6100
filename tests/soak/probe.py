"""The health probe, run as a process of its own (as a load balancer's would be), so the test
process's own work (building files, inspecting downloads) never delays or skews a measurement.

``python -m tests.soak.probe BASE_URL OUT`` polls every path of ``HEALTH_PATHS`` in turn, on a
new connection each time, until SIGTERM; it writes one line per check to OUT::

    <time.monotonic() at the start> <seconds> <path> <status, or the error's class name>

``time.monotonic()`` is the system-wide CLOCK_MONOTONIC, so the test can line checks up with
its uploads.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType

import httpx2 as httpx

HEALTH_PATHS = ("/healthz", "/readyz")
INTERVAL_SECONDS = 0.05
TIMEOUT_SECONDS = 10.0


def main(base_url: str, out_path: str) -> int:
    stop = threading.Event()

    def on_term(_signal: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    with (
        open(out_path, "w", buffering=1) as out,
        httpx.Client(base_url=base_url, timeout=TIMEOUT_SECONDS) as client,
    ):
        while not stop.is_set():
            for path in HEALTH_PATHS:
                started = time.monotonic()
                try:
                    response = client.get(path, headers={"Connection": "close"})
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                else:
                    outcome = str(response.status_code)
                elapsed = time.monotonic() - started
                out.write(f"{started:.6f} {elapsed:.6f} {path} {outcome}\n")
            stop.wait(INTERVAL_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
