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

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^:/@\s]*):(?P<password>[^@\s/]+)@")
_QUERY_PASSWORD = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<password>[^&\s'\"]+)", re.IGNORECASE
)


def mask_passwords(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    return _QUERY_PASSWORD.sub(r"\g<head>***", text)


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
