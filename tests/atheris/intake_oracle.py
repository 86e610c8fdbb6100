"""What intake may do with one fuzz input, and what is a failure.

Used by :mod:`tests.atheris.intake_target` (with ``vault`` instrumented) and by
``test_oracles.py`` (which shows that each check fails when it should). Failures are exceptions
that escape: libFuzzer saves the input as a crash.

- Any exception but ``InvalidDocument`` (``DocumentTooLarge`` is one), also while the sanitised
  bytes stream out.
- An accepted upload detected as another type than its magic bytes say.
- Sanitised output that sanitising again refuses or changes: an image must come back byte for
  byte the same with nothing left to remove, a PDF with the same page count (qpdf writes a new
  file each time, so its bytes are not compared).
- A file descriptor, spool file or PDF child process left behind after an input.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path

from tests.atheris import intake_corpus as corpus
from vault.errors import InvalidDocument
from vault.intake import IntakeLimits, sanitised

SECOND_PASS_MAX_BYTES = 16 * 1024 * 1024  # output may be a little larger than the upload
# What re-sanitising a sanitised JPEG may still report: its minimal orientation EXIF is kept
# and counted as EXIF seen each time.
JPEG_SECOND_PASS_CHANGES = frozenset({"exif"})
ACCEPTED = "accepted"


@dataclass(frozen=True)
class Outcome:
    media_type: str
    changes: tuple[str, ...]
    pages: int | None
    data: bytes


def sanitise(upload: bytes, limits: IntakeLimits, spool_dir: Path) -> Outcome:
    with sanitised(io.BytesIO(upload), limits=limits, spool_dir=spool_dir) as document:
        data = b"".join(document.chunks())
        return Outcome(document.media_type, document.changes, document.pages, data)


def refusal_kind(refusal: InvalidDocument) -> str:
    """The fixed part of a refusal message, without the figures some of them quote."""
    return str(refusal).split(":")[0]


def check_upload(upload: bytes, plan: corpus.Plan, spool_dir: Path) -> str:
    """Sanitise ``upload`` and judge the result; returns ``accepted`` or the refusal's kind."""
    limits = corpus.limits(plan.chunk_size)
    try:
        outcome = sanitise(upload, limits, spool_dir)
    except InvalidDocument as refusal:
        return refusal_kind(refusal)
    if plan.format.media_type not in (None, outcome.media_type):
        raise AssertionError(f"a {plan.format.name} upload was accepted as {outcome.media_type}")
    require_stable(outcome, replace(limits, max_bytes=SECOND_PASS_MAX_BYTES), spool_dir)
    return ACCEPTED


def require_stable(first: Outcome, limits: IntakeLimits, spool_dir: Path) -> None:
    """Sanitised output is accepted again; an image comes back unchanged with nothing left to
    remove, a PDF with the same pages."""
    try:
        second = sanitise(first.data, limits, spool_dir)
    except InvalidDocument as refusal:
        message = f"sanitised {first.media_type} refused when sanitised again: "
        raise AssertionError(message + refusal_kind(refusal)) from refusal
    if second.media_type != first.media_type or second.pages != first.pages:
        raise AssertionError(f"sanitised {first.media_type} read differently the second time")
    if first.media_type == "application/pdf":
        return
    if second.data != first.data:
        raise AssertionError(f"sanitised {first.media_type} changed when sanitised again")
    allowed = JPEG_SECOND_PASS_CHANGES if first.media_type == "image/jpeg" else frozenset()
    if not set(second.changes) <= allowed:
        raise AssertionError(
            f"sanitised {first.media_type} still had {sorted(second.changes)} to remove"
        )


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def child_processes() -> list[str]:
    children: list[str] = []
    for task in os.listdir("/proc/self/task"):
        children += Path(f"/proc/self/task/{task}/children").read_text().split()
    return children


def require_nothing_left(*, spool_dir: Path, open_fds_before: int, after_pdf: bool) -> None:
    if (open_fds := open_fd_count()) > open_fds_before:
        raise AssertionError(f"{open_fds - open_fds_before} file descriptor(s) left open")
    if any(spool_dir.iterdir()):
        raise AssertionError("a file was left in the spool folder")
    if after_pdf and (children := child_processes()):
        raise AssertionError(f"{len(children)} PDF child process(es) left behind")
