"""libFuzzer target: document intake (``sanitised`` and the PNG, JPEG, TIFF and PDF sanitisers
behind it) on arbitrary bytes, with ``vault`` instrumented for coverage. The PDF sanitiser runs
in its own child process (pikepdf, not instrumented) as in the product.

    python -m tests.atheris.intake_target [libFuzzer flags] [CORPUS_DIR ...]

Without a corpus folder it seeds a new temporary one (printed) with the files of
:mod:`tests.hostile`. ``MEDVAULT_ATHERIS_SPOOL_DIR`` names the spool folder (a new temporary
one by default). How an input is read is said in :mod:`tests.atheris.intake_corpus`; what
counts as a failure in :mod:`tests.atheris.intake_oracle`.

PDFs take a child process each (a tenth of a second or more), so they get at most
``PDF_TIME_SHARE`` of the run's time: a PDF input that comes when that share is used up is
skipped (and counted as such). The first PDF input always runs, so a saved input replays.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import atheris

# Only modules imported for the first time inside this block are instrumented: nothing before
# it may import vault (the corpus and oracle modules below import it after it).
with atheris.instrument_imports(include=["vault"]):
    import vault.intake  # noqa: F401 - imported here to be instrumented

from tests.atheris import intake_corpus as corpus
from tests.atheris import intake_oracle as oracle
from tests.atheris.feedback import cell_feedback
from tests.atheris.libfuzzer import run_target
from tests.atheris.outcomes import Outcomes

SPOOL_ENV = "MEDVAULT_ATHERIS_SPOOL_DIR"
PDF_TIME_SHARE = 0.3

OUTCOMES = Outcomes.from_environment()
# Outcome cells for coverage feedback: format x chunk size x (accepted, or one of the first
# 15 refusal kinds seen).
OUTCOME_KINDS = 16
reach = cell_feedback(len(corpus.FORMATS) * len(corpus.CHUNK_SIZES) * OUTCOME_KINDS)
refusal_kinds: dict[str, int] = {}


class Budget:
    """Lets PDF inputs use at most a share of the time since the first input."""

    def __init__(self, share: float) -> None:
        self._share = share
        self._started: float | None = None
        self._spent = 0.0

    def allows(self) -> bool:
        now = time.monotonic()
        if self._started is None:
            self._started = now
        return self._spent <= self._share * (now - self._started)

    def spend(self, seconds: float) -> None:
        self._spent += seconds


pdf_budget = Budget(PDF_TIME_SHARE)
spool_dir = Path(os.environ.get(SPOOL_ENV) or tempfile.mkdtemp(prefix="intake-spool-"))
open_fds_at_start: int | None = None


def test_one_input(data: bytes) -> None:
    global open_fds_at_start
    if not data:
        return
    if open_fds_at_start is None:
        open_fds_at_start = oracle.open_fd_count()
    plan = corpus.read_plan(data[0])
    upload = corpus.upload_of(plan, data[1:])
    is_pdf = upload.startswith(corpus.PDF.prefix)
    if is_pdf and not pdf_budget.allows():
        OUTCOMES.count("pdf-skipped")
        return
    started = time.monotonic()
    try:
        outcome = oracle.check_upload(upload, plan, spool_dir)
    finally:
        if is_pdf:
            pdf_budget.spend(time.monotonic() - started)
            OUTCOMES.count("pdf-seconds", time.monotonic() - started)
    oracle.require_nothing_left(
        spool_dir=spool_dir, open_fds_before=open_fds_at_start, after_pdf=is_pdf
    )
    if outcome == oracle.ACCEPTED:
        OUTCOMES.count(f"{plan.format.name}-accepted")
        kind = 0
    else:
        OUTCOMES.count(f"{plan.format.name}-refused: {outcome}")
        kind = 1 + refusal_kinds.setdefault(outcome, len(refusal_kinds)) % (OUTCOME_KINDS - 1)
    format_index = corpus.FORMATS.index(plan.format)
    chunk_index = corpus.CHUNK_SIZES.index(plan.chunk_size)
    reach((format_index * len(corpus.CHUNK_SIZES) + chunk_index) * OUTCOME_KINDS + kind)


if __name__ == "__main__":
    run_target(sys.argv, test_one_input, corpus.seeds, "intake")
