"""Reading a headless locust run's CSV files (``<prefix>_stats.csv``, ``_failures.csv``,
``_exceptions.csv``) into figures, and judging the sampled memory of the server.

The failure messages are the kinds the locustfile wrote (``server-error <status> <problem>``,
``unexpected <status> <problem>``, ``no-answer <exception>``); anything else is ``other``.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOTAL = "Aggregated"
FAILURE_KIND = re.compile(r"(server-error|unexpected|no-answer) [^'\"]*")
LINK_TOKEN = re.compile(r"/l/[A-Za-z0-9_-]+")
MIB = 1024  # KiB

# Memory "flat after the first minute": the median RSS of the last MEMORY_WINDOW_S seconds of
# load against the median of the MEMORY_WINDOW_S seconds that follow minute 1. Medians, because
# one sample can land while a few 4 MiB uploads are in flight and the other not. The tolerance
# is the larger of 10 % and 32 MiB: what uploads in flight and the allocator's arenas move the
# RSS of a busy process by, while a leak of the size of what a request carries (a 300 KiB upload,
# a few hundred times a minute) grows it by hundreds of MiB over the run.
MEMORY_AFTER_S = 60.0
MEMORY_WINDOW_S = 30.0
MEMORY_TOLERANCE_FRACTION = 0.10
MEMORY_TOLERANCE_MIB = 32.0


@dataclass(frozen=True)
class RequestFigures:
    count: int
    failures: int
    p50_ms: int
    p95_ms: int
    p99_ms: int
    max_ms: int
    requests_per_s: float
    average_bytes: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "failures": self.failures,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "requests_per_s": round(self.requests_per_s, 2),
        }


@dataclass
class LocustResults:
    by_request: dict[str, RequestFigures]
    total: RequestFigures
    failures: Counter[str] = field(default_factory=Counter)  # "<kind> <status> <problem>" -> n
    exceptions: list[str] = field(default_factory=list)  # messages of exceptions in the clients

    def failures_of(self, kind: str) -> int:
        return sum(n for message, n in self.failures.items() if message.startswith(kind + " "))

    @property
    def server_errors(self) -> int:
        return self.failures_of("server-error")

    @property
    def unexpected_4xx(self) -> int:
        return self.failures_of("unexpected")

    @property
    def no_answers(self) -> int:
        return self.failures_of("no-answer")


def _number(value: str) -> float:
    return 0.0 if value in ("", "N/A") else float(value)


def _figures(row: dict[str, str]) -> RequestFigures:
    return RequestFigures(
        count=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        p50_ms=int(_number(row["50%"])),
        p95_ms=int(_number(row["95%"])),
        p99_ms=int(_number(row["99%"])),
        max_ms=int(_number(row["100%"])),
        requests_per_s=_number(row["Requests/s"]),
        average_bytes=_number(row["Average Content Size"]),
    )


def failure_kind(error: str) -> str:
    """The kind the locustfile gave a failure, or ``other: <message>`` (link tokens masked)."""
    found = FAILURE_KIND.search(error)
    if found:
        return found.group(0).strip()
    return "other: " + LINK_TOKEN.sub("/l/{token}", error)[:200]


def read_locust_results(prefix: Path) -> LocustResults:
    """The figures of a run written with ``--csv <prefix>``."""
    with open(f"{prefix}_stats.csv", newline="") as stats:
        rows = list(csv.DictReader(stats))
    # The locustfile names each request "<METHOD> <route template>", so Type is left out.
    by_request = {row["Name"]: _figures(row) for row in rows if row["Name"] != TOTAL}
    [total] = [_figures(row) for row in rows if row["Name"] == TOTAL]
    failures: Counter[str] = Counter()
    with open(f"{prefix}_failures.csv", newline="") as failed:
        for row in csv.DictReader(failed):
            failures[failure_kind(row["Error"])] += int(row["Occurrences"])
    with open(f"{prefix}_exceptions.csv", newline="") as raised:
        exceptions = [
            LINK_TOKEN.sub("/l/{token}", row["Message"]) for row in csv.DictReader(raised)
        ]
    return LocustResults(by_request, total, failures, exceptions)


def _median_kib(samples: list[tuple[float, int]], start: float, end: float) -> float:
    window = [kib for at, kib in samples if start <= at < end and kib > 0]
    return statistics.median(window) if window else 0.0


def memory_figures(
    samples: list[tuple[float, int]], *, load_seconds: float, prefix: str
) -> dict[str, Any]:
    """First, peak and last RSS of one process's samples (seconds since the load started, KiB);
    for a run long enough to have both windows, also the RSS after minute 1 and at the end,
    the growth between them, its tolerance and the least-squares slope after minute 1."""
    figures: dict[str, Any] = {
        f"{prefix}_rss_first_mib": round(samples[0][1] / MIB, 1) if samples else 0.0,
        f"{prefix}_rss_peak_mib": round(max((kib for _, kib in samples), default=0) / MIB, 1),
        f"{prefix}_rss_last_mib": round(samples[-1][1] / MIB, 1) if samples else 0.0,
    }
    if load_seconds < MEMORY_AFTER_S + 2 * MEMORY_WINDOW_S:
        return figures  # the short form: too short for "after the first minute"
    baseline = _median_kib(samples, MEMORY_AFTER_S, MEMORY_AFTER_S + MEMORY_WINDOW_S)
    end = _median_kib(samples, load_seconds - MEMORY_WINDOW_S, load_seconds)
    tolerance = max(baseline * MEMORY_TOLERANCE_FRACTION, MEMORY_TOLERANCE_MIB * MIB)
    later = [(at, kib) for at, kib in samples if MEMORY_AFTER_S <= at <= load_seconds and kib]
    return figures | {
        f"{prefix}_rss_after_minute_1_mib": round(baseline / MIB, 1),
        f"{prefix}_rss_end_mib": round(end / MIB, 1),
        f"{prefix}_rss_growth_mib": round((end - baseline) / MIB, 1),
        f"{prefix}_rss_tolerance_mib": round(tolerance / MIB, 1),
        f"{prefix}_rss_slope_mib_per_min": round(_slope(later) * 60 / MIB, 2),
    }


def memory_is_flat(figures: dict[str, Any], prefix: str) -> bool:
    """Whether the RSS at the end is within the tolerance of the RSS after minute 1 (False
    when the run was too short to tell)."""
    growth = figures.get(f"{prefix}_rss_growth_mib")
    return growth is not None and bool(growth <= figures[f"{prefix}_rss_tolerance_mib"])


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of KiB over seconds; 0 with fewer than two points."""
    if len(points) < 2:
        return 0.0
    mean_t = statistics.fmean(at for at, _ in points)
    mean_k = statistics.fmean(kib for _, kib in points)
    spread = sum((at - mean_t) ** 2 for at, _ in points)
    if spread == 0:
        return 0.0
    return sum((at - mean_t) * (kib - mean_k) for at, kib in points) / spread
