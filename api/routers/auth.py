"""Sign-in (OAuth2 password flow), token refresh and logout, patient self-registration.

Token answers carry ``Cache-Control: no-store`` (RFC 6749 section 5.1). Failed logins are
slowed and then locked per account and per anonymised client address; the answers never say
whether an account exists.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.deps import AuditDep, ClientDep, CurrentUser, NotifierDep, NowDep, RuntimeDep, SessionDep
from infra.wiring import Runtime
from vault.accounts.models import Role
from vault.accounts.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from vault.accounts.service import (
    MailContext,
    TokenLifetimes,
    TokenPair,
    accept_invitation,
    confirm_email,
    log_in,
    logout,
    refresh_tokens,
    register_patient_account,
)
from vault.audit.models import ActorKind
from vault.audit.service import AuditContext
from vault.errors import NotAuthenticated
from vault.json_types import JsonPastDate
from vault.patients.models import CountryCode, Sex
from vault.patients.service import PatientIdentity

router = APIRouter(prefix="/auth", tags=["auth"])

_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_TOKEN_LENGTH = 200  # ours are 43 characters; longer input is refused unread
MAX_PASSWORD_FIELD = 4096  # the service answers weak-password above its own, lower limit


def anonymous_caller(client: ClientDep) -> AuditContext:
    """The audit context of someone not signed in (a stale bearer header is ignored here)."""
    return AuditContext(actor_kind=ActorKind.ANONYMOUS, actor_id=None, client=client)


AnonymousDep = Annotated[AuditContext, Depends(anonymous_caller)]


def token_lifetimes(runtime: Runtime) -> TokenLifetimes:
    settings = runtime.settings
    return TokenLifetimes(
        access=timedelta(minutes=settings.access_token_minutes),
        refresh=timedelta(hours=settings.refresh_token_hours),
    )


def mail_context(runtime: Runtime, notifier: NotifierDep) -> MailContext:
    return MailContext(notifier=notifier, base_url=runtime.settings.public_base_url)


class TokenAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "q5Xo…",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "refresh_token": "Vb8k…",
                }
            ]
        }
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int
    refresh_token: str

    @classmethod
    def of(cls, pair: TokenPair, response: Response) -> TokenAnswer:
        response.headers.update(NO_STORE)
        return cls(
            access_token=pair.access_token,
            expires_in=pair.expires_in,
            refresh_token=pair.refresh_token,
        )


class RefreshRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"refresh_token": "Vb8k…"}]}
    )

    refresh_token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)


class Me(BaseModel):
    id: uuid.UUID
    role: Role


# The policy's bounds are stated in the schema for clients; the field itself admits more, so
# that the service checks the policy and answers weak-password, as it does on the pages.
NewPassword = Annotated[
    str,
    Field(
        max_length=MAX_PASSWORD_FIELD,
        json_schema_extra={"minLength": MIN_PASSWORD_LENGTH, "maxLength": MAX_PASSWORD_LENGTH},
    ),
]
PatientName = Annotated[str, Field(min_length=1, max_length=200)]
PhoneNumber = Annotated[str, Field(min_length=3, max_length=40)]


class PatientDetails(BaseModel):
    """Who a new patient is: the fields registration and invitation share (and, each one
    optional, rectification in ``api.routers.rights``)."""

    email: EmailStr
    name: PatientName
    birth_date: JsonPastDate
    phone: PhoneNumber | None = None
    sex: Sex = Sex.UNKNOWN
    country: CountryCode | None = None

    def identity(self) -> PatientIdentity:
        return PatientIdentity(
            name=self.name,
            birth_date=self.birth_date,
            email=self.email,
            phone=self.phone,
            sex=self.sex,
            country=self.country,
        )


class Registration(PatientDetails):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "erika@example.org",
                    "password": "a long passphrase",
                    "name": "Erika Mustermann",
                    "birth_date": "1964-08-12",
                    "phone": "+49 30 1234567",
                    "sex": "female",
                    "country": "DE",
                }
            ]
        },
    )

    password: NewPassword


class Accepted(BaseModel):
    message: str


class OneTimeCode(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"token": "Zk3…"}]})

    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)


class InvitationAcceptance(OneTimeCode):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"token": "Zk3…", "password": "a long passphrase"}]},
    )

    password: NewPassword


@router.post("/token")
def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AnonymousDep,
) -> TokenAnswer:
    """Sign in with login and password (form fields ``username``, ``password``)."""
    pair = log_in(
        session,
        lookup_key=runtime.secrets.login_lookup_key,
        login=form.username,
        password=form.password,
        now=now,
        audit=audit,
        lifetimes=token_lifetimes(runtime),
    )
    return TokenAnswer.of(pair, response)


@router.post("/refresh")
def refresh_token(
    body: RefreshRequest,
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AnonymousDep,
) -> TokenAnswer:
    """Swap a refresh token for a new pair; the old refresh token stops working."""
    pair = refresh_tokens(
        session,
        refresh_token=body.refresh_token,
        now=now,
        audit=audit,
        lifetimes=token_lifetimes(runtime),
    )
    return TokenAnswer.of(pair, response)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def log_out(
    token: Annotated[str | None, Depends(_bearer)],
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
) -> None:
    """Revoke the tokens of this sign-in (its access and refresh tokens)."""
    if token is None:
        raise NotAuthenticated("sign in first")
    logout(session, access_token=token, now=now, audit=audit)


@router.get("/me")
def who_am_i(user: CurrentUser) -> Me:
    """The signed-in user's id and role."""
    return Me(id=user.id, role=user.role)


@router.post("/register", status_code=status.HTTP_202_ACCEPTED)
def register_as_patient(
    body: Registration,
    session: SessionDep,
    runtime: RuntimeDep,
    notifier: NotifierDep,
    now: NowDep,
    audit: AnonymousDep,
) -> Accepted:
    """Register as a patient. The answer is the same whether or not the address already has an
    account; the mail sent to it says which (a confirmation code, or a reminder)."""
    register_patient_account(
        session,
        keys=runtime.key_store,
        lookup_key=runtime.secrets.login_lookup_key,
        mail=mail_context(runtime, notifier),
        identity=body.identity(),
        password=body.password,
        now=now,
        audit=audit,
    )
    return Accepted(message="we sent a mail to the address; follow it to continue")


@router.post("/confirm", status_code=status.HTTP_204_NO_CONTENT)
def confirm_address(
    body: OneTimeCode, session: SessionDep, now: NowDep, audit: AnonymousDep
) -> None:
    """Confirm a registered address with the code mailed to it."""
    confirm_email(session, token=body.token, now=now, audit=audit)


@router.post("/accept-invitation", status_code=status.HTTP_204_NO_CONTENT)
def accept_patient_invitation(
    body: InvitationAcceptance, session: SessionDep, now: NowDep, audit: AnonymousDep
) -> None:
    """An invited patient chooses a password with the code from the invitation mail."""
    accept_invitation(session, token=body.token, password=body.password, now=now, audit=audit)
