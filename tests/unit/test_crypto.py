"""Secrets at rest: encryption with rotation, and API key hashing."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from crm_qb.crypto import SecretBox, SecretDecryptError, api_key_matches, hash_api_key, new_api_key


def test_round_trip_and_rotation_to_a_new_primary_key() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = SecretBox((old,)).encrypt("refresh-token")
    rotated_box = SecretBox((new, old))
    assert rotated_box.decrypt(stored) == "refresh-token"
    rewritten = rotated_box.rotate(stored)
    assert SecretBox((new,)).decrypt(rewritten) == "refresh-token"


def test_a_secret_under_an_unknown_key_is_a_clear_error() -> None:
    stored = SecretBox((Fernet.generate_key().decode(),)).encrypt("x")
    with pytest.raises(SecretDecryptError, match="CRM_QB_ENCRYPTION_KEY does not contain the key"):
        SecretBox((Fernet.generate_key().decode(),)).decrypt(stored)


def test_api_keys_are_random_and_stored_hashed() -> None:
    key = new_api_key()
    assert key.startswith("cqb_") and key != new_api_key()
    assert key not in hash_api_key(key)
    assert api_key_matches(key, hash_api_key(key))
    assert not api_key_matches(key + "x", hash_api_key(key))
