"""Coverage-guided fuzzing with atheris (libFuzzer for Python) of the envelope decoder and of
document intake: no crash, no hang, no accepted forgery.

For each of ``envelope`` and ``intake``: ``*_corpus`` says how a fuzz input is read and writes
the seeds, ``*_oracle`` judges one input (what is a failure), and ``*_target`` is the libFuzzer
program (``python -m tests.atheris.envelope_target [libFuzzer flags] [corpus dirs]``).
``test_atheris.py`` runs both targets at once and records their figures in
``soak-results.json``; ``test_oracles.py`` shows the oracles fail when they should.

This ``__init__`` must not import ``vault``: the targets import it under atheris'
instrumentation, which only reaches modules not imported yet (so they import the corpus and
oracle modules, which do import it, only after that)."""
