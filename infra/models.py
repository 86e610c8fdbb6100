"""Imports every table module, so that ``SQLModel.metadata`` knows every table (for migrations).

The naming convention goes on the metadata first; tables imported earlier elsewhere are named
after the imports (see ``infra.naming``).
"""

from sqlmodel import SQLModel

from infra.naming import apply_naming_convention

apply_naming_convention(SQLModel.metadata)

from keys import models as key_tables  # noqa: E402
from vault.cases import models as case_tables  # noqa: E402
from vault.documents import models as document_tables  # noqa: E402
from vault.patients import models as patient_tables  # noqa: E402

TABLE_MODULES = (key_tables, case_tables, document_tables, patient_tables)

apply_naming_convention(SQLModel.metadata)

metadata = SQLModel.metadata
