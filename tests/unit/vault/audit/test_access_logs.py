"""Daily access-log files: private, one JSON line per record, expired whole after 13 months."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vault.audit.access_logs import DailyFileSink, access_log_name, expired_access_logs

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_records_go_to_the_file_of_their_utc_day(tmp_path: Path) -> None:
    sink = DailyFileSink(tmp_path / "logs")
    sink.write({"n": 1}, at=NOW)
    sink.write({"n": 2}, at=NOW.replace(hour=23, minute=59))
    sink.write({"n": 3}, at=datetime(2026, 11, 25, 0, 30, tzinfo=UTC))

    first = (tmp_path / "logs" / "access-2026-11-24.jsonl").read_text().splitlines()
    second = (tmp_path / "logs" / "access-2026-11-25.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in first] == [{"n": 1}, {"n": 2}]
    assert [json.loads(line) for line in second] == [{"n": 3}]


def test_folder_and_files_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    DailyFileSink(folder).write({"n": 1}, at=NOW)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / access_log_name(NOW.date())).stat().st_mode) == 0o600


def test_lines_from_many_threads_never_interleave(tmp_path: Path) -> None:
    sink = DailyFileSink(tmp_path / "logs")
    payload = "x" * 2000

    def write_many(writer: int) -> None:
        for n in range(50):
            sink.write({"writer": writer, "n": n, "payload": payload}, at=NOW)

    threads = [threading.Thread(target=write_many, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = (tmp_path / "logs" / access_log_name(NOW.date())).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted((r["writer"], r["n"]) for r in records) == [
        (w, n) for w in range(8) for n in range(50)
    ]


def test_only_files_older_than_the_retention_expire(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    today = NOW.date()
    days = {
        offset: folder / access_log_name(today - timedelta(days=offset))
        for offset in (0, 395, 396, 397, 800)
    }
    for path in days.values():
        path.write_text("{}\n")
    (folder / "notes.txt").write_text("not ours")
    (folder / "access-2020-13-45.jsonl").write_text("not a date")

    expired = expired_access_logs(folder, now=NOW)

    # The file of day D holds lines up to D+1 00:00: it goes once all are older than 396 days.
    assert expired == [days[800], days[397]]
    assert expired_access_logs(folder, now=NOW, keep_days=0) == sorted(
        path for offset, path in days.items() if offset > 0
    )


def test_a_missing_folder_has_nothing_to_expire(tmp_path: Path) -> None:
    assert expired_access_logs(tmp_path / "absent", now=NOW) == []
