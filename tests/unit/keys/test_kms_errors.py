"""AwsKmsProvider's translation of KMS errors, with botocore's Stubber (no network).

The error codes are those of the real AWS KMS API; moto does not produce most of them (it
does not refuse disabled or pending-deletion keys), so they are checked here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from keys.errors import KeyDestroyed, KeysError, KeyUnwrapFailed, KmsUnavailable
from keys.kms import AwsKmsProvider

KEY_ARN = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
OWNER = "case:6f1c2d3e-0000-4000-8000-000000000001"
CONTEXT = {"medvault:owner": OWNER}
# A vendor message that must never reach our error text.
VENDOR_TEXT = f"{KEY_ARN} with context medvault:owner={OWNER} is secret detail"


@pytest.fixture
def stubbed() -> Iterator[tuple[AwsKmsProvider, Stubber]]:
    # Never contacted: the Stubber answers every call, and fails on an unexpected one.
    client = boto3.client("kms", region_name="eu-central-1", endpoint_url="http://127.0.0.1:9")
    with Stubber(client) as stubber:
        yield AwsKmsProvider(endpoint_url=None, region="eu-central-1", client=client), stubber
        stubber.assert_no_pending_responses()


def described(state: str) -> dict[str, Any]:
    return {"KeyMetadata": {"KeyId": KEY_ID, "Arn": KEY_ARN, "KeyState": state}}


def add_error(stubber: Stubber, method: str, code: str, status: int = 400) -> None:
    stubber.add_client_error(
        method, service_error_code=code, service_message=VENDOR_TEXT, http_status_code=status
    )


def assert_opaque(error: BaseException) -> None:
    assert KEY_ARN not in str(error)
    assert OWNER not in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_wrap_and_unwrap_send_the_owner_as_encryption_context(
    stubbed: tuple[AwsKmsProvider, Stubber],
) -> None:
    provider, stubber = stubbed
    stubber.add_response("describe_key", described("Enabled"), {"KeyId": KEY_ARN})
    stubber.add_response(
        "encrypt",
        {"CiphertextBlob": b"sealed", "KeyId": KEY_ARN},
        {"KeyId": KEY_ARN, "Plaintext": b"k" * 32, "EncryptionContext": CONTEXT},
    )
    stubber.add_response("describe_key", described("Enabled"), {"KeyId": KEY_ARN})
    stubber.add_response(
        "decrypt",
        {"Plaintext": b"k" * 32, "KeyId": KEY_ARN},
        {"KeyId": KEY_ARN, "CiphertextBlob": b"sealed", "EncryptionContext": CONTEXT},
    )

    assert provider.wrap(root_key_id=KEY_ARN, key=b"k" * 32, owner=OWNER) == b"sealed"
    assert provider.unsafe_unwrap(root_key_id=KEY_ARN, wrapped=b"sealed", owner=OWNER) == b"k" * 32


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, KmsUnavailable),
        ("KMSInternalException", 500, KmsUnavailable),
        ("DependencyTimeoutException", 503, KmsUnavailable),
        ("KeyUnavailableException", 500, KmsUnavailable),
        ("SomethingNewAndBroken", 502, KmsUnavailable),
        ("DisabledException", 400, KeyDestroyed),
        ("NotFoundException", 400, KeyDestroyed),
        ("InvalidCiphertextException", 400, KeyUnwrapFailed),
        ("IncorrectKeyException", 400, KeyUnwrapFailed),
    ],
)
def test_decrypt_errors_are_translated(
    stubbed: tuple[AwsKmsProvider, Stubber], code: str, status: int, expected: type[KeysError]
) -> None:
    provider, stubber = stubbed
    stubber.add_response("describe_key", described("Enabled"))
    add_error(stubber, "decrypt", code, status)

    with pytest.raises(expected) as caught:
        provider.unsafe_unwrap(root_key_id=KEY_ARN, wrapped=b"sealed", owner=OWNER)

    assert_opaque(caught.value)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ThrottlingException", KmsUnavailable),
        ("DisabledException", KeyDestroyed),
        ("NotFoundException", KeyDestroyed),
    ],
)
def test_encrypt_errors_are_translated(
    stubbed: tuple[AwsKmsProvider, Stubber], code: str, expected: type[KeysError]
) -> None:
    provider, stubber = stubbed
    stubber.add_response("describe_key", described("Enabled"))
    add_error(stubber, "encrypt", code)

    with pytest.raises(expected) as caught:
        provider.wrap(root_key_id=KEY_ARN, key=b"k" * 32, owner=OWNER)

    assert_opaque(caught.value)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("PendingDeletion", KeyDestroyed),
        ("Disabled", KeyDestroyed),
        ("Unavailable", KmsUnavailable),  # a custom key store offline: not a shredded key
    ],
)
def test_invalid_state_looks_at_the_key_state(
    stubbed: tuple[AwsKmsProvider, Stubber], state: str, expected: type[KeysError]
) -> None:
    provider, stubber = stubbed
    stubber.add_response("describe_key", described("Enabled"))
    add_error(stubber, "decrypt", "KMSInvalidStateException")
    stubber.add_response("describe_key", described(state))

    with pytest.raises(expected):
        provider.unsafe_unwrap(root_key_id=KEY_ARN, wrapped=b"sealed", owner=OWNER)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("PendingDeletion", KeyDestroyed),
        ("Disabled", KeyDestroyed),
        ("PendingImport", KmsUnavailable),
    ],
)
def test_state_is_checked_before_use(
    stubbed: tuple[AwsKmsProvider, Stubber], state: str, expected: type[KeysError]
) -> None:
    provider, stubber = stubbed
    stubber.add_response("describe_key", described(state))  # no decrypt call follows

    with pytest.raises(expected):
        provider.unsafe_unwrap(root_key_id=KEY_ARN, wrapped=b"sealed", owner=OWNER)


def test_unknown_errors_are_re_raised(stubbed: tuple[AwsKmsProvider, Stubber]) -> None:
    provider, stubber = stubbed
    stubber.add_response("describe_key", described("Enabled"))
    add_error(stubber, "decrypt", "AccessDeniedException")

    with pytest.raises(ClientError) as caught:
        provider.unsafe_unwrap(root_key_id=KEY_ARN, wrapped=b"sealed", owner=OWNER)

    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"


def test_destroy_disables_then_schedules_the_shortest_deletion(
    stubbed: tuple[AwsKmsProvider, Stubber],
) -> None:
    provider, stubber = stubbed
    stubber.add_response("describe_key", described("Enabled"), {"KeyId": KEY_ARN})
    stubber.add_response("disable_key", {}, {"KeyId": KEY_ID})
    stubber.add_response(
        "schedule_key_deletion",
        {"KeyId": KEY_ARN, "KeyState": "PendingDeletion", "PendingWindowInDays": 7},
        {"KeyId": KEY_ID, "PendingWindowInDays": 7},
    )

    provider.destroy_root_key(KEY_ARN)


@pytest.mark.parametrize("state", ["PendingDeletion", "PendingReplicaDeletion"])
def test_destroy_of_a_key_pending_deletion_is_a_no_op(
    stubbed: tuple[AwsKmsProvider, Stubber], state: str
) -> None:
    provider, stubber = stubbed
    stubber.add_response("describe_key", described(state))  # and nothing else

    provider.destroy_root_key(KEY_ARN)


def test_destroy_of_an_unknown_key_is_a_no_op(stubbed: tuple[AwsKmsProvider, Stubber]) -> None:
    provider, stubber = stubbed
    add_error(stubber, "describe_key", "NotFoundException")

    provider.destroy_root_key(KEY_ARN)


def test_destroy_racing_another_destroy_is_a_no_op(
    stubbed: tuple[AwsKmsProvider, Stubber],
) -> None:
    provider, stubber = stubbed
    stubber.add_response("describe_key", described("Disabled"))
    add_error(stubber, "schedule_key_deletion", "KMSInvalidStateException")
    stubber.add_response("describe_key", described("PendingDeletion"))

    provider.destroy_root_key(KEY_ARN)


def test_destroy_when_the_kms_is_throttling_is_unavailable(
    stubbed: tuple[AwsKmsProvider, Stubber],
) -> None:
    provider, stubber = stubbed
    add_error(stubber, "describe_key", "ThrottlingException")

    with pytest.raises(KmsUnavailable):
        provider.destroy_root_key(KEY_ARN)


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException"])
def test_check_failure_is_unavailable(stubbed: tuple[AwsKmsProvider, Stubber], code: str) -> None:
    provider, stubber = stubbed
    add_error(stubber, "list_keys", code)

    with pytest.raises(KmsUnavailable) as caught:
        provider.check()

    assert_opaque(caught.value)


def test_without_state_verification_only_kms_refuses() -> None:
    client = boto3.client("kms", region_name="eu-central-1", endpoint_url="http://127.0.0.1:9")
    provider = AwsKmsProvider(
        endpoint_url=None, region="eu-central-1", client=client, verify_key_state=False
    )
    with Stubber(client) as stubber:
        add_error(stubber, "decrypt", "DisabledException")  # no describe_key first

        with pytest.raises(KeyDestroyed):
            provider.unsafe_unwrap(root_key_id=KEY_ARN, wrapped=b"sealed", owner=OWNER)

        stubber.assert_no_pending_responses()
