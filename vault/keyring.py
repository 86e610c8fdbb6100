"""The boundary between ``vault`` and ``keys``: key errors become vault errors here, once."""

from collections.abc import Iterator
from contextlib import contextmanager

from keys import errors as key_errors
from vault import errors


@contextmanager
def translated_key_errors() -> Iterator[None]:
    """Run a block that uses ``keys``; re-raise its errors as the vault tree, details dropped."""
    try:
        yield
    except key_errors.KeyDestroyed:
        raise errors.KeyDestroyed("the key protecting this data was destroyed") from None
    except key_errors.KmsUnavailable:
        raise errors.KmsUnavailable("the key service is unavailable") from None
    except (key_errors.KeyNotFound, key_errors.KeyUnwrapFailed):
        # A key row that is missing or does not authenticate means tampered or foreign data:
        # the same opaque answer as any other integrity failure.
        raise errors.DecryptionFailed() from None
