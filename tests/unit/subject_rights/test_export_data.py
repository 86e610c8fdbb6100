"""The personal-data document of an export: every personal column of every table that can hold
something about a patient appears in it (the model walk), nothing about anyone else does, it
validates against its published schema, and collecting it changes nothing."""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlmodel import Session, SQLModel, col, select

import infra.models  # noqa: F401 - every table on SQLModel.metadata
from tests.factories import (
    NOW,
    RETENTION_YEARS,
    SubjectWorld,
    Vault,
    local_vault,
    make_patient,
    make_subject_world,
)
from vault.accounts import passwords
from vault.accounts.throttle import account_key
from vault.audit.models import ActorKind, AuditEvent
from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseStatus
from vault.cases.service import complete_case, open_case, read_case, unsafe_case_outcome
from vault.clock import as_utc
from vault.documents.models import Document
from vault.documents.service import unsafe_document_filename
from vault.errors import KeyDestroyed, NotFound
from vault.patients.models import Patient
from vault.patients.service import unsafe_patient_identity
from vault.subject_rights.export_data import (
    SCHEMA_VERSION,
    SubjectData,
    subject_data_schema,
    unsafe_collect_subject_data,
)
from vault.subject_rights.export_schema import Actor, Source, archive_path, safe_file_name
from vault.surveys.models import Survey
from vault.surveys.service import unsafe_survey_free_text


class Kept(enum.Enum):
    """How a column of a patient's row reaches the export document."""

    EXPORTED = "its value is in the document"
    SEALED = "its unsealed value is in the document"
    OWN_ID = "its value is in the document when it is one of the patient's own ids"
    MAPPED = "exported in another form (checked by its own test)"
    IMPLIED = "whose row it is: said by where the row is listed"
    EXCLUDED = "deliberately left out (the comment says why)"


EXP, SEAL, OWN, MAP, IMPL, EXCL = (
    Kept.EXPORTED,
    Kept.SEALED,
    Kept.OWN_ID,
    Kept.MAPPED,
    Kept.IMPLIED,
    Kept.EXCLUDED,
)

# Every table that can hold a row of a patient, column by column. A new column, or a new table
# reaching a patient's rows, fails test_every_column_is_classified until it is exported or
# excluded here: the export cannot silently fall behind the models.
COLUMNS: dict[str, dict[str, Kept]] = {
    "patients": {
        "id": EXP,
        "key_id": EXCL,  # key management, not data about the patient
        "name_sealed": SEAL,
        "birth_date_sealed": SEAL,
        "email_sealed": SEAL,
        "phone_sealed": SEAL,
        "sex_sealed": SEAL,
        "country_sealed": SEAL,
        "created_at": EXP,
        "erased_at": EXCL,  # an erased patient has no export (KeyDestroyed)
    },
    "users": {
        "id": EXP,
        "role": EXP,
        "login_digest": EXCL,  # keyed one-way digest of the login (the e-mail, exported as such)
        "password_hash": EXCL,  # argon2id: reveals nothing, would only help an attacker
        "patient_id": IMPL,
        "created_at": EXP,
        "disabled_at": EXP,
        "email_confirmed_at": EXP,
    },
    "auth_tokens": {
        "id": EXP,
        "digest": EXCL,  # one-way digest of a bearer token
        "user_id": IMPL,
        "kind": EXP,
        "family_id": EXP,
        "expires_at": EXP,
        "revoked_at": EXP,
        "created_at": EXP,
    },
    "one_time_tokens": {
        "id": EXP,
        "digest": EXCL,  # one-way digest of a mailed code
        "user_id": IMPL,
        "purpose": EXP,
        "expires_at": EXP,
        "used_at": EXP,
        "created_at": EXP,
    },
    "login_throttles": {
        "key": EXCL,  # "account:" and the login digest
        "failures": EXP,
        "window_started_at": EXP,
        "last_failure_at": EXP,
        "locked_until": EXP,
    },
    "cases": {
        "id": EXP,
        "patient_id": IMPL,
        "key_id": EXCL,  # key management
        "status": EXP,
        "created_at": EXP,
        "treatment_completed_at": EXP,
        "shredded_at": EXP,
        "legal_hold_at": EXP,
        "legal_hold_reason": EXP,
        "outcome_sealed": SEAL,
        "outcome_recorded_at": EXP,
    },
    "documents": {
        "id": EXP,
        "case_id": EXP,
        "kind": EXP,
        "media_type": EXP,
        "filename_sealed": SEAL,
        "size": EXP,
        "sha256": EXP,
        "object_key": EXCL,  # where the ciphertext is stored
        "key_id": EXCL,  # key management
        "wrapped_dek": EXCL,  # key material (wrapped)
        "frame_size": EXCL,  # a parameter of the encryption format
        "created_at": EXP,
        "shredded_at": EXP,
    },
    "consents": {
        "id": EXP,
        "patient_id": IMPL,
        "case_id": EXP,
        "text_version": EXP,
        "text_sha256": EXP,
        "given_at": EXP,
        "withdrawn_at": EXP,
    },
    "restrictions": {
        "id": EXP,
        "patient_id": IMPL,
        "case_id": EXP,
        "placed_at": EXP,
        "lifted_at": EXP,
        "reason": EXP,
    },
    "surveys": {
        "id": EXP,
        "case_id": EXP,
        "patient_id": IMPL,
        "version": EXP,
        "scores": EXP,
        "free_text_sealed": SEAL,
        "answered_at": EXP,
        "qa_consent": EXP,
        "qa_consent_withdrawn_at": EXP,
    },
    "qa_objections": {"patient_id": IMPL, "objected_at": EXP},
    "interest_objections": {"patient_id": IMPL, "objected_at": EXP},
    "transfers": {
        "id": EXP,
        "case_id": EXP,
        "partner_id": EXP,
        "purpose": EXP,
        "legal_basis": EXP,
        "consent_id": EXP,
        "created_by": EXCL,  # which coordinator: the export names the role, not the employee
        "created_at": EXP,
        "revoked_at": EXP,
    },
    "transfer_documents": {"transfer_id": IMPL, "document_id": EXP, "position": EXP},
    "links": {
        "id": EXP,
        "transfer_id": IMPL,
        "token_digest": EXCL,  # one-way digest of the link's token
        "code_hash": EXCL,  # argon2id of the access code
        "created_at": EXP,
        "expires_at": EXP,
        "max_downloads": EXP,
        "downloads": EXP,
        "max_code_attempts": EXP,
        "failed_codes": EXP,
        "locked_at": EXP,
    },
    "link_downloads": {"id": EXP, "link_id": IMPL, "document_id": EXP, "at": EXP},
    "rights_requests": {
        "id": EXP,
        "patient_id": IMPL,
        "right": EXP,
        "status": EXP,
        "received_at": EXP,
        "due_at": EXP,
        "completed_at": EXP,
    },
    "rights_retained_parts": {
        "request_id": IMPL,
        "case_id": EXP,
        "ground": EXP,
        "reason": EXP,
        "until": EXP,
    },
    "rights_erased_cases": {"case_id": EXP, "request_id": IMPL},
    "subject_exports": {
        "id": EXP,
        "request_id": EXP,
        "patient_id": IMPL,
        "status": EXP,
        "key_id": EXCL,  # key management
        "build_id": EXCL,  # which worker run owns the build: bookkeeping
        "object_key": EXCL,  # where the ciphertext is stored
        "size": EXP,
        "created_at": EXP,
        "started_at": EXP,
        "ready_at": EXP,
        "expires_at": EXP,
        "deleted_at": EXP,
    },
    "audit_events": {
        "seq": EXP,
        "at": EXP,
        "action": EXP,
        "actor_kind": MAP,  # as the actor's role (test_processing_log_names_roles_not_people)
        "actor_id": EXCL,  # which account acted: the role is exported, not the employee
        "client": EXCL,  # the actor's network, anonymised; for staff actions, the staff's
        "patient_id": EXCL,  # you, or the other patient of a refused attempt: never exported
        "case_id": OWN,
        "document_id": OWN,
        "transfer_id": OWN,
        "link_id": OWN,
        "partner_id": EXP,
        "user_id": OWN,
        "legal_basis": EXP,
        "purpose": EXP,
        "outcome": EXP,
        "prev_hash": EXCL,  # the chain's integrity, not data about anyone
        "hash": EXCL,
    },
    "key_records": {  # the patient's and their cases' keys: key management, nothing about them
        "id": EXCL,
        "kind": EXCL,
        "root_key_id": EXCL,
        "wrapped": EXCL,
        "created_at": EXCL,
        "destroyed_at": EXCL,
        "destroy_reason": EXCL,
        "rewrapped_at": EXCL,
    },
}

# Tables that never hold a row of a patient.
UNRELATED = {
    "root_keys": "the KMS keys that wrap everyone's keys",
    "audit_head": "the head of the audit chain",
    "partners": "the recipients; a transfer's recipient is exported with the transfer",
    "extract_scopes": "pseudonym scopes of QA extracts",
    "extracts": "pseudonymised QA extracts: no row links them to a patient",
}

# Columns that name a patient's object without a foreign key: a table with one of them must
# say here how its rows are found, or be unrelated.
RELATING_NAMES = {"patient_id", "case_id", "user_id", "document_id", "transfer_id", "link_id"}
RELATED_WITHOUT_FOREIGN_KEY = {"audit_events", "key_records", "login_throttles"}


# -- finding a patient's rows ------------------------------------------------------------------


Row = dict[str, Any]


def tables() -> dict[str, sa.Table]:
    return {table.name: table for table in SQLModel.metadata.sorted_tables}


def patient_rows(session: Session, patient_id: uuid.UUID) -> dict[str, list[Row]]:
    """Every row of the patient: their patients row, every row reaching it through foreign
    keys (transitively), and the rows related without a foreign key."""
    everything = tables()
    owned: dict[str, dict[tuple[Any, ...], Row]] = {"patients": {}}
    patients = everything["patients"]
    for row in session.execute(sa.select(patients).where(patients.c.id == patient_id)).mappings():
        owned["patients"][(row["id"],)] = dict(row)
    changed = True
    while changed:
        changed = False
        for table in everything.values():
            for foreign_key in table.foreign_keys:
                parent = foreign_key.column.table.name
                if parent not in owned:
                    continue
                values = {row[foreign_key.column.name] for row in owned[parent].values()}
                found = session.execute(
                    sa.select(table).where(foreign_key.parent.in_(values))
                ).mappings()
                for row in found:
                    key = tuple(row[c.name] for c in table.primary_key.columns)
                    if key not in owned.setdefault(table.name, {}):
                        owned[table.name][key] = dict(row)
                        changed = True
    rows = {name: list(found.values()) for name, found in owned.items()}
    rows.update(_related_without_foreign_key(session, patient_id, rows))
    return rows


def _related_without_foreign_key(
    session: Session, patient_id: uuid.UUID, rows: dict[str, list[Row]]
) -> dict[str, list[Row]]:
    everything = tables()
    cases = [row["id"] for row in rows.get("cases", [])]
    accounts = [row["id"] for row in rows.get("users", [])]
    events = everything["audit_events"].c
    key_ids = [
        row["key_id"]
        for name in ("patients", "cases", "documents", "subject_exports")
        for row in rows.get(name, [])
        if row["key_id"] is not None
    ]
    throttle_keys = [account_key(row["login_digest"]) for row in rows.get("users", [])]
    queries = {
        "audit_events": sa.select(everything["audit_events"]).where(
            sa.or_(
                events.patient_id == patient_id,
                events.case_id.in_(cases),
                events.user_id.in_(accounts),
                sa.and_(events.actor_kind == ActorKind.USER.value, events.actor_id.in_(accounts)),
            )
        ),
        "key_records": sa.select(everything["key_records"]).where(
            everything["key_records"].c.id.in_(key_ids)
        ),
        "login_throttles": sa.select(everything["login_throttles"]).where(
            everything["login_throttles"].c.key.in_(throttle_keys)
        ),
    }
    return {
        name: [dict(row) for row in session.execute(query).mappings()]
        for name, query in queries.items()
    }


# -- comparing values --------------------------------------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def normal(value: Any) -> tuple[str, Any]:
    """A value of the database or of the JSON document, comparable with the other side."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, datetime):
        return ("time", as_utc(value))
    if isinstance(value, date):
        return ("date", value)
    if isinstance(value, uuid.UUID | Decimal | enum.Enum):
        return normal(value.value if isinstance(value, enum.Enum) else str(value))
    if isinstance(value, str) and _DATE.match(value):
        return ("date", date.fromisoformat(value))
    if isinstance(value, str) and _TIME.match(value):
        return ("time", as_utc(datetime.fromisoformat(value)))
    assert isinstance(value, str), f"no comparison for {type(value)}"
    return ("text", value)


def leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield normal(key)  # the question ids of survey scores are keys
            yield from leaves(value)
    elif isinstance(node, list):
        for item in node:
            yield from leaves(item)
    elif node is not None:
        yield normal(node)


def objects(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from objects(item)


def expected_values(value: Any) -> list[Any]:
    """What one column value must show up as: a JSON object's keys and values count."""
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    return [value]


# -- the world ---------------------------------------------------------------------------------


@dataclass
class Exported:
    world: SubjectWorld
    other: SubjectWorld | None  # patient B, where a test needs someone else
    data: SubjectData
    document: dict[str, Any]
    text: str


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2's cost is not what these tests are about (it is most of a world's making)."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher.from_parameters(CHEAPEST))


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


@pytest.fixture
def subject(vault: Vault) -> Exported:
    """Patient A alone, and their export collected."""
    world = make_subject_world(vault)
    data = collect(vault, world.patient.id)
    document = data.model_dump(mode="json")
    return Exported(world, None, data, document, json.dumps(document, ensure_ascii=False))


@pytest.fixture
def exported(vault: Vault) -> Exported:
    """Patient A (the subject) and patient B (someone else, same recipient), each having
    tried to read the other's case, and A's export collected."""
    world = make_subject_world(vault)
    other = make_subject_world(
        vault,
        name="Max Beispiel-Andersperson",
        email="max.beispiel@example.net",
        phone="+43 1 9999999",
        filename="Laborwerte Beispiel.pdf",
        comment="Ein ganz anderer Kommentar von Max.",
        partner=world.partner,
    )
    for who, case in ((world, other.cases["open"]), (other, world.cases["open"])):
        with pytest.raises(NotFound):
            read_case(
                session=vault.session,
                case_id=case.id,
                patient_id=who.patient.id,
                now=NOW,
                audit=AuditContext(ActorKind.USER, who.account.id, "198.51.100.0"),
            )
    data = collect(vault, world.patient.id)
    document = data.model_dump(mode="json")
    return Exported(world, other, data, document, json.dumps(document, ensure_ascii=False))


def collect(vault: Vault, patient_id: uuid.UUID) -> SubjectData:
    return unsafe_collect_subject_data(
        session=vault.session,
        keys=vault.keys,
        patient_id=patient_id,
        retention_years=RETENTION_YEARS,
        now=NOW,
    )


# -- the model walk ----------------------------------------------------------------------------


def test_every_column_is_classified(subject: Exported, vault: Vault) -> None:
    everything = tables()
    assert set(everything) == set(COLUMNS) | set(UNRELATED), (
        "classify new tables in COLUMNS or UNRELATED"
    )
    for name, table in everything.items():
        if name in COLUMNS:
            assert set(table.c.keys()) == set(COLUMNS[name]), f"classify the columns of {name}"
        relating = RELATING_NAMES & set(table.c.keys())
        unrelated_by_key = not any(fk.parent.name in relating for fk in table.foreign_keys)
        if relating and unrelated_by_key and name not in RELATED_WITHOUT_FOREIGN_KEY:
            assert name in UNRELATED, f"say how the rows of {name} relate to a patient"
    rows = patient_rows(vault.session, subject.world.patient.id)
    assert set(rows) <= set(COLUMNS), f"unclassified tables hold a patient's rows: {set(rows)}"
    # The world has a row in every table that can hold one (else the walk proves nothing).
    assert {name for name, found in rows.items() if found} == set(COLUMNS)


def test_every_personal_column_appears_with_its_row(exported: Exported, vault: Vault) -> None:
    session = vault.session
    rows = patient_rows(session, exported.world.patient.id)
    own = {
        value
        for name in ("cases", "documents", "transfers", "links", "users")
        for value in (row["id"] for row in rows[name])
    }
    nodes = list(objects(exported.document))
    everywhere = set(leaves(exported.document))
    missing = []
    for name, found in rows.items():
        table = tables()[name]
        anchors = [c.name for c in table.primary_key.columns if COLUMNS[name][c.name] is EXP]
        for row in found:
            wanted = []
            for column, kept in COLUMNS[name].items():
                value = row[column]
                if kept is SEAL:
                    wanted += unsealed(session, vault, name, column, row)
                elif kept is OWN and value in own:
                    wanted.append(value)
                elif kept is EXP and value not in (None, b"", ""):
                    wanted += expected_values(value)
            expected = {normal(value) for value in wanted}
            if anchors:
                anchor = normal(row[anchors[0]])
                homes = [set(leaves(n)) for n in nodes if anchor in set(leaves(_flat(n)))]
            else:
                homes = [everywhere]
            lacking = min((expected - home for home in homes), key=len, default=expected)
            if lacking:
                missing.append((name, row.get("id"), sorted(map(str, lacking))))
    assert missing == []


def _flat(node: dict[str, Any]) -> dict[str, Any]:
    """An object's own values, without what is nested in it."""
    return {k: v for k, v in node.items() if not isinstance(v, dict | list)}


def unsealed(session: Session, vault: Vault, table: str, column: str, row: Row) -> list[Any]:
    """The plaintext of a sealed column, through the vault's own readers; nothing for data
    destroyed with its case (its key is gone: there is nothing left to export)."""
    if row[column] in (None, b""):
        return []
    if table == "patients":
        patient = session.get(Patient, row["id"])
        assert patient is not None
        identity = unsafe_patient_identity(session=session, keys=vault.keys, patient=patient)
        field = column.removesuffix("_sealed")
        return [getattr(identity, field)]
    case_id = row["id"] if table == "cases" else row["case_id"]
    case = session.get(Case, case_id)
    assert case is not None
    if case.status in (CaseStatus.SHREDDING, CaseStatus.SHREDDED):
        return []
    if table == "cases":
        outcome = unsafe_case_outcome(session=session, keys=vault.keys, case=case)
        assert outcome is not None
        return [*outcome.diagnosis_codes, *outcome.model_dump(exclude={"diagnosis_codes"}).values()]
    if table == "documents":
        document = session.get(Document, row["id"])
        assert document is not None
        return [unsafe_document_filename(session=session, keys=vault.keys, document=document)]
    if table == "surveys":
        survey = session.get(Survey, row["id"])
        assert survey is not None
        return [unsafe_survey_free_text(session=session, keys=vault.keys, survey=survey)]
    raise AssertionError(f"say how {table}.{column} is unsealed")


def test_nothing_about_anyone_else(exported: Exported, vault: Vault) -> None:
    session = vault.session
    mine = patient_rows(session, exported.world.patient.id)
    theirs = patient_rows(session, exported.other.patient.id)
    shared = {id(row) for found in mine.values() for row in found}
    my_keys = {
        (name, tuple(row[c.name] for c in tables()[name].primary_key.columns))
        for name, found in mine.items()
        for row in found
    }
    their_ids = {
        str(row[c.name])
        for name, found in theirs.items()
        for row in found
        if (name, tuple(row[c.name] for c in tables()[name].primary_key.columns)) not in my_keys
        for c in tables()[name].columns
        if isinstance(row[c.name], uuid.UUID) and id(row) not in shared
    }
    their_ids -= {str(exported.world.partner.id)}  # the recipient both share is not a patient
    other = exported.other
    assert other is not None
    planted = [other.identity.name, other.identity.email, other.filename, other.comment]
    assert other.identity.phone is not None
    planted.append(other.identity.phone)
    assert their_ids
    assert [value for value in [*their_ids, *planted] if value in exported.text] == []


def test_refused_attempts_keep_only_what_is_yours(exported: Exported) -> None:
    log = exported.data.processing_log
    theirs = [e for e in log if e.actor is Actor.ANOTHER_PATIENT]
    assert [(e.action, e.outcome, e.case_id) for e in theirs] == [
        ("case.read", "denied", exported.world.cases["open"].id)
    ]
    mine = [e for e in log if e.action == "case.read" and e.actor is Actor.YOU]
    assert [(e.outcome, e.case_id) for e in mine] == [("denied", None)]


# -- what the document says --------------------------------------------------------------------


def test_profile_accounts_and_sources(subject: Exported) -> None:
    data, world = subject.data, subject.world
    assert data.schema_version == SCHEMA_VERSION
    assert data.profile.id == world.patient.id
    assert (data.profile.name, data.profile.email, data.profile.phone) == (
        world.identity.name,
        world.identity.email,
        world.identity.phone,
    )
    assert (data.profile.sex, data.profile.country) == (world.identity.sex, "AT")
    assert data.profile.source is Source.COORDINATOR  # invited, never corrected
    [account] = data.accounts
    assert account.id == world.account.id
    assert {s.kind for s in account.sessions} == {"access", "refresh"}
    assert [c.purpose for c in account.emailed_codes] == ["accept-invitation"]
    assert account.failed_sign_ins is not None
    assert account.failed_sign_ins.failures == 1
    by_name = {d.filename: d for d in data.documents}
    assert by_name[world.filename].source is Source.YOU
    assert by_name["rechnung.png"].source is Source.COORDINATOR
    completed = next(c for c in data.cases if c.id == world.cases["completed"].id)
    assert completed.source is Source.YOU
    assert completed.outcome is not None
    assert completed.outcome.source is Source.COORDINATOR
    assert {t.source for t in data.transfers} == {Source.COORDINATOR}
    downloads = [d for t in data.transfers if t.link for d in t.link.downloads]
    assert [(d.document_id, d.source) for d in downloads] == [
        (world.documents[0].id, Source.PARTNER)
    ]


def test_a_self_registered_patient_is_the_source_of_their_profile(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    data = collect(vault, patient.id)
    assert data.profile.source is Source.YOU
    assert data.cases == []
    assert data.profile.retention_until is None


def test_shredded_case_is_a_tombstone(subject: Exported) -> None:
    data, world = subject.data, subject.world
    shredded = world.cases["shredded"]
    [tombstone] = [c for c in data.cases if c.id == shredded.id]
    assert tombstone.status is CaseStatus.SHREDDED
    assert tombstone.shredded_at is not None
    assert tombstone.outcome is None
    assert tombstone.retention_until is None
    assert all(d.case_id != shredded.id for d in data.documents)
    [gone] = data.shredded_documents
    assert gone.case_id == shredded.id
    assert gone.shredded_at is not None
    [survey] = [s for s in data.surveys if s.case_id == shredded.id]
    assert survey.comment is None
    assert "this comment goes with its case" not in subject.text


def test_consents_carry_their_text(subject: Exported) -> None:
    from vault.consents.texts import CONSENT_TEXTS

    consents = subject.data.consents
    assert len(consents) == 3
    assert sum(c.withdrawn_at is not None for c in consents) == 1
    for consent in consents:
        text = CONSENT_TEXTS[consent.text_version]
        assert (consent.text, consent.text_sha256) == (text.text, text.sha256)


def test_retention_dates(subject: Exported) -> None:
    data, world = subject.data, subject.world
    due = as_utc(world.cases["completed"].treatment_completed_at or NOW).replace(
        year=NOW.year + RETENTION_YEARS
    )
    completed = world.cases["completed"].id
    assert {c.id: c.retention_until for c in data.cases} == {
        world.cases["shredded"].id: None,
        completed: due,
        world.cases["open"].id: None,  # open, and held
    }
    for document in data.documents:
        assert document.retention_until == (due if document.case_id == completed else None)
    assert {t.retention_until for t in data.transfers if t.case_id == completed} == {due}
    # An open case keeps the identity without a date; exports go when they expire.
    assert data.profile.retention_until is None
    assert [e.retention_until for e in data.exports] == [e.expires_at for e in data.exports]
    assert data.exports[0].expires_at is not None


def test_identity_goes_with_the_last_case(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    ends = []
    for days in (10, 40):
        case = open_case(
            session=vault.session,
            keys=vault.keys,
            patient_id=patient.id,
            now=NOW,
            audit=AuditContext.SYSTEM,
        )
        completed_at = NOW + timedelta(days=days)
        complete_case(
            session=vault.session,
            keys=vault.keys,
            case_id=case.id,
            completed_at=completed_at,
            retention_years=RETENTION_YEARS,
            now=completed_at,
            audit=AuditContext.SYSTEM,
        )
        ends.append(completed_at.replace(year=completed_at.year + RETENTION_YEARS))
    data = collect(vault, patient.id)
    assert data.profile.retention_until == max(ends)


def test_processing_log_names_roles_not_people(subject: Exported) -> None:
    world = subject.world
    log = subject.data.processing_log
    by_action = {(e.action, e.actor) for e in log}
    assert {
        ("patient.invite", Actor.COORDINATOR),
        ("auth.login", Actor.YOU),
        ("legal_hold.place", Actor.PRIVACY_OFFICER),
        ("link.download", Actor.PARTNER),
        ("case.shred", Actor.SYSTEM),
    } <= by_action
    staff = {str(world.coordinator.id)}
    assert not any(value in subject.text for value in staff)
    assert [e.seq for e in log] == sorted(e.seq for e in log)


# -- the published schema ----------------------------------------------------------------------


def test_the_document_validates_against_its_published_schema(subject: Exported) -> None:
    schema = subject_data_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(subject.document)) == []
    broken = {**subject.document, "profile": {**subject.document["profile"], "extra": 1}}
    assert list(validator.iter_errors(broken)) != []


def test_every_field_of_the_schema_is_described() -> None:
    schema = subject_data_schema()
    assert schema["$id"].startswith("urn:medvault:")
    assert "2020-12" in schema["$schema"]
    undescribed = [
        f"{name}.{field}"
        for name, definition in [("SubjectData", schema), *schema["$defs"].items()]
        for field, spec in definition.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undescribed == []
    assert all(d.get("description") for d in schema["$defs"].values())


# -- the rules of collecting -------------------------------------------------------------------


def test_collecting_only_reads(subject: Exported, vault: Vault) -> None:
    session = vault.session
    events = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    collect(vault, subject.world.patient.id)
    assert not session.new
    assert not session.dirty
    assert not session.deleted
    session.rollback()  # whatever it might have flushed is gone now: the count must agree
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == events


def test_an_erased_patient_has_nothing_left_to_export(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    vault.keys.destroy(vault.session, patient.key_id, reason="test", now=NOW)
    patient.erased_at = NOW
    vault.session.add(patient)
    vault.session.commit()
    with pytest.raises(KeyDestroyed):
        collect(vault, patient.id)


def test_an_unknown_patient_is_not_found(vault: Vault) -> None:
    with pytest.raises(NotFound):
        collect(vault, uuid.uuid4())


def test_documents_are_numbered_for_the_archive(subject: Exported) -> None:
    paths = [d.archive_path for d in subject.data.documents]
    assert len(set(paths)) == len(paths) == 3
    assert all(re.fullmatch(r"documents/\d{3}-[A-Za-z0-9._-]+", path) for path in paths)
    record = next(d for d in subject.data.documents if d.filename == subject.world.filename)
    assert record.archive_path.endswith("-passwd.pdf")


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("befund.pdf", "befund.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\erika\\scan.png", "scan.png"),
        ("..", "document"),
        ("", "document"),
        (".hidden", "hidden"),
        ("a..b...pdf", "a.b.pdf"),
        ("Röntgen Müller.png", "Rontgen_Muller.png"),
        ("名前.pdf", "pdf"),
        ("x" * 300 + ".pdf", "x" * 96 + ".pdf"),
    ],
)
def test_safe_file_names(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe
    path = archive_path(7, name)
    assert path == f"documents/007-{safe}"
    assert ".." not in path
    assert path.count("/") == 1


def test_documents_of_a_case_being_shredded_are_left_out(vault: Vault) -> None:
    world = make_subject_world(vault)
    case = vault.session.get(Case, world.cases["completed"].id)
    assert case is not None
    case.status = CaseStatus.SHREDDING  # a shred's committed intent: readers answer Gone
    vault.session.add(case)
    vault.session.commit()
    data = collect(vault, world.patient.id)
    assert all(d.case_id != case.id for d in data.documents)
    assert {d.id for d in data.shredded_documents} >= {d.id for d in world.documents}
    assert all(s.comment is None for s in data.surveys if s.case_id == case.id)
    documents = vault.session.exec(select(Document).where(col(Document.case_id) == case.id))
    assert all(d.shredded_at is None for d in documents)  # collecting changed nothing
