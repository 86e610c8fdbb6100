"""User administration (the privacy officer) and patient invitations (coordinators).

Lists show ids, roles and dates only: logins are stored as digests and never shown.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import (
    AdminUser,
    AuditDep,
    CoordinatorUser,
    NotifierDep,
    NowDep,
    RuntimeDep,
    SessionDep,
)
from api.routers.auth import NewPassword, PatientDetails, mail_context
from infra.wiring import Runtime
from vault.accounts.models import Role, User
from vault.accounts.passwords import LOGIN_PATTERN, MAX_LOGIN_LENGTH
from vault.accounts.service import create_user, disable_user, invite_patient, list_users
from vault.audit.service import AuditContext
from vault.clock import as_utc

router = APIRouter(tags=["users"])

# The roles of vault.accounts.models.STAFF_ROLES, as the schema's enum.
StaffRole = Literal[Role.COORDINATOR, Role.ANALYST, Role.ADMIN]


class NewUser(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"login": "k.schmidt", "role": "coordinator", "password": "a long passphrase"}
            ]
        },
    )

    login: str = Field(
        min_length=1, max_length=MAX_LOGIN_LENGTH, json_schema_extra={"pattern": LOGIN_PATTERN}
    )
    # Patients register themselves or are invited, so the schema offers staff roles only.
    role: StaffRole
    password: NewPassword


class UserSummary(BaseModel):
    id: uuid.UUID
    role: Role
    created_at: datetime
    disabled: bool

    @classmethod
    def of(cls, user: User) -> UserSummary:
        return cls(
            id=user.id,
            role=user.role,
            created_at=as_utc(user.created_at),
            disabled=user.disabled_at is not None,
        )


class Invitation(PatientDetails):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "erika@example.org",
                    "name": "Erika Mustermann",
                    "birth_date": "1964-08-12",
                    "phone": "+49 30 1234567",
                    "sex": "female",
                    "country": "DE",
                }
            ]
        },
    )


class Invited(BaseModel):
    patient_id: uuid.UUID


def add_staff_account(
    *, runtime: Runtime, session: Session, body: NewUser, now: datetime, audit: AuditContext
) -> User:
    """Create the staff account ``body`` describes (LoginTaken, WeakPassword: nothing stored)."""
    return create_user(
        session,
        lookup_key=runtime.secrets.login_lookup_key,
        login=body.login,
        role=body.role,
        password=body.password,
        now=now,
        audit=audit,
    )


@router.post("/admin/users", status_code=status.HTTP_201_CREATED)
def add_account(
    body: NewUser,
    _admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> UserSummary:
    """Create a staff account (coordinator, analyst or admin)."""
    user = add_staff_account(runtime=runtime, session=session, body=body, now=now, audit=audit)
    return UserSummary.of(user)


@router.get("/admin/users")
def list_accounts(
    _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[UserSummary]:
    """Every account, oldest first."""
    return [UserSummary.of(user) for user in list_users(session, now=now, audit=audit)]


@router.post("/admin/users/{user_id}/disable", status_code=status.HTTP_204_NO_CONTENT)
def disable_account(
    user_id: uuid.UUID, _admin: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> None:
    """Disable an account; its tokens stop working at once."""
    disable_user(session, user_id=user_id, now=now, audit=audit)


@router.post("/patients/invitations", status_code=status.HTTP_201_CREATED)
def invite_new_patient(
    body: Invitation,
    _coordinator: CoordinatorUser,
    session: SessionDep,
    runtime: RuntimeDep,
    notifier: NotifierDep,
    now: NowDep,
    audit: AuditDep,
) -> Invited:
    """Invite a patient: a patient record, and a mail with a code to choose a password."""
    patient = invite_patient(
        session,
        keys=runtime.key_store,
        lookup_key=runtime.secrets.login_lookup_key,
        mail=mail_context(runtime, notifier),
        identity=body.identity(),
        now=now,
        audit=audit,
    )
    return Invited(patient_id=patient.id)
