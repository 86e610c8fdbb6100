"""Patient portal (/portal): treatment requests, uploads, documents, disclosures, survey; and the
pages before sign-in (/register, /confirm, /accept-invitation).

Every page calls the service functions the API's routers call, scoped to the signed-in patient
as the API scopes them: another patient's case or document answers the same 404 page as an
unknown id. Uploads stream into the vault through :mod:`api.uploads` exactly as the API's do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.routers.auth import MAX_PASSWORD_FIELD, MAX_TOKEN_LENGTH, Registration, mail_context
from api.routers.cases import CaseSummary
from api.routers.consents import ConsentOut
from api.routers.documents import (
    UPLOAD_KINDS,
    DocumentListed,
    document_download,
    listed_documents,
    stream_into_case,
    upload_kind,
)
from api.routers.transfers import DisclosureOut
from api.uploads import (
    MULTIPART_OVERHEAD,
    MultipartUpload,
    raw_body,
    refuse_declared_oversize,
    safe_upload_name,
)
from api.web.context import HOME_OF_ROLE, AnyPage, Page, PatientPage
from api.web.session import CSRF_HEADER, PageRoute
from vault.accounts.service import accept_invitation, confirm_email, register_patient_account
from vault.cases.models import CaseStatus
from vault.cases.service import MAX_PAGE, list_cases, open_case, read_case, restricted_since
from vault.consents.service import give_consent, list_consents
from vault.consents.texts import CONSENT_TEXTS, ConsentText
from vault.documents.service import get_document, unsafe_document_filename
from vault.errors import Gone, InvalidDocument, NotFound, VaultError
from vault.patients.models import Sex
from vault.subject_rights.service import withdraw_consent_and_revoke_links
from vault.surveys.questions import CURRENT as QUESTIONNAIRE
from vault.surveys.questions import MAX_SCORE, MIN_SCORE
from vault.surveys.service import MAX_FREE_TEXT, answer_survey, survey_answered
from vault.transfers.service import disclosures_for_patient

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The notices a page shows after a form (``?done=<key>``); any other value shows nothing.
CONFIRM_DONE = ("registered", "confirmed")
INVITATION_DONE = ("accepted",)
CASE_DONE = ("opened", "uploaded", "consented", "withdrawn", "survey")
LIVE = (CaseStatus.OPEN, CaseStatus.COMPLETED)
# The registration form's fields, in the order the page shows them (error messages name them).
REGISTRATION_FIELDS = ("email", "name", "birth_date", "phone", "sex", "country", "password")
FILE_FIELD = "files"


def current_consent_text() -> ConsentText:
    """The consent text a new consent is given to: the latest published version."""
    return list(CONSENT_TEXTS.values())[-1]


# --- before sign-in: registration, confirmation, invitation ---


def _registration_page(
    page: Page, *, values: dict[str, str], error: str | None, status_code: int = 200
) -> Response:
    return page.render(
        "patient/register.html",
        status_code=status_code,
        values=values,
        error=error,
        sexes=list(Sex),
        countries=page.t.countries(),
    )


@router.get("/register")
def registration_form(page: AnyPage) -> Response:
    if page.user is not None:  # signed in already: nothing to register
        return page.redirect(HOME_OF_ROLE[page.user.role])
    return _registration_page(page, values={}, error=None)


@router.post("/register")
def register(
    page: AnyPage,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)],
    birth_date: Annotated[str, Form(max_length=10)],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_FIELD)],
    password_repeat: Annotated[str, Form(max_length=MAX_PASSWORD_FIELD)],
    phone: Annotated[str, Form(max_length=40)] = "",
    sex: Annotated[str, Form(max_length=16)] = Sex.UNKNOWN.value,
    country: Annotated[str, Form(max_length=2)] = "",
) -> Response:
    """The same fields and checks as ``POST /auth/register``; the same answer whether or not the
    address has an account (the mail says which)."""
    values = {
        "email": email.strip(),
        "name": name.strip(),
        "birth_date": birth_date,
        "phone": phone.strip(),
        "sex": sex,
        "country": country,
    }
    try:
        registration = Registration.model_validate(
            {
                **values,
                "phone": values["phone"] or None,
                "country": country or None,
                "password": password,
            }
        )
    except ValidationError as invalid:
        wrong = {str(problem["loc"][0]) for problem in invalid.errors() if problem["loc"]}
        named = [field for field in REGISTRATION_FIELDS if field in wrong]
        labels = [page.t(f"patient.field_{field}") for field in named]
        error = page.t("patient.check_fields", fields=", ".join(labels))
        return _registration_page(page, values=values, error=error, status_code=422)
    if password != password_repeat:
        error = page.t("patient.passwords_differ")
        return _registration_page(page, values=values, error=error, status_code=422)
    try:
        register_patient_account(
            page.session,
            keys=page.runtime.key_store,
            lookup_key=page.runtime.secrets.login_lookup_key,
            mail=mail_context(page.runtime, page.runtime.notifier),
            identity=registration.identity(),
            password=password,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        page.session.rollback()
        return _registration_page(
            page, values=values, error=page.error_text(refused), status_code=refused.status
        )
    return page.redirect("/confirm?done=registered")


def _code_refused(page: Page, template: str, refused: VaultError) -> Response:
    """The code form again with the refusal (the code itself is not shown back)."""
    page.session.rollback()
    return page.render(
        template, status_code=refused.status, done=None, error=page.error_text(refused)
    )


@router.get("/confirm")
def confirmation_form(page: AnyPage, done: str | None = None) -> Response:
    return page.render("patient/confirm.html", done=page.notice(done, CONFIRM_DONE), error=None)


@router.post("/confirm")
def confirm(page: AnyPage, code: Annotated[str, Form(max_length=MAX_TOKEN_LENGTH)]) -> Response:
    try:
        confirm_email(page.session, token=code.strip(), now=page.now, audit=page.audit)
    except VaultError as refused:
        return _code_refused(page, "patient/confirm.html", refused)
    return page.redirect("/confirm?done=confirmed")


@router.get("/accept-invitation")
def invitation_form(page: AnyPage, done: str | None = None) -> Response:
    return page.render(
        "patient/accept_invitation.html", done=page.notice(done, INVITATION_DONE), error=None
    )


@router.post("/accept-invitation")
def accept(
    page: AnyPage,
    code: Annotated[str, Form(max_length=MAX_TOKEN_LENGTH)],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_FIELD)],
    password_repeat: Annotated[str, Form(max_length=MAX_PASSWORD_FIELD)],
) -> Response:
    if password != password_repeat:
        error = page.t("patient.passwords_differ")
        return page.render(
            "patient/accept_invitation.html", status_code=422, done=None, error=error
        )
    try:
        accept_invitation(
            page.session, token=code.strip(), password=password, now=page.now, audit=page.audit
        )
    except VaultError as refused:
        return _code_refused(page, "patient/accept_invitation.html", refused)
    return page.redirect("/accept-invitation?done=accepted")


# --- treatment requests ---


@router.get("/portal")
def portal(page: PatientPage) -> Response:
    cases = list_cases(
        session=page.session,
        patient_id=page.patient_id,
        limit=MAX_PAGE,
        now=page.now,
        audit=page.audit,
    )
    restrictions = restricted_since(session=page.session, cases=cases)
    return page.render(
        "patient/portal.html", cases=[CaseSummary.of(case, restrictions) for case in cases]
    )


@router.get("/portal/cases/new")
def new_case_form(page: PatientPage) -> Response:
    return page.render("patient/new_case.html", consent_text=current_consent_text(), error=None)


@router.post("/portal/cases/new")
def file_case(
    page: PatientPage,
    text_version: Annotated[str, Form(max_length=100)] = "",
    consent: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Open a case (``POST /cases``) and, if the patient ticked it, give the consent to the
    text version they were shown (``POST /cases/{id}/consents``)."""
    patient_id = page.patient_id
    if consent and text_version not in CONSENT_TEXTS:  # checked before anything is stored
        return page.render(
            "patient/new_case.html",
            status_code=422,
            consent_text=current_consent_text(),
            error=page.t("errors.unknown-consent-text"),
        )
    case = open_case(
        session=page.session,
        keys=page.runtime.key_store,
        patient_id=patient_id,
        now=page.now,
        audit=page.audit,
    )
    if consent:
        give_consent(
            page.session,
            patient_id=patient_id,
            case_id=case.id,
            text_version=text_version,
            now=page.now,
            audit=page.audit,
        )
    return page.redirect(f"/portal/cases/{case.id}?done=opened")


@dataclass(frozen=True)
class CaseView:
    """What the case page shows: the case, its documents (None once shredded), its consents
    and whether its survey can be answered."""

    case: CaseSummary
    documents: list[DocumentListed] | None
    consents: list[ConsentOut]
    survey_open: bool
    survey_answered: bool

    @property
    def live(self) -> bool:
        return self.case.status in LIVE

    @property
    def consent_live(self) -> bool:
        return any(consent.withdrawn_at is None for consent in self.consents)


def case_view(page: Page, case_id: uuid.UUID) -> CaseView:
    """The patient's case as the API's reads give it (NotFound for anyone else's)."""
    patient_id = page.patient_id
    audit, now, session = page.audit, page.now, page.session
    case = read_case(session=session, case_id=case_id, patient_id=patient_id, now=now, audit=audit)
    documents: list[DocumentListed] | None
    try:
        documents = listed_documents(
            runtime=page.runtime,
            session=session,
            case_id=case_id,
            patient_id=patient_id,
            now=now,
            audit=audit,
        )
    except Gone:
        documents = None
    consents = list_consents(session, case_id=case_id, patient_id=patient_id, now=now, audit=audit)
    completed = case.status is CaseStatus.COMPLETED
    answered = completed and survey_answered(session=session, case_id=case_id)
    return CaseView(
        case=CaseSummary.one(session, case),
        documents=documents,
        consents=[ConsentOut.of(consent) for consent in consents],
        survey_open=completed and not answered,
        survey_answered=answered,
    )


def _case_page(
    page: Page, view: CaseView, *, done: str | None, error: str | None, status_code: int = 200
) -> Response:
    return page.render(
        "patient/case.html",
        status_code=status_code,
        view=view,
        done=done,
        error=error,
        kinds=UPLOAD_KINDS,
        consent_text=current_consent_text(),
    )


@router.get("/portal/cases/{case_id}")
def case_page(case_id: uuid.UUID, page: PatientPage, done: str | None = None) -> Response:
    view = case_view(page, case_id)
    return _case_page(page, view, done=page.notice(done, CASE_DONE), error=None)


@router.get("/portal/documents/{document_id}")
def download(document_id: uuid.UUID, page: PatientPage) -> Response:
    """The document's content as an attachment, streamed like ``GET /documents/{id}/content``."""
    return document_download(
        runtime=page.runtime,
        session=page.session,
        document_id=document_id,
        patient_id=page.patient_id,
        now=page.now,
        audit=page.audit,
    )


@router.post("/portal/cases/{case_id}/files/{filename}")
async def upload_file(
    case_id: uuid.UUID,
    filename: Annotated[str, Path(max_length=255)],
    page: PatientPage,
    kind: Annotated[str | None, Query(max_length=16)] = None,
) -> JSONResponse:
    """One file as the raw body (the pages' script; token in ``X-CSRF-Token``), streamed into
    the vault as ``PUT /cases/{id}/uploads/{filename}`` does; answers JSON ``{message}``."""
    request = page.request
    try:
        if request.headers.get(CSRF_HEADER) is None:  # a form post: its body was read already
            raise InvalidDocument("send the file itself as the body, as the page's script does")
        refuse_declared_oversize(request, page.runtime.intake_limits)
        await stream_into_case(
            raw_body(request),
            runtime=page.runtime,
            session=page.session,
            case_id=case_id,
            patient_id=page.patient_id,
            kind=upload_kind(kind),
            filename=filename,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        return JSONResponse({"message": page.error_text(refused)}, status_code=refused.status)
    stored = page.t("patient.upload_stored", name=safe_upload_name(filename))
    return JSONResponse({"message": stored}, status_code=201)


@router.post("/portal/cases/{case_id}/documents")
async def upload_without_script(case_id: uuid.UUID, page: PatientPage) -> Response:
    """The upload form without JavaScript: one file in a multipart form (its ``kind`` field
    first), streamed through the same bridge as the script's uploads, never spooled; back to the
    case page with a notice. (The script sends several files, each as its own request.)"""
    request = page.request
    limits = page.runtime.intake_limits
    try:
        refuse_declared_oversize(request, limits, slack=MULTIPART_OVERHEAD)
        form = MultipartUpload(request, limits=limits, file_field=FILE_FIELD)
        await form.open()
        if not form.filename:
            raise InvalidDocument("choose a file")
        await stream_into_case(
            form.file_bytes(),
            runtime=page.runtime,
            session=page.session,
            case_id=case_id,
            patient_id=page.patient_id,
            kind=upload_kind(form.fields.get("kind")),
            filename=form.filename,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        await run_in_threadpool(page.session.rollback)
        view = await run_in_threadpool(case_view, page, case_id)
        text = page.t("patient.upload_refused_plain", reason=page.error_text(refused))
        return _case_page(page, view, done=None, error=text, status_code=refused.status)
    return page.redirect(f"/portal/cases/{case_id}?done=uploaded")


@router.post("/portal/cases/{case_id}/consents")
def consent_to_forwarding(
    case_id: uuid.UUID,
    page: PatientPage,
    text_version: Annotated[str, Form(max_length=100)],
    consent: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Give the consent to forwarding (``POST /cases/{id}/consents``) to the text shown."""
    if not consent:
        view = case_view(page, case_id)
        return _case_page(
            page, view, done=None, error=page.t("patient.tick_to_consent"), status_code=422
        )
    try:
        give_consent(
            page.session,
            patient_id=page.patient_id,
            case_id=case_id,
            text_version=text_version,
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        if isinstance(refused, NotFound):
            raise  # another patient's case: the same 404 page as an unknown one
        page.session.rollback()
        view = case_view(page, case_id)
        text = page.error_text(refused)
        return _case_page(page, view, done=None, error=text, status_code=refused.status)
    return page.redirect(f"/portal/cases/{case_id}?done=consented")


@router.post("/portal/cases/{case_id}/consents/{consent_id}/withdraw")
def withdraw_consent(case_id: uuid.UUID, consent_id: uuid.UUID, page: PatientPage) -> Response:
    """Withdraw a consent (Art. 7(3)): links issued on it and not used yet stop working."""
    withdraw_consent_and_revoke_links(
        page.session,
        patient_id=page.patient_id,
        case_id=case_id,
        consent_id=consent_id,
        now=page.now,
        audit=page.audit,
    )
    return page.redirect(f"/portal/cases/{case_id}?done=withdrawn")


# --- the satisfaction survey ---


async def _posted_form(request: Request) -> FormData:
    return await request.form()  # parsed once already by the CSRF check


PostedForm = Annotated[FormData, Depends(_posted_form)]


def _survey_page(
    page: Page,
    case_id: uuid.UUID,
    *,
    scores: dict[str, int],
    comment: str,
    qa_consent: bool,
    error: str | None,
    status_code: int = 200,
) -> Response:
    case = read_case(
        session=page.session,
        case_id=case_id,
        patient_id=page.patient_id,
        now=page.now,
        audit=page.audit,
    )
    completed = case.status is CaseStatus.COMPLETED
    return page.render(
        "patient/survey.html",
        status_code=status_code,
        case=CaseSummary.one(page.session, case),
        completed=completed,
        answered=completed and survey_answered(session=page.session, case_id=case_id),
        questionnaire=QUESTIONNAIRE,
        score_range=range(MIN_SCORE, MAX_SCORE + 1),
        scores=scores,
        comment=comment,
        qa_consent=qa_consent,
        max_comment=MAX_FREE_TEXT,
        error=error,
    )


@router.get("/portal/cases/{case_id}/survey")
def survey_form(case_id: uuid.UUID, page: PatientPage) -> Response:
    return _survey_page(page, case_id, scores={}, comment="", qa_consent=False, error=None)


@router.post("/portal/cases/{case_id}/survey")
def answer_case_survey(
    case_id: uuid.UUID,
    page: PatientPage,
    form: PostedForm,
    comment: Annotated[str, Form(max_length=2 * MAX_FREE_TEXT)] = "",
    qa_consent: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Answer once, for a completed case (``POST /cases/{id}/survey``): a score from 1 to 5 for
    each question answered (radios ``score_<question id>``), a comment, the QA consent."""
    scores: dict[str, int] = {}
    for question in QUESTIONNAIRE.questions:
        value = form.get(f"score_{question.id}")
        if isinstance(value, str) and value.isdigit() and len(value) < 3:
            scores[question.id] = int(value)
    text = comment.replace("\r\n", "\n").strip()  # a browser sends a line break as CR LF
    try:
        answer_survey(
            session=page.session,
            keys=page.runtime.key_store,
            patient_id=page.patient_id,
            case_id=case_id,
            scores=scores,
            free_text=text or None,
            qa_consent=bool(qa_consent),
            now=page.now,
            audit=page.audit,
        )
    except VaultError as refused:
        if isinstance(refused, NotFound):
            raise
        page.session.rollback()
        return _survey_page(
            page,
            case_id,
            scores=scores,
            comment=text,
            qa_consent=bool(qa_consent),
            error=page.error_text(refused),
            status_code=refused.status,
        )
    return page.redirect(f"/portal/cases/{case_id}?done=survey")


# --- disclosures ---


@dataclass(frozen=True)
class DisclosureView:
    disclosure: DisclosureOut
    case_filed: CaseSummary | None


def _document_names(page: Page, document_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The file names of the patient's disclosed documents; a deleted one has none."""
    names = {}
    for document_id in document_ids:
        try:
            document = get_document(session=page.session, document_id=document_id)
            if document.shredded_at is None:
                names[document_id] = unsafe_document_filename(
                    session=page.session, keys=page.runtime.key_store, document=document
                )
        except (NotFound, Gone):
            continue
    return names


@router.get("/portal/disclosures")
def disclosures(page: PatientPage) -> Response:
    """Every disclosure of the patient's data (``GET /me/disclosures``), newest first."""
    patient_id = page.patient_id
    found = disclosures_for_patient(
        page.session, patient_id=patient_id, now=page.now, audit=page.audit
    )
    cases = list_cases(
        session=page.session, patient_id=patient_id, limit=MAX_PAGE, now=page.now, audit=page.audit
    )
    summaries = {case.id: CaseSummary.of(case, {}) for case in cases}
    shown = [
        DisclosureView(DisclosureOut.of(disclosure), summaries.get(disclosure.case_id))
        for disclosure in reversed(found)
    ]
    document_ids = {document.id for item in found for document in item.documents}
    return page.render(
        "patient/disclosures.html",
        disclosures=shown,
        names=_document_names(page, document_ids),
    )
