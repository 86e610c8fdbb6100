"""A production-like installation whose four dependencies are each reached through a FaultProxy.

`medvault serve` and `medvault worker` get settings that point at the proxies (``env``); setup
commands and the final checks use the same settings pointed straight at the services
(``direct_env``), so they see the truth whatever the proxies do. As in
tests/e2e/test_production_like.py: production mode, PostgreSQL, Redis as broker and result
backend, S3 and KMS on a moto server; here the S3 part size is S3's smallest (5 MiB) so that
documents of a few MiB go up as multipart uploads.
"""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.engine import make_url

from tests.conftest import free_port
from tests.e2e.service import medvault, medvault_running
from tests.faultproxy import FaultProxy
from tests.workers.conftest import WorkerProcess

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

DATABASE, BROKER, OBJECT_STORE, KEY_PROVIDER = "database", "broker", "object_store", "key_provider"
DEPENDENCIES = (DATABASE, BROKER, OBJECT_STORE, KEY_PROVIDER)
PART_SIZE_MIB = 5
REGION: Final = "eu-central-1"
STOP_SECONDS = 30


@dataclass
class Installation:
    env: dict[str, str]  # what serve and worker run with: every dependency through its proxy
    direct_env: dict[str, str]  # the same installation, straight to the services
    proxies: dict[str, FaultProxy]  # by dependency name
    bucket: str
    moto_url: str
    base_url: str
    api: subprocess.Popen[bytes]
    worker: WorkerProcess
    api_log: Path

    @property
    def data_dir(self) -> Path:
        return Path(self.env["MEDVAULT_DATA_DIR"])

    def process_ids(self) -> tuple[int, int]:
        return self.api.pid, self.worker.pid

    def processes_alive(self) -> bool:
        return self.api.poll() is None and _alive(self.worker.pid)

    def api_log_lines(self, needle: str) -> list[str]:
        text = self.api_log.read_text(errors="replace")
        return [line for line in text.splitlines() if needle in line]


def _through(url: str, proxy: FaultProxy) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _proxy_for(url: str) -> FaultProxy:
    parts = urlsplit(url)
    return FaultProxy(parts.hostname or "127.0.0.1", parts.port or 80).start()


@contextmanager
def running_installation(
    folder: Path, *, postgres_url: str, redis_url: str, moto_url: str
) -> Iterator[Installation]:
    """Proxies, a migrated database, `medvault serve` and `medvault worker`; all stopped after."""
    bucket = f"medvault-faults-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    port = free_port()
    common = {
        "MEDVAULT_MODE": "production",
        "MEDVAULT_SECRET_KEY": secrets.token_hex(32),
        "MEDVAULT_DATA_DIR": str(folder / "var"),
        "MEDVAULT_BLOB_STORE": "s3",
        "MEDVAULT_S3_BUCKET": bucket,
        "MEDVAULT_S3_PART_SIZE_MIB": str(PART_SIZE_MIB),
        "MEDVAULT_KEY_PROVIDER": "kms",
        "MEDVAULT_TASK_QUEUE": f"medvault-faults-{uuid.uuid4().hex}",
        "MEDVAULT_WORKER_CONCURRENCY": "2",
        # Unwrapped case keys are cached for 5 minutes by default, which would hide the key
        # service from all but the first request of each case: ask it (nearly) every time.
        "MEDVAULT_KEY_CACHE_TTL_SECONDS": "1",
        "MEDVAULT_PORT": str(port),
        "MEDVAULT_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    database_url = make_url(postgres_url).render_as_string(hide_password=False)
    direct_env = common | {
        "MEDVAULT_DATABASE_URL": database_url,
        "MEDVAULT_BROKER_URL": redis_url,
        "MEDVAULT_RESULT_BACKEND": redis_url,
        "MEDVAULT_S3_ENDPOINT_URL": moto_url,
        "MEDVAULT_KMS_ENDPOINT_URL": moto_url,
    }
    with ExitStack() as stack:
        stack.callback(_remove_bucket, s3, bucket)  # last: moto holds every object in memory
        proxies = {
            DATABASE: _proxy_for(database_url),
            BROKER: _proxy_for(redis_url),
            OBJECT_STORE: _proxy_for(moto_url),
            KEY_PROVIDER: _proxy_for(moto_url),
        }
        for proxy in proxies.values():
            stack.callback(proxy.stop)
        database = make_url(database_url).set(host="127.0.0.1", port=proxies[DATABASE].port)
        env = common | {
            "MEDVAULT_DATABASE_URL": database.render_as_string(hide_password=False),
            "MEDVAULT_BROKER_URL": _through(redis_url, proxies[BROKER]),
            "MEDVAULT_RESULT_BACKEND": _through(redis_url, proxies[BROKER]),
            "MEDVAULT_S3_ENDPOINT_URL": proxies[OBJECT_STORE].url,
            "MEDVAULT_KMS_ENDPOINT_URL": proxies[KEY_PROVIDER].url,
        }
        medvault("db", "upgrade", env=direct_env)
        api_log = folder / "api.log"
        # The worker boots while the API does (each takes seconds).
        with ThreadPoolExecutor(max_workers=1) as starting:
            booting = starting.submit(WorkerProcess, env, folder / "worker.log")
            api = stack.enter_context(
                medvault_running(
                    "serve", env=env, log_path=api_log, port=port, stop_seconds=STOP_SECONDS
                )
            )
            worker = booting.result()
        stack.callback(worker.stop)
        yield Installation(
            env=env,
            direct_env=direct_env,
            proxies=proxies,
            bucket=bucket,
            moto_url=moto_url,
            base_url=f"http://127.0.0.1:{port}",
            api=api,
            worker=worker,
            api_log=api_log,
        )


def _remove_bucket(s3: S3Client, bucket: str) -> None:
    """Every version, every open upload, then the bucket, best effort (it checks nothing): a
    long run leaves moto holding gigabytes, which it would still be freeing when the session's
    moto server is stopped. Listing again until empty: deleting while paging skips some."""
    with suppress(BotoCoreError, ClientError):
        for _ in range(20):
            listed = s3.list_object_versions(Bucket=bucket)
            stored = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
            if not stored:
                break
            versions: list[ObjectIdentifierTypeDef] = [
                {"Key": v["Key"], "VersionId": v["VersionId"]} for v in stored[:1000]
            ]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": versions, "Quiet": True})
        for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        s3.delete_bucket(Bucket=bucket)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
