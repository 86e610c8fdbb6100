"""The analyst's pages: the extract list and request form in both languages, the whole flow
(request -> task sent after commit -> built in process -> report and downloads), refusals that
say why and store nothing, failed and deleted extracts, and no analyst reaching another's."""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlmodel import func, select

from tests.api.test_extracts import run_build, seed_cases
from tests.apiharness import ApiHarness
from tests.web.conftest import PageBrowser, Pages
from vault.accounts.models import Role
from vault.extracts.models import Extract, ExtractStatus

FORM = {
    "period_from": "2026-11-01",
    "period_to": "2026-11-30",
    "fields": ["age_band", "sex", "country", "diagnoses", "survey_scores"],
    "icd_chapter_only": "on",
}
EXTRACT_URL = re.compile(r"^/analysis/extracts/([0-9a-f-]{36})\?done=requested$")


@pytest.fixture
def analyst(api: ApiHarness, pages: Pages) -> PageBrowser:
    return pages.signed_in(api.user(Role.ANALYST))


def request_extract(browser: PageBrowser, **overrides: Any) -> str:
    response = browser.post("/analysis/extracts", {**FORM, **overrides})
    assert response.status_code == 303, response.text
    match = EXTRACT_URL.match(response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def extract_count(api: ApiHarness) -> int:
    with api.session() as session:
        return session.exec(select(func.count()).select_from(Extract)).one()


def set_extract(api: ApiHarness, extract_id: str, **values: Any) -> None:
    table = Extract.__table__  # type: ignore[attr-defined]
    with api.session() as session:
        session.execute(sa.update(table).where(table.c.id == uuid.UUID(extract_id)).values(values))
        session.commit()


def test_the_extract_page_in_both_languages(analyst: PageBrowser) -> None:
    english = analyst.get("/analysis")
    assert english.status_code == 200
    assert "<h1>Quality-assurance extracts</h1>" in english.text
    assert "You have not requested an extract yet." in english.text
    assert 'name="csrf_token"' in english.text
    assert 'aria-current="page"' in english.text  # the nav marks where the analyst is
    german = analyst.get("/analysis?lang=de")
    assert german.status_code == 200
    assert "<h1>Auszüge zur Qualitätssicherung</h1>" in german.text
    assert "Auszug anfordern" in german.text


def test_request_build_report_and_download(api: ApiHarness, analyst: PageBrowser) -> None:
    seed_cases(api, 6)
    extract_id = request_extract(analyst)

    # Recorded, then the build was sent (after the commit), exactly as POST /extracts does it.
    assert api.tasks.sent == [("medvault.extracts.build", (extract_id,))]
    page = analyst.get(f"/analysis/extracts/{extract_id}?done=requested")
    assert page.status_code == 200
    assert "Your extract was requested." in page.text
    assert f'data-poll-url="/analysis/extracts/{extract_id}/status"' in page.text
    status = analyst.get(f"/analysis/extracts/{extract_id}/status")
    assert status.json() == {"label": "Waiting for a worker", "done": False}
    assert analyst.get(f"/analysis/extracts/{extract_id}/status?lang=de").json() == {
        "label": "Wartet auf die Erstellung",
        "done": False,
    }
    early = analyst.get(f"/analysis/extracts/{extract_id}/download?format=csv")  # still German
    assert early.status_code == 409
    assert '<p class="error" role="alert">Dieser Auszug ist noch nicht fertig.</p>' in early.text
    assert "content-disposition" not in early.headers
    assert analyst.get("/analysis?lang=en").status_code == 200

    run_build(api, extract_id)

    assert analyst.get(f"/analysis/extracts/{extract_id}/status").json() == {
        "label": "Ready",
        "done": True,
    }
    ready = analyst.get(f"/analysis/extracts/{extract_id}")
    assert ready.status_code == 200
    assert "data-poll-url" not in ready.text
    assert "Anonymity report" in ready.text
    assert re.search(r"<dt>Rows released</dt>\s*<dd>6</dd>", ready.text)
    k_achieved = re.search(r"<dt>k achieved \(smallest group\)</dt>\s*<dd>(\d+)</dd>", ready.text)
    assert k_achieved
    assert int(k_achieved.group(1)) >= api.runtime.settings.extract_k
    assert "download?format=parquet" in ready.text
    assert "download?format=csv" in ready.text
    german = analyst.get(f"/analysis/extracts/{extract_id}?lang=de")
    assert german.status_code == 200
    assert "Anonymitätsbericht" in german.text
    listed = analyst.get("/analysis?lang=en")
    assert f'href="/analysis/extracts/{extract_id}"' in listed.text
    assert "<td>Ready</td>" in listed.text

    parquet = analyst.get(f"/analysis/extracts/{extract_id}/download?format=parquet")
    assert parquet.status_code == 200
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert parquet.headers["content-disposition"].startswith("attachment;")
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 6
    assert set(table.column("diagnoses").to_pylist()) == {"XIII"}  # chapter only, as asked
    csv = analyst.get(f"/analysis/extracts/{extract_id}/download?format=csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"] == (
        f'attachment; filename="extract-{extract_id}.csv"'
    )
    assert csv.text.splitlines()[0].startswith("pseudonym,age_band,sex,country,diagnoses")


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"fields": []}, 422, "Choose at least one field."),
        ({"fields": ["name"]}, 422, "Check these fields: Fields."),
        ({"period_to": "2026-13-01"}, 422, "Check these fields: To."),
        ({"period_from": "2026-12-01"}, 422, "the period ends before it starts"),
        ({"scope_id": str(uuid.uuid4())}, 422, "no such scope"),
    ],
    ids=["no-field", "unknown-field", "bad-date", "reversed-period", "unknown-scope"],
)
def test_refused_requests_say_why_and_store_nothing(
    api: ApiHarness, analyst: PageBrowser, overrides: dict[str, Any], status: int, message: str
) -> None:
    response = analyst.post("/analysis/extracts", {**FORM, **overrides})

    assert response.status_code == status
    assert f'<p class="error" role="alert">{message}' in response.text
    typed_to = overrides.get("period_to", FORM["period_to"])
    assert f'value="{typed_to}"' in response.text  # what was typed is kept
    assert api.tasks.sent == []
    assert extract_count(api) == 0


def test_a_refusal_in_german_uses_the_catalog(api: ApiHarness, analyst: PageBrowser) -> None:
    analyst.get("/analysis?lang=de")  # the language cookie
    response = analyst.post("/analysis/extracts", {**FORM, "period_from": "2026-12-01"})
    assert response.status_code == 422
    assert (
        '<p class="error" role="alert">Diese Auszugsanfrage wurde abgelehnt.</p>' in response.text
    )
    assert extract_count(api) == 0


def test_a_named_scope_is_offered_and_used(api: ApiHarness, analyst: PageBrowser) -> None:
    admin = api.user(Role.ADMIN)
    created = api.client.post(
        "/admin/extract-scopes", json={"name": "qa-2027"}, headers=admin.headers
    )
    scope_id = created.json()["id"]
    page = analyst.get("/analysis")
    assert f'<option value="{scope_id}">qa-2027</option>' in page.text

    extract_id = request_extract(analyst, scope_id=scope_id)

    with api.session() as session:
        extract = session.get(Extract, uuid.UUID(extract_id))
        assert extract is not None
        assert str(extract.scope_id) == scope_id
    shown = analyst.get(f"/analysis/extracts/{extract_id}")
    assert "Shared with the named scope" in shown.text


def test_failed_and_deleted_extracts_say_so(api: ApiHarness, analyst: PageBrowser) -> None:
    failed_id, expired_id = request_extract(analyst), request_extract(analyst)
    set_extract(api, failed_id, status=ExtractStatus.FAILED.name, finished_at=api.clock())
    seed_cases(api, 6)
    run_build(api, expired_id)
    set_extract(api, expired_id, expires_at=api.clock() - timedelta(seconds=1))

    failed = analyst.get(f"/analysis/extracts/{failed_id}")
    assert "This extract could not be built." in failed.text
    assert "download?format" not in failed.text
    expired = analyst.get(f"/analysis/extracts/{expired_id}")
    assert "reached the end of its retention and was deleted" in expired.text
    assert "download?format" not in expired.text
    assert analyst.get(f"/analysis/extracts/{expired_id}/status").json()["label"] == "Deleted"
    download = analyst.get(f"/analysis/extracts/{expired_id}/download?format=csv")
    assert download.status_code == 410
    assert '<p class="error" role="alert">' in download.text
    assert "content-disposition" not in download.headers


def test_an_analyst_reaches_only_their_own_extracts(
    api: ApiHarness, pages: Pages, analyst: PageBrowser
) -> None:
    seed_cases(api, 6)
    extract_id = request_extract(analyst)
    run_build(api, extract_id)
    other = pages.signed_in(api.user(Role.ANALYST))

    for path in ("", "/status", "/download?format=csv"):
        response = other.get(f"/analysis/extracts/{extract_id}{path}")
        assert response.status_code == 404, path
        assert "pseudonym" not in response.text
    unknown = other.get(f"/analysis/extracts/{uuid.uuid4()}")
    assert unknown.status_code == 404
    assert extract_id not in other.get("/analysis").text
    assert extract_id in analyst.get("/analysis").text
    officer = pages.signed_in(api.user(Role.ADMIN))
    assert officer.get(f"/analysis/extracts/{extract_id}").status_code == 403
