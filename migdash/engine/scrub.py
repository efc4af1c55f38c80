"""Masking of credentials, used by every layer before anything is shown or stored.

A target URL carries a password; it must never reach a page, a log line, a
snapshot or an error message.  Every layer masks through here, so there is
one rule for what a masked URL looks like, and one rule for which query
parameters hold secrets.

A password can sit in two places: the userinfo (``user:PASSWORD@host``) and a
query parameter (``?password=...``, ``?sslpassword=...``).  Either can be
echoed by project code in many spellings (decoded, as written, re-encoded by
``urllib`` or by SQLAlchemy, inside a ``repr``), so :func:`url_secrets` lists
every spelling and :func:`scrub_text` removes them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"

SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "secret", "token"})
"""Query parameters that carry a password in some drivers' URLs (libpq, PyMySQL, ...)."""

SECRET_KEY_PARTS = ("pass", "pwd", "secret", "token", "apikey", "api_key", "api-key")
"""A query parameter whose name contains one of these holds a secret too.

Drivers and services name theirs freely (``client_secret``, ``auth_token``,
``x-api-key``, ``sslpassword``).  Names are matched, never values, so ``sslmode=require``
or ``application_name=app`` stay readable: scrubbing a common word from
every log line would make the logs useless without hiding anything.
"""

_USERINFO = re.compile(r"[\w+]+://[^:/]*:(?P<password>[^@]*)@")
"""SQLAlchemy's own split (``make_url``): the password runs to the first ``@``."""

_HEX_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def is_secret_query_key(key: str) -> bool:
    """Whether the query parameter *key* (decoded) names a secret."""
    name = key.lower()
    return name in SECRET_QUERY_KEYS or any(part in name for part in SECRET_KEY_PARTS)


def mask_url(url: str) -> str:
    """Return *url* with its password and secret query parameters replaced by ``***``.

    Unparseable input is masked wholesale after the scheme, because a string
    that is not a URL may still hold a secret.  So is a URL whose host holds
    an ``@``: SQLAlchemy cut an unencoded ``@`` out of the password there,
    and the rest of the password would be shown as the host.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is None or "@" in (parsed.host or ""):
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://{MASK}" if sep else MASK
    secret_keys = [key for key in parsed.query if is_secret_query_key(key)]
    if secret_keys:
        parsed = parsed.update_query_dict({key: MASK for key in secret_keys})
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)


def url_secrets(url: str) -> list[str]:
    """Every spelling of every secret *url* holds, longest first, for :func:`scrub_text`.

    The secrets are the userinfo password and the value of each
    secret-named query parameter (:func:`is_secret_query_key`).  They are
    found even when SQLAlchemy cannot parse the URL, because an error about
    a bad URL may echo it.  Each comes in all the spellings of
    :func:`secret_spellings`, plus exactly as written in *url* (``pa%2fss``
    is not what re-encoding gives).
    """
    decoded: set[str] = set()
    written: set[str] = set()
    for plain, as_written in _url_secret_values(url):
        decoded.add(plain)
        written.add(as_written)
    found = {s for secret in decoded for s in secret_spellings(secret)}
    found |= {s for w in written for s in _hex_cases(w)}
    return sorted((s for s in found if s), key=len, reverse=True)


def secret_spellings(secret: str) -> set[str]:
    """The spellings in which *secret* may appear in output that echoes a URL or its parts.

    Decoded; percent-encoded as ``urllib`` does (``quote`` with and without
    ``/`` safe, ``quote_plus``) and as SQLAlchemy renders a userinfo password
    (``quote(safe=" +")``; its query values are ``quote_plus``), each with
    upper- and lower-case hex escapes; and escaped as inside a Python
    ``repr``/``ascii`` or a JSON string (``f"{password!r}"``, ``json.dumps``).
    """
    # surrogatepass: a lone surrogate cannot be in a real URL, but must not crash a job either
    encoded = {
        quote(secret, safe="", errors="surrogatepass"),
        quote(secret, safe="/", errors="surrogatepass"),
        quote(secret, safe=" +", errors="surrogatepass"),
        quote_plus(secret, safe="", errors="surrogatepass"),
        quote_plus(secret, safe="/", errors="surrogatepass"),
    }
    quoted = {
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    return {secret, *quoted, *(form for e in encoded for form in _hex_cases(e))}


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in *text* by ``***``.

    Longer secrets go first so that one secret that contains another is
    removed whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _url_secret_values(url: str) -> Iterator[tuple[str, str]]:
    """(decoded, as written) for the userinfo password and each secret query value."""
    try:
        parsed: URL | None = make_url(url)
    except (ArgumentError, ValueError):  # the secrets are still in the text
        parsed = None
    userinfo = _USERINFO.match(url)
    yield from _userinfo_passwords(url, userinfo.group("password") if userinfo else "", parsed)
    _, _, query = url[userinfo.end() if userinfo else 0 :].partition("?")
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if value and is_secret_query_key(unquote_plus(key)):
            yield unquote_plus(value), value
    for key, values in (parsed.query if parsed is not None else {}).items():
        if is_secret_query_key(key):
            for value in values if isinstance(values, tuple) else (values,):
                if value:
                    yield value, value


def _userinfo_passwords(url: str, written: str, parsed: URL | None) -> Iterator[tuple[str, str]]:
    """The userinfo password as SQLAlchemy reads it, and as ``urllib`` does where that is longer.

    *written* is SQLAlchemy's split, redone for URLs that ``make_url``
    refuses (a bad port).  Where an unencoded ``@`` made SQLAlchemy cut the
    password short (``p@ss@host``), ``urllib``'s ``p@ss`` is what the
    author meant, so both are secrets.
    """
    if written:
        yield unquote(written), written
    try:
        split_password = urlsplit(url).password or ""
    except ValueError:
        split_password = ""
    if written and split_password.startswith(written) and split_password != written:
        yield unquote(split_password), split_password
    if parsed is not None and parsed.password:
        yield str(parsed.password), str(parsed.password)


def _hex_cases(text: str) -> set[str]:
    """*text* as given and with all its ``%XX`` escapes in upper and in lower case."""
    return {
        text,
        _HEX_ESCAPE.sub(lambda m: m.group(0).upper(), text),
        _HEX_ESCAPE.sub(lambda m: m.group(0).lower(), text),
    }
