"""Credential encryption: Fernet under a dedicated, rotatable key list (ASH_CREDENTIAL_KEYS)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialKeyError(Exception):
    """The configured keys cannot decrypt a stored credential (key removed from the list?)."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ASH_CREDENTIAL_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialKeyError("credential cannot be decrypted with the configured keys") from None


def rotate(token: str) -> str:
    """Re-encrypt TOKEN under the first (newest) key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialKeyError("credential cannot be decrypted with the configured keys") from None
