"""Survey verbs: answer for a completed case, withdraw QA consent, object to QA use.

Each verb appends its audit event (ids only) and commits with it. A patient acts only on their
own cases: another patient's case answers NotFound, like an unknown one. Withdrawing QA consent
(Art. 7(3)) and objecting to QA use (Art. 21) are data-subject requests: each is registered
(``vault.subject_rights.requests``) and closed in the same transaction.
"""

import uuid
from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from keys.store import KeyStore
from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.cases.models import CaseStatus
from vault.cases.service import case_in_scope, get_live_case
from vault.crypto.fields import open_field, seal_field
from vault.errors import CaseNotCompleted, Gone, InvalidSurvey, SurveyAlreadyAnswered
from vault.keyring import translated_key_errors
from vault.subject_rights.models import RequestStatus, Right
from vault.subject_rights.requests import close_request, open_request
from vault.surveys.models import QaObjection, Survey
from vault.surveys.questions import CURRENT, MAX_SCORE, MIN_SCORE, Questionnaire

MAX_FREE_TEXT = 2000


def _free_text_context(survey_id: uuid.UUID) -> bytes:
    return f"survey:{survey_id}:free_text".encode()


def answer_survey(
    *,
    session: Session,
    keys: KeyStore,
    patient_id: uuid.UUID,
    case_id: uuid.UUID,
    scores: Mapping[str, int],
    free_text: str | None,
    qa_consent: bool,
    now: datetime,
    audit: AuditContext,
    questionnaire: Questionnaire = CURRENT,
) -> Survey:
    """Record the patient's answers for their completed case (once). Commits."""
    _check_scores(scores, questionnaire)
    if free_text is not None and len(free_text) > MAX_FREE_TEXT:
        raise InvalidSurvey(f"the comment is limited to {MAX_FREE_TEXT} characters")
    case = case_in_scope(
        session=session,
        case_id=case_id,
        patient_id=patient_id,
        action=AuditAction.SURVEY_ANSWER,
        now=now,
        audit=audit,
    )
    if case.status is CaseStatus.SHREDDED:
        raise Gone("this case was deleted for good at the end of its retention period")
    if case.status is not CaseStatus.COMPLETED:
        raise CaseNotCompleted("a survey can be answered once the treatment is completed")
    if survey_answered(session=session, case_id=case_id):
        raise SurveyAlreadyAnswered("this case's survey was already answered")
    survey = Survey(
        case_id=case.id,
        patient_id=patient_id,
        version=questionnaire.version,
        scores=dict(scores),
        answered_at=now,
        qa_consent=qa_consent,
    )
    if free_text:
        with translated_key_errors():
            case_key = keys.unsafe_key_material(session, case.key_id)
        survey.free_text_sealed = seal_field(
            case_key, free_text.encode(), context=_free_text_context(survey.id)
        )
    session.add(survey)
    append_event(
        session,
        context=audit,
        action=AuditAction.SURVEY_ANSWER,
        now=now,
        patient_id=patient_id,
        case_id=case.id,
    )
    session.commit()
    return survey


def survey_answered(*, session: Session, case_id: uuid.UUID) -> bool:
    """Whether the case's survey was answered (it can be, once). The caller has checked that
    the case is the patient's (``case_in_scope``); the answers themselves are not read."""
    return session.exec(select(Survey.id).where(Survey.case_id == case_id)).first() is not None


def unsafe_survey_free_text(*, session: Session, keys: KeyStore, survey: Survey) -> str | None:
    """The survey's comment, unsealed (free text: never log it); None if none was written.

    For the patient's own export (Art. 15). Raises Gone once the case is shredded.
    """
    if survey.free_text_sealed is None:
        return None
    case = get_live_case(session=session, case_id=survey.case_id)
    with translated_key_errors():
        case_key = keys.unsafe_key_material(session, case.key_id)
    opened = open_field(case_key, survey.free_text_sealed, context=_free_text_context(survey.id))
    return opened.decode()


def withdraw_qa_consent(
    *, session: Session, patient_id: uuid.UUID, now: datetime, audit: AuditContext
) -> int:
    """Withdraw QA consent on every survey of the patient; how many changed. Commits."""
    request = open_request(
        session, patient_id=patient_id, right=Right.CONSENT_WITHDRAWAL, now=now, audit=audit
    )
    changed = session.execute(
        sa.update(Survey)
        .where(
            col(Survey.patient_id) == patient_id,
            col(Survey.qa_consent).is_(True),
            col(Survey.qa_consent_withdrawn_at).is_(None),
        )
        .values(qa_consent_withdrawn_at=now)
        .execution_options(synchronize_session="fetch")
    )
    append_event(
        session,
        context=audit,
        action=AuditAction.QA_CONSENT_WITHDRAW,
        now=now,
        patient_id=patient_id,
        purpose=Right.CONSENT_WITHDRAWAL.value,
    )
    close_request(session, request, status=RequestStatus.COMPLETED, now=now, audit=audit)
    session.commit()
    return int(getattr(changed, "rowcount", 0))


def object_to_qa_use(
    *, session: Session, patient_id: uuid.UUID, now: datetime, audit: AuditContext
) -> tuple[QaObjection, bool]:
    """Record the patient's objection (Art. 21) to QA use, and whether it is new: objecting
    again keeps the first. Commits."""
    request = open_request(
        session, patient_id=patient_id, right=Right.OBJECTION, now=now, audit=audit
    )
    objection = session.get(QaObjection, patient_id)
    changed = objection is None
    if objection is None:
        objection = QaObjection(patient_id=patient_id, objected_at=now)
        session.add(objection)
    append_event(
        session,
        context=audit,
        action=AuditAction.QA_OBJECTION,
        now=now,
        patient_id=patient_id,
        purpose=Right.OBJECTION.value,
    )
    close_request(session, request, status=RequestStatus.COMPLETED, now=now, audit=audit)
    session.commit()
    return objection, changed


def _check_scores(scores: Mapping[str, int], questionnaire: Questionnaire) -> None:
    unknown = set(scores) - set(questionnaire.ids)
    if unknown:
        raise InvalidSurvey("an answer names a question this questionnaire does not have")
    if not scores:
        raise InvalidSurvey("answer at least one question")
    if any(not MIN_SCORE <= score <= MAX_SCORE for score in scores.values()):
        raise InvalidSurvey(f"scores run from {MIN_SCORE} to {MAX_SCORE}")
