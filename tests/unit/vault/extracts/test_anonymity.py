"""k-anonymity: chapters, age bands, the choice of generalisation, and suppression."""

from __future__ import annotations

from collections import Counter

from vault.extracts.anonymity import (
    Level,
    QiKey,
    age_band,
    choose_level,
    finest_key,
    icd_chapter,
)

ALL = QiKey(0, "", "", "")


def test_icd_chapters_follow_the_who_ranges() -> None:
    assert icd_chapter("A09") == "I"
    assert icd_chapter("D48.1") == "II"
    assert icd_chapter("D50") == "III"
    assert icd_chapter("H59") == "VII"
    assert icd_chapter("H60") == "VIII"
    assert icd_chapter("M17.1") == "XIII"
    assert icd_chapter("T98") == "XIX"
    assert icd_chapter("Z99") == "XXI"


def test_age_bands_widen_by_level_and_top_code_at_ninety() -> None:
    key = finest_key(age=37, sex=None, country=None, chapter=None)
    assert [age_band(key.age, level) for level in range(4)] == ["35-39", "30-39", "20-39", "*"]
    assert age_band(finest_key(age=97, sex=None, country=None, chapter=None).age, 0) == "90+"


def _counts(*groups: tuple[QiKey, int]) -> Counter[QiKey]:
    return Counter(dict(groups))


def test_no_generalisation_when_every_group_is_large_enough() -> None:
    counts = _counts((finest_key(age=30, sex="f", country="DE", chapter="XIII"), 5),
                     (finest_key(age=50, sex="m", country="AT", chapter="IX"), 7))  # fmt: skip
    choice = choose_level(counts, 5, ALL)
    assert choice.level == Level()
    assert choice.suppressed == 0


def test_generalises_the_age_band_before_suppressing_many_rows() -> None:
    # Ten groups of 3 in neighbouring 5-year bands: each pair of bands makes a 10-year group of 6.
    counts = _counts(*[(finest_key(age=a, sex="f", country="DE", chapter="IX"), 3)
                       for a in range(20, 70, 5)])  # fmt: skip
    choice = choose_level(counts, 5, ALL)
    assert choice.level == Level(age=1)
    assert choice.suppressed == 0
    assert all(size >= 5 for size in choice.group_sizes.values())


def test_suppresses_rare_rows_within_the_limit_instead_of_generalising() -> None:
    common = finest_key(age=40, sex="f", country="DE", chapter="IX")
    rare = finest_key(age=80, sex="m", country="IS", chapter="XXI")
    choice = choose_level(_counts((common, 100), (rare, 1)), 5, ALL)
    assert choice.level == Level()
    assert choice.suppressed == 1
    assert choice.releases(rare, 5) is None
    assert choice.releases(common, 5) == ("40-44", "f", "DE", "IX")


def test_reports_suppression_when_no_level_stays_under_the_limit() -> None:
    # Three rows in all: no generalisation can make a group of 5.
    counts = _counts((finest_key(age=30, sex="f", country="DE", chapter="IX"), 3))
    choice = choose_level(counts, 5, ALL)
    assert choice.suppressed == 3
    assert choice.level == Level()  # nothing helps, so nothing is generalised for nothing


def test_only_extracted_fields_are_generalised() -> None:
    present = QiKey(0, None, None, None)  # age band only
    counts = _counts(*[(finest_key(age=a, sex=None, country=None, chapter=None), 1)
                       for a in range(0, 100, 5)])  # fmt: skip
    choice = choose_level(counts, 5, present)
    # One row per 5-year band: only removing the age band reaches k = 5.
    assert choice.level == Level(age=3)
    assert choice.suppressed == 0
    assert choice.level.describe() == {
        "age_band": "removed",
        "sex": False,
        "country": False,
        "icd_chapter": False,
    }
