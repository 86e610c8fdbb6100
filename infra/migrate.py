"""Database migrations (Alembic), configured in code: upgrade, check against the models, revise."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata, renderers
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from infra.db import make_engine
from infra.models import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# PostgreSQL advisory lock key held while migrations run ("medvmigr" in ASCII): any fixed bigint
# works, it only has to be the same in every medvault process and unused by anything else.
MIGRATION_LOCK_KEY = 0x6D65_6476_6D69_6772


class DropEnumTypeOp(ops.MigrateOperation):
    """Drop a named enum type (a no-op on databases without enum types, such as SQLite).

    Alembic creates PostgreSQL enum types with their table but never drops them, so a downgrade
    would leave them behind and the next upgrade would fail on "type already exists".
    """

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


@renderers.dispatch_for(DropEnumTypeOp)
def _render_drop_enum_type(_context: AutogenContext, operation: DropEnumTypeOp) -> str:
    return f"sa.Enum(name={operation.type_name!r}).drop(op.get_bind(), checkfirst=True)"


def _drop_enum_types_with_their_tables(
    _context: MigrationContext, _revision: Any, directives: list[ops.MigrationScript]
) -> None:
    """Autogenerate hook: a downgrade that drops tables also drops their enum types, last
    (a type may be shared by several of the dropped tables)."""
    for downgrade_ops in directives[0].downgrade_ops_list:
        type_names: dict[str, None] = {}  # ordered set
        for operation in downgrade_ops.ops:
            if isinstance(operation, ops.DropTableOp):
                for column in operation.to_table().columns:
                    if isinstance(column.type, sa.Enum) and column.type.name:
                        type_names[column.type.name] = None
        downgrade_ops.ops.extend(DropEnumTypeOp(name) for name in type_names)


# One set of options for running, autogenerating and checking, so that they agree; used by
# migrations/env.py. Batch mode everywhere: SQLite needs it to alter a table and PostgreSQL runs
# it as plain ALTERs, so a revision generated against either database works on both.
MIGRATION_OPTIONS: dict[str, Any] = {
    "target_metadata": metadata,
    "render_as_batch": True,
    "compare_type": True,
    "process_revision_directives": _drop_enum_types_with_their_tables,
}


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Date first so that `ls versions/` reads in order; '%%' because the config interpolates.
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    # Not a main option: a URL's password may hold '%', which the config would interpolate.
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (the newest by default). Idempotent.

    Safe to run from several processes at once (containers starting together): on PostgreSQL
    they take turns, and those that come after the first find nothing left to do.
    """
    with _one_migrator_at_a_time(url):
        command.upgrade(alembic_config(url), revision)


@contextmanager
def _one_migrator_at_a_time(url: str) -> Iterator[None]:
    """Hold PostgreSQL's session-level advisory lock ``MIGRATION_LOCK_KEY`` on a connection of
    its own for the whole upgrade. Without it, two upgraders both read "no version yet" and both
    run the first revision: one of them fails on "relation already exists".

    SQLite needs nothing: every migration transaction starts with BEGIN IMMEDIATE (infra.db),
    so a second upgrader waits for the first to commit, then reads the new version.
    """
    if make_url(url).get_backend_name() not in ("postgresql", "postgres"):
        yield
        return
    engine = make_engine(url)
    try:
        # Autocommit: the lock belongs to the session, and this connection must not sit idle
        # inside a transaction for as long as the migrations take.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(
                sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            try:
                yield
            finally:
                # A lost connection has released the lock already; its error must not hide the
                # migration's own. dispose() below ends the session (and any lock) regardless.
                with suppress(sa.exc.DBAPIError):
                    connection.execute(
                        sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
    finally:
        engine.dispose()


def heads() -> list[str]:
    """The newest revision(s) of the migrations shipped with this code."""
    return list(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def check(url: str) -> list[str]:
    """Every difference between the database at ``url`` and the models; empty when in sync.

    A database behind the newest migration is a difference too, so this also fails when a model
    changed without a migration being generated for it (the database was upgraded to head).
    """
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=MIGRATION_OPTIONS)
            differences = []
            current = sorted(context.get_current_heads())
            expected = sorted(heads())
            if current != expected:
                differences.append(
                    f"database is at revision {current or 'none'}, migrations at {expected}"
                )
            differences += [_describe(diff) for diff in compare_metadata(context, metadata)]
    finally:
        engine.dispose()
    return differences


def make_revision(message: str) -> Path:
    """Autogenerate a revision from the models' changes since head; returns the new file.

    It compares against a scratch SQLite database upgraded to head, so the result does not
    depend on whatever database the developer has configured.
    """
    with tempfile.TemporaryDirectory(prefix="medvault-revision-") as scratch:
        config = alembic_config(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        command.upgrade(config, "head")
        script = command.revision(config, message=message, autogenerate=True)
    if script is None or isinstance(script, list):
        raise RuntimeError("alembic produced no single revision")
    return Path(script.path)


def _describe(diff: Any) -> str:
    """One readable line for one alembic diff (a tuple, or a list of tuples for one column)."""
    if isinstance(diff, list):
        return "; ".join(_describe(part) for part in diff)
    operation, *details = diff
    shown = []
    for detail in details:
        if detail is None or isinstance(detail, dict):
            continue
        name = getattr(detail, "fullname", None) or getattr(detail, "name", None)
        shown.append(str(name) if name is not None else str(detail))
    return " ".join([operation, *shown])
