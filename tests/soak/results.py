"""The figures of the soak suites, kept in ``soak-results.json`` at the repository root so runs
can be compared. Each suite owns one top-level key and replaces only that key; the file is
locked while it is rewritten, so suites running side by side do not lose each other's figures.

``MEDVAULT_SOAK`` chooses the form: unset or ``short`` (what `make test` runs) or ``long``
(`make soak`). ``MEDVAULT_SOAK_OUT`` names another results file.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS = REPO_ROOT / "soak-results.json"
FORMS = ("short", "long")

Form = Literal["short", "long"]


def soak_form() -> Form:
    """The form asked for by ``MEDVAULT_SOAK``; anything but short or long is an error."""
    value = os.environ.get("MEDVAULT_SOAK", "").strip().lower() or "short"
    if value == "short":
        return "short"
    if value == "long":
        return "long"
    raise ValueError(f"MEDVAULT_SOAK must be one of {FORMS}, not {value!r}")


def results_path() -> Path:
    return Path(os.environ.get("MEDVAULT_SOAK_OUT") or DEFAULT_RESULTS)


def record(suite: str, figures: dict[str, Any], *, path: Path | None = None) -> dict[str, Any]:
    """Store ``figures`` under ``suite`` (with the time and form), keeping other suites' keys.
    Returns the whole file's content as written."""
    target = path or results_path()
    entry = {"recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), **figures}
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        content = _read(target)
        content[suite] = entry
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, target)
    return content


def _read(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError:
        return {}  # a damaged file from an interrupted run: start over
    return content if isinstance(content, dict) else {}


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_figures(seconds: Sequence[float], prefix: str) -> dict[str, float | int]:
    """Count, p50, p99 and max in milliseconds of a list of latencies in seconds."""
    return {
        f"{prefix}_count": len(seconds),
        f"{prefix}_p50_ms": round(percentile(seconds, 0.50) * 1000, 1),
        f"{prefix}_p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
        f"{prefix}_max_ms": round(max(seconds, default=0.0) * 1000, 1),
    }
