"""AWS KMS (or any KMS-compatible endpoint) as the root-key provider (production).

Root keys are symmetric KMS keys that never leave the KMS; a key is wrapped with Encrypt and
unwrapped with Decrypt, both bound to the owner through the encryption context
``{"medvault:owner": owner}``. Vendor errors are translated here, at the boundary, without
their text (it can hold ARNs and encryption contexts).

Key state is checked with DescribeKey before every Encrypt and Decrypt (``verify_key_state``).
AWS KMS itself refuses disabled and pending-deletion keys, but not every KMS-compatible
endpoint does (moto, for one, decrypts under a key pending deletion), and crypto-shredding
must not depend on the emulator: a destroyed root key answers KeyDestroyed everywhere.
Against AWS KMS proper the check can be turned off to save one request per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from keys.errors import KeyDestroyed, KeyUnwrapFailed, KmsUnavailable

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import KeyMetadataTypeDef

OWNER_CONTEXT_KEY = "medvault:owner"
# The shortest wait KMS allows; the key is disabled at once, so it is unusable from then on.
DELETION_WINDOW_DAYS = 7

CLIENT_CONFIG = Config(
    connect_timeout=3,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)

_UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "ServiceUnavailableException",
    }
)
_DESTROYED_CODES = frozenset({"DisabledException", "NotFoundException"})
_UNWRAP_FAILED_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
_PENDING_DELETION_STATES = frozenset({"PendingDeletion", "PendingReplicaDeletion"})
_GONE_STATES = frozenset({"Disabled", *_PENDING_DELETION_STATES})


class AwsKmsProvider:
    """A RootKeyProvider backed by AWS KMS symmetric keys (ids are key ARNs)."""

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        region: str,
        client: KMSClient | None = None,
        verify_key_state: bool = True,
    ) -> None:
        self._client: KMSClient = client or boto3.session.Session().client(
            "kms", endpoint_url=endpoint_url, region_name=region, config=CLIENT_CONFIG
        )
        self._verify_key_state = verify_key_state

    def create_root_key(self, *, description: str) -> str:
        try:
            created = self._client.create_key(
                Description=description, KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT"
            )
        except (ClientError, BotoCoreError) as exc:
            _raise_translated(exc)
        return created["KeyMetadata"]["Arn"]

    def wrap(self, *, root_key_id: str, key: bytes, owner: str) -> bytes:
        self._require_usable(root_key_id)
        try:
            encrypted = self._client.encrypt(
                KeyId=root_key_id, Plaintext=key, EncryptionContext=_context(owner)
            )
        except (ClientError, BotoCoreError) as exc:
            self._raise_translated_use(exc, root_key_id)
        return encrypted["CiphertextBlob"]

    def unsafe_unwrap(self, *, root_key_id: str, wrapped: bytes, owner: str) -> bytes:
        self._require_usable(root_key_id)
        try:
            decrypted = self._client.decrypt(
                KeyId=root_key_id, CiphertextBlob=wrapped, EncryptionContext=_context(owner)
            )
        except (ClientError, BotoCoreError) as exc:
            self._raise_translated_use(exc, root_key_id)
        return decrypted["Plaintext"]

    def unsafe_unwrap_many(
        self, *, root_key_id: str, items: Sequence[tuple[bytes, str]]
    ) -> list[bytes]:
        # KMS has no batch Decrypt: one call per key.
        return [
            self.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=owner)
            for wrapped, owner in items
        ]

    def destroy_root_key(self, root_key_id: str) -> None:
        metadata = self._describe(root_key_id)
        if metadata is None or metadata.get("KeyState") in _PENDING_DELETION_STATES:
            return
        # DisableKey and ScheduleKeyDeletion get the bare key id: AWS takes an ARN too, but
        # moto looks these two up by bare id only.
        key_id = metadata["KeyId"]
        try:
            if metadata.get("KeyState") != "Disabled":
                self._client.disable_key(KeyId=key_id)
            self._client.schedule_key_deletion(
                KeyId=key_id, PendingWindowInDays=DELETION_WINDOW_DAYS
            )
        except ClientError as exc:
            if _code(exc) == "KMSInvalidStateException" and self._key_state(root_key_id) in (
                None,
                *_PENDING_DELETION_STATES,
            ):
                return  # someone else scheduled the deletion meanwhile: what we wanted
            _raise_translated(exc)
        except BotoCoreError as exc:
            _raise_translated(exc)

    def check(self) -> None:
        try:
            self._client.list_keys(Limit=1)
        except (ClientError, BotoCoreError) as exc:
            raise KmsUnavailable(f"the KMS did not answer ({_reason(exc)})") from None

    def _require_usable(self, root_key_id: str) -> None:
        if not self._verify_key_state:
            return
        state = self._key_state(root_key_id)
        if state is None or state in _GONE_STATES:
            raise KeyDestroyed("the root key was destroyed")
        if state != "Enabled":
            # Creating, PendingImport, Unavailable (custom key store offline), Updating: the
            # key exists but cannot be used right now.
            raise KmsUnavailable(f"the root key cannot be used now (state {state})")

    def _key_state(self, root_key_id: str) -> str | None:
        """The key's KMS state, or None when the KMS no longer knows the key."""
        metadata = self._describe(root_key_id)
        return None if metadata is None else metadata.get("KeyState")

    def _describe(self, root_key_id: str) -> KeyMetadataTypeDef | None:
        try:
            return self._client.describe_key(KeyId=root_key_id)["KeyMetadata"]
        except ClientError as exc:
            if _code(exc) == "NotFoundException":
                return None
            _raise_translated(exc)
        except BotoCoreError as exc:
            _raise_translated(exc)

    def _raise_translated_use(self, exc: ClientError | BotoCoreError, root_key_id: str) -> NoReturn:
        """Translate an error of Encrypt or Decrypt, where an invalid key state needs a look."""
        if isinstance(exc, ClientError) and _code(exc) == "KMSInvalidStateException":
            # Pending deletion means destroyed; any other state (e.g. a custom key store
            # offline) is temporary and must not be mistaken for a shredded key.
            if self._key_state(root_key_id) in (None, *_GONE_STATES):
                raise KeyDestroyed("the root key was destroyed") from None
            raise KmsUnavailable("the root key cannot be used now") from None
        _raise_translated(exc)


def _raise_translated(exc: ClientError | BotoCoreError) -> NoReturn:
    """Raise our error for a KMS failure, without the vendor's text; re-raise the rest."""
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        # Refused, timed out or cut off, after the client's own retries.
        raise KmsUnavailable(f"the KMS could not be reached ({_reason(exc)})") from None
    if isinstance(exc, ClientError):
        code = _code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _UNAVAILABLE_CODES or status >= 500:
            raise KmsUnavailable(f"the KMS did not answer ({code})") from None
        if code in _DESTROYED_CODES:
            raise KeyDestroyed("the root key was destroyed") from None
        if code in _UNWRAP_FAILED_CODES:
            raise KeyUnwrapFailed("the wrapped key did not authenticate") from None
    raise exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reason(exc: ClientError | BotoCoreError) -> str:
    # The class name or error code only: the messages can carry ARNs and contexts.
    return _code(exc) if isinstance(exc, ClientError) else type(exc).__name__


def _context(owner: str) -> dict[str, str]:
    return {OWNER_CONTEXT_KEY: owner}
