"""Database migrations (Alembic), configured in code: upgrade, check against the models, revise."""

from __future__ import annotations

import tempfile
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

from infra.db import make_engine
from infra.models import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


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
    """Bring the database at ``url`` to ``revision`` (the newest by default). Idempotent."""
    command.upgrade(alembic_config(url), revision)


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
