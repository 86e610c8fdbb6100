"""CaseOutcome validation: ICD-10 codes, the fixed result list, dates, amounts and currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from vault.cases.models import CaseOutcome, TreatmentResult


def outcome_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "diagnosis_codes": ["M17.1", "I10", "C50.912"],
        "result": "improved",
        "treatment_start": "2026-09-01",
        "treatment_end": "2026-10-15",
        "final_invoice_total": "12480.50",
        "currency": "EUR",
    }
    fields.update(overrides)
    return fields


def test_a_valid_outcome_parses_into_typed_values() -> None:
    outcome = CaseOutcome.model_validate(outcome_fields())

    assert outcome.result is TreatmentResult.IMPROVED
    assert outcome.treatment_start == date(2026, 9, 1)
    assert outcome.final_invoice_total == Decimal("12480.50")
    assert CaseOutcome.model_validate_json(outcome.model_dump_json()) == outcome


@pytest.mark.parametrize("code", ["A00", "Z99.9", "M17.1", "S72.0012", "C4A.0", "I10"])
def test_icd10_codes_accepted(code: str) -> None:
    assert CaseOutcome.model_validate(outcome_fields(diagnosis_codes=[code]))


@pytest.mark.parametrize(
    "code",
    ["U07.1", "m17.1", "M1", "M17.", "M17.12345", "17.1", "M17-1", "", "M17.1 ", "MM17"],
)
def test_malformed_icd10_codes_refused(code: str) -> None:
    with pytest.raises(ValidationError):
        CaseOutcome.model_validate(outcome_fields(diagnosis_codes=[code]))


@pytest.mark.parametrize(
    "overrides",
    [
        {"diagnosis_codes": []},
        {"diagnosis_codes": ["I10"] * 21},
        {"result": "better"},
        {"treatment_end": "2026-08-31"},
        {"final_invoice_total": "-0.01"},
        {"final_invoice_total": "1.005"},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"comment": "free text is not accepted"},
    ],
)
def test_invalid_outcomes_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CaseOutcome.model_validate(outcome_fields(**overrides))


def test_one_day_treatment_and_zero_invoice_are_valid() -> None:
    outcome = CaseOutcome.model_validate(
        outcome_fields(treatment_end="2026-09-01", final_invoice_total="0")
    )
    assert outcome.treatment_end == outcome.treatment_start
    assert outcome.final_invoice_total == 0
