"""Signed checkpoints of the audit chain head, kept in the object store.

A checkpoint is a small JSON object at ``audit/checkpoints/<seq, 12 digits>.json``::

    {"at": "<ISO-8601 UTC>", "hash": "<hex>", "seq": <int>, "signature": "<hex>"}

``signature`` is HMAC-SHA256 under the audit signing key over the canonical JSON of the
other three fields (``vault.audit.chain.canonical_json``). A checkpoint seals the chain up to
``seq``: events cannot be dropped from the tail, or rewritten with fresh hashes, without
disagreeing with it, and after old events are dropped at their retention limit, the
checkpoint at the last dropped ``seq`` anchors the ``prev_hash`` of the oldest event kept.
Writing a checkpoint does not append an event: it must not change the chain it seals.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlmodel import Session, select

from vault.audit.chain import canonical_json, canonical_time
from vault.audit.models import GENESIS_HASH, AuditHead
from vault.clock import as_utc
from vault.crypto.primitives import constant_time_equal, hmac_sha256
from vault.storage.interfaces import BlobStore

CHECKPOINT_PREFIX = "audit/checkpoints/"
MAX_CHECKPOINT_BYTES = 4096  # a real one is ~200 bytes; never read a planted huge object whole

_T = TypeVar("_T")


@dataclass(frozen=True)
class Checkpoint:
    """The chain head (``seq``, ``hash``) as it was at ``at``."""

    seq: int
    hash: str
    at: datetime


class InvalidCheckpoint(ValueError):
    """A stored checkpoint is unreadable or its signature does not verify."""


def checkpoint_key(seq: int) -> str:
    return f"{CHECKPOINT_PREFIX}{seq:012d}.json"


def seq_from_key(key: str) -> int | None:
    """The seq a checkpoint's object key names, None if the name is not one of ours."""
    stem = key.removeprefix(CHECKPOINT_PREFIX).removesuffix(".json")
    return int(stem) if stem.isdigit() else None


def write_checkpoint(
    session: Session, *, store: BlobStore, signing_key: bytes, now: datetime
) -> Checkpoint:
    """Sign the current head of the chain and store it (an empty chain seals the genesis)."""
    head = session.exec(select(AuditHead).execution_options(populate_existing=True)).first()
    seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS_HASH)
    checkpoint = Checkpoint(seq=seq, hash=head_hash, at=as_utc(now))
    signature = hmac_sha256(signing_key, _signed_bytes(checkpoint)).hex()
    document = {
        "seq": seq,
        "hash": head_hash,
        "at": canonical_time(checkpoint.at),
        "signature": signature,
    }
    store.put(checkpoint_key(seq), [json.dumps(document, sort_keys=True).encode("ascii")])
    return checkpoint


def checkpoint_keys(store: BlobStore) -> Iterator[str]:
    """Object keys of every stored checkpoint, in seq order."""
    return store.keys(CHECKPOINT_PREFIX)


def read_checkpoint(store: BlobStore, key: str, *, signing_key: bytes) -> Checkpoint:
    """Load one checkpoint and check its signature; raises InvalidCheckpoint."""
    raw = b""
    for chunk in store.open(key):
        raw += chunk
        if len(raw) > MAX_CHECKPOINT_BYTES:
            raise InvalidCheckpoint("checkpoint too large")
    try:
        document = json.loads(raw)
        checkpoint = Checkpoint(
            seq=_exact(document["seq"], int),
            hash=_exact(document["hash"], str),
            at=as_utc(datetime.fromisoformat(_exact(document["at"], str))),
        )
        signature = bytes.fromhex(_exact(document["signature"], str))
    except (ValueError, KeyError, TypeError):
        raise InvalidCheckpoint("checkpoint unreadable") from None
    expected = hmac_sha256(signing_key, _signed_bytes(checkpoint))
    if not constant_time_equal(expected, signature):
        raise InvalidCheckpoint("checkpoint signature invalid")
    return checkpoint


def _signed_bytes(checkpoint: Checkpoint) -> bytes:
    return canonical_json({"seq": checkpoint.seq, "hash": checkpoint.hash, "at": checkpoint.at})


def _exact(value: object, kind: type[_T]) -> _T:
    # bool is an int to Python; a checkpoint's seq never is.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError("unexpected type in checkpoint")
    return value
