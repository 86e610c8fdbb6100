"""The hostile-upload corpus, built in code from :mod:`tests.hostile` (no binary fixtures).

Each sample says what the service must do with it: ``stored`` (sanitised and kept),
``refused`` (a 4xx refusal), or ``either`` (damaged files a tolerant reader may recover).
"Either" never allows a server error, a hang, or active content or a planted string in what
is stored.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tests import hostile as h

Expect = Literal["stored", "refused", "either"]
MIB = 1 << 20


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    expect: Expect
    # Whether the planted strings must be gone from what is stored. Off only for mutated
    # files: a flipped bit can turn a removed structure into an inert one that is kept (a
    # PDF key /JS into /JT), and then its text is data, not active content.
    planted: bool = True


def _samples(
    entries: list[tuple[str, Callable[[], bytes], Expect]],
) -> list[Sample]:
    return [Sample(name, build(), expect) for name, build, expect in entries]


def base_corpus(*, big: bool = False, max_document_mib: int) -> list[Sample]:
    """Every kind of file the issue lists, once; ``big`` makes the bombs and counts larger."""
    bomb = (16 if big else 4) * h.GIB
    object_bomb = (8 if big else 2) * h.GIB
    many_pages = 200_000 if big else 100_000
    nesting = 1_000_000 if big else 100_000
    entries: list[tuple[str, Callable[[], bytes], Expect]] = [
        # ordinary files: must be stored
        ("text-pdf", lambda: h.text_pdf(pages=500 if big else 3), "stored"),
        ("plain-jpeg", h.plain_jpeg, "stored"),
        ("progressive-jpeg", lambda: h.plain_jpeg(progressive=True, restart=True), "stored"),
        ("plain-png", h.plain_png, "stored"),
        ("split-idat-png", h.png_split_idat, "stored"),
        ("plain-tiff", h.plain_tiff, "stored"),
        ("big-endian-tiff", lambda: h.plain_tiff(byte_order=">"), "stored"),
        ("lzw-tiff", h.tiff_pillow, "stored"),
        # active content and metadata: stored without it
        ("pdf-document-javascript", h.pdf_with_document_javascript, "stored"),
        ("pdf-open-action", h.pdf_with_open_action_javascript, "stored"),
        ("pdf-page-actions", h.pdf_with_page_additional_actions, "stored"),
        ("pdf-launch-action", h.pdf_with_launch_action, "stored"),
        ("pdf-embedded-file", h.pdf_with_embedded_file, "stored"),
        ("pdf-metadata", h.pdf_with_metadata, "stored"),
        ("pdf-action-loop", h.pdf_action_loop, "stored"),
        ("pdf-catalog-script-action", h.pdf_catalog_that_is_a_script_action, "refused"),
        ("pdf-owner-password-only", lambda: h.encrypted_pdf(user_password=""), "stored"),
        ("jpeg-metadata-zip-tail", h.jpeg_with_metadata, "stored"),
        ("jpeg-progressive-metadata", lambda: h.jpeg_with_metadata(progressive=True), "stored"),
        ("png-metadata-zip-tail", h.png_with_metadata, "stored"),
        ("tiff-metadata", lambda: h.tiff_with_metadata(pages=50 if big else 2), "stored"),
        ("tiff-metadata-big-endian", lambda: h.tiff_with_metadata(byte_order=">"), "stored"),
        ("tiff-hidden-data-zip-tail", h.tiff_with_hidden_data, "stored"),
        # polyglots
        ("pdf-zip-polyglot", h.pdf_zip_polyglot, "stored"),
        ("pdf-html-comment-polyglot", h.pdf_with_script_in_header_comment, "stored"),
        ("html-then-pdf", h.html_then_pdf, "refused"),
        ("jpeg-then-pdf", lambda: h.with_appended(h.plain_jpeg(), h.tail_pdf()), "stored"),
        ("jpeg-then-html", lambda: h.with_appended(h.plain_jpeg(), h.SCRIPT_HTML), "stored"),
        ("png-then-pdf", lambda: h.with_appended(h.plain_png(), h.tail_pdf()), "stored"),
        ("png-then-html", lambda: h.with_appended(h.plain_png(), h.SCRIPT_HTML), "stored"),
        ("tiff-then-pdf", lambda: h.with_appended(h.plain_tiff(), h.tail_pdf()), "stored"),
        ("pdf-then-jpeg", lambda: h.with_appended(h.text_pdf(1), h.jpeg_with_metadata()), "either"),
        ("jpeg-pdf-in-comment", h.jpeg_with_pdf_in_comment, "stored"),
        ("png-pdf-in-chunk", h.png_with_pdf_chunk, "stored"),
        ("zip", h.zip_file, "refused"),
        ("html", lambda: h.HTML, "refused"),
        ("exe", lambda: h.EXE_HEADER, "refused"),
        ("empty", lambda: h.EMPTY, "refused"),
        ("bigtiff", lambda: h.BIGTIFF_HEADER, "refused"),
        # recursion and loops
        ("pdf-deep-nesting", lambda: h.pdf_deep_nesting(nesting), "either"),
        ("pdf-page-tree-loop", h.pdf_page_tree_loop, "refused"),
        ("pdf-recursive-xobject", h.pdf_recursive_form_xobject, "stored"),
        ("pdf-self-referencing-length", h.pdf_self_referencing_length, "either"),
        ("pdf-xref-self-loop", h.pdf_xref_self_loop, "either"),
        ("pdf-xref-two-section-loop", h.pdf_xref_two_section_loop, "either"),
        ("pdf-broken-xref", h.pdf_with_broken_xref, "stored"),
        ("tiff-ifd-loop", h.tiff_ifd_loop, "refused"),
        # bombs and huge dimensions
        ("pdf-decompression-bomb", lambda: h.pdf_decompression_bomb(bomb), "stored"),
        ("pdf-object-stream-bomb", lambda: h.pdf_object_stream_bomb(object_bomb), "refused"),
        ("pdf-huge-page-count", lambda: h.pdf_huge_page_count(many_pages), "refused"),
        ("pdf-lying-page-count", h.pdf_lying_page_count, "stored"),
        ("pdf-huge-media-box", h.pdf_huge_media_box, "stored"),
        ("pdf-overflowing-media-box", lambda: h.pdf_huge_media_box(b"9" * 40), "either"),
        ("png-bomb-over-limit", lambda: h.png_bomb(20_000, 20_000), "refused"),
        ("png-bomb-under-limit", lambda: h.png_bomb(14_000, 14_000), "stored"),
        ("tiff-bomb-over-limit", lambda: h.tiff_bomb(20_000, 20_000), "refused"),
        ("tiff-bomb-under-limit", lambda: h.tiff_bomb(14_000, 14_000), "stored"),
        ("jpeg-huge-dimensions", lambda: h.jpeg_header_only(65_535, 65_535), "refused"),
        ("png-huge-dimensions", lambda: h.png_header_only(100_000, 100_000), "refused"),
        ("png-overflow-dimensions", lambda: h.png_header_only(2**31 - 1, 2**31 - 1), "refused"),
        ("tiff-huge-dimensions", lambda: h.tiff_header_only(100_000, 100_000), "refused"),
        (
            "oversize",
            lambda: h.text_pdf(1) + b"\x00" * (max_document_mib * MIB + 1),
            "refused",
        ),
        # broken files
        ("pdf-encrypted", lambda: h.encrypted_pdf(user_password="secret"), "refused"),
        ("pdf-garbage", h.pdf_garbage_after_header, "refused"),
        ("pdf-truncated", lambda: h.truncated(h.text_pdf(pages=5)), "refused"),
        ("jpeg-truncated", lambda: h.truncated(h.plain_jpeg()), "refused"),
        ("png-truncated", lambda: h.truncated(h.plain_png()), "refused"),
        ("tiff-truncated", lambda: h.truncated(h.plain_tiff()), "refused"),
    ]
    entries += [
        (f"pdf-broken-stream-{kind}", functools.partial(h.pdf_broken_stream, kind), "either")
        for kind in h.BROKEN_STREAM_KINDS
    ]
    return _samples(entries)


def mutations(base: list[Sample], rng: random.Random, count: int) -> list[Sample]:
    """``count`` damaged copies of small samples of ``base``, chosen and damaged by ``rng``."""
    small = [sample for sample in base if 0 < len(sample.data) <= 4 * MIB]
    out = []
    for _ in range(count):
        sample = rng.choice(small)
        how, data = h.mutated(sample.data, rng)
        out.append(Sample(f"{sample.name}~{how}", data, "either", planted=False))
    return out
