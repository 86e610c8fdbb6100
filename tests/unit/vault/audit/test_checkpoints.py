"""Signed checkpoints: what is stored, and that only an intact one reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from tests.factories import NOW, make_audit_events
from vault.audit.checkpoints import (
    Checkpoint,
    InvalidCheckpoint,
    checkpoint_key,
    checkpoint_keys,
    read_checkpoint,
    write_checkpoint,
)
from vault.audit.models import GENESIS_HASH, AuditHead
from vault.storage.local import LocalFolderBlobStore

KEY = b"k" * 32


@pytest.fixture
def store(tmp_path: Path) -> LocalFolderBlobStore:
    return LocalFolderBlobStore(tmp_path / "objects")


def test_a_checkpoint_seals_the_head(session: Session, store: LocalFolderBlobStore) -> None:
    make_audit_events(session, 3)
    checkpoint = write_checkpoint(session, store=store, signing_key=KEY, now=NOW)
    head = session.exec(select(AuditHead)).one()
    assert checkpoint == Checkpoint(seq=3, hash=head.hash, at=NOW)
    assert list(checkpoint_keys(store)) == ["audit/checkpoints/000000000003.json"]
    document = json.loads(b"".join(store.open(checkpoint_key(3))))
    assert set(document) == {"seq", "hash", "at", "signature"}
    assert read_checkpoint(store, checkpoint_key(3), signing_key=KEY) == checkpoint


def test_writing_a_checkpoint_does_not_touch_the_chain(
    session: Session, store: LocalFolderBlobStore
) -> None:
    make_audit_events(session, 2)
    write_checkpoint(session, store=store, signing_key=KEY, now=NOW)
    assert session.exec(select(AuditHead)).one().seq == 2


def test_an_empty_chain_seals_the_genesis(session: Session, store: LocalFolderBlobStore) -> None:
    checkpoint = write_checkpoint(session, store=store, signing_key=KEY, now=NOW)
    assert (checkpoint.seq, checkpoint.hash) == (0, GENESIS_HASH)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d | {"seq": d["seq"] + 1},
        lambda d: d | {"hash": "0" * 64},
        lambda d: d | {"at": "2020-01-01T00:00:00.000000+00:00"},
        lambda d: d | {"signature": "00" * 32},
        lambda d: d | {"signature": "not hex"},
        lambda d: d | {"seq": True},
        lambda d: {k: v for k, v in d.items() if k != "signature"},
    ],
)
def test_a_tampered_checkpoint_does_not_read(
    session: Session, store: LocalFolderBlobStore, tamper: object
) -> None:
    make_audit_events(session, 1)
    write_checkpoint(session, store=store, signing_key=KEY, now=NOW)
    key = checkpoint_key(1)
    document = json.loads(b"".join(store.open(key)))
    store.put(key, [json.dumps(tamper(document)).encode()])  # type: ignore[operator]
    with pytest.raises(InvalidCheckpoint):
        read_checkpoint(store, key, signing_key=KEY)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b" " * 10_000])
def test_garbage_does_not_read(store: LocalFolderBlobStore, content: bytes) -> None:
    store.put(checkpoint_key(1), [content])
    with pytest.raises(InvalidCheckpoint):
        read_checkpoint(store, checkpoint_key(1), signing_key=KEY)
