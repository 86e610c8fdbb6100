"""Wycheproof known-answer tests for the primitives the envelope and field formats are built on.

Every supported case runs through our wrappers: valid cases must give exactly the expected
output, invalid cases must fail. Each family also asserts how many cases it selected, so a
filter mistake cannot silently run none, and checks that unsupported parameters are refused.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from vault.crypto.primitives import (
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    aes_key_unwrap,
    aes_key_wrap,
    hkdf_sha256,
    hmac_sha256,
    hmac_sha256_verify,
)
from vault.errors import DecryptionFailed

WYCHEPROOF = Path(__file__).resolve().parents[3] / "vectors" / "wycheproof"

Case = dict[str, Any]


def load_cases(file_name: str) -> list[tuple[Case, Case]]:
    """Every (group, test) pair of a Wycheproof file."""
    document = json.loads((WYCHEPROOF / file_name).read_text())
    return [(group, test) for group in document["testGroups"] for test in group["tests"]]


def case_id(case: tuple[Case, Case]) -> str:
    _, test = case
    return f"tc{test['tcId']}-{test['result']}"


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def count(cases: list[tuple[Case, Case]], result: str) -> int:
    return sum(1 for _, test in cases if test["result"] == result)


# --- AES-256-GCM: 256-bit keys, 96-bit nonces, 128-bit tags -----------------------------------

GCM_ALL = load_cases("aes_gcm_test.json")
GCM_SUPPORTED = [
    (group, test)
    for group, test in GCM_ALL
    if group["keySize"] == 256 and group["ivSize"] == 96 and group["tagSize"] == 128
]
GCM_UNSUPPORTED = [
    (group, test)
    for group, test in GCM_ALL
    if (group["keySize"] != 256 or group["ivSize"] != 96) and group["tagSize"] == 128
]


def test_aes_gcm_selection_is_not_empty() -> None:
    assert len(GCM_SUPPORTED) >= 66
    assert count(GCM_SUPPORTED, "valid") >= 39
    assert count(GCM_SUPPORTED, "invalid") >= 27


@pytest.mark.parametrize("case", GCM_SUPPORTED, ids=[case_id(c) for c in GCM_SUPPORTED])
def test_aes_gcm_wycheproof(case: tuple[Case, Case]) -> None:
    _, test = case
    key, iv, aad, msg = h(test["key"]), h(test["iv"]), h(test["aad"]), h(test["msg"])
    sealed = h(test["ct"]) + h(test["tag"])
    if test["result"] == "valid":
        assert aes_gcm_encrypt(key, iv, msg, aad) == sealed
        assert aes_gcm_decrypt(key, iv, sealed, aad) == msg
        assert aes_gcm_decrypt(key, memoryview(iv), memoryview(sealed), memoryview(aad)) == msg
    else:
        assert test["result"] == "invalid"
        with pytest.raises(DecryptionFailed):
            aes_gcm_decrypt(key, iv, sealed, aad)


def test_aes_gcm_refuses_other_key_and_nonce_sizes() -> None:
    """Other key sizes and nonce lengths are a programming error, never silently accepted."""
    assert len(GCM_UNSUPPORTED) >= 200
    for _, test in GCM_UNSUPPORTED:
        key, iv, aad, msg = h(test["key"]), h(test["iv"]), h(test["aad"]), h(test["msg"])
        with pytest.raises(ValueError, match=r"key|nonce"):
            aes_gcm_encrypt(key, iv, msg, aad)
        with pytest.raises(ValueError, match=r"key|nonce"):
            aes_gcm_decrypt(key, iv, h(test["ct"]) + h(test["tag"]), aad)


# --- AES-KW (RFC 3394) under 256-bit wrapping keys ---------------------------------------------

KW_ALL = load_cases("aes_wrap_test.json")
KW_SUPPORTED = [(group, test) for group, test in KW_ALL if group["keySize"] == 256]


def test_aes_kw_selection_is_not_empty() -> None:
    assert len(KW_SUPPORTED) >= 68
    assert count(KW_SUPPORTED, "valid") >= 13
    assert count(KW_SUPPORTED, "invalid") >= 54
    assert count(KW_SUPPORTED, "acceptable") >= 1


@pytest.mark.parametrize("case", KW_SUPPORTED, ids=[case_id(c) for c in KW_SUPPORTED])
def test_aes_kw_wycheproof(case: tuple[Case, Case]) -> None:
    _, test = case
    key, msg, wrapped = h(test["key"]), h(test["msg"]), h(test["ct"])
    if test["result"] == "valid":
        assert aes_key_wrap(key, msg) == wrapped
        assert aes_key_unwrap(key, wrapped) == msg
    elif test["result"] == "acceptable":
        # The only acceptable case wraps an 8-byte key (one AES block, RFC 3394 section 2).
        # We never wrap anything shorter than 16 bytes: both directions refuse it.
        assert test["flags"] == ["ShortKey"]
        with pytest.raises(ValueError, match="at least 16 bytes"):
            aes_key_wrap(key, msg)
        with pytest.raises(DecryptionFailed):
            aes_key_unwrap(key, wrapped)
    else:
        assert test["result"] == "invalid"
        with pytest.raises(DecryptionFailed):
            aes_key_unwrap(key, wrapped)


def test_aes_kw_refuses_other_wrapping_key_sizes() -> None:
    others = [(group, test) for group, test in KW_ALL if group["keySize"] != 256]
    assert len(others) >= 90
    for _, test in others:
        with pytest.raises(ValueError, match="32 bytes"):
            aes_key_unwrap(h(test["key"]), h(test["ct"]))
        with pytest.raises(ValueError, match="32 bytes"):
            aes_key_wrap(h(test["key"]), h(test["msg"]))


# --- HKDF-SHA256: every case ----------------------------------------------------------------

HKDF_ALL = load_cases("hkdf_sha256_test.json")


def test_hkdf_selection_is_not_empty() -> None:
    assert len(HKDF_ALL) >= 86
    assert count(HKDF_ALL, "valid") >= 83
    assert count(HKDF_ALL, "invalid") >= 3


@pytest.mark.parametrize("case", HKDF_ALL, ids=[case_id(c) for c in HKDF_ALL])
def test_hkdf_sha256_wycheproof(case: tuple[Case, Case]) -> None:
    _, test = case
    ikm, salt, info, size = h(test["ikm"]), h(test["salt"]), h(test["info"]), test["size"]
    if test["result"] == "valid":
        assert hkdf_sha256(ikm, salt, info, size) == h(test["okm"])
    else:
        assert test["result"] == "invalid"
        with pytest.raises(ValueError, match="HKDF-SHA256 output"):
            hkdf_sha256(ikm, salt, info, size)


# --- HMAC-SHA256 with full 256-bit tags ---------------------------------------------------------

HMAC_ALL = load_cases("hmac_sha256_test.json")
HMAC_SUPPORTED = [(group, test) for group, test in HMAC_ALL if group["tagSize"] == 256]


def test_hmac_selection_is_not_empty() -> None:
    assert len(HMAC_SUPPORTED) >= 87
    assert count(HMAC_SUPPORTED, "valid") >= 33
    assert count(HMAC_SUPPORTED, "invalid") >= 54


@pytest.mark.parametrize("case", HMAC_SUPPORTED, ids=[case_id(c) for c in HMAC_SUPPORTED])
def test_hmac_sha256_wycheproof(case: tuple[Case, Case]) -> None:
    _, test = case
    key, msg, tag = h(test["key"]), h(test["msg"]), h(test["tag"])
    if test["result"] == "valid":
        assert hmac_sha256(key, msg) == tag
        hmac_sha256_verify(key, msg, tag)
    else:
        assert test["result"] == "invalid"
        assert hmac_sha256(key, msg) != tag
        with pytest.raises(DecryptionFailed):
            hmac_sha256_verify(key, msg, tag)
