"""The satisfaction survey (patients, for their completed cases), QA consent and objection."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import AuditDep, NowDep, PatientUser, RuntimeDep, SessionDep
from api.routers.cases import own_patient_id
from vault.clock import as_utc
from vault.json_types import JsonInteger
from vault.surveys.models import Survey
from vault.surveys.questions import CURRENT, MAX_SCORE, MIN_SCORE
from vault.surveys.service import (
    MAX_FREE_TEXT,
    answer_survey,
    object_to_qa_use,
    withdraw_qa_consent,
)

router = APIRouter(tags=["surveys"])


class _Answer(BaseModel):
    """A response model: SQLite hands back naive datetimes (written as UTC), given an offset."""

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: object) -> object:
        return as_utc(value) if isinstance(value, datetime) else value


class QuestionOut(BaseModel):
    id: str
    text: str


class QuestionnaireOut(BaseModel):
    version: str
    min_score: int
    max_score: int
    questions: list[QuestionOut]


class SurveyAnswers(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "scores": {"information": 5, "treatment": 4},
                    "comment": "Thank you!",
                    "qa_consent": True,
                }
            ]
        },
    )

    # The questionnaire's rules, stated for clients; the service checks them (invalid-survey).
    scores: dict[str, JsonInteger] = Field(
        json_schema_extra={
            "minProperties": 1,
            "propertyNames": {"enum": list(CURRENT.ids)},
            "additionalProperties": {"type": "integer", "minimum": MIN_SCORE, "maximum": MAX_SCORE},
        }
    )
    comment: str | None = Field(default=None, max_length=MAX_FREE_TEXT)
    qa_consent: bool = False


class SurveyOut(_Answer):
    """What was recorded (the comment is kept sealed and never shown back or exported)."""

    id: uuid.UUID
    case_id: uuid.UUID
    version: str
    scores: dict[str, int]
    answered_at: datetime
    qa_consent: bool

    @classmethod
    def of(cls, survey: Survey) -> SurveyOut:
        return cls.model_validate(survey, from_attributes=True)


class QaConsentWithdrawn(BaseModel):
    surveys_changed: int


class QaObjectionOut(_Answer):
    objected_at: datetime  # the first objection's: objecting again keeps it
    changed: bool  # False when you had objected before


@router.get("/survey-questions")
def get_survey_questions() -> QuestionnaireOut:
    """The current questionnaire (public): question ids, texts and the score range."""
    return QuestionnaireOut(
        version=CURRENT.version,
        min_score=MIN_SCORE,
        max_score=MAX_SCORE,
        questions=[QuestionOut(id=q.id, text=q.text) for q in CURRENT.questions],
    )


@router.post("/cases/{case_id}/survey", status_code=status.HTTP_201_CREATED)
def answer_case_survey(
    case_id: uuid.UUID,
    body: SurveyAnswers,
    user: PatientUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> SurveyOut:
    """Answer the survey for one of your completed cases, once; QA consent is optional."""
    survey = answer_survey(
        session=session,
        keys=runtime.key_store,
        patient_id=own_patient_id(user),
        case_id=case_id,
        scores=body.scores,
        free_text=body.comment,
        qa_consent=body.qa_consent,
        now=now,
        audit=audit,
    )
    return SurveyOut.of(survey)


@router.post("/me/qa-consent/withdraw")
def withdraw_my_qa_consent(
    user: PatientUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> QaConsentWithdrawn:
    """Withdraw consent to QA use of your survey answers; later extracts leave you out."""
    changed = withdraw_qa_consent(
        session=session, patient_id=own_patient_id(user), now=now, audit=audit
    )
    return QaConsentWithdrawn(surveys_changed=changed)


@router.post("/me/objections/qa")
def object_to_qa(
    user: PatientUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> QaObjectionOut:
    """Object (GDPR Art. 21) to the use of your data for quality assurance."""
    objection, changed = object_to_qa_use(
        session=session, patient_id=own_patient_id(user), now=now, audit=audit
    )
    return QaObjectionOut(objected_at=objection.objected_at, changed=changed)
