"""The row spool of an extract build: read back as written, never plaintext on disk, gone after."""

from pathlib import Path
from typing import Any

import pytest

from vault.errors import DecryptionFailed
from vault.extracts.spool import RowSpool

MARKER = "Z96.6-marker"


def spooled_bytes(spool: RowSpool) -> bytes:
    spool._file.flush()
    spool._file.seek(0)
    return spool._file.read()


def test_batches_come_back_in_order_and_nothing_is_left_in_the_folder(tmp_path: Path) -> None:
    row = ("a", (35, "female", "DE", "XIII"), ["x", 1.5, None], {"diagnoses": MARKER})
    batches: list[list[Any]] = [[row], [], [[1, None]]]
    with RowSpool(tmp_path) as spool:
        for batch in batches:
            spool.write(batch)
        assert list(spool.batches()) == [batches[0], batches[2]]  # the empty one is skipped
        assert list(tmp_path.iterdir()) == []  # an anonymous file: no name to leave behind
    assert list(tmp_path.iterdir()) == []


def test_what_reaches_the_disk_is_sealed(tmp_path: Path) -> None:
    with RowSpool(tmp_path) as spool:
        spool.write([[MARKER, "female", 1960]])
        raw = spooled_bytes(spool)
    assert MARKER.encode() not in raw
    assert b"female" not in raw


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend"])
def test_a_changed_spool_does_not_read_back(tmp_path: Path, damage: str) -> None:
    with RowSpool(tmp_path) as spool:
        spool.write([[1, "a"]])
        spool.write([[2, "b"]])
        raw = bytearray(spooled_bytes(spool))
        if damage == "flip":
            raw[-1] ^= 1
        elif damage == "truncate":
            del raw[-5:]
        else:
            raw += raw[:20]
        spool._file.seek(0)
        spool._file.truncate()
        spool._file.write(raw)
        with pytest.raises(DecryptionFailed):
            list(spool.batches())
