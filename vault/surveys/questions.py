"""The fixed questionnaire: scored questions, ids and texts in code, versioned.

A published version never changes; a new wording or a new question is a new version, so the
scores of an extract always mean what the question asked when the patient answered it.
"""

from dataclasses import dataclass
from functools import cached_property

MIN_SCORE = 1
MAX_SCORE = 5


@dataclass(frozen=True)
class Question:
    id: str  # stable, short, lower case: the column name in QA extracts
    text: str


@dataclass(frozen=True)
class Questionnaire:
    version: str
    questions: tuple[Question, ...]

    @cached_property  # read for every row of an extract
    def ids(self) -> tuple[str, ...]:
        return tuple(question.id for question in self.questions)


SATISFACTION_2026_11 = Questionnaire(
    version="2026-11",
    questions=(
        Question("information", "How well were you informed before your treatment?"),
        Question("coordination", "How smoothly was your treatment organised?"),
        Question("communication", "How easy was it to reach us when you had questions?"),
        Question("treatment", "How satisfied are you with the treatment itself?"),
        Question("aftercare", "How well was your aftercare arranged?"),
        Question("recommend", "How likely are you to recommend us to others?"),
    ),
)

CURRENT = SATISFACTION_2026_11
QUESTIONNAIRES = {SATISFACTION_2026_11.version: SATISFACTION_2026_11}
