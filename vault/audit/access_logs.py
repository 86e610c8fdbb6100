"""Daily access-log files: where the web server's JSON lines go, and which ones have expired.

One file per UTC day, ``access-YYYY-MM-DD.jsonl`` (0600, in a 0700 folder), so the retention
job deletes whole files, never edits them. Here rather than in ``api`` because the purge job
(``workers``) needs ``expired_access_logs`` and may not import ``api``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from vault.clock import as_utc

ACCESS_LOG_RETENTION_DAYS = 396  # 13 months
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_FILE_NAME = re.compile(r"access-(\d{4}-\d{2}-\d{2})\.jsonl")


class AccessLogSink(Protocol):
    """Takes one access-log record (JSON-serialisable, no personal data) written at ``at``."""

    def write(self, record: Mapping[str, Any], *, at: datetime) -> None: ...


def access_log_name(day: date) -> str:
    return f"access-{day.isoformat()}.jsonl"


class DailyFileSink:
    """Appends each record as one JSON line to the file of its UTC day.

    Each line goes out in one ``write`` on a file opened with O_APPEND, so lines from several
    threads or server processes never interleave.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        folder.chmod(PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask

    def write(self, record: Mapping[str, Any], *, at: datetime) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=True) + "\n"
        path = self.folder / access_log_name(as_utc(at).astimezone(UTC).date())
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        descriptor = os.open(path, flags, PRIVATE_FILE_MODE)
        try:
            os.write(descriptor, line.encode("ascii"))
        finally:
            os.close(descriptor)


def expired_access_logs(
    folder: Path, *, now: datetime, keep_days: int = ACCESS_LOG_RETENTION_DAYS
) -> list[Path]:
    """Daily files whose every line is older than ``keep_days``, oldest first.

    Files that are not ours (any other name) are never listed.
    """
    if not folder.is_dir():
        return []
    oldest_kept = as_utc(now).astimezone(UTC).date() - timedelta(days=keep_days)
    expired = []
    for path in folder.iterdir():
        match = _FILE_NAME.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if day < oldest_kept:
            expired.append(path)
    return sorted(expired)
