"""Analyst page (/analysis): request extracts, follow their progress, download them and their
report.

Every page calls what the API's extract routes call for an analyst: ``GET /extracts``,
``GET /extract-scopes``, ``POST /extracts`` (through the router's ``request_and_enqueue``: the
build task is sent after the request is committed), ``GET /extracts/{id}`` and
``GET /extracts/{id}/content`` (the router's ``extract_download``). An analyst reaches only
their own extracts: another's answers the same 404 as an unknown id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from api.routers.extracts import (
    ExtractOut,
    ExtractRequest,
    ScopeOut,
    extract_download,
    request_and_enqueue,
)
from api.web.context import AnalystPage, Page
from api.web.session import PageRoute
from vault.errors import NotFound, VaultError
from vault.extracts.models import ExtractField, ExtractFormat, ExtractStatus
from vault.extracts.service import list_extracts, list_scopes, read_extract

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The notices the pages show after a form (``?done=<key>``); any other value shows nothing.
EXTRACT_DONE = ("requested",)
REQUEST_FIELDS = ("period_from", "period_to", "fields", "scope_id")
# The quasi-identifiers the report describes, and the field that brings each into an extract.
GENERALISED = (
    ("age_band", ExtractField.AGE_BAND),
    ("sex", ExtractField.SEX),
    ("country", ExtractField.COUNTRY),
    ("icd_chapter", ExtractField.DIAGNOSES),
)
UNFINISHED = (ExtractStatus.REQUESTED, ExtractStatus.BUILDING)


@dataclass(frozen=True)
class ExtractView:
    """An extract as the pages show it; ``state`` is its status, except that a ready extract
    past its expiry is ``expired`` (its data is deleted), as is a shredded one."""

    extract: ExtractOut
    state: str

    @property
    def finished(self) -> bool:
        return self.extract.status not in UNFINISHED

    @property
    def report(self) -> dict[str, Any]:
        return self.extract.report or {}

    def generalised(self) -> list[tuple[str, str]]:
        """(quasi-identifier, what became of it) for those the extract holds: ``kept``,
        ``removed``, or for the age band its width (``5y``, ``10y``, ``20y``)."""
        chosen = self.report.get("generalised") or {}
        shown = []
        for name, field in GENERALISED:
            if field.value not in self.extract.fields or name not in chosen:
                continue
            value = chosen[name]
            if name == "age_band":
                shown.append((name, "removed" if value == "removed" else str(value)))
            else:
                shown.append((name, "removed" if value else "kept"))
        return shown


def extract_view(page: Page, extract: ExtractOut) -> ExtractView:
    expired = extract.expires_at is not None and extract.expires_at <= page.now
    if extract.status is ExtractStatus.SHREDDED or (
        extract.status is ExtractStatus.READY and expired
    ):
        return ExtractView(extract, "expired")
    return ExtractView(extract, extract.status.value)


def _analyst_id(page: Page) -> uuid.UUID:
    assert page.user is not None  # AnalystPage lets only a signed-in analyst through
    return page.user.id


def _own_extract(page: Page, extract_id: uuid.UUID) -> ExtractView:
    """One of the analyst's extracts, as ``GET /extracts/{id}`` reads it (NotFound else)."""
    extract = read_extract(
        session=page.session,
        extract_id=extract_id,
        analyst_id=_analyst_id(page),
        now=page.now,
        audit=page.audit,
    )
    return extract_view(page, ExtractOut.of(extract))


# --- the list and the request form ---


def _default_form(page: Page) -> dict[str, Any]:
    today = page.now.date()
    return {
        "period_from": date(today.year, 1, 1).isoformat(),
        "period_to": today.isoformat(),
        "fields": [],
        "icd_chapter_only": False,
        "scope_id": "",
    }


def _index_page(
    page: Page,
    *,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    session, now, audit = page.session, page.now, page.audit
    extracts = list_extracts(session=session, analyst_id=_analyst_id(page), now=now, audit=audit)
    scopes = list_scopes(session=session, now=now, audit=audit)
    return page.render(
        "analysis/index.html",
        status_code=status_code,
        extracts=[extract_view(page, ExtractOut.of(extract)) for extract in extracts],
        scopes=[ScopeOut.of(scope) for scope in scopes],
        all_fields=list(ExtractField),
        form=form or _default_form(page),
        error=error,
        k=page.runtime.settings.extract_k,
        retention_days=page.runtime.settings.extract_retention_days,
    )


@router.get("/analysis")
def extracts_page(page: AnalystPage) -> Response:
    """The analyst's extracts, newest first, and the form to request one."""
    return _index_page(page)


def _invalid_fields(page: Page, invalid: ValidationError) -> str:
    """The refusal of a request that does not validate, naming its fields (not their values)."""
    wrong = {str(problem["loc"][0]) for problem in invalid.errors() if problem["loc"]}
    labels = [page.t(f"analysis.field_{name}") for name in REQUEST_FIELDS if name in wrong]
    return page.t("analysis.check_fields", fields=", ".join(labels or [page.t("analysis.form")]))


@router.post("/analysis/extracts")
def request_extract_form(
    page: AnalystPage,
    period_from: Annotated[str, Form(max_length=10)] = "",
    period_to: Annotated[str, Form(max_length=10)] = "",
    fields: Annotated[list[str], Form(max_length=len(ExtractField))] = [],  # noqa: B006
    icd_chapter_only: Annotated[str, Form(max_length=8)] = "",
    scope_id: Annotated[str, Form(max_length=36)] = "",
) -> Response:
    """Request an extract, as ``POST /extracts``: recorded, then its build is enqueued."""
    typed: dict[str, Any] = {
        "period_from": period_from,
        "period_to": period_to,
        "fields": [field[:32] for field in fields],
        "icd_chapter_only": bool(icd_chapter_only),
        "scope_id": scope_id,
    }
    if not fields:
        error = page.t("analysis.choose_a_field")
        return _index_page(page, form=typed, error=error, status_code=422)
    try:
        body = ExtractRequest.model_validate({**typed, "scope_id": scope_id or None})
    except ValidationError as invalid:
        error = _invalid_fields(page, invalid)
        return _index_page(page, form=typed, error=error, status_code=422)
    try:
        extract = request_and_enqueue(
            runtime=page.runtime,
            session=page.session,
            analyst_id=_analyst_id(page),
            body=body,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        page.session.rollback()
        error = page.error_text(refused)
        return _index_page(page, form=typed, error=error, status_code=refused.status)
    return page.redirect(f"/analysis/extracts/{extract.id}?done=requested")


# --- one extract ---


def _extract_page(
    page: Page,
    view: ExtractView,
    *,
    done: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return page.render(
        "analysis/extract.html",
        status_code=status_code,
        view=view,
        formats=list(ExtractFormat),
        done=done,
        error=error,
    )


@router.get("/analysis/extracts/{extract_id}")
def extract_page(extract_id: uuid.UUID, page: AnalystPage, done: str | None = None) -> Response:
    """An extract's state (followed by the page's script while it is built), its report and
    its downloads once ready."""
    return _extract_page(page, _own_extract(page, extract_id), done=page.notice(done, EXTRACT_DONE))


@router.get("/analysis/extracts/{extract_id}/status")
def extract_status(extract_id: uuid.UUID, page: AnalystPage) -> JSONResponse:
    """The extract's state for the page's script: ``{label, done}`` (done once built)."""
    view = _own_extract(page, extract_id)
    return JSONResponse(
        {"label": page.t(f"analysis.state.{view.state}"), "done": view.finished},
        headers={"Cache-Control": "no-store"},
    )


@router.get("/analysis/extracts/{extract_id}/download")
def download_extract(
    extract_id: uuid.UUID,
    page: AnalystPage,
    format: Annotated[ExtractFormat, Query()] = ExtractFormat.PARQUET,
) -> Response:
    """The extract as a file, as ``GET /extracts/{id}/content`` streams it (an attachment);
    not ready or deleted: the extract's page with the reason."""
    try:
        return extract_download(
            runtime=page.runtime,
            session=page.session,
            extract_id=extract_id,
            analyst_id=_analyst_id(page),
            fmt=format,
            now=page.now,
            audit=page.audit,
        )
    except NotFound:
        raise
    except VaultError as refused:
        page.session.rollback()
        view = _own_extract(page, extract_id)
        return _extract_page(page, view, error=page.error_text(refused), status_code=refused.status)
