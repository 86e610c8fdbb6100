"""Partner verbs for the privacy officer (create, change, disable) and the coordinators (list)."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session, col, select

from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.errors import InvalidPartner, NotFound
from vault.partners.models import Partner, PartnerKind

MAX_NAME_LENGTH = 200


def create_partner(
    session: Session,
    *,
    kind: PartnerKind,
    name: str,
    contact_email: str,
    now: datetime,
    audit: AuditContext,
) -> Partner:
    """Register a partner. Raises InvalidPartner for an impossible address or name."""
    partner = Partner(
        kind=kind,
        name=_checked_name(name),
        contact_email=normalised_email(contact_email),
        created_at=now,
    )
    session.add(partner)
    append_event(
        session, context=audit, action=AuditAction.PARTNER_CREATE, now=now, partner_id=partner.id
    )
    session.commit()
    return partner


def update_partner(
    session: Session,
    *,
    partner_id: uuid.UUID,
    kind: PartnerKind | None = None,
    name: str | None = None,
    contact_email: str | None = None,
    now: datetime,
    audit: AuditContext,
) -> Partner:
    """Change the given fields of a partner (disabled partners too, e.g. to fix an address)."""
    partner = get_partner(session, partner_id=partner_id)
    if kind is not None:
        partner.kind = kind
    if name is not None:
        partner.name = _checked_name(name)
    if contact_email is not None:
        partner.contact_email = normalised_email(contact_email)
    session.add(partner)
    append_event(
        session, context=audit, action=AuditAction.PARTNER_UPDATE, now=now, partner_id=partner.id
    )
    session.commit()
    return partner


def disable_partner(
    session: Session, *, partner_id: uuid.UUID, now: datetime, audit: AuditContext
) -> Partner:
    """Stop new transfers to a partner. Links already issued stay valid until revoked."""
    partner = get_partner(session, partner_id=partner_id)
    if partner.disabled_at is not None:
        return partner
    partner.disabled_at = now
    session.add(partner)
    append_event(
        session, context=audit, action=AuditAction.PARTNER_DISABLE, now=now, partner_id=partner.id
    )
    session.commit()
    return partner


def list_partners(
    session: Session, *, include_disabled: bool, now: datetime, audit: AuditContext
) -> Sequence[Partner]:
    """Partners by name; only enabled ones unless ``include_disabled``."""
    statement = select(Partner).order_by(col(Partner.name), col(Partner.id))
    if not include_disabled:
        statement = statement.where(col(Partner.disabled_at).is_(None))
    partners = session.exec(statement).all()
    append_event(session, context=audit, action=AuditAction.PARTNER_LIST, now=now)
    session.commit()
    return partners


def get_partner(session: Session, *, partner_id: uuid.UUID) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound("no such partner")
    return partner


def get_enabled_partner(session: Session, *, partner_id: uuid.UUID) -> Partner:
    """A partner that may receive transfers; a disabled one is NotFound like an unknown one."""
    partner = get_partner(session, partner_id=partner_id)
    if partner.disabled_at is not None:
        raise NotFound("no such partner")
    return partner


def normalised_email(address: str) -> str:
    """The normalised form of a syntactically valid address (no DNS lookup)."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        # The validator's message repeats the address: say why in general words only.
        raise InvalidPartner("the contact address is not a valid e-mail address") from None


def _checked_name(name: str) -> str:
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME_LENGTH:
        raise InvalidPartner(f"a partner name has 1 to {MAX_NAME_LENGTH} characters")
    return stripped
