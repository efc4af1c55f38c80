"""Settings: defaults, then ``MIGDASH_*`` environment variables, then the caller's mapping.

Read at call time (inside ``create_app`` and the CLI), never at import, and
parsed strictly: a bad value stops start-up with a message that says which
variable and what would be accepted.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from migdash.errors import ConfigError

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number", hint=f"Set {name} to e.g. 5") from None
    if not 0 < value <= 3600:
        raise ConfigError(f"{name}={raw!r} is out of range", hint="Use a number of seconds > 0.")
    return value


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a whole number", hint=f"Set {name} to e.g. 16"
        ) from None
    if value < 1:
        raise ConfigError(f"{name}={raw!r} must be at least 1")
    return value


def _boolean(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean", hint="Use true or false.")


def _text(_name: str, raw: str) -> str:
    return raw


def _server_url(backends: tuple[str, ...], example: str) -> Callable[[str, str], str | None]:
    """A parser for a database server URL of one of *backends*; empty means "not configured"."""

    def parse(name: str, raw: str) -> str | None:
        if not raw.strip():
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(raw.strip()).get_backend_name()
        except (ArgumentError, ValueError):
            raise ConfigError(f"{name} is not a database URL", hint=f"e.g. {example}") from None
        if backend not in backends:
            raise ConfigError(
                f"{name} names a {backend} server, not {' or '.join(backends)}",
                hint=f"e.g. {example}",
            )
        return raw.strip()

    return parse


def _folders(name: str, raw: str | Iterable[str]) -> tuple[str, ...]:
    """Colon-separated absolute folders that exist, resolved; empty means "no limit"."""
    if isinstance(raw, str):
        if not raw.strip():
            return ()
        raw = raw.split(":")
    example = "e.g. /srv/alembic:/opt/projects"
    folders: list[str] = []
    for entry in (str(item).strip() for item in raw):
        if not entry:
            raise ConfigError(
                f"{name} has an empty entry", hint=f"Separate folders with ':', {example}"
            )
        if not os.path.isabs(entry):
            raise ConfigError(f"{name}: {entry!r} is not an absolute path", hint=example)
        folder = Path(entry).resolve()
        if not folder.is_dir():
            raise ConfigError(f"{name}: {entry!r} is not an existing folder", hint=example)
        folders.append(str(folder))
    return tuple(dict.fromkeys(folders))


ENVIRONMENT: dict[str, Callable[[str, str], Any]] = {
    "MIGDASH_INSTANCE": _text,
    "MIGDASH_DATABASE_URL": _text,
    "MIGDASH_SECRET_KEY": _text,
    "MIGDASH_PROBE_TIMEOUT": _positive_float,
    "MIGDASH_PROBE_WORKERS": _positive_int,
    "MIGDASH_PROBE_IDLE_SECONDS": _positive_float,
    "MIGDASH_PROBE_MAX_IDLE": _positive_int,
    "MIGDASH_REFRESH_SECONDS": _positive_int,
    "MIGDASH_PAGE_WAIT_SECONDS": _positive_float,
    "MIGDASH_SECURE_COOKIES": _boolean,
    "MIGDASH_QUEUE_URL": _text,
    "MIGDASH_WORKER_THREADS": _positive_int,
    "MIGDASH_JOB_HEARTBEAT_TIMEOUT": _positive_float,
    "MIGDASH_WEBHOOK_TIMEOUT": _positive_float,
    "MIGDASH_WEBHOOK_RETRY_SECONDS": _positive_float,
    "MIGDASH_WEBHOOK_MAX_ATTEMPTS": _positive_int,
    "MIGDASH_PROJECTS_ROOT": _text,
    "MIGDASH_SCRIPT_ROOTS": _folders,
    "MIGDASH_ENCRYPTION_KEY": _text,
    "MIGDASH_LOGIN_RATE_LIMIT": _text,
    "MIGDASH_RATELIMIT_STORAGE_URL": _text,
    "MIGDASH_SCRATCH_POSTGRES_URL": _server_url(
        ("postgresql",), "postgresql+psycopg://scratch:secret@scratch-db/postgres"
    ),
    "MIGDASH_SCRATCH_MYSQL_URL": _server_url(
        ("mysql", "mariadb"), "mysql+pymysql://scratch:secret@scratch-db/mysql"
    ),
}
"""Every environment variable migdash reads, with its parser (README lists them all)."""

DEFAULTS: dict[str, Any] = {
    "MIGDASH_INSTANCE": "instance",
    "MIGDASH_DATABASE_URL": None,
    "MIGDASH_SECRET_KEY": None,
    "MIGDASH_PROBE_TIMEOUT": 5.0,
    "MIGDASH_PROBE_WORKERS": 16,
    "MIGDASH_PROBE_IDLE_SECONDS": 300.0,
    "MIGDASH_PROBE_MAX_IDLE": 1000,
    "MIGDASH_REFRESH_SECONDS": 30,
    "MIGDASH_PAGE_WAIT_SECONDS": 2.0,
    "MIGDASH_SECURE_COOKIES": False,
    "MIGDASH_QUEUE_URL": None,
    "MIGDASH_WORKER_THREADS": 4,
    "MIGDASH_JOB_HEARTBEAT_TIMEOUT": 30.0,
    "MIGDASH_WEBHOOK_TIMEOUT": 5.0,
    "MIGDASH_WEBHOOK_RETRY_SECONDS": 10.0,
    "MIGDASH_WEBHOOK_MAX_ATTEMPTS": 5,
    "MIGDASH_PROJECTS_ROOT": None,
    "MIGDASH_SCRIPT_ROOTS": (),
    "MIGDASH_ENCRYPTION_KEY": None,
    "MIGDASH_LOGIN_RATE_LIMIT": "10 per minute",
    "MIGDASH_RATELIMIT_STORAGE_URL": "memory://",
    "MIGDASH_SCRATCH_POSTGRES_URL": None,
    "MIGDASH_SCRATCH_MYSQL_URL": None,
    "TESTING": False,
}


def load_settings(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Merge defaults, ``MIGDASH_*`` from *environ*, then *overrides*; fill derived values."""
    settings = dict(DEFAULTS)
    for name, parse in ENVIRONMENT.items():
        if name in environ:
            settings[name] = parse(name, environ[name])
    settings.update(overrides or {})
    instance = Path(settings["MIGDASH_INSTANCE"]).expanduser().resolve()
    settings["MIGDASH_INSTANCE"] = str(instance)
    if not settings["MIGDASH_DATABASE_URL"]:
        settings["MIGDASH_DATABASE_URL"] = f"sqlite:///{instance / 'migdash.db'}"
    if not settings["MIGDASH_PROJECTS_ROOT"]:
        settings["MIGDASH_PROJECTS_ROOT"] = str(instance / "projects")
    roots = _folders("MIGDASH_SCRIPT_ROOTS", settings["MIGDASH_SCRIPT_ROOTS"] or ())
    if roots:  # projects made by `migdash project init` live in the projects root
        projects_root = str(Path(settings["MIGDASH_PROJECTS_ROOT"]).resolve())
        roots = tuple(dict.fromkeys((*roots, projects_root)))
    settings["MIGDASH_SCRIPT_ROOTS"] = roots
    if not settings["MIGDASH_SECRET_KEY"]:
        settings["MIGDASH_SECRET_KEY"] = read_secret_key(instance)
    return settings


def validate(settings: Mapping[str, Any]) -> None:
    """Refuse to start on settings that would misbehave later; say how to fix them."""
    if not settings.get("MIGDASH_SECRET_KEY") and not settings.get("TESTING"):
        raise ConfigError(
            "no secret key: sessions and CSRF tokens cannot be signed",
            hint="Set MIGDASH_SECRET_KEY (the same value for every gunicorn worker), or run "
            "`migdash db upgrade` once, which writes one to the instance folder.",
        )
    if not settings.get("TESTING") and not (
        settings.get("MIGDASH_ENCRYPTION_KEY")
        or (Path(settings["MIGDASH_INSTANCE"]) / "encryption.key").is_file()
    ):
        raise ConfigError(
            "no encryption key: target URLs are stored encrypted",
            hint="Set MIGDASH_ENCRYPTION_KEY (the same for every process), or run "
            "`migdash db upgrade` once, which writes instance/encryption.key (mode 0600).",
        )
    _validate_rate_limit(str(settings.get("MIGDASH_LOGIN_RATE_LIMIT") or ""))
    url = str(settings["MIGDASH_DATABASE_URL"])
    if "://" not in url:
        raise ConfigError(
            f"MIGDASH_DATABASE_URL={url!r} is not a database URL",
            hint="e.g. postgresql+psycopg://migdash:secret@db/migdash",
        )


def _validate_rate_limit(value: str) -> None:
    """Flask-Limiter only logs a limit it cannot parse and then lets every sign-in through."""
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(
            f"MIGDASH_LOGIN_RATE_LIMIT={value!r} is not a rate limit",
            hint='Write it as e.g. "10 per minute" or "10/minute;100/day".',
        ) from None


def read_secret_key(instance: Path) -> str | None:
    path = instance / SECRET_KEY_FILE
    return path.read_text().strip() if path.is_file() else None


def ensure_instance(instance: Path) -> None:
    """Create the instance folder, its secret key and encryption key files (0600) if missing.

    Called by the CLI before it builds the app, never by ``create_app``, so
    the factory stays free of side effects.
    """
    from migdash.store.crypto import ensure_key_file

    instance.mkdir(parents=True, exist_ok=True)
    ensure_key_file(instance)
    path = instance / SECRET_KEY_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
