"""Reading the source rows of an extract in batches: core SELECTs, keys unwrapped per batch.

Each batch runs in its own short session (on SQLite every transaction holds the write lock),
ordered by case id and continued after the last id seen (keyset pagination), so a build never
holds a transaction open while it works and memory stays bounded by the batch size.
"""

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from keys.models import KeyKind, KeyRecord
from keys.store import KeyStore, WrappedKey, live_key_condition
from vault.cases.models import Case, CaseOutcome, CaseStatus
from vault.cases.service import _outcome_context
from vault.consents.models import Restriction
from vault.crypto.fields import open_field
from vault.keyring import translated_key_errors
from vault.partners.models import Partner
from vault.patients.models import Patient, Sex
from vault.patients.service import unsafe_patient_field_opener
from vault.read_ahead import read_ahead
from vault.surveys.models import QaObjection, Survey
from vault.transfers.models import Transfer

DEFAULT_BATCH_SIZE = 5000


@dataclass(frozen=True, slots=True, repr=False)
class SourceRow:
    """One case's data as an extract needs it. Health data: its repr is redacted."""

    case_id: str  # canonical text of the ids (``_IdText``)
    patient_id: str
    age: int  # whole years at treatment start
    sex: str
    country: str  # "" when none was given
    diagnosis_codes: tuple[str, ...]
    result: str
    treatment_start: date
    treatment_end: date
    invoice_total: Decimal
    currency: str
    partner_kinds: tuple[str, ...]  # sorted, distinct
    scores: dict[str, int] | None  # only with QA consent

    def __repr__(self) -> str:
        return "SourceRow(<redacted>)"


@dataclass
class BatchStats:
    unreadable: int = 0  # keys destroyed or outcome missing: left out


def completion_window(period_from: date, period_to: date) -> tuple[datetime, datetime]:
    """[start, end) in UTC for completion dates from ``period_from`` to ``period_to`` inclusive."""
    start = datetime.combine(period_from, time.min, tzinfo=UTC)
    return start, datetime.combine(period_to + timedelta(days=1), time.min, tzinfo=UTC)


class _IdText(sa.types.TypeDecorator[str]):
    """A UUID column read as its canonical text (``str(uuid)``) without making a UUID object.

    A bulk read needs the ids of cases, patients and keys only as text (the contexts and
    owners their values are bound to, the pseudonym's input, the spool); building a
    ``uuid.UUID`` for each costs more than the rest of reading the value. SQLite stores 32 hex
    digits, PostgreSQL hands a UUID.
    """

    impl = sa.String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None or isinstance(value, uuid.UUID):
            return None if value is None else str(value)
        digits = str(value)
        if len(digits) != 32:
            return str(uuid.UUID(digits))  # not the stored form: let uuid parse (or refuse) it
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _as_text(column: Any) -> ColumnElement[str]:
    return sa.type_coerce(col(column), _IdText())


class _Unindexed(ColumnElement[Any]):
    """A column that the query planner must not use an index for (SQLite: ``+column``)."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(_Unindexed)
def _compile_unindexed(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_Unindexed, "sqlite")
def _compile_unindexed_sqlite(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(element.column, **kw)}"


def _unindexed(column: Any) -> ColumnElement[Any]:
    """``column`` (a mapped attribute or column) for a comparison that must not use its index."""
    return _Unindexed(column)


def _eligible(
    start: datetime, end: datetime, query: sa.Select[*tuple[Any, ...]]
) -> sa.Select[*tuple[Any, ...]]:
    """``query`` (on Case, starting with its id and status) narrowed to the eligible cases.

    Eligible: completed in the window, patient not erased, no withdrawn QA consent, objection
    or restriction. The status must be checked by the caller (it is ``COMPLETED``), not here:
    batches must come straight off the primary key, and a condition on an indexed column
    (status, completion time) lets SQLite walk that index instead and sort every eligible case
    again for every batch, which is quadratic. The completion time is compared through
    ``_unindexed`` for the same reason.
    """
    withdrawn = aliased(Survey)
    return (
        query.join(Patient, col(Patient.id) == col(Case.patient_id))
        .where(
            _unindexed(col(Case.treatment_completed_at)) >= start,
            _unindexed(col(Case.treatment_completed_at)) < end,
            col(Case.outcome_sealed).is_not(None),
            col(Patient.erased_at).is_(None),
            ~sa.exists().where(col(QaObjection.patient_id) == col(Case.patient_id)),
            ~sa.exists().where(
                col(withdrawn.patient_id) == col(Case.patient_id),
                col(withdrawn.qa_consent_withdrawn_at).is_not(None),
            ),
            ~sa.exists().where(
                col(Restriction.patient_id) == col(Case.patient_id),
                col(Restriction.lifted_at).is_(None),
                sa.or_(
                    col(Restriction.case_id).is_(None), col(Restriction.case_id) == col(Case.id)
                ),
            ),
        )
        .order_by(col(Case.id))
    )


def _eligible_cases(start: datetime, end: datetime) -> sa.Select[*tuple[Any, ...]]:
    """The eligible cases with every column a ``SourceRow`` is decoded from, and their case
    and patient keys as stored (NULL once destroyed), so that no second query reads them."""
    case_key, patient_key = aliased(KeyRecord), aliased(KeyRecord)
    columns = sa.select(
        _as_text(Case.id),
        col(Case.status),
        _as_text(Case.key_id),
        col(Case.outcome_sealed),
        _as_text(Patient.id),
        _as_text(Patient.key_id),
        col(Patient.birth_date_sealed),
        col(Patient.sex_sealed),
        col(Patient.country_sealed),
        col(Survey.scores),
        col(Survey.qa_consent),
        col(case_key.root_key_id),
        col(case_key.wrapped),
        col(patient_key.root_key_id),
        col(patient_key.wrapped),
    )
    return (
        _eligible(start, end, columns)
        .outerjoin(Survey, col(Survey.case_id) == col(Case.id))
        .outerjoin(
            case_key,
            sa.and_(col(case_key.id) == col(Case.key_id), live_key_condition(case_key)),
        )
        .outerjoin(
            patient_key,
            sa.and_(col(patient_key.id) == col(Patient.key_id), live_key_condition(patient_key)),
        )
    )


def still_eligible(
    sessions: Callable[[], Session],
    *,
    period_from: date,
    period_to: date,
    first: uuid.UUID,
    last: uuid.UUID,
) -> set[str]:
    """The ids (as text) from ``first`` to ``last`` (inclusive) of cases still eligible.

    Cheap (no keys, no sealed columns): the second pass of a build asks it for each batch it
    read back from its spool, so cases shredded, erased, objected to, restricted or withdrawn
    from QA since the first pass are left out.
    """
    query = _eligible(
        *completion_window(period_from, period_to), sa.select(_as_text(Case.id), col(Case.status))
    ).where(col(Case.id) >= first, col(Case.id) <= last)
    with sessions() as session:
        records = session.connection().execute(query).all()
        session.rollback()
    completed = CaseStatus.COMPLETED
    return {case_id for case_id, status in records if status is completed}


def source_batches(
    sessions: Callable[[], Session],
    keys: KeyStore,
    *,
    period_from: date,
    period_to: date,
    stats: BatchStats,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[list[SourceRow]]:
    """Yield the eligible cases' rows, one list per batch (unreadable cases counted, skipped).

    The next batch is read and its keys unwrapped (``_read_batches``) while this one is
    decoded (``read_ahead``): reading waits on the database and the key provider, decoding on
    the CPU, so on two cores they overlap.
    """
    for batch in read_ahead(
        _read_batches(sessions, keys, completion_window(period_from, period_to), batch_size)
    ):
        stats.unreadable += batch.unreadable
        yield [
            _row(record, batch.materials[2 * index], batch.materials[2 * index + 1], batch.partners)
            for index, record in enumerate(batch.readable)
        ]


@dataclass(frozen=True, slots=True, repr=False)
class _ReadBatch:
    """One batch as read: the readable records, their keys unwrapped (case key, patient key
    for each record, in order), their partners' kinds, and how many were unreadable."""

    readable: list[sa.Row[*tuple[Any, ...]]]
    materials: list[bytes]
    partners: dict[str, tuple[str, ...]]
    unreadable: int


def _read_batches(
    sessions: Callable[[], Session],
    keys: KeyStore,
    window: tuple[datetime, datetime],
    batch_size: int,
) -> Iterator[_ReadBatch]:
    query = _eligible_cases(*window)
    after: uuid.UUID | None = None
    completed = CaseStatus.COMPLETED
    while True:
        with sessions() as session:
            page = query if after is None else query.where(col(Case.id) > after)
            records = session.connection().execute(page.limit(batch_size)).all()
            if not records:
                return
            first, after = uuid.UUID(records[0][0]), uuid.UUID(records[-1][0])
            partners = _partner_kinds(session, first, after)
            session.rollback()  # read only: release the transaction before the work below
        unreadable = 0
        readable = []
        for record in records:
            if record[1] is not completed:
                continue  # shredded since its completion
            if record[3] is None or record[12] is None or record[14] is None:
                unreadable += 1  # its outcome or a key is gone: nothing left to extract
            else:
                readable.append(record)
        with translated_key_errors():
            materials = keys.unsafe_unwrap_keys(
                [wrapped for record in readable for wrapped in _stored_keys(record)]
            )
        yield _ReadBatch(readable, materials, partners, unreadable)


def _stored_keys(record: sa.Row[*tuple[Any, ...]]) -> tuple[WrappedKey, WrappedKey]:
    """The case key and the patient key of a source record, as the query read them."""
    return (
        WrappedKey(record[2], KeyKind.CASE, record[11], record[12]),
        WrappedKey(record[5], KeyKind.PATIENT, record[13], record[14]),
    )


def _partner_kinds(
    session: Session, first: uuid.UUID, last: uuid.UUID
) -> dict[str, tuple[str, ...]]:
    """The kinds of partner each case from ``first`` to ``last`` was forwarded to (by id as
    text; a range, not a list of ids: the batch's ids need not be turned back into UUIDs)."""
    pairs = (
        session.connection()
        .execute(
            sa.select(_as_text(Transfer.case_id), col(Partner.kind))
            .join(Partner, col(Partner.id) == col(Transfer.partner_id))
            .where(col(Transfer.case_id) >= first, col(Transfer.case_id) <= last)
            .distinct()
        )
        .all()
    )
    kinds: defaultdict[str, set[str]] = defaultdict(set)
    for case_id, kind in pairs:
        kinds[case_id].add(str(kind))
    return {case_id: tuple(sorted(found)) for case_id, found in kinds.items()}


def _row(
    record: sa.Row[*tuple[Any, ...]],
    case_key: bytes,
    patient_key: bytes,
    partners: dict[str, tuple[str, ...]],
) -> SourceRow:
    (case_id, _status, _case_key_id, outcome_sealed, patient_id, _patient_key_id, birth_sealed,
     sex_sealed, country_sealed, scores, qa_consent) = record[:11]  # fmt: skip
    outcome = CaseOutcome.model_validate_json(
        open_field(case_key, outcome_sealed, context=_outcome_context(case_id))
    )
    opener = unsafe_patient_field_opener(patient_key, patient_id=patient_id)

    def patient_field(field: str, sealed: bytes | None) -> str | None:
        return None if sealed is None else opener(field, sealed)

    birth_date = date.fromisoformat(patient_field("birth_date", birth_sealed) or "")
    return SourceRow(
        case_id=case_id,
        patient_id=patient_id,
        age=_age(birth_date, outcome.treatment_start),
        sex=patient_field("sex", sex_sealed) or Sex.UNKNOWN.value,
        country=patient_field("country", country_sealed) or "",
        diagnosis_codes=tuple(outcome.diagnosis_codes),
        result=outcome.result.value,
        treatment_start=outcome.treatment_start,
        treatment_end=outcome.treatment_end,
        invoice_total=outcome.final_invoice_total,
        currency=outcome.currency,
        partner_kinds=partners.get(case_id, ()),
        scores=dict(scores) if qa_consent and scores else None,
    )


def _age(birth_date: date, on: date) -> int:
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
