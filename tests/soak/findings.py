"""What must never be in a stored document: the planted strings of :mod:`tests.hostile`, and in
a PDF any active content. Streams are decoded with a cap, so a bomb that was rightly passed
through untouched is not inflated here either."""

from __future__ import annotations

import io
import zlib

import pikepdf

from tests import hostile

PLANTED = tuple(
    text.encode()
    for text in (
        hostile.PLANTED_NAME,
        hostile.PLANTED_JS,
        hostile.PLANTED_ATTACHMENT,
        hostile.PLANTED_TAIL,
    )
)
# Keys that carry active content or attached files, and action types that run or launch.
FORBIDDEN_KEYS = frozenset({"/JavaScript", "/OpenAction", "/AA", "/EmbeddedFiles", "/JS", "/EF"})
FORBIDDEN_ACTIONS = frozenset({"/JavaScript", "/Launch", "/SubmitForm", "/ImportData"})
DEFANGED_KEYS = frozenset({"/Type", "/S"})
DECODE_CAP = 16 << 20
MAGIC = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}


def planted_in(data: bytes) -> list[str]:
    return [text.decode() for text in PLANTED if text in data]


def findings(data: bytes, media_type: str, *, planted: bool = True) -> list[str]:
    """Everything wrong with a stored document; empty when it is clean."""
    found = []
    if not data.startswith(MAGIC.get(media_type, (b"\x00\x00\x00\x00\x00\x00",))):
        found.append(f"content does not start like {media_type}")
    if planted:
        found += [f"planted {text!r} in the bytes" for text in planted_in(data)]
    if media_type == "application/pdf":
        found += pdf_findings(data, planted=planted)
    return found


def pdf_findings(data: bytes, *, planted: bool = True) -> list[str]:
    """Active content anywhere in the PDF's objects; planted strings in its strings and in its
    (capped, decoded) streams."""
    found: list[str] = []
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PdfError as error:
        return [f"stored PDF does not open: {type(error).__name__}"]
    with pdf:
        for obj in pdf.objects:
            pending = [obj]
            while pending:
                item = pending.pop()
                if isinstance(item, pikepdf.String):
                    if planted:
                        found += [f"planted {t!r} in a string" for t in planted_in(bytes(item))]
                    continue
                if isinstance(item, pikepdf.Dictionary | pikepdf.Stream):
                    keys = set(item.keys())
                    found += [f"{key} in an object" for key in sorted(keys & FORBIDDEN_KEYS)]
                    action = item.get("/S")
                    # The sanitiser defangs such an action wherever it is (only /Type and /S
                    # stay: nothing to run, launch or submit) and drops it from the keys that
                    # hold actions; a defanged one stays only under a key nobody reads.
                    if (
                        isinstance(action, pikepdf.Name)
                        and str(action) in FORBIDDEN_ACTIONS
                        and keys - DEFANGED_KEYS
                    ):
                        found.append(f"a {action} action")
                    if isinstance(item, pikepdf.Stream) and planted:
                        decoded = _decoded_capped(item)
                        found += [f"planted {t!r} in a stream" for t in planted_in(decoded)]
                    children = [item.get(key) for key in keys]
                elif isinstance(item, pikepdf.Array):
                    children = list(item)
                else:
                    continue
                pending.extend(
                    child
                    for child in children
                    if isinstance(child, pikepdf.Object) and not child.is_indirect
                )
    return sorted(set(found))


def _decoded_capped(stream: pikepdf.Stream) -> bytes:
    """The stream's bytes with its Flate filters undone, at most ``DECODE_CAP`` bytes each."""
    data = stream.read_raw_bytes()
    filters = stream.get("/Filter")
    names = [filters] if isinstance(filters, pikepdf.Name) else list(filters or [])
    for name in names:
        if str(name) != "/FlateDecode":
            break
        try:
            data = zlib.decompressobj().decompress(data, DECODE_CAP)
        except zlib.error:
            break
    return data
