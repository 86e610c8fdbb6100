"""What a fuzz target saw, counted by kind and written now and then to a JSON file.

libFuzzer ends the process with C ``exit()`` when its time is up, so Python's ``atexit`` never
runs: the counts are rewritten at most once a second instead (the last second may be missing).
``MEDVAULT_ATHERIS_OUTCOMES`` names the file; without it nothing is written. The counted kinds
are fixed words chosen by the target, never content of an input.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

OUTCOMES_ENV = "MEDVAULT_ATHERIS_OUTCOMES"
WRITE_EVERY_SECONDS = 1.0


class Outcomes:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._counts: dict[str, float] = {}
        self._written_at = 0.0

    @classmethod
    def from_environment(cls) -> Outcomes:
        value = os.environ.get(OUTCOMES_ENV)
        return cls(Path(value) if value else None)

    def count(self, kind: str, amount: float = 1) -> None:
        self._counts[kind] = self._counts.get(kind, 0) + amount
        now = time.monotonic()
        if self._path is not None and now - self._written_at >= WRITE_EVERY_SECONDS:
            self._written_at = now
            self.write()

    def write(self) -> None:
        if self._path is None:
            return
        counts = {
            kind: value if float(value).is_integer() else round(value, 3)
            for kind, value in sorted(self._counts.items())
        }
        temporary = self._path.with_name(f".{self._path.name}.tmp")
        temporary.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self._path)


def read(path: Path) -> dict[str, float]:
    """The last counts a target wrote; empty when it wrote none."""
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return content if isinstance(content, dict) else {}
