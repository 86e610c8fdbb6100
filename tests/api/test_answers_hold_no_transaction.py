"""The busiest answers are built with no transaction open.

On SQLite every transaction holds the database's one write lock (BEGIN IMMEDIATE). A read made
after the service committed (the file names of a documents list, the restrictions beside a cases
list, the partner's address of a forward) opened a transaction that lasted until the session
closed, after the answer had been validated and serialised (or the mail handed over). Under the
load suite's 50 clients the other requests waited for it past busy_timeout and were answered 503
database-unavailable. Now those reads are committed before the answer is built, so the session's
close finds nothing to roll back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event

from tests.api.test_transfers import forward, forwardable
from tests.apiharness import ApiHarness


@contextmanager
def rolled_back(engine: sa.Engine) -> Iterator[list[str]]:
    """Each transaction rolled back meanwhile: what a session's close finds still open."""
    seen: list[str] = []

    def note(connection: sa.Connection) -> None:
        seen.append("rollback")

    event.listen(engine, "rollback", note)
    try:
        yield seen
    finally:
        event.remove(engine, "rollback", note)


def test_listing_documents_leaves_no_transaction_open(api: ApiHarness) -> None:
    setup = forwardable(api)

    with rolled_back(api.runtime.engine) as left_open:
        listed = api.client.get(f"/cases/{setup.case_id}/documents", headers=setup.patient.headers)

    assert listed.status_code == 200, listed.text
    assert sorted(document["filename"] for document in listed.json()) == ["befund.pdf", "scan.png"]
    assert left_open == []


def test_listing_cases_leaves_no_transaction_open(api: ApiHarness) -> None:
    setup = forwardable(api)

    with rolled_back(api.runtime.engine) as left_open:
        listed = api.client.get("/cases", headers=setup.coordinator.headers)

    assert listed.status_code == 200, listed.text
    assert [case["id"] for case in listed.json()] == [setup.case_id]
    assert left_open == []


def test_forwarding_leaves_no_transaction_open_while_the_partner_is_mailed(
    api: ApiHarness,
) -> None:
    setup = forwardable(api)

    with rolled_back(api.runtime.engine) as left_open:
        response = forward(api, setup)

    assert response.status_code == 201, response.text
    assert response.json()["notified"] is True
    assert left_open == []
