"""Running a fuzz target as a libFuzzer process, and reading what it said when it stopped; and
the targets' own entry point (``run_target``) with their seed corpora.

Each run gets a session of its own, so that what it started (the PDF sanitiser's children) can
be found, and ended, through its process group. libFuzzer's closing lines are parsed from its
log: ``stat::`` lines (``-print_final_stats=1``) and the last status line, e.g.
``#224864 DONE cov: 278 ft: 362 corp: 80/1434Kb lim: 131250 exec/s: 7253 rss: 87Mb``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# What libFuzzer names the input it stops on, by why it stopped.
ARTIFACT_KINDS = ("crash", "timeout", "oom", "leak", "slow-unit")
_STATUS = re.compile(
    r"^#(?P<execs>\d+)\s+(?P<event>\w+)\s+cov: (?P<cov>\d+) ft: (?P<ft>\d+) "
    r"corp: (?P<units>\d+)/(?P<size>\d+)(?P<unit>b|Kb|Mb)",
    re.MULTILINE,
)
_STAT = re.compile(r"^stat::(?P<name>\w+):\s+(?P<value>\d+)$", re.MULTILINE)
_SIZE_UNITS = {"b": 1, "Kb": 1 << 10, "Mb": 1 << 20}


def write_seeds(folder: Path, seeds: Mapping[str, bytes]) -> int:
    """Write a seed corpus (file name: content) into ``folder``; returns the largest seed's size."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (folder / name).write_bytes(data)
    return max(len(data) for data in seeds.values())


def run_target(
    argv: list[str],
    test_one_input: Callable[[bytes], None],
    seeds: Callable[[], Mapping[str, bytes]],
    name: str,
) -> None:
    """A target process's entry point: libFuzzer with ``argv``. Given no corpus folder, it
    seeds a new temporary one (and prints where)."""
    import atheris  # only target processes load it (it instruments what they import next)

    if not any(not arg.startswith("-") for arg in argv[1:]):
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-corpus-"))
        write_seeds(folder, seeds())
        print(f"seed corpus: {folder}", file=sys.stderr)
        argv = [*argv, str(folder)]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


@dataclass
class FuzzRun:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    artifact_dir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def artifacts(self) -> dict[str, list[str]]:
        """The inputs libFuzzer saved, by kind (crash, timeout, oom, ...)."""
        found: dict[str, list[str]] = {kind: [] for kind in ARTIFACT_KINDS}
        for path in sorted(self.artifact_dir.iterdir()):
            kind = next((k for k in ARTIFACT_KINDS if path.name.startswith(f"{k}-")), None)
            if kind is not None:
                found[kind].append(str(path))
        return found

    def group_alive(self) -> bool:
        """Whether any process of this run's process group is still there."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(timeout=30)


def start(
    name: str,
    module: str,
    *,
    corpus_dirs: Sequence[Path],
    flags: Mapping[str, object],
    env: Mapping[str, str],
    work_dir: Path,
    cwd: Path,
) -> FuzzRun:
    """Start ``python -m module`` with libFuzzer ``flags`` over ``corpus_dirs`` (new inputs go
    to the first); its output goes to ``work_dir/<name>.log``, its artifacts to
    ``work_dir/<name>-artifacts/``."""
    artifact_dir = work_dir / f"{name}-artifacts"
    artifact_dir.mkdir(parents=True)
    log_path = work_dir / f"{name}.log"
    command = [
        sys.executable,
        "-m",
        module,
        *(f"-{flag}={value}" for flag, value in flags.items()),
        f"-artifact_prefix={artifact_dir}/",
        *(str(folder) for folder in corpus_dirs),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return FuzzRun(name, process, log_path, artifact_dir)


def final_stats(log: str) -> dict[str, int]:
    """Executions, coverage, corpus and the other closing figures of a libFuzzer log; what
    it did not print is missing."""
    stats: dict[str, int] = {}
    statuses = list(_STATUS.finditer(log))
    if statuses:
        last = statuses[-1]
        stats.update(
            coverage_edges=int(last["cov"]),
            features=int(last["ft"]),
            corpus_units=int(last["units"]),
            corpus_bytes=int(last["size"]) * _SIZE_UNITS[last["unit"]],
        )
        stats["last_status_executions"] = int(last["execs"])
    for match in _STAT.finditer(log):
        stats[match["name"]] = int(match["value"])
    return stats
