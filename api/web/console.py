"""Coordinator console (/console): cases, outcome, completion, forwarding, links, transfer log.

Every page calls the service functions the API's routers call for a coordinator (who reaches
every case): ``GET /cases``, ``GET /cases/{id}``, ``PUT /cases/{id}/outcome``,
``POST /cases/{id}/complete``, ``POST /cases/{id}/transfers`` (through the routers' own
``forward_documents``, which also mails the partner its link), ``GET /cases/{id}/transfers`` and
``POST /transfers/{id}/revoke``. A new link's URL and access code are shown once, on the page
the forwarding form's POST answers with (no redirect: neither ever goes into a URL).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from babel.numbers import format_currency
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.routers.cases import CaseSummary
from api.routers.consents import ConsentOut
from api.routers.documents import DocumentListed, listed_documents
from api.routers.partners import PartnerSummary
from api.routers.transfers import (
    MAX_LINK_DOWNLOADS,
    TransferRequest,
    TransferWithLink,
    forward_documents,
)
from api.web.context import CoordinatorPage, Page
from api.web.i18n import Translator
from api.web.session import PageRoute
from vault.cases.models import (
    MAX_DIAGNOSES,
    Case,
    CaseOutcome,
    CaseStatus,
    TreatmentResult,
)
from vault.cases.service import (
    complete_case,
    list_cases,
    read_case,
    record_outcome,
    restricted_since,
    retention_due_at,
    unsafe_case_outcome,
)
from vault.consents.service import list_consents
from vault.errors import Gone, VaultError
from vault.partners.service import get_partner, list_partners
from vault.transfers.models import LegalBasis, Purpose
from vault.transfers.service import MAX_DOCUMENTS, list_transfers_for_case, revoke_transfer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
# The notices the case page shows after a form (``?done=<key>``); any other value shows nothing.
CASE_DONE = ("outcome", "completed", "revoked")
# Refusals of a transfer that the page explains, saying what to do (console.refused_<slug>).
EXPLAINED_REFUSALS = (
    "legal-basis-missing",
    "consent-withdrawn",
    "processing-restricted",
    "objection-raised",
)
OUTCOME_FIELDS = (
    "diagnosis_codes",
    "result",
    "treatment_start",
    "treatment_end",
    "final_invoice_total",
    "currency",
)
TRANSFER_FIELDS = (
    "document_ids",
    "partner_id",
    "purpose",
    "legal_basis",
    "consent_id",
    "expires_in_days",
    "max_downloads",
)
LIVE = (CaseStatus.OPEN, CaseStatus.COMPLETED)


async def _posted_form(request: Request) -> FormData:
    return await request.form()  # parsed once already by the CSRF check


PostedForm = Annotated[FormData, Depends(_posted_form)]


# --- what the pages show ---


@dataclass(frozen=True)
class Retention:
    """When a case's data is deleted: held (legal hold), due at a date, deleted, or not yet
    known (the clock starts when the treatment is completed)."""

    held: bool
    due_at: datetime | None
    deleted: bool


def retention_of(case: Case, *, years: int) -> Retention:
    deleted = case.status in (CaseStatus.SHREDDING, CaseStatus.SHREDDED)
    completed = case.treatment_completed_at
    due_at = None if completed is None else retention_due_at(completed, years=years)
    return Retention(held=case.legal_hold_at is not None, due_at=due_at, deleted=deleted)


@dataclass(frozen=True)
class CaseRow:
    case: CaseSummary
    retention: Retention

    @property
    def patient_reference(self) -> str:
        return patient_reference(self.case.patient_id)


def patient_reference(patient_id: uuid.UUID) -> str:
    """A short reference to the patient record (its id's first characters): no name."""
    return str(patient_id)[:8]


@dataclass(frozen=True)
class TransferRow:
    """One transfer of the log, with its partner and the state of its link."""

    transfer: TransferWithLink
    partner: PartnerSummary
    state: str  # live, revoked, locked, expired or used-up

    @property
    def live(self) -> bool:
        return self.state == "live"


def _link_state(record: TransferWithLink, now: datetime) -> str:
    link = record.link
    if record.revoked_at is not None:
        return "revoked"
    if link.locked:
        return "locked"
    if now >= link.expires_at:
        return "expired"
    if link.downloads >= link.max_downloads:
        return "used-up"
    return "live"


@dataclass(frozen=True)
class CaseView:
    """The case page: the case, its documents (None once deleted), its outcome, what the
    forwarding form offers, and the transfer log."""

    row: CaseRow
    documents: list[DocumentListed] | None
    outcome: CaseOutcome | None
    consents: list[ConsentOut]
    partners: list[PartnerSummary]
    transfers: list[TransferRow]

    @property
    def live(self) -> bool:
        return self.row.case.status in LIVE

    @property
    def open(self) -> bool:
        return self.row.case.status is CaseStatus.OPEN


def case_view(page: Page, case_id: uuid.UUID) -> CaseView:
    """The case as the API's reads give it to a coordinator (NotFound for an unknown id)."""
    session, now, audit = page.session, page.now, page.audit
    case = read_case(session=session, case_id=case_id, now=now, audit=audit)
    years = page.runtime.settings.retention_years
    row = CaseRow(CaseSummary.one(session, case), retention_of(case, years=years))
    documents: list[DocumentListed] | None
    outcome: CaseOutcome | None
    try:
        documents = listed_documents(
            runtime=page.runtime,
            session=session,
            case_id=case_id,
            patient_id=None,
            now=now,
            audit=audit,
        )
        outcome = unsafe_case_outcome(session=session, keys=page.runtime.key_store, case=case)
    except Gone:
        documents, outcome = None, None
    consents = list_consents(session, case_id=case_id, patient_id=None, now=now, audit=audit)
    partners = list_partners(session, include_disabled=False, now=now, audit=audit)
    records = list_transfers_for_case(session, case_id=case_id, now=now, audit=audit)
    named: dict[uuid.UUID, PartnerSummary] = {}
    transfers = []
    for record in records:
        shown = TransferWithLink.of_record(record)
        if shown.partner_id not in named:
            partner = get_partner(session, partner_id=shown.partner_id)
            named[partner.id] = PartnerSummary.model_validate(partner, from_attributes=True)
        transfers.append(TransferRow(shown, named[shown.partner_id], _link_state(shown, now)))
    return CaseView(
        row=row,
        documents=documents,
        outcome=outcome,
        consents=[ConsentOut.of(c) for c in consents if c.withdrawn_at is None],
        partners=[PartnerSummary.model_validate(p, from_attributes=True) for p in partners],
        transfers=transfers,
    )


def _money(outcome: CaseOutcome, t: Translator) -> str:
    return format_currency(outcome.final_invoice_total, outcome.currency, locale=t.locale)


def _check_fields(page: Page, invalid: ValidationError, order: tuple[str, ...]) -> str:
    """The refusal of a form that does not validate, naming its fields (never their values)."""
    wrong = {str(problem["loc"][0]) for problem in invalid.errors() if problem["loc"]}
    named = [field for field in order if field in wrong]
    if not named:  # a check across fields: the only one is the order of the treatment dates
        return page.t("console.end_before_start")
    labels = [page.t(f"console.field_{field}") for field in named]
    return page.t("console.check_fields", fields=", ".join(labels))


# --- the list of cases ---


@router.get("/console")
def cases_page(
    page: CoordinatorPage,
    status: CaseStatus | Literal[""] = "",  # "": the filter's "any status"
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Every case, newest first, PAGE_SIZE at a time, optionally in one status."""
    cases = list_cases(
        session=page.session,
        status=status or None,
        limit=PAGE_SIZE + 1,
        offset=offset,
        now=page.now,
        audit=page.audit,
    )
    more = len(cases) > PAGE_SIZE
    cases = cases[:PAGE_SIZE]
    restrictions = restricted_since(session=page.session, cases=cases)
    years = page.runtime.settings.retention_years
    rows = [CaseRow(CaseSummary.of(c, restrictions), retention_of(c, years=years)) for c in cases]
    return page.render(
        "console/cases.html",
        rows=rows,
        statuses=list(CaseStatus),
        status=status or None,
        offset=offset,
        previous=max(0, offset - PAGE_SIZE) if offset else None,
        next=offset + PAGE_SIZE if more else None,
    )


# --- one case ---


@dataclass(frozen=True)
class Forms:
    """What the case page's forms show: the values typed (after a refusal) or the defaults."""

    outcome: dict[str, str]
    completed_at: str
    transfer: dict[str, object]


def _outcome_values(outcome: CaseOutcome | None) -> dict[str, str]:
    if outcome is None:
        return {"currency": "EUR"}
    return {
        "diagnosis_codes": ", ".join(outcome.diagnosis_codes),
        "result": outcome.result.value,
        "treatment_start": outcome.treatment_start.isoformat(),
        "treatment_end": outcome.treatment_end.isoformat(),
        "final_invoice_total": str(outcome.final_invoice_total),
        "currency": outcome.currency,
    }


def _forms(
    page: Page,
    view: CaseView,
    *,
    outcome: dict[str, str] | None = None,
    completed_at: str | None = None,
    transfer: dict[str, object] | None = None,
) -> Forms:
    settings = page.runtime.settings
    return Forms(
        outcome=outcome if outcome is not None else _outcome_values(view.outcome),
        completed_at=completed_at or page.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
        transfer=transfer
        if transfer is not None
        else {
            "document_ids": [],
            "expires_in_days": str(settings.link_ttl_days),
            "max_downloads": str(settings.link_max_downloads),
        },
    )


def _case_page(
    page: Page,
    view: CaseView,
    *,
    forms: Forms | None = None,
    done: str | None = None,
    error: str | None = None,
    error_form: str | None = None,
    status_code: int = 200,
) -> Response:
    settings = page.runtime.settings
    return page.render(
        "console/case.html",
        status_code=status_code,
        view=view,
        forms=forms or _forms(page, view),
        done=done,
        error=error,
        error_form=error_form,
        results=list(TreatmentResult),
        purposes=list(Purpose),
        bases=list(LegalBasis),
        consent_bases=[basis for basis in LegalBasis if basis.needs_consent],
        max_diagnoses=MAX_DIAGNOSES,
        max_ttl_days=settings.link_max_ttl_days,
        max_link_downloads=MAX_LINK_DOWNLOADS,
        money=_money,
        reference=patient_reference,
    )


@router.get("/console/cases/{case_id}")
def case_page(case_id: uuid.UUID, page: CoordinatorPage, done: str | None = None) -> Response:
    return _case_page(page, case_view(page, case_id), done=page.notice(done, CASE_DONE))


def _refused(
    page: Page,
    case_id: uuid.UUID,
    *,
    form: str,
    error: VaultError | str,
    status_code: int = 422,
    outcome: dict[str, str] | None = None,
    completed_at: str | None = None,
    transfer: dict[str, object] | None = None,
) -> Response:
    """The case page again with a form's refusal (a service's error, or a check of the page's
    own with 422), keeping what was typed into that form."""
    if isinstance(error, VaultError):
        status_code = error.status
    text = page.error_text(error) if isinstance(error, VaultError) else error
    page.session.rollback()
    view = case_view(page, case_id)
    forms = _forms(page, view, outcome=outcome, completed_at=completed_at, transfer=transfer)
    return _case_page(page, view, forms=forms, error=text, error_form=form, status_code=status_code)


def _decimal(value: str) -> Decimal | str:
    """An amount as typed, with a decimal point or comma and no grouping; else as given (the
    model then refuses it)."""
    plain = value.strip().replace(" ", "")
    if "," in plain and "." not in plain:
        plain = plain.replace(",", ".")
    try:
        return Decimal(plain)
    except InvalidOperation:
        return value


@router.post("/console/cases/{case_id}/outcome")
def save_outcome(
    case_id: uuid.UUID,
    page: CoordinatorPage,
    diagnosis_codes: Annotated[str, Form(max_length=400)],
    result: Annotated[str, Form(max_length=20)],
    treatment_start: Annotated[str, Form(max_length=10)],
    treatment_end: Annotated[str, Form(max_length=10)],
    final_invoice_total: Annotated[str, Form(max_length=24)],
    currency: Annotated[str, Form(max_length=3)],
) -> Response:
    """Record (or correct) the outcome, as ``PUT /cases/{id}/outcome``."""
    typed = {
        "diagnosis_codes": diagnosis_codes,
        "result": result,
        "treatment_start": treatment_start,
        "treatment_end": treatment_end,
        "final_invoice_total": final_invoice_total,
        "currency": currency,
    }
    codes = [code.upper() for code in diagnosis_codes.replace(",", " ").split()]
    try:
        outcome = CaseOutcome.model_validate(
            {
                **typed,
                "diagnosis_codes": codes,
                "final_invoice_total": _decimal(final_invoice_total),
                "currency": currency.strip().upper(),
            }
        )
    except ValidationError as invalid:
        error = _check_fields(page, invalid, OUTCOME_FIELDS)
        return _refused(page, case_id, form="outcome", error=error, outcome=typed)
    try:
        record_outcome(
            session=page.session,
            keys=page.runtime.key_store,
            case_id=case_id,
            outcome=outcome,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        return _refused(page, case_id, form="outcome", error=refused, outcome=typed)
    return page.redirect(f"/console/cases/{case_id}?done=outcome#outcome")


@router.post("/console/cases/{case_id}/complete")
def complete(
    case_id: uuid.UUID,
    page: CoordinatorPage,
    completed_at: Annotated[str, Form(max_length=32)],
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Mark the treatment completed, as ``POST /cases/{id}/complete``: final, and the start of
    the retention period, so the form asks for a tick first."""
    if not confirm:
        error = page.t("console.tick_to_complete")
        return _refused(page, case_id, form="complete", error=error, completed_at=completed_at)
    try:
        when = datetime.fromisoformat(completed_at).replace(tzinfo=UTC)  # the page says UTC
    except ValueError:
        error = page.t("console.check_fields", fields=page.t("console.field_completed_at"))
        return _refused(page, case_id, form="complete", error=error, completed_at=completed_at)
    try:
        complete_case(
            session=page.session,
            keys=page.runtime.key_store,
            case_id=case_id,
            completed_at=when,
            retention_years=page.runtime.settings.retention_years,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        return _refused(page, case_id, form="complete", error=refused, completed_at=completed_at)
    return page.redirect(f"/console/cases/{case_id}?done=completed")


def _field(form: FormData, name: str, *, max_length: int = 64) -> str:
    value = form.get(name)
    return value[:max_length] if isinstance(value, str) else ""


def _typed_transfer(form: FormData) -> dict[str, object]:
    """The forwarding form as typed (bounded), to validate and to show again."""
    chosen = [v[:64] for v in form.getlist("document_ids") if isinstance(v, str)]
    typed: dict[str, object] = {name: _field(form, name) for name in TRANSFER_FIELDS[1:]}
    typed["document_ids"] = chosen[: MAX_DOCUMENTS + 1]
    return typed


def refusal_text(page: Page, refused: VaultError) -> str:
    """Why a transfer was refused and what to do, for the reasons of law; else the error."""
    if refused.slug in EXPLAINED_REFUSALS:
        return page.t(f"console.refused_{refused.slug.replace('-', '_')}")
    return page.error_text(refused)


@router.post("/console/cases/{case_id}/transfers")
def forward(case_id: uuid.UUID, page: CoordinatorPage, form: PostedForm) -> Response:
    """Forward documents to a partner, as ``POST /cases/{id}/transfers`` (the partner is mailed
    the link); the answer shows the link and the access code, this once."""
    typed = _typed_transfer(form)
    try:
        body = TransferRequest.model_validate({k: v for k, v in typed.items() if v != ""})
    except ValidationError as invalid:
        error = _check_fields(page, invalid, TRANSFER_FIELDS)
        return _refused(page, case_id, form="transfer", error=error, transfer=typed)
    try:
        issued = forward_documents(
            runtime=page.runtime,
            session=page.session,
            case_id=case_id,
            body=body,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        error = refusal_text(page, refused)
        return _refused(
            page, case_id, form="transfer", error=error, status_code=refused.status, transfer=typed
        )
    partner = get_partner(page.session, partner_id=body.partner_id)
    return page.render("console/issued.html", issued=issued, partner=partner)


@router.post("/console/transfers/{transfer_id}/revoke")
def revoke(transfer_id: uuid.UUID, page: CoordinatorPage) -> Response:
    """Revoke a transfer, as ``POST /transfers/{id}/revoke``: its link stops working at once."""
    transfer = revoke_transfer(
        page.session, transfer_id=transfer_id, now=page.now, audit=page.audit
    )
    return page.redirect(f"/console/cases/{transfer.case_id}?done=revoked#transfers")
