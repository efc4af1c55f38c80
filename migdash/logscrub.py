"""Mask URL passwords in every log record this process writes.

Job output and error messages are scrubbed where they are made, with the
exact secrets of the target at hand.  This is the net under that: any log
line (ours, SQLAlchemy's, a driver's, a traceback) that contains a URL with
a password has it replaced before a handler formats it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from migdash.engine.scrub import MASK, SECRET_KEY_PARTS, SECRET_QUERY_KEYS

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^:/@\s]*):(?P<password>[^@\s/]+)@")
_KEY_CHAR = r"[^=&?#\s'\"]"
_SECRET_NAME = "|".join(re.escape(n) for n in sorted(SECRET_QUERY_KEYS | set(SECRET_KEY_PARTS)))
_QUERY_SECRET = re.compile(
    rf"(?P<head>[?&]{_KEY_CHAR}{{0,64}}?(?:{_SECRET_NAME}){_KEY_CHAR}{{0,64}}=)"
    r"(?P<value>[^&\s'\"]+)",
    re.IGNORECASE,
)
"""``?NAME=VALUE`` or ``&NAME=VALUE`` where NAME is a secret's, by the rule of
:func:`~migdash.engine.scrub.is_secret_query_key` (the one ``mask_url`` follows).
NAME is bounded so that a long line full of ``&`` costs linear time."""


def mask_passwords(text: str) -> str:
    """*text* with URL userinfo passwords and secret-named query values replaced by ``***``.

    It knows no secret, so it goes by shape: ``scheme://user:PASSWORD@`` and
    secret-named query parameters.  Only names are matched, so ordinary
    parameters (``sslmode=require``) stay readable.
    """
    text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    return _QUERY_SECRET.sub(rf"\g<head>{MASK}", text)


def install_log_scrubbing() -> None:
    """Wrap the log record factory once per process (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "migdash_scrubbing", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's problem, not ours
            return record
        record.msg, record.args = mask_passwords(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_passwords(logging.Formatter().formatException(record.exc_info))
        return record

    factory.migdash_scrubbing = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
