"""The naming convention names every constraint, whatever the import order of the tables."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from infra.naming import apply_naming_convention


def define_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    parent = sa.Table("parent", metadata, sa.Column("id", sa.Integer, primary_key=True))
    child = sa.Table(
        "child",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.ForeignKey("parent.id"), index=True),
        sa.Column("code", sa.String(10), unique=True),
    )
    return parent, child


def named_items(table: sa.Table) -> list[sa.Constraint | sa.Index]:
    return [*table.constraints, *table.indexes]


def constraint_names(table: sa.Table) -> set[str]:
    return {str(item.name) for item in named_items(table)}


EXPECTED = {"pk_child", "fk_child_parent_id_parent", "uq_child_code", "ix_child_parent_id"}


def test_tables_defined_before_the_convention_are_named_afterwards() -> None:
    metadata = sa.MetaData()
    _parent, child = define_tables(metadata)
    assert None in {item.name for item in child.constraints}  # SQLAlchemy left them unnamed
    apply_naming_convention(metadata)
    assert constraint_names(child) == EXPECTED


def test_tables_defined_after_the_convention_get_the_same_names() -> None:
    metadata = sa.MetaData()
    apply_naming_convention(metadata)
    _parent, child = define_tables(metadata)
    assert constraint_names(child) == EXPECTED


def test_explicit_names_are_kept_and_unnamed_checks_are_refused() -> None:
    metadata = sa.MetaData()
    sa.Table(
        "thing",
        metadata,
        sa.Column("id", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="thing_primary"),
        sa.CheckConstraint("id > 0"),
    )
    with pytest.raises(ValueError, match="name every CheckConstraint"):
        apply_naming_convention(metadata)
    assert metadata.tables["thing"].primary_key.name == "thing_primary"


def test_every_medvault_table_has_named_constraints() -> None:
    from infra.models import metadata

    assert {"patients", "cases", "documents", "root_keys", "key_records"} <= set(metadata.tables)
    for table in metadata.tables.values():
        for item in named_items(table):
            assert item.name, f"unnamed {type(item).__name__} on {table.name}"
