"""One contract for every RootKeyProvider: the local keyring file, and AWS KMS on a moto server.

moto speaks KMS over real HTTP here. It does not refuse a disabled or pending-deletion key on
its own; AwsKmsProvider checks the key state itself, which is what the destroy cases exercise.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from keys.errors import KeyDestroyed, KeyUnwrapFailed, KmsUnavailable
from keys.interfaces import RootKeyProvider
from keys.kms import AwsKmsProvider
from keys.local import LocalKeyringProvider

REGION = "eu-central-1"
KEY = bytes(range(32))


def make_local(tmp_path: Path) -> RootKeyProvider:
    return LocalKeyringProvider(tmp_path / "keys" / "keyring.json")


def make_kms(request: pytest.FixtureRequest) -> RootKeyProvider:
    return AwsKmsProvider(endpoint_url=request.getfixturevalue("moto_url"), region=REGION)


@pytest.fixture(params=["local", pytest.param("kms", marks=pytest.mark.moto)])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> RootKeyProvider:
    return make_local(tmp_path) if request.param == "local" else make_kms(request)


def owner() -> str:
    return f"case:{uuid.uuid4()}"


def test_wrap_unwrap_round_trip(provider: RootKeyProvider) -> None:
    root_key_id = provider.create_root_key(description="contract test")
    bound_to = owner()

    wrapped = provider.wrap(root_key_id=root_key_id, key=KEY, owner=bound_to)

    assert KEY not in wrapped
    assert provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=bound_to) == KEY


def test_each_root_key_is_new(provider: RootKeyProvider) -> None:
    first = provider.create_root_key(description="contract test")
    second = provider.create_root_key(description="contract test")

    assert first != second


def test_wrapped_key_is_bound_to_its_owner(provider: RootKeyProvider) -> None:
    root_key_id = provider.create_root_key(description="contract test")
    wrapped = provider.wrap(root_key_id=root_key_id, key=KEY, owner=owner())

    with pytest.raises(KeyUnwrapFailed):
        provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=owner())


def test_tampered_wrapped_key_fails(provider: RootKeyProvider) -> None:
    root_key_id = provider.create_root_key(description="contract test")
    bound_to = owner()
    wrapped = bytearray(provider.wrap(root_key_id=root_key_id, key=KEY, owner=bound_to))
    wrapped[-1] ^= 0x01

    with pytest.raises(KeyUnwrapFailed):
        provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=bytes(wrapped), owner=bound_to)


def test_destroyed_root_key_unwraps_nothing_and_wraps_nothing(
    provider: RootKeyProvider,
) -> None:
    root_key_id = provider.create_root_key(description="contract test")
    kept = provider.create_root_key(description="contract test")
    bound_to = owner()
    wrapped = provider.wrap(root_key_id=root_key_id, key=KEY, owner=bound_to)
    wrapped_under_kept = provider.wrap(root_key_id=kept, key=KEY, owner=bound_to)

    provider.destroy_root_key(root_key_id)

    with pytest.raises(KeyDestroyed):
        provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=bound_to)
    with pytest.raises(KeyDestroyed):
        provider.wrap(root_key_id=root_key_id, key=KEY, owner=bound_to)
    assert (
        provider.unsafe_unwrap(root_key_id=kept, wrapped=wrapped_under_kept, owner=bound_to) == KEY
    )


def test_destroy_is_idempotent(provider: RootKeyProvider) -> None:
    root_key_id = provider.create_root_key(description="contract test")
    bound_to = owner()
    wrapped = provider.wrap(root_key_id=root_key_id, key=KEY, owner=bound_to)

    provider.destroy_root_key(root_key_id)
    provider.destroy_root_key(root_key_id)

    with pytest.raises(KeyDestroyed):
        provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=bound_to)


def test_check_answers(provider: RootKeyProvider) -> None:
    provider.check()


@pytest.mark.moto
def test_kms_destroy_disables_and_schedules_deletion(moto_url: str) -> None:
    import boto3

    provider = AwsKmsProvider(endpoint_url=moto_url, region=REGION)
    root_key_id = provider.create_root_key(description="contract test")

    provider.destroy_root_key(root_key_id)

    kms = boto3.client("kms", endpoint_url=moto_url, region_name=REGION)
    metadata = kms.describe_key(KeyId=root_key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingDeletion"
    assert metadata["Enabled"] is False
    assert "DeletionDate" in metadata


@pytest.mark.moto
def test_kms_destroy_of_an_unknown_key_is_harmless(moto_url: str) -> None:
    provider = AwsKmsProvider(endpoint_url=moto_url, region=REGION)

    provider.destroy_root_key(f"arn:aws:kms:{REGION}:123456789012:key/{uuid.uuid4()}")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.moto
@pytest.mark.timeout(60)  # a hang guard only: the client's own timeouts answer in seconds
@pytest.mark.parametrize("operation", ["wrap", "unwrap", "check", "create", "destroy"])
def test_kms_unreachable_is_unavailable(operation: str, moto_url: str) -> None:
    # Wrapped by the running moto, so the failure can only come from the transport.
    working = AwsKmsProvider(endpoint_url=moto_url, region=REGION)
    root_key_id = working.create_root_key(description="contract test")
    bound_to = owner()
    wrapped = working.wrap(root_key_id=root_key_id, key=KEY, owner=bound_to)
    unreachable = AwsKmsProvider(endpoint_url=f"http://127.0.0.1:{closed_port()}", region=REGION)
    calls: dict[str, Callable[[], object]] = {
        "wrap": lambda: unreachable.wrap(root_key_id=root_key_id, key=KEY, owner=bound_to),
        "unwrap": lambda: unreachable.unsafe_unwrap(
            root_key_id=root_key_id, wrapped=wrapped, owner=bound_to
        ),
        "check": unreachable.check,
        "create": lambda: unreachable.create_root_key(description="contract test"),
        "destroy": lambda: unreachable.destroy_root_key(root_key_id),
    }

    with pytest.raises(KmsUnavailable) as caught:
        calls[operation]()

    assert "127.0.0.1" not in str(caught.value)  # no endpoint or vendor text
    assert caught.value.__suppress_context__
    # And nothing happened to the key: it still works through the running KMS.
    assert working.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=bound_to) == KEY
