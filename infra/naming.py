"""Constraint and index names fixed by convention, so migrations name them the same everywhere.

Without a convention PostgreSQL invents names and SQLite keeps none, so a later migration that
drops or alters a constraint cannot name it. The convention must be on the metadata before a
table is defined; tables defined earlier (a table module imported before ``infra.models``)
are named afterwards by ``apply_naming_convention``, so import order does not matter.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.schema import ColumnCollectionConstraint
from sqlalchemy.sql.elements import conv

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def apply_naming_convention(metadata: sa.MetaData) -> None:
    """Put the convention on ``metadata`` and name every constraint still left unnamed."""
    metadata.naming_convention = NAMING_CONVENTION
    for table in metadata.tables.values():
        items: list[sa.Constraint | sa.Index] = [*table.constraints, *table.indexes]
        for item in items:
            if item.name is None:
                item.name = conv(_conventional_name(item, table))


def _conventional_name(item: sa.Constraint | sa.Index, table: sa.Table) -> str:
    if isinstance(item, sa.Index):
        first = next(iter(item.columns))
        return NAMING_CONVENTION["ix"] % {"column_0_label": f"{table.name}_{first.name}"}
    if not isinstance(item, ColumnCollectionConstraint):
        raise TypeError(f"no naming convention for {type(item).__name__}")
    columns = list(item.columns)
    if isinstance(item, sa.PrimaryKeyConstraint):
        return NAMING_CONVENTION["pk"] % {"table_name": table.name}
    if isinstance(item, sa.UniqueConstraint):
        return NAMING_CONVENTION["uq"] % {
            "table_name": table.name,
            "column_0_name": columns[0].name,
        }
    if isinstance(item, sa.ForeignKeyConstraint):
        return NAMING_CONVENTION["fk"] % {
            "table_name": table.name,
            "column_0_name": columns[0].name,
            "referred_table_name": item.referred_table.name,
        }
    # A check constraint's convention needs its own name, which only its author can give.
    raise ValueError(f"name every CheckConstraint explicitly (table {table.name})")
