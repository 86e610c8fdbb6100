"""The ``medvault`` command: migrations, key rotation, readiness, and the web server.

Every failure ends as one line ``medvault: <reason>`` on stderr and a non-zero exit, never a
traceback: operators read this, and a traceback could carry values from the environment.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import rich
import sqlalchemy as sa
import typer
import uvicorn
from alembic.util import CommandError
from pydantic import ValidationError
from rich.table import Table
from sqlmodel import Session
from typer.main import get_command

from infra import migrate
from infra.malloc import tune_malloc
from infra.settings import Settings, describe_settings_error
from infra.wiring import Runtime, build_runtime, readiness
from keys.errors import KeysError
from vault.accounts.models import STAFF_ROLES, Role
from vault.accounts.service import create_user, disable_user_by_login
from vault.audit.service import AuditContext, checkpoint_audit_log, verify_audit_log
from vault.clock import utcnow
from vault.errors import VaultError

# Started by its import path so that infra never imports api (api depends on infra).
ASGI_APP_FACTORY = "api.app:create_app"

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class _OneLineErrorsTyper(typer.Typer):
    """A Typer app whose console script turns every expected failure into one stderr line."""

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        try:
            # standalone_mode=False: click hands usage errors back instead of printing a box.
            kwargs["standalone_mode"] = False
            result = get_command(self).main(*args, **kwargs)
        except typer.TyperException as error:  # usage errors (typer vendors click)
            if not error.format_message():  # no_args_is_help: the help was just printed
                sys.exit(error.exit_code)
            _fail(error.format_message(), exit_code=error.exit_code)
        except typer.Abort:
            _fail("interrupted", exit_code=EXIT_INTERRUPTED)
        except ValidationError as error:
            _fail(describe_settings_error(error))
        except sa.exc.OperationalError:
            _fail("database unreachable")
        except (KeysError, VaultError) as error:
            # Their messages are written to be safe to show (no key material, no personal data).
            _fail(str(error) or type(error).__name__)
        except CommandError as error:
            _fail(f"migrations: {error}")
        except OSError as error:
            _fail(f"{error.strerror or type(error).__name__}: {error.filename or ''}".rstrip(": "))
        sys.exit(result if isinstance(result, int) else 0)


@contextmanager
def _session() -> Iterator[tuple[Runtime, Session]]:
    """The runtime built from the settings and one database session; both closed after."""
    runtime = build_runtime(Settings())
    try:
        with runtime.sessions() as session:
            yield runtime, session
    finally:
        runtime.close()


def _fail(reason: str, *, exit_code: int = EXIT_FAILURE) -> NoReturn:
    first_line = reason.strip().splitlines()[0] if reason.strip() else "failed"
    print(f"medvault: {first_line}", file=sys.stderr)
    sys.exit(exit_code or EXIT_FAILURE)


app = _OneLineErrorsTyper(
    name="medvault",
    help="medvault: a secure intermediary for medical documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="Root keys and case keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
user_app = typer.Typer(help="User accounts (staff).", no_args_is_help=True)
app.add_typer(user_app, name="user")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest migration (safe to run again)."""
    settings = Settings()
    migrate.upgrade(settings.database_url)
    rich.print("[green]database is up to date[/green]")


@db_app.command("check")
def db_check() -> None:
    """Compare the database with the models; exit 1 on any difference."""
    settings = Settings()
    differences = migrate.check(settings.database_url)
    if differences:
        for difference in differences:
            rich.print(f"[red]-[/red] {difference}")
        _fail(f"{len(differences)} difference(s) between the database and the models")
    rich.print("[green]database matches the models[/green]")


@db_app.command("revision")
def db_revision(message: str = typer.Argument(help="What the migration does.")) -> None:
    """Autogenerate a migration from the models' changes (developers; see `make migration`)."""
    path = migrate.make_revision(message)
    rich.print(f"wrote {path}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Rotate the active root key and re-wrap case keys under it."""
    runtime = build_runtime(Settings())
    try:
        report = runtime.key_store.rotate(runtime.sessions, now=utcnow())
    finally:
        runtime.close()
    rich.print(_as_table("key rotation", report))


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit chain and its signed checkpoints; exit 1 at the first broken event."""
    with _session() as (runtime, session):
        report = verify_audit_log(
            session,
            store=runtime.blob_store,
            signing_key=runtime.secrets.audit_signing_key,
            audit=AuditContext.SYSTEM,
            now=utcnow(),
        )
        session.commit()
    if not report.ok:
        _fail(f"audit chain broken at event {report.first_broken_seq}: {report.reason}")
    rich.print(
        f"audit chain ok: {report.events_checked} events, {report.checkpoints_checked} checkpoints"
    )


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the audit chain's head and store the checkpoint in the object store."""
    with _session() as (runtime, session):
        checkpoint = checkpoint_audit_log(
            session,
            store=runtime.blob_store,
            signing_key=runtime.secrets.audit_signing_key,
            audit=AuditContext.SYSTEM,
            now=utcnow(),
        )
        session.commit()
    rich.print(f"audit checkpoint written at event {checkpoint.seq}")


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="The new user's login.")],
    role: Annotated[Role, typer.Option(help="coordinator, analyst or admin.")],
) -> None:
    """Create a user; the password comes from stdin when piped, else from a hidden prompt."""
    if role not in STAFF_ROLES:
        _fail("patients register themselves or are invited by a coordinator")
    password = _read_password()
    with _session() as (runtime, session):
        user = create_user(
            session,
            lookup_key=runtime.secrets.login_lookup_key,
            login=name,
            role=role,
            password=password,
            now=utcnow(),
            audit=AuditContext.SYSTEM,
        )
    rich.print(f"created {role} user {user.id}")


@user_app.command("disable")
def user_disable(name: Annotated[str, typer.Argument(help="The user's login.")]) -> None:
    """Disable a user; their tokens stop working at once."""
    with _session() as (runtime, session):
        user = disable_user_by_login(
            session,
            lookup_key=runtime.secrets.login_lookup_key,
            login=name,
            now=utcnow(),
            audit=AuditContext.SYSTEM,
        )
    rich.print(f"disabled user {user.id}")


def _read_password() -> str:
    """One line from stdin when it is piped; otherwise a hidden prompt, asked twice.

    Never an argument: arguments end up in shell history and the process list.
    """
    if not sys.stdin.isatty():
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("check")
def check() -> None:
    """Check that the database, blob store and key provider answer; exit 1 if one does not."""
    runtime = build_runtime(Settings())
    try:
        status = readiness(runtime)
    finally:
        runtime.close()
    table = Table("part", "status", title="readiness")
    for part, ready in status.items():
        table.add_row(part, "[green]ok[/green]" if ready else "[red]down[/red]")
    rich.print(table)
    down = [part for part, ready in status.items() if not ready]
    if down:
        _fail(f"not ready: {', '.join(down)} down")


@app.command("serve")
def serve() -> None:
    """Run the web application with uvicorn on the configured host and port."""
    settings = Settings()
    tune_malloc()
    uvicorn.run(
        ASGI_APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        server_header=False,
        # uvicorn's own access log prints raw paths, and partner link tokens travel in paths:
        # the application writes its own, with route templates and anonymised addresses.
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


def _as_table(title: str, report: Any) -> Table | str:
    """A report dataclass as a two-column table; anything else as its own text."""
    if not dataclasses.is_dataclass(report) or isinstance(report, type):
        return str(report)
    table = Table("field", "value", title=title)
    for field in dataclasses.fields(report):
        table.add_row(field.name, str(getattr(report, field.name)))
    return table
