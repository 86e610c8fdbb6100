"""create_transfer's checks and refusals, revocation, listing and the patient's disclosures."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, func, select

from tests.factories import (
    NOW,
    Vault,
    local_vault,
    make_case,
    make_consent,
    make_partner,
    make_transfer,
    make_transfer_setup,
    pdf_bytes,
)
from vault.audit.models import AuditAction, AuditEvent
from vault.audit.service import AuditContext
from vault.cases.models import CaseStatus
from vault.consents.service import place_restriction, withdraw_consent
from vault.errors import (
    ConsentWithdrawn,
    Gone,
    InvalidTransfer,
    LegalBasisMissing,
    NotFound,
    ProcessingRestricted,
)
from vault.links.models import Link
from vault.links.service import CODE_ALPHABET, CODE_LENGTH, download_from_link, token_digest
from vault.partners.service import disable_partner
from vault.transfers.models import LegalBasis, Purpose, Transfer, TransferDocument
from vault.transfers.service import (
    disclosures_for_patient,
    list_transfers_for_case,
    revoke_transfer,
)

SYSTEM = AuditContext.SYSTEM


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


def count(session: Session, model: type) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def events(session: Session, action: AuditAction) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def assert_no_transfer_stored(session: Session) -> None:
    assert count(session, Transfer) == 0
    assert count(session, TransferDocument) == 0
    assert count(session, Link) == 0
    assert events(session, AuditAction.TRANSFER_CREATE) == []


def test_transfer_stores_documents_in_order_and_a_link_without_its_secrets(vault: Vault) -> None:
    setup = make_transfer_setup(vault)

    issued = make_transfer(vault.session, setup)

    transfer = vault.session.get(Transfer, issued.transfer.id)
    assert transfer is not None
    assert (transfer.case_id, transfer.partner_id) == (setup.case.id, setup.partner.id)
    assert (transfer.legal_basis, transfer.consent_id) == (LegalBasis.ART9_2_A, setup.consent.id)
    rows = vault.session.exec(
        select(TransferDocument).order_by(TransferDocument.position)  # type: ignore[arg-type]
    ).all()
    expected = [(d.id, position) for position, d in enumerate(setup.documents, start=1)]
    assert [(r.document_id, r.position) for r in rows] == expected
    link = vault.session.exec(select(Link)).one()
    assert link.token_digest == token_digest(issued.link.token)
    assert issued.link.token not in link.token_digest
    assert link.code_hash.startswith("$argon2id$")
    assert issued.link.access_code not in link.code_hash
    assert len(issued.link.token) >= 43  # 256 random bits
    assert len(issued.link.access_code) == CODE_LENGTH
    assert set(issued.link.access_code) <= set(CODE_ALPHABET)
    assert link.expires_at == NOW + timedelta(days=7)
    assert (link.max_downloads, link.downloads, link.max_code_attempts) == (5, 0, 5)
    [event] = events(vault.session, AuditAction.TRANSFER_CREATE)
    assert (event.transfer_id, event.case_id, event.partner_id) == (
        transfer.id,
        setup.case.id,
        setup.partner.id,
    )
    assert (event.legal_basis, event.purpose, event.outcome) == (
        "art9-2-a",
        "treatment-check",
        "ok",
    )
    assert "redacted" in repr(issued)
    assert issued.link.token not in repr(issued)
    assert issued.link.access_code not in repr(issued)


def test_a_basis_without_consent_needs_no_consent(vault: Vault) -> None:
    setup = make_transfer_setup(vault)

    issued = make_transfer(vault.session, setup, legal_basis=LegalBasis.ART9_2_H, consent_id=None)

    assert issued.transfer.consent_id is None
    assert count(vault.session, Transfer) == 1


@pytest.mark.parametrize("basis", [LegalBasis.ART6_1_A, LegalBasis.ART9_2_A])
def test_refused_without_consent(vault: Vault, basis: LegalBasis) -> None:
    setup = make_transfer_setup(vault)

    with pytest.raises(LegalBasisMissing):
        make_transfer(vault.session, setup, legal_basis=basis, consent_id=None)

    assert_refused(vault.session, basis)


def test_refused_with_the_consent_of_another_case(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    other_case = make_case(vault.session, vault.keys)
    other_consent = make_consent(vault.session, other_case)

    with pytest.raises(LegalBasisMissing):
        make_transfer(vault.session, setup, consent_id=other_consent.id)

    assert_refused(vault.session, LegalBasis.ART9_2_A)


def test_refused_with_an_unknown_consent(vault: Vault) -> None:
    setup = make_transfer_setup(vault)

    with pytest.raises(LegalBasisMissing):
        make_transfer(vault.session, setup, consent_id=uuid.uuid4())

    assert_refused(vault.session, LegalBasis.ART9_2_A)


def test_refused_after_the_consent_was_withdrawn(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    withdraw_consent(
        vault.session,
        patient_id=setup.case.patient_id,
        case_id=setup.case.id,
        consent_id=setup.consent.id,
        now=NOW,
        audit=SYSTEM,
    )

    with pytest.raises(ConsentWithdrawn) as refused:
        make_transfer(vault.session, setup, now=NOW + timedelta(seconds=1))

    assert refused.value.slug == "consent-withdrawn"
    assert_refused(vault.session, LegalBasis.ART9_2_A)


@pytest.mark.parametrize("whole_patient", [True, False])
@pytest.mark.parametrize("basis", [LegalBasis.ART9_2_A, LegalBasis.ART9_2_H])
def test_refused_while_processing_is_restricted(
    vault: Vault, whole_patient: bool, basis: LegalBasis
) -> None:
    setup = make_transfer_setup(vault)
    place_restriction(
        vault.session,
        patient_id=setup.case.patient_id,
        case_id=None if whole_patient else setup.case.id,
        now=NOW,
        audit=SYSTEM,
    )

    with pytest.raises(ProcessingRestricted) as refused:
        make_transfer(vault.session, setup, legal_basis=basis)

    assert refused.value.slug == "processing-restricted"
    assert_refused(vault.session, basis)


def assert_refused(session: Session, basis: LegalBasis) -> None:
    assert_no_transfer_stored(session)
    [event] = events(session, AuditAction.TRANSFER_REFUSED)
    assert (event.outcome, event.legal_basis, event.transfer_id) == ("refused", basis, None)
    assert event.case_id is not None
    assert event.partner_id is not None


def test_a_restriction_of_another_case_does_not_block(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    other_case = make_case(vault.session, vault.keys)
    patient_case = make_case(vault.session, vault.keys)
    place_restriction(
        vault.session,
        patient_id=other_case.patient_id,
        case_id=other_case.id,
        now=NOW,
        audit=SYSTEM,
    )
    assert patient_case.patient_id != other_case.patient_id

    make_transfer(vault.session, setup)

    assert count(vault.session, Transfer) == 1


def test_documents_of_another_case_are_not_found(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    other_case = make_case(vault.session, vault.keys)
    foreign = vault.upload(other_case, pdf_bytes())

    with pytest.raises(NotFound):
        make_transfer(vault.session, setup, document_ids=[setup.documents[0].id, foreign.id])

    assert_no_transfer_stored(vault.session)
    assert events(vault.session, AuditAction.TRANSFER_REFUSED) == []


@pytest.mark.parametrize("problem", ["unknown", "shredded"])
def test_unknown_or_shredded_documents_are_not_found(vault: Vault, problem: str) -> None:
    setup = make_transfer_setup(vault)
    if problem == "shredded":
        setup.documents[1].shredded_at = NOW
        vault.session.add(setup.documents[1])
        vault.session.commit()
        document_ids = [d.id for d in setup.documents]
    else:
        document_ids = [setup.documents[0].id, uuid.uuid4()]

    with pytest.raises(NotFound):
        make_transfer(vault.session, setup, document_ids=document_ids)

    assert_no_transfer_stored(vault.session)


def test_a_disabled_partner_receives_nothing(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    disable_partner(vault.session, partner_id=setup.partner.id, now=NOW, audit=SYSTEM)

    with pytest.raises(NotFound):
        make_transfer(vault.session, setup)

    assert_no_transfer_stored(vault.session)


def test_a_shredded_case_is_gone(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    setup.case.status = CaseStatus.SHREDDED
    vault.session.add(setup.case)
    vault.session.commit()

    with pytest.raises(Gone):
        make_transfer(vault.session, setup)

    assert_no_transfer_stored(vault.session)


@pytest.mark.parametrize(
    "overrides",
    [
        {"document_ids": []},
        {"expires_in": timedelta(days=30, seconds=1)},
        {"expires_in": timedelta(0)},
        {"max_downloads": 0},
    ],
)
def test_impossible_requests_are_invalid(vault: Vault, overrides: dict[str, Any]) -> None:
    setup = make_transfer_setup(vault)

    with pytest.raises(InvalidTransfer) as refused:
        make_transfer(vault.session, setup, **overrides)

    assert refused.value.slug == "invalid-transfer"
    assert_no_transfer_stored(vault.session)


def test_expiry_and_download_limit_can_be_chosen_within_the_policy(vault: Vault) -> None:
    setup = make_transfer_setup(vault)

    issued = make_transfer(vault.session, setup, expires_in=timedelta(days=30), max_downloads=12)

    assert (issued.link.link.expires_at, issued.link.link.max_downloads) == (
        NOW + timedelta(days=30),
        12,
    )


def test_revoke_is_recorded_once(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    issued = make_transfer(vault.session, setup)
    later = NOW + timedelta(hours=1)

    first = revoke_transfer(vault.session, transfer_id=issued.transfer.id, now=later, audit=SYSTEM)
    again = revoke_transfer(
        vault.session, transfer_id=issued.transfer.id, now=later + timedelta(hours=1), audit=SYSTEM
    )

    assert first.revoked_at == later
    assert again.revoked_at == later
    assert len(events(vault.session, AuditAction.TRANSFER_REVOKE)) == 1
    with pytest.raises(NotFound):
        revoke_transfer(vault.session, transfer_id=uuid.uuid4(), now=later, audit=SYSTEM)


def test_list_transfers_of_a_case(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    first = make_transfer(vault.session, setup, document_ids=[setup.documents[0].id])
    second = make_transfer(vault.session, setup, now=NOW + timedelta(minutes=1))
    make_transfer(vault.session, make_transfer_setup(vault))  # another case's

    records = list_transfers_for_case(vault.session, case_id=setup.case.id, now=NOW, audit=SYSTEM)

    assert [r.transfer.id for r in records] == [first.transfer.id, second.transfer.id]
    assert records[0].document_ids == [setup.documents[0].id]
    assert records[1].document_ids == [d.id for d in setup.documents]
    assert records[1].link.id == second.link.link.id
    [event] = events(vault.session, AuditAction.TRANSFER_LIST)
    assert event.case_id == setup.case.id


def test_disclosures_list_every_transfer_and_download_of_the_patient(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    insurer = make_partner(vault.session, name="Versicherung", contact_email="a@insurer.example")
    first = make_transfer(vault.session, setup)
    second = make_transfer(
        vault.session,
        setup,
        now=NOW + timedelta(hours=1),
        partner_id=insurer.id,
        document_ids=[setup.documents[1].id],
        purpose=Purpose.COST_COVERAGE,
        legal_basis=LegalBasis.ART6_1_B,
        consent_id=None,
    )
    revoke_transfer(
        vault.session, transfer_id=second.transfer.id, now=NOW + timedelta(hours=2), audit=SYSTEM
    )
    fetched_at = NOW + timedelta(hours=3)
    b"".join(
        download_from_link(
            vault.session,
            store=vault.store,
            keys=vault.keys,
            token=first.link.token,
            document_id=setup.documents[1].id,
            code=first.link.access_code,
            now=fetched_at,
            audit=SYSTEM,
        ).stream.chunks
    )
    make_transfer(vault.session, make_transfer_setup(vault))  # another patient's

    disclosures = disclosures_for_patient(
        vault.session, patient_id=setup.case.patient_id, now=NOW, audit=SYSTEM
    )

    assert [d.transfer_id for d in disclosures] == [first.transfer.id, second.transfer.id]
    one, two = disclosures
    assert (one.partner.id, one.partner.kind, one.partner.name) == (
        setup.partner.id,
        setup.partner.kind,
        setup.partner.name,
    )
    assert [(d.id, d.kind) for d in one.documents] == [(d.id, d.kind) for d in setup.documents]
    assert (one.purpose, one.legal_basis, one.created_at, one.revoked_at) == (
        Purpose.TREATMENT_CHECK,
        LegalBasis.ART9_2_A,
        NOW,
        None,
    )
    assert [(d.document_id, d.at) for d in one.downloads] == [(setup.documents[1].id, fetched_at)]
    assert (two.partner.id, two.purpose, two.legal_basis) == (
        insurer.id,
        Purpose.COST_COVERAGE,
        LegalBasis.ART6_1_B,
    )
    assert [d.id for d in two.documents] == [setup.documents[1].id]
    assert (two.revoked_at, two.downloads) == (NOW + timedelta(hours=2), [])
    [event] = events(vault.session, AuditAction.DISCLOSURE_LIST)
    assert event.patient_id == setup.case.patient_id


def lose_the_commit_of_the_transfer(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, *, committed: bool
) -> None:
    """Make the transfer's commit raise as a lost connection does: after the server committed
    (``committed``: only its answer was lost) or before."""
    real_commit = vault.session.commit
    failed: list[bool] = []

    def commit() -> None:
        holds_a_link = any(isinstance(o, Link) for o in vault.session.identity_map.values())
        if holds_a_link and not failed:
            failed.append(True)
            if committed:
                real_commit()
            raise sa.exc.OperationalError("COMMIT", {}, ConnectionResetError("answer lost"))
        real_commit()

    monkeypatch.setattr(vault.session, "commit", commit)


def test_a_transfer_whose_commit_answer_was_lost_is_issued_with_its_code(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the fault suite (tests/faults): a transfer committed while the connection broke
    before the commit's answer came back was answered 503, so the coordinator had no link and
    no code for a disclosure that was recorded, and would send it again. Now the transfer is
    looked up and issued."""
    setup = make_transfer_setup(vault)
    lose_the_commit_of_the_transfer(vault, monkeypatch, committed=True)

    issued = make_transfer(vault.session, setup)

    assert count(vault.session, Transfer) == 1
    assert len(events(vault.session, AuditAction.TRANSFER_CREATE)) == 1
    downloaded = download_from_link(
        vault.session,
        store=vault.store,
        keys=vault.keys,
        token=issued.link.token,
        document_id=setup.documents[0].id,
        code=issued.link.access_code,
        now=NOW,
        audit=SYSTEM,
    )
    assert b"".join(downloaded.stream.chunks).startswith(b"%PDF")


def test_a_transfer_whose_commit_failed_stores_nothing(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_transfer_setup(vault)
    lose_the_commit_of_the_transfer(vault, monkeypatch, committed=False)

    with pytest.raises(sa.exc.OperationalError):
        make_transfer(vault.session, setup)

    assert_no_transfer_stored(vault.session)
