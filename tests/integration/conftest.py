"""Fixtures of the integration tests: every store (see stores.py), and the environment a `medvault`
command runs with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.stores import REGION, Backend, local_backend, s3_backend
from vault.storage.s3 import make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture(scope="module")
def s3_client(moto_url: str) -> S3Client:
    """One client for the module: building one costs more than most of these tests."""
    with pytest.MonkeyPatch.context() as patch:  # set before conftest's per-test credentials
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        return make_s3_client(endpoint_url=moto_url, region=REGION)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.moto)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh store: a tmp_path folder, or a new versioned bucket on the moto server."""
    if request.param == "local":
        return local_backend(tmp_path / "store")
    return s3_backend(request.getfixturevalue("moto_url"), request.getfixturevalue("s3_client"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    """The caller's environment without any MEDVAULT_* setting, data under a temp folder."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MEDVAULT_")}
    clean["MEDVAULT_DATA_DIR"] = str(data_dir)
    return clean
