"""The Celery configuration every worker runs with, the task decorator and the beat schedule."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab

from infra.settings import Settings
from infra.tasks import (
    EXPORTS_SWEEP,
    EXTRACTS_SWEEP,
    KEYS_ROTATE,
    RETENTION_PURGE,
    RETENTION_RUN,
    STORAGE_SWEEP,
    TASK_NAMES,
    celery_config,
)
from keys import errors as key_errors
from vault.errors import DecryptionFailed, KmsUnavailable, NotFound, StorageUnavailable
from workers.app import MAX_RETRIES, celery_app, medvault_task
from workers.schedule import BEAT_SCHEDULE


def test_messages_and_results_are_json_only() -> None:
    conf = celery_app.conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]


def test_tasks_are_acknowledged_late_and_requeued_when_their_process_dies() -> None:
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1


def test_broker_backend_queue_and_concurrency_come_from_the_settings() -> None:
    settings = Settings(
        broker_url="redis://broker.invalid:6379/3",
        result_backend="redis://broker.invalid:6379/4",
        task_queue="medvault-staging",
        worker_concurrency=7,
    )
    config = celery_config(settings)
    assert config["broker_url"] == "redis://broker.invalid:6379/3"
    assert config["result_backend"] == "redis://broker.invalid:6379/4"
    assert config["task_default_queue"] == "medvault-staging"
    assert config["worker_concurrency"] == 7


def test_embedded_defaults_are_sqlite_files_under_the_data_dir(tmp_path: object) -> None:
    config = celery_config(Settings(data_dir=tmp_path))  # type: ignore[arg-type]
    assert config["broker_url"] == f"sqla+sqlite:///{tmp_path}/broker.db"
    assert config["result_backend"] == f"db+sqlite:///{tmp_path}/results.db"


def test_the_task_decorator_retries_only_unreachable_services_and_acks_late() -> None:
    def does_nothing() -> None:
        pass

    task = medvault_task(f"tests.options.{uuid.uuid4().hex}")(does_nothing)
    assert set(task.autoretry_for) == {
        StorageUnavailable,
        KmsUnavailable,
        key_errors.KmsUnavailable,
    }
    assert task.acks_late is True
    assert task.retry_backoff is True
    assert task.retry_jitter is True
    assert task.max_retries == MAX_RETRIES == 8


@pytest.mark.parametrize(
    "error", [StorageUnavailable("down"), KmsUnavailable("down"), key_errors.KmsUnavailable()]
)
def test_an_unreachable_service_is_retried_until_max_retries(error: Exception) -> None:
    calls = _failing_task_calls(error)
    assert calls == MAX_RETRIES + 1


@pytest.mark.parametrize("error", [DecryptionFailed(), NotFound("no such case"), ValueError("x")])
def test_any_other_failure_is_final_at_once(error: Exception) -> None:
    assert _failing_task_calls(error) == 1


@pytest.fixture(autouse=True)
def _result_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An eager task that fails records its failure in the default result backend, a SQLite file
    # under ./var: run from a folder of this test's own, whatever ran (or did not) before.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()


def _failing_task_calls(error: Exception) -> int:
    """Run (eagerly, in this process) a medvault task that always raises ``error``."""
    calls = []

    def always_fails() -> None:
        calls.append(1)
        raise error

    task = medvault_task(f"tests.failing.{uuid.uuid4().hex}")(always_fails)
    assert task.apply().failed()
    return len(calls)


def test_beat_sends_the_six_periodic_tasks() -> None:
    assert celery_app.conf.beat_schedule == BEAT_SCHEDULE
    by_task = {entry["task"]: entry["schedule"] for entry in BEAT_SCHEDULE.values()}
    assert set(by_task) == {
        RETENTION_RUN,
        RETENTION_PURGE,
        KEYS_ROTATE,
        EXTRACTS_SWEEP,
        EXPORTS_SWEEP,
        STORAGE_SWEEP,
    }
    assert set(by_task) <= TASK_NAMES
    assert by_task[EXTRACTS_SWEEP] == timedelta(minutes=10)
    assert by_task[EXPORTS_SWEEP] == timedelta(minutes=10)
    for name in (RETENTION_RUN, RETENTION_PURGE, KEYS_ROTATE, STORAGE_SWEEP):
        daily = by_task[name]
        assert isinstance(daily, crontab)
        assert len(daily.hour) == 1
        assert len(daily.minute) == 1
        assert len(daily.day_of_month) == 31
        assert len(daily.day_of_week) == 7


def test_every_task_name_the_api_may_send_has_a_worker_task() -> None:
    import workers.tasks  # noqa: F401 - registers the tasks

    assert set(celery_app.tasks) >= TASK_NAMES
