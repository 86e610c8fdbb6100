"""The worker's metrics: task runs counted by Celery's signals, shreds counted by the retention
task's caller, pool processes adding up through one multiprocess folder, and the HTTP endpoint
that serves their sum."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery import signals
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from infra.metrics import MULTIPROC_ENV, prepare_metrics_dir
from infra.tasks import RETENTION_RUN
from workers import observability


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


class FakeTask:
    """What the signals' senders look like (hashable, with a name)."""

    def __init__(self, name: str) -> None:
        self.name = name


def local() -> str:
    return generate_latest().decode()


def test_task_signals_count_runs_by_task_and_outcome() -> None:
    task = FakeTask(RETENTION_RUN)
    runs = "medvault_task_runs_total"
    before = local()
    signals.task_success.send(sender=task, result={})
    signals.task_success.send(sender=task, result={})
    signals.task_failure.send(sender=task, task_id="t1", exception=ValueError("x"))
    signals.task_retry.send(sender=task, request=None, reason="storage down")
    signals.task_success.send(sender=FakeTask("someone.elses"), result={})
    after = local()

    def moved(**labels: str) -> float:
        return value(after, runs, **labels) - value(before, runs, **labels)

    assert moved(task=RETENTION_RUN, outcome="success") == 2
    assert moved(task=RETENTION_RUN, outcome="failure") == 1
    assert moved(task=RETENTION_RUN, outcome="retry") == 1
    assert moved(task="unknown", outcome="success") == 1


def test_the_retention_task_counts_what_it_shredded(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.tasks import retention

    report = SimpleNamespace(
        due=(1, 2, 3), shredded=(1, 2), held=(), patients_erased=1, epochs_destroyed=()
    )
    monkeypatch.setattr(retention, "run_retention", lambda **_: report)
    runtime = SimpleNamespace(
        blob_store=None, key_store=None, settings=SimpleNamespace(retention_years=5)
    )

    class FakeSession:
        def __enter__(self) -> tuple[object, object]:
            return runtime, object()

        def __exit__(self, *_: object) -> None:
            return None

    monkeypatch.setattr(retention, "worker_session", FakeSession)
    before = local()
    assert retention.run.run()["shredded"] == 2
    after = local()
    shredded = "medvault_cases_shredded_total"
    erased = "medvault_patients_erased_total"
    assert value(after, shredded) - value(before, shredded) == 2
    assert value(after, erased) - value(before, erased) == 1


def test_a_task_run_binds_its_task_id_for_the_logs() -> None:
    import structlog

    task = FakeTask(RETENTION_RUN)
    signals.task_prerun.send(sender=task, task_id="abc123", task=task, args=(), kwargs={})
    assert structlog.contextvars.get_contextvars() == {"task_id": "abc123", "task": RETENTION_RUN}
    signals.task_postrun.send(sender=task, task_id="abc123", task=task, args=(), kwargs={})
    assert structlog.contextvars.get_contextvars() == {}


COUNTING_PROCESS = """
import sys
from infra.tasks import RETENTION_RUN
from workers import observability
for _ in range(int(sys.argv[1])):
    observability.TASK_RUNS.labels(RETENTION_RUN, "success").inc()
observability.count_retention(shredded=int(sys.argv[1]), patients_erased=0)
"""


def test_processes_sharing_one_folder_add_up(tmp_path: Path) -> None:
    folder = prepare_metrics_dir(tmp_path / "metrics", "worker")
    (folder / "counter_99999.db").write_bytes(b"left over from the last run")
    folder = prepare_metrics_dir(tmp_path / "metrics", "worker")  # emptied at start
    assert list(folder.iterdir()) == []
    assert (tmp_path / "metrics").stat().st_mode & 0o777 == 0o700
    assert folder.stat().st_mode & 0o777 == 0o700

    env = {**os.environ, MULTIPROC_ENV: str(folder)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", COUNTING_PROCESS, str(count)], env=env, cwd=Path.cwd()
        )
        for count in (3, 4)
    ]
    assert [process.wait(timeout=60) for process in processes] == [0, 0]
    assert len(list(folder.glob("counter_*.db"))) == 2  # one file per process

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    text = generate_latest(registry).decode()
    runs = value(text, "medvault_task_runs_total", task=RETENTION_RUN, outcome="success")
    assert runs == 7
    assert value(text, "medvault_cases_shredded_total") == 7


def test_the_worker_serves_the_sum_of_its_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = prepare_metrics_dir(tmp_path / "metrics", "worker")
    env = {**os.environ, MULTIPROC_ENV: str(folder)}
    for count in (2, 5):
        subprocess.run(
            [sys.executable, "-c", COUNTING_PROCESS, str(count)], env=env, check=True, timeout=60
        )
    monkeypatch.setenv(MULTIPROC_ENV, str(folder))
    server = observability.start_metrics_server("127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert value(text, "medvault_task_runs_total", task=RETENTION_RUN, outcome="success") == 7


def test_no_metrics_server_when_the_port_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(
        observability, "worker_settings", lambda: SimpleNamespace(worker_metrics_port=0)
    )
    monkeypatch.setattr(observability, "start_metrics_server", lambda *a: started.append(a))
    signals.worker_init.send(sender=None)
    assert started == []
