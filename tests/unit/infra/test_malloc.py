"""tune_malloc: applied on glibc, a no-op that says why elsewhere."""

from __future__ import annotations

import platform

import pytest

from infra.malloc import tune_malloc

ON_GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt is glibc's")
def test_applies_on_glibc() -> None:
    result = tune_malloc(32 * 1024 * 1024)

    assert result.applied
    assert "33554432" in result.detail


def test_elsewhere_it_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))

    result = tune_malloc()

    assert not result.applied
    assert "not glibc (musl)" in result.detail
