"""Type detection: by content only, and refusal of everything that is not PDF/JPEG/PNG/TIFF."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import hostile
from vault.errors import InvalidDocument
from vault.intake import ACCEPTED_TYPES, IntakeLimits, sanitised
from vault.intake.detect import NOT_ACCEPTED, detect_media_type


@pytest.mark.parametrize(
    ("make", "media_type"),
    [
        (hostile.text_pdf, "application/pdf"),
        (hostile.plain_jpeg, "image/jpeg"),
        (hostile.plain_png, "image/png"),
        (hostile.plain_tiff, "image/tiff"),
        (lambda: hostile.plain_tiff(byte_order=">"), "image/tiff"),
    ],
)
def test_accepted_types_are_detected_from_content(
    run: Callable[..., Any], make: Callable[[], bytes], media_type: str
) -> None:
    outcome = run(make())
    assert outcome.media_type == media_type
    assert media_type in ACCEPTED_TYPES


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(hostile.zip_file(), NOT_ACCEPTED, id="zip"),
        pytest.param(hostile.HTML, NOT_ACCEPTED, id="html"),
        pytest.param(hostile.EXE_HEADER, NOT_ACCEPTED, id="exe"),
        pytest.param(b"GIF89a" + bytes(100), NOT_ACCEPTED, id="gif"),
        pytest.param(b" %PDF-1.7\n", NOT_ACCEPTED, id="pdf-not-at-offset-0"),
        pytest.param(b"\xff\xd8", NOT_ACCEPTED, id="two-bytes-of-jpeg"),
        pytest.param(hostile.EMPTY, "the file is empty", id="empty"),
        pytest.param(
            hostile.BIGTIFF_HEADER,
            "BigTIFF files are not accepted: save the image as a standard TIFF",
            id="bigtiff",
        ),
    ],
)
def test_other_content_is_refused_with_its_reason(
    spool_dir: Path, limits: IntakeLimits, data: bytes, message: str
) -> None:
    with (
        pytest.raises(InvalidDocument, match=f"^{re.escape(message)}$") as refused,
        sanitised(io.BytesIO(data), limits=limits, spool_dir=spool_dir),
    ):
        pytest.fail("a refused file must not yield a document")
    assert refused.type is InvalidDocument


def test_the_declared_name_plays_no_part() -> None:
    # Only bytes are passed in; an HTML file renamed to .pdf is still HTML.
    with pytest.raises(InvalidDocument, match=re.escape(NOT_ACCEPTED)):
        detect_media_type(hostile.HTML[:8])
    assert detect_media_type(b"%PDF-1.4") == "application/pdf"
