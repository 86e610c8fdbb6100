"""The sending side of the task queue: names, id arguments, JSON messages, a broker that is down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kombu import Connection

from infra.settings import Settings
from infra.tasks import EXTRACTS_BUILD, KEYS_ROTATE, CeleryTaskQueue
from tests.conftest import free_port
from vault.errors import QueueUnavailable


def test_a_task_goes_to_the_configured_queue_as_json_with_its_ids(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, task_queue="medvault-test")
    queue = CeleryTaskQueue(settings)
    try:
        queue.enqueue(EXTRACTS_BUILD, "0f8e5d2c-1b7a-4c3e-9d6f-2a4b8c0e1f3a")
    finally:
        queue.close()
    with Connection(settings.broker_url) as connection:
        inbox = connection.SimpleQueue("medvault-test")
        message = inbox.get(timeout=5)
        assert message.content_type == "application/json"
        assert message.headers["task"] == EXTRACTS_BUILD
        args, kwargs, _embed = json.loads(message.body)
        assert args == ["0f8e5d2c-1b7a-4c3e-9d6f-2a4b8c0e1f3a"]
        assert kwargs == {}
        message.ack()
        inbox.close()


def test_an_unreachable_broker_raises_queue_unavailable_without_its_address(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    queue = CeleryTaskQueue(
        Settings(data_dir=tmp_path, broker_url=f"redis://:s3cret@127.0.0.1:{port}/0")
    )
    try:
        with pytest.raises(QueueUnavailable) as raised:
            queue.enqueue(KEYS_ROTATE)
    finally:
        queue.close()
    assert raised.value.status == 503
    assert str(port) not in str(raised.value)
    assert "s3cret" not in str(raised.value)
    assert raised.value.__cause__ is None


@pytest.mark.parametrize("name", ["medvault.nope", "celery.ping", ""])
def test_an_unknown_task_name_is_refused_before_anything_is_sent(tmp_path: Path, name: str) -> None:
    queue = CeleryTaskQueue(Settings(data_dir=tmp_path))
    try:
        with pytest.raises(ValueError, match="unknown task"):
            queue.enqueue(name)
    finally:
        queue.close()
    assert not (tmp_path / "broker.db").exists()


def test_arguments_must_be_id_strings(tmp_path: Path) -> None:
    queue = CeleryTaskQueue(Settings(data_dir=tmp_path))
    try:
        with pytest.raises(TypeError, match="ids as strings"):
            queue.enqueue(EXTRACTS_BUILD, b"bytes")  # type: ignore[arg-type]
    finally:
        queue.close()
    assert not (tmp_path / "broker.db").exists()
