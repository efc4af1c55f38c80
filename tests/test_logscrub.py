"""The process-wide net: log records lose URL passwords and secret query values by their shape."""

from __future__ import annotations

import logging
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import URL

from migdash.logscrub import install_log_scrubbing, mask_passwords

MARKER = "Zq"
"""In every generated secret, and nowhere else in the logged text."""

RESERVED = "/@%+:?#&=;, '\"\\*ü€😀"
characters = st.one_of(st.sampled_from(RESERVED), st.characters(exclude_categories=("Cs",)))
marked_secrets = st.builds(
    lambda head, tail: f"{head}{MARKER}{tail}",
    st.text(characters, max_size=10),
    st.text(characters, max_size=10),
)
SECRET_KEYS = ["password", "passwd", "PWD", "sslpassword", "client_secret", "api_key", "token"]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_every_secret_named_query_parameter_is_masked(key: str) -> None:
    line = f"connect postgresql://app@db/shop?sslmode=require&{key}=Pa%2Fss%40%25+x failed"

    assert (
        mask_passwords(line) == f"connect postgresql://app@db/shop?sslmode=require&{key}=*** failed"
    )


@pytest.mark.parametrize(
    "line",
    [
        "postgresql://app@db/shop?sslmode=require&application_name=shop&connect_timeout=10",
        "GET /jobs/?page=2&sort=name HTTP/1.1 200",
        "a token bucket and a password prompt, but no parameters",
    ],
)
def test_ordinary_parameters_and_words_are_left_alone(line: str) -> None:
    assert mask_passwords(line) == line


def test_a_secret_after_an_ordinary_value_holding_a_question_mark_is_masked() -> None:
    line = "postgresql://db/shop?application_name=a?b&password=s3cret"

    assert mask_passwords(line) == "postgresql://db/shop?application_name=a?b&password=***"


@given(
    secret=marked_secrets,
    key=st.sampled_from(SECRET_KEYS),
    writing=st.sampled_from(["sqlalchemy", "quote", "quote_plus"]),
)
def test_a_query_secret_leaves_no_trace_in_a_logged_url(
    secret: str, key: str, writing: str
) -> None:
    if writing == "sqlalchemy":
        query = {key: secret, "sslmode": "require"}
        url = URL.create("postgresql+psycopg", "app", None, "db", 5432, "shop", query)
        text = url.render_as_string(hide_password=False)
    else:
        encoded = quote(secret, safe="") if writing == "quote" else quote_plus(secret)
        text = f"postgresql+psycopg://app@db:5432/shop?{key}={encoded}&sslmode=require"

    masked = mask_passwords(f"OperationalError: cannot reach {text}, giving up")

    assert MARKER not in masked
    assert "sslmode=require" in masked


@given(secret=marked_secrets)
def test_an_encoded_userinfo_password_leaves_no_trace(secret: str) -> None:
    text = f"could not connect to postgresql://app:{quote(secret, safe='')}@db:5432/shop"

    assert MARKER not in mask_passwords(text)


def test_log_records_are_masked_before_any_handler_sees_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_scrubbing()
    caplog.set_level(logging.INFO)

    logging.getLogger("migdash.test").info(
        "connecting to %s", "postgresql://app:pw%2F1@db/shop?sslpassword=k%3Fey&sslmode=require"
    )

    assert caplog.messages == [
        "connecting to postgresql://app:***@db/shop?sslpassword=***&sslmode=require"
    ]
