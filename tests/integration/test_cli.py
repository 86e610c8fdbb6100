"""The real ``medvault`` console script, run in a subprocess against a temporary data folder."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

MEDVAULT = Path(sys.executable).with_name("medvault")
STARTUP_SECONDS = 30


def medvault(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MEDVAULT), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [f"medvault: {reason}"]


def unreachable_postgres_url() -> str:
    return f"postgresql://medvault@127.0.0.1:{free_port()}/medvault"


def test_db_upgrade_twice_then_check(env: dict[str, str], tmp_path: Path) -> None:
    for _ in range(2):
        result = medvault("db", "upgrade", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert medvault("db", "check", env=env, cwd=tmp_path).returncode == 0


def test_db_check_fails_on_a_database_without_migrations(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = medvault("db", "check", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "database is at revision none" in result.stdout
    assert result.stderr.startswith("medvault: ")
    assert "difference(s) between the database and the models" in result.stderr


def test_check_passes_on_the_embedded_defaults(env: dict[str, str], tmp_path: Path) -> None:
    result = medvault("check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for part in ("database", "blob_store", "key_provider"):
        assert part in result.stdout


def test_check_fails_naming_what_is_down(env: dict[str, str], tmp_path: Path) -> None:
    env["MEDVAULT_DATABASE_URL"] = unreachable_postgres_url()
    assert_one_line_failure(medvault("check", env=env, cwd=tmp_path), "not ready: database down")


@pytest.mark.parametrize("command", [["db", "upgrade"], ["check"], ["keys", "rotate"], ["serve"]])
def test_a_bad_setting_is_one_line_on_stderr_and_nothing_is_created(
    command: list[str], env: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    env["MEDVAULT_MODE"] = "production"  # with the development secret key
    result = medvault(*command, env=env, cwd=tmp_path)
    assert_one_line_failure(
        result, "MEDVAULT_SECRET_KEY: production mode refuses the development secret key"
    )
    assert not data_dir.exists()


def test_an_invalid_value_names_its_variable(env: dict[str, str], tmp_path: Path) -> None:
    env["MEDVAULT_PORT"] = "eighty"
    result = medvault("serve", env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith("medvault: MEDVAULT_PORT: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_database_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    env["MEDVAULT_DATABASE_URL"] = unreachable_postgres_url()
    assert_one_line_failure(
        medvault("db", "upgrade", env=env, cwd=tmp_path), "database unreachable"
    )


def test_an_unknown_command_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    result = medvault("frobnicate", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("medvault: ")


def test_keys_rotate_reports_the_new_root_key(
    env: dict[str, str], tmp_path: Path, data_dir: Path
) -> None:
    assert medvault("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    result = medvault("keys", "rotate", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "new_root_key_id" in result.stdout
    keyring = data_dir / "keys" / "keyring.json"
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600


def on_a_free_port(env: dict[str, str]) -> str:
    """Point `medvault serve` at a free port; return its base URL."""
    port = free_port()
    env["MEDVAULT_PORT"] = str(port)
    return f"http://127.0.0.1:{port}"


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def serve_and_get(
    env: dict[str, str], cwd: Path, base: str, paths: list[str]
) -> list[tuple[int, dict[str, object]]]:
    """Start `medvault serve`, wait for /healthz, GET each path, stop the server."""
    process = subprocess.Popen(
        [str(MEDVAULT), "serve"],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                get(f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    output = process.communicate()[0]
                    pytest.fail(f"medvault serve did not answer:\n{output}")
                time.sleep(0.1)
        return [get(f"{base}{path}") for path in paths]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def test_serve_answers_healthz_and_readyz(env: dict[str, str], tmp_path: Path) -> None:
    base = on_a_free_port(env)
    (health, readiness) = serve_and_get(env, tmp_path, base, ["/healthz", "/readyz"])
    assert health == (200, {"status": "ok"})
    assert readiness == (
        200,
        {"status": "ok", "checks": {"database": True, "blob_store": True, "key_provider": True}},
    )


def test_serve_is_not_ready_while_the_database_is_down(env: dict[str, str], tmp_path: Path) -> None:
    base = on_a_free_port(env)
    env["MEDVAULT_DATABASE_URL"] = unreachable_postgres_url()
    (health, readiness) = serve_and_get(env, tmp_path, base, ["/healthz", "/readyz"])
    assert health == (200, {"status": "ok"})
    assert readiness == (
        503,
        {
            "status": "unavailable",
            "checks": {"database": False, "blob_store": True, "key_provider": True},
        },
    )
