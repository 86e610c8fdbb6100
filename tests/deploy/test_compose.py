"""docker-compose.yml: accepted by docker-compose, and hardened the way the deployment promises.

The file is checked as written (PyYAML, anchors and merge keys resolved) and as docker-compose
1.29 (Debian's, /usr/bin/docker-compose) reads it with the placeholders of .env.example. No
container is started: that needs a Docker daemon, which CI does not have.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKER_COMPOSE = "/usr/bin/docker-compose"

APP_SERVICES = ("api", "worker", "beat")
ROOT_USERS = {"root", "0", "0:0", "root:root"}
# ${VAR}, ${VAR:-default}, ${VAR:?message}; `$${...}` is an escaped dollar, not a reference.
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
WHOLE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:[:?\-][^}]*)?\}")
# Names that hold a secret: ...SECRET..., ...PASSWORD..., ...TOKEN..., ..._KEY, ..._KEY_ID.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|(?:^|_)KEY(?:_ID)?$")
URL_PASSWORD = re.compile(r"://[^/@\s]*:([^/@\s]*)@")
VERSIONED_TAG = re.compile(r"\d")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def env_example_names() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0].strip())
    return names


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(name): "" if value is None else str(value) for name, value in env.items()}


def docker_compose_binary() -> str:
    if Path(DOCKER_COMPOSE).exists():
        return DOCKER_COMPOSE
    if os.environ.get("CI") == "true":
        pytest.fail(f"{DOCKER_COMPOSE} is missing (make test installs Debian's docker-compose)")
    pytest.skip(f"{DOCKER_COMPOSE} is missing: apt-get install docker-compose, or run make test")


def test_docker_compose_accepts_the_file_with_the_example_env(tmp_path: Path) -> None:
    binary = docker_compose_binary()
    # Only the example's values: none of the caller's, and never a developer's own .env.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [
            binary,
            "--project-directory",
            str(REPO_ROOT),
            "--file",
            str(COMPOSE_FILE),
            "--env-file",
            str(ENV_EXAMPLE),
            "config",
            "-q",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    binary = docker_compose_binary()
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    result = subprocess.run(
        [binary, "--file", str(COMPOSE_FILE), "--env-file", str(empty_env), "config", "-q"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "set it in .env" in result.stderr


def test_every_service_has_a_healthcheck() -> None:
    missing = [
        name
        for name, service in services().items()
        if not service.get("healthcheck", {}).get("test") or service["healthcheck"].get("disable")
    ]
    assert missing == []


def test_every_service_runs_as_a_named_non_root_user() -> None:
    users = {name: str(service.get("user", "")) for name, service in services().items()}
    assert {name: user for name, user in users.items() if not user or user in ROOT_USERS} == {}


def test_every_service_is_locked_down() -> None:
    for name, service in services().items():
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("read_only") is True, name
        assert any(str(mount).startswith("/tmp") for mount in service.get("tmpfs", [])), name


def test_no_secret_is_written_into_the_file() -> None:
    literals = []
    for name, service in services().items():
        for variable, value in environment(service).items():
            if SECRET_NAME.search(variable) and not WHOLE_REFERENCE.fullmatch(value):
                literals.append(f"{name}.{variable}")
            for password in URL_PASSWORD.findall(value):
                if not WHOLE_REFERENCE.fullmatch(password):
                    literals.append(f"{name}.{variable} (password in a URL)")
    assert literals == []


def strings_in(node: Any) -> list[str]:
    """Every string value (and key) of a parsed YAML document; comments are not in it."""
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in strings_in(key) + strings_in(value)]
    if isinstance(node, list):
        return [text for item in node for text in strings_in(item)]
    return [node] if isinstance(node, str) else []


def test_every_variable_used_is_listed_in_env_example() -> None:
    used = {name for text in strings_in(compose()) for name in REFERENCE.findall(text)}
    assert used, "the file should take its secrets from .env"
    assert sorted(used - env_example_names()) == []


def test_env_example_holds_no_real_looking_secret() -> None:
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        if SECRET_NAME.search(name) and value:
            # A placeholder production refuses: shorter than the 32 characters it requires.
            assert len(value) < 32, name


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and bool(VERSIONED_TAG.search(tag))


def dockerfile_images(dockerfile: Path) -> list[str]:
    images = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            images.append(words[1])
    return images


def test_every_image_is_pinned_to_a_version() -> None:
    unpinned = []
    for name, service in services().items():
        build = service.get("build")
        if build:
            dockerfile = REPO_ROOT / build["context"] / build["dockerfile"]
            images = dockerfile_images(dockerfile)
            assert images, f"{dockerfile} has no FROM"
        else:
            images = [service["image"]]
        unpinned += [f"{name}: {image}" for image in images if not pinned(image)]
    assert unpinned == []


def test_the_pinning_check_refuses_floating_tags() -> None:
    assert not pinned("redis")
    assert not pinned("redis:latest")
    assert not pinned("redis:bookworm")
    assert not pinned("localhost:5000/redis")
    assert pinned("redis:7.4.6-bookworm")
    assert pinned("minio/minio:RELEASE.2025-09-07T16-13-09Z")


def test_app_services_start_after_the_migration_completed() -> None:
    for name in APP_SERVICES:
        depends = services()[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        for data_service in ("postgres", "redis", "kms"):
            assert depends[data_service] == {"condition": "service_healthy"}, name


def test_app_services_share_one_image_and_the_migration_runs_it() -> None:
    app = {name: services()[name] for name in (*APP_SERVICES, "migrate")}
    assert {service["build"]["dockerfile"] for service in app.values()} == {"infra/Dockerfile"}
    assert app["migrate"]["command"] == ["db", "upgrade"]
    assert environment(app["api"])["MEDVAULT_WEB_WORKERS"] == "4"
    assert environment(app["api"])["MEDVAULT_HOST"] == "0.0.0.0"
    assert environment(app["worker"])["MEDVAULT_MODE"] == "production"


def test_only_the_proxy_publishes_ports() -> None:
    published = {name for name, service in services().items() if service.get("ports")}
    assert published == {"proxy"}


def test_the_proxy_never_serves_metrics_outside() -> None:
    caddyfile = (REPO_ROOT / "infra" / "Caddyfile").read_text()
    assert re.search(r"@metrics path /metrics /metrics/\*", caddyfile)
    assert re.search(r"respond @metrics 404", caddyfile)
    assert "Strict-Transport-Security" in caddyfile


def test_the_image_runs_as_the_fixed_non_root_user() -> None:
    dockerfile = (REPO_ROOT / "infra" / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert users[-1:] == ["10001:10001"]
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile
    assert ".[dev" not in dockerfile


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", "tests", ".env"} <= ignored
