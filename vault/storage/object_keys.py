"""The one rule for object keys, shared by every blob store: a key valid in one is valid in all.

A key is a relative path: segments of ``[A-Za-z0-9._-]`` joined by ``/``. No empty segment (so no
leading, trailing or doubled slash), no ``.`` or ``..`` segment, no backslash. The rule keeps a key
safe to map onto a folder (no escape from the store's root) and identical on S3 and on disk.
"""

import re

MAX_KEY_LENGTH = 1024  # S3's limit, in bytes; keys are ASCII so characters and bytes agree
MAX_SEGMENT_LENGTH = 255  # the usual file-name limit of a local file system

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_PARTIAL_SEGMENT = re.compile(r"[A-Za-z0-9._-]*")


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it follows the rule; raise ValueError (before any I/O) if not."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError("an object key must be a non-empty string of at most 1024 characters")
    for segment in key.split("/"):
        _check_segment(segment)
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start a valid key: whole segments, then a possibly partial one.

    ``""`` (everything), ``"cases/"`` and ``"cases/12"`` are prefixes; ``"/"``, ``"a//"`` and
    ``"../"`` are not.
    """
    if not isinstance(prefix, str) or len(prefix) > MAX_KEY_LENGTH:
        raise ValueError("a key prefix must be a string of at most 1024 characters")
    *folders, last = prefix.split("/")
    for segment in folders:
        _check_segment(segment)
    if not _PARTIAL_SEGMENT.fullmatch(last) or len(last) > MAX_SEGMENT_LENGTH:
        raise ValueError("a key prefix may only hold letters, digits, '.', '_', '-' and '/'")
    return prefix


def _check_segment(segment: str) -> None:
    if not _SEGMENT.fullmatch(segment) or segment in {".", ".."}:
        raise ValueError(
            "an object key is made of segments of letters, digits, '.', '_' and '-' joined by '/'"
            " (no empty, '.' or '..' segment)"
        )
    if len(segment) > MAX_SEGMENT_LENGTH:
        raise ValueError("a segment of an object key is longer than 255 characters")
