"""The catalogs: every language has every English text with the same fields; every text a
template or page names exists; the reader's language is chosen as they asked."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from api.web.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator, catalog, language_for

ROOT = Path(__file__).resolve().parents[2]
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_.-]+)["']\s*[,)]""")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE])
def test_every_language_has_every_text_with_the_same_fields(language: str) -> None:
    english, other = catalog(DEFAULT_LANGUAGE), catalog(language)
    assert sorted(set(english) ^ set(other)) == []
    different = [key for key in english if _fields(english[key]) != _fields(other[key])]
    assert different == []
    untranslated = [key for key in english if english[key] == other[key] and len(english[key]) > 12]
    assert untranslated == []


def test_every_text_named_in_templates_and_pages_exists() -> None:
    sources = [*ROOT.glob("api/templates/**/*.html"), *ROOT.glob("api/web/*.py")]
    named = {key for path in sources for key in LITERAL_KEY.findall(path.read_text())}
    assert named, "the pattern finds no texts: the test would pass for nothing"
    missing = sorted(key for key in named if key not in catalog(DEFAULT_LANGUAGE))
    assert missing == []


def test_an_unknown_text_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(KeyError):
        Translator("de")("common.no_such_text")


@pytest.mark.parametrize(
    ("cookie", "accept", "expected"),
    [
        (None, "de-DE,de;q=0.9,en;q=0.8", "de"),
        (None, "de-AT", "de"),
        (None, "fr-FR,fr;q=0.9", "en"),
        (None, None, "en"),
        ("en", "de-DE", "en"),  # the reader's own choice wins over the browser's
        ("xx", "de", "de"),  # an unknown cookie value is ignored
    ],
)
def test_language_choice(cookie: str | None, accept: str | None, expected: str) -> None:
    assert language_for(cookie, accept) == expected


def test_dates_in_the_readers_format() -> None:
    from datetime import UTC, date, datetime

    assert Translator("de").date(date(2026, 3, 1)) == "01.03.2026"
    assert Translator("en").datetime(datetime(2026, 3, 1, 14, 5, tzinfo=UTC)).endswith("UTC")
