"""Credential masking: URLs shown with ``***``, secrets scrubbed from any text in any encoding."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy.engine import URL, make_url

from migdash.engine.scrub import MASK, is_secret_query_key, mask_url, scrub_text, url_secrets

PLANTED = "S3cr3t-pl4nted"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            f"postgresql+psycopg://app:{PLANTED}@127.0.0.1:5432/app",
            "postgresql+psycopg://app:***@127.0.0.1:5432/app",
        ),
        (
            "mysql+pymysql://app:p%40ss%2Fw0rd@127.0.0.1/db",
            "mysql+pymysql://app:***@127.0.0.1/db",
        ),
        ("postgresql://:onlypassword@127.0.0.1/db", "postgresql://:***@127.0.0.1/db"),
        ("postgresql://app@127.0.0.1/db", "postgresql://app@127.0.0.1/db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("sqlite:////abs/path/to.db", "sqlite:////abs/path/to.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "password",
    [PLANTED, "p@ss/w0rd", "pa ss", "pa+ss", "100%:sure", "ünïcødé", "quote'\"d", "a#b?c&d=e"],
)
def test_mask_url_hides_encoded_passwords(password: str) -> None:
    url = f"postgresql+psycopg://app:{quote(password, safe='')}@127.0.0.1/app"

    masked = mask_url(url)

    assert masked == "postgresql+psycopg://app:***@127.0.0.1/app"
    for form in (password, quote(password, safe=""), quote_plus(password)):
        assert form not in masked


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (f"postgresql://app:{PLANTED}@127.0.0.1:notaport/db", "postgresql://***"),
        (f"just some text with {PLANTED}", MASK),
        ("", MASK),
    ],
)
def test_mask_url_masks_unparseable_input_wholesale(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("written", "password"),
    [
        (PLANTED, PLANTED),
        ("p%40ss%2Fw0rd", "p@ss/w0rd"),
        ("pa%20ss", "pa ss"),
        ("pa+ss", "pa+ss"),
        ("%2Fp%2f", "/p/"),
        ("100%25%3Asure", "100%:sure"),
    ],
)
def test_scrub_removes_a_password_in_every_form_it_may_appear(written: str, password: str) -> None:
    url = f"postgresql+psycopg://app:{written}@127.0.0.1:5432/app"
    secrets = url_secrets(url)
    texts = [
        f"could not connect to {url}",
        f"FATAL: password {password!r} rejected",
        f"form field password={quote_plus(password)}&user=app",
        f"path /{quote(password, safe='')}/x",
    ]

    for text in texts:
        scrubbed = scrub_text(text, secrets)
        assert MASK in scrubbed
        for form in {written, password, quote_plus(password), quote(password, safe="")}:
            assert form not in scrubbed, (text, scrubbed)


def test_scrub_finds_the_password_of_a_url_sqlalchemy_cannot_parse() -> None:
    url = f"postgresql+psycopg://app:{PLANTED}@127.0.0.1:notaport/app"

    scrubbed = scrub_text(f"connect to {url} failed", url_secrets(url))

    assert PLANTED not in scrubbed
    assert "connect to" in scrubbed


@pytest.mark.parametrize(
    "url", ["sqlite:///x.db", "postgresql://app@127.0.0.1/db", "not a url at all", ""]
)
def test_url_without_password_has_no_secrets(url: str) -> None:
    assert url_secrets(url) == []
    assert scrub_text("nothing to hide here", url_secrets(url)) == "nothing to hide here"


def test_scrub_every_occurrence() -> None:
    text = f"{PLANTED} and again {PLANTED}, then {PLANTED}!"

    assert scrub_text(text, [PLANTED]) == "*** and again ***, then ***!"


def test_scrub_longer_secret_first() -> None:
    """A secret containing another is removed whole, not left half-visible."""
    assert scrub_text("key=abcdef;", ["abc", "abcdef"]) == "key=***;"
    assert scrub_text("key=abcdef;", ["abcdef", "abc"]) == "key=***;"


def test_scrub_ignores_empty_secrets() -> None:
    assert scrub_text("unchanged", ["", ""]) == "unchanged"
    assert scrub_text("unchanged", []) == "unchanged"


def test_password_with_an_unencoded_hash_is_scrubbed_whole() -> None:
    """A raw '#' would end a URL's netloc for urllib; the secret is still the whole password."""
    url = "postgresql://app:pl4n#ted@127.0.0.1/db"

    scrubbed = scrub_text("pl4n is a word; pl4n#ted is the secret", url_secrets(url))

    assert scrubbed == "pl4n is a word; *** is the secret"


def test_passwords_in_the_query_string_are_masked_and_scrubbed() -> None:
    url = "postgresql+psycopg://app@db/x?password=Qu3ry-s3cret&sslmode=require"
    assert "Qu3ry-s3cret" not in mask_url(url)
    assert "sslmode=require" in mask_url(url)
    assert "Qu3ry-s3cret" in url_secrets(url)
    assert "Qu3ry-s3cret" not in scrub_text(f"failed for {url}", url_secrets(url))


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWD",
        "pwd",
        "sslpassword",
        "secret",
        "token",
        "client_secret",
        "auth_token",
        "api_key",
        "x-api-key",
        "apikey",
        "passfile",
    ],
)
def test_secret_query_keys(key: str) -> None:
    assert is_secret_query_key(key)


@pytest.mark.parametrize(
    "key",
    ["sslmode", "application_name", "connect_timeout", "charset", "sslkey", "user", "host"],
)
def test_ordinary_query_keys(key: str) -> None:
    assert not is_secret_query_key(key)


@pytest.mark.parametrize(
    ("query", "masked"),
    [
        ("password=Pa%2Fss%40%25%2B&sslmode=require", "password=***&sslmode=require"),
        ("sslpassword=a%26b%3Dc%23d", "sslpassword=***"),
        ("client_secret=a+b&application_name=shop", "application_name=shop&client_secret=***"),
        ("api_key=k%3Fk&api_key=second", "api_key=***"),
        ("Token=a#b?c", "Token=***"),
    ],
)
def test_mask_url_masks_every_secret_query_parameter(query: str, masked: str) -> None:
    assert mask_url(f"postgresql://app@db/shop?{query}") == f"postgresql://app@db/shop?{masked}"


def test_mask_url_masks_wholesale_when_an_unencoded_at_sign_split_the_password() -> None:
    """SQLAlchemy reads 'p' as the password and 'ss@db' as the host; both are secret."""
    assert mask_url("postgresql://app:p@ss@db/shop") == "postgresql://***"
    assert "p@ss" in url_secrets("postgresql://app:p@ss@db/shop")


def test_userinfo_passwords_are_scrubbed_as_sqlalchemy_renders_them() -> None:
    """SQLAlchemy writes spaces and plus signs of a userinfo password unencoded."""
    url = "postgresql://app:a%20b%2Bc%2Fd@db/shop"
    rendered = make_url(url).render_as_string(hide_password=False)
    assert "a b+c%2Fd" in rendered

    assert "a b+c" not in scrub_text(rendered, url_secrets(url))


# --- every spelling, generated ----------------------------------------------------------

MARKER = "Zq"
"""In every generated secret.  No encoding or escape writes it, and no other text here has it,
so finding it anywhere after scrubbing or masking is a leak, whole or partial."""

RESERVED = "/@%+:?#&=;, '\"\\*\tü€😀"
characters = st.one_of(st.sampled_from(RESERVED), st.characters(exclude_categories=("Cs",)))
secret_parts = st.text(characters, max_size=10)
marked_secrets = st.builds(lambda head, tail: f"{head}{MARKER}{tail}", secret_parts, secret_parts)
QUERY_KEYS = ["password", "sslpassword", "PWD", "client_secret", "api_key", "auth_token"]


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def spellings(secret: str) -> set[str]:
    """The spellings this test expects to be scrubbed (written here, not taken from scrub.py)."""
    encoded = {
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote(secret, safe=" +"),  # how SQLAlchemy renders a userinfo password
        quote_plus(secret),  # how SQLAlchemy renders a query value
    }
    return {secret, repr(secret)[1:-1], *encoded, *map(lower_hex, encoded)}


WRITERS: dict[str, Callable[[str], str]] = {
    "quote": lambda s: quote(s, safe=""),
    "lower hex": lambda s: lower_hex(quote(s, safe="")),
    "quote_plus": quote_plus,  # query only: in the userinfo '+' is a plus sign
}


@dataclass(frozen=True)
class Planted:
    """A PostgreSQL URL with a secret in its userinfo, in a query parameter, or in both."""

    userinfo: str | None
    query: str | None
    key: str
    writer: str
    """How the URL text was written: one of WRITERS, or "sqlalchemy" (``URL.create``)."""

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.userinfo, self.query) if s is not None]

    @property
    def url(self) -> str:
        params = {"sslmode": "require", **({self.key: self.query} if self.query else {})}
        if self.writer == "sqlalchemy":
            created = URL.create(
                "postgresql+psycopg", "app", self.userinfo, "db.example.com", 5432, "shop", params
            )
            return created.render_as_string(hide_password=False)
        write = WRITERS[self.writer]
        write_userinfo = WRITERS["quote" if self.writer == "quote_plus" else self.writer]
        auth = "app" if self.userinfo is None else f"app:{write_userinfo(self.userinfo)}"
        query = "&".join(f"{k}={write(v)}" for k, v in params.items())
        return f"postgresql+psycopg://{auth}@db.example.com:5432/shop?{query}"

    def renderings(self) -> list[str]:
        """The URL and its secrets as project code, a driver or a traceback may print them."""
        url = self.url
        parsed = make_url(url)
        rendered = parsed.render_as_string(hide_password=False)
        texts = [
            url,
            str(parsed),  # SQLAlchemy 2 masks the userinfo here, but not the query
            rendered,
            repr(parsed),
            f"could not parse {url!r}",
            repr(parsed.translate_connect_args()),
            repr(dict(parsed.query)),
            "Traceback (most recent call last):\n"
            '  File "versions/b2.py", line 9, in upgrade\n'
            '    raise RuntimeError(f"boom on {url}")\n'
            f"RuntimeError: boom on {rendered}",
        ]
        for secret in self.secrets:
            texts.append(f"FATAL: password {secret!r} rejected")
            texts += [f"form {form}&x=1" for form in spellings(secret)]
        return texts


@st.composite
def planted_urls(draw: st.DrawFn, secrets: st.SearchStrategy[str] = marked_secrets) -> Planted:
    position = draw(st.sampled_from(["userinfo", "query", "both"]))
    return Planted(
        userinfo=draw(secrets) if position != "query" else None,
        query=draw(secrets) if position != "userinfo" else None,
        key=draw(st.sampled_from(QUERY_KEYS)),
        writer=draw(st.sampled_from([*WRITERS, "sqlalchemy"])),
    )


@given(planted_urls())
def test_no_spelling_of_a_planted_secret_survives_scrubbing(planted: Planted) -> None:
    found = url_secrets(planted.url)

    for text in planted.renderings():
        scrubbed = scrub_text(text, found)
        for secret in planted.secrets:
            assert [s for s in spellings(secret) if s in scrubbed] == [], (text, scrubbed)
        assert MARKER not in scrubbed, (text, scrubbed)


@given(planted_urls())
def test_url_secrets_are_spellings_of_the_secrets_only(planted: Planted) -> None:
    """No fragment of a secret, and no other part of the URL (a host, 'require'), is listed."""
    found = url_secrets(planted.url)

    assert found
    assert [s for s in found if MARKER not in s] == []


@given(planted_urls())
def test_mask_url_shows_nothing_of_a_planted_secret(planted: Planted) -> None:
    masked = mask_url(planted.url)

    assert MARKER not in masked
    assert masked == mask_url(
        replace(planted, userinfo=planted.userinfo and "x", query=planted.query and "x").url
    )
    assert "sslmode=require" in masked


@given(planted_urls(st.text(characters, min_size=4)))
def test_text_without_the_secret_is_left_alone(planted: Planted) -> None:
    """Scrubbing with a URL's secrets changes nothing in text that does not hold them."""
    ordinary = [
        mask_url(planted.url),
        "upgrade a1 -> b2 on app@db.example.com:5432/shop (sslmode=require, 100% done)",
        "INFO  [alembic.runtime.migration] Running upgrade a1 -> b2, create orders",
        'FATAL:  password authentication failed for user "app"',
        "https://example.com/docs?page=2&sort=name#token-auth",
    ]
    assume(
        not any(form in text for text in ordinary for s in planted.secrets for form in spellings(s))
    )

    secrets = url_secrets(planted.url)

    assert [scrub_text(text, secrets) for text in ordinary] == ordinary
