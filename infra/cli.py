"""The ``medvault`` command: migrations, key rotation, readiness, and the web server.

Every failure ends as one line ``medvault: <reason>`` on stderr and a non-zero exit, never a
traceback: operators read this, and a traceback could carry values from the environment.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import Annotated, Any, Literal, NoReturn

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
from infra.logging import configure_logging, logging_config
from infra.malloc import tune_malloc
from infra.metrics import MULTIPROC_ENV, prepare_metrics_dir
from infra.settings import Settings, describe_settings_error
from infra.wiring import Runtime, build_runtime, readiness
from keys.errors import KeysError
from vault.accounts.models import STAFF_ROLES, Role
from vault.accounts.service import create_user, disable_user_by_login
from vault.audit.service import AuditContext, checkpoint_audit_log, verify_audit_log
from vault.clock import utcnow
from vault.errors import VaultError
from vault.retention.service import RetentionReport, run_retention
from vault.storage.sweep import DEFAULT_GRACE, sweep_storage

# Started by their import paths so that infra never imports api or workers (they depend on it).
ASGI_APP_FACTORY = "api.app:create_app"
CELERY_APP = "workers.app:celery_app"
# How long `medvault up` lets the worker finish its running tasks when it stops.
CHILD_STOP_SECONDS = 30.0

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
retention_app = typer.Typer(
    help="Retention: crypto-shredding of expired cases.", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")
storage_app = typer.Typer(
    help="The object store: orphaned objects, unfinished uploads.", no_args_is_help=True
)
app.add_typer(storage_app, name="storage")


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


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be shredded, change nothing.")
    ] = False,
) -> None:
    """Shred every case whose retention period is over (or, with --dry-run, list them)."""
    with _session() as (runtime, session):
        report = run_retention(
            session=session,
            store=runtime.blob_store,
            keys=runtime.key_store,
            retention_years=runtime.settings.retention_years,
            now=utcnow(),
            dry_run=dry_run,
        )
    for table in _retention_tables(report):
        rich.print(table)


@storage_app.command("sweep")
def storage_sweep(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted, change nothing.")
    ] = False,
    grace_hours: Annotated[
        float,
        typer.Option(
            min=0,
            help="Spare objects and uploads younger than this; below the time an upload takes,"
            " uploads in flight are deleted.",
        ),
    ] = DEFAULT_GRACE.total_seconds() / 3600,
) -> None:
    """Delete objects no database row owns and abort unfinished uploads (counts only)."""
    runtime = build_runtime(Settings())
    try:
        report = sweep_storage(
            sessions=runtime.sessions,
            store=runtime.blob_store,
            now=utcnow(),
            grace=timedelta(hours=grace_hours),
            dry_run=dry_run,
        )
    finally:
        runtime.close()
    rich.print(_as_table("storage sweep", report))


def _retention_tables(report: RetentionReport, *, limit: int = 50) -> list[Table]:
    """The report as tables: due or shredded cases, held cases, next due (ids only)."""

    def table(title: str, *columns: str) -> Table:
        # Wide enough that the titles never wrap, even with no rows.
        return Table(*columns, title=title, min_width=40, caption_justify="left")

    listed = report.due if report.dry_run else report.shredded
    done = table("would be shredded" if report.dry_run else "shredded", "case")
    for case_id in listed[:limit]:
        done.add_row(str(case_id))
    summary = f"{len(listed)} case(s)"
    if not report.dry_run:
        summary += f", {report.patients_erased} patient(s) erased"
    done.caption = summary + (f"; first {limit} listed" if len(listed) > limit else "")
    held = table("held (legal hold)", "case", "due", "hold reason", "held since")
    for entry in report.held[:limit]:
        held.add_row(
            str(entry.case_id), entry.due_at.isoformat(), entry.reason, entry.held_since.isoformat()
        )
    upcoming = table("next due", "case", "due")
    for due in report.next_due:
        upcoming.add_row(str(due.case_id), due.due_at.isoformat())
    title = "retention epochs past" if report.dry_run else "epoch root keys destroyed"
    epochs = table(title, "epoch")
    for epoch in report.epochs_destroyed:
        epochs.add_row(epoch)
    return [done, held, upcoming, epochs]


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
    configure_logging()
    # Before uvicorn imports the application (and prometheus_client) or starts a worker.
    os.environ[MULTIPROC_ENV] = str(prepare_metrics_dir(settings.metrics_dir, "serve"))
    tune_malloc()
    uvicorn.run(
        ASGI_APP_FACTORY,
        log_config=logging_config(),
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_workers,
        server_header=False,
        # uvicorn's own access log prints raw paths, and partner link tokens travel in paths:
        # the application writes its own, with route templates and anonymised addresses.
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


@app.command("worker")
def worker() -> None:
    """Run a Celery worker: it executes the queued tasks (`worker_concurrency` at a time)."""
    settings = Settings()
    configure_logging()
    # Before Celery imports the tasks (and prometheus_client) or forks its pool.
    os.environ[MULTIPROC_ENV] = str(prepare_metrics_dir(settings.metrics_dir, "worker"))
    _run_celery(_celery_args(settings, "worker"))


@app.command("beat")
def beat() -> None:
    """Run the Celery beat scheduler: it queues the daily and periodic tasks (run only one)."""
    settings = Settings()
    configure_logging()
    _run_celery(_celery_args(settings, "beat"))


@app.command("up")
def up() -> None:
    """Start a worker and beat as child processes, then serve the API; stop both on exit."""
    settings = Settings()
    configure_logging()
    children: list[subprocess.Popen[bytes]] = []
    try:
        children.append(_spawn_celery(settings, "worker"))
        children.append(_spawn_celery(settings, "beat"))
        serve()
    finally:
        for child in children:
            _stop_child(child)


def _celery_args(settings: Settings, command: Literal["worker", "beat"]) -> list[str]:
    """Arguments of the ``celery`` command for a worker or beat of this installation."""
    # --quiet: no startup banner, which Celery prints as plain text among the JSON log lines.
    common = ["--app", CELERY_APP, "--quiet"]
    if command == "worker":
        # Gossip and mingle broadcast to other workers: the embedded broker has no fan-out,
        # and medvault's workers need nothing from each other.
        return [*common, "worker", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return [
        *common,
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        str(settings.data_dir / "beat-schedule"),
    ]


def _run_celery(args: list[str]) -> None:
    from celery.bin.celery import celery  # only the worker commands need it

    celery.main(args=args, prog_name="medvault")


def _spawn_celery(
    settings: Settings, command: Literal["worker", "beat"]
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop(MULTIPROC_ENV, None)
    if command == "worker":  # its own metrics folder: the API's counts are not the worker's
        env[MULTIPROC_ENV] = str(prepare_metrics_dir(settings.metrics_dir, "worker"))
    # A session of its own: Ctrl-C reaches only `up`, which then stops the child in order, and
    # the whole group (the worker's pool processes too) can be ended together.
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments, no shell
        [sys.executable, "-m", "celery", *_celery_args(settings, command)],
        start_new_session=True,
        env=env,
    )


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a worker finishes its running tasks), then SIGKILL to whatever of its process
    group is left after ``CHILD_STOP_SECONDS``: no orphaned pool process survives ``up``."""
    if child.poll() is None:
        child.terminate()
    with suppress(subprocess.TimeoutExpired):
        child.wait(timeout=CHILD_STOP_SECONDS)
    with suppress(ProcessLookupError):  # the group is already empty
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _as_table(title: str, report: Any) -> Table | str:
    """A report dataclass as a two-column table; anything else as its own text."""
    if not dataclasses.is_dataclass(report) or isinstance(report, type):
        return str(report)
    table = Table("field", "value", title=title)
    for field in dataclasses.fields(report):
        table.add_row(field.name, str(getattr(report, field.name)))
    return table
