"""Extract verbs: scopes, request, list/read, build (a worker), download, sweep and shred.

A build makes two passes over the eligible cases (``vault.extracts.rows``): the first counts
quasi-identifier groups and picks the generalisation (``vault.extracts.anonymity``), the second
writes the released rows to Parquet and CSV, encrypted under the extract's own key as they are
written. Building is idempotent: every (re)delivery claims the extract with a new ``build_id``
and writes its objects under it; only the build that still owns the row when it finishes
commits, and it then deletes whatever older builds left behind.

Pseudonyms: HMAC-SHA256(scope key, patient id), truncated. Without the scope key they cannot
be linked to a patient, to another scope's extracts, or to anything else in the system.
"""

import hmac
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from hashlib import sha256
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from keys.store import KeyStore
from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.clock import as_utc
from vault.crypto.envelope import EnvelopeEncryptor, decrypt
from vault.errors import (
    DecryptionFailed,
    ExtractExpired,
    ExtractNotReady,
    InvalidExtractRequest,
    KeyDestroyed,
    NotFound,
    ScopeNameTaken,
)
from vault.extracts.anonymity import Choice, QiKey, choose_level, finest_key, icd_chapter
from vault.extracts.models import (
    Extract,
    ExtractField,
    ExtractFormat,
    ExtractScope,
    ExtractStatus,
)
from vault.extracts.output import Column, EncryptedUpload, TableWriter, object_id_for
from vault.extracts.rows import (
    DEFAULT_BATCH_SIZE,
    BatchStats,
    SourceRow,
    source_batches,
    still_eligible,
)
from vault.extracts.spool import RowSpool
from vault.keyring import translated_key_errors
from vault.read_ahead import read_ahead
from vault.storage.interfaces import BlobStore
from vault.surveys.questions import CURRENT as QUESTIONNAIRE

PSEUDONYM_HEX = 24  # 96 bits: collisions are negligible for any number of patients we hold
INVOICE_ROUNDING = Decimal(100)
SHRED_REASON = "expiry"
DEFAULT_STALE_AFTER = timedelta(minutes=30)
MAX_LIST = 200
_SCOPE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# Rows that vanish between the two passes (a case shredded meanwhile) could shrink a released
# group below k; the build then starts over, at most this many times.
_MAX_PASSES = 3
_ACTIVE = (ExtractStatus.REQUESTED, ExtractStatus.BUILDING)
_QI_COLUMNS = ("age_band", "sex", "country")


# -- scopes ------------------------------------------------------------------------------------


def create_scope(
    *,
    session: Session,
    keys: KeyStore,
    name: str,
    created_by: uuid.UUID | None,
    now: datetime,
    audit: AuditContext,
) -> ExtractScope:
    """A named pseudonym scope with a secret of its own (admin). Commits."""
    if not _SCOPE_NAME.fullmatch(name):
        raise InvalidExtractRequest("a scope name is lower-case letters, digits and '-'")
    with translated_key_errors():
        key_id = keys.create_scope_key(session, now=now)
    scope = ExtractScope(name=name, key_id=key_id, created_by=created_by, created_at=now)
    session.add(scope)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ScopeNameTaken("a scope of that name exists") from None
    append_event(
        session, context=audit, action=AuditAction.EXTRACT_SCOPE_CREATE, now=now, user_id=created_by
    )
    session.commit()
    return scope


def list_scopes(*, session: Session, now: datetime, audit: AuditContext) -> list[ExtractScope]:
    scopes = list(session.exec(select(ExtractScope).order_by(col(ExtractScope.name))))
    append_event(session, context=audit, action=AuditAction.EXTRACT_SCOPE_LIST, now=now)
    session.commit()
    return scopes


# -- requesting and reading --------------------------------------------------------------------


def request_extract(
    *,
    session: Session,
    keys: KeyStore,
    analyst_id: uuid.UUID,
    period_from: date,
    period_to: date,
    fields: Sequence[ExtractField],
    icd_chapter_only: bool,
    scope_id: uuid.UUID | None,
    k: int,
    now: datetime,
    audit: AuditContext,
) -> Extract:
    """Record an analyst's request (the caller enqueues the build after this commit). Commits."""
    if period_from > period_to:
        raise InvalidExtractRequest("the period ends before it starts")
    if not fields:
        raise InvalidExtractRequest("ask for at least one field")
    if k < 2:
        raise InvalidExtractRequest("k is at least 2")
    with translated_key_errors():
        if scope_id is None:
            scope_key_id = keys.create_scope_key(session, now=now)
        else:
            scope = session.get(ExtractScope, scope_id)
            if scope is None:
                raise InvalidExtractRequest("no such scope")
            scope_key_id = scope.key_id
        key_id = keys.create_scope_key(session, now=now)
    extract = Extract(
        requested_by=analyst_id,
        scope_id=scope_id,
        scope_key_id=scope_key_id,
        key_id=key_id,
        period_from=period_from,
        period_to=period_to,
        fields=[ExtractField(field).value for field in dict.fromkeys(fields)],
        icd_chapter_only=icd_chapter_only,
        k=k,
        created_at=now,
    )
    session.add(extract)
    session.flush()
    _event(session, audit, AuditAction.EXTRACT_REQUEST, extract, now)
    session.commit()
    return extract


def list_extracts(
    *, session: Session, analyst_id: uuid.UUID, now: datetime, audit: AuditContext
) -> list[Extract]:
    """The analyst's own extracts, newest first."""
    extracts = list(
        session.exec(
            select(Extract)
            .where(Extract.requested_by == analyst_id)
            .order_by(col(Extract.created_at).desc())
            .limit(MAX_LIST)
        )
    )
    append_event(session, context=audit, action=AuditAction.EXTRACT_LIST, now=now)
    session.commit()
    return extracts


def read_extract(
    *,
    session: Session,
    extract_id: uuid.UUID,
    analyst_id: uuid.UUID,
    now: datetime,
    audit: AuditContext,
    action: AuditAction = AuditAction.EXTRACT_READ,
) -> Extract:
    """One of the analyst's own extracts; another's answers NotFound (denial recorded)."""
    extract = session.get(Extract, extract_id)
    if extract is None or extract.requested_by != analyst_id:
        if extract is not None:
            _event(session, audit, action, extract, now, outcome="denied")
            session.commit()
        raise NotFound("no such extract")
    if action is AuditAction.EXTRACT_READ:
        _event(session, audit, action, extract, now)
        session.commit()
    return extract


def open_extract_content(
    *,
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    extract_id: uuid.UUID,
    analyst_id: uuid.UUID,
    fmt: ExtractFormat,
    now: datetime,
    audit: AuditContext,
) -> Iterator[bytes]:
    """The decrypted Parquet or CSV of a ready extract, streamed (the download is audited)."""
    extract = read_extract(
        session=session,
        extract_id=extract_id,
        analyst_id=analyst_id,
        now=now,
        audit=audit,
        action=AuditAction.EXTRACT_DOWNLOAD,
    )
    expired = extract.expires_at is not None and as_utc(extract.expires_at) <= now
    if extract.status is ExtractStatus.SHREDDED or (
        extract.status is ExtractStatus.READY and expired
    ):
        raise ExtractExpired("this extract reached the end of its retention and was deleted")
    object_key = extract.parquet_key if fmt is ExtractFormat.PARQUET else extract.csv_key
    if extract.status is not ExtractStatus.READY or object_key is None or extract.build_id is None:
        raise ExtractNotReady("this extract is not ready")
    try:
        with translated_key_errors():
            extract_key = keys.unsafe_key_material(session, extract.key_id)
    except KeyDestroyed:
        raise ExtractExpired("this extract was deleted") from None
    _event(session, audit, AuditAction.EXTRACT_DOWNLOAD, extract, now)
    session.commit()
    return decrypt(
        store.open(object_key),
        case_key=extract_key,
        key_id=extract.key_id,
        object_id=object_id_for(extract.build_id, fmt.value),
    )


# -- building ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What a build needs from the extract row, read once when it claims the row."""

    extract_id: uuid.UUID
    build_id: uuid.UUID
    fields: frozenset[ExtractField]
    icd_chapter_only: bool
    period_from: date
    period_to: date
    k: int
    scope_key_id: uuid.UUID
    key_id: uuid.UUID

    def object_key(self, fmt: ExtractFormat) -> str:
        return f"{extract_prefix(self.extract_id)}{self.build_id}/data.{fmt.value}"

    @cached_property
    def fixed_columns(self) -> tuple[str, ...]:
        """The extract's columns that the generalisation does not change, in output order."""
        return tuple(column.name for column in _columns(self) if column.name not in _QI_COLUMNS)


class _SourceChanged(Exception):
    """Rows vanished between the passes and a released group fell below k: build again."""


def extract_prefix(extract_id: uuid.UUID) -> str:
    return f"extracts/{extract_id}/"


def build_extract(
    *,
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    extract_id: uuid.UUID,
    retention: timedelta,
    frame_size: int,
    now: datetime,
    batch_size: int = DEFAULT_BATCH_SIZE,
    spool_dir: Path | None = None,
) -> ExtractStatus:
    """Build a requested extract; returns its status afterwards. Safe to run again at any time.

    ``spool_dir`` holds the build's encrypted row spool while it runs (default: the system's
    temporary folder); give it the runtime's ``spool_dir``.

    A ready, failed or shredded extract is left alone. StorageUnavailable and KmsUnavailable
    propagate (the task retries; the row stays ``building`` for the sweep); an integrity
    failure marks the extract failed.
    """
    plan = _claim(sessions, extract_id, now)
    if plan is None:
        with sessions() as session:
            return _get(session, extract_id).status
    try:
        with sessions() as session, translated_key_errors():
            scope_key = keys.unsafe_key_material(session, plan.scope_key_id)
            extract_key = keys.unsafe_key_material(session, plan.key_id)
        for _ in range(_MAX_PASSES):
            try:
                report = _build_once(
                    sessions,
                    store,
                    keys,
                    plan,
                    scope_key,
                    extract_key,
                    frame_size,
                    batch_size,
                    spool_dir,
                )
                break
            except _SourceChanged:
                continue
        else:
            raise _SourceChanged()
    except (DecryptionFailed, KeyDestroyed, _SourceChanged):
        _finish(sessions, store, plan, now=now, retention=retention, report=None)
        return ExtractStatus.FAILED
    return _finish(sessions, store, plan, now=now, retention=retention, report=report)


def _claim(sessions: Callable[[], Session], extract_id: uuid.UUID, now: datetime) -> _Plan | None:
    """Take the row over with a new build id (compare-and-swap); None if it needs no build."""
    build_id = uuid.uuid4()
    with sessions() as session:
        extract = _get(session, extract_id)
        if extract.status not in _ACTIVE:
            return None
        claimed = session.execute(
            sa.update(Extract)
            .where(col(Extract.id) == extract_id, col(Extract.status).in_(_ACTIVE))
            .values(
                status=ExtractStatus.BUILDING,
                build_id=build_id,
                attempts=Extract.attempts + 1,
                started_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if getattr(claimed, "rowcount", 0) != 1:
            return None
        return _Plan(
            extract_id=extract.id,
            build_id=build_id,
            fields=frozenset(ExtractField(field) for field in extract.fields),
            icd_chapter_only=extract.icd_chapter_only,
            period_from=extract.period_from,
            period_to=extract.period_to,
            k=extract.k,
            scope_key_id=extract.scope_key_id,
            key_id=extract.key_id,
        )


def _build_once(
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    plan: _Plan,
    scope_key: bytes,
    extract_key: bytes,
    frame_size: int,
    batch_size: int,
    spool_dir: Path | None,
) -> dict[str, Any]:
    """Both passes; the objects are complete in the store when this returns the report.

    Pass 1 decodes each eligible case once, counts its group at the finest level and spools
    its output values (``RowSpool``: sealed under a key held in memory only). Pass 2 reads the
    spool back, leaves out what stopped being eligible meanwhile (``still_eligible``), then
    releases or suppresses each row under the chosen generalisation and writes it.
    """
    with RowSpool(spool_dir) as spool:
        counts: Counter[QiKey] = Counter()
        stats = BatchStats()
        for rows in source_batches(
            sessions,
            keys,
            period_from=plan.period_from,
            period_to=plan.period_to,
            stats=stats,
            batch_size=batch_size,
        ):
            spooled = []
            for row in rows:
                key = _qi_key(plan, row)
                counts[key] += 1
                # a plain tuple: the spool (marshal) takes no named tuples
                spooled.append((row.case_id, tuple(key), _fixed_values(plan, row, scope_key)))
            spool.write(spooled)
        choice = choose_level(counts, plan.k, _qi_key_present(plan))
        return _release(sessions, store, plan, choice, spool, extract_key, frame_size) | {
            "unreadable": stats.unreadable
        }


def _release(
    sessions: Callable[[], Session],
    store: BlobStore,
    plan: _Plan,
    choice: Choice,
    spool: RowSpool,
    extract_key: bytes,
    frame_size: int,
) -> dict[str, Any]:
    """Pass 2: the spooled rows still eligible, generalised or suppressed, encrypted and stored."""
    uploads = {
        fmt: EncryptedUpload(
            store,
            plan.object_key(fmt),
            EnvelopeEncryptor(
                case_key=extract_key,
                key_id=plan.key_id,
                object_id=object_id_for(plan.build_id, fmt.value),
                frame_size=frame_size,
            ),
        )
        for fmt in ExtractFormat
    }
    writer = TableWriter(
        _columns(plan),
        parquet=uploads[ExtractFormat.PARQUET],
        csv_upload=uploads[ExtractFormat.CSV],
    )
    released: Counter[tuple[str | None, ...]] = Counter()
    suppressed = 0
    try:
        for batch, eligible in read_ahead(_spooled_batches(sessions, plan, spool)):
            out = []
            for case_id, key, values in batch:
                if case_id not in eligible:
                    continue  # shredded, erased, objected to or withdrawn since pass 1
                labels = choice.releases(QiKey(*key), plan.k)
                if labels is None:
                    suppressed += 1
                    continue
                released[labels] += 1
                out.append(_labelled(plan, choice, labels, values))
            writer.write(out)
        if any(size < plan.k for size in released.values()):
            raise _SourceChanged()
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return {
        "k": plan.k,
        "k_achieved": min(released.values()) if released else None,
        "rows": sum(released.values()),
        "suppressed": suppressed,
        "suppression_limit": "5%",
        "generalised": choice.level.describe(),
        "diagnoses_withheld": choice.level.chapter,
        "questionnaire": QUESTIONNAIRE.version,
    }


def _spooled_batches(
    sessions: Callable[[], Session], plan: _Plan, spool: RowSpool
) -> Iterator[tuple[list[Any], set[str]]]:
    """Each spooled batch with the ids (as text) of its cases that are still eligible."""
    for batch in spool.batches():
        yield (
            batch,
            still_eligible(
                sessions,
                period_from=plan.period_from,
                period_to=plan.period_to,
                first=uuid.UUID(batch[0][0]),
                last=uuid.UUID(batch[-1][0]),
            ),
        )


def _finish(
    sessions: Callable[[], Session],
    store: BlobStore,
    plan: _Plan,
    *,
    now: datetime,
    retention: timedelta,
    report: dict[str, Any] | None,
) -> ExtractStatus:
    """Commit the outcome if this build still owns the row; then tidy the objects up."""
    ours = {plan.object_key(fmt) for fmt in ExtractFormat}
    status = ExtractStatus.READY if report is not None else ExtractStatus.FAILED
    with sessions() as session:
        values: dict[str, Any] = {
            "status": status,
            "report": report,
            "finished_at": now,
            "expires_at": now + retention,
        }
        if report is not None:
            values |= {
                "parquet_key": plan.object_key(ExtractFormat.PARQUET),
                "csv_key": plan.object_key(ExtractFormat.CSV),
            }
        won = session.execute(
            sa.update(Extract)
            .where(
                col(Extract.id) == plan.extract_id,
                col(Extract.build_id) == plan.build_id,
                col(Extract.status) == ExtractStatus.BUILDING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(won, "rowcount", 0) == 1:
            extract = _get(session, plan.extract_id)
            _event(session, AuditContext.SYSTEM, AuditAction.EXTRACT_BUILD, extract, now,
                   outcome="ok" if report is not None else "refused")  # fmt: skip
        session.commit()
        current = _get(session, plan.extract_id)
        final_status = current.status
        keep = (
            {current.parquet_key, current.csv_key} if final_status is ExtractStatus.READY else set()
        )
    # Objects of older builds (killed, or overtaken), and ours if we lost or failed.
    for key in list(store.keys(extract_prefix(plan.extract_id))):
        if key not in keep and (key in ours or final_status is not ExtractStatus.BUILDING):
            store.delete(key)
    return final_status


# -- sweeping and shredding --------------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    requeue: tuple[uuid.UUID, ...]  # stale requested/building extracts to build again
    shredded: int


def sweep_extracts(
    *,
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    now: datetime,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> SweepReport:
    """Find builds to re-enqueue (lost or crashed) and shred extracts past their retention."""
    cutoff = now - stale_after
    with sessions() as session:
        stale = session.exec(
            select(Extract.id).where(
                sa.or_(
                    sa.and_(
                        col(Extract.status) == ExtractStatus.REQUESTED,
                        col(Extract.created_at) < cutoff,
                    ),
                    sa.and_(
                        col(Extract.status) == ExtractStatus.BUILDING,
                        col(Extract.started_at) < cutoff,
                    ),
                )
            )
        ).all()
        expired = session.exec(
            select(Extract.id).where(
                col(Extract.status).in_((ExtractStatus.READY, ExtractStatus.FAILED)),
                col(Extract.expires_at) <= now,
            )
        ).all()
        session.rollback()
    for extract_id in expired:
        shred_extract(sessions=sessions, store=store, keys=keys, extract_id=extract_id, now=now)
    return SweepReport(requeue=tuple(stale), shredded=len(expired))


def shred_extract(
    *,
    sessions: Callable[[], Session],
    store: BlobStore,
    keys: KeyStore,
    extract_id: uuid.UUID,
    now: datetime,
) -> None:
    """Delete the extract's objects, then destroy its keys (crypto-shred). Idempotent."""
    for key in list(store.keys(extract_prefix(extract_id))):
        store.delete(key)
    with sessions() as session:
        extract = _get(session, extract_id)
        if extract.status is ExtractStatus.SHREDDED:
            return
        with translated_key_errors():
            keys.destroy(session, extract.key_id, reason=SHRED_REASON, now=now)
            if extract.scope_id is None:  # a scope of its own: nothing else needs the secret
                keys.destroy(session, extract.scope_key_id, reason=SHRED_REASON, now=now)
        extract.status = ExtractStatus.SHREDDED
        extract.shredded_at = now
        extract.parquet_key = extract.csv_key = None
        session.add(extract)
        _event(session, AuditContext.SYSTEM, AuditAction.EXTRACT_SHRED, extract, now)
        session.commit()


# -- rows ----------------------------------------------------------------------------------------


def pseudonym(scope_key: bytes, patient_id: uuid.UUID | str) -> str:
    """HMAC-SHA256 of the patient id's 16 bytes under the scope's secret, truncated to 96 bits
    of hex. The id as a UUID or as its canonical text (what bulk reads hand over)."""
    raw = (
        patient_id.bytes
        if isinstance(patient_id, uuid.UUID)
        else bytes.fromhex(patient_id.replace("-", ""))
    )
    return hmac.new(scope_key, raw, sha256).hexdigest()[:PSEUDONYM_HEX]


def _qi_key_present(plan: _Plan) -> QiKey:
    """Which quasi-identifiers the extract holds (non-None marks one)."""
    return QiKey(
        0 if ExtractField.AGE_BAND in plan.fields else None,
        "" if ExtractField.SEX in plan.fields else None,
        "" if ExtractField.COUNTRY in plan.fields else None,
        "" if ExtractField.DIAGNOSES in plan.fields else None,
    )


def _qi_key(plan: _Plan, row: SourceRow) -> QiKey:
    fields = plan.fields
    return finest_key(
        age=row.age if ExtractField.AGE_BAND in fields else None,
        sex=row.sex if ExtractField.SEX in fields else None,
        country=row.country if ExtractField.COUNTRY in fields else None,
        chapter=icd_chapter(row.diagnosis_codes[0]) if ExtractField.DIAGNOSES in fields else None,
    )


def _columns(plan: _Plan) -> list[Column]:
    text, number = pa.string(), pa.int32()
    wanted: list[tuple[ExtractField, list[Column]]] = [
        (ExtractField.AGE_BAND, [Column("age_band", text)]),
        (ExtractField.SEX, [Column("sex", text)]),
        (ExtractField.COUNTRY, [Column("country", text)]),
        (ExtractField.DIAGNOSES, [Column("diagnoses", text)]),
        (ExtractField.TREATMENT_RESULT, [Column("treatment_result", text)]),
        (ExtractField.TREATMENT_START_MONTH, [Column("treatment_start_month", text)]),
        (ExtractField.TREATMENT_DAYS, [Column("treatment_days", number)]),
        (ExtractField.PARTNER_CATEGORY, [Column("partner_category", text)]),
        (
            ExtractField.INVOICE_TOTAL,
            [Column("invoice_total", pa.int64()), Column("invoice_currency", text)],
        ),
        (
            ExtractField.SURVEY_SCORES,
            [Column(f"survey_{qid}", pa.int8()) for qid in QUESTIONNAIRE.ids],
        ),
    ]
    columns = [Column("pseudonym", text)]
    for field, field_columns in wanted:
        if field in plan.fields:
            columns.extend(field_columns)
    return columns


def _fixed_values(plan: _Plan, row: SourceRow, scope_key: bytes) -> list[Any]:
    """A row's values of ``plan.fixed_columns`` (what is spooled; the rest: ``_labelled``).

    Diagnoses as released when their chapter is kept.
    """
    diagnoses = None
    if ExtractField.DIAGNOSES in plan.fields:
        codes = row.diagnosis_codes
        if plan.icd_chapter_only:
            codes = tuple(dict.fromkeys(icd_chapter(code) for code in codes))
        diagnoses = " ".join(codes)
    values: dict[str, Any] = {
        "pseudonym": pseudonym(scope_key, row.patient_id),
        "diagnoses": diagnoses,
        "treatment_result": row.result,
        "treatment_start_month": row.treatment_start.strftime("%Y-%m"),
        "treatment_days": (row.treatment_end - row.treatment_start).days,
        "partner_category": "+".join(row.partner_kinds) or "none",
        "invoice_total": int(
            (row.invoice_total / INVOICE_ROUNDING).to_integral_value(ROUND_HALF_UP)
            * INVOICE_ROUNDING
        ),
        "invoice_currency": row.currency,
    }
    scores = row.scores or {}
    for qid in QUESTIONNAIRE.ids:
        values[f"survey_{qid}"] = scores.get(qid)
    return [values[name] for name in plan.fixed_columns]


def _labelled(
    plan: _Plan, choice: Choice, labels: tuple[str | None, ...], values: list[Any]
) -> dict[str, Any]:
    """One released row: its fixed values with the generalised quasi-identifiers."""
    age, sex, country, _chapter = labels
    row = dict(zip(plan.fixed_columns, values, strict=True))
    row["age_band"], row["sex"], row["country"] = age, sex, country or None
    if choice.level.chapter and "diagnoses" in row:
        row["diagnoses"] = None  # codes would reveal the chapter that was generalised away
    return row


# -- helpers -------------------------------------------------------------------------------------


def _get(session: Session, extract_id: uuid.UUID) -> Extract:
    extract = session.get(Extract, extract_id, populate_existing=True)
    if extract is None:
        raise NotFound("no such extract")
    return extract


def _event(
    session: Session,
    audit: AuditContext,
    action: AuditAction,
    extract: Extract,
    now: datetime,
    *,
    outcome: str = "ok",
) -> None:
    # The audit chain has no extract column: an extract is a stored object, so its id is
    # recorded as the document id, with the requesting analyst as the user.
    append_event(
        session,
        context=audit,
        action=action,
        now=now,
        outcome=outcome,
        document_id=extract.id,
        user_id=extract.requested_by,
    )
