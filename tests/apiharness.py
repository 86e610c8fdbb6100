"""The `api` fixture (registered in tests/conftest.py): the whole application in process
(starlette's TestClient), on SQLite and a local folder store under tmp_path, with a settable
clock, an in-memory notifier and a task queue that records what it is asked to send."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.app import create_app
from infra.settings import Settings
from infra.tasks import check_task
from infra.wiring import Runtime
from tests.databases import sqlite_with_tables
from tests.factories import NOW, identity
from vault.accounts.models import Role
from vault.accounts.service import create_user
from vault.notifications.interfaces import Notification
from vault.patients.service import register_patient

PASSWORD = "correct horse battery staple"


class MutableClock:
    """The application's clock in tests: starts at NOW, moves only when told to."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class MemoryNotifier:
    messages: list[Notification] = field(default_factory=list)

    def send(self, message: Notification) -> None:
        self.messages.append(message)


@dataclass
class RecordingTaskQueue:
    """The API's task queue in tests: ``sent`` lists each (task name, args) in order."""

    sent: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def enqueue(self, name: str, *args: str) -> None:
        check_task(name, args)
        self.sent.append((name, args))

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a test class for pytest

    id: uuid.UUID
    role: Role
    login: str
    password: str
    access_token: str
    patient_id: uuid.UUID | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class ApiHarness:
    client: TestClient
    runtime: Runtime
    clock: MutableClock
    notifier: MemoryNotifier
    tasks: RecordingTaskQueue

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.runtime.sessions() as session:
            yield session

    def user(
        self,
        role: Role,
        *,
        login: str | None = None,
        password: str = PASSWORD,
        patient_id: uuid.UUID | None = None,
    ) -> TestUser:
        """A user created directly in the database, then signed in through the API."""
        login = login or f"{role.value}-{uuid.uuid4().hex[:8]}@example.org"
        with self.session() as session:
            user = create_user(
                session,
                login=login,
                password=password,
                role=role,
                patient_id=patient_id,
                lookup_key=self.runtime.secrets.login_lookup_key,
                now=self.clock(),
            )
            session.commit()
            user_id = user.id
        token = self.sign_in(login, password)
        return TestUser(user_id, role, login, password, token, patient_id)

    def patient(self, *, name: str | None = None) -> TestUser:
        """A patient: a sealed patient record and a user account of role patient."""
        email = f"patient-{uuid.uuid4().hex[:8]}@example.org"
        with self.session() as session:
            who = identity(email=email) if name is None else identity(name=name, email=email)
            patient = register_patient(
                session=session, keys=self.runtime.key_store, identity=who, now=self.clock()
            )
            session.commit()
            patient_id = patient.id
        return self.user(Role.PATIENT, login=email, patient_id=patient_id)

    def sign_in(self, login: str, password: str) -> str:
        response = self.client.post("/auth/token", data={"username": login, "password": password})
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


def harness_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings of an installation under ``tmp_path`` whose SQLite database has every table."""
    return Settings(
        data_dir=tmp_path / "var",
        database_url=sqlite_with_tables(tmp_path / "api.db"),
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiHarness]:
    clock = MutableClock()
    notifier = MemoryNotifier()
    tasks = RecordingTaskQueue()
    app = create_app(harness_settings(tmp_path), clock=clock, notifier=notifier, tasks=tasks)
    runtime: Runtime = app.state.runtime
    with TestClient(app, base_url="http://testserver") as client:
        yield ApiHarness(
            client=client, runtime=runtime, clock=clock, notifier=notifier, tasks=tasks
        )
