"""Dependencies the routers declare with ``Annotated`` aliases: the runtime, a database session,
the time, the caller's anonymised address, the current user and their role, the audit context."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from infra.wiring import Runtime
from vault.accounts.models import Role, User
from vault.accounts.service import user_for_access_token
from vault.audit.addresses import anonymise_address
from vault.audit.models import ActorKind
from vault.audit.service import AuditContext
from vault.errors import Forbidden, NotAuthenticated
from vault.notifications.interfaces import Notifier

# The largest number a database integer holds (SQLite's INTEGER, PostgreSQL's BIGINT): query
# parameters compared with one (a seq, an offset) stop here, so a larger one is a 422, not an
# overflow in the driver.
MAX_DB_INTEGER = 2**63 - 1

_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


NowDep = Annotated[datetime, Depends(get_now)]


def get_client(request: Request) -> str | None:
    """The caller's address, anonymised at once: the full address is never kept."""
    return anonymise_address(request.client.host if request.client else None)


ClientDep = Annotated[str | None, Depends(get_client)]


def get_notifier(runtime: RuntimeDep) -> Notifier:
    return runtime.notifier


NotifierDep = Annotated[Notifier, Depends(get_notifier)]


def user_of_token(session: Session, *, token: str, now: datetime) -> User:
    """The user of a live access token (NotAuthenticated otherwise), the lookup's transaction
    ended at once: its connection goes back to the pool instead of being held while the
    request waits for a worker thread or streams an upload (under load, held connections
    starved the pool). Committed, not rolled back, so the user stays loaded; a failed lookup
    is rolled back, since committing after a lost connection would raise over its error."""
    try:
        user = user_for_access_token(session, token=token, now=now)
    except BaseException:
        session.rollback()
        raise
    session.commit()
    return user


def optional_user(
    session: SessionDep, now: NowDep, token: Annotated[str | None, Depends(_bearer)]
) -> User | None:
    if token is None:
        return None
    return user_of_token(session, token=token, now=now)


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise NotAuthenticated("sign in first")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets only users of ``roles`` through (403 for the others)."""

    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden("your role may not do this")
        return user

    return check


PatientUser = Annotated[User, Depends(require_role(Role.PATIENT))]
CoordinatorUser = Annotated[User, Depends(require_role(Role.COORDINATOR))]
AnalystUser = Annotated[User, Depends(require_role(Role.ANALYST))]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]
CaseWorker = Annotated[User, Depends(require_role(Role.PATIENT, Role.COORDINATOR))]


def audit_context(
    user: Annotated[User | None, Depends(optional_user)], client: ClientDep
) -> AuditContext:
    """Who acts, for the audit chain: the signed-in user, or anonymous (partners say who they are
    through their link, so link routes build their own context)."""
    if user is None:
        return AuditContext(actor_kind=ActorKind.ANONYMOUS, actor_id=None, client=client)
    return AuditContext(actor_kind=ActorKind.USER, actor_id=user.id, client=client)


AuditDep = Annotated[AuditContext, Depends(audit_context)]
