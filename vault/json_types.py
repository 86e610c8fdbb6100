"""Values read from JSON exactly as the JSON Schema (and OpenAPI document) states them.

pydantic's lax mode also reads a date or a time from a number or a numeric string (as Unix time)
and a date-time without seconds, all of which the schema's ``format: date`` and ``date-time``
refuse (the OpenAPI fuzzing found ``"period_to": 0.0`` accepted as 1 January 1970), and an
integer from ``"5"`` or ``true``. These types take only what the schema admits (RFC 3339 text,
or a ``date``/``datetime`` from Python callers; a number for an integer, ``5.0`` included), then
let pydantic check the values.
"""

import re
from collections.abc import Callable
from datetime import date
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator, PastDate

_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _rfc3339(form: re.Pattern[str], example: str) -> Callable[[object], object]:
    def text_only(value: object) -> object:
        if isinstance(value, date):  # a datetime is a date too
            return value
        if isinstance(value, str) and form.fullmatch(value):
            return value
        raise ValueError(f"write it as {example}")

    return text_only


_DATE_TEXT = BeforeValidator(_rfc3339(_FULL_DATE, "2026-10-15"))
_DATE_TIME_TEXT = BeforeValidator(_rfc3339(_DATE_TIME, "2026-10-15T12:00:00Z"))


def _number_not_text(value: object) -> object:
    if isinstance(value, str | bool):
        raise ValueError("write it as a number")
    return value


JsonInteger = Annotated[int, BeforeValidator(_number_not_text)]  # 5 and 5.0, never "5" or true
JsonDate = Annotated[date, _DATE_TEXT]
JsonPastDate = Annotated[PastDate, _DATE_TEXT]
JsonAwareDatetime = Annotated[AwareDatetime, _DATE_TIME_TEXT]
