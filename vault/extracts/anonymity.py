"""k-anonymity over the quasi-identifiers (age band, sex, country, ICD chapter).

Pass 1 of a build counts rows per group at the finest level (``QiKey``); ``choose_level`` then
picks one global generalisation for the whole extract from those counts alone, so memory is
bounded by the number of distinct groups, never by the number of rows. Pass 2 releases a row
only if its generalised group holds at least k rows, and suppresses it otherwise.

Generalisation hierarchy: age band 5 -> 10 -> 20 years -> removed (ages of 90 and over are
always "90+"); country, ICD chapter and sex each -> removed. The level chosen is the least
generalised one (fewest steps) that suppresses at most ``MAX_SUPPRESSION_RATE`` of the rows;
among equally generalised levels the one suppressing least wins. If no level stays within the
rate, the one suppressing least (then the least generalised) is taken.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any, NamedTuple

AGE_BAND_WIDTHS = (5, 10, 20)  # levels 0, 1, 2; level 3 removes the age band
AGE_TOP = 90
REMOVED = "*"
MAX_SUPPRESSION_RATE = 0.05

# ICD-10 chapters by the first three characters of a code (WHO ranges; U is chapter XXII).
_CHAPTERS = (
    ("A00", "B99", "I"),
    ("C00", "D48", "II"),
    ("D50", "D89", "III"),
    ("E00", "E90", "IV"),
    ("F00", "F99", "V"),
    ("G00", "G99", "VI"),
    ("H00", "H59", "VII"),
    ("H60", "H95", "VIII"),
    ("I00", "I99", "IX"),
    ("J00", "J99", "X"),
    ("K00", "K93", "XI"),
    ("L00", "L99", "XII"),
    ("M00", "M99", "XIII"),
    ("N00", "N99", "XIV"),
    ("O00", "O9B", "XV"),
    ("P00", "P96", "XVI"),
    ("Q00", "Q99", "XVII"),
    ("R00", "R99", "XVIII"),
    ("S00", "T98", "XIX"),
    ("V01", "Y98", "XX"),
    ("Z00", "Z99", "XXI"),
    ("U00", "U99", "XXII"),
)


def icd_chapter(code: str) -> str:
    """The ICD-10 chapter (roman numeral) of a code; "?" for a code outside every range."""
    head = code[:3].upper()
    for first, last, chapter in _CHAPTERS:
        if first <= head <= last:
            return chapter
    return "?"


class QiKey(NamedTuple):
    """A row's quasi-identifiers at the finest level; None where the field is not extracted."""

    age: int | None  # lower bound of its 5-year band (0, 5, ..., 90 = "90+")
    sex: str | None
    country: str | None  # "" when the patient gave none
    chapter: str | None


def finest_key(
    *, age: int | None, sex: str | None, country: str | None, chapter: str | None
) -> QiKey:
    band = None if age is None else min(max(age, 0), AGE_TOP) // 5 * 5
    return QiKey(band, sex, country, chapter)


@dataclass(frozen=True)
class Level:
    """One global generalisation: age band level 0-3, and which fields are removed."""

    age: int = 0
    sex: bool = False
    country: bool = False
    chapter: bool = False

    @property
    def steps(self) -> int:
        return self.age + self.sex + self.country + self.chapter

    def apply(self, key: QiKey) -> tuple[str | None, ...]:
        """The released labels of a row's quasi-identifiers under this level."""
        return (
            age_band(key.age, self.age),
            _removed_or(key.sex, self.sex),
            _removed_or(key.country, self.country),
            _removed_or(key.chapter, self.chapter),
        )

    def describe(self) -> dict[str, Any]:
        """For the report: what each quasi-identifier was generalised to."""
        width = "removed" if self.age >= len(AGE_BAND_WIDTHS) else f"{AGE_BAND_WIDTHS[self.age]}y"
        return {
            "age_band": width,
            "sex": self.sex,
            "country": self.country,
            "icd_chapter": self.chapter,
        }


def age_band(age5: int | None, level: int) -> str | None:
    """The label of a 5-year band lower bound at generalisation ``level`` ("35-39", "30-39")."""
    if age5 is None:
        return None
    if level >= len(AGE_BAND_WIDTHS):
        return REMOVED
    if age5 >= AGE_TOP:
        return f"{AGE_TOP}+"
    width = AGE_BAND_WIDTHS[level]
    low = age5 // width * width
    return f"{low}-{min(low + width, AGE_TOP) - 1}"


def _removed_or(value: str | None, removed: bool) -> str | None:
    return REMOVED if removed and value is not None else value


@dataclass(frozen=True)
class Choice:
    level: Level
    group_sizes: Mapping[tuple[str | None, ...], int]  # generalised group -> rows
    suppressed: int

    def releases(self, key: QiKey, k: int) -> tuple[str | None, ...] | None:
        """The row's released labels, or None when its group is smaller than k (suppressed)."""
        labels = self.level.apply(key)
        return labels if self.group_sizes.get(labels, 0) >= k else None


def candidate_levels(present: QiKey) -> Iterable[Level]:
    """Every level that changes only fields that are extracted (``present`` marks them)."""
    ages = range(len(AGE_BAND_WIDTHS) + 1) if present.age is not None else (0,)
    sexes = (False, True) if present.sex is not None else (False,)
    countries = (False, True) if present.country is not None else (False,)
    chapters = (False, True) if present.chapter is not None else (False,)
    for age, sex, country, chapter in product(ages, sexes, countries, chapters):
        yield Level(age=age, sex=sex, country=country, chapter=chapter)


def choose_level(counts: Mapping[QiKey, int], k: int, present: QiKey) -> Choice:
    """The generalisation to release with (see the module docstring for the rule)."""
    total = sum(counts.values())
    allowed = int(total * MAX_SUPPRESSION_RATE)
    best: tuple[tuple[int, ...], Choice] | None = None
    for level in candidate_levels(present):
        sizes: Counter[tuple[str | None, ...]] = Counter()
        for key, count in counts.items():
            sizes[level.apply(key)] += count
        suppressed = sum(size for size in sizes.values() if size < k)
        within = suppressed <= allowed
        rank = (0, level.steps, suppressed) if within else (1, suppressed, level.steps)
        if best is None or rank < best[0]:
            best = (rank, Choice(level=level, group_sizes=sizes, suppressed=suppressed))
    assert best is not None  # candidate_levels always yields at least Level()
    return best[1]
