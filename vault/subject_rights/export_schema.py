"""The published format of the personal-data document of a data-subject export: access
(Art. 15) and portability (Art. 20).

``SubjectData`` is what ``vault.subject_rights.export_data`` fills in; its JSON schema
(``subject_data_schema``, served at ``/schemas/subject-export.json``) is the contract with
whoever imports it. Every field is described there, in words a patient can follow. A change
that is not backwards compatible is a new ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import enum
import os
import re
import unicodedata
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vault.accounts.models import OneTimePurpose, Role, TokenKind
from vault.cases.models import CaseStatus, LegalHoldReason, TreatmentResult
from vault.clock import as_utc
from vault.consents.models import RestrictionReason
from vault.documents.models import DocumentKind
from vault.partners.models import PartnerKind
from vault.patients.models import Sex
from vault.subject_rights.models import ExportStatus, RequestStatus, RetentionGround, Right
from vault.transfers.models import LegalBasis, Purpose

SCHEMA_VERSION: Final = "medvault-subject-export/1"  # also the literal of SubjectData
SCHEMA_ID = "urn:medvault:schema:subject-export:1"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ARCHIVE_DOCUMENTS = "documents"
MAX_ARCHIVE_NAME = 100  # characters of the file name part of an archive path


RETENTION_DESCRIPTION = (
    "When medvault deletes this item for good (UTC). Case data: the case's treatment "
    "completion plus the retention period; null while the case is open or under a legal hold "
    "(no date is known yet), and for what is left of a shredded case."
)
IDENTITY_RETENTION_DESCRIPTION = (
    "When medvault deletes this item for good (UTC): together with your identity, when your "
    "last case is shredded (or at once on erasure). Null while a case is open or under a legal "
    "hold, or while you have no case."
)


class Source(enum.StrEnum):
    """Who put an item there."""

    YOU = "you"  # you entered it or did it
    COORDINATOR = "coordinator"  # a coordinator recorded or uploaded it
    PRIVACY_OFFICER = "privacy-officer"
    PARTNER = "partner"  # a recipient of a transfer (a download)
    SYSTEM = "system"  # medvault recorded it


class Actor(enum.StrEnum):
    """Who acted in an event of the processing log: a role, never the employee."""

    YOU = "you"
    COORDINATOR = "coordinator"
    PRIVACY_OFFICER = "privacy-officer"
    ANALYST = "analyst"
    ANOTHER_PATIENT = "another-patient"  # an attempt by someone else, refused
    PARTNER = "partner"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"
    UNKNOWN = "unknown"  # an account medvault no longer knows


# -- the document ------------------------------------------------------------------------------


class _Record(BaseModel):
    """Frozen, closed to unknown fields; naive datetimes (SQLite) are read as the UTC they are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: object) -> object:
        return as_utc(value) if isinstance(value, datetime) else value


def _retention(description: str = RETENTION_DESCRIPTION) -> Any:
    return Field(description=description)


def _source() -> Any:
    return Field(description="Who put this item there (see the Source enumeration).")


class Profile(_Record):
    """Your identity and contact details, stored only encrypted under a key of your own."""

    id: uuid.UUID = Field(description="Your patient number at medvault.")
    name: str = Field(description="Your name.")
    birth_date: date = Field(description="Your date of birth.")
    email: str = Field(description="Your e-mail address (also your login).")
    phone: str | None = Field(description="Your phone number, if you gave one.")
    sex: Sex = Field(description="Your sex as you stated it.")
    country: str | None = Field(description="Your country (ISO 3166-1 alpha-2), if given.")
    registered_at: datetime = Field(description="When your patient record was created.")
    retention_until: datetime | None = _retention(IDENTITY_RETENTION_DESCRIPTION)
    source: Source = Field(
        description="'you' if you registered or corrected these details yourself, "
        "'coordinator' if a coordinator entered them when inviting you."
    )


class SessionToken(_Record):
    """A sign-in session (access or refresh token). The token itself is kept only as a one-way
    digest and is not exported."""

    id: uuid.UUID = Field(description="The token's number.")
    kind: TokenKind = Field(description="Access token or refresh token.")
    family_id: uuid.UUID = Field(description="The sign-in this token belongs to.")
    created_at: datetime = Field(description="When it was issued.")
    expires_at: datetime = Field(description="When it stops working.")
    revoked_at: datetime | None = Field(description="When it was revoked (signed out), if so.")


class EmailedCode(_Record):
    """A single-use code mailed to you (address confirmation, invitation), kept only as a
    one-way digest; the code is not exported."""

    id: uuid.UUID = Field(description="The code's number.")
    purpose: OneTimePurpose = Field(description="What the code was for.")
    created_at: datetime = Field(description="When it was sent.")
    expires_at: datetime = Field(description="When it stops working.")
    used_at: datetime | None = Field(description="When it was used, if so.")


class FailedSignIns(_Record):
    """Failed sign-ins on your account counted by the login throttle (cleared by a sign-in)."""

    failures: int = Field(description="Failed attempts in the current window.")
    window_started_at: datetime = Field(description="When the current window began.")
    last_failure_at: datetime = Field(description="The last failed attempt.")
    locked_until: datetime | None = Field(description="Until when sign-in is locked, if it is.")


class Account(_Record):
    """Your user account. Your login is stored only as a keyed digest and your password only as
    an argon2id hash: neither can be turned back into the original, so neither is exported."""

    id: uuid.UUID = Field(description="The account's number.")
    role: Role = Field(description="The account's role (patient).")
    created_at: datetime = Field(description="When the account was created.")
    email_confirmed_at: datetime | None = Field(
        description="When you confirmed your e-mail address, if so."
    )
    disabled_at: datetime | None = Field(description="When the account was disabled, if so.")
    sessions: list[SessionToken] = Field(description="Every sign-in session, oldest first.")
    emailed_codes: list[EmailedCode] = Field(description="Every code mailed to you.")
    failed_sign_ins: FailedSignIns | None = Field(
        description="Failed sign-ins being counted now, if any."
    )
    retention_until: datetime | None = _retention(IDENTITY_RETENTION_DESCRIPTION)
    source: Source = _source()


class LegalHold(_Record):
    """A legal hold keeps a case past its retention period while it lasts."""

    reason: LegalHoldReason = Field(description="Why the case is held (a fixed code).")
    placed_at: datetime = Field(description="When the privacy officer placed the hold.")


class Outcome(_Record):
    """The structured outcome of a case, stored only encrypted under the case key."""

    diagnosis_codes: list[str] = Field(description="Diagnoses, as ICD-10 codes.")
    result: TreatmentResult = Field(description="The treatment result.")
    treatment_start: date = Field(description="First day of treatment.")
    treatment_end: date = Field(description="Last day of treatment.")
    final_invoice_total: Decimal = Field(description="The final invoice's total amount.")
    currency: str = Field(description="The invoice's currency (ISO 4217).")
    source: Source = _source()


class CaseRecord(_Record):
    """A treatment request. A shredded case is a tombstone: its outcome and documents are
    destroyed, only its number and dates are left."""

    id: uuid.UUID = Field(description="The case number.")
    status: CaseStatus = Field(description="open, completed, shredding or shredded.")
    opened_at: datetime = Field(description="When the case was opened.")
    treatment_completed_at: datetime | None = Field(
        description="When the treatment was completed: the retention period starts there."
    )
    shredded_at: datetime | None = Field(description="When the case was shredded, if so.")
    legal_hold: LegalHold | None = Field(description="The legal hold on the case, if any.")
    outcome_recorded_at: datetime | None = Field(
        description="When the outcome was last recorded, if ever."
    )
    outcome: Outcome | None = Field(
        description="The outcome; null if none was recorded or the case is shredded."
    )
    retention_until: datetime | None = _retention()
    source: Source = Field(description="Who opened the case.")


class ExportedDocument(_Record):
    """A document of one of your cases; its decrypted content is in the archive at
    ``archive_path``."""

    id: uuid.UUID = Field(description="The document's number.")
    case_id: uuid.UUID = Field(description="The case it belongs to.")
    kind: DocumentKind = Field(description="Medical record or invoice.")
    media_type: str = Field(description="The media type detected from its content.")
    size: int = Field(description="Size in bytes (as stored, after sanitising).")
    sha256: str = Field(description="SHA-256 of the content, hex: check the archive copy.")
    filename: str = Field(description="The file name it was uploaded under.")
    stored_at: datetime = Field(description="When it was stored.")
    archive_path: str = Field(
        description="Where its content is in the archive: documents/<nnn>-<file name>."
    )
    retention_until: datetime | None = _retention()
    source: Source = Field(
        description="Who uploaded it: you, a coordinator, or the system when medvault no longer "
        "records who (the upload's audit event is gone)."
    )


class ShreddedDocument(_Record):
    """A document destroyed with its case: content, file name and digest are gone."""

    id: uuid.UUID = Field(description="The document's number.")
    case_id: uuid.UUID = Field(description="The case it belonged to.")
    kind: DocumentKind = Field(description="Medical record or invoice.")
    media_type: str = Field(description="The media type it had.")
    size: int = Field(description="The size it had, in bytes.")
    stored_at: datetime = Field(description="When it was stored.")
    shredded_at: datetime | None = Field(
        description="When it was destroyed; null while its case's shred is being finished."
    )
    retention_until: datetime | None = _retention()
    source: Source = _source()


class ConsentRecord(_Record):
    """A consent you gave for one case, with the exact text you agreed to."""

    id: uuid.UUID = Field(description="The consent's number.")
    case_id: uuid.UUID = Field(description="The case it is for.")
    text_version: str = Field(description="The version of the consent text.")
    text_sha256: str = Field(description="SHA-256 of the exact text agreed to, hex.")
    text: str | None = Field(
        description="The text itself; null only if that version is no longer published."
    )
    given_at: datetime = Field(description="When you gave it.")
    withdrawn_at: datetime | None = Field(description="When you withdrew it, if so.")
    retention_until: datetime | None = _retention()
    source: Source = _source()


class RestrictionRecord(_Record):
    """A restriction of processing (Art. 18): while live it blocks new transfers, links and
    QA use of your data (of one case when ``case_id`` is set)."""

    id: uuid.UUID = Field(description="The restriction's number.")
    case_id: uuid.UUID | None = Field(description="The case restricted; null for all your data.")
    reason: RestrictionReason = Field(description="Who or what placed it.")
    placed_at: datetime = Field(description="When it was placed.")
    lifted_at: datetime | None = Field(description="When it was lifted, if so.")
    retention_until: datetime | None = _retention(
        "When medvault deletes this item for good (UTC): with its case when it is about one "
        "case (see that case), otherwise with your identity."
    )
    source: Source = _source()


class SurveyRecord(_Record):
    """Your satisfaction survey for a completed case, with your QA consent."""

    id: uuid.UUID = Field(description="The survey's number.")
    case_id: uuid.UUID = Field(description="The case it is about.")
    questionnaire_version: str = Field(description="The questionnaire version answered.")
    scores: dict[str, int] = Field(description="Question id -> your score (1 to 5).")
    comment: str | None = Field(
        description="Your comment; null if you wrote none or the case is shredded."
    )
    answered_at: datetime = Field(description="When you answered.")
    qa_consent: bool = Field(description="Whether you consented to quality-assurance use.")
    qa_consent_withdrawn_at: datetime | None = Field(
        description="When you withdrew that consent, if so."
    )
    retention_until: datetime | None = _retention()
    source: Source = _source()


class ObjectionRecord(_Record):
    """An objection (Art. 21) you made."""

    objected_at: datetime = Field(description="When you objected.")
    retention_until: datetime | None = _retention(IDENTITY_RETENTION_DESCRIPTION)
    source: Source = _source()


class Recipient(_Record):
    """The recipient of a transfer."""

    id: uuid.UUID = Field(description="The recipient's number at medvault.")
    kind: PartnerKind = Field(description="Clinic, physician, insurer, ...")
    name: str = Field(description="The recipient's name.")


class TransferredDocument(_Record):
    """One document sent in a transfer."""

    document_id: uuid.UUID = Field(description="The document sent.")
    position: int = Field(description="Its place in the transfer (1, 2, ...).")


class DownloadRecord(_Record):
    """One download of one document by the recipient, through the link."""

    id: uuid.UUID = Field(description="The download's number.")
    document_id: uuid.UUID = Field(description="The document downloaded.")
    at: datetime = Field(description="When it was downloaded.")
    retention_until: datetime | None = _retention()
    source: Source = _source()


class LinkRecord(_Record):
    """The signed link a transfer's recipient downloads through. Its token and access code are
    kept only as a digest and a hash, and are not exported."""

    id: uuid.UUID = Field(description="The link's number.")
    issued_at: datetime = Field(description="When it was issued.")
    expires_at: datetime = Field(description="When it stops working.")
    max_downloads: int = Field(description="How many downloads it allows.")
    downloads_used: int = Field(description="How many it has served.")
    max_code_attempts: int = Field(description="Wrong access codes that lock it.")
    failed_codes: int = Field(description="Wrong access codes entered so far.")
    locked_at: datetime | None = Field(description="When it locked, if it did.")
    downloads: list[DownloadRecord] = Field(description="Every download, oldest first.")


class TransferRecord(_Record):
    """A transfer (disclosure, Art. 15(1)(c)): who received which documents, why, and on which
    legal basis."""

    id: uuid.UUID = Field(description="The transfer's number.")
    case_id: uuid.UUID = Field(description="The case whose documents were sent.")
    recipient: Recipient = Field(description="Who received them.")
    purpose: Purpose = Field(description="Why they were sent.")
    legal_basis: LegalBasis = Field(description="The legal basis (GDPR article) relied on.")
    consent_id: uuid.UUID | None = Field(description="Your consent relied on, if any.")
    documents: list[TransferredDocument] = Field(description="The documents sent, in order.")
    sent_at: datetime = Field(description="When the transfer was made.")
    revoked_at: datetime | None = Field(description="When it was revoked (link stopped), if so.")
    link: LinkRecord | None = Field(description="The recipient's link.")
    retention_until: datetime | None = _retention()
    source: Source = Field(description="Who made the transfer (its coordinator, or the system).")


class RetainedRecord(_Record):
    """A case an erasure had to keep (Art. 17(3)); it stays restricted until then."""

    case_id: uuid.UUID = Field(description="The case kept.")
    ground: RetentionGround = Field(description="The paragraph of Art. 17(3) relied on.")
    reason: str = Field(
        description="Why, as a code: the legal hold's reason for art17-3-e, "
        "'treatment-and-billing-records' for art17-3-b."
    )
    until: datetime | None = Field(description="Until when; null while a legal hold lasts.")


class RightsRequestRecord(_Record):
    """A request exercising one of your rights, with its due date (one month, Art. 12(3))."""

    id: uuid.UUID = Field(description="The request's number.")
    right: Right = Field(description="The right exercised.")
    status: RequestStatus = Field(description="Where the request stands.")
    received_at: datetime = Field(description="When it was received.")
    due_at: datetime = Field(description="When it must be answered by.")
    completed_at: datetime | None = Field(description="When it was answered, if so.")
    erased_case_ids: list[uuid.UUID] = Field(description="For an erasure: the cases it erased.")
    retained: list[RetainedRecord] = Field(description="For an erasure: what had to be kept.")
    retention_until: datetime | None = _retention(
        "Null: the register of requests is kept as medvault's proof of accountability (Art. "
        "5(2)); it holds only numbers, dates and fixed values."
    )
    source: Source = _source()


class ExportRecord(_Record):
    """An export archive made for you (like the one holding this document)."""

    id: uuid.UUID = Field(description="The export's number.")
    request_id: uuid.UUID = Field(description="The request it answers.")
    status: ExportStatus = Field(description="pending, ready, failed or deleted.")
    size: int | None = Field(description="The archive's size in bytes, once built.")
    created_at: datetime = Field(description="When it was asked for.")
    started_at: datetime | None = Field(description="When building it began, if it did.")
    ready_at: datetime | None = Field(description="When it was ready, if so.")
    expires_at: datetime | None = Field(description="When the archive is deleted.")
    deleted_at: datetime | None = Field(description="When the archive was deleted, if so.")
    retention_until: datetime | None = _retention(
        "When the archive is deleted for good (its expiry); null until it is built."
    )
    source: Source = _source()


class ProcessingEvent(_Record):
    """One event of medvault's audit log about you or your data: what was done, when, by whom
    (the role, not the person), to what, why and on which legal basis."""

    seq: int = Field(description="The event's place in the audit log.")
    at: datetime = Field(description="When it happened.")
    action: str = Field(description="What happened, e.g. 'document.read', 'transfer.create'.")
    actor: Actor = Field(description="Who acted (a role, not a person).")
    outcome: str = Field(description="ok, denied or refused.")
    case_id: uuid.UUID | None = Field(description="Your case concerned, if any.")
    document_id: uuid.UUID | None = Field(description="Your document concerned, if any.")
    transfer_id: uuid.UUID | None = Field(description="Your transfer concerned, if any.")
    link_id: uuid.UUID | None = Field(description="The link concerned, if any.")
    partner_id: uuid.UUID | None = Field(description="The recipient concerned, if any.")
    account_id: uuid.UUID | None = Field(description="Your account concerned, if any.")
    legal_basis: str | None = Field(description="The legal basis recorded, if any.")
    purpose: str | None = Field(
        description="The purpose recorded (for requests: the right exercised), if any."
    )
    retention_until: datetime | None = _retention(
        "Events about a case are kept at least as long as that case (see it); the audit log "
        "drops its oldest events only once they are past the access-log retention and their "
        "case is shredded, so null means no date is fixed."
    )
    source: Source = _source()


class SubjectData(_Record):
    """Everything medvault holds about you (GDPR Art. 15), in a structured, machine-readable
    form (Art. 20). Numbers are UUIDs; times are UTC (RFC 3339); lists are oldest first."""

    schema_version: Literal["medvault-subject-export/1"] = Field(
        description="The version of this format; its JSON schema is published by medvault at "
        "/schemas/subject-export.json."
    )
    generated_at: datetime = Field(description="When this document was made.")
    profile: Profile = Field(description="Your identity and contact details.")
    accounts: list[Account] = Field(description="Your user accounts.")
    cases: list[CaseRecord] = Field(description="Your cases, shredded ones as tombstones.")
    documents: list[ExportedDocument] = Field(
        description="Your documents that still exist; their contents are in the archive."
    )
    shredded_documents: list[ShreddedDocument] = Field(
        description="Documents destroyed with their case."
    )
    consents: list[ConsentRecord] = Field(description="Consents you gave, withdrawn ones too.")
    restrictions: list[RestrictionRecord] = Field(
        description="Restrictions of processing (Art. 18), lifted ones too."
    )
    surveys: list[SurveyRecord] = Field(description="Your survey answers.")
    qa_objection: ObjectionRecord | None = Field(
        description="Your objection to quality-assurance use of your data, if you made one."
    )
    interest_objection: ObjectionRecord | None = Field(
        description="Your objection to processing based on legitimate interests (Art. 21(1)), "
        "if you made one."
    )
    transfers: list[TransferRecord] = Field(
        description="Every transfer of your data, with every download by its recipient."
    )
    rights_requests: list[RightsRequestRecord] = Field(
        description="Every request you made under your data-protection rights."
    )
    exports: list[ExportRecord] = Field(description="Every export made for you.")
    processing_log: list[ProcessingEvent] = Field(
        description="Every event of medvault's audit log about you or your data."
    )


# Lists of values defined elsewhere without a docstring, described for the published schema.
_VALUE_LISTS = {
    "CaseStatus": "Where a case stands: open, completed, shredding (being deleted), shredded.",
    "DocumentKind": "What a document is: a medical record, an invoice.",
    "ExportStatus": "Where an export stands: pending, ready, failed, deleted.",
    "OneTimePurpose": "What a mailed code was for.",
    "PartnerKind": "What kind of recipient a partner is.",
    "Purpose": "Why documents were sent to a recipient.",
    "RequestStatus": "Where a request stands.",
    "Role": "What an account may do.",
    "TokenKind": "Access token (short-lived) or refresh token.",
}


def subject_data_schema() -> dict[str, Any]:
    """The published JSON schema of the export document (what ``SubjectData`` serialises to)."""
    schema = SubjectData.model_json_schema(mode="serialization")
    for name, definition in schema["$defs"].items():
        if name in _VALUE_LISTS:
            definition.setdefault("description", _VALUE_LISTS[name])
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID, **schema}


def archive_path(index: int, filename: str) -> str:
    """``documents/<nnn>-<safe name>``: unique by its number, and nothing of the uploader's
    file name can climb out of the folder or hide (no "/", "\\", "..", leading dot)."""
    return f"{ARCHIVE_DOCUMENTS}/{index:03d}-{safe_file_name(filename)}"


_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_DOT_RUNS = re.compile(r"\.{2,}")


def safe_file_name(filename: str) -> str:
    """The last path segment, in plain ASCII letters, digits, ``.``, ``_`` and ``-``."""
    base = re.split(r"[/\\]", filename)[-1]
    ascii_only = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    cleaned = _DOT_RUNS.sub(".", _UNSAFE_CHARACTERS.sub("_", ascii_only)).strip("._-")
    if len(cleaned) > MAX_ARCHIVE_NAME:
        stem, extension = os.path.splitext(cleaned)
        extension = extension[:16]
        cleaned = stem[: MAX_ARCHIVE_NAME - len(extension)].rstrip("._-") + extension
    return cleaned or "document"
