"""Coverage-guided fuzzing of the envelope decoder and of document intake with atheris: no
crash, no hang, no accepted forgery (see the two targets for what each one counts as a failure).

Both targets run at the same time, as libFuzzer processes with a fixed ``-seed``, a per-input
``-timeout`` (an input running longer is a hang and fails the run), an ``-rss_limit_mb``, and a
seed corpus written here (genuine envelopes; the ordinary and hostile files of
:mod:`tests.hostile`) plus the inputs kept in ``regressions/<target>/``. libFuzzer exits
non-zero on a crash, a timeout or running out of memory, and saves the input.

Short form (`make test`): 60 s each. Long form (``MEDVAULT_SOAK=long``): an hour each.
``MEDVAULT_ATHERIS_SECONDS`` overrides both, for trials; ``MEDVAULT_SOAK_SEED`` (default 1)
seeds libFuzzer. Figures go to ``soak-results.json`` under ``atheris_fuzzing_short`` or
``atheris_fuzzing_long``.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.atheris import envelope_corpus, intake_corpus, libfuzzer, outcomes
from tests.soak import results

FORM = results.soak_form()
SUITE = f"atheris_fuzzing_{FORM}"
SECONDS = int(os.environ.get("MEDVAULT_ATHERIS_SECONDS") or (60 if FORM == "short" else 3600))
SEED = int(os.environ.get("MEDVAULT_SOAK_SEED", "1"))
RSS_LIMIT_MB = 2048
# libFuzzer stops between inputs once its time is up; past this margin it is stuck.
STOP_MARGIN_SECONDS = 180
REPO_ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).with_name("regressions")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SECONDS + STOP_MARGIN_SECONDS + 120)]


@dataclass(frozen=True)
class Target:
    name: str
    module: str
    seeds: Callable[[], Mapping[str, bytes]]
    timeout_seconds: int  # one input running longer is a hang
    max_len: Callable[[int], int]  # from the largest seed or regression input


TARGETS = (
    Target(
        "envelope",
        "tests.atheris.envelope_target",
        envelope_corpus.seeds,
        timeout_seconds=5,
        max_len=lambda largest: largest + 4096,  # room to extend the longest envelope
    ),
    Target(
        "intake",
        "tests.atheris.intake_target",
        intake_corpus.seeds,
        # Two PDF child processes (a file and its sanitised output), each at most 4 s of wall.
        timeout_seconds=15,
        max_len=lambda largest: max(largest, intake_corpus.MAX_INPUT_BYTES),
    ),
)


def start(target: Target, work_dir: Path) -> libfuzzer.FuzzRun:
    seeds, found, spool = (work_dir / f"{target.name}-{part}" for part in ("seeds", "new", "spool"))
    found.mkdir()
    spool.mkdir(mode=0o700)
    largest = libfuzzer.write_seeds(seeds, target.seeds())
    corpus_dirs = [found, seeds]  # libFuzzer writes what it finds into the first
    if (kept := REGRESSIONS / target.name).is_dir() and any(kept.iterdir()):
        corpus_dirs.append(kept)
        largest = max(largest, *(path.stat().st_size for path in kept.iterdir()))
    return libfuzzer.start(
        target.name,
        target.module,
        corpus_dirs=corpus_dirs,
        flags={
            "seed": SEED,
            "max_total_time": SECONDS,
            "timeout": target.timeout_seconds,
            "rss_limit_mb": RSS_LIMIT_MB,
            "max_len": target.max_len(largest),
            "print_final_stats": 1,
        },
        env={
            outcomes.OUTCOMES_ENV: str(work_dir / f"{target.name}-outcomes.json"),
            "MEDVAULT_ATHERIS_SPOOL_DIR": str(spool),
        },
        work_dir=work_dir,
        cwd=REPO_ROOT,
    )


def figures_of(run: libfuzzer.FuzzRun, seconds: float, work_dir: Path) -> dict[str, Any]:
    log = run.log()
    stats = libfuzzer.final_stats(log)
    artifacts = run.artifacts()
    return {
        "exit_code": run.process.returncode,
        "duration_s": round(seconds, 1),
        "executions": stats.get("number_of_executed_units", stats.get("last_status_executions")),
        "execs_per_s": stats.get("average_exec_per_sec"),
        "coverage_edges": stats.get("coverage_edges"),
        "features": stats.get("features"),
        "corpus_units": stats.get("corpus_units"),
        "corpus_bytes": stats.get("corpus_bytes"),
        "new_units_added": stats.get("new_units_added"),
        "slowest_input_s": stats.get("slowest_unit_time_sec"),
        "peak_rss_mb": stats.get("peak_rss_mb"),
        "crashes": len(artifacts["crash"]) + len(artifacts["leak"]),
        "accepted_forgeries": log.count("AcceptedForgery:"),
        "hangs": len(artifacts["timeout"]),
        "out_of_memory": len(artifacts["oom"]),
        "artifacts": [path for paths in artifacts.values() for path in paths],
        "outcomes": outcomes.read(work_dir / f"{run.name}-outcomes.json"),
    }


def test_fuzzing_finds_no_crash_hang_or_accepted_forgery(tmp_path: Path) -> None:
    started = time.monotonic()
    runs: list[libfuzzer.FuzzRun] = []
    ended: dict[str, float] = {}
    left_behind: list[str] = []  # fuzzers that did not stop, or left a child process
    try:
        runs = [start(target, tmp_path) for target in TARGETS]
        deadline = time.monotonic() + SECONDS + STOP_MARGIN_SECONDS
        for run in runs:
            try:
                run.process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                continue  # ended below, and reported
            ended[run.name] = time.monotonic() - started
    finally:
        for run in runs:
            if run.process.poll() is None or run.group_alive():
                left_behind.append(run.name)
                run.kill_group()

    per_target = {run.name: figures_of(run, ended.get(run.name, 0.0), tmp_path) for run in runs}
    figures = {
        "form": FORM,
        "seed": SEED,
        "seconds_each": SECONDS,
        "duration_s": round(time.monotonic() - started, 1),
        **{
            f"{total}_found": sum(found[total] for found in per_target.values())
            for total in ("crashes", "hangs", "accepted_forgeries", "out_of_memory")
        },
        "processes_left_behind": left_behind,
        "targets": per_target,
    }
    results.record(SUITE, figures)

    for run in runs:
        found = per_target[run.name]
        tail = "\n".join(run.log().splitlines()[-60:])
        assert run.process.returncode == 0, (
            f"the {run.name} fuzzer failed (exit {run.process.returncode}); saved inputs: "
            f"{found['artifacts']}; its log ends:\n{tail}"
        )
        assert found["artifacts"] == [], f"{run.name}: inputs saved: {found['artifacts']}"
        assert found["executions"], f"{run.name}: no libFuzzer statistics in its log:\n{tail}"
        assert found["coverage_edges"], f"{run.name}: no coverage: is vault instrumented?"
    assert left_behind == [], f"processes still running after the fuzzers stopped: {left_behind}"
