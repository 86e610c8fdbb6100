"""revoke_unused_transfers: what a withdrawal or objection does to transfers already made."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from tests.factories import NOW, Vault, local_vault, make_transfer, make_transfer_setup
from vault.audit.models import AuditAction, AuditEvent
from vault.audit.service import AuditContext
from vault.links.models import Link
from vault.transfers import service
from vault.transfers.models import Transfer
from vault.transfers.service import KeptBecause, revoke_transfer, revoke_unused_transfers

SYSTEM = AuditContext.SYSTEM
LATER = NOW + timedelta(days=2)


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


def revocations(session: Session) -> list[AuditEvent]:
    statement = select(AuditEvent).where(AuditEvent.action == AuditAction.TRANSFER_REVOKE)
    return list(session.exec(statement).all())


def used(session: Session, transfer: Transfer) -> None:
    link = session.exec(select(Link).where(Link.transfer_id == transfer.id)).one()
    link.downloads = 1
    session.add(link)
    session.commit()


def test_unused_links_are_revoked_used_and_expired_ones_kept(vault: Vault) -> None:
    setup = make_transfer_setup(vault)
    unused = make_transfer(vault.session, setup, now=NOW + timedelta(seconds=1)).transfer
    downloaded = make_transfer(vault.session, setup, now=NOW + timedelta(seconds=2)).transfer
    expired = make_transfer(
        vault.session, setup, now=NOW + timedelta(seconds=3), expires_in=timedelta(days=1)
    ).transfer
    revoked = make_transfer(vault.session, setup, now=NOW + timedelta(seconds=4)).transfer
    used(vault.session, downloaded)
    revoke_transfer(vault.session, transfer_id=revoked.id, now=NOW, audit=SYSTEM)

    outcome = revoke_unused_transfers(
        vault.session,
        where=col(Transfer.case_id) == setup.case.id,
        now=LATER,
        audit=SYSTEM,
    )

    assert [e.transfer_id for e in outcome.revoked] == [unused.id]
    assert outcome.revoked[0].kept_because is None
    assert [(e.transfer_id, e.kept_because) for e in outcome.kept] == [
        (downloaded.id, KeptBecause.DOWNLOADED),
        (expired.id, KeptBecause.EXPIRED),
    ]
    assert outcome.revoked[0].partner.name == setup.partner.name
    assert [e.transfer_id for e in revocations(vault.session)] == [revoked.id, unused.id]
    vault.session.rollback()  # it only flushed: the caller's transaction decides
    stored = vault.session.get(Transfer, unused.id, populate_existing=True)
    assert stored is not None
    assert stored.revoked_at is None
    assert len(revocations(vault.session)) == 1


def test_a_download_counted_meanwhile_keeps_the_transfer(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_transfer_setup(vault)
    transfer = make_transfer(vault.session, setup).transfer
    used(vault.session, transfer)
    # The link was read as unused just before the partner's download was counted.
    monkeypatch.setattr(service, "_kept_because", lambda _link, _now: None)

    outcome = revoke_unused_transfers(
        vault.session, where=col(Transfer.id) == transfer.id, now=LATER, audit=SYSTEM
    )

    assert outcome.revoked == []
    assert [(e.transfer_id, e.kept_because) for e in outcome.kept] == [
        (transfer.id, KeptBecause.DOWNLOADED)
    ]
    assert revocations(vault.session) == []
    stored = vault.session.get(Transfer, transfer.id)
    assert stored is not None
    assert stored.revoked_at is None
