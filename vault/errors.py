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


# --- accounts ---


class NotAuthenticated(VaultError):
    """No valid credentials: missing, expired or revoked token, or a disabled user."""

    slug, status, title = "not-authenticated", 401, "Not authenticated"


# --- audit ---
class AuditUnavailable(VaultError):
    """The audit event could not be written, so the action it records did not happen."""

    slug, status, title = "audit-unavailable", 503, "Audit log unavailable"


# --- documents ---


class CaseAlreadyCompleted(VaultError):
    """A case is completed once; its completion date starts the retention clock."""

    slug, status, title = "case-already-completed", 409, "Case already completed"


class InvalidCaseUpdate(VaultError):
    """A change to a case that cannot be accepted as given (for example a date in the future)."""

    slug, status, title = "invalid-case-update", 422, "Case update refused"


class InvalidCredentials(NotAuthenticated):
    """Wrong login or password; never says which."""

    slug, title = "invalid-credentials", "Invalid login or password"


class InvalidLogin(VaultError):
    slug, status, title = "invalid-login", 422, "Invalid login"


class WeakPassword(VaultError):
    slug, status, title = "weak-password", 422, "Password refused"


class LoginTaken(VaultError):
    slug, status, title = "login-taken", 409, "Login already in use"


class EmailNotConfirmed(VaultError):
    """The password was right, but the address of a self-registered patient is not confirmed."""

    slug, status, title = "email-not-confirmed", 403, "E-mail address not confirmed"


class InvalidOneTimeToken(VaultError):
    """A confirmation or invitation token that is unknown, expired or already used."""

    slug, status, title = "invalid-one-time-token", 400, "Invalid or expired token"


class LoginThrottled(VaultError):
    """Too many failed logins for this account or client; try again after ``retry_after``."""

    slug, status, title = "too-many-attempts", 429, "Too many login attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.extra = {"retry_after": retry_after}
        self.headers = {"Retry-After": str(retry_after)}


class LoginLocked(LoginThrottled):
    """So many failed logins that the account or client is locked for a while."""

    slug, title = "login-locked", "Login locked for a while"


class NotificationFailed(VaultError):
    """The notification could not be handed to the mail server or outbox. Retryable."""

    slug, status, title = "notification-failed", 503, "Notification could not be sent"


# --- transfers ---


class UnknownConsentText(VaultError):
    slug, status, title = "unknown-consent-text", 422, "Unknown consent text"


class InvalidPartner(VaultError):
    """Partner details that cannot be stored: an impossible contact address, an empty name."""

    slug, status, title = "invalid-partner", 422, "Invalid partner details"


class InvalidTransfer(VaultError):
    """A transfer request that can never succeed as asked (no documents, expiry too long...)."""

    slug, status, title = "invalid-transfer", 422, "Invalid transfer"


class LinkExpired(Gone):
    slug, title = "link-expired", "Link expired"


class LinkRevoked(Gone):
    slug, title = "link-revoked", "Link revoked"


class LinkUsedUp(Gone):
    slug, title = "link-used-up", "Download limit reached"


class LinkLocked(Gone):
    slug, title = "link-locked", "Link locked after too many wrong access codes"


class AccessCodeWrong(VaultError):
    """A wrong access code for a partner link; ``extra`` says how many tries are left."""

    slug, status, title = "access-code-wrong", 403, "Wrong access code"

    def __init__(self, attempts_left: int) -> None:
        left = f"{attempts_left} attempt(s) left"
        super().__init__(f"wrong access code; {left} before the link locks")
        self.extra = {"attempts_left": attempts_left}


class UploadInterrupted(VaultError):
    """The upload ended before the whole file arrived (client gone or body cut short)."""

    slug, status, title = "upload-interrupted", 400, "Upload interrupted"


# --- surveys and QA extracts ---


class CaseNotCompleted(VaultError):
    """Only a completed case can be surveyed."""

    slug, status, title = "case-not-completed", 409, "Case not completed"


class SurveyAlreadyAnswered(VaultError):
    slug, status, title = "survey-already-answered", 409, "Survey already answered"


class InvalidSurvey(VaultError):
    """Answers that do not fit the questionnaire version (unknown or missing question, range)."""

    slug, status, title = "invalid-survey", 422, "Survey answers refused"


class InvalidExtractRequest(VaultError):
    """An extract that cannot be built as asked (empty period, unknown field or scope)."""

    slug, status, title = "invalid-extract-request", 422, "Extract request refused"


class ScopeNameTaken(VaultError):
    slug, status, title = "scope-name-taken", 409, "Scope name already in use"


class ExtractNotReady(VaultError):
    """The extract is still being built, or its build failed."""

    slug, status, title = "extract-not-ready", 409, "Extract not ready"


class ExtractExpired(Gone):
    """The extract's retention ended and its key was destroyed."""

    slug, title = "extract-expired", "Extract expired"


# --- workers ---


class QueueUnavailable(VaultError):
    """The task queue's broker could not be reached; the work is recorded and a sweep re-sends
    it. Retryable."""

    slug, status, title = "queue-unavailable", 503, "Task queue unavailable"


# --- retention ---


class AuditChainBroken(VaultError):
    """The audit chain fails verification: nothing of it is dropped until that is resolved."""

    slug, status, title = "audit-chain-broken", 500, "Audit chain broken"


# -- data-subject rights: requests, rectification, restriction, objection ----------------------


class ObjectionRaised(VaultError):
    """The patient objected (Art. 21(1)) to processing based on legitimate interests: no new
    transfer of their data may rely on Art. 6(1)(f)."""

    slug, status, title = "objection-raised", 409, "Objection raised"


class EmailTaken(VaultError):
    """A rectified e-mail address that is the login of another account (nothing is changed)."""

    slug, status, title = "email-taken", 409, "E-mail address already in use"


# -- data-subject rights: exports (Art. 15, Art. 20) -------------------------------------------


class ExportPending(VaultError):
    """The patient already has an export being built: one at a time."""

    slug, status, title = "export-pending", 409, "An export is already being built"


class ExportNotReady(VaultError):
    slug, status, title = "export-not-ready", 409, "Export not ready"


class ExportExpired(Gone):
    """The export reached the end of its few days, or was deleted with the patient's data."""

    slug, title = "export-expired", "Export deleted"


class ExportLinkInvalid(Forbidden):
    """The download link's signature does not verify (never says what is wrong with it)."""

    slug, title = "export-link-invalid", "Invalid download link"


class ExportLinkExpired(Gone):
    slug, title = "export-link-expired", "Download link expired"


# -- data-subject rights: erasure (Art. 17) ----------------------------------------------------


class ErasureConflict(VaultError):
    """A case of the patient changed (a legal hold placed) while the erasure was planned:
    nothing was erased; asking again plans it anew."""

    slug, status, title = "erasure-conflict", 409, "Erasure interrupted"
