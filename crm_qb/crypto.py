"""Secrets at rest: Fernet encryption with key rotation, and hashing of API keys.

Tokens and secrets are encrypted with ``MultiFernet`` over ``CRM_QB_ENCRYPTION_KEY`` (comma-separated keys, the
first one encrypts, all of them decrypt), so a key can be rotated without downtime: add the new key first,
and rows are re-encrypted
under it as they are next written. API keys are random, so a plain
SHA-256 is enough to store them: nobody can brute-force 256 bits, and lookup by hash stays an index hit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from crm_qb.errors import PermanentError

API_KEY_PREFIX = "cqb_"


class SecretDecryptError(PermanentError):
    """A stored secret cannot be decrypted with any configured key (wrong or rotated-away key)."""


class SecretBox:
    """Encrypts and decrypts short secrets with the configured Fernet keys."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        """Return the ciphertext of ``plaintext`` under the primary key."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Return the plaintext of ``ciphertext``; raise SecretDecryptError if no key opens it."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except InvalidToken:
            raise SecretDecryptError(
                "a stored secret cannot be decrypted: CRM_QB_ENCRYPTION_KEY does not contain the key it was "
                "written with"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """Return ``ciphertext`` re-encrypted under the primary key."""
        return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")


def new_api_key() -> str:
    """Return a fresh random API key (shown once to the user, never stored in clear)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    """Return the stored form of ``api_key``."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def api_key_matches(api_key: str, stored_hash: str) -> bool:
    """True when ``api_key`` hashes to ``stored_hash`` (constant-time)."""
    return hmac.compare_digest(hash_api_key(api_key), stored_hash)
