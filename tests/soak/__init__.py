"""Reliability suites that drive a real `medvault serve` for a short while in `make test` and
for minutes in `make soak` (``MEDVAULT_SOAK=long``); each records its figures in
``soak-results.json`` through :mod:`tests.soak.results`."""
