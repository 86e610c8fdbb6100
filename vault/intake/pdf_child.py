"""The PDF sanitiser's child process, so that a hostile PDF can only hurt a throwaway process.

Run by :mod:`vault.intake.pdf` as ``python -I pdf_child.py IN_FD OUT_FD MEMORY CPU OUTPUT``:
it first caps its own address space (MEMORY bytes), CPU time (CPU seconds), the size of any
file it writes (OUTPUT bytes) and core dumps (none, they would hold plaintext); then it opens
the PDF on IN_FD with pikepdf, removes active content and metadata, and writes the result to
OUT_FD. It imports only the standard library and pikepdf.

It answers with exactly one line of JSON on its original stdout, and nothing else ever
reaches stdout or stderr (both point at /dev/null while the document is processed)::

    {"ok": true, "pages": 3, "changes": ["pdf-javascript", "xmp"]}
    {"ok": false, "reason": "encrypted" | "unreadable" | "no-pages" | "too-complex"}

Streams are never decoded: the output is written with ``stream_decode_level=none`` and
``compress_streams=False`` (qpdf copies each stream's encoded bytes as they are), so a
decompression bomb in a content stream passes through without being inflated. Object
streams must be inflated to be parsed; a bomb there hits the memory limit and is refused.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pikepdf

# Action types that run code, reach outside the document or submit data: dropped wherever
# they appear. /URI (a plain link) and /GoTo (in-document navigation) stay.
DROPPED_ACTIONS = {
    "/JavaScript": "pdf-javascript",
    "/Launch": "pdf-launch-action",
    "/SubmitForm": "pdf-form-action",
    "/ImportData": "pdf-form-action",
    "/ResetForm": "pdf-form-action",
    "/GoToR": "pdf-remote-action",
    "/GoToE": "pdf-remote-action",
    "/RichMediaExecute": "pdf-multimedia",
    "/Rendition": "pdf-multimedia",
}
# Annotations that exist only to carry a file or active media: removed from their page.
DROPPED_ANNOTATIONS = {
    "/FileAttachment": "pdf-embedded-file",
    "/RichMedia": "pdf-multimedia",
    "/Screen": "pdf-multimedia",
    "/Movie": "pdf-multimedia",
    "/Sound": "pdf-multimedia",
    "/3D": "pdf-multimedia",
}
# Keys that hold an action (annotations, outline items, form fields, chained actions).
ACTION_KEYS = ("/A", "/PA", "/Next")


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def apply_limits(*, memory: int, cpu_seconds: int, output_bytes: int) -> None:
    # No core dump may ever hold the document: none by size, and not dumpable at all (a
    # core_pattern pipe to a crash collector does not look at RLIMIT_CORE).
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _set_not_dumpable()
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # SIGXCPU at the soft limit ends the process; the hard limit is the backstop.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))


def _set_not_dumpable() -> None:
    pr_set_dumpable = 4
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_dumpable, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def sanitise(in_fd: int, out_fd: int) -> dict[str, object]:
    import pikepdf  # only after the limits apply: its memory counts against them

    changes: dict[str, None] = {}
    with os.fdopen(in_fd, "rb") as source, os.fdopen(out_fd, "wb") as target:
        try:
            pdf = pikepdf.open(source)
        except pikepdf.PasswordError:
            raise Refused("encrypted") from None
        with pdf:
            pages = len(pdf.pages)  # walks the page tree: a loop in it raises here
            if pages == 0:
                raise Refused("no-pages")
            if pdf.is_encrypted:  # opened without a password: only an owner password is set
                changes["pdf-encryption"] = None
            _remove_document_level(pdf, changes)
            _remove_annotations(pdf, changes)
            for obj in pdf.objects:
                _clean_object_tree(obj, changes)
            pdf.save(
                target,
                # Measured with qpdf 12.4: with compress_streams=True qpdf inflates a stream
                # with stacked filters ([/FlateDecode /FlateDecode]) to re-encode it, even at
                # decode level none; with False every stream is copied as stored.
                stream_decode_level=pikepdf.StreamDecodeLevel.none,
                compress_streams=False,
                recompress_flate=False,
                object_stream_mode=pikepdf.ObjectStreamMode.preserve,
                encryption=False,
            )
    return {"ok": True, "pages": pages, "changes": list(changes)}


def _remove_document_level(pdf: pikepdf.Pdf, changes: dict[str, None]) -> None:
    import pikepdf

    root = pdf.Root
    if "/OpenAction" in root:
        del root["/OpenAction"]
        changes["pdf-open-action"] = None
    names = root.get("/Names")
    if isinstance(names, pikepdf.Dictionary):
        for key, code in (
            ("/JavaScript", "pdf-javascript"),
            ("/EmbeddedFiles", "pdf-embedded-file"),
        ):
            if key in names:
                del names[key]
                changes[code] = None
    if "/Collection" in root:  # a portfolio: a viewer for embedded files
        del root["/Collection"]
        changes["pdf-embedded-file"] = None
    acroform = root.get("/AcroForm")
    if isinstance(acroform, pikepdf.Dictionary) and "/XFA" in acroform:
        del acroform["/XFA"]
        changes["pdf-xfa"] = None
    if "/Info" in pdf.trailer:
        del pdf.trailer["/Info"]
        changes["pdf-docinfo"] = None


def _remove_annotations(pdf: pikepdf.Pdf, changes: dict[str, None]) -> None:
    import pikepdf

    for page in pdf.pages:
        annotations = page.obj.get("/Annots")
        if not isinstance(annotations, pikepdf.Array):
            continue
        kept = []
        for annotation in annotations:
            subtype = (
                annotation.get("/Subtype") if isinstance(annotation, pikepdf.Dictionary) else None
            )
            code = DROPPED_ANNOTATIONS.get(str(subtype)) if subtype is not None else None
            if code:
                changes[code] = None
            else:
                kept.append(annotation)
        if len(kept) != len(annotations):
            page.obj["/Annots"] = pikepdf.Array(kept)


def _clean_object_tree(obj: pikepdf.Object, changes: dict[str, None]) -> None:
    """Clean an indirect object and the direct objects nested in it (indirect ones are
    visited on their own, so each object is cleaned once)."""
    import pikepdf

    pending = [obj]
    while pending:
        item = pending.pop()
        if isinstance(item, pikepdf.Dictionary | pikepdf.Stream):
            _clean_dictionary(item, changes)
            children = [item.get(key) for key in list(item.keys())]
        elif isinstance(item, pikepdf.Array):
            children = list(item)
        else:
            continue
        pending.extend(
            child
            for child in children
            if isinstance(child, pikepdf.Dictionary | pikepdf.Array) and not child.is_indirect
        )


def _clean_dictionary(item: pikepdf.Object, changes: dict[str, None]) -> None:
    import pikepdf

    for key, code in (
        ("/AA", "pdf-additional-actions"),  # event scripts of the catalog, pages, fields
        ("/Metadata", "xmp"),
        ("/EF", "pdf-embedded-file"),  # the embedded streams of a file specification
        ("/JS", "pdf-javascript"),
    ):
        if key in item:
            del item[key]
            changes[code] = None
    action_code = _dropped_action_code(item)
    if action_code:
        # An action's /Type is /Action if present. A catalog, page tree node or page that is
        # also a script action is no document a writer makes (a damaged one, recovered by qpdf,
        # can be): defanging it would strip its pages, and storing that would lose them.
        kind = item.get("/Type")
        if (kind is not None and kind != pikepdf.Name.Action) or "/Pages" in item:
            raise Refused("unreadable")
        # Defang the action itself, wherever it is referenced from; holders drop it below.
        for key in list(item.keys()):
            if key not in ("/Type", "/S"):
                del item[key]
        changes[action_code] = None
    for key in ACTION_KEYS:
        value = item.get(key)
        if isinstance(value, pikepdf.Array):
            kept = []
            for action in value:
                if dropped := _dropped_action_code(action):
                    changes[dropped] = None
                else:
                    kept.append(action)
            if len(kept) != len(value):
                item[key] = pikepdf.Array(kept)
        elif value is not None and (dropped := _dropped_action_code(value)):
            del item[key]
            changes[dropped] = None


def _dropped_action_code(value: pikepdf.Object) -> str | None:
    import pikepdf

    if not isinstance(value, pikepdf.Dictionary):
        return None
    subtype = value.get("/S")
    if not isinstance(subtype, pikepdf.Name):
        return None
    return DROPPED_ACTIONS.get(str(subtype))


def main(argv: list[str]) -> int:
    in_fd, out_fd, memory, cpu_seconds, output_bytes = (int(arg) for arg in argv[1:6])
    # Keep the real stdout for the one answer line; send everything else to /dev/null.
    answer_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    warnings.simplefilter("ignore")
    apply_limits(memory=memory, cpu_seconds=cpu_seconds, output_bytes=output_bytes)
    import pikepdf

    answer: dict[str, object]
    try:
        answer = sanitise(in_fd, out_fd)
    except Refused as refusal:
        answer = {"ok": False, "reason": refusal.reason}
    except (MemoryError, RecursionError):
        answer = {"ok": False, "reason": "too-complex"}
    except (pikepdf.PdfError, ValueError, TypeError, KeyError, IndexError):
        # pikepdf raises these on structures it cannot make sense of.
        answer = {"ok": False, "reason": "unreadable"}
    os.write(answer_fd, (json.dumps(answer) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
