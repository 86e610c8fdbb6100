"""Errors of the key hierarchy. ``vault`` translates them into its own tree at its boundary."""


class KeysError(Exception):
    """Base of every error raised by ``keys``. Messages never contain key material."""


class KeyDestroyed(KeysError):
    """The key was destroyed (crypto-shredded); whatever it protected is gone for good."""


class KeyNotFound(KeysError):
    """No key with that id exists (and none was ever destroyed under it)."""


class KmsUnavailable(KeysError):
    """The root-key provider could not be reached or did not answer in time. Retryable."""


class KeyUnwrapFailed(KeysError):
    """A wrapped key did not authenticate: wrong root key, wrong owner, or tampered bytes."""


class InsecureKeyring(KeysError):
    """The local keyring file is readable or writable by others than its owner."""


class KeyringCorrupt(KeysError):
    """The local keyring file is not a keyring this version can read. Never retried."""


class InvalidKeyRequest(KeysError, ValueError):
    """A malformed argument (epoch, reason code, key kind): a programming error, not user input."""
