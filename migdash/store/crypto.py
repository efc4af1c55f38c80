"""Target URLs are encrypted at rest with Fernet (from ``cryptography``).

The key comes from ``MIGDASH_ENCRYPTION_KEY`` or, by default, from the
instance folder's ``encryption.key`` (created on first run, mode 0600).
Several comma-separated keys may be given: the first encrypts, all decrypt,
so keys can be rotated (``migdash db rotate-key``).  The cipher rides on the
session factory (``Session.info["cipher"]``), so models never read settings.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.orm import Session

from migdash.errors import ConfigError

KEY_FILE = "encryption.key"


class UrlCipher:
    """Encrypts and decrypts secrets with one or more Fernet keys."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ConfigError(
                "no encryption key",
                hint="Set MIGDASH_ENCRYPTION_KEY or run "
                "`migdash db upgrade`, which creates instance/encryption.key.",
            )
        self._plain: dict[str, str] = {}
        """Decrypted URLs by token: probing a thousand targets decrypts each once."""
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except ValueError as exc:
            raise ConfigError(
                "MIGDASH_ENCRYPTION_KEY is not a Fernet key",
                hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        cached = self._plain.get(token)
        if cached is not None:
            return cached
        try:
            plain = self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "a stored target URL cannot be decrypted with the configured key",
                hint="MIGDASH_ENCRYPTION_KEY (or instance/encryption.key) must be the key the "
                "URLs were saved with; add the new key in front, comma-separated, to rotate.",
            ) from exc
        if len(self._plain) > 10_000:
            self._plain.clear()
        self._plain[token] = plain
        return plain

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()


def load_keys(setting: str | None, instance: Path) -> list[str]:
    """Keys from the setting (comma-separated), else from the instance key file."""
    if setting:
        return [k for k in setting.split(",") if k.strip()]
    path = instance / KEY_FILE
    return [path.read_text().strip()] if path.is_file() else []


def ensure_key_file(instance: Path) -> None:
    """Create ``encryption.key`` (0600) if missing; never overwrite one."""
    path = instance / KEY_FILE
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode())


def session_cipher(session: Session) -> UrlCipher:
    cipher = session.info.get("cipher")
    if cipher is None:
        raise ConfigError("this session has no cipher; build it with create_session_factory")
    return cipher  # type: ignore[no-any-return]


def rotate_target_urls(session: Session, cipher: UrlCipher) -> int:
    """Re-encrypt every target URL with the cipher's first key; the caller commits."""
    from migdash.store.models import Target
    from migdash.store.webhook_models import Webhook

    targets = list(session.scalars(sa.select(Target)))
    for target in targets:
        target.url_encrypted = cipher.rotate(target.url_encrypted)
    for hook in session.scalars(sa.select(Webhook)):  # webhook URLs and secrets are secrets too
        hook.url_encrypted = cipher.rotate(hook.url_encrypted)
        hook.secret_encrypted = cipher.rotate(hook.secret_encrypted)
    return len(targets)
