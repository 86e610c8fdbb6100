"""Alembic environment, configured in code by ``infra.migrate`` (no alembic.ini at run time).

``infra.migrate`` puts the database URL in ``config.attributes["database_url"]``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from infra.db import make_engine
from infra.migrate import MIGRATION_OPTIONS


def run_migrations_offline() -> None:
    context.configure(
        url=context.config.attributes["database_url"],
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **MIGRATION_OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(context.config.attributes["database_url"])
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                _run_sqlite(connection)
            else:
                _run(connection)
    finally:
        engine.dispose()


def _run(connection: sa.Connection) -> None:
    # transactional_ddl: infra.db makes SQLite transactions real (BEGIN IMMEDIATE), so every
    # pending revision applies in one transaction on both databases, or none does.
    context.configure(connection=connection, transactional_ddl=True, **MIGRATION_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if violations:
                raise RuntimeError(f"migration broke {len(violations)} foreign key reference(s)")


def _run_sqlite(connection: sa.Connection) -> None:
    # Batch mode recreates a table (copy, drop, rename); with foreign keys on, dropping a
    # referenced table would delete or refuse its children. SQLite ignores this pragma inside a
    # transaction, so it is set on the raw connection before SQLAlchemy begins one; the
    # references are checked before commit instead.
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        _run(connection)
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
