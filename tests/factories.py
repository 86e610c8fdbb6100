"""Test data, made in one place: patients, cases, and small valid files of each accepted type."""

from __future__ import annotations

import contextlib
import io
import itertools
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pikepdf
from PIL import Image
from sqlmodel import Session

from keys.local import LocalKeyringProvider
from keys.store import KeyStore
from vault.accounts.models import Role, User
from vault.accounts.service import create_user
from vault.audit.service import AuditContext
from vault.cases.models import Case
from vault.cases.service import open_case
from vault.consents.models import Consent
from vault.consents.service import give_consent
from vault.consents.texts import FORWARDING_2026_11
from vault.documents.models import Document, DocumentKind
from vault.documents.service import DocumentStream, read_document, store_document
from vault.errors import NotificationFailed
from vault.intake import IntakeLimits
from vault.links.service import LinkPolicy
from vault.notifications.interfaces import Notification
from vault.partners.models import Partner, PartnerKind
from vault.partners.service import create_partner
from vault.patients.models import Patient
from vault.patients.service import PatientIdentity, register_patient
from vault.storage.interfaces import BlobStore
from vault.storage.local import LocalFolderBlobStore
from vault.transfers.models import LegalBasis, Purpose
from vault.transfers.service import IssuedTransfer, create_transfer

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SMALL_FRAME = 64 * 1024

# Planted in test data so scans can prove it never shows up where it must not.
PATIENT_NAME = "Erika Mustermann-Testperson"
PATIENT_EMAIL = "erika.mustermann@example.org"


def identity(name: str = PATIENT_NAME, email: str = PATIENT_EMAIL) -> PatientIdentity:
    return PatientIdentity(
        name=name, birth_date=date(1964, 8, 12), email=email, phone="+49 30 1234567"
    )


def make_patient(session: Session, keys: KeyStore, **identity_fields: str) -> Patient:
    patient = register_patient(
        session=session, keys=keys, identity=identity(**identity_fields), now=NOW
    )
    session.commit()
    return patient


def make_case(session: Session, keys: KeyStore, patient: Patient | None = None) -> Case:
    patient = patient or make_patient(session, keys)
    return open_case(
        session=session, keys=keys, patient_id=patient.id, now=NOW, audit=AuditContext.SYSTEM
    )


def png_bytes(width: int = 32, height: int = 24, *, seed: int = 1) -> bytes:
    """A PNG of noise (incompressible, so its size is about width * height * 3 bytes)."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    image = Image.frombytes("RGB", (width, height), pixels)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def pdf_bytes(pages: int = 1, *, with_javascript: bool = False) -> bytes:
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(595, 842))
    if with_javascript:
        action = pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert(1)"))
        pdf.Root.OpenAction = pdf.make_indirect(action)
    pdf.docinfo[pikepdf.Name.Author] = PATIENT_NAME
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def intake_limits(**overrides: int | float) -> IntakeLimits:
    values: dict[str, int | float] = {
        "max_bytes": 64 * 1024 * 1024,
        "max_image_pixels": 50_000_000,
        "pdf_memory_bytes": 512 * 1024 * 1024,
        "pdf_cpu_seconds": 10,
        "pdf_wall_seconds": 20.0,
    }
    values.update(overrides)
    return IntakeLimits(**values)  # type: ignore[arg-type]


@dataclass
class Vault:
    """The parts a document service call needs, wired for a test."""

    session: Session
    store: BlobStore
    keys: KeyStore
    spool_dir: Path
    limits: IntakeLimits
    frame_size: int = SMALL_FRAME

    def upload(self, case: Case, data: bytes, *, filename: str = "befund.pdf") -> Document:
        return store_document(
            session=self.session,
            store=self.store,
            keys=self.keys,
            case_id=case.id,
            kind=DocumentKind.RECORD,
            filename=filename,
            source=io.BytesIO(data),
            limits=self.limits,
            spool_dir=self.spool_dir,
            frame_size=self.frame_size,
            now=NOW,
            audit=AuditContext.SYSTEM,
        )

    def read(self, document_id: uuid.UUID) -> DocumentStream:
        return read_document(
            session=self.session,
            store=self.store,
            keys=self.keys,
            document_id=document_id,
            now=NOW,
            audit=AuditContext.SYSTEM,
        )


# --- audit ---
def make_audit_events(session: Session, count: int, *, now: datetime = NOW) -> list[int]:
    """Append ``count`` events (a second apart, each about a fresh case) and commit; their seqs."""
    from vault.audit.models import AuditAction  # local: keeps this block self-contained
    from vault.audit.service import append_event

    seqs = [
        append_event(
            session,
            context=AuditContext.SYSTEM,
            action=AuditAction.CASE_READ,
            now=now.replace(microsecond=i % 1_000_000),
            case_id=uuid.uuid4(),
        ).seq
        for i in range(count)
    ]
    session.commit()
    return seqs


# --- accounts ---

LOGIN_LOOKUP_KEY = bytes(range(32))
USER_PASSWORD = "correct horse battery staple"


def make_user(
    session: Session,
    role: Role,
    *,
    login: str | None = None,
    password: str = USER_PASSWORD,
    patient_id: uuid.UUID | None = None,
) -> User:
    """A user with a password, made directly through the service (committed)."""
    return create_user(
        session,
        lookup_key=LOGIN_LOOKUP_KEY,
        login=login or f"{role.value}-{uuid.uuid4().hex[:8]}@example.org",
        role=role,
        password=password,
        patient_id=patient_id,
        now=NOW,
    )


@dataclass
class RecordingNotifier:
    """A Notifier that keeps what it was asked to send; ``fail`` makes it refuse instead."""

    messages: list[Notification] = field(default_factory=list)
    fail: bool = False

    def send(self, message: Notification) -> None:
        if self.fail:
            raise NotificationFailed("the notification could not be sent")
        self.messages.append(message)


# --- transfers ---

LINK_POLICY_DEFAULTS = {"ttl_days": 7, "max_ttl_days": 30, "max_downloads": 5, "code_attempts": 5}
PARTNER_NAME = "Klinik am Testsee"  # planted like PATIENT_NAME: never in logs or audit events
PARTNER_EMAIL = "aufnahme@klinik-testsee.example"


def link_policy(**overrides: int) -> LinkPolicy:
    """The settings' default link policy (7 days, 30 at most, 5 downloads, 5 wrong codes)."""
    values = {**LINK_POLICY_DEFAULTS, **overrides}
    return LinkPolicy(
        ttl=timedelta(days=values["ttl_days"]),
        max_ttl=timedelta(days=values["max_ttl_days"]),
        max_downloads=values["max_downloads"],
        max_code_attempts=values["code_attempts"],
    )


def local_vault(session: Session, root: Path) -> Vault:
    """A Vault over a local folder store and a local keyring under ``root``."""
    spool = root / "spool"
    spool.mkdir(mode=0o700, exist_ok=True)
    return Vault(
        session=session,
        store=LocalFolderBlobStore(root / "store"),
        keys=KeyStore(provider=LocalKeyringProvider(root / "keys" / "keyring.json")),
        spool_dir=spool,
        limits=intake_limits(),
    )


def make_partner(
    session: Session,
    *,
    kind: PartnerKind = PartnerKind.CLINIC,
    name: str = PARTNER_NAME,
    contact_email: str = PARTNER_EMAIL,
) -> Partner:
    return create_partner(
        session,
        kind=kind,
        name=name,
        contact_email=contact_email,
        now=NOW,
        audit=AuditContext.SYSTEM,
    )


def make_consent(session: Session, case: Case, *, now: datetime = NOW) -> Consent:
    return give_consent(
        session,
        patient_id=case.patient_id,
        case_id=case.id,
        text_version=FORWARDING_2026_11.version,
        now=now,
        audit=AuditContext.SYSTEM,
    )


@dataclass
class TransferSetup:
    """A case with two documents, a partner and a live consent: ready to forward."""

    case: Case
    documents: list[Document]
    partner: Partner
    consent: Consent


def make_transfer_setup(vault: Vault) -> TransferSetup:
    case = make_case(vault.session, vault.keys)
    documents = [vault.upload(case, pdf_bytes()), vault.upload(case, png_bytes())]
    partner = make_partner(vault.session)
    return TransferSetup(case, documents, partner, make_consent(vault.session, case))


def make_transfer(
    session: Session,
    setup: TransferSetup,
    *,
    now: datetime = NOW,
    policy: LinkPolicy | None = None,
    **overrides: Any,
) -> IssuedTransfer:
    """Forward every document of ``setup`` under Art. 9(2)(a) with its consent."""
    values: dict[str, Any] = {
        "case_id": setup.case.id,
        "document_ids": [document.id for document in setup.documents],
        "partner_id": setup.partner.id,
        "purpose": Purpose.TREATMENT_CHECK,
        "legal_basis": LegalBasis.ART9_2_A,
        "consent_id": setup.consent.id,
    }
    values.update(overrides)
    return create_transfer(
        session,
        now=now,
        audit=AuditContext.SYSTEM,
        link_policy=policy or link_policy(),
        **values,
    )


# --- retention ---
RETENTION_YEARS = 5


def make_completed_case(
    vault: Vault,
    *,
    patient: Patient | None = None,
    completed_at: datetime = NOW,
    documents: int = 1,
    retention_years: int = RETENTION_YEARS,
) -> tuple[Case, list[Document]]:
    """A case with ``documents`` small PNGs and a sealed outcome, completed at ``completed_at``."""
    from vault.cases.models import CaseOutcome  # local: keeps this block self-contained
    from vault.cases.service import complete_case, record_outcome

    case = make_case(vault.session, vault.keys, patient)
    stored = [vault.upload(case, png_bytes(8, 8, seed=index)) for index in range(documents)]
    outcome = CaseOutcome(
        diagnosis_codes=["M17.1"],
        result="improved",  # type: ignore[arg-type]
        treatment_start=date(2026, 9, 1),
        treatment_end=date(2026, 10, 15),
        final_invoice_total="12480.50",  # type: ignore[arg-type]
        currency="EUR",
    )
    record_outcome(
        session=vault.session,
        keys=vault.keys,
        case_id=case.id,
        outcome=outcome,
        now=NOW,
        audit=AuditContext.SYSTEM,
    )
    done = complete_case(
        session=vault.session,
        keys=vault.keys,
        case_id=case.id,
        completed_at=completed_at,
        retention_years=retention_years,
        now=completed_at,
        audit=AuditContext.SYSTEM,
    )
    return done, stored


# --- QA extracts ---
PATIENT_PHONE = "+49 30 1234567"  # what identity() plants
PATIENT_BIRTH_DATE = date(1964, 8, 12)


def make_qa_patient(
    session: Session,
    keys: KeyStore,
    *,
    birth_date: date = PATIENT_BIRTH_DATE,
    sex: str = "female",
    country: str | None = "DE",
    name: str = PATIENT_NAME,
) -> Patient:
    """A patient with the quasi-identifiers QA extracts use (committed)."""
    from vault.patients.models import Sex  # local: keeps this block self-contained

    who = PatientIdentity(
        name=name,
        birth_date=birth_date,
        email=f"qa-{uuid.uuid4().hex[:8]}@example.org",
        phone=PATIENT_PHONE,
        sex=Sex(sex),
        country=country,
    )
    patient = register_patient(session=session, keys=keys, identity=who, now=NOW)
    session.commit()
    return patient


def make_qa_case(
    vault: Vault,
    patient: Patient,
    *,
    codes: tuple[str, ...] = ("M17.1",),
    treatment_start: date = date(2026, 9, 1),
    completed_at: datetime = NOW,
) -> Case:
    """A completed case of ``patient`` with an outcome of the given diagnoses (no documents)."""
    from vault.cases.models import CaseOutcome  # local: keeps this block self-contained
    from vault.cases.service import record_outcome

    case, _ = make_completed_case(vault, patient=patient, completed_at=completed_at, documents=0)
    outcome = CaseOutcome(
        diagnosis_codes=list(codes),
        result="improved",  # type: ignore[arg-type]
        treatment_start=treatment_start,
        treatment_end=treatment_start + timedelta(days=44),
        final_invoice_total="12480.50",  # type: ignore[arg-type]
        currency="EUR",
    )
    return record_outcome(
        session=vault.session,
        keys=vault.keys,
        case_id=case.id,
        outcome=outcome,
        now=completed_at,
        audit=AuditContext.SYSTEM,
    )


# --- data-subject exports ---
SUBJECT_PHONE = "+49 40 7654321"
SUBJECT_FILENAME = "Befund Müller ../../etc/passwd.pdf"  # a hostile name: the archive path tames it
SUBJECT_COMMENT = "Die Nachsorge war sehr gut, danke an Schwester Anna."  # free text, sealed


@dataclass
class SubjectWorld:
    """A patient with a row in every table that can hold something about them (see
    ``make_subject_world``), and the handles a test needs to look at it."""

    patient: Patient
    account: User
    coordinator: User
    partner: Partner
    cases: dict[str, Case]  # "completed", "open", "shredded"
    documents: list[Document]
    identity: PatientIdentity
    filename: str
    comment: str


def make_subject_world(
    vault: Vault,
    *,
    name: str = PATIENT_NAME,
    email: str = PATIENT_EMAIL,
    phone: str = SUBJECT_PHONE,
    filename: str = SUBJECT_FILENAME,
    comment: str = SUBJECT_COMMENT,
    partner: Partner | None = None,
) -> SubjectWorld:
    """A patient invited by a coordinator, signed in (and once not), with a completed case
    (documents by both, outcome, consents given and withdrawn, two transfers, one revoked,
    downloads, a survey with a comment and withdrawn QA consent), an open case under a legal
    hold and a lifted restriction, a case shredded at the end of its retention period, a
    restriction of all their data, both objections, an erasure request that erased the old case
    (shredded here the retention way) and kept the held one, and an export. Everything is done
    through the services, as its actor (patient, coordinator, privacy officer, partner), except
    the rows whose verbs other parts of issue 5 own."""
    from vault.accounts.service import (  # local: keeps this block self-contained
        MailContext,
        TokenLifetimes,
        accept_invitation,
        invite_patient,
        log_in,
    )
    from vault.audit.models import ActorKind
    from vault.cases.models import CaseOutcome, LegalHoldReason
    from vault.cases.service import complete_case, place_legal_hold, record_outcome
    from vault.consents.service import lift_restriction, place_restriction, withdraw_consent
    from vault.errors import InvalidCredentials
    from vault.links.service import download_from_link
    from vault.patients.models import Sex
    from vault.retention.service import shred_case
    from vault.subject_rights.models import (
        ErasedCase,
        ExportStatus,
        InterestObjection,
        RequestStatus,
        RetainedPart,
        RetentionGround,
        Right,
        SubjectExport,
    )
    from vault.subject_rights.requests import close_request, open_request
    from vault.surveys.service import answer_survey, object_to_qa_use, withdraw_qa_consent
    from vault.transfers.service import revoke_transfer

    session, keys = vault.session, vault.keys
    ticks = itertools.count(1)

    def at(base: datetime = NOW) -> datetime:
        """A moment of its own for every step, so that each time in the export is telling."""
        return base + timedelta(minutes=next(ticks))

    coordinator = make_user(session, Role.COORDINATOR)
    officer = make_user(session, Role.ADMIN)
    as_coordinator = AuditContext(ActorKind.USER, coordinator.id, "192.0.2.0")
    as_officer = AuditContext(ActorKind.USER, officer.id, "192.0.2.0")
    who = PatientIdentity(
        name=name,
        birth_date=PATIENT_BIRTH_DATE,
        email=email,
        phone=phone,
        sex=Sex.DIVERSE,
        country="AT",
    )
    notifier = RecordingNotifier()
    patient = invite_patient(
        session,
        keys=keys,
        lookup_key=LOGIN_LOOKUP_KEY,
        mail=MailContext(notifier=notifier, base_url="https://medvault.invalid"),
        identity=who,
        now=at(),
        audit=as_coordinator,
    )
    code = notifier.messages[-1].body.strip().splitlines()[-1]
    account = accept_invitation(
        session, token=code, password=USER_PASSWORD, now=at(), audit=AuditContext.SYSTEM
    )
    as_patient = AuditContext(ActorKind.USER, account.id, "198.51.100.0")
    log_in(
        session,
        lookup_key=LOGIN_LOOKUP_KEY,
        login=email,
        password=USER_PASSWORD,
        now=at(),
        audit=as_patient,
        lifetimes=TokenLifetimes(),
    )
    with contextlib.suppress(InvalidCredentials):  # a failed sign-in leaves the throttle's count
        log_in(
            session,
            lookup_key=LOGIN_LOOKUP_KEY,
            login=email,
            password="not the password",
            now=at(),
            audit=as_patient,
            lifetimes=TokenLifetimes(),
        )
    partner = partner or make_partner(session)

    def upload(
        case: Case,
        data: bytes,
        kind: DocumentKind,
        name: str,
        as_: AuditContext,
        base: datetime = NOW,
    ) -> Document:
        return store_document(
            session=session,
            store=vault.store,
            keys=keys,
            case_id=case.id,
            kind=kind,
            filename=name,
            source=io.BytesIO(data),
            limits=vault.limits,
            spool_dir=vault.spool_dir,
            frame_size=vault.frame_size,
            now=at(base),
            audit=as_,
        )

    outcome = CaseOutcome(
        diagnosis_codes=["M17.1", "I10"],
        result="improved",  # type: ignore[arg-type]
        treatment_start=date(2026, 9, 1),
        treatment_end=date(2026, 10, 15),
        final_invoice_total="12480.50",  # type: ignore[arg-type]
        currency="EUR",
    )

    # A case shredded at the end of its retention period, after a transfer and a survey.
    early = NOW - timedelta(days=6 * 366)
    shredded = open_case(
        session=session, keys=keys, patient_id=patient.id, now=at(early), audit=as_patient
    )
    old_document = upload(
        shredded, png_bytes(8, 8, seed=7), DocumentKind.RECORD, "alt.png", as_patient, early
    )
    record_outcome(
        session=session,
        keys=keys,
        case_id=shredded.id,
        outcome=outcome,
        now=at(early),
        audit=as_coordinator,
    )
    old_consent = make_consent(session, shredded, now=at(early))
    create_transfer(
        session,
        case_id=shredded.id,
        document_ids=[old_document.id],
        partner_id=partner.id,
        purpose=Purpose.TREATMENT_CHECK,
        legal_basis=LegalBasis.ART9_2_A,
        consent_id=old_consent.id,
        now=at(early),
        audit=as_coordinator,
        link_policy=link_policy(),
    )
    complete_case(
        session=session,
        keys=keys,
        case_id=shredded.id,
        completed_at=early + timedelta(days=30),
        retention_years=RETENTION_YEARS,
        now=early + timedelta(days=30),
        audit=as_coordinator,
    )
    answer_survey(
        session=session,
        keys=keys,
        patient_id=patient.id,
        case_id=shredded.id,
        scores={"information": 2},
        free_text="this comment goes with its case",
        qa_consent=False,
        now=early + timedelta(days=31),
        audit=as_patient,
    )

    # The completed case: the patient's record and the coordinator's invoice, forwarded twice.
    completed = open_case(
        session=session, keys=keys, patient_id=patient.id, now=at(), audit=as_patient
    )
    record = upload(completed, pdf_bytes(), DocumentKind.RECORD, filename, as_patient)
    invoice = upload(
        completed, png_bytes(seed=3), DocumentKind.INVOICE, "rechnung.png", as_coordinator
    )
    record_outcome(
        session=session,
        keys=keys,
        case_id=completed.id,
        outcome=outcome,
        now=at(),
        audit=as_coordinator,
    )
    consent = give_consent(
        session,
        patient_id=patient.id,
        case_id=completed.id,
        text_version=FORWARDING_2026_11.version,
        now=at(),
        audit=as_patient,
    )
    withdrawn = give_consent(
        session,
        patient_id=patient.id,
        case_id=completed.id,
        text_version=FORWARDING_2026_11.version,
        now=at(),
        audit=as_patient,
    )
    withdraw_consent(
        session,
        patient_id=patient.id,
        case_id=completed.id,
        consent_id=withdrawn.id,
        now=at(),
        audit=as_patient,
    )
    sent = create_transfer(
        session,
        case_id=completed.id,
        document_ids=[record.id, invoice.id],
        partner_id=partner.id,
        purpose=Purpose.TREATMENT_CHECK,
        legal_basis=LegalBasis.ART9_2_A,
        consent_id=consent.id,
        now=at(),
        audit=as_coordinator,
        link_policy=link_policy(),
    )
    released = download_from_link(
        session,
        store=vault.store,
        keys=keys,
        token=sent.link.token,
        document_id=record.id,
        code=sent.link.access_code,
        now=at(),
        audit=AuditContext(ActorKind.ANONYMOUS, None, "203.0.113.0"),
    )
    b"".join(released.stream.chunks)
    billing = create_transfer(
        session,
        case_id=completed.id,
        document_ids=[invoice.id],
        partner_id=partner.id,
        purpose=Purpose.BILLING,
        legal_basis=LegalBasis.ART6_1_B,
        consent_id=None,
        now=at(),
        audit=as_coordinator,
        link_policy=link_policy(),
    )
    revoke_transfer(session, transfer_id=billing.transfer.id, now=at(), audit=as_coordinator)
    complete_case(
        session=session,
        keys=keys,
        case_id=completed.id,
        completed_at=(completion := at()),
        retention_years=RETENTION_YEARS,
        now=completion,
        audit=as_coordinator,
    )
    answer_survey(
        session=session,
        keys=keys,
        patient_id=patient.id,
        case_id=completed.id,
        scores={"information": 5, "treatment": 4},
        free_text=comment,
        qa_consent=True,
        now=at(),
        audit=as_patient,
    )
    withdraw_qa_consent(session=session, patient_id=patient.id, now=at(), audit=as_patient)
    object_to_qa_use(session=session, patient_id=patient.id, now=at(), audit=as_patient)

    # The open case: held, and restricted for a while.
    held = open_case(
        session=session, keys=keys, patient_id=patient.id, now=at(), audit=as_coordinator
    )
    upload(held, png_bytes(seed=4), DocumentKind.RECORD, "röntgen.png", as_coordinator)
    place_legal_hold(
        session=session,
        case_id=held.id,
        reason=LegalHoldReason.INSURANCE_DISPUTE,
        now=at(),
        audit=as_officer,
    )
    lifted = place_restriction(
        session, patient_id=patient.id, case_id=held.id, now=at(), audit=as_officer
    )
    lift_restriction(session, restriction_id=lifted.id, now=at(), audit=as_officer)
    place_restriction(session, patient_id=patient.id, case_id=None, now=at(), audit=as_officer)

    # Shredded last: a patient left with no other case would be erased with it.
    shred_case(
        session=session,
        store=vault.store,
        keys=keys,
        case_id=shredded.id,
        retention_years=RETENTION_YEARS,
        now=NOW - timedelta(days=1),
    )

    # Rows whose verbs belong to other parts of issue 5, made directly.
    session.add(InterestObjection(patient_id=patient.id, objected_at=at()))
    erasure = open_request(
        session, patient_id=patient.id, right=Right.ERASURE, now=at(), audit=as_patient
    )
    session.add(ErasedCase(case_id=shredded.id, request_id=erasure.id))
    session.add(
        RetainedPart(
            request_id=erasure.id,
            case_id=held.id,
            ground=RetentionGround.LEGAL_CLAIMS,
            reason=LegalHoldReason.INSURANCE_DISPUTE,
            until=None,
        )
    )
    close_request(
        session, erasure, status=RequestStatus.PARTIALLY_COMPLETED, now=at(), audit=as_patient
    )
    access = open_request(
        session, patient_id=patient.id, right=Right.ACCESS, now=at(), audit=as_patient
    )
    session.add(
        SubjectExport(
            request_id=access.id,
            patient_id=patient.id,
            status=ExportStatus.READY,
            key_id=uuid.uuid4(),
            object_key=f"exports/{uuid.uuid4()}",
            size=4096,
            created_at=at(),
            started_at=at(),
            ready_at=(ready := at()),
            expires_at=ready + timedelta(days=3),
        )
    )
    session.commit()
    return SubjectWorld(
        patient=patient,
        account=account,
        coordinator=coordinator,
        partner=partner,
        cases={"completed": completed, "open": held, "shredded": shredded},
        documents=[record, invoice],
        identity=who,
        filename=filename,
        comment=comment,
    )
