"""The survey API: questions, answering for a completed case, QA consent and objection."""

from __future__ import annotations

import uuid

from sqlmodel import select

from tests.apiharness import ApiHarness, TestUser
from tests.factories import NOW, intake_limits, make_completed_case
from tests.factories import Vault as FactoryVault
from vault.accounts.models import Role
from vault.audit.service import AuditContext
from vault.cases.service import open_case
from vault.patients.models import Patient
from vault.surveys.models import QaObjection, Survey
from vault.surveys.questions import CURRENT


def completed_case(api: ApiHarness, patient: TestUser) -> uuid.UUID:
    with api.session() as session:
        vault = FactoryVault(
            session=session,
            store=api.runtime.blob_store,
            keys=api.runtime.key_store,
            spool_dir=api.runtime.spool_dir,
            limits=intake_limits(),
        )
        owner = session.get(Patient, patient.patient_id)
        case, _ = make_completed_case(vault, patient=owner, completed_at=NOW, documents=0)
        return case.id


def answers(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"scores": {"treatment": 5, "information": 3}, "qa_consent": True}
    body.update(overrides)
    return body


def stored_surveys(api: ApiHarness) -> list[Survey]:
    with api.session() as session:
        return list(session.exec(select(Survey)))


def test_the_questions_are_public(api: ApiHarness) -> None:
    response = api.client.get("/survey-questions")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == CURRENT.version
    assert [q["id"] for q in body["questions"]] == list(CURRENT.ids)
    assert (body["min_score"], body["max_score"]) == (1, 5)


def test_a_patient_answers_once_for_a_completed_case(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = completed_case(api, patient)
    response = api.client.post(
        f"/cases/{case_id}/survey", json=answers(comment="very kind staff"), headers=patient.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["scores"] == {"treatment": 5, "information": 3}
    assert "comment" not in response.json()
    [survey] = stored_surveys(api)
    assert survey.free_text_sealed is not None
    assert b"kind staff" not in survey.free_text_sealed
    again = api.client.post(f"/cases/{case_id}/survey", json=answers(), headers=patient.headers)
    assert again.status_code == 409
    assert again.json()["type"].endswith("survey-already-answered")


def test_an_open_case_or_another_patients_case_is_refused(api: ApiHarness) -> None:
    patient, other = api.patient(), api.patient()
    with api.session() as session:
        open_one = open_case(
            session=session,
            keys=api.runtime.key_store,
            patient_id=patient.patient_id,  # type: ignore[arg-type]
            now=NOW,
            audit=AuditContext.SYSTEM,
        )
    not_done = api.client.post(
        f"/cases/{open_one.id}/survey", json=answers(), headers=patient.headers
    )
    assert not_done.status_code == 409
    assert not_done.json()["type"].endswith("case-not-completed")
    others = completed_case(api, other)
    foreign = api.client.post(f"/cases/{others}/survey", json=answers(), headers=patient.headers)
    assert foreign.status_code == 404
    assert stored_surveys(api) == []


def test_bad_answers_are_refused_and_nothing_is_stored(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = completed_case(api, patient)
    for scores, code in (({"treatment": 6}, 422), ({"nonsense": 3}, 422), ({}, 422)):
        response = api.client.post(
            f"/cases/{case_id}/survey", json=answers(scores=scores), headers=patient.headers
        )
        assert response.status_code == code
        assert response.json()["type"].endswith("invalid-survey")
    as_text = api.client.post(
        f"/cases/{case_id}/survey", json=answers(scores={"treatment": "5"}), headers=patient.headers
    )
    assert as_text.status_code == 422
    assert stored_surveys(api) == []


def test_withdrawing_qa_consent_and_objecting(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = completed_case(api, patient)
    api.client.post(f"/cases/{case_id}/survey", json=answers(), headers=patient.headers)
    withdrawn = api.client.post("/me/qa-consent/withdraw", headers=patient.headers)
    assert withdrawn.status_code == 200
    assert withdrawn.json() == {"surveys_changed": 1}
    assert api.client.post("/me/qa-consent/withdraw", headers=patient.headers).json() == {
        "surveys_changed": 0
    }
    assert stored_surveys(api)[0].qa_consent_withdrawn_at is not None
    objected = api.client.post("/me/objections/qa", headers=patient.headers)
    assert objected.status_code == 200
    with api.session() as session:
        assert session.get(QaObjection, patient.patient_id) is not None


def test_only_patients_answer_surveys(api: ApiHarness) -> None:
    coordinator = api.user(Role.COORDINATOR)
    response = api.client.post("/me/objections/qa", headers=coordinator.headers)
    assert response.status_code == 403
