"""reseal_patient_fields: rectified fields are sealed again under the patient key, in place."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session

from tests.factories import NOW, PATIENT_NAME, Vault, local_vault, make_patient
from vault.errors import DecryptionFailed, KeyDestroyed
from vault.patients.models import Patient, Sex
from vault.patients.service import (
    PatientField,
    reseal_patient_fields,
    unsafe_patient_field_opener,
    unsafe_patient_identity,
)


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


def sealed(patient: Patient) -> dict[PatientField, bytes | None]:
    return {field: getattr(patient, f"{field.value}_sealed") for field in PatientField}


def test_given_fields_are_replaced_and_the_others_kept(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    old_name = patient.name_sealed

    reseal_patient_fields(
        session=vault.session,
        keys=vault.keys,
        patient=patient,
        values={
            PatientField.NAME: "Erika Neu",
            PatientField.SEX: Sex.FEMALE.value,
            PatientField.PHONE: None,
            PatientField.BIRTH_DATE: "1964-08-13",
        },
    )
    vault.session.commit()

    identity = unsafe_patient_identity(session=vault.session, keys=vault.keys, patient=patient)
    assert (identity.name, identity.sex, identity.phone) == ("Erika Neu", Sex.FEMALE, None)
    assert identity.birth_date == date(1964, 8, 13)
    assert identity.email == "erika.mustermann@example.org"
    assert patient.name_sealed != old_name
    assert PATIENT_NAME.encode() not in patient.name_sealed


def test_a_resealed_value_is_bound_to_its_column(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    reseal_patient_fields(
        session=vault.session,
        keys=vault.keys,
        patient=patient,
        values={PatientField.NAME: "Erika Neu"},
    )
    key = vault.keys.unsafe_key_material(vault.session, patient.key_id)

    with pytest.raises(DecryptionFailed):
        unsafe_patient_field_opener(key, patient_id=patient.id)("email", patient.name_sealed)


@pytest.mark.parametrize("field", [f for f in PatientField if not f.optional])
def test_required_fields_cannot_be_cleared(vault: Vault, field: PatientField) -> None:
    patient = make_patient(vault.session, vault.keys)
    before = sealed(patient)

    with pytest.raises(ValueError, match="optional"):
        reseal_patient_fields(
            session=vault.session, keys=vault.keys, patient=patient, values={field: None}
        )

    assert sealed(patient) == before


def test_an_erased_patient_has_nothing_to_reseal(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    patient.erased_at = NOW

    with pytest.raises(KeyDestroyed):
        reseal_patient_fields(
            session=vault.session,
            keys=vault.keys,
            patient=patient,
            values={PatientField.NAME: "Erika Neu"},
        )
