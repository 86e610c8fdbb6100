"""Test data, made in one place: patients, cases, and small valid files of each accepted type."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pikepdf
from PIL import Image
from sqlmodel import Session

from keys.store import KeyStore
from vault.cases.models import Case
from vault.cases.service import open_case
from vault.documents.models import Document, DocumentKind
from vault.documents.service import store_document
from vault.intake import IntakeLimits
from vault.patients.models import Patient
from vault.patients.service import PatientIdentity, register_patient
from vault.storage.interfaces import BlobStore

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
    case = open_case(session=session, keys=keys, patient_id=patient.id, now=NOW)
    session.commit()
    return case


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
        )
