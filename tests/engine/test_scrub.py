"""Credential masking: URLs shown with ``***``, secrets scrubbed from any text in any encoding."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest

from migdash.engine.scrub import MASK, mask_url, scrub_text, url_secrets

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
