"""Migrations: upgrade to head on SQLite and PostgreSQL, and the models match the migrations.

``test_models_match_the_migrations`` fails after a model change until a migration is generated
for it (``make migration m="..."``): that is its purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from infra.db import make_engine
from infra.migrate import alembic_config, check, heads, upgrade

TABLES = {"patients", "cases", "documents", "root_keys", "key_records"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database; PostgreSQL's is left empty again afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_and_is_idempotent(empty_database: str) -> None:
    upgrade(empty_database)
    assert TABLES | {"alembic_version"} <= table_names(empty_database)
    upgrade(empty_database)  # already at head: nothing to do, nothing fails
    assert check(empty_database) == []


def test_models_match_the_migrations(empty_database: str) -> None:
    upgrade(empty_database)
    assert check(empty_database) == [], "run `make migration m='...'` after changing a model"


def test_check_reports_a_database_behind_the_migrations(empty_database: str) -> None:
    differences = check(empty_database)
    assert differences[0] == f"database is at revision none, migrations at {heads()}"
    assert any(difference.startswith("add_table") for difference in differences)


def test_check_reports_a_schema_that_drifted_from_the_models(empty_database: str) -> None:
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP INDEX ix_documents_case_id")
            connection.exec_driver_sql("ALTER TABLE documents ADD COLUMN note VARCHAR(20)")
    finally:
        engine.dispose()
    differences = check(empty_database)
    assert "add_index ix_documents_case_id" in differences
    assert "remove_column documents note" in differences


def test_constraints_carry_the_conventional_names(empty_database: str) -> None:
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        inspector = sa.inspect(engine)
        assert inspector.get_pk_constraint("documents")["name"] == "pk_documents"
        foreign_keys = {fk["name"] for fk in inspector.get_foreign_keys("documents")}
        assert foreign_keys == {"fk_documents_case_id_cases"}
        uniques = {uq["name"] for uq in inspector.get_unique_constraints("documents")}
        assert uniques == {"uq_documents_object_key"}
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_everything_and_upgrade_works_again(
    empty_database: str,
) -> None:
    upgrade(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    assert table_names(empty_database) <= {"alembic_version"}
    upgrade(empty_database)  # PostgreSQL: fails if the downgrade left enum types behind
    assert check(empty_database) == []


@pytest.mark.postgres
def test_native_enum_types_hold_every_value_of_the_models(own_postgres_url: str) -> None:
    """Autogenerate does not see values added to an enum: a migration must add them by hand."""
    import infra.models

    wanted = {
        column.type.name: set(column.type.enums)
        for table in infra.models.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, sa.Enum) and column.type.name
    }
    upgrade(own_postgres_url)
    engine = make_engine(own_postgres_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT t.typname, e.enumlabel FROM pg_type t "
                    "JOIN pg_enum e ON e.enumtypid = t.oid"
                )
            ).all()
    finally:
        engine.dispose()
    present: dict[str, set[str]] = {}
    for type_name, label in rows:
        present.setdefault(type_name, set()).add(label)
    missing = {name: values - present.get(name, set()) for name, values in wanted.items()}
    assert {name: values for name, values in missing.items() if values} == {}
