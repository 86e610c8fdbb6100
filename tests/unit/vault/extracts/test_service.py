"""QA extracts end to end in the vault: build, k-anonymity, exclusions, pseudonyms, no leaks,
idempotent rebuilds, sweep and shred."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from tests.factories import (
    NOW,
    PATIENT_BIRTH_DATE,
    PATIENT_NAME,
    PATIENT_PHONE,
    Vault,
    local_vault,
    make_qa_case,
    make_qa_patient,
)
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseStatus
from vault.consents.service import place_restriction
from vault.errors import ExtractExpired, ExtractNotReady, InvalidExtractRequest, NotFound
from vault.extracts import service
from vault.extracts.models import Extract, ExtractField, ExtractFormat, ExtractStatus
from vault.extracts.service import (
    SweepReport,
    build_extract,
    create_scope,
    extract_prefix,
    open_extract_content,
    pseudonym,
    request_extract,
    sweep_extracts,
)
from vault.patients.models import Patient
from vault.surveys.service import answer_survey, object_to_qa_use, withdraw_qa_consent

SYSTEM = AuditContext.SYSTEM
ANALYST = uuid.uuid4()
ALL_FIELDS = list(ExtractField)
RETENTION = timedelta(days=90)
QI_COLUMNS = ("age_band", "sex", "country")


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


@pytest.fixture
def sessions(engine: sa.Engine) -> Callable[[], Session]:
    return lambda: Session(engine)


def request(vault: Vault, **overrides: Any) -> Extract:
    values: dict[str, Any] = {
        "period_from": date(2026, 11, 1),
        "period_to": date(2026, 11, 30),
        "fields": ALL_FIELDS,
        "icd_chapter_only": False,
        "scope_id": None,
        "k": 2,
    }
    values.update(overrides)
    return request_extract(
        session=vault.session, keys=vault.keys, analyst_id=ANALYST, now=NOW, audit=SYSTEM, **values
    )


def build(vault: Vault, sessions: Callable[[], Session], extract: Extract) -> ExtractStatus:
    extract_id = extract.id
    vault.session.rollback()  # on SQLite an open transaction would hold the write lock
    return build_extract(
        sessions=sessions,
        store=vault.store,
        keys=vault.keys,
        extract_id=extract_id,
        retention=RETENTION,
        frame_size=64 * 1024,
        now=NOW,
        batch_size=3,  # several batches even for a handful of cases
        spool_dir=vault.spool_dir,
    )


def content(vault: Vault, extract: Extract, fmt: ExtractFormat) -> bytes:
    chunks = open_extract_content(
        session=vault.session,
        store=vault.store,
        keys=vault.keys,
        extract_id=extract.id,
        analyst_id=ANALYST,
        fmt=fmt,
        now=NOW,
        audit=SYSTEM,
    )
    return b"".join(chunks)


def rows_of(vault: Vault, extract: Extract) -> list[dict[str, Any]]:
    """The extract's rows from the Parquet, checked to equal the CSV's."""
    table = pq.read_table(io.BytesIO(content(vault, extract, ExtractFormat.PARQUET))).to_pylist()
    text = content(vault, extract, ExtractFormat.CSV).decode()
    from_csv = list(csv.DictReader(io.StringIO(text)))
    assert len(from_csv) == len(table)
    for parquet_row, csv_row in zip(table, from_csv, strict=True):
        assert {k: "" if v is None else str(v) for k, v in parquet_row.items()} == csv_row
    return table


def patients_with_cases(vault: Vault, specs: list[tuple[int, str, str]]) -> list[Patient]:
    """One patient with one completed case per (birth year, sex, country)."""
    patients = []
    for year, sex, country in specs:
        patient = make_qa_patient(
            vault.session, vault.keys, birth_date=date(year, 3, 1), sex=sex, country=country
        )
        make_qa_case(vault, patient)
        patients.append(patient)
    return patients


def sweep(vault: Vault, sessions: Callable[[], Session], now: datetime) -> SweepReport:
    vault.session.rollback()
    return sweep_extracts(sessions=sessions, store=vault.store, keys=vault.keys, now=now)


def refreshed(vault: Vault, extract: Extract) -> Extract:
    vault.session.expire_all()
    found = vault.session.get(Extract, extract.id)
    assert found is not None
    return found


def test_builds_a_ready_extract_whose_groups_all_reach_k(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    # 21 rows: suppressing the one patient from Iceland stays within the 5% limit.
    specs = [(1960, "female", "DE")] * 10 + [(1980, "male", "AT")] * 10 + [(1990, "male", "IS")]
    patients_with_cases(vault, specs)
    extract = request(vault, k=3)
    assert build(vault, sessions, extract) is ExtractStatus.READY
    rows = rows_of(vault, extract)
    groups = Counter((*tuple(row[c] for c in QI_COLUMNS), row["diagnoses"]) for row in rows)
    assert groups
    assert min(groups.values()) >= 3
    report = refreshed(vault, extract).report
    assert report is not None
    assert report["rows"] == len(rows) == 20
    assert report["suppressed"] == 1
    assert report["generalised"] == {
        "age_band": "5y",
        "sex": False,
        "country": False,
        "icd_chapter": False,
    }
    assert {row["country"] for row in rows} == {"DE", "AT"}
    assert report["k_achieved"] == min(groups.values())
    assert set(report["generalised"]) == {"age_band", "sex", "country", "icd_chapter"}
    row = rows[0]
    assert row["treatment_start_month"] == "2026-09"
    assert row["treatment_days"] == 44
    assert row["invoice_total"] == 12500
    assert row["partner_category"] == "none"


def test_generalises_and_reports_it_when_groups_are_too_small(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    # Birth years a few years apart: 5-year bands hold one patient each, wider ones several.
    patients_with_cases(vault, [(1950 + 5 * i, "female", "DE") for i in range(6)])
    extract = request(vault, k=3, fields=[ExtractField.AGE_BAND, ExtractField.SEX])
    build(vault, sessions, extract)
    rows = rows_of(vault, extract)
    report = refreshed(vault, extract).report
    assert report is not None
    assert report["generalised"]["age_band"] != "5y"
    assert report["rows"] + report["suppressed"] == 6
    groups = Counter((row["age_band"], row["sex"]) for row in rows)
    assert min(groups.values()) >= 3
    assert set(rows[0]) == {"pseudonym", "age_band", "sex"}


def test_leaves_out_objections_withdrawals_restrictions_and_cases_outside_the_period(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    keep, objector, withdrawer, restricted, case_restricted = patients_with_cases(
        vault, [(1960, "female", "DE")] * 5
    )
    object_to_qa_use(session=vault.session, patient_id=objector.id, now=NOW, audit=SYSTEM)
    survey_case = vault.session.exec(select(Case).where(Case.patient_id == withdrawer.id)).one()
    answer_survey(
        session=vault.session,
        keys=vault.keys,
        patient_id=withdrawer.id,
        case_id=survey_case.id,
        scores={"treatment": 5},
        free_text=None,
        qa_consent=True,
        now=NOW,
        audit=SYSTEM,
    )
    withdraw_qa_consent(session=vault.session, patient_id=withdrawer.id, now=NOW, audit=SYSTEM)
    place_restriction(vault.session, patient_id=restricted.id, case_id=None, now=NOW, audit=SYSTEM)
    restricted_case = vault.session.exec(
        select(Case).where(Case.patient_id == case_restricted.id)
    ).one()
    place_restriction(
        vault.session,
        patient_id=case_restricted.id,
        case_id=restricted_case.id,
        now=NOW,
        audit=SYSTEM,
    )
    make_qa_case(vault, keep, completed_at=NOW + timedelta(days=30))  # after the period
    extract = request(vault, k=2)
    build(vault, sessions, extract)
    report = refreshed(vault, extract).report
    assert report is not None
    assert report["rows"] + report["suppressed"] == 1  # only keep's case in November


def test_cases_excluded_between_the_two_passes_are_left_out(
    vault: Vault, sessions: Callable[[], Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = patients_with_cases(vault, [(1960, "female", "DE")] * 4)
    objector, shredded = keep.pop(), keep.pop()
    choose_level = service.choose_level

    def exclude_after_pass_one(*args: Any, **kwargs: Any) -> Any:
        # Pass 1 has spooled all four cases; now one patient objects and one case is shredded.
        object_to_qa_use(session=vault.session, patient_id=objector.id, now=NOW, audit=SYSTEM)
        case = vault.session.exec(select(Case).where(Case.patient_id == shredded.id)).one()
        case.status = CaseStatus.SHREDDING
        vault.session.add(case)
        vault.session.commit()
        monkeypatch.setattr(service, "choose_level", choose_level)
        return choose_level(*args, **kwargs)

    monkeypatch.setattr(service, "choose_level", exclude_after_pass_one)
    extract = request(vault, k=2)
    assert build(vault, sessions, extract) is ExtractStatus.READY
    scope_key = vault.keys.unsafe_key_material(vault.session, extract.scope_key_id)
    found = {row["pseudonym"] for row in rows_of(vault, extract)}
    assert found == {pseudonym(scope_key, patient.id) for patient in keep}
    assert list(vault.spool_dir.iterdir()) == []


def test_rows_vanishing_below_k_between_the_passes_make_the_build_start_over(
    vault: Vault, sessions: Callable[[], Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two groups of two: losing one row after pass 1 would release a group of one.
    patients = patients_with_cases(vault, [(1960, "female", "DE")] * 2 + [(1980, "male", "AT")] * 2)
    choose_level = service.choose_level
    passes: list[int] = []

    def object_once(*args: Any, **kwargs: Any) -> Any:
        if not passes:
            object_to_qa_use(
                session=vault.session, patient_id=patients[0].id, now=NOW, audit=SYSTEM
            )
        passes.append(sum(args[0].values()))
        return choose_level(*args, **kwargs)

    monkeypatch.setattr(service, "choose_level", object_once)
    extract = request(vault, k=2)
    assert build(vault, sessions, extract) is ExtractStatus.READY
    assert passes == [4, 3]  # started over, without the objector
    report = refreshed(vault, extract).report
    assert report is not None
    assert report["rows"] + report["suppressed"] == 3
    assert report["k_achieved"] >= 2


def test_a_shredded_case_is_not_extracted(vault: Vault, sessions: Callable[[], Session]) -> None:
    patients_with_cases(vault, [(1960, "female", "DE")] * 3)
    case = vault.session.exec(select(Case)).first()
    assert case is not None
    case.status = CaseStatus.SHREDDED
    vault.session.add(case)
    vault.session.commit()
    extract = request(vault, k=2)
    build(vault, sessions, extract)
    assert refreshed(vault, extract).report["rows"] == 2  # type: ignore[index]


def test_pseudonyms_differ_across_scopes_and_match_within_a_named_scope(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patients_with_cases(vault, [(1960, "female", "DE")] * 3)
    scope = create_scope(
        session=vault.session, keys=vault.keys, name="qa-2027", created_by=None, now=NOW,
        audit=SYSTEM,
    )  # fmt: skip
    fresh_a, fresh_b = request(vault), request(vault)
    named_a, named_b = request(vault, scope_id=scope.id), request(vault, scope_id=scope.id)
    for extract in (fresh_a, fresh_b, named_a, named_b):
        build(vault, sessions, extract)

    def pseudonyms(extract: Extract) -> set[str]:
        return {row["pseudonym"] for row in rows_of(vault, extract)}

    assert len(pseudonyms(fresh_a)) == 3
    assert not pseudonyms(fresh_a) & pseudonyms(fresh_b)
    assert not pseudonyms(fresh_a) & pseudonyms(named_a)
    assert pseudonyms(named_a) == pseudonyms(named_b)


def test_no_extract_holds_names_contacts_dates_or_ids_of_the_test_data(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patients = patients_with_cases(vault, [(1964, "female", "DE")] * 3)
    extracts = [request(vault, icd_chapter_only=chapters, k=2) for chapters in (False, True)]
    for extract in extracts:
        build(vault, sessions, extract)
    ids = {str(row_id) for row_id in vault.session.exec(select(Case.id))}
    ids |= {str(patient.id) for patient in patients}
    ids |= {str(extract.id) for extract in extracts}
    secrets = {
        PATIENT_NAME, "Mustermann", PATIENT_PHONE, "1234567", "example.org",
        PATIENT_BIRTH_DATE.isoformat(), "1964-03-01", "2026-09-01", "2026-10-15",
        NOW.date().isoformat(), "12480",
    }  # fmt: skip
    for identifier in list(ids):
        secrets |= {identifier, identifier.replace("-", "")}
    for extract in extracts:
        for fmt in ExtractFormat:
            data = content(vault, extract, fmt)
            text = data.decode("latin-1").lower()
            found = {secret for secret in secrets if secret.lower() in text}
            assert not found, f"{fmt}: {found}"


def test_building_again_changes_nothing_and_leftovers_of_killed_builds_are_removed(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patients_with_cases(vault, [(1960, "female", "DE")] * 2)
    extract = request(vault)
    # What a build killed mid-upload leaves: the row claimed, an object under its build id.
    stale_build = uuid.uuid4()
    vault.store.put(f"{extract_prefix(extract.id)}{stale_build}/data.csv", [b"partial"])
    extract.status, extract.build_id = ExtractStatus.BUILDING, stale_build
    vault.session.add(extract)
    vault.session.commit()

    assert build(vault, sessions, extract) is ExtractStatus.READY
    first = refreshed(vault, extract)
    objects = list(vault.store.keys(extract_prefix(extract.id)))
    assert set(objects) == {first.parquet_key, first.csv_key}
    assert build(vault, sessions, extract) is ExtractStatus.READY
    again = refreshed(vault, extract)
    assert (again.build_id, again.attempts) == (first.build_id, first.attempts)
    assert list(vault.store.keys(extract_prefix(extract.id))) == objects
    built = vault.session.exec(select(AuditEvent).where(AuditEvent.action == "extract.build")).all()
    assert len(built) == 1
    assert built[0].document_id == extract.id


def test_download_before_ready_and_of_another_analyst(vault: Vault) -> None:
    extract = request(vault)
    with pytest.raises(ExtractNotReady):
        content(vault, extract, ExtractFormat.CSV)
    with pytest.raises(NotFound):
        open_extract_content(
            session=vault.session, store=vault.store, keys=vault.keys, extract_id=extract.id,
            analyst_id=uuid.uuid4(), fmt=ExtractFormat.CSV, now=NOW, audit=SYSTEM,
        )  # fmt: skip


@pytest.mark.parametrize(
    "overrides",
    [
        {"period_from": date(2026, 12, 1), "period_to": date(2026, 11, 1)},
        {"fields": []},
        {"scope_id": uuid.uuid4()},
    ],
)
def test_refuses_impossible_requests(vault: Vault, overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidExtractRequest):
        request(vault, **overrides)
    vault.session.rollback()
    assert vault.session.exec(select(Extract)).all() == []


def test_sweep_requeues_stale_builds_and_shreds_expired_extracts(
    vault: Vault, sessions: Callable[[], Session]
) -> None:
    patients_with_cases(vault, [(1960, "female", "DE")] * 2)
    ready, stale = request(vault), request(vault)
    build(vault, sessions, ready)
    soon = sweep(vault, sessions, NOW)
    assert soon.requeue == ()
    assert soon.shredded == 0
    later = NOW + timedelta(hours=1)
    report = sweep(vault, sessions, later)
    assert report.requeue == (stale.id,)

    expiry = NOW + RETENTION
    report = sweep(vault, sessions, expiry)
    assert report.shredded == 1
    shredded = refreshed(vault, ready)
    assert shredded.status is ExtractStatus.SHREDDED
    assert list(vault.store.keys(extract_prefix(ready.id))) == []
    with pytest.raises(ExtractExpired):
        content(vault, shredded, ExtractFormat.PARQUET)
    again = sweep(vault, sessions, expiry)
    assert again.shredded == 0
