"""Consents (give, withdraw, list, the live-consent check) and restrictions."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from tests.factories import NOW, Vault, local_vault, make_case, make_consent
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.consents.models import Consent, Restriction
from vault.consents.service import (
    assert_not_restricted,
    give_consent,
    lift_restriction,
    list_consents,
    live_consent,
    place_restriction,
    withdraw_consent,
)
from vault.consents.texts import CONSENT_TEXTS, FORWARDING_2026_11
from vault.errors import (
    ConsentWithdrawn,
    LegalBasisMissing,
    NotFound,
    ProcessingRestricted,
    UnknownConsentText,
)

SYSTEM = AuditContext.SYSTEM
LATER = NOW + timedelta(days=1)


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


def actions(session: Session) -> list[str]:
    return [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()]  # type: ignore[arg-type]


def test_the_consent_text_is_explicit_and_hashed() -> None:
    text = CONSENT_TEXTS["forwarding-2026-11"]
    assert "Art. 9(2)(a)" in text.text
    assert "withdraw" in text.text
    assert text.sha256 == hashlib.sha256(text.text.encode()).hexdigest()


def test_give_consent_records_version_hash_and_time(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)

    consent = make_consent(vault.session, case)

    stored = vault.session.get(Consent, consent.id)
    assert stored is not None
    assert (stored.patient_id, stored.case_id, stored.given_at) == (case.patient_id, case.id, NOW)
    assert (stored.text_version, stored.text_sha256) == (
        FORWARDING_2026_11.version,
        FORWARDING_2026_11.sha256,
    )
    assert actions(vault.session)[-1] == "consent.give"


def test_unknown_text_version_is_refused(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)

    with pytest.raises(UnknownConsentText) as refused:
        give_consent(
            vault.session,
            patient_id=case.patient_id,
            case_id=case.id,
            text_version="forwarding-1999",
            now=NOW,
            audit=SYSTEM,
        )

    assert (refused.value.status, refused.value.slug) == (422, "unknown-consent-text")
    assert vault.session.exec(select(Consent)).all() == []


def test_consent_for_another_patients_case_is_not_found(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    other = make_case(vault.session, vault.keys)

    with pytest.raises(NotFound):
        give_consent(
            vault.session,
            patient_id=other.patient_id,
            case_id=case.id,
            text_version=FORWARDING_2026_11.version,
            now=NOW,
            audit=SYSTEM,
        )
    assert vault.session.exec(select(Consent)).all() == []


def test_withdrawal_is_recorded_once_and_only_by_the_patient(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    consent = make_consent(vault.session, case)

    with pytest.raises(NotFound):
        withdraw_consent(
            vault.session,
            patient_id=uuid.uuid4(),
            case_id=case.id,
            consent_id=consent.id,
            now=LATER,
            audit=SYSTEM,
        )
    for moment in (LATER, LATER + timedelta(days=1)):
        withdrawn = withdraw_consent(
            vault.session,
            patient_id=case.patient_id,
            case_id=case.id,
            consent_id=consent.id,
            now=moment,
            audit=SYSTEM,
        )

    assert withdrawn.withdrawn_at == LATER
    assert actions(vault.session).count("consent.withdraw") == 1
    with pytest.raises(ConsentWithdrawn):
        live_consent(
            vault.session, patient_id=case.patient_id, case_id=case.id, consent_id=consent.id
        )


def test_live_consent_must_be_of_the_patient_for_the_case(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    consent = make_consent(vault.session, case)
    other_case = make_case(vault.session, vault.keys)

    assert (
        live_consent(
            vault.session, patient_id=case.patient_id, case_id=case.id, consent_id=consent.id
        ).id
        == consent.id
    )
    for consent_id, case_id in (
        (None, case.id),
        (uuid.uuid4(), case.id),
        (consent.id, other_case.id),
    ):
        with pytest.raises(LegalBasisMissing):
            live_consent(
                vault.session, patient_id=case.patient_id, case_id=case_id, consent_id=consent_id
            )


def test_list_consents_is_scoped_to_the_patient(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    consent = make_consent(vault.session, case)
    other = make_case(vault.session, vault.keys)

    listed = list_consents(
        vault.session, case_id=case.id, patient_id=case.patient_id, now=NOW, audit=SYSTEM
    )

    assert [c.id for c in listed] == [consent.id]
    with pytest.raises(NotFound):
        list_consents(
            vault.session, case_id=case.id, patient_id=other.patient_id, now=NOW, audit=SYSTEM
        )


def test_restrictions_block_until_lifted(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    other_case = make_case(vault.session, vault.keys)

    restriction = place_restriction(
        vault.session, patient_id=case.patient_id, case_id=case.id, now=NOW, audit=SYSTEM
    )

    with pytest.raises(ProcessingRestricted):
        assert_not_restricted(vault.session, patient_id=case.patient_id, case_id=case.id)
    assert_not_restricted(vault.session, patient_id=other_case.patient_id, case_id=other_case.id)
    lifted = lift_restriction(vault.session, restriction_id=restriction.id, now=LATER, audit=SYSTEM)
    assert lifted.lifted_at == LATER
    assert_not_restricted(vault.session, patient_id=case.patient_id, case_id=case.id)
    assert actions(vault.session)[-2:] == ["restriction.place", "restriction.lift"]


def test_a_restriction_names_a_real_patient_and_their_own_case(vault: Vault) -> None:
    case = make_case(vault.session, vault.keys)
    other_case = make_case(vault.session, vault.keys)

    for patient_id, case_id in ((uuid.uuid4(), None), (case.patient_id, other_case.id)):
        with pytest.raises(NotFound):
            place_restriction(
                vault.session, patient_id=patient_id, case_id=case_id, now=NOW, audit=SYSTEM
            )
    assert vault.session.exec(select(Restriction)).all() == []
