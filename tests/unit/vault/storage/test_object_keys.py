"""The object-key rule every blob store applies before any I/O."""

from __future__ import annotations

import pytest

from vault.storage.object_keys import check_key, check_prefix

GOOD_KEYS = [
    "doc",
    "cases/6f1c0d2e-8f0a-4c1b-9e57-0a1b2c3d4e5f/0b7e9a1c-1d2e-4f3a-8b9c-0d1e2f3a4b5c",
    "a.b_c-d/E9",
    ".hidden/..dots/...",
    "a" * 255,
    "/".join(["a" * 200] * 5),  # 1004 characters
]
BAD_KEYS = [
    "",
    "/abs",
    "trailing/",
    "a//b",
    ".",
    "..",
    "a/./b",
    "a/../b",
    "a\\b",
    "a b",
    "a\tb",
    "ä",
    "a\x00b",
    "a" * 256,
    "/".join(["a" * 200] * 6),  # 1205 characters
]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys_pass_unchanged(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="key") as raised:
        check_key(key)

    if len(key) >= 3:  # shorter ones occur in the explanation itself
        assert key not in str(raised.value)  # the message never echoes the key


def test_a_key_must_be_a_string() -> None:
    with pytest.raises(ValueError, match="key"):
        check_key(b"doc")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "cases/", "cases/6f1c", "cases", "a/b/", "a/."])
def test_good_prefixes(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/cases", "a//", "../", "a/../b", "a b", "ü", "a\\"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match=r"prefix|key"):
        check_prefix(prefix)
