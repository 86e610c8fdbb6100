"""The pages in English and German: message catalogs, the reader's language, dates in their format.

Catalogs are TOML files, one per area and language (``locales/en/patient.toml`` holds the keys
``patient.*``), so each page's texts sit in one place. Every language has exactly the keys of
English (a test checks it). A text may name fields in braces (``"{count} files"``), filled by
``str.format``. Babel picks the language from ``Accept-Language`` and formats dates.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.core import negotiate_locale
from babel.dates import format_date, format_datetime
from babel.units import format_unit

LOCALES = Path(__file__).with_name("locales")
LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"
TIMEZONE = UTC  # every time the service shows is UTC, and says so
NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})  # regions, test codes
SIZE_UNITS = ((10**9, "digital-gigabyte"), (10**6, "digital-megabyte"), (10**3, "digital-kilobyte"))


def _flatten(prefix: str, table: dict[str, object], into: dict[str, str]) -> None:
    for key, value in table.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            _flatten(name, value, into)
        else:
            into[name] = str(value)


@cache
def catalog(language: str) -> dict[str, str]:
    """Every text of ``language``, keyed ``area.name`` (``area`` is the file's stem)."""
    texts: dict[str, str] = {}
    for path in sorted((LOCALES / language).glob("*.toml")):
        with path.open("rb") as file:
            _flatten(path.stem, tomllib.load(file), texts)
    return texts


def language_for(cookie: str | None, accept_language: str | None) -> str:
    """The reader's choice (cookie) if it is one we have, else their browser's, else English."""
    if cookie in LANGUAGES:
        return cookie
    wanted = []
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().replace("-", "_")
        if tag and tag != "*":
            wanted.append(tag)
    chosen = negotiate_locale(wanted, list(LANGUAGES)) if wanted else None
    if chosen is None:  # "de_AT" names German too: match on the language alone
        chosen = next((tag[:2].lower() for tag in wanted if tag[:2].lower() in LANGUAGES), None)
    return chosen or DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Translator:
    """The texts and formats of one language, as templates use them (``t``, ``date``, ...)."""

    language: str

    def __call__(self, key: str, **fields: object) -> str:
        text = catalog(self.language).get(key) or catalog(DEFAULT_LANGUAGE).get(key)
        if text is None:
            raise KeyError(f"no text {key!r}")  # caught by the tests, never shown to a reader
        return text.format(**fields) if fields else text

    def has(self, key: str) -> bool:
        return key in catalog(self.language) or key in catalog(DEFAULT_LANGUAGE)

    @property
    def locale(self) -> Locale:
        try:
            return Locale.parse(self.language)
        except (ValueError, UnknownLocaleError):  # pragma: no cover - LANGUAGES are all known
            return Locale.parse(DEFAULT_LANGUAGE)

    def date(self, value: date | None) -> str:
        return "" if value is None else format_date(value, format="medium", locale=self.locale)

    def datetime(self, value: datetime | None) -> str:
        if value is None:
            return ""
        shown = format_datetime(value, format="medium", tzinfo=TIMEZONE, locale=self.locale)
        return f"{shown} UTC"

    def size(self, size: int | None) -> str:
        """A file's size in the reader's units and number format ("1,5 MB")."""
        if size is None:
            return ""
        unit, amount = next(
            ((name, size / scale) for scale, name in SIZE_UNITS if size >= scale),
            ("digital-byte", float(size)),
        )
        return format_unit(amount, unit, length="short", format="#,##0.#", locale=self.locale)

    def countries(self) -> list[tuple[str, str]]:
        """ISO 3166-1 alpha-2 codes with their names in the reader's language, by name."""
        found = [
            (code, name)
            for code, name in self.locale.territories.items()
            if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES
        ]

        def key(item: tuple[str, str]) -> str:
            plain = unicodedata.normalize("NFKD", item[1])
            return "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()

        return sorted(found, key=key)
