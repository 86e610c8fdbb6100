"""Partner links over their lifetime, with an injected clock: open, download, expiry second by
second, the download limit, revocation, locking after wrong codes, mutated tokens."""

from __future__ import annotations

import string
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

import vault.links.service as links_service
from tests.factories import (
    NOW,
    TransferSetup,
    Vault,
    link_policy,
    local_vault,
    make_transfer,
    make_transfer_setup,
)
from vault.audit.models import ActorKind, AuditAction, AuditEvent
from vault.audit.service import AuditContext
from vault.cases.models import CaseStatus
from vault.errors import (
    AccessCodeWrong,
    AuditUnavailable,
    Gone,
    LinkExpired,
    LinkLocked,
    LinkRevoked,
    LinkUsedUp,
    NotFound,
)
from vault.links.models import Link, LinkDownload
from vault.links.service import LinkStream, download_from_link, open_link
from vault.transfers.service import IssuedTransfer, revoke_transfer

CLIENT = AuditContext(ActorKind.ANONYMOUS, None, "192.0.0.0")


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


@pytest.fixture
def setup(vault: Vault) -> TransferSetup:
    return make_transfer_setup(vault)


@pytest.fixture
def issued(vault: Vault, setup: TransferSetup) -> IssuedTransfer:
    return make_transfer(vault.session, setup)


def download(
    vault: Vault,
    issued: IssuedTransfer,
    *,
    document_id: uuid.UUID,
    code: str | None = None,
    now: datetime = NOW,
    token: str | None = None,
) -> LinkStream:
    return download_from_link(
        vault.session,
        store=vault.store,
        keys=vault.keys,
        token=issued.link.token if token is None else token,
        document_id=document_id,
        code=issued.link.access_code if code is None else code,
        now=now,
        audit=CLIENT,
    )


def stored_bytes(vault: Vault, document_id: uuid.UUID) -> bytes:
    return b"".join(vault.read(document_id).chunks)


def link_row(vault: Vault) -> Link:
    statement = select(Link).execution_options(populate_existing=True)
    return vault.session.exec(statement).one()


def actions(vault: Vault) -> list[tuple[str, str]]:
    rows = vault.session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()  # type: ignore[arg-type]
    return [(e.action, e.outcome) for e in rows if e.action.startswith("link.")]


def test_open_shows_what_was_sent_and_never_uses_a_download(
    vault: Vault, setup: TransferSetup, issued: IssuedTransfer
) -> None:
    for _ in range(7):  # more opens than downloads allowed: a preview bot changes nothing
        view = open_link(vault.session, token=issued.link.token, now=NOW, audit=CLIENT)

    assert view.transfer_id == issued.transfer.id
    assert view.partner_kind == setup.partner.kind
    assert [(d.id, d.kind, d.media_type, d.size, d.filename) for d in view.documents] == [
        (d.id, d.kind, d.media_type, d.size, name)
        for d, name in zip(setup.documents, ["document-1.pdf", "document-2.png"], strict=True)
    ]
    assert (view.expires_at, view.downloads_left) == (NOW + timedelta(days=7), 5)
    assert link_row(vault).downloads == 0
    assert actions(vault) == [("link.open", "ok")] * 7
    event = vault.session.exec(select(AuditEvent).where(AuditEvent.action == "link.open")).first()
    assert event is not None
    assert (event.actor_kind, event.actor_id, event.client) == (
        "partner",
        setup.partner.id,
        "192.0.0.0",
    )


def test_download_streams_the_stored_document_and_records_it(
    vault: Vault, setup: TransferSetup, issued: IssuedTransfer
) -> None:
    document = setup.documents[1]

    released = download(
        vault,
        issued,
        document_id=document.id,
        code=" " + issued.link.access_code.lower()[:5] + "-" + issued.link.access_code[5:],
    )

    assert released.filename == "document-2.png"
    assert b"".join(released.stream.chunks) == stored_bytes(vault, document.id)
    assert link_row(vault).downloads == 1
    [row] = vault.session.exec(select(LinkDownload)).all()
    assert (row.document_id, row.at) == (document.id, NOW)
    assert actions(vault)[-1] == ("link.download", "ok")


def test_expiry_second_by_second(
    vault: Vault, setup: TransferSetup, issued: IssuedTransfer
) -> None:
    expires_at = NOW + timedelta(days=7)
    last_valid = expires_at - timedelta(seconds=1)

    assert open_link(vault.session, token=issued.link.token, now=last_valid, audit=CLIENT)
    released = download(vault, issued, document_id=setup.documents[0].id, now=last_valid)
    b"".join(released.stream.chunks)

    for moment in (expires_at, expires_at + timedelta(seconds=1)):
        with pytest.raises(LinkExpired) as gone:
            open_link(vault.session, token=issued.link.token, now=moment, audit=CLIENT)
        assert (gone.value.status, gone.value.slug) == (410, "link-expired")
        with pytest.raises(LinkExpired):
            download(vault, issued, document_id=setup.documents[0].id, now=moment)
    assert link_row(vault).downloads == 1
    assert actions(vault)[-4:] == [("link.refused", "denied")] * 4


def test_download_limit_is_exact(vault: Vault, setup: TransferSetup) -> None:
    issued = make_transfer(vault.session, setup, max_downloads=3)
    document_id = setup.documents[0].id

    for _ in range(3):
        b"".join(download(vault, issued, document_id=document_id).stream.chunks)
    with pytest.raises(LinkUsedUp) as gone:
        download(vault, issued, document_id=document_id)

    assert gone.value.slug == "link-used-up"
    assert link_row(vault).downloads == 3
    assert len(vault.session.exec(select(LinkDownload)).all()) == 3
    with pytest.raises(LinkUsedUp):
        open_link(vault.session, token=issued.link.token, now=NOW, audit=CLIENT)


def test_revoked_link_is_gone(vault: Vault, setup: TransferSetup, issued: IssuedTransfer) -> None:
    revoke_transfer(
        vault.session, transfer_id=issued.transfer.id, now=NOW, audit=AuditContext.SYSTEM
    )

    with pytest.raises(LinkRevoked):
        open_link(vault.session, token=issued.link.token, now=NOW, audit=CLIENT)
    with pytest.raises(LinkRevoked) as gone:
        download(vault, issued, document_id=setup.documents[0].id)

    assert gone.value.slug == "link-revoked"
    assert link_row(vault).downloads == 0


def test_wrong_codes_lock_the_link_and_then_the_right_code_is_refused(
    vault: Vault, setup: TransferSetup, issued: IssuedTransfer
) -> None:
    document_id = setup.documents[0].id
    wrong = "2" * 10 if issued.link.access_code != "2" * 10 else "3" * 10

    left = []
    for _ in range(5):
        with pytest.raises(AccessCodeWrong) as refused:
            download(vault, issued, document_id=document_id, code=wrong)
        assert (refused.value.status, refused.value.slug) == (403, "access-code-wrong")
        left.append(refused.value.extra["attempts_left"])
    with pytest.raises(LinkLocked) as locked:
        download(vault, issued, document_id=document_id)

    assert left == [4, 3, 2, 1, 0]
    assert locked.value.slug == "link-locked"
    row = link_row(vault)
    assert (row.failed_codes, row.locked_at, row.downloads) == (5, NOW, 0)
    assert actions(vault) == [("link.code_failed", "denied")] * 5 + [
        ("link.locked", "denied"),
        ("link.refused", "denied"),
    ]
    with pytest.raises(LinkLocked):
        open_link(vault.session, token=issued.link.token, now=NOW, audit=CLIENT)


def test_a_wrong_code_is_counted_even_though_it_raises(
    vault: Vault, setup: TransferSetup, issued: IssuedTransfer, engine: Any
) -> None:
    with pytest.raises(AccessCodeWrong):
        download(vault, issued, document_id=setup.documents[0].id, code="WRONGCODE2")

    with Session(engine) as fresh:  # committed, not just flushed
        assert fresh.exec(select(Link)).one().failed_codes == 1


def test_every_single_character_mutation_of_a_token_fails(
    vault: Vault, issued: IssuedTransfer
) -> None:
    token = issued.link.token
    alphabet = string.ascii_letters + string.digits + "-_"
    mutations = {
        token[:i] + c + token[i + 1 :] for i in range(len(token)) for c in alphabet if c != token[i]
    }
    mutations |= {token[:-1], token + "A", token[1:], token.upper(), token.lower(), ""} - {token}

    for mutated in mutations:
        with pytest.raises(NotFound):
            open_link(vault.session, token=mutated, now=NOW, audit=CLIENT)
    assert open_link(vault.session, token=token, now=NOW, audit=CLIENT)


def test_a_document_outside_the_transfer_is_not_found(vault: Vault, setup: TransferSetup) -> None:
    issued = make_transfer(vault.session, setup, document_ids=[setup.documents[0].id])

    for document_id in (setup.documents[1].id, uuid.uuid4()):
        with pytest.raises(NotFound):
            download(vault, issued, document_id=document_id)
    assert link_row(vault).downloads == 0


def test_shredded_documents_and_cases_are_gone(
    vault: Vault, setup: TransferSetup, issued: IssuedTransfer
) -> None:
    setup.documents[0].shredded_at = NOW
    vault.session.add(setup.documents[0])
    vault.session.commit()

    with pytest.raises(Gone):
        download(vault, issued, document_id=setup.documents[0].id)
    view = open_link(vault.session, token=issued.link.token, now=NOW, audit=CLIENT)
    assert [d.id for d in view.documents] == [setup.documents[1].id]

    setup.case.status = CaseStatus.SHREDDED
    vault.session.add(setup.case)
    vault.session.commit()
    with pytest.raises(Gone):
        open_link(vault.session, token=issued.link.token, now=NOW, audit=CLIENT)
    with pytest.raises(Gone):
        download(vault, issued, document_id=setup.documents[1].id)
    assert link_row(vault).downloads == 0


def test_nothing_is_streamed_when_the_download_event_cannot_be_written(
    vault: Vault, setup: TransferSetup, issued: IssuedTransfer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = links_service.append_event

    def failing_append(session: Session, **fields: Any) -> Any:
        if fields["action"] is AuditAction.LINK_DOWNLOAD:
            raise AuditUnavailable("the audit log could not record this action")
        return real_append(session, **fields)

    monkeypatch.setattr(links_service, "append_event", failing_append)

    with pytest.raises(AuditUnavailable):
        download(vault, issued, document_id=setup.documents[0].id)

    assert link_row(vault).downloads == 0
    assert vault.session.exec(select(LinkDownload)).all() == []


def test_tokens_and_codes_never_reach_the_audit_log(
    vault: Vault, setup: TransferSetup, issued: IssuedTransfer
) -> None:
    open_link(vault.session, token=issued.link.token, now=NOW, audit=CLIENT)
    b"".join(download(vault, issued, document_id=setup.documents[0].id).stream.chunks)
    with pytest.raises(AccessCodeWrong):
        download(vault, issued, document_id=setup.documents[0].id, code="WRONGCODE2")

    for event in vault.session.exec(select(AuditEvent)).all():
        text = repr(event.model_dump())
        assert issued.link.token not in text
        assert issued.link.access_code not in text
        assert setup.partner.name not in text
        assert setup.partner.contact_email not in text


def test_the_link_policy_sets_the_lock_threshold(vault: Vault, setup: TransferSetup) -> None:
    issued = make_transfer(vault.session, setup, policy=link_policy(code_attempts=1))

    with pytest.raises(AccessCodeWrong) as refused:
        download(vault, issued, document_id=setup.documents[0].id, code="WRONGCODE2")

    assert refused.value.extra == {"attempts_left": 0}
    assert link_row(vault).locked_at == NOW
