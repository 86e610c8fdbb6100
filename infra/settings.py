"""Every setting of medvault, read once from ``MEDVAULT_*`` environment variables (and ``.env``).

The README's settings table is checked against ``settings_reference()`` by a test, so each
field's default and ``description`` are the documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "MEDVAULT_"
MIN_SECRET_LENGTH = 32
MIB = 1024 * 1024
KIB = 1024

# Public on purpose: it exists so that `make run` works out of the box, and production refuses it.
DEVELOPMENT_SECRET_KEY = "INSECURE-development-only-secret-key-never-use-in-production"  # noqa: S105

SUPPORTED_DATABASES = ("sqlite", "postgresql")


class Settings(BaseSettings):
    """medvault's configuration. Defaults are the embedded development setup under ``./var``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        # A developer's .env may also hold MEDVAULT_TEST_* variables meant for the tests.
        extra="ignore",
    )

    mode: Literal["development", "production"] = Field(
        default="development",
        description="`development` or `production`; production refuses development secrets "
        "and the local keyring.",
    )
    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for everything the embedded setup keeps on disk.",
    )
    database_url: str = Field(
        default_factory=lambda data: f"sqlite:///{data['data_dir'] / 'medvault.db'}",
        description="SQLAlchemy URL of the database: `sqlite:///...` or `postgresql://...`.",
    )
    blob_store: Literal["local", "s3"] = Field(
        default="local",
        description="Where encrypted objects are stored: `local` folder or `s3` (or compatible).",
    )
    objects_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "objects",
        description="Folder of the `local` blob store.",
    )
    s3_bucket: str = Field(default="medvault", description="Bucket of the `s3` blob store.")
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible store (MinIO); unset means AWS S3.",
    )
    s3_region: str = Field(default="eu-central-1", description="Region of the `s3` blob store.")
    s3_part_size_mib: int = Field(
        default=8,
        ge=5,
        le=5 * 1024,
        description="Part size of S3 multipart uploads, in MiB (S3 allows 5 to 5120).",
    )
    key_provider: Literal["local", "kms"] = Field(
        default="local",
        description="Where root keys live: `local` keyring file (development) or `kms`.",
    )
    keyring_path: Path = Field(
        default_factory=lambda data: data["data_dir"] / "keys" / "keyring.json",
        description="File of the `local` keyring (kept 0600).",
    )
    kms_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of a KMS-compatible service; unset means AWS KMS.",
    )
    kms_region: str = Field(default="eu-central-1", description="Region of the `kms` provider.")
    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET_KEY),
        description="Secret for signing links and sessions, at least 32 characters. "
        "The default is for development only; production refuses it.",
    )
    spool_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "spool",
        description="Private folder (0700) for uploads being sanitised and the encrypted "
        "row spool of QA extract builds.",
    )
    max_document_mib: int = Field(
        default=512, ge=1, description="Largest document accepted, in MiB."
    )
    max_image_megapixels: int = Field(
        default=200, ge=1, description="Largest image accepted, in megapixels."
    )
    frame_size_kib: int = Field(
        default=1024, ge=1, description="Plaintext size of one encrypted frame, in KiB."
    )
    key_cache_size: int = Field(
        default=1024, ge=0, description="How many unwrapped case keys are kept in memory."
    )
    key_cache_ttl_seconds: int = Field(
        default=300, ge=0, description="How long an unwrapped key stays cached, in seconds."
    )
    pdf_memory_mib: int = Field(
        default=1024, ge=64, description="Memory limit of the PDF sanitiser process, in MiB."
    )
    pdf_cpu_seconds: int = Field(
        default=60, ge=1, description="CPU time limit of the PDF sanitiser process, in seconds."
    )
    pdf_wall_seconds: int = Field(
        default=120, ge=1, description="Wall-clock limit of the PDF sanitiser process, in seconds."
    )
    access_token_minutes: int = Field(
        default=15, ge=1, le=60, description="Lifetime of a bearer access token, in minutes."
    )
    refresh_token_hours: int = Field(
        default=12, ge=1, le=24 * 30, description="Lifetime of a refresh token, in hours."
    )
    organisation_name: str = Field(
        default="medvault",
        min_length=1,
        max_length=120,
        description="Who runs this service, as partners and patients see it on the pages.",
    )
    page_session_hours: int = Field(
        default=8,
        ge=1,
        le=24,
        description="Lifetime of a signed-in browser session (the pages' cookie), in hours.",
    )
    link_ttl_days: int = Field(
        default=7, ge=1, description="Default lifetime of a partner link, in days."
    )
    link_max_ttl_days: int = Field(
        default=30, ge=1, description="Longest lifetime a coordinator may give a partner link."
    )
    link_max_downloads: int = Field(
        default=5, ge=1, description="Default number of downloads a partner link allows."
    )
    link_code_attempts: int = Field(
        default=5, ge=1, description="Wrong access codes after which a partner link locks."
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Address partners and patients reach the service at (used in links and mail).",
    )
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for notifications; unset writes them to the outbox folder.",
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_starttls: bool = Field(default=True, description="Use STARTTLS with the SMTP server.")
    smtp_username: str | None = Field(default=None, description="SMTP login, if it needs one.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_sender: str = Field(
        default="medvault@localhost", description="From address of notifications."
    )
    outbox_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "outbox",
        description="Folder notifications are written to when no SMTP server is set.",
    )
    access_log_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "logs",
        description="Folder of the daily JSON access logs (anonymised addresses).",
    )
    metrics_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "metrics",
        description="Private folder (0700) where the processes of `medvault serve` and "
        "`medvault worker` keep their Prometheus counters (one subfolder each, emptied when "
        "they start).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that `GET /metrics` requires; unset, `/metrics` answers 404.",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port on which `medvault worker` serves its Prometheus metrics (on `host`); "
        "0 serves none.",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For/-Proto headers `medvault serve` trusts.",
    )
    broker_url: str = Field(
        default_factory=lambda data: f"sqla+sqlite:///{data['data_dir'] / 'broker.db'}",
        description="Celery broker: `redis://...` or `amqp://...` in production; the default "
        "is a SQLite file, no service needed.",
    )
    result_backend: str = Field(
        default_factory=lambda data: f"db+sqlite:///{data['data_dir'] / 'results.db'}",
        description="Celery result backend (`redis://...`, or `db+` and a database URL).",
    )
    retention_years: int = Field(
        default=5, ge=1, description="Years after treatment completion until a case is shredded."
    )
    backup_window_days: int = Field(
        default=35,
        ge=1,
        description="Days database backups are kept; retired root keys are destroyed after it.",
    )
    root_key_rotation_days: int = Field(
        default=90, ge=1, description="Age at which the active root key is rotated, in days."
    )
    extract_k: int = Field(
        default=5, ge=2, description="k of the k-anonymity every QA extract must reach."
    )
    extract_retention_days: int = Field(
        default=90, ge=1, description="Days a QA extract is kept before it is shredded."
    )
    access_log_retention_days: int = Field(
        default=396, ge=1, description="Days access-log files are kept (13 months)."
    )
    export_retention_days: int = Field(
        default=3,
        ge=1,
        description="Days a data-subject export (Art. 15/20) is kept before it is deleted.",
    )
    export_link_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description="Minutes a signed download link of a data-subject export stays valid.",
    )
    rights_due_soon_days: int = Field(
        default=7,
        ge=0,
        description="A request due within this many days is listed as close to its due date.",
    )
    worker_concurrency: int = Field(
        default=2, ge=1, description="Tasks one `medvault worker` runs at the same time."
    )
    task_queue: str = Field(
        default="medvault",
        min_length=1,
        description="Celery queue the API sends to and the workers consume; installations "
        "sharing one broker each need their own.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address `medvault serve` (and the worker's metrics endpoint) listens on.",
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port `medvault serve` uses.")
    web_workers: int = Field(
        default=1,
        ge=1,
        description="Processes `medvault serve` runs (uvicorn's own workers); the API keeps no "
        "state of its own, so any number share one database, broker and store.",
    )

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError:
            raise ValueError("not a database URL") from None
        if backend not in SUPPORTED_DATABASES and backend != "postgres":
            raise ValueError(f"unsupported database {backend!r}; use sqlite or postgresql")
        return url

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        # `MEDVAULT_METRICS_TOKEN=` in an env file means "no metrics endpoint", not "no token".
        return None if value == "" else value

    @model_validator(mode="after")
    def _production_is_safe(self) -> Self:
        if self.mode != "production":
            return self
        secret = self.secret_key.get_secret_value()
        if secret == DEVELOPMENT_SECRET_KEY:
            raise ValueError(
                f"{ENV_PREFIX}SECRET_KEY: production mode refuses the development secret key"
            )
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"{ENV_PREFIX}SECRET_KEY: production mode needs a secret key of at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        token = self.metrics_token
        if token is not None and len(token.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"{ENV_PREFIX}METRICS_TOKEN: production mode needs a metrics token of at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        if self.key_provider == "local":
            raise ValueError(
                f"{ENV_PREFIX}KEY_PROVIDER: production mode refuses the local keyring; use kms"
            )
        return self

    @property
    def max_document_bytes(self) -> int:
        return self.max_document_mib * MIB

    @property
    def max_image_pixels(self) -> int:
        return self.max_image_megapixels * 1_000_000

    @property
    def frame_size(self) -> int:
        return self.frame_size_kib * KIB

    @property
    def s3_part_size(self) -> int:
        return self.s3_part_size_mib * MIB

    @property
    def pdf_memory_bytes(self) -> int:
        return self.pdf_memory_mib * MIB


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"{ENV_PREFIX}{field.upper()}"


def describe_settings_error(error: ValidationError) -> str:
    """One line naming the offending setting; never echoes the value (it may be a secret)."""
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["loc"]:
        message = f"{env_name(str(first['loc'][0]))}: {message}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s))"
    return message


@dataclass(frozen=True)
class SettingDoc:
    name: str
    env: str
    default: str
    literal: bool  # the default is a value to type, not a phrase describing it
    description: str


def settings_reference() -> list[SettingDoc]:
    """Every setting with its variable, default and description, as the README documents them."""
    placeholders: dict[str, Any] = {"data_dir": Path("<data_dir>")}
    rows = []
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default: Any = field.default_factory(placeholders)  # type: ignore[call-arg]
        else:
            default = field.default
        if isinstance(default, SecretStr):
            shown, literal = "a development-only value", False
        elif default is None:
            shown, literal = "unset", False
        else:
            shown, literal = str(default), True
        rows.append(SettingDoc(name, env_name(name), shown, literal, field.description or ""))
    return rows


def settings_table_markdown() -> str:
    """The README's settings table, generated from the fields (see tests/unit/infra)."""
    lines = [
        "| setting | environment variable | default | description |",
        "| --- | --- | --- | --- |",
    ]
    for row in settings_reference():
        default = f"`{row.default}`" if row.literal else row.default
        lines.append(f"| `{row.name}` | `{row.env}` | {default} | {row.description} |")
    return "\n".join(lines)
