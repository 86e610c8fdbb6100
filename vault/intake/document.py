"""What intake hands back: the sanitised content, its type, and what was taken out."""

from collections.abc import Iterator


class ChangeLog:
    """The codes of what sanitising removed, each once, in the order first seen.

    Codes are fixed strings such as ``"exif"`` or ``"pdf-javascript"``: safe to store and show,
    never derived from the file's content.
    """

    def __init__(self) -> None:
        self._codes: dict[str, None] = {}

    def add(self, code: str) -> None:
        self._codes.setdefault(code, None)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._codes)


class SanitisedDocument:
    """A sanitised upload, read once through :meth:`chunks`.

    PDFs and TIFFs are fully sanitised before this object exists: ``changes`` is final and
    every refusal has already been raised. JPEGs and PNGs are sanitised while they stream:
    headers (and the pixel limit) are checked before this object exists, but damage further
    in raises InvalidDocument from ``chunks()``, and ``changes`` is complete only once
    ``chunks()`` is exhausted. A caller must therefore treat an exception from ``chunks()`` as
    a refusal and discard whatever it wrote.
    """

    def __init__(
        self,
        *,
        media_type: str,
        changes: ChangeLog,
        pieces: Iterator[bytes],
        chunk_size: int,
        pages: int | None = None,
    ) -> None:
        self.media_type = media_type
        self.pages = pages  # PDF pages or TIFF images; None for JPEG and PNG
        self._changes = changes
        self._pieces = pieces
        self._chunk_size = chunk_size
        self._started = False

    @property
    def changes(self) -> tuple[str, ...]:
        return self._changes.as_tuple()

    def chunks(self) -> Iterator[bytes]:
        """The sanitised bytes in chunks of about ``chunk_size``. Can be called once."""
        if self._started:
            raise RuntimeError("a sanitised document can be read only once")
        self._started = True
        return self._coalesced()

    def _coalesced(self) -> Iterator[bytes]:
        # Streaming sanitisers yield many small pieces (segment headers); hand out chunks.
        pending = bytearray()
        for piece in self._pieces:
            if not pending and len(piece) >= self._chunk_size:
                yield piece  # already a full chunk: no copy
                continue
            pending += piece
            if len(pending) >= self._chunk_size:
                yield bytes(pending)
                pending.clear()
        if pending:
            yield bytes(pending)
