"""libFuzzer target: the envelope decoder (``decrypt``, its header reader and frame re-cutting,
and ``EnvelopeHeader.parse``) on arbitrary bytes, with ``vault`` instrumented for coverage.

    python -m tests.atheris.envelope_target [libFuzzer flags] [CORPUS_DIR ...]

Without a corpus folder it seeds a new temporary one (printed) with the genuine envelopes of
:mod:`tests.atheris.envelope_corpus`. How an input is read is said there; what counts as a
failure (a crash, an accepted forgery) in :mod:`tests.atheris.envelope_oracle`.
"""

from __future__ import annotations

import sys

import atheris

# Only modules imported for the first time inside this block are instrumented: nothing before
# it may import vault (the corpus and oracle modules below import it after it).
with atheris.instrument_imports(include=["vault"]):
    import vault.crypto.envelope
    import vault.errors

from tests.atheris import envelope_corpus as corpus
from tests.atheris import envelope_oracle as oracle
from tests.atheris.feedback import cell_feedback
from tests.atheris.libfuzzer import run_target
from tests.atheris.outcomes import Outcomes

OUTCOMES = Outcomes.from_environment()
# Outcome cells for coverage feedback: for each way of decrypting (three objects, wrong key)
# and each chunking, how far the input got; then the header parser's two outcomes.
DECRYPT_WAYS = (*corpus.EXPECTATIONS, corpus.WRONG_KEY)
HEADER_CELLS = len(DECRYPT_WAYS) * len(corpus.CHUNKINGS) * len(oracle.PROGRESS)
reach = cell_feedback(HEADER_CELLS + 2)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    plan = corpus.read_plan(data[0])
    body = data[1:]
    if plan.action == corpus.HEADER_ONLY:
        header = body[: vault.crypto.envelope.HEADER_SIZE]
        accepted = oracle.check_header(header, as_view=bool(plan.chunking & 1))
        OUTCOMES.count("header-accepted" if accepted else "header-refused")
        reach(HEADER_CELLS + accepted)
        return
    progress = oracle.check_decrypt(body, plan)
    OUTCOMES.count(f"{plan.action}-{progress}")
    way = DECRYPT_WAYS.index(plan.expectation)
    cell = (way * len(corpus.CHUNKINGS) + plan.chunking) * len(oracle.PROGRESS)
    reach(cell + oracle.PROGRESS.index(progress))


if __name__ == "__main__":
    corpus.genuine_envelopes()  # made once, before the first input is timed
    run_target(sys.argv, test_one_input, corpus.seeds, "envelope")
