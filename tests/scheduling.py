"""How `make test` shares the tests between its two processes (pytest-xdist, ``--dist loadscope``).

The suites that start whole installations (servers, workers, fuzzers, load) use both cores
themselves, so they form one scope: one process runs them one after another while the other
takes the rest, a test file at a time (module fixtures are set up once). pytest-xdist's own
``loadgroup`` would say this with marks, but under pytest 9.2 it silently stops grouping
(pytest-dev/pytest-xdist#1386), so the scope is decided here from the test's path.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

INSTALLATION_SUITES = ("atheris", "e2e", "faults", "fuzz", "load", "soak", "workers")
INSTALLATIONS = "installations"


def scope_of(nodeid: str) -> str:
    """The installation suites' one scope, or the test's file."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in INSTALLATION_SUITES:
        return INSTALLATIONS
    return path


class InstallationsTogether(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)
