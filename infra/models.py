"""Imports every table module, so that ``SQLModel.metadata`` knows every table (for migrations).

The naming convention goes on the metadata first; tables imported earlier elsewhere are named
after the imports (see ``infra.naming``).
"""

from sqlmodel import SQLModel

from infra.naming import apply_naming_convention

apply_naming_convention(SQLModel.metadata)

from keys import models as key_tables  # noqa: E402
from vault.accounts import models as account_tables  # noqa: E402
from vault.audit import models as audit_tables  # noqa: E402
from vault.cases import models as case_tables  # noqa: E402
from vault.consents import models as consent_tables  # noqa: E402
from vault.documents import models as document_tables  # noqa: E402
from vault.extracts import models as extract_tables  # noqa: E402
from vault.links import models as link_tables  # noqa: E402
from vault.partners import models as partner_tables  # noqa: E402
from vault.patients import models as patient_tables  # noqa: E402
from vault.subject_rights import models as subject_rights_tables  # noqa: E402
from vault.surveys import models as survey_tables  # noqa: E402
from vault.transfers import models as transfer_tables  # noqa: E402

TABLE_MODULES = (
    key_tables,
    account_tables,
    audit_tables,
    case_tables,
    consent_tables,
    document_tables,
    extract_tables,
    link_tables,
    partner_tables,
    patient_tables,
    subject_rights_tables,
    survey_tables,
    transfer_tables,
)

apply_naming_convention(SQLModel.metadata)

metadata = SQLModel.metadata
