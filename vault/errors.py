"""The one error tree of medvault. The API maps each class to an RFC 9457 problem type.

A subclass exists only where a caller acts differently. Messages are safe to show a user:
they never contain plaintext, key material, names, contact details or free text.
"""


class VaultError(Exception):
    """Base of every error the core raises on purpose."""

    slug = "vault-error"
    status = 500
    title = "Internal error"


class NotFound(VaultError):
    slug, status, title = "not-found", 404, "Not found"


class Forbidden(VaultError):
    slug, status, title = "forbidden", 403, "Forbidden"


class Gone(VaultError):
    slug, status, title = "gone", 410, "Gone"


class KeyDestroyed(Gone):
    """The key that protected the data was destroyed: the data is gone for good."""

    slug, title = "key-destroyed", "Gone for good"


class LegalBasisMissing(VaultError):
    slug, status, title = "legal-basis-missing", 409, "No legal basis"


class ConsentWithdrawn(VaultError):
    slug, status, title = "consent-withdrawn", 409, "Consent withdrawn"


class ProcessingRestricted(VaultError):
    slug, status, title = "processing-restricted", 409, "Processing restricted"


class RetentionHold(VaultError):
    slug, status, title = "retention-hold", 409, "Under retention hold"


class InvalidDocument(VaultError):
    """The file was refused; the message says why in words safe to show the uploader."""

    slug, status, title = "invalid-document", 422, "Document refused"


class DocumentTooLarge(InvalidDocument):
    slug, status, title = "document-too-large", 413, "Document too large"


class DecryptionFailed(VaultError):
    """One opaque error for every failed integrity or authenticity check (never says which)."""

    slug, status, title = "decryption-failed", 500, "Stored data failed its integrity check"

    def __init__(self) -> None:
        super().__init__("decryption failed")


class StorageUnavailable(VaultError):
    """The object store could not be reached or failed mid-operation. Retryable."""

    slug, status, title = "storage-unavailable", 503, "Object store unavailable"


class KmsUnavailable(VaultError):
    """The root-key provider could not be reached. Retryable."""

    slug, status, title = "kms-unavailable", 503, "Key service unavailable"
