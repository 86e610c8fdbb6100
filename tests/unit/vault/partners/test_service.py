"""Partners: validated contact addresses, changes, disabling, listing; events carry ids only."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from tests.factories import NOW, PARTNER_EMAIL, PARTNER_NAME, make_partner
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.errors import InvalidPartner, NotFound
from vault.partners.models import Partner, PartnerKind
from vault.partners.service import (
    disable_partner,
    get_enabled_partner,
    list_partners,
    update_partner,
)

SYSTEM = AuditContext.SYSTEM


def test_create_normalises_the_address(session: Session) -> None:
    partner = make_partner(session, contact_email="Aufnahme@Klinik-Testsee.EXAMPLE")

    assert partner.contact_email == "Aufnahme@klinik-testsee.example"
    assert (partner.kind, partner.name, partner.created_at) == (
        PartnerKind.CLINIC,
        PARTNER_NAME,
        NOW,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("contact_email", "not an address"),
        ("contact_email", "a@b@c.example"),
        ("contact_email", ""),
        ("name", "   "),
        ("name", "x" * 201),
    ],
)
def test_impossible_details_are_refused(session: Session, field: str, value: str) -> None:
    with pytest.raises(InvalidPartner) as refused:
        make_partner(session, **{field: value})  # type: ignore[arg-type]

    assert (refused.value.status, refused.value.slug) == (422, "invalid-partner")
    if value.strip():
        assert value not in str(refused.value)  # the message never repeats the input
    assert session.exec(select(Partner)).all() == []
    assert session.exec(select(AuditEvent)).all() == []


def test_update_and_disable(session: Session) -> None:
    partner = make_partner(session)
    other = make_partner(session, name="Arztpraxis", kind=PartnerKind.PHYSICIAN)

    update_partner(
        session,
        partner_id=partner.id,
        contact_email="neu@klinik.example",
        kind=PartnerKind.REHABILITATION,
        now=NOW,
        audit=SYSTEM,
    )
    disable_partner(session, partner_id=other.id, now=NOW, audit=SYSTEM)

    changed = session.get(Partner, partner.id)
    assert changed is not None
    assert (changed.contact_email, changed.kind, changed.name) == (
        "neu@klinik.example",
        PartnerKind.REHABILITATION,
        PARTNER_NAME,
    )
    enabled = list_partners(session, include_disabled=False, now=NOW, audit=SYSTEM)
    everyone = list_partners(session, include_disabled=True, now=NOW, audit=SYSTEM)
    assert [p.id for p in enabled] == [partner.id]
    assert {p.id for p in everyone} == {partner.id, other.id}
    with pytest.raises(NotFound):
        get_enabled_partner(session, partner_id=other.id)


def test_events_name_partners_by_id_only(session: Session) -> None:
    partner = make_partner(session)
    update_partner(session, partner_id=partner.id, name="Neuer Name", now=NOW, audit=SYSTEM)

    events = session.exec(select(AuditEvent)).all()
    assert [e.action for e in events] == ["partner.create", "partner.update"]
    for event in events:
        assert event.partner_id == partner.id
        dumped = repr(event.model_dump())
        assert PARTNER_NAME not in dumped
        assert PARTNER_EMAIL not in dumped
