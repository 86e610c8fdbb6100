"""Generators of hostile and ordinary upload files, built in code (no binary fixtures).

Each function returns the bytes of one file. The planted strings below are what a test searches
the sanitised output for: if one of them survives, metadata or active content got through.
Reused by the hostile-file suite that drives the upload endpoint.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from collections.abc import Iterable, Sequence

import pikepdf
from pikepdf import Array, Dictionary, Name, String
from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

PLANTED_NAME = "Erika Mustermann"
PLANTED_JS = "medvaultPlantedScript"
PLANTED_ATTACHMENT = "medvault planted attachment payload"
PLANTED_TAIL = "medvault planted polyglot tail"
GPS_LATITUDE = ((52, 1), (31, 1), (1234, 100))

GIB = 1 << 30


# --------------------------------------------------------------------------------------------
# PDF: well-formed documents with active content or metadata (built with pikepdf)
# --------------------------------------------------------------------------------------------


def _new_pdf(pages: int = 1, text: str = "medvault test page") -> pikepdf.Pdf:
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        Dictionary(Type=Name.Font, Subtype=Name.Type1, BaseFont=Name.Helvetica)
    )
    for number in range(1, pages + 1):
        content = pdf.make_stream(b"BT /F1 12 Tf 72 720 Td (%s %d) Tj ET" % (text.encode(), number))
        page = Dictionary(
            Type=Name.Page,
            MediaBox=Array([0, 0, 612, 792]),
            Contents=content,
            Resources=Dictionary(Font=Dictionary(F1=font)),
        )
        pdf.pages.append(pikepdf.Page(page))
    return pdf


def _pdf_bytes(pdf: pikepdf.Pdf, **save_options: object) -> bytes:
    out = io.BytesIO()
    pdf.save(out, **save_options)  # type: ignore[arg-type]
    return out.getvalue()


def _js_action(pdf: pikepdf.Pdf) -> pikepdf.Object:
    return pdf.make_indirect(
        Dictionary(S=Name.JavaScript, JS=String(f"app.alert('{PLANTED_JS}');"))
    )


def text_pdf(pages: int = 3, text: str = "medvault test page") -> bytes:
    """An ordinary text PDF with nothing to remove (also the benchmark input)."""
    return _pdf_bytes(_new_pdf(pages, text))


def pdf_with_document_javascript() -> bytes:
    pdf = _new_pdf()
    pdf.Root.Names = Dictionary(
        JavaScript=Dictionary(Names=Array([String("init"), _js_action(pdf)]))
    )
    return _pdf_bytes(pdf)


def pdf_with_open_action_javascript() -> bytes:
    pdf = _new_pdf()
    pdf.Root.OpenAction = _js_action(pdf)
    pdf.Root.AA = Dictionary(WC=_js_action(pdf))  # document will-close script
    return _pdf_bytes(pdf)


def pdf_with_page_additional_actions() -> bytes:
    pdf = _new_pdf(pages=2)
    pdf.pages[0].obj.AA = Dictionary(O=_js_action(pdf))
    pdf.pages[1].obj.AA = Dictionary(C=_js_action(pdf))
    return _pdf_bytes(pdf)


def pdf_with_launch_action() -> bytes:
    """A Launch link (must go), a JS link chained via /Next (must go) and a URI link (stays)."""
    pdf = _new_pdf()
    launch = Dictionary(
        Type=Name.Annot,
        Subtype=Name.Link,
        Rect=Array([72, 600, 300, 620]),
        A=Dictionary(
            S=Name.Launch,
            Win=Dictionary(F=String("cmd.exe"), P=String(f"/c echo {PLANTED_JS}")),
        ),
    )
    chained = Dictionary(
        Type=Name.Annot,
        Subtype=Name.Link,
        Rect=Array([72, 560, 300, 580]),
        A=Dictionary(
            S=Name.GoTo,
            D=Array([pdf.pages[0].obj, Name.Fit]),
            Next=Array([_js_action(pdf)]),
        ),
    )
    uri = Dictionary(
        Type=Name.Annot,
        Subtype=Name.Link,
        Rect=Array([72, 500, 300, 520]),
        A=Dictionary(S=Name.URI, URI=String("https://example.org/")),
    )
    pdf.pages[0].obj.Annots = Array(
        [pdf.make_indirect(launch), pdf.make_indirect(chained), pdf.make_indirect(uri)]
    )
    outline_item = pdf.make_indirect(
        Dictionary(
            Title=String("Chapter"),
            A=Dictionary(S=Name.SubmitForm, F=String("https://evil.example/")),
        )
    )
    outlines = pdf.make_indirect(
        Dictionary(Type=Name.Outlines, First=outline_item, Last=outline_item, Count=1)
    )
    outline_item.Parent = outlines
    pdf.Root.Outlines = outlines
    return _pdf_bytes(pdf)


def pdf_with_embedded_file() -> bytes:
    """An attachment in /Names/EmbeddedFiles and a FileAttachment annotation."""
    pdf = _new_pdf()
    payload = PLANTED_ATTACHMENT.encode()
    pdf.attachments["notes.txt"] = pikepdf.AttachedFileSpec(pdf, payload, filename="notes.txt")
    embedded = pdf.make_stream(payload, Type=Name.EmbeddedFile)
    filespec = Dictionary(Type=Name.Filespec, F=String("more.txt"), EF=Dictionary(F=embedded))
    annotation = Dictionary(
        Type=Name.Annot,
        Subtype=Name.FileAttachment,
        Rect=Array([72, 400, 92, 420]),
        FS=filespec,
    )
    pdf.pages[0].obj.Annots = Array([pdf.make_indirect(annotation)])
    return _pdf_bytes(pdf, compress_streams=False)


def pdf_with_metadata() -> bytes:
    """XMP on the catalog and on a page, a DocInfo dictionary and XFA, all naming the patient."""
    pdf = _new_pdf()
    with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
        meta["dc:creator"] = [PLANTED_NAME]
        meta["dc:title"] = f"Befund {PLANTED_NAME}"
    pdf.docinfo[Name.Author] = String(PLANTED_NAME)
    pdf.docinfo[Name.Title] = String(f"Befund {PLANTED_NAME}")
    pdf.pages[0].obj.Metadata = pdf.make_stream(
        f"<x:xmpmeta><dc:creator>{PLANTED_NAME}</dc:creator></x:xmpmeta>".encode(),
        Type=Name.Metadata,
        Subtype=Name.XML,
    )
    xfa = pdf.make_stream(f"<xdp:xdp><field>{PLANTED_NAME}</field></xdp:xdp>".encode())
    pdf.Root.AcroForm = Dictionary(Fields=Array([]), XFA=xfa)
    return _pdf_bytes(pdf, compress_streams=False)


def encrypted_pdf(*, user_password: str = "secret") -> bytes:
    """Encrypted PDF. With an empty user password it opens without one (owner password only)."""
    pdf = _new_pdf()
    return _pdf_bytes(pdf, encryption=pikepdf.Encryption(owner="owner-pw", user=user_password))


def pdf_with_broken_xref() -> bytes:
    """A valid PDF whose cross-reference table and startxref point to the wrong places."""
    data = bytearray(
        _pdf_bytes(_new_pdf(pages=2), object_stream_mode=pikepdf.ObjectStreamMode.disable)
    )
    xref_at = data.rindex(b"\nxref\n") + 1
    table_start = data.index(b"0000000000 65535 f", xref_at)
    trailer_at = data.index(b"trailer", xref_at)
    scrambled = bytearray(data[table_start:trailer_at])
    for i in range(20, len(scrambled), 20):  # shift every in-use offset by 7 bytes
        offset = int(scrambled[i : i + 10])
        scrambled[i : i + 10] = b"%010d" % (offset + 7)
    data[table_start:trailer_at] = scrambled
    startxref_at = data.rindex(b"startxref\n") + len(b"startxref\n")
    eol = data.index(b"\n", startxref_at)
    data[startxref_at:eol] = b"%d" % (xref_at + 3)
    return bytes(data)


def pdf_garbage_after_header() -> bytes:
    rng = random.Random(1234)
    return b"%PDF-1.7\n" + bytes(rng.getrandbits(8) for _ in range(8192))


# --------------------------------------------------------------------------------------------
# PDF: structurally hostile documents, built as raw bytes
# --------------------------------------------------------------------------------------------


def raw_pdf(objects: Sequence[bytes], *, root: int = 1) -> bytes:
    """A PDF from object bodies (object n is objects[n-1]) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\n" % (len(objects) + 1, root)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


_PAGE_CONTENT = _stream(b"BT /F1 12 Tf 72 720 Td (hello) Tj ET")


def pdf_deep_nesting(levels: int = 100_000) -> bytes:
    """A page carrying an array and a dictionary nested ``levels`` deep."""
    deep_array = b"[" * levels + b"1" + b"]" * levels
    deep_dict = b"<< /A " * levels + b"1" + b" >>" * levels
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Deep 5 0 R /Deeper 6 0 R >>",
            _PAGE_CONTENT,
            deep_array,
            deep_dict,
        ]
    )


def pdf_page_tree_loop() -> bytes:
    """The page tree's intermediate node lists the root as its own kid."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R 3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R >>",
            _PAGE_CONTENT,
        ]
    )


def flate_bomb(decoded_size: int) -> bytes:
    """zlib data that inflates to ``decoded_size`` zero bytes (a multiple of 1 MiB).

    Built without compressing the zeros: after a full flush, deflate output for an identical
    block of input is identical, so one compressed MiB is repeated and the Adler-32 of the
    all-zero data (a=1, b=n mod 65521) is written by hand.
    """
    unit = 1 << 20
    compressor = zlib.compressobj(9)
    first = compressor.compress(bytes(unit)) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = first[2:]  # without the 2-byte zlib header
    final_block = compressor.flush(zlib.Z_FINISH)[:-4]
    adler = ((decoded_size % 65521) << 16) | 1
    units = decoded_size // unit
    return first + repeat * (units - 1) + final_block + adler.to_bytes(4, "big")


def pdf_decompression_bomb(decoded_size: int = 4 * GIB) -> bytes:
    """A page content stream, Flate inside Flate, inflating to ``decoded_size`` bytes."""
    inner = flate_bomb(decoded_size)
    outer = zlib.compress(inner, 9)
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _stream(outer, b"/Filter [/FlateDecode /FlateDecode]"),
        ]
    )


def pdf_object_stream_bomb(decoded_size: int = 2 * GIB) -> bytes:
    """An object stream (which a reader must inflate to find objects) inflating to GiBs.

    Object 3 (the page) lives in the object stream, followed by ``decoded_size`` zero bytes,
    so the page cannot be read without inflating the flood. Uses a cross-reference stream,
    the only way to point into an object stream.
    """
    decoded_head = b"3 0 << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> "
    first = len(b"3 0 ")
    unit = 1 << 20
    compressor = zlib.compressobj(9)
    head = compressor.compress(decoded_head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(unit)) + compressor.flush(zlib.Z_FULL_FLUSH)
    final_block = compressor.flush(zlib.Z_FINISH)[:-4]
    units = decoded_size // unit
    adler = zlib.adler32(decoded_head)
    low, high = adler & 0xFFFF, adler >> 16
    high = (high + low * units * unit) % 65521  # zero bytes leave the low sum unchanged
    body = head + block * units + final_block + ((high << 16) | low).to_bytes(4, "big")

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    plain_objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        4: _stream(
            zlib.compress(body, 9),
            b"/Type /ObjStm /N 1 /First %d /Filter [/FlateDecode /FlateDecode]" % first,
        ),
    }
    for number, object_body in plain_objects.items():
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + object_body + b"\nendobj\n"
    xref_at = len(out)
    rows = [
        b"\x00\x00\x00\x00\x00\xff\xff",
        b"\x01" + offsets[1].to_bytes(4, "big") + b"\x00\x00",
        b"\x01" + offsets[2].to_bytes(4, "big") + b"\x00\x00",
        b"\x02" + (4).to_bytes(4, "big") + b"\x00\x00",  # object 3: index 0 in stream 4
        b"\x01" + offsets[4].to_bytes(4, "big") + b"\x00\x00",
        b"\x01" + xref_at.to_bytes(4, "big") + b"\x00\x00",
    ]
    xref = _stream(b"".join(rows), b"/Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R")
    out += b"5 0 obj\n" + xref + b"\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def pdf_huge_page_count(pages: int = 100_000) -> bytes:
    """``pages`` real page objects sharing one content stream."""
    first_page = 4
    kids = b" ".join(b"%d 0 R" % (first_page + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        _PAGE_CONTENT,
    ]
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>"
    objects.extend(page for _ in range(pages))
    return raw_pdf(objects)


def pdf_lying_page_count() -> bytes:
    """One page, but the page tree claims two billion."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 2147483647 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _PAGE_CONTENT,
        ]
    )


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def sample_image(width: int = 48, height: int = 32, mode: str = "RGB") -> Image.Image:
    """A deterministic image with structure (gradients), so pixel comparisons mean something."""
    bands = len(mode)
    data = bytes(
        (x * 5 + y * 3 + band * 70 + (x * y) % 17) % 256
        for y in range(height)
        for x in range(width)
        for band in range(bands)
    )
    return Image.frombytes(mode, (width, height), data)


def srgb_icc_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display (kept)
    exif[0x013B] = PLANTED_NAME  # Artist
    exif[0x010E] = f"Wound photo of {PLANTED_NAME}"  # ImageDescription
    exif.get_ifd(0x8769)[0xA430] = PLANTED_NAME  # CameraOwnerName
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = tuple(n / d for n, d in GPS_LATITUDE)
    gps[3] = "E"
    gps[4] = (13.0, 24.0, 56.78)
    return exif


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _insert_after_soi(jpeg: bytes, segments: Iterable[bytes]) -> bytes:
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _zip_payload() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", f"{PLANTED_TAIL} {PLANTED_NAME}")
    return out.getvalue()


def plain_jpeg(*, progressive: bool = False, restart: bool = False, icc: bool = False) -> bytes:
    """A JPEG with nothing to remove except Pillow's own JFIF header (kept)."""
    out = io.BytesIO()
    options: dict[str, object] = {"quality": 90, "progressive": progressive}
    if restart:
        options["restart_marker_rows"] = 1
    if icc:
        options["icc_profile"] = srgb_icc_profile()
    sample_image(64, 48).save(out, "JPEG", **options)
    return out.getvalue()


def jpeg_with_metadata(*, progressive: bool = False, restart: bool = False) -> bytes:
    """EXIF with GPS and the name, XMP, IPTC, a comment, a JFIF thumbnail, an ICC profile
    (kept), and a ZIP appended after EOI (a polyglot)."""
    out = io.BytesIO()
    options: dict[str, object] = {
        "quality": 90,
        "progressive": progressive,
        "exif": _exif_with_gps().tobytes(),
        "comment": f"patient {PLANTED_NAME}".encode(),
        "icc_profile": srgb_icc_profile(),
    }
    if restart:
        options["restart_marker_rows"] = 1
    sample_image(64, 48).save(out, "JPEG", **options)
    jpeg = out.getvalue()
    xmp = (
        b"http://ns.adobe.com/xap/1.0/\x00"
        + f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>{PLANTED_NAME}</dc:creator>'
        "<exif:GPSLatitude>52,31.2N</exif:GPSLatitude></x:xmpmeta>".encode()
    )
    name = PLANTED_NAME.encode()
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00" + struct.pack(">I", len(name) + 5)
    iptc += b"\x1c\x02\x50" + struct.pack(">H", len(name)) + name
    # JFIF 1.02 with a 2x1 RGB thumbnail: kept as JFIF, the thumbnail dropped.
    jfif_with_thumbnail = b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x02\x01" + bytes(6)
    assert jpeg[2:4] == b"\xff\xe0"  # replace Pillow's own JFIF APP0
    app0_length = struct.unpack(">H", jpeg[4:6])[0]
    jpeg = jpeg[:2] + jpeg[4 + app0_length :]
    jpeg = _insert_after_soi(
        jpeg,
        [
            _jpeg_segment(0xE0, jfif_with_thumbnail),
            _jpeg_segment(0xE1, xmp),
            _jpeg_segment(0xED, iptc),
            _jpeg_segment(0xEB, b"JP\x00\x00" + name),  # some other APPn
        ],
    )
    return jpeg + _zip_payload()


def jpeg_header_only(width: int, height: int) -> bytes:
    """SOI and a baseline SOF declaring ``width`` x ``height`` pixels, no image data."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + _jpeg_segment(0xC0, sof) + b"\xff\xd9"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def plain_png(mode: str = "RGB", width: int = 48, height: int = 32) -> bytes:
    out = io.BytesIO()
    sample_image(width, height, mode).save(out, "PNG")
    return out.getvalue()


def png_with_metadata() -> bytes:
    """tEXt, zTXt and iTXt with the name, eXIf with GPS, tIME, an unknown chunk, a kept
    gAMA and pHYs, and a payload after IEND."""
    info = PngInfo()
    info.add_text("Author", PLANTED_NAME)
    info.add_text("Comment", f"patient {PLANTED_NAME}", zip=True)
    info.add_itxt("Description", f"Röntgen {PLANTED_NAME}", lang="de", tkey="Beschreibung")
    out = io.BytesIO()
    sample_image(48, 32).save(
        out, "PNG", pnginfo=info, exif=_exif_with_gps().tobytes(), dpi=(300, 300)
    )
    png = out.getvalue()
    assert png[12:16] == b"IHDR"
    after_ihdr = 8 + 25
    extra = (
        _png_chunk(b"gAMA", struct.pack(">I", 45455))
        + _png_chunk(b"tIME", bytes([7, 232, 3, 14, 12, 0, 0]))
        + _png_chunk(b"prVt", PLANTED_NAME.encode())
    )
    png = png[:after_ihdr] + extra + png[after_ihdr:]
    return png + _zip_payload()


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def png_split_idat(piece: int = 100) -> bytes:
    """A plain PNG whose image data is split over many IDAT chunks."""
    png = plain_png()
    chunks = list(_iter_png_chunks(png))
    idat = b"".join(data for kind, data in chunks if kind == b"IDAT")
    out = bytearray(png[:8])
    for kind, data in chunks:
        if kind == b"IDAT":
            continue
        if kind == b"IEND":
            for at in range(0, len(idat), piece):
                out += _png_chunk(b"IDAT", idat[at : at + piece])
        out += _png_chunk(kind, data)
    return bytes(out)


def _iter_png_chunks(png: bytes) -> Iterable[tuple[bytes, bytes]]:
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        yield kind, png[at + 8 : at + 8 + length]
        at += 12 + length
        if kind == b"IEND":
            return


# --------------------------------------------------------------------------------------------
# TIFF: a small writer that puts the IFDs at the end and can add EXIF, GPS and Interop IFDs
# --------------------------------------------------------------------------------------------

ASCII, SHORT, LONG, RATIONAL, UNDEFINED = 2, 3, 4, 5, 7
_TIFF_FORMATS = {ASCII: "B", SHORT: "H", LONG: "I", RATIONAL: "II", UNDEFINED: "B"}

TiffTag = tuple[int, int, object]  # (tag, type, value): str, bytes, int, or list of ints


class _TiffWriter:
    def __init__(self, byte_order: str) -> None:
        self.order = byte_order
        self.out = bytearray((b"II*\x00" if byte_order == "<" else b"MM\x00*") + bytes(4))

    def place(self, blob: bytes) -> int:
        if len(self.out) % 2:
            self.out += b"\x00"
        offset = len(self.out)
        self.out += blob
        return offset

    def _encode(self, kind: int, value: object) -> tuple[int, bytes]:
        if kind == ASCII:
            assert isinstance(value, str)
            raw = value.encode() + b"\x00"
            return len(raw), raw
        if kind == UNDEFINED:
            assert isinstance(value, bytes)
            return len(value), value
        values = list(value) if isinstance(value, list | tuple) else [value]
        fmt = _TIFF_FORMATS[kind]
        per = len(fmt)
        count = len(values) // per if kind == RATIONAL else len(values)
        return count, struct.pack(self.order + fmt * count, *values)

    def ifd(self, tags: Sequence[TiffTag], next_ifd: int = 0) -> int:
        """Write out-of-line values, then the IFD; return the IFD's offset."""
        entries = []
        for tag, kind, value in sorted(tags, key=lambda t: t[0]):
            count, raw = self._encode(kind, value)
            if len(raw) <= 4:
                field = raw.ljust(4, b"\x00")
            else:
                field = struct.pack(self.order + "I", self.place(raw))
            entries.append(struct.pack(self.order + "HHI", tag, kind, count) + field)
        body = struct.pack(self.order + "H", len(entries)) + b"".join(entries)
        return self.place(body + struct.pack(self.order + "I", next_ifd))

    def finish(self, first_ifd: int) -> bytes:
        self.out[4:8] = struct.pack(self.order + "I", first_ifd)
        return bytes(self.out)


def _image_tags(writer: _TiffWriter, image: Image.Image, strips: int = 2) -> list[TiffTag]:
    raw = image.tobytes()
    width, height = image.size
    rows = -(-height // strips)
    row_bytes = width * len(image.mode)
    offsets, counts = [], []
    for first_row in range(0, height, rows):
        piece = raw[first_row * row_bytes : min(height, first_row + rows) * row_bytes]
        offsets.append(writer.place(piece))
        counts.append(len(piece))
    rgb = image.mode == "RGB"
    return [
        (256, LONG, width),
        (257, LONG, height),
        (258, SHORT, [8, 8, 8] if rgb else [8]),
        (259, SHORT, 1),
        (262, SHORT, 2 if rgb else 1),
        (273, LONG, offsets),
        (277, SHORT, 3 if rgb else 1),
        (278, LONG, rows),
        (279, LONG, counts),
        (282, RATIONAL, [300, 1]),
        (283, RATIONAL, [300, 1]),
        (296, SHORT, 2),
    ]


def tiff_with_metadata(*, byte_order: str = "<", pages: int = 1) -> bytes:
    """Strips first, IFDs last; ImageDescription, Artist, Make, XMP, an EXIF IFD (with an
    Interop IFD) and a GPS IFD, all carrying the name or the location; ``pages`` pages."""
    writer = _TiffWriter(byte_order)
    page_tags = []
    for page in range(pages):
        image = sample_image(40 + page, 24, "RGB")
        tags = _image_tags(writer, image)
        interop = writer.ifd([(1, ASCII, "R98"), (2, UNDEFINED, b"0100")])
        exif = writer.ifd(
            [
                (0x9286, UNDEFINED, b"ASCII\x00\x00\x00" + PLANTED_NAME.encode()),
                (0xA430, ASCII, PLANTED_NAME),
                (0xA005, LONG, interop),
            ]
        )
        gps = writer.ifd(
            [
                (1, ASCII, "N"),
                (2, RATIONAL, [v for pair in GPS_LATITUDE for v in pair]),
                (0x1B, UNDEFINED, b"ASCII\x00\x00\x00" + PLANTED_NAME.encode()),
            ]
        )
        xmp = f"<x:xmpmeta><dc:creator>{PLANTED_NAME}</dc:creator></x:xmpmeta>".encode()
        tags += [
            (270, ASCII, f"Aufnahme {PLANTED_NAME}"),
            (271, ASCII, "PlantedCam"),
            (274, SHORT, 1),
            (315, ASCII, PLANTED_NAME),
            (700, UNDEFINED, xmp),
            (34665, LONG, exif),
            (34853, LONG, gps),
        ]
        page_tags.append(tags)
    # Write the IFD chain backwards so each IFD knows its successor.
    next_ifd = 0
    for tags in reversed(page_tags):
        next_ifd = writer.ifd(tags, next_ifd)
    return writer.finish(next_ifd)


def plain_tiff(*, byte_order: str = "<", mode: str = "RGB") -> bytes:
    writer = _TiffWriter(byte_order)
    tags = _image_tags(writer, sample_image(40, 24, mode))
    return writer.finish(writer.ifd(tags))


def tiff_with_hidden_data() -> bytes:
    """A clean TIFF, but with the name stored where no tag points and a ZIP appended."""
    writer = _TiffWriter("<")
    tags = _image_tags(writer, sample_image(40, 24, "RGB"))
    writer.place(f"hidden: {PLANTED_NAME}".encode())
    return writer.finish(writer.ifd(tags)) + _zip_payload()


def tiff_header_only(width: int, height: int) -> bytes:
    writer = _TiffWriter("<")
    strip = writer.place(bytes(16))
    tags: list[TiffTag] = [
        (256, LONG, width),
        (257, LONG, height),
        (258, SHORT, 8),
        (259, SHORT, 1),
        (262, SHORT, 1),
        (273, LONG, strip),
        (277, SHORT, 1),
        (278, LONG, height),
        (279, LONG, 16),
    ]
    return writer.finish(writer.ifd(tags))


def tiff_ifd_loop() -> bytes:
    """Two IFDs pointing at each other."""
    data = bytearray(plain_tiff())
    (first,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[first : first + 2])
    next_at = first + 2 + 12 * count
    data[next_at : next_at + 4] = struct.pack("<I", first)
    return bytes(data)


def tiff_pillow(compression: str = "tiff_lzw", mode: str = "RGB") -> bytes:
    """A TIFF written by Pillow/libtiff (compressed strips) with text tags naming the patient."""
    out = io.BytesIO()
    image = sample_image(64, 40, mode)
    image.save(
        out,
        "TIFF",
        compression=compression,
        tiffinfo={270: f"Aufnahme {PLANTED_NAME}", 315: PLANTED_NAME},
    )
    return out.getvalue()


BIGTIFF_HEADER = b"II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00" + bytes(64)


# --------------------------------------------------------------------------------------------
# Not accepted at all
# --------------------------------------------------------------------------------------------


def zip_file() -> bytes:
    return _zip_payload()


HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
EXE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48)
EMPTY = b""


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * keep))]


# --------------------------------------------------------------------------------------------
# Polyglots: one file that is two formats at once
# --------------------------------------------------------------------------------------------

SCRIPT_HTML = f"<html><body><script>{PLANTED_JS}()</script></body></html>".encode()


def tail_pdf() -> bytes:
    """A small PDF carrying the planted tail, for appending to or embedding in other files."""
    return text_pdf(pages=1, text=PLANTED_TAIL)


def pdf_zip_polyglot() -> bytes:
    """A PDF that is also a ZIP: the archive follows %%EOF (a ZIP is read from its end)."""
    return text_pdf(pages=1) + _zip_payload()


def pdf_with_script_in_header_comment() -> bytes:
    """HTML with a script in the comment line after the header (a PDF/HTML polyglot)."""
    pdf = text_pdf(pages=1)
    eol = pdf.index(b"\n") + 1
    return pdf[:eol] + b"%" + SCRIPT_HTML + b"\n" + pdf[eol:]


def html_then_pdf() -> bytes:
    """HTML first, a PDF after it: readers that search for the header would open it."""
    return SCRIPT_HTML + b"\n" + text_pdf(pages=1)


def with_appended(data: bytes, payload: bytes) -> bytes:
    """``data`` followed by ``payload`` (a PDF, HTML or script after an image's end)."""
    return data + payload


def jpeg_with_pdf_in_comment() -> bytes:
    """A JPEG whose COM segment holds a whole PDF (readers find a PDF header anywhere in the
    first KiB): the comment must go, and the PDF with it."""
    pdf = tail_pdf()
    assert len(pdf) < 0xFFF0
    return _insert_after_soi(plain_jpeg(), [_jpeg_segment(0xFE, pdf)])


def png_with_pdf_chunk() -> bytes:
    """A PNG with a private ancillary chunk right after IHDR that holds a whole PDF."""
    png = plain_png()
    after_ihdr = 8 + 25
    return png[:after_ihdr] + _png_chunk(b"pdFz", tail_pdf()) + png[after_ihdr:]


# --------------------------------------------------------------------------------------------
# PDF: recursion, loops in the cross-reference chain, huge pages, broken streams
# --------------------------------------------------------------------------------------------


def pdf_recursive_form_xobject() -> bytes:
    """A form XObject that draws itself (its resources name itself): infinite recursion for a
    renderer, a cycle for anything that walks resources."""
    form = _stream(
        b"q /Self Do Q",
        b"/Type /XObject /Subtype /Form /BBox [0 0 100 100]"
        b" /Resources << /XObject << /Self 4 0 R >> >>",
    )
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
            b" /Resources << /XObject << /Self 4 0 R >> >> >>",
            form,
            _stream(b"/Self Do"),
        ]
    )


def pdf_action_loop() -> bytes:
    """A JavaScript open action whose /Next chain leads back to itself, and an outline item
    that is its own next sibling and first child."""
    js = f"app.alert('{PLANTED_JS}');".encode()
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R /Outlines 6 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _PAGE_CONTENT,
            b"<< /S /JavaScript /JS (%s) /Next [5 0 R 8 0 R] >>" % js,
            b"<< /Type /Outlines /First 7 0 R /Last 7 0 R /Count 1 >>",
            b"<< /Title (loop) /Parent 6 0 R /First 7 0 R /Next 7 0 R /A 8 0 R >>",
            b"<< /S /JavaScript /JS (%s) /Next 5 0 R >>" % js,
        ]
    )


def pdf_self_referencing_length() -> bytes:
    """A stream whose /Length is an indirect reference to the stream itself."""
    content = b"BT /F1 12 Tf 72 720 Td (hello) Tj ET"
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length 4 0 R >>\nstream\n" + content + b"\nendstream",
        ]
    )


def pdf_xref_self_loop() -> bytes:
    """The trailer's /Prev points at its own cross-reference table."""
    data = raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _PAGE_CONTENT,
        ]
    )
    xref_at = data.rindex(b"\nxref\n") + 1
    return data.replace(b"trailer\n<< ", b"trailer\n<< /Prev %d " % xref_at)


def pdf_xref_two_section_loop() -> bytes:
    """An incremental update whose cross-reference section and the original one name each
    other as /Prev: a loop of two."""
    placeholder = b"/Prev 0000000000 "
    base = raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _PAGE_CONTENT,
        ]
    ).replace(b"trailer\n<< ", b"trailer\n<< " + placeholder)
    first_xref = base.rindex(b"\nxref\n") + 1
    out = bytearray(base)
    page_at = len(out)
    out += b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 300] /Contents 4 0 R >>"
    out += b"\nendobj\n"
    second_xref = len(out)
    out += b"xref\n3 1\n%010d 00000 n \n" % page_at
    out += b"trailer\n<< /Size 5 /Root 1 0 R /Prev %d >>\n" % first_xref
    out += b"startxref\n%d\n%%%%EOF\n" % second_xref
    at = bytes(out).index(placeholder)
    out[at : at + len(placeholder)] = b"/Prev %010d " % second_xref
    return bytes(out)


def pdf_huge_media_box(size: bytes = b"14400000") -> bytes:
    """One page whose MediaBox is ``size`` units square (the limit readers apply is 14,400)."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Contents 4 0 R >>" % (size, size),
            _PAGE_CONTENT,
        ]
    )


def _pdf_with_content_stream(stream: bytes) -> bytes:
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            stream,
        ]
    )


def pdf_broken_stream(kind: str) -> bytes:
    """A page content stream broken in one way: ``long`` or ``short`` or ``negative`` /Length,
    ``garbage-flate`` (random bytes labelled FlateDecode), ``truncated-flate`` (a deflate
    stream cut in half), ``unknown-filter`` or ``no-endstream``."""
    content = b"BT /F1 12 Tf 72 720 Td (hello) Tj ET " * 20
    rng = random.Random(kind)
    if kind == "long":
        return _pdf_with_content_stream(
            b"<< /Length 999999 >>\nstream\n" + content + b"\nendstream"
        )
    if kind == "short":
        return _pdf_with_content_stream(b"<< /Length 7 >>\nstream\n" + content + b"\nendstream")
    if kind == "negative":
        return _pdf_with_content_stream(b"<< /Length -50 >>\nstream\n" + content + b"\nendstream")
    if kind == "garbage-flate":
        garbage = bytes(rng.getrandbits(8) for _ in range(2048))
        return _pdf_with_content_stream(_stream(garbage, b"/Filter /FlateDecode"))
    if kind == "truncated-flate":
        deflated = zlib.compress(content, 9)
        return _pdf_with_content_stream(
            _stream(deflated[: len(deflated) // 2], b"/Filter /FlateDecode")
        )
    if kind == "unknown-filter":
        return _pdf_with_content_stream(_stream(content, b"/Filter /MedvaultNoSuchDecode"))
    if kind == "no-endstream":
        return _pdf_with_content_stream(b"<< /Length 10 >>\nstream\n" + content)
    raise ValueError(kind)


BROKEN_STREAM_KINDS = (
    "long",
    "short",
    "negative",
    "garbage-flate",
    "truncated-flate",
    "unknown-filter",
    "no-endstream",
)


# --------------------------------------------------------------------------------------------
# Image decompression bombs: small files whose pixels inflate to hundreds of megabytes
# --------------------------------------------------------------------------------------------


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit greyscale PNG of ``width`` x ``height`` whose IDAT inflates to every row
    (filter byte and pixels) of zeros: a few KiB for hundreds of megapixels."""
    row = 1 + -(-width // 8)
    compressor = zlib.compressobj(9)
    pieces = []
    block_rows = max(1, (4 << 20) // row)
    for first in range(0, height, block_rows):
        pieces.append(compressor.compress(bytes(row * min(block_rows, height - first))))
    pieces.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(pieces))
        + _png_chunk(b"IEND", b"")
    )


def tiff_bomb(width: int, height: int) -> bytes:
    """An 8-bit greyscale TIFF of ``width`` x ``height`` in one Deflate strip of zeros
    (about ``width * height`` bytes once inflated, rounded up to whole MiB)."""
    writer = _TiffWriter("<")
    decoded = -(-(width * height) // (1 << 20)) * (1 << 20)
    strip = flate_bomb(decoded)
    offset = writer.place(strip)
    tags: list[TiffTag] = [
        (256, LONG, width),
        (257, LONG, height),
        (258, SHORT, 8),
        (259, SHORT, 8),  # Adobe Deflate
        (262, SHORT, 1),
        (273, LONG, offset),
        (277, SHORT, 1),
        (278, LONG, height),
        (279, LONG, len(strip)),
    ]
    return writer.finish(writer.ifd(tags))


# --------------------------------------------------------------------------------------------
# Mutations: seeded damage to any file
# --------------------------------------------------------------------------------------------


def mutated(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """``data`` damaged in one random way (bit flips, a cut, inserted or repeated bytes, a
    zeroed run); returns a short description (for reproducing) and the damaged bytes."""
    if not data:
        return "empty", data
    out = bytearray(data)
    how = rng.choice(("flip", "flip", "cut", "insert", "repeat", "zero"))
    if how == "flip":
        flips = rng.randint(1, 8)
        for _ in range(flips):
            at = rng.randrange(len(out))
            out[at] ^= 1 << rng.randrange(8)
        return f"flip{flips}", bytes(out)
    at = rng.randrange(len(out))
    if how == "cut":
        return f"cut@{at}", bytes(out[:at])
    if how == "insert":
        size = rng.randint(1, 64)
        out[at:at] = bytes(rng.getrandbits(8) for _ in range(size))
        return f"insert{size}@{at}", bytes(out)
    size = rng.randint(1, min(4096, len(out) - at))
    if how == "repeat":
        out[at:at] = out[at : at + size]
        return f"repeat{size}@{at}", bytes(out)
    out[at : at + size] = bytes(size)
    return f"zero{size}@{at}", bytes(out)


def pdf_catalog_that_is_a_script_action() -> bytes:
    """The document catalog is also a JavaScript action (as a damaged file recovered by qpdf
    can be): removing the action must not remove the pages with it."""
    js = f"app.alert('{PLANTED_JS}');".encode()
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /S /JavaScript /JS (%s) >>" % js,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _PAGE_CONTENT,
        ]
    )
