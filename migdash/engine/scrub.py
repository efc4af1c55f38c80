"""Masking of credentials, used by every layer before anything is shown or stored.

A target URL carries a password; it must never reach a page, a log line, a
snapshot or an error message.  Every layer masks through here, so there is
one rule for what a masked URL looks like.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"


def mask_url(url: str) -> str:
    """Return *url* with its password replaced by ``***``.

    Unparseable input is masked wholesale after the scheme, because a string
    that is not a URL may still hold a secret.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://{MASK}" if sep else MASK
    secret_keys = [key for key in parsed.query if key.lower() in SECRET_QUERY_KEYS]
    if secret_keys:
        parsed = parsed.update_query_dict({key: MASK for key in secret_keys})
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)


SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "secret", "token"})
"""Query parameters that carry a password in some drivers' URLs (libpq, PyMySQL, ...)."""


def url_secrets(url: str) -> list[str]:
    """Secrets held by *url* for :func:`scrub_text`: its password decoded and encoded.

    The password as written in the URL is included too (``pa%20ss`` or
    ``%2f`` are not what re-encoding gives), and is found even when
    SQLAlchemy cannot parse the URL, because an error about a bad URL may
    echo it.
    """
    try:
        written = urlsplit(url).password
    except ValueError:
        written = None
    query_secrets: list[str] = []
    try:
        parsed = make_url(url)
        password = parsed.password
        for key, value in parsed.query.items():
            if key.lower() in SECRET_QUERY_KEYS:
                values = value if isinstance(value, tuple) else (value,)
                query_secrets.extend(v for v in values if v)
    except (ArgumentError, ValueError):
        password = unquote(written) if written else None
    if not password:
        return sorted(set(query_secrets), key=len, reverse=True)
    plain = str(password)
    if written is None or unquote(written) != plain:
        written = plain  # urlsplit cut the password short (an unencoded '#' or '?')
    found = {plain, quote_plus(plain), quote(plain, safe=""), written, *query_secrets}
    return sorted(found, key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in *text* by ``***``.

    Longer secrets go first so that one secret that contains another is
    removed whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
