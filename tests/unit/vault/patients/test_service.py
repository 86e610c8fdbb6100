"""Patients' sex and country: optional, sealed like the other identity fields, read back."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from tests.factories import NOW, PATIENT_NAME, identity, local_vault, make_qa_patient
from vault.patients.models import Sex
from vault.patients.service import register_patient, unsafe_patient_identity


def test_sex_and_country_are_stored_only_sealed_and_read_back(
    session: Session, tmp_path: Path
) -> None:
    vault = local_vault(session, tmp_path)
    patient = make_qa_patient(session, vault.keys, sex="diverse", country="AT")
    assert patient.sex_sealed is not None
    assert patient.country_sealed is not None
    assert b"diverse" not in patient.sex_sealed
    assert b"AT" not in patient.country_sealed
    who = unsafe_patient_identity(session=session, keys=vault.keys, patient=patient)
    assert (who.sex, who.country, who.name) == (Sex.DIVERSE, "AT", PATIENT_NAME)


def test_without_them_a_patient_is_of_unknown_sex_and_no_country(
    session: Session, tmp_path: Path
) -> None:
    vault = local_vault(session, tmp_path)
    patient = register_patient(session=session, keys=vault.keys, identity=identity(), now=NOW)
    assert patient.country_sealed is None
    who = unsafe_patient_identity(session=session, keys=vault.keys, patient=patient)
    assert (who.sex, who.country) == (Sex.UNKNOWN, None)
