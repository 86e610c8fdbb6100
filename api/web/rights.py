"""The patient's rights (/portal/rights): access and portability exports, rectification,
restriction, withdrawal, objection and erasure, and the requests made so far.

Each form calls the service function (or the router glue) that the API's ``/me/...`` route
calls, scoped to the signed-in patient the same way: another patient's export answers the
404 of an unknown one. Restriction, withdrawal and objection answer with the outcome page
itself (what changed, which transfers were revoked or kept and why: known only to the call
that did it); sending one of them again changes nothing but adds a request to the register.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from api.routers.cases import CaseSummary
from api.routers.consents import RestrictionOut
from api.routers.erasure import erase_own_data
from api.routers.exports import ExportOut, export_link, start_export
from api.routers.rights import (
    ProfileOut,
    ProfileUpdate,
    RightsRequestOut,
    own_profile,
    rectify_own_profile,
)
from api.web.context import AnyPage, Page, PatientPage
from api.web.session import SESSION_COOKIE, PageRoute, cookie, set_cookie
from vault.accounts.service import user_for_access_token
from vault.cases.models import CaseStatus
from vault.cases.service import MAX_PAGE, list_cases, read_case, restricted_since
from vault.clock import as_utc
from vault.consents.service import list_restrictions
from vault.errors import NotAuthenticated, VaultError
from vault.patients.models import Sex
from vault.subject_rights.erasure import preview_erasure
from vault.subject_rights.exports import list_exports, read_export
from vault.subject_rights.models import ExportStatus, Right
from vault.subject_rights.requests import list_requests
from vault.subject_rights.service import object_to_legitimate_interests, restrict_processing
from vault.surveys.service import object_to_qa_use, withdraw_qa_consent

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The notices a page shows after a form (``?done=<key>``); any other value shows nothing.
EXPORT_DONE = ("requested",)
PROFILE_DONE = ("rectified", "rectified_login", "unchanged")
ERASED_DONE = ("completed", "partial", "pending")
LIVE = (CaseStatus.OPEN, CaseStatus.COMPLETED)
# The profile form's fields, in the order the page shows them (error messages name them).
PROFILE_FIELDS = ("email", "name", "birth_date", "phone", "sex", "country")
CONFIRMED = "yes"


# --- the overview: every right, and the requests made ---


@dataclass(frozen=True)
class RightsView:
    """What the overview shows besides the forms."""

    requests: list[RightsRequestOut]
    exports: list[ExportOut]
    cases: list[CaseSummary]  # live cases, newest first: one can be restricted alone
    restrictions: list[RestrictionOut]  # in force

    def case(self, case_id: uuid.UUID | None) -> CaseSummary | None:
        return next((case for case in self.cases if case.id == case_id), None)

    @property
    def export_pending(self) -> bool:
        return any(export.status is ExportStatus.PENDING for export in self.exports)


def rights_view(page: Page) -> RightsView:
    patient_id, now, audit, session = page.patient_id, page.now, page.audit, page.session
    requests = list_requests(
        session, patient_id=patient_id, newest_first=True, now=now, audit=audit
    )
    exports = list_exports(session=session, patient_id=patient_id, now=now, audit=audit)
    cases = list_cases(session=session, patient_id=patient_id, limit=MAX_PAGE, now=now, audit=audit)
    live = [case for case in cases if case.status in LIVE]
    restrictions = list_restrictions(
        session, patient_id=patient_id, live_only=True, now=now, audit=audit
    )
    since = restricted_since(session=session, cases=live)
    return RightsView(
        requests=[RightsRequestOut.of(request, now=now) for request in requests],
        exports=[ExportOut.of(found) for found in exports],
        cases=[CaseSummary.of(case, since) for case in live],
        restrictions=[RestrictionOut.of(restriction) for restriction in restrictions],
    )


def _rights_page(page: Page, *, error: str | None = None, status_code: int = 200) -> Response:
    return page.render(
        "rights/index.html",
        status_code=status_code,
        view=rights_view(page),
        error=error,
    )


def _refused(page: Page, refused: VaultError) -> Response:
    """The overview again with the refusal, nothing of the refused request stored."""
    page.session.rollback()
    return _rights_page(page, error=page.error_text(refused), status_code=refused.status)


@router.get("/portal/rights")
def rights(page: PatientPage) -> Response:
    return _rights_page(page)


# --- access (Art. 15) and portability (Art. 20) exports ---


@router.post("/portal/rights/exports")
def request_export(
    page: PatientPage, kind: Annotated[Literal["access", "portability"], Form()]
) -> Response:
    """Ask for an export as ``POST /me/exports`` does; its build is sent after the commit."""
    try:
        found = start_export(
            runtime=page.runtime,
            session=page.session,
            patient_id=page.patient_id,
            right=Right(kind),
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        return _refused(page, refused)
    return page.redirect(f"/portal/rights/exports/{found.export.id}?done=requested")


def _export(page: Page, export_id: uuid.UUID) -> ExportOut:
    """One of the patient's exports (NotFound for anyone else's, as for an unknown one)."""
    found = read_export(
        session=page.session,
        export_id=export_id,
        patient_id=page.patient_id,
        now=page.now,
        audit=page.audit,
    )
    return ExportOut.of(found)


def _export_page(
    page: Page,
    export: ExportOut,
    *,
    done: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return page.render(
        "rights/export.html",
        status_code=status_code,
        export=export,
        done=done,
        error=error,
        size=page.t.size(export.size),
        link_minutes=page.runtime.settings.export_link_minutes,
    )


@router.get("/portal/rights/exports/{export_id}")
def export_page(export_id: uuid.UUID, page: PatientPage, done: str | None = None) -> Response:
    return _export_page(page, _export(page, export_id), done=page.notice(done, EXPORT_DONE))


@router.get("/portal/rights/exports/{export_id}/status")
def export_status(export_id: uuid.UUID, page: PatientPage) -> JSONResponse:
    """The export's state for the page's script: ``{label, done}`` (done once not pending)."""
    export = _export(page, export_id)
    return JSONResponse(
        {
            "label": page.t(f"rights.export_status.{export.status.value}"),
            "done": export.status is not ExportStatus.PENDING,
        }
    )


@router.post("/portal/rights/exports/{export_id}/download")
def download_export(export_id: uuid.UUID, page: PatientPage) -> Response:
    """A signed link as ``POST /me/exports/{id}/link`` issues it, followed at once: the browser
    downloads the archive from ``GET /exports/{id}/download`` (no one else sees the link)."""
    try:
        link = export_link(
            runtime=page.runtime,
            session=page.session,
            export_id=export_id,
            patient_id=page.patient_id,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        page.session.rollback()
        export = _export(page, export_id)  # another patient's: the 404 page
        return _export_page(
            page, export, error=page.error_text(refused), status_code=refused.status
        )
    return page.redirect(link.url)


# --- rectification (Art. 16) ---


def _profile_page(
    page: Page,
    *,
    values: dict[str, Any],
    done: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return page.render(
        "rights/profile.html",
        status_code=status_code,
        values=values,
        done=done,
        error=error,
        sexes=list(Sex),
        countries=page.t.countries(),
    )


def _profile(page: Page) -> ProfileOut:
    return own_profile(
        runtime=page.runtime,
        session=page.session,
        patient_id=page.patient_id,
        now=page.now,
        audit=page.audit,
    )


@router.get("/portal/rights/profile")
def profile_form(page: PatientPage, done: str | None = None) -> Response:
    values = _profile(page).model_dump(mode="json")
    return _profile_page(page, values=values, done=page.notice(done, PROFILE_DONE))


@router.post("/portal/rights/profile")
def rectify(
    page: PatientPage,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)],
    birth_date: Annotated[str, Form(max_length=10)],
    phone: Annotated[str, Form(max_length=40)] = "",
    sex: Annotated[str, Form(max_length=16)] = Sex.UNKNOWN.value,
    country: Annotated[str, Form(max_length=2)] = "",
) -> Response:
    """Correct the fields that differ from the profile held, as ``PATCH /me/profile`` does
    with those fields (an emptied phone number or country is removed)."""
    given: dict[str, Any] = {
        "email": email.strip(),
        "name": name.strip(),
        "birth_date": birth_date,
        "phone": phone.strip() or None,
        "sex": sex,
        "country": country or None,
    }
    held = _profile(page).model_dump(mode="json")
    changed = {field: value for field, value in given.items() if value != held[field]}
    if not changed:
        return page.redirect("/portal/rights/profile?done=unchanged")
    try:
        update = ProfileUpdate.model_validate(changed)
    except ValidationError as invalid:
        wrong = {str(problem["loc"][0]) for problem in invalid.errors() if problem["loc"]}
        labels = [page.t(f"patient.field_{field}") for field in PROFILE_FIELDS if field in wrong]
        error = page.t("patient.check_fields", fields=", ".join(labels))
        return _profile_page(page, values=given, error=error, status_code=422)
    try:
        done = rectify_own_profile(
            runtime=page.runtime,
            session=page.session,
            patient_id=page.patient_id,
            update=update,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        page.session.rollback()
        error = page.error_text(refused)
        return _profile_page(page, values=given, error=error, status_code=refused.status)
    notice = "rectified_login" if done.login_changed else "rectified"
    return page.redirect(f"/portal/rights/profile?done={notice}")


# --- restriction (Art. 18), withdrawal (Art. 7(3)) and objection (Art. 21) ---


def _outcome(page: Page, kind: str, **outcome: Any) -> Response:
    return page.render("rights/outcome.html", kind=kind, **outcome)


@router.post("/portal/rights/restriction")
def restrict(page: PatientPage, case_id: Annotated[uuid.UUID | None, Form()] = None) -> Response:
    """Restrict all of the patient's data, or one live case of theirs, as
    ``POST /me/restriction`` does (another patient's case: not found, nothing stored)."""
    try:
        done = restrict_processing(
            page.session,
            patient_id=page.patient_id,
            case_id=case_id,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        return _refused(page, refused)
    case = None
    if done.restriction.case_id is not None:
        restricted = read_case(
            session=page.session,
            case_id=done.restriction.case_id,
            patient_id=page.patient_id,
            now=page.now,
            audit=page.audit,
        )
        case = CaseSummary.one(page.session, restricted)
    return _outcome(
        page,
        "restriction",
        placed=done.placed,
        restriction=RestrictionOut.of(done.restriction),
        case=case,
    )


@router.post("/portal/rights/qa-consent/withdraw")
def withdraw_qa(page: PatientPage) -> Response:
    """Withdraw consent to QA use of the survey answers (``POST /me/qa-consent/withdraw``)."""
    changed = withdraw_qa_consent(
        session=page.session, patient_id=page.patient_id, now=page.now, audit=page.audit
    )
    return _outcome(page, "qa_withdrawal", surveys_changed=changed)


@router.post("/portal/rights/objections/qa")
def object_to_qa(page: PatientPage) -> Response:
    """Object to QA use of the patient's data (``POST /me/objections/qa``)."""
    objection, changed = object_to_qa_use(
        session=page.session, patient_id=page.patient_id, now=page.now, audit=page.audit
    )
    return _outcome(page, "qa_objection", objected_at=objection.objected_at, changed=changed)


@router.post("/portal/rights/objections/legitimate-interests")
def object_to_interests(page: PatientPage) -> Response:
    """Object to processing on legitimate interests (``POST
    /me/objections/legitimate-interests``): says which transfers were revoked, which kept."""
    done = object_to_legitimate_interests(
        page.session, patient_id=page.patient_id, now=page.now, audit=page.audit
    )
    return _outcome(
        page,
        "interests_objection",
        objected_at=done.objected_at,
        changed=done.changed,
        revocation=done.revocation,
    )


# --- erasure (Art. 17) ---


def _erasure_page(page: Page, *, error: str | None = None, status_code: int = 200) -> Response:
    patient_id = page.patient_id
    cases = list_cases(
        session=page.session, patient_id=patient_id, limit=MAX_PAGE, now=page.now, audit=page.audit
    )
    preview = preview_erasure(
        page.session,
        patient_id=patient_id,
        retention_years=page.runtime.settings.retention_years,
        now=page.now,
    )
    return page.render(
        "rights/erasure.html",
        status_code=status_code,
        preview=preview,
        filed={case.id: as_utc(case.created_at) for case in cases},
        error=error,
    )


@router.get("/portal/rights/erasure")
def erasure_form(page: PatientPage) -> Response:
    return _erasure_page(page)


def _still_signed_in(page: Page) -> bool:
    token = cookie(page.request, SESSION_COOKIE)
    if token is None:
        return False
    try:
        user_for_access_token(page.session, token=token, now=page.now)
    except NotAuthenticated:
        return False
    return True


@router.post("/portal/rights/erasure")
def erase(page: PatientPage, confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    """Erase as ``POST /me/erasure`` does (only when confirmed), then sign the patient out:
    the account is closed for good."""
    if confirm != CONFIRMED:
        return _erasure_page(page, error=page.t("rights.erasure_unconfirmed"), status_code=422)
    try:
        outcome = erase_own_data(
            runtime=page.runtime,
            session=page.session,
            patient_id=page.patient_id,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        page.session.rollback()
        if _still_signed_in(page):  # refused before anything was done
            error = page.error_text(refused)
            return _erasure_page(page, error=error, status_code=refused.status)
        # The erasure was recorded and the account closed; a shred left unfinished (the
        # store or key service was away) is finished by the next retention run.
        done = "pending"
    else:
        done = "partial" if outcome.kept else "completed"
    set_cookie(page.request, SESSION_COOKIE, "", max_age=0)
    return page.redirect(f"/erased?done={done}")


@router.get("/erased")
def erased(page: AnyPage, done: str | None = None) -> Response:
    """What an erasure did, after it signed the patient out."""
    return page.render("rights/erased.html", done=page.notice(done, ERASED_DONE))
