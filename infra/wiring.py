"""The one place that turns settings into running parts: database, blob store, keys, limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from infra.db import make_engine, session_factory
from infra.notify import build_notifier
from infra.settings import Settings
from infra.tasks import CeleryTaskQueue, TaskQueue
from keys.errors import KeysError
from keys.interfaces import RootKeyProvider
from keys.kms import AwsKmsProvider
from keys.local import LocalKeyringProvider
from keys.store import KeyStore
from vault.crypto.primitives import hkdf_sha256
from vault.errors import StorageUnavailable
from vault.intake import IntakeLimits
from vault.notifications.interfaces import Notifier
from vault.storage.interfaces import BlobStore
from vault.storage.local import LocalFolderBlobStore
from vault.storage.s3 import S3BlobStore

PRIVATE_DIR_MODE = 0o700


@dataclass(frozen=True, repr=False)
class ServiceSecrets:
    """Keys derived from the one configured secret, each for one purpose (HKDF labels)."""

    login_lookup_key: bytes  # HMAC key: logins are stored only as their digest under it
    audit_signing_key: bytes  # HMAC key of the signed audit checkpoints
    export_link_key: bytes  # HMAC key of the signed download links of data-subject exports
    csrf_key: bytes  # HMAC key binding the pages' form tokens to their browser and session

    def __repr__(self) -> str:
        return "ServiceSecrets(<redacted>)"


def derive_secrets(settings: Settings) -> ServiceSecrets:
    secret = settings.secret_key.get_secret_value().encode()

    def derive(label: bytes) -> bytes:
        return hkdf_sha256(secret, salt=b"medvault", info=label, length=32)

    return ServiceSecrets(
        login_lookup_key=derive(b"medvault login lookup v1"),
        audit_signing_key=derive(b"medvault audit checkpoint v1"),
        export_link_key=derive(b"medvault export link v1"),
        csrf_key=derive(b"medvault page csrf v1"),
    )


@dataclass(frozen=True)
class Runtime:
    """Everything a request handler, task or command needs, built once from the settings."""

    engine: sa.Engine
    sessions: sessionmaker[Session]
    blob_store: BlobStore
    root_keys: RootKeyProvider
    key_store: KeyStore
    intake_limits: IntakeLimits
    spool_dir: Path
    frame_size: int
    settings: Settings
    secrets: ServiceSecrets
    notifier: Notifier
    tasks: TaskQueue

    def close(self) -> None:
        self.tasks.close()
        self.engine.dispose()


def build_runtime(settings: Settings) -> Runtime:
    engine = make_engine(settings.database_url)
    root_keys = _root_key_provider(settings)
    return Runtime(
        engine=engine,
        sessions=session_factory(engine),
        blob_store=_blob_store(settings),
        root_keys=root_keys,
        key_store=KeyStore(
            provider=root_keys,
            cache_size=settings.key_cache_size,
            cache_ttl_seconds=settings.key_cache_ttl_seconds,
        ),
        intake_limits=IntakeLimits(
            max_bytes=settings.max_document_bytes,
            max_image_pixels=settings.max_image_pixels,
            pdf_memory_bytes=settings.pdf_memory_bytes,
            pdf_cpu_seconds=settings.pdf_cpu_seconds,
            pdf_wall_seconds=settings.pdf_wall_seconds,
        ),
        spool_dir=_private_dir(settings.spool_dir),
        frame_size=settings.frame_size,
        settings=settings,
        secrets=derive_secrets(settings),
        notifier=build_notifier(settings),
        tasks=CeleryTaskQueue(settings),
    )


def readiness(runtime: Runtime) -> dict[str, bool]:
    """Whether each backing service answers: database, blob store, key provider."""
    return {
        "database": _database_answers(runtime.engine),
        "blob_store": _blob_store_answers(runtime.blob_store),
        "key_provider": _key_provider_answers(runtime.root_keys),
    }


def _blob_store(settings: Settings) -> BlobStore:
    if settings.blob_store == "s3":
        return S3BlobStore(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            part_size=settings.s3_part_size,
        )
    return LocalFolderBlobStore(_private_dir(settings.objects_dir))


def _root_key_provider(settings: Settings) -> RootKeyProvider:
    if settings.key_provider == "kms":
        return AwsKmsProvider(endpoint_url=settings.kms_endpoint_url, region=settings.kms_region)
    return LocalKeyringProvider(settings.keyring_path)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for an existing folder.
    path.chmod(PRIVATE_DIR_MODE)
    return path


def _database_answers(engine: sa.Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError:
        return False
    return True


def _blob_store_answers(store: BlobStore) -> bool:
    try:
        store.check()
    except StorageUnavailable:
        return False
    return True


def _key_provider_answers(provider: RootKeyProvider) -> bool:
    try:
        provider.check()
    except KeysError:  # KmsUnavailable, or a local keyring that is unsafe or unreadable
        return False
    return True
