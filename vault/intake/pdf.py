"""PDF sanitising, done in a child process with hard limits (see :mod:`vault.intake.pdf_child`).

The spooled upload and an empty output spool are handed to the child as inherited file
descriptors; nothing is passed by name, and the child gets an empty environment (no settings,
no credentials). The parent enforces the wall-clock limit, kills the child when it runs over,
and maps every answer, or the lack of one, to a refusal message safe to show the uploader.
"""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vault.errors import InvalidDocument
from vault.intake.document import ChangeLog
from vault.intake.limits import IntakeLimits

CHILD_SCRIPT = Path(__file__).with_name("pdf_child.py")

TRUNCATED = "the PDF file is truncated"
TOO_SLOW = "the PDF took too long to process"
TOO_COMPLEX = "the PDF is too complex to process safely"
REFUSALS = {
    "encrypted": "encrypted PDFs are not accepted: remove the password first",
    "unreadable": "the PDF could not be read",
    "no-pages": "the PDF has no pages",
    "too-complex": TOO_COMPLEX,
}
KNOWN_CHANGES = frozenset(
    {
        "pdf-javascript",
        "pdf-open-action",
        "pdf-additional-actions",
        "pdf-launch-action",
        "pdf-form-action",
        "pdf-remote-action",
        "pdf-multimedia",
        "pdf-embedded-file",
        "pdf-xfa",
        "pdf-docinfo",
        "pdf-encryption",
        "xmp",
    }
)
MAX_ANSWER_BYTES = 64 * 1024
# Readers accept an end-of-file marker this far from the end (some writers append junk).
EOF_MARKER_WINDOW = 1024


@dataclass(frozen=True)
class PdfResult:
    pages: int
    length: int  # bytes written to the output spool


def sanitise_pdf(
    source: IO[bytes], target: IO[bytes], *, limits: IntakeLimits, changes: ChangeLog
) -> PdfResult:
    """Sanitise the PDF in ``source`` (a spool file) into ``target`` (an empty spool file)."""
    source.flush()
    input_size = source.seek(0, 2)
    # Output can exceed the input only by what the parser built in memory.
    output_limit = input_size + limits.pdf_memory_bytes
    command = [
        sys.executable,
        "-I",  # isolated: no PYTHON* variables, no user site, no current directory on sys.path
        str(CHILD_SCRIPT),
        str(source.fileno()),
        str(target.fileno()),
        str(limits.pdf_memory_bytes),
        str(limits.pdf_cpu_seconds),
        str(output_limit),
    ]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and script, no shell
        command,
        pass_fds=(source.fileno(), target.fileno()),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={},
        cwd="/",
    )
    try:
        answer, _ = process.communicate(timeout=limits.pdf_wall_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise InvalidDocument(TOO_SLOW) from None
    finally:
        if process.poll() is None:  # interrupted while waiting: never leave the child behind
            process.kill()
            process.communicate()

    result = _parse_answer(answer, process.returncode)
    if not result.get("ok"):
        raise InvalidDocument(REFUSALS.get(str(result.get("reason")), TOO_COMPLEX))
    # qpdf "recovers" a cut-off file, silently losing what was cut: refuse it instead.
    source.seek(max(0, input_size - EOF_MARKER_WINDOW))
    if b"%%EOF" not in source.read(EOF_MARKER_WINDOW):
        raise InvalidDocument(TRUNCATED)
    pages = result.get("pages")
    codes = result.get("changes")
    if not isinstance(pages, int) or not isinstance(codes, list):
        raise InvalidDocument(TOO_COMPLEX)
    for code in codes:
        changes.add(code if isinstance(code, str) and code in KNOWN_CHANGES else "pdf-other")
    length = target.seek(0, 2)
    target.seek(0)
    if target.read(5) != b"%PDF-":
        raise InvalidDocument(TOO_COMPLEX)
    return PdfResult(pages=pages, length=length)


def _parse_answer(answer: bytes, returncode: int) -> dict[str, object]:
    """The child's JSON answer; a crash, a kill by a limit or garbage count as too complex."""
    if returncode != 0 or len(answer) > MAX_ANSWER_BYTES:
        raise InvalidDocument(TOO_COMPLEX)
    try:
        parsed = json.loads(answer.decode("utf-8").strip() or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidDocument(TOO_COMPLEX) from None
    if not isinstance(parsed, dict):
        raise InvalidDocument(TOO_COMPLEX)
    return parsed
