"""The files the load suite's patients upload, written once to a folder before the run: the
locust process reads them from disk and never imports the project (or pikepdf and pillow).

Scans are noise, so neither the sanitiser nor a compressor can make them smaller than they look:
a small PDF and a small PNG of about 300 KiB each, and a large PDF (about 2 MiB) and a large PNG
(about 4 MiB). Each PDF also carries a JavaScript open action and an author name, so every
upload exercises the sanitiser's stripping, not only its pass-through.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pikepdf

from tests.factories import png_bytes

SMALL_SIDE = 320  # 320 x 320 RGB noise: about 300 KiB
LARGE_PDF_PAGES = 7  # seven such scans: about 2 MiB
LARGE_PNG_SIDE = 1200  # 1200 x 1200 RGB noise: about 4 MiB


def scanned_pdf(pages: int, *, seed: int) -> bytes:
    """A PDF of ``pages`` pages, each a full-page scan of RGB noise, with an open action."""
    rng = random.Random(seed)
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(595, 842))
        page = pdf.pages[-1]
        scan = pikepdf.Stream(pdf, rng.randbytes(SMALL_SIDE * SMALL_SIDE * 3))
        scan.Type, scan.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
        scan.Width, scan.Height = SMALL_SIDE, SMALL_SIDE
        scan.ColorSpace, scan.BitsPerComponent = pikepdf.Name.DeviceRGB, 8
        page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=scan))
        page.Contents = pikepdf.Stream(pdf, b"q 595 0 0 842 0 0 cm /Im0 Do Q")
    action = pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert(1)"))
    pdf.Root.OpenAction = pdf.make_indirect(action)
    pdf.docinfo[pikepdf.Name.Author] = "Load Test Author"
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def write_payloads(folder: Path) -> dict[str, Path]:
    """Write the four upload files into ``folder``; their paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "small_pdf": scanned_pdf(1, seed=1),
        "small_png": png_bytes(SMALL_SIDE, SMALL_SIDE, seed=2),
        "large_pdf": scanned_pdf(LARGE_PDF_PAGES, seed=3),
        "large_png": png_bytes(LARGE_PNG_SIDE, LARGE_PNG_SIDE, seed=4),
    }
    paths = {}
    for name, data in contents.items():
        path = folder / f"{name}.{name.rsplit('_', 1)[1]}"
        path.write_bytes(data)
        paths[name] = path
    return paths
