"""The protocol every root-key provider implements (local keyring file, AWS KMS)."""

from collections.abc import Sequence
from typing import Protocol


class RootKeyProvider(Protocol):
    """Holds root keys that never leave it; wraps and unwraps 32-byte keys under them.

    ``owner`` binds a wrapped key to the id of what it protects (KMS encryption context,
    associated data for the local keyring): unwrapping with another owner fails.
    """

    def create_root_key(self, *, description: str) -> str:
        """Create a new root key and return its provider id. Raises KmsUnavailable."""
        ...

    def wrap(self, *, root_key_id: str, key: bytes, owner: str) -> bytes:
        """Return ``key`` encrypted under the root key, bound to ``owner``.

        Raises KeyDestroyed (destroyed or disabled root key), KeyNotFound (an id the local
        keyring never held), KmsUnavailable.
        """
        ...

    def unsafe_unwrap(self, *, root_key_id: str, wrapped: bytes, owner: str) -> bytes:
        """Return the plaintext key. Raises KeyDestroyed, KeyUnwrapFailed, KmsUnavailable."""
        ...

    def unsafe_unwrap_many(
        self, *, root_key_id: str, items: Sequence[tuple[bytes, str]]
    ) -> list[bytes]:
        """``unsafe_unwrap`` of many (wrapped, owner) pairs under one root key, answers in
        their order; a provider that can, checks the root key once for the whole batch."""
        ...

    def destroy_root_key(self, root_key_id: str) -> None:
        """Make the root key unusable at once and delete it for good.

        Idempotent: an unknown or already destroyed id is a no-op. Afterwards ``wrap`` and
        ``unsafe_unwrap`` with this id raise KeyDestroyed, in every process.
        """
        ...

    def check(self) -> None:
        """Raise KmsUnavailable unless the provider answers."""
        ...
