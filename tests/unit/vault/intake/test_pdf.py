"""PDF: active content and metadata removed in a limited child process; hostile files end
within the limits, never by crashing or hanging the service."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
import pytest

from tests import hostile
from vault.errors import InvalidDocument
from vault.intake import IntakeLimits, pdf
from vault.intake.pdf import REFUSALS, TOO_COMPLEX, TOO_SLOW

UNREADABLE = REFUSALS["unreadable"]
# Built at import: encrypting makes qpdf open /dev/urandom for good, which would otherwise
# count as a descriptor leaked by the test that built it.
PASSWORD_PROTECTED = hostile.encrypted_pdf(user_password="secret")
OWNER_PASSWORD_ONLY = hostile.encrypted_pdf(user_password="")


def everything(data: bytes) -> bytes:
    """The PDF with every object written out and every stream decoded, for searching."""
    with pikepdf.open(io.BytesIO(data)) as document:
        out = io.BytesIO()
        document.save(
            out,
            object_stream_mode=pikepdf.ObjectStreamMode.disable,
            stream_decode_level=pikepdf.StreamDecodeLevel.generalized,
            compress_streams=False,
        )
        return out.getvalue()


def page_contents(data: bytes) -> list[bytes]:
    with pikepdf.open(io.BytesIO(data)) as document:
        return [page.obj.Contents.read_bytes() for page in document.pages]


def child_processes() -> set[str]:
    """Live children of this process (zombies included, until reaped)."""
    children: set[str] = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as listing:
            children.update(listing.read().split())
    return children


def test_a_clean_pdf_keeps_its_pages_and_content(run: Callable[..., Any]) -> None:
    original = hostile.text_pdf(pages=3)
    outcome = run(original)
    assert outcome.media_type == "application/pdf"
    assert outcome.pages == 3
    assert outcome.changes == ()
    assert page_contents(outcome.data) == page_contents(original)


def test_document_javascript_is_removed(run: Callable[..., Any]) -> None:
    original = hostile.pdf_with_document_javascript()
    assert hostile.PLANTED_JS.encode() in everything(original)
    outcome = run(original)
    assert outcome.changes == ("pdf-javascript",)
    assert hostile.PLANTED_JS.encode() not in everything(outcome.data)
    with pikepdf.open(io.BytesIO(outcome.data)) as document:
        assert "/JavaScript" not in document.Root.Names


def test_open_action_and_document_actions_are_removed(run: Callable[..., Any]) -> None:
    outcome = run(hostile.pdf_with_open_action_javascript())
    assert set(outcome.changes) == {"pdf-open-action", "pdf-additional-actions", "pdf-javascript"}
    assert hostile.PLANTED_JS.encode() not in everything(outcome.data)
    with pikepdf.open(io.BytesIO(outcome.data)) as document:
        assert "/OpenAction" not in document.Root
        assert "/AA" not in document.Root


def test_page_actions_are_removed(run: Callable[..., Any]) -> None:
    original = hostile.pdf_with_page_additional_actions()
    outcome = run(original)
    assert set(outcome.changes) == {"pdf-additional-actions", "pdf-javascript"}
    assert hostile.PLANTED_JS.encode() not in everything(outcome.data)
    with pikepdf.open(io.BytesIO(outcome.data)) as document:
        assert all("/AA" not in page.obj for page in document.pages)
    assert page_contents(outcome.data) == page_contents(original)


def test_launch_submit_and_chained_script_actions_are_removed(run: Callable[..., Any]) -> None:
    outcome = run(hostile.pdf_with_launch_action())
    assert set(outcome.changes) == {"pdf-launch-action", "pdf-javascript", "pdf-form-action"}
    plain = everything(outcome.data)
    for gone in (b"/Launch", b"/SubmitForm", b"cmd.exe", hostile.PLANTED_JS.encode()):
        assert gone not in plain
    with pikepdf.open(io.BytesIO(outcome.data)) as document:
        links = list(document.pages[0].obj.Annots)
        assert len(links) == 3  # the links stay, inert
        actions = [link.get("/A") for link in links]
        assert actions[0] is None  # Launch
        assert pikepdf.Name.GoTo == actions[1].S  # in-document navigation stays ...
        assert "/Next" not in actions[1] or len(actions[1].Next) == 0  # ... its script does not
        assert pikepdf.Name.URI == actions[2].S  # plain links stay
        assert "/A" not in document.Root.Outlines.First


def test_embedded_files_are_removed(run: Callable[..., Any]) -> None:
    original = hostile.pdf_with_embedded_file()
    assert hostile.PLANTED_ATTACHMENT.encode() in everything(original)
    outcome = run(original)
    assert outcome.changes == ("pdf-embedded-file",)
    assert hostile.PLANTED_ATTACHMENT.encode() not in everything(outcome.data)
    with pikepdf.open(io.BytesIO(outcome.data)) as document:
        assert len(document.attachments) == 0
        assert "/Annots" not in document.pages[0].obj or len(document.pages[0].obj.Annots) == 0


def test_metadata_docinfo_and_xfa_are_removed(run: Callable[..., Any]) -> None:
    original = hostile.pdf_with_metadata()
    name = hostile.PLANTED_NAME.encode()
    assert name in everything(original)
    outcome = run(original)
    assert set(outcome.changes) == {"xmp", "pdf-docinfo", "pdf-xfa"}
    assert name not in outcome.data
    assert name not in everything(outcome.data)
    with pikepdf.open(io.BytesIO(outcome.data)) as document:
        assert "/Metadata" not in document.Root
        assert "/Metadata" not in document.pages[0].obj
        assert "/Info" not in document.trailer
        assert "/XFA" not in document.Root.AcroForm


def test_a_password_protected_pdf_is_refused(run: Callable[..., Any]) -> None:
    with pytest.raises(InvalidDocument, match=f"^{REFUSALS['encrypted']}$") as refused:
        run(PASSWORD_PROTECTED)
    assert refused.type is InvalidDocument


def test_owner_password_only_is_removed_not_refused(run: Callable[..., Any]) -> None:
    # Opens without a password (permission flags only): readable, so sanitised and decrypted.
    outcome = run(OWNER_PASSWORD_ONLY)
    assert outcome.changes == ("pdf-encryption",)
    with pikepdf.open(io.BytesIO(outcome.data)) as document:
        assert not document.is_encrypted
        assert len(document.pages) == 1


def test_a_broken_xref_is_recovered(run: Callable[..., Any]) -> None:
    outcome = run(hostile.pdf_with_broken_xref())
    assert outcome.pages == 2
    with pikepdf.open(io.BytesIO(outcome.data)) as document:
        assert len(document.pages) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(hostile.pdf_garbage_after_header, UNREADABLE, id="garbage-after-header"),
        pytest.param(hostile.pdf_page_tree_loop, UNREADABLE, id="page-tree-loop"),
        pytest.param(lambda: b"%PDF-1.7\n%%EOF\n", UNREADABLE, id="header-only"),
    ],
)
def test_unreadable_pdfs_are_refused(
    run: Callable[..., Any], make: Callable[[], bytes], message: str
) -> None:
    with pytest.raises(InvalidDocument, match=f"^{re.escape(message)}$") as refused:
        run(make())
    assert refused.type is InvalidDocument


def test_a_catalog_that_is_also_a_script_action_is_refused(run: Callable[..., Any]) -> None:
    # Found by the hostile-upload soak: a damaged file whose catalog qpdf recovered merged
    # with a JavaScript action was stored with its page tree defanged away.
    with pytest.raises(InvalidDocument, match=UNREADABLE):
        run(hostile.pdf_catalog_that_is_a_script_action())


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (0.1, UNREADABLE),  # not even one object survives: nothing to recover
        (0.3, pdf.TRUNCATED),  # the rest qpdf would recover, with pages missing
        (0.5, pdf.TRUNCATED),
        (0.7, pdf.TRUNCATED),
        (0.9, pdf.TRUNCATED),
        (0.99, pdf.TRUNCATED),
    ],
)
def test_a_cut_off_pdf_is_refused_not_recovered(
    run: Callable[..., Any], keep: float, message: str
) -> None:
    with pytest.raises(InvalidDocument, match=f"^{message}$") as refused:
        run(hostile.truncated(hostile.text_pdf(pages=5), keep))
    assert refused.type is InvalidDocument


def test_junk_after_the_end_marker_is_tolerated(run: Callable[..., Any]) -> None:
    assert run(hostile.text_pdf() + b"\x00" * 500).pages == 3


def test_deep_nesting_ends_within_the_limits(run: Callable[..., Any]) -> None:
    # 100 000 levels of arrays and dictionaries: qpdf stops parsing far above that depth and
    # drops what it cannot read; the page itself survives.
    outcome = run(hostile.pdf_deep_nesting(100_000))
    assert outcome.pages == 1
    assert len(outcome.data) < 10_000


def test_a_decompression_bomb_is_passed_through_without_inflating(
    run: Callable[..., Any],
) -> None:
    original = hostile.pdf_decompression_bomb(4 * hostile.GIB)
    # 256 MiB of address space could not hold a fraction of the 4 GiB: the child never
    # inflates the stream, it copies the encoded bytes.
    outcome = run(original)
    assert outcome.pages == 1
    with (
        pikepdf.open(io.BytesIO(original)) as before,
        pikepdf.open(io.BytesIO(outcome.data)) as after,
    ):
        assert (
            after.pages[0].obj.Contents.read_raw_bytes()
            == before.pages[0].obj.Contents.read_raw_bytes()
        )


def test_an_object_stream_bomb_is_refused_within_the_limits(run: Callable[..., Any]) -> None:
    # The page sits in an object stream inflating to 2 GiB: it cannot be read within 256 MiB.
    with pytest.raises(InvalidDocument) as refused:
        run(hostile.pdf_object_stream_bomb(2 * hostile.GIB))
    assert str(refused.value) in {REFUSALS["no-pages"], TOO_COMPLEX}


def test_a_huge_page_count_hits_the_memory_limit(run: Callable[..., Any]) -> None:
    with pytest.raises(InvalidDocument, match=f"^{TOO_COMPLEX}$"):
        run(hostile.pdf_huge_page_count(100_000))


def test_the_cpu_limit_ends_the_child(run: Callable[..., Any], limits: IntakeLimits) -> None:
    lots_of_memory = dataclasses.replace(limits, pdf_memory_bytes=2 << 30, pdf_cpu_seconds=1)
    with pytest.raises(InvalidDocument, match=f"^{TOO_COMPLEX}$"):
        run(hostile.pdf_huge_page_count(100_000), lots_of_memory)


def test_a_lying_page_count_is_corrected(run: Callable[..., Any]) -> None:
    outcome = run(hostile.pdf_lying_page_count())
    assert outcome.pages == 1


def test_the_wall_clock_limit_kills_the_child(
    run: Callable[..., Any], limits: IntakeLimits
) -> None:
    children_before = child_processes()
    impatient = dataclasses.replace(limits, pdf_wall_seconds=0.001)
    with pytest.raises(InvalidDocument, match=f"^{TOO_SLOW}$"):
        run(hostile.text_pdf(), impatient)
    assert child_processes() == children_before  # killed and reaped


@pytest.mark.parametrize(
    ("script", "message"),
    [
        pytest.param("import os; os.abort()", TOO_COMPLEX, id="crash"),
        pytest.param("import sys; sys.exit(3)", TOO_COMPLEX, id="non-zero-exit"),
        pytest.param("print('not json')", TOO_COMPLEX, id="garbage-answer"),
        pytest.param("print('[1, 2]')", TOO_COMPLEX, id="answer-not-an-object"),
        pytest.param("pass", TOO_COMPLEX, id="no-answer"),
        pytest.param(
            'print(\'{"ok": false, "reason": "encrypted"}\')', REFUSALS["encrypted"], id="refusal"
        ),
        pytest.param(
            'print(\'{"ok": false, "reason": "whatever"}\')', TOO_COMPLEX, id="unknown-reason"
        ),
        pytest.param(
            'print(\'{"ok": true, "pages": 1, "changes": []}\')', TOO_COMPLEX, id="empty-output"
        ),
    ],
)
def test_any_failure_of_the_child_is_a_refusal(
    run: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
    message: str,
) -> None:
    fake_child = tmp_path / "child.py"
    fake_child.write_text(script)
    monkeypatch.setattr(pdf, "CHILD_SCRIPT", fake_child)
    with pytest.raises(InvalidDocument, match=f"^{re.escape(message)}$"):
        run(hostile.text_pdf())


def test_change_codes_from_the_child_are_checked(
    run: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_child = tmp_path / "child.py"
    fake_child.write_text(
        "import os, sys\n"
        "os.write(int(sys.argv[2]), b'%PDF-1.7 fake')\n"
        'print(\'{"ok": true, "pages": 1, "changes": ["xmp", "<script>"]}\')\n'
    )
    monkeypatch.setattr(pdf, "CHILD_SCRIPT", fake_child)
    outcome = run(hostile.text_pdf())
    assert outcome.changes == ("xmp", "pdf-other")
    assert outcome.data == b"%PDF-1.7 fake"


def test_the_child_writes_one_json_line_and_nothing_else(tmp_path: Path) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(hostile.pdf_with_broken_xref())  # qpdf warns while recovering
    target = tmp_path / "out.pdf"
    limits = (str(256 << 20), "5", str(64 << 20))  # memory, CPU seconds, output bytes
    with source.open("rb") as reading, target.open("wb") as writing:
        fds = (reading.fileno(), writing.fileno())
        finished = subprocess.run(
            [sys.executable, "-I", str(pdf.CHILD_SCRIPT), *map(str, fds), *limits],
            pass_fds=fds,
            capture_output=True,
            env={},
            timeout=30,
            check=True,
        )
    assert finished.stderr == b""
    lines = finished.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {"ok": True, "pages": 2, "changes": []}
    assert target.read_bytes().startswith(b"%PDF-")


def test_the_child_gets_no_environment(
    run: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDVAULT_DATABASE_URL", "postgresql://user:secret@db/medvault")
    fake_child = tmp_path / "child.py"
    fake_child.write_text(
        "import json, os, sys\n"
        "os.write(int(sys.argv[2]), b'%PDF-' + json.dumps(sorted(os.environ)).encode())\n"
        'print(\'{"ok": true, "pages": 1, "changes": []}\')\n'
    )
    monkeypatch.setattr(pdf, "CHILD_SCRIPT", fake_child)
    assert json.loads(run(hostile.text_pdf()).data[5:]) in ([], ["LC_CTYPE"])


def test_the_child_limits_itself_before_reading_anything() -> None:
    probe = (
        "import ctypes, importlib.util, resource, sys\n"
        f"spec = importlib.util.spec_from_file_location('child', {str(pdf.CHILD_SCRIPT)!r})\n"
        "child = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(child)\n"
        "child.apply_limits(memory=300 << 20, cpu_seconds=7, output_bytes=5 << 20)\n"
        "limits = [resource.getrlimit(getattr(resource, name))\n"
        "          for name in ('RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_CORE')]\n"
        "dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE\n"
        "print(limits, dumpable)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, timeout=30, check=True
    )
    assert finished.stdout.decode().strip() == (
        f"[({300 << 20}, {300 << 20}), (7, 8), ({5 << 20}, {5 << 20}), (0, 0)] 0"
    )
