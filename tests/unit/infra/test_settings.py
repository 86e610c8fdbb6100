"""Settings: defaults, environment and .env overrides, production refusals, the README table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from infra.settings import (
    DEVELOPMENT_SECRET_KEY,
    Settings,
    describe_settings_error,
    env_name,
    settings_reference,
    settings_table_markdown,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
STRONG_SECRET = "s" * 40


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MEDVAULT_* setting from the caller's environment, and no .env in the working dir."""
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    monkeypatch.chdir(tmp_path)


def refusal(**env: str) -> str:
    """The one-line reason Settings() gives for the environment ``env``."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        with pytest.raises(ValidationError) as caught:
            Settings()
    return describe_settings_error(caught.value)


def test_defaults_are_the_embedded_development_setup() -> None:
    settings = Settings()
    assert settings.mode == "development"
    assert settings.data_dir == Path("var")
    assert settings.database_url == "sqlite:///var/medvault.db"
    assert settings.blob_store == "local"
    assert settings.objects_dir == Path("var/objects")
    assert settings.key_provider == "local"
    assert settings.keyring_path == Path("var/keys/keyring.json")
    assert settings.spool_dir == Path("var/spool")
    assert settings.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY
    assert (settings.s3_bucket, settings.s3_endpoint_url, settings.s3_region) == (
        "medvault",
        None,
        "eu-central-1",
    )
    assert (settings.kms_endpoint_url, settings.kms_region) == (None, "eu-central-1")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.max_document_bytes == 512 * 1024 * 1024
    assert settings.max_image_pixels == 200_000_000
    assert settings.frame_size == 1024 * 1024
    assert settings.s3_part_size == 8 * 1024 * 1024
    assert settings.pdf_memory_bytes == 1024 * 1024 * 1024
    assert (settings.pdf_cpu_seconds, settings.pdf_wall_seconds) == (60, 120)
    assert (settings.key_cache_size, settings.key_cache_ttl_seconds) == (1024, 300)


def test_paths_follow_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDVAULT_DATA_DIR", "/srv/medvault")
    settings = Settings()
    assert settings.database_url == "sqlite:////srv/medvault/medvault.db"
    assert settings.objects_dir == Path("/srv/medvault/objects")
    assert settings.keyring_path == Path("/srv/medvault/keys/keyring.json")
    assert settings.spool_dir == Path("/srv/medvault/spool")


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDVAULT_PORT", "9001")
    monkeypatch.setenv("MEDVAULT_BLOB_STORE", "s3")
    monkeypatch.setenv("MEDVAULT_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("MEDVAULT_DATABASE_URL", "postgresql://medvault@db/medvault")
    monkeypatch.setenv("MEDVAULT_OBJECTS_DIR", "/data/objects")
    settings = Settings()
    assert settings.port == 9001
    assert settings.blob_store == "s3"
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
    assert settings.database_url == "postgresql://medvault@db/medvault"
    assert settings.objects_dir == Path("/data/objects")


def test_dotenv_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "MEDVAULT_PORT=9100\nMEDVAULT_HOST=0.0.0.0\nMEDVAULT_TEST_POSTGRES_URL=ignored\n"
    )
    monkeypatch.setenv("MEDVAULT_HOST", "127.0.0.2")
    settings = Settings()
    assert settings.port == 9100
    assert settings.host == "127.0.0.2"


def test_production_with_a_strong_secret_and_kms_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDVAULT_MODE", "production")
    monkeypatch.setenv("MEDVAULT_SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("MEDVAULT_KEY_PROVIDER", "kms")
    assert Settings().mode == "production"


@pytest.mark.parametrize(
    ("env", "setting", "reason"),
    [
        pytest.param(
            {"MEDVAULT_KEY_PROVIDER": "kms"},
            "MEDVAULT_SECRET_KEY",
            "development secret",
            id="development-secret",
        ),
        pytest.param(
            {"MEDVAULT_KEY_PROVIDER": "kms", "MEDVAULT_SECRET_KEY": "x" * 31},
            "MEDVAULT_SECRET_KEY",
            "at least 32 characters",
            id="short-secret",
        ),
        pytest.param(
            {"MEDVAULT_SECRET_KEY": STRONG_SECRET},
            "MEDVAULT_KEY_PROVIDER",
            "local keyring",
            id="local-keyring",
        ),
    ],
)
def test_production_refuses_unsafe_settings_with_a_one_line_reason(
    env: dict[str, str], setting: str, reason: str
) -> None:
    message = refusal(MEDVAULT_MODE="production", **env)
    assert message.startswith(f"{setting}: ")
    assert reason in message
    assert "\n" not in message


def test_a_refusal_never_echoes_the_secret() -> None:
    secret = "hunter2-but-longer"
    message = refusal(MEDVAULT_MODE="production", MEDVAULT_SECRET_KEY=secret)
    assert message.startswith("MEDVAULT_SECRET_KEY: ")
    assert secret not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEDVAULT_PORT", "0"),
        ("MEDVAULT_PORT", "eighty"),
        ("MEDVAULT_MODE", "staging"),
        ("MEDVAULT_BLOB_STORE", "ftp"),
        ("MEDVAULT_S3_PART_SIZE_MIB", "4"),
        ("MEDVAULT_DATABASE_URL", "mysql://root@localhost/medvault"),
        ("MEDVAULT_DATABASE_URL", "not a url"),
    ],
)
def test_an_invalid_value_is_refused_naming_its_variable(name: str, value: str) -> None:
    message = refusal(**{name: value})
    assert message.startswith(f"{name}: ")
    assert "\n" not in message


def test_every_setting_has_a_default_and_a_description() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert field.default is not PydanticUndefined or field.default_factory is not None, name


def test_readme_settings_table_lists_every_setting_as_the_code_defines_it() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `\w+` \| `(MEDVAULT_\w+)` \|", readme, flags=re.MULTILINE))
    assert documented == {row.env for row in settings_reference()}
    # Defaults and descriptions too: regenerate with infra.settings.settings_table_markdown().
    assert settings_table_markdown() in readme
