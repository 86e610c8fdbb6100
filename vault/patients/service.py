"""Patient verbs: register with sealed identity fields, read them back (unsafe_), look up,
re-seal corrected fields (rectification, Art. 16)."""

import enum
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session

from keys.store import KeyStore
from vault.crypto.fields import FieldOpener, seal_field
from vault.errors import KeyDestroyed, NotFound
from vault.keyring import translated_key_errors
from vault.patients.models import Patient, Sex


@dataclass(frozen=True, repr=False)
class PatientIdentity:
    """Names and contact data in the clear. Its repr is redacted so it never reaches a log."""

    name: str
    birth_date: date
    email: str
    phone: str | None = None
    sex: Sex = Sex.UNKNOWN
    country: str | None = None  # ISO 3166-1 alpha-2, upper case

    def __repr__(self) -> str:
        return "PatientIdentity(<redacted>)"


class PatientField(enum.StrEnum):
    """A sealed identity field of the patient row (the column is ``<value>_sealed``)."""

    NAME = "name"
    BIRTH_DATE = "birth_date"  # ISO 8601 date
    EMAIL = "email"
    PHONE = "phone"  # optional
    SEX = "sex"  # a Sex value
    COUNTRY = "country"  # optional, ISO 3166-1 alpha-2

    @property
    def optional(self) -> bool:
        return self in (PatientField.PHONE, PatientField.COUNTRY)


def _context(patient_id: uuid.UUID | str, field: str) -> bytes:
    # Binding each sealed value to its row and column stops values being swapped between them.
    return f"patient:{patient_id}:{field}".encode()


def unsafe_patient_field_opener(
    key: bytes, *, patient_id: uuid.UUID | str
) -> Callable[[str, bytes], str]:
    """Opens the sealed fields of one patient row with their already unwrapped key:
    ``opener(field, sealed)``; one cipher and one formatted id for all of the row's fields.

    For bulk readers (QA extracts) that unwrap keys in batches instead of one per patient.
    Raises DecryptionFailed if a value does not belong to that row and column.
    """
    cipher, row = FieldOpener(key), str(patient_id)

    def opener(field: str, sealed: bytes) -> str:
        return cipher.open(sealed, context=_context(row, field)).decode()

    return opener


def register_patient(
    *, session: Session, keys: KeyStore, identity: PatientIdentity, now: datetime
) -> Patient:
    """Create a patient with a key of their own; identity fields are stored only sealed."""
    patient_id = uuid.uuid4()
    with translated_key_errors():
        key_id = keys.create_key(session, kind="patient", now=now)
        key = keys.unsafe_key_material(session, key_id)

    def seal(field: str, value: str) -> bytes:
        return seal_field(key, value.encode(), context=_context(patient_id, field))

    patient = Patient(
        id=patient_id,
        key_id=key_id,
        name_sealed=seal("name", identity.name),
        birth_date_sealed=seal("birth_date", identity.birth_date.isoformat()),
        email_sealed=seal("email", identity.email),
        phone_sealed=seal("phone", identity.phone) if identity.phone is not None else None,
        sex_sealed=seal("sex", identity.sex),
        country_sealed=seal("country", identity.country) if identity.country is not None else None,
        created_at=now,
    )
    session.add(patient)
    session.flush()
    return patient


def reseal_patient_fields(
    *,
    session: Session,
    keys: KeyStore,
    patient: Patient,
    values: Mapping[PatientField, str | None],
) -> None:
    """Replace identity fields with new values sealed under the patient key (flushes; the
    caller commits). The old ciphertext is overwritten in its row, not kept beside it; None
    clears an optional field. KeyDestroyed once the patient was erased."""
    if patient.erased_at is not None:
        raise KeyDestroyed("this patient's data was erased")
    if any(value is None and not field.optional for field, value in values.items()):
        raise ValueError("only the optional fields can be cleared")
    with translated_key_errors():
        key = keys.unsafe_key_material(session, patient.key_id)
    for field, value in values.items():
        sealed = None
        if value is not None:
            sealed = seal_field(key, value.encode(), context=_context(patient.id, field))
        setattr(patient, f"{field.value}_sealed", sealed)
    session.add(patient)
    session.flush()


def get_patient(*, session: Session, patient_id: uuid.UUID) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("no such patient")
    return patient


def unsafe_patient_identity(
    *, session: Session, keys: KeyStore, patient: Patient
) -> PatientIdentity:
    """Unseal a patient's identity. Raises KeyDestroyed once their key is erased."""
    if patient.erased_at is not None:
        raise KeyDestroyed("this patient's data was erased")
    with translated_key_errors():
        key = keys.unsafe_key_material(session, patient.key_id)

    unseal = unsafe_patient_field_opener(key, patient_id=patient.id)

    return PatientIdentity(
        name=unseal("name", patient.name_sealed),
        birth_date=date.fromisoformat(unseal("birth_date", patient.birth_date_sealed)),
        email=unseal("email", patient.email_sealed),
        phone=unseal("phone", patient.phone_sealed) if patient.phone_sealed is not None else None,
        sex=Sex(unseal("sex", patient.sex_sealed))
        if patient.sex_sealed is not None
        else Sex.UNKNOWN,
        country=(
            unseal("country", patient.country_sealed)
            if patient.country_sealed is not None
            else None
        ),
    )
