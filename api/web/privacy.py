"""Privacy officer page (/privacy): users, partners, rights requests, audit verification and the
retention dry run.

Every page calls what the API's admin routes call: ``/admin/users`` (the users router's
``add_staff_account``), ``/admin/partners`` (``add_partner``, ``change_partner``),
``/admin/rights-requests`` and their kept parts, ``/admin/audit/verify`` and
``/admin/audit/checkpoints`` (``verify_chain_now``, ``seal_chain_now``),
``/admin/retention/preview`` (``retention_preview``) and the legal holds. Nothing here shows
personal data: accounts by id and role (logins are stored as digests), cases and patients by id.

The audit page shows the result of the verification it has just run; the ``audit.verify`` event
records only whether the chain was intact (its outcome), which is what ``GET /metrics`` reports.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Form
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from api.routers.audit import CheckpointWritten, VerifyResult, seal_chain_now, verify_chain_now
from api.routers.auth import MAX_PASSWORD_FIELD
from api.routers.erasure import KeptPartOut
from api.routers.partners import (
    PartnerCreate,
    PartnerOut,
    PartnerUpdate,
    add_partner,
    change_partner,
)
from api.routers.retention import RetentionPreview, retention_preview
from api.routers.rights import RightsRequestOut
from api.routers.users import NewUser, UserSummary, add_staff_account
from api.web.context import OfficerPage, Page
from api.web.session import PageRoute
from vault.accounts.models import Role
from vault.accounts.service import disable_user, list_users
from vault.cases.models import LegalHoldReason
from vault.cases.service import lift_legal_hold, place_legal_hold
from vault.errors import NotFound, VaultError
from vault.partners.models import PartnerKind
from vault.partners.service import MAX_NAME_LENGTH, disable_partner, list_partners
from vault.subject_rights.erasure import retained_parts
from vault.subject_rights.models import RequestStatus, Right
from vault.subject_rights.requests import list_requests, read_request

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The notices each page shows after a form (``?done=<key>``); any other value shows nothing.
USERS_DONE = ("added", "disabled")
PARTNERS_DONE = ("created", "changed", "disabled")
RETENTION_DONE = ("held", "lifted")
STAFF_ROLES_SHOWN = (Role.COORDINATOR, Role.ANALYST, Role.ADMIN)
USER_FIELDS = ("role", "login", "password")
PARTNER_FIELDS = ("kind", "name", "contact_email")
DUE_SHOWN = 50  # case ids of the cases due now listed on the retention page (all are counted)
NEW = "new"  # the form that adds a partner (the others are named by the partner's id)

Body = TypeVar("Body", bound=BaseModel)


def _refused(page: Page, refused: VaultError) -> dict[str, Any]:
    """What a page shows for a service's refusal, its transaction rolled back: the refusal in
    the reader's language and its status."""
    page.session.rollback()
    return {"error": page.error_text(refused), "status_code": refused.status}


def _check_fields(page: Page, invalid: ValidationError, order: tuple[str, ...]) -> str:
    """The refusal of a form that does not validate, naming its fields (never their values)."""
    wrong = {str(problem["loc"][0]) for problem in invalid.errors() if problem["loc"]}
    labels = [page.t(f"privacy.field_{name}") for name in order if name in wrong or not wrong]
    return page.t("privacy.check_fields", fields=", ".join(labels))


# --- the register of rights requests ---


@dataclass(frozen=True)
class RequestRow:
    request: RightsRequestOut
    due_soon: bool  # open, not yet overdue, due within ``rights_due_soon_days``


def _register(
    page: Page, *, open_only: bool, due_soon: bool = False, right: Right | None = None
) -> list[RequestRow]:
    """The register as ``GET /admin/rights-requests`` reads it, open requests first, each by
    due date; ``due_soon`` keeps the open ones due within the setting's days (overdue too)."""
    soon = timedelta(days=page.runtime.settings.rights_due_soon_days)
    requests = list_requests(
        page.session,
        open_only=open_only,
        due_within=soon if due_soon else None,
        now=page.now,
        audit=page.audit,
    )
    rows = []
    for request in requests:
        shown = RightsRequestOut.of(request, now=page.now)
        if right is not None and shown.right is not right:
            continue
        close = shown.status is RequestStatus.OPEN and shown.due_at <= page.now + soon
        rows.append(RequestRow(shown, due_soon=close and not shown.overdue))
    rows.sort(key=lambda row: row.request.status is not RequestStatus.OPEN)
    return rows


@router.get("/privacy")
def overview(page: OfficerPage) -> Response:
    """Open requests with their due dates, the audit chain, and the way to every page."""
    rows = _register(page, open_only=True)
    return page.render(
        "privacy/index.html",
        rows=rows,
        overdue=sum(row.request.overdue for row in rows),
        due_soon=sum(row.due_soon for row in rows),
        due_soon_days=page.runtime.settings.rights_due_soon_days,
    )


@router.get("/privacy/requests")
def requests_page(
    page: OfficerPage,
    state: Literal["open", "all"] = "all",
    due_soon: bool = False,
    right: Right | None = None,
) -> Response:
    """Every request (or the open ones, or those due soon), open ones first."""
    rows = _register(page, open_only=state == "open", due_soon=due_soon, right=right)
    return page.render(
        "privacy/requests.html",
        rows=rows,
        state=state,
        due_soon=due_soon,
        right=right,
        rights=list(Right),
        due_soon_days=page.runtime.settings.rights_due_soon_days,
    )


@router.get("/privacy/requests/{request_id}")
def request_page(request_id: uuid.UUID, page: OfficerPage) -> Response:
    """One request: when it came, when it is due, how it ended; for an erasure, what it had
    to keep, on which ground and until when."""
    request = read_request(page.session, request_id=request_id, now=page.now, audit=page.audit)
    kept: list[KeptPartOut] = []
    if request.right is Right.ERASURE:
        parts = retained_parts(page.session, request_id=request_id, now=page.now, audit=page.audit)
        kept = [KeptPartOut.of(part) for part in parts]
    return page.render(
        "privacy/request.html", request=RightsRequestOut.of(request, now=page.now), kept=kept
    )


# --- users ---


def _users_page(
    page: Page,
    *,
    role: Role | None = None,
    done: str | None = None,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    users = [
        UserSummary.of(user) for user in list_users(page.session, now=page.now, audit=page.audit)
    ]
    return page.render(
        "privacy/users.html",
        status_code=status_code,
        users=[user for user in users if role is None or user.role is role],
        roles=list(Role),
        role=role,
        staff_roles=STAFF_ROLES_SHOWN,
        done=done,
        form=form or {"role": Role.COORDINATOR.value, "login": ""},
        error=error,
    )


@router.get("/privacy/users")
def users_page(page: OfficerPage, role: Role | None = None, done: str | None = None) -> Response:
    """Every account by id, role, creation and state (logins are stored as digests only)."""
    return _users_page(page, role=role, done=page.notice(done, USERS_DONE))


@router.post("/privacy/users")
def add_user(
    page: OfficerPage,
    role: Annotated[str, Form(max_length=16)] = "",
    login: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD_FIELD)] = "",
) -> Response:
    """Add a staff account, as ``POST /admin/users``; a refusal keeps role and login."""
    typed = {"role": role, "login": login}  # never the password
    try:
        body = NewUser.model_validate({**typed, "password": password})
    except ValidationError as invalid:
        error = _check_fields(page, invalid, USER_FIELDS)
        return _users_page(page, form=typed, error=error, status_code=422)
    try:
        add_staff_account(
            runtime=page.runtime, session=page.session, body=body, now=page.now, audit=page.audit
        )
    except VaultError as refused:
        return _users_page(page, form=typed, **_refused(page, refused))
    return page.redirect("/privacy/users?done=added")


@router.post("/privacy/users/{user_id}/disable")
def disable_account(user_id: uuid.UUID, page: OfficerPage) -> Response:
    """Disable an account, as ``POST /admin/users/{id}/disable``: its sessions end at once."""
    disable_user(page.session, user_id=user_id, now=page.now, audit=page.audit)
    return page.redirect("/privacy/users?done=disabled")


# --- partners ---


def _partners_page(
    page: Page,
    *,
    done: str | None = None,
    form: dict[str, str] | None = None,
    error_form: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    partners = list_partners(page.session, include_disabled=True, now=page.now, audit=page.audit)
    return page.render(
        "privacy/partners.html",
        status_code=status_code,
        partners=[PartnerOut.of(partner) for partner in partners],
        kinds=list(PartnerKind),
        done=done,
        form=form if error_form == NEW and form else {"kind": PartnerKind.CLINIC.value},
        typed=form or {},
        error_form=error_form,
        error=error,
        max_name=MAX_NAME_LENGTH,
    )


@router.get("/privacy/partners")
def partners_page(page: OfficerPage, done: str | None = None) -> Response:
    """Every partner, disabled ones too, each with its edit form; and the form to add one."""
    return _partners_page(page, done=page.notice(done, PARTNERS_DONE))


def _partner_form(
    page: Page, model: type[Body], typed: dict[str, str], *, which: str
) -> Body | Response:
    """The partner form validated as the API's body, or the list again naming what is wrong."""
    try:
        return model.model_validate(typed)
    except ValidationError as invalid:
        error = _check_fields(page, invalid, PARTNER_FIELDS)
        return _partners_page(page, form=typed, error_form=which, error=error, status_code=422)


@router.post("/privacy/partners")
def create_partner_form(
    page: OfficerPage,
    kind: Annotated[str, Form(max_length=32)] = "",
    name: Annotated[str, Form(max_length=MAX_NAME_LENGTH)] = "",
    contact_email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    """Add a partner, as ``POST /admin/partners``."""
    typed = {"kind": kind, "name": name, "contact_email": contact_email}
    body = _partner_form(page, PartnerCreate, typed, which=NEW)
    if isinstance(body, Response):
        return body
    try:
        add_partner(session=page.session, body=body, now=page.now, audit=page.audit)
    except VaultError as refused:
        return _partners_page(page, form=typed, error_form=NEW, **_refused(page, refused))
    return page.redirect("/privacy/partners?done=created")


@router.post("/privacy/partners/{partner_id}")
def change_partner_form(
    partner_id: uuid.UUID,
    page: OfficerPage,
    kind: Annotated[str, Form(max_length=32)] = "",
    name: Annotated[str, Form(max_length=MAX_NAME_LENGTH)] = "",
    contact_email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    """Change a partner's kind, name and address, as ``PATCH /admin/partners/{id}``."""
    typed = {"kind": kind, "name": name, "contact_email": contact_email}
    body = _partner_form(page, PartnerUpdate, typed, which=str(partner_id))
    if isinstance(body, Response):
        return body
    try:
        change_partner(
            session=page.session, partner_id=partner_id, body=body, now=page.now, audit=page.audit
        )
    except NotFound:
        raise
    except VaultError as refused:
        which = str(partner_id)
        return _partners_page(page, form=typed, error_form=which, **_refused(page, refused))
    return page.redirect(f"/privacy/partners?done=changed#partner-{partner_id}")


@router.post("/privacy/partners/{partner_id}/disable")
def disable_partner_form(partner_id: uuid.UUID, page: OfficerPage) -> Response:
    """Stop new transfers to a partner, as ``POST /admin/partners/{id}/disable``."""
    disable_partner(page.session, partner_id=partner_id, now=page.now, audit=page.audit)
    return page.redirect("/privacy/partners?done=disabled")


# --- the audit chain ---


def _audit_page(
    page: Page,
    *,
    result: VerifyResult | None = None,
    checkpoint: CheckpointWritten | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return page.render(
        "privacy/audit.html",
        status_code=status_code,
        result=result,
        checkpoint=checkpoint,
        error=error,
    )


@router.get("/privacy/audit")
def audit_page(page: OfficerPage) -> Response:
    """The forms to verify the chain and to seal its head in a checkpoint."""
    return _audit_page(page)


@router.post("/privacy/audit/verify")
def verify_audit(page: OfficerPage) -> Response:
    """Verify the chain, as ``POST /admin/audit/verify``, and show the result."""
    try:
        result = verify_chain_now(
            runtime=page.runtime, session=page.session, audit=page.audit, now=page.now
        )
    except VaultError as refused:
        return _audit_page(page, **_refused(page, refused))
    return _audit_page(page, result=result)


@router.post("/privacy/audit/checkpoint")
def checkpoint_audit(page: OfficerPage) -> Response:
    """Seal the chain's head, as ``POST /admin/audit/checkpoints``, and show what was sealed."""
    try:
        written = seal_chain_now(
            runtime=page.runtime, session=page.session, audit=page.audit, now=page.now
        )
    except VaultError as refused:
        return _audit_page(page, **_refused(page, refused))
    return _audit_page(page, checkpoint=written)


# --- retention and legal holds ---


def _retention_page(
    page: Page,
    *,
    case: uuid.UUID | None = None,
    done: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    preview: RetentionPreview = retention_preview(
        runtime=page.runtime, session=page.session, now=page.now, audit=page.audit
    )
    return page.render(
        "privacy/retention.html",
        status_code=status_code,
        preview=preview,
        due_shown=preview.due[:DUE_SHOWN],
        held_ids={held.case_id for held in preview.held},
        reasons=list(LegalHoldReason),
        case=case,
        done=done,
        error=error,
        years=page.runtime.settings.retention_years,
    )


@router.get("/privacy/retention")
def retention_page(
    page: OfficerPage, case: uuid.UUID | None = None, done: str | None = None
) -> Response:
    """The retention job's dry run (what falls due, what is held, what comes next) and the
    legal holds; ``case`` names another case to place a hold on."""
    return _retention_page(page, case=case, done=page.notice(done, RETENTION_DONE))


@router.post("/privacy/cases/{case_id}/legal-hold")
def place_hold(
    case_id: uuid.UUID, page: OfficerPage, reason: Annotated[str, Form(max_length=32)] = ""
) -> Response:
    """Keep a case past its retention date, as ``POST /admin/cases/{id}/legal-hold``."""
    if reason not in {choice.value for choice in LegalHoldReason}:
        error = page.t("privacy.choose_a_reason")
        return _retention_page(page, case=case_id, error=error, status_code=422)
    try:
        place_legal_hold(
            session=page.session,
            case_id=case_id,
            reason=LegalHoldReason(reason),
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        return _retention_page(page, case=case_id, **_refused(page, refused))
    return page.redirect(f"/privacy/retention?case={case_id}&done=held#other")


@router.post("/privacy/cases/{case_id}/legal-hold/lift")
def lift_hold(case_id: uuid.UUID, page: OfficerPage) -> Response:
    """Lift a case's legal hold, as ``POST /admin/cases/{id}/legal-hold/lift``: if its
    retention date has passed, the next run shreds it."""
    try:
        lift_legal_hold(session=page.session, case_id=case_id, now=page.now, audit=page.audit)
    except VaultError as refused:
        return _retention_page(page, case=case_id, **_refused(page, refused))
    return page.redirect(f"/privacy/retention?case={case_id}&done=lifted#other")
