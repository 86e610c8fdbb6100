"""infra.logging: one JSON object per line with timestamp, level, logger, event and the bound
context; exceptions as class and frames only, never their message."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from infra.logging import JsonFormatter, logging_config


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("medvault.test_logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def written(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_standard_library_line_is_one_json_object(lines: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(request_id="r-1")
    logging.getLogger("medvault.test_logging").warning("disk %s", "full")
    [line] = written(lines)
    assert line["event"] == "disk full"
    assert line["level"] == "warning"
    assert line["logger"] == "medvault.test_logging"
    assert line["request_id"] == "r-1"
    assert str(line["timestamp"]).endswith("Z")


def test_a_structlog_line_goes_the_same_way(lines: io.StringIO) -> None:
    structlog.get_logger("medvault.test_logging").info("built", rows=3)
    [line] = written(lines)
    assert line["event"] == "built"
    assert line["rows"] == 3
    assert line["level"] == "info"


def test_an_exception_is_written_without_its_message(lines: io.StringIO) -> None:
    try:
        raise ValueError("lena.vogt@example.org")
    except ValueError:
        logging.getLogger("medvault.test_logging").exception("failed")
    [line] = written(lines)
    assert line["exception"] == "ValueError"
    assert isinstance(line["stack"], list)
    assert line["stack"]
    assert "lena.vogt" not in json.dumps(line)


def test_the_config_sends_everything_to_stdout_and_drops_uvicorns_access_log() -> None:
    config = logging_config("debug")
    assert config["root"] == {"level": "DEBUG", "handlers": ["stdout"]}
    assert config["handlers"]["stdout"]["stream"] == "ext://sys.stdout"
    assert config["loggers"]["uvicorn.access"]["propagate"] is False
