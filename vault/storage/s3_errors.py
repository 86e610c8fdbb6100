"""How a failed S3 call becomes a medvault error: StorageUnavailable naming the operation only.

botocore's exceptions carry URLs, bucket and key names; the cause is dropped (``from None``) so
none of that reaches a log line or an API response.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from vault.errors import StorageUnavailable

# What "the store could not be reached, or refused" looks like from botocore. Anything else
# (a ParamValidationError, say) is a bug of ours and propagates as it is.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    ClientError,
    BotoConnectionError,  # EndpointConnectionError, ConnectTimeoutError, ...
    HTTPClientError,  # ConnectionClosedError, ReadTimeoutError, ResponseStreamingError
    IncompleteReadError,
    FlexibleChecksumError,  # the body arrived damaged; a retry may well succeed
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
)


def error_code(exc: ClientError) -> str:
    """The S3 error code of a ClientError (``NoSuchKey``, ``AccessDenied``, ``404``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def unavailable(operation: str, exc: BaseException) -> StorageUnavailable:
    """The StorageUnavailable for a failed call: the operation and the error code, nothing else."""
    reason = error_code(exc) or "error" if isinstance(exc, ClientError) else type(exc).__name__
    return StorageUnavailable(f"object store unavailable during {operation} ({reason})")


@contextmanager
def s3_errors(operation: str) -> Iterator[None]:
    """Translate botocore's failures inside the block into StorageUnavailable."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable(operation, exc) from None
