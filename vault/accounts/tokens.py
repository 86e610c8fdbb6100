"""Opaque random tokens (bearer, refresh, one-time). Only their SHA-256 digest is stored."""

import secrets

from vault.crypto.primitives import sha256

TOKEN_BYTES = 32  # 256 bits of randomness per token


def new_token() -> tuple[str, str]:
    """A fresh token and the digest to store for it."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    """Hex SHA-256 of a presented token (what the tables hold and are searched by)."""
    return sha256(token.encode()).hex()
