"""A planted password never leaves the encrypted column: not in pages, JSON, logs, CLI or files.

Three targets carry the password ``Pl4nted-S3cret``: a PostgreSQL database
whose migration fails with the full URL in its exception (the real password
rides in ``?password=``, which libpq prefers), a closed loopback port, and
PostgreSQL refusing the password.  All three also carry a second secret full
of reserved characters in ``?sslpassword=`` (libpq takes it, and needs it only
for an encrypted client key), written three ways; the failing migration
prints it and the URL in every spelling it can.  Everything that could show
a URL is then driven: probes, a failing job, a job that cannot connect, a job held for
approval, every page, the API, the CLI, the audit exports, the logs at
DEBUG, and the raw bytes of every file in the instance folder.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from migdash.scaffold import RevisionSpec
from migdash.services import services_of
from migdash.store.models import Target, TargetLease
from tests.conftest import migrate_to

PLANTED = "Pl4nted-S3cret"
QUERY_PLANTED = "Qu3ry/P@ss %+:?#&=ü'\"T4il"
"""A query-parameter secret with every character a URL reserves, a space, unicode and quotes."""


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def spellings(secret: str) -> set[str]:
    encoded = {quote(secret, safe=""), quote(secret, safe="/"), quote_plus(secret)}
    return {secret, *encoded, *map(lower_hex, encoded)}


FRAGMENTS = {*spellings(PLANTED), *spellings(QUERY_PLANTED), "Pl4nted", "S3cret", "Qu3ry", "T4il"}
"""The passwords as written, encoded, and in halves (a truncated leak is still a leak)."""

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

HALF_WAY = (
    'op.create_table("half", sa.Column("id", sa.Integer, primary_key=True))\n'
    "import re\n"
    "from urllib.parse import quote, quote_plus\n"
    "url = op.get_bind().engine.url\n"
    'secret = url.query["sslpassword"]\n'
    'print("stored:", op.get_context().config.get_main_option("sqlalchemy.url"))\n'
    'print("str:", url, "repr:", repr(url), "query:", dict(url.query))\n'
    'print("raw:", secret, repr(secret), quote(secret, safe="/"), quote_plus(secret))\n'
    'lower = re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret, safe=""))\n'
    'print("encoded:", quote(secret, safe=""), "lower:", lower)\n'
    'raise RuntimeError("boom after creating half, on " + url.render_as_string(False))\n'
)
"""Creates a table, prints its URL and query secret every way, then fails with the full URL."""


def leaks(text: str) -> list[str]:
    return sorted(f for f in FRAGMENTS if f in text)


def with_planted_password(url: str) -> str:
    """*url* with PLANTED as its password, the real one in ``?password=``, QUERY_PLANTED too."""
    parsed = sa.make_url(url)
    return (
        parsed.set(password=PLANTED)
        .update_query_dict({"password": str(parsed.password), "sslpassword": QUERY_PLANTED})
        .render_as_string(hide_password=False)
    )


def job_id_of(response: Any) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    return int(response.headers["Location"].rsplit("/", 1)[1])


@pytest.mark.server
def test_a_planted_password_appears_nowhere(
    app: Flask,
    login: Callable[..., FlaskClient],
    make_project: Callable[..., Any],
    add_environment: Callable[..., None],
    add_target: Callable[..., str],
    make_user: Callable[..., str],
    make_token: Callable[[str], str],
    cli: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    log_lines: Callable[[int], list[str]],
    instance_bytes: Callable[[], bytes],
    postgres_server: str,
    postgres_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = sa.make_url(postgres_server)
    assert server.host in LOOPBACK, "secrets tests only ever talk to this machine"
    project = make_project(
        [
            RevisionSpec("a1", None, "create accounts", table="accounts"),
            RevisionSpec("b2", "a1", "half way", upgrade_body=HALF_WAY),
            RevisionSpec("c3", "b2", "never reached", table="items"),
        ],
        name="shop",
    )
    add_environment("dev")
    add_environment("prod", protected=True)
    failing = with_planted_password(postgres_url)
    migrate_to(project, failing, "a1")
    refused = server.set(password=PLANTED, database="postgres")
    urls = {
        "pg-fails": failing,  # sslpassword written as SQLAlchemy writes it (quote_plus)
        "pg-gone": f"postgresql+psycopg://app:{PLANTED}@127.0.0.1:1/nothing"
        f"?sslpassword={lower_hex(quote(QUERY_PLANTED, safe=''))}&sslmode=prefer",
        "pg-refused": refused.render_as_string(hide_password=False)
        + f"?sslpassword={quote(QUERY_PLANTED, safe='/')}",
    }
    assert all(PLANTED in url for url in urls.values())
    assert {sa.make_url(url).query["sslpassword"] for url in urls.values()} == {QUERY_PLANTED}
    add_target(project, "pg-fails", "dev", url=urls["pg-fails"])
    add_target(project, "pg-gone", "dev", url=urls["pg-gone"])
    add_target(project, "pg-refused", "prod", url=urls["pg-refused"])
    add_target(project, "pg-held", "prod", url=urls["pg-fails"])
    make_user("reviewer", "approver")
    token = make_token("reviewer")
    web = login("admin")
    seen: dict[str, str] = {}

    def read(name: str, response: Any) -> None:
        assert response.status_code < 500, (name, response.get_data(as_text=True)[:1000])
        seen[name] = response.get_data(as_text=True)

    seen["cli status --json"] = cli("status", "--json").stdout
    read("POST /overview/probe", web.post("/overview/probe", headers={"HX-Request": "true"}))
    fails = job_id_of(
        web.post("/actions/targets/pg-fails", data={"action": "upgrade", "revision": "heads"})
    )
    for name in ("pg-gone", "pg-refused"):  # nothing can be planned: refused, and said why
        response = web.post(
            f"/actions/targets/{name}", data={"action": "upgrade", "revision": "heads"}
        )
        read(f"POST /actions/targets/{name}", response)
        assert response.status_code == 409
        assert "cannot plan: the target is unreachable" in response.get_data(as_text=True)
    held = job_id_of(
        web.post("/actions/targets/pg-held", data={"action": "upgrade", "revision": "heads"})
    )
    run_queue()
    assert load_job(fails).state == "failed"
    assert "RuntimeError: boom after creating half" in load_job(fails).error
    assert "sslpassword=***" in load_job(fails).error
    printed = "\n".join(log_lines(fails))
    assert all(f"{what}:" in printed for what in ("stored", "str", "raw", "encoded", "lower"))
    with services_of(app).sessions() as session:
        assert session.scalars(sa.select(TargetLease)).all() == [], "no lease is left behind"
    assert load_job(held).state == "awaiting_approval"

    paths = [
        "/",
        "/overview/matrix",
        "/projects/",
        "/projects/shop",
        "/projects/shop/graph.svg",
        "/projects/shop/revisions/b2",
        "/jobs/",
        "/approvals/",
        "/audit/",
        "/audit/export.csv",
        "/audit/export.json",
        "/admin/",
    ]
    for name in urls:
        paths += [
            f"/targets/{name}",
            f"/admin/targets/{name}/edit",
            f"/actions/targets/{name}?action=upgrade&revision=heads",
        ]
        read(f"POST /targets/{name}/probe", web.post(f"/targets/{name}/probe"))
    for job_id in (fails, held):
        paths += [f"/jobs/{job_id}", f"/jobs/{job_id}/live", f"/approvals/{job_id}"]
    for path in paths:
        read(path, web.get(path))
    bearer = {"Authorization": f"Bearer {token}"}
    api_paths = ["/status", "/status?probe=1", "/targets", "/jobs", "/approvals"]
    for job_id in (fails, held):
        api_paths += [f"/jobs/{job_id}", f"/jobs/{job_id}/log", f"/jobs/{job_id}/plan"]
    for path in api_paths:
        read(f"API {path}", web.get(f"/api/v1{path}", headers=bearer))
    read("API approve", web.post(f"/api/v1/jobs/{held}/approve", headers=bearer, json={}))
    plan_hash = json.loads(seen[f"API /jobs/{held}/plan"])["plan_hash"]
    read(
        "API approve with plan",
        web.post(f"/api/v1/jobs/{held}/approve", headers=bearer, json={"plan_hash": plan_hash}),
    )
    for args in (
        ["status"],
        ["status", "--json"],
        ["current", "--json"],
        ["jobs", "--json"],
        *(["job", str(j), "--json"] for j in (fails, held)),
        *(["job", str(j)] for j in (fails, held)),
    ):
        seen["cli " + " ".join(args)] = cli(*args).stdout

    assert "pg-refused" in seen["/"]
    assert "boom after creating half" in seen[f"/jobs/{fails}"]
    assert {name: leaks(text) for name, text in seen.items() if leaks(text)} == {}
    logged = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert len(caplog.records) > 10, "the logs were captured"
    assert leaks(logged) == []
    stored = instance_bytes()
    assert b"pg-refused" in stored, "the files read are the ones migdash writes"
    assert [f for f in FRAGMENTS if f.encode() in stored] == []

    with services_of(app).sessions() as session:
        targets = {t.name: t for t in session.scalars(sa.select(Target))}
        cipher = services_of(app).cipher
        for name, url in urls.items():
            assert leaks(targets[name].url_encrypted) == []
            assert cipher.decrypt(targets[name].url_encrypted) == url
