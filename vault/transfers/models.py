"""Transfer tables: who received which documents of a case, why, and under which legal basis.

Rows hold ids and values from fixed lists only, so the transfer log can be kept as long as the
case without holding any free text.
"""

import enum
import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class LegalBasis(enum.StrEnum):
    """GDPR Art. 6(1) (a), (b), (c), (f) and Art. 9(2) (a), (c), (h)."""

    ART6_1_A = "art6-1-a"  # consent
    ART6_1_B = "art6-1-b"  # contract
    ART6_1_C = "art6-1-c"  # legal obligation
    ART6_1_F = "art6-1-f"  # legitimate interests
    ART9_2_A = "art9-2-a"  # explicit consent to processing health data
    ART9_2_C = "art9-2-c"  # vital interests
    ART9_2_H = "art9-2-h"  # health care

    @property
    def needs_consent(self) -> bool:
        """A basis of consent must point to a live consent of the patient."""
        return self in (LegalBasis.ART6_1_A, LegalBasis.ART9_2_A)


class Purpose(enum.StrEnum):
    TREATMENT_CHECK = "treatment-check"
    TREATMENT_ORGANISATION = "treatment-organisation"
    COST_COVERAGE = "cost-coverage"
    BILLING = "billing"
    AFTERCARE = "aftercare"


class Transfer(SQLModel, table=True):
    __tablename__ = "transfers"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partners.id", index=True)
    purpose: Purpose
    legal_basis: LegalBasis
    consent_id: uuid.UUID | None = Field(default=None, foreign_key="consents.id")
    created_by: uuid.UUID | None = None  # the coordinator's user id (None for the system)
    created_at: datetime
    revoked_at: datetime | None = None  # revoking a transfer revokes its link


class TransferDocument(SQLModel, table=True):
    __tablename__ = "transfer_documents"

    transfer_id: uuid.UUID = Field(foreign_key="transfers.id", primary_key=True)
    document_id: uuid.UUID = Field(foreign_key="documents.id", primary_key=True, index=True)
    position: int  # 1-based order in the transfer; names the download ("document-<n>.pdf")
