"""Values are read only in the form the JSON Schema states (found by OpenAPI fuzzing:
``"period_to": 0.0`` was read as 1 January 1970)."""

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from vault.json_types import JsonAwareDatetime, JsonDate, JsonInteger, JsonPastDate

DATES = TypeAdapter(JsonDate)
PAST_DATES = TypeAdapter(JsonPastDate)
DATE_TIMES = TypeAdapter(JsonAwareDatetime)


def test_a_date_is_read_from_its_text_or_a_date() -> None:
    assert DATES.validate_python("2026-10-15") == date(2026, 10, 15)
    assert DATES.validate_json('"2026-10-15"') == date(2026, 10, 15)
    assert DATES.validate_python(date(2026, 10, 15)) == date(2026, 10, 15)
    assert PAST_DATES.validate_python("1964-08-12") == date(1964, 8, 12)


@pytest.mark.parametrize(
    "value", [0, 0.0, 1_700_000_000, "0", "1700000000", True, "2026-10-15T00:00:00", "2026-1-5", ""]
)
def test_a_date_is_not_read_from_a_number_or_other_text(value: object) -> None:
    with pytest.raises(ValidationError, match="write it as 2026-10-15"):
        DATES.validate_python(value)


def test_a_past_date_still_refuses_the_future() -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    with pytest.raises(ValidationError, match="past"):
        PAST_DATES.validate_python(tomorrow)


def test_a_date_time_is_read_from_rfc_3339_text_with_its_offset() -> None:
    expected = datetime(2026, 10, 15, 12, tzinfo=UTC)
    assert DATE_TIMES.validate_python("2026-10-15T12:00:00Z") == expected
    assert DATE_TIMES.validate_python("2026-10-15t14:00:00.5+02:00") == expected + timedelta(
        milliseconds=500
    )
    assert DATE_TIMES.validate_python(expected) == expected


@pytest.mark.parametrize(
    "value",
    [0, 1_700_000_000.5, "1700000000", "2026-10-15", "2026-10-15T12:00Z", "2026-10-15 12:00:00Z"],
)
def test_a_date_time_is_not_read_from_a_number_or_partial_text(value: object) -> None:
    with pytest.raises(ValidationError, match="write it as 2026-10-15T12:00:00Z"):
        DATE_TIMES.validate_python(value)


def test_an_integer_is_read_from_a_number_never_from_text_or_a_boolean() -> None:
    integers = TypeAdapter(JsonInteger)
    assert integers.validate_python(5) == 5
    assert integers.validate_python(5.0) == 5  # an integer to JSON Schema
    for value in ("5", True):
        with pytest.raises(ValidationError, match="write it as a number"):
            integers.validate_python(value)
