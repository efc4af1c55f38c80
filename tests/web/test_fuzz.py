"""No 5xx from any input: a property-based fuzz over every form and API route of the app.

The cases come from ``app.url_map``, so a new route is fuzzed as soon as it
exists, and :func:`test_every_route_has_a_fuzz_strategy` fails until
:data:`INPUTS` says which query, form or JSON fields it reads and
:data:`PATH_VALUES` covers its path arguments.  Each case sends, signed in as
an admin (with the admin's API token under ``/api/v1``):

* a systematic sweep (:func:`sweep`): the real request, then each path part
  and each field in turn replaced by a killer value (23-digit and 64-bit-bound
  numbers, NUL, 5,000 characters, markup and quotes, wrong JSON types), and
  bodies with a known answer (413 over the size limit, 415 for JSON sent to a
  page, 400 for junk, non-objects and 50,000 nested brackets on JSON routes);
* random requests (:func:`requests_for`) mixing hostile values (unicode,
  quotes, templates, paths, lists and nested objects, missing fields, junk
  fields, bad tokens, htmx or not) with the real names and ids of the world.

The world is realistic: a project with real revision files and two heads,
plain and protected targets on real SQLite databases, finished, held and
queued jobs, users and tokens.  Its metadata DB is restored after any request
that committed, so one request's change (a deleted project, a revoked token)
never leaks into the next and a failure replays exactly while Hypothesis
shrinks it.  Derandomized, without an example database: CI runs the same
requests every time.

Every answer is below 500 and carries no traceback.  "Names the problem"
means, concretely:

* under ``/api/``: a JSON body ``{"error": {"code", "message", ...}}`` with a
  snake_case ``code`` and a non-empty ``message`` (and ``field``, when
  present, a non-empty string);
* pages and htmx fragments: HTML holding an element with ``role="alert"``
  whose text is not empty and is not the internal-error text, or a form
  re-shown with an error beside a field (inside the field's ``<label>``).

A sweep request makes one field hostile; a 400 for it must name that field
(``field`` in the JSON, the field's name or value in the message, or the
error beside that field on the form).  Two PostgreSQL rules are checked on
SQLite too: a NUL is refused (400) wherever it is sent, and nothing stored
is longer than its column (:meth:`World.unstorable`);
:func:`test_on_postgresql_nul_and_overlong_text_are_refused_not_crashed`
sends those requests to a real PostgreSQL.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from flask import Flask
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from migdash import create_app
from migdash.jobs.consumer import build_worker
from migdash.jobs.heartbeat import beat
from migdash.jobs.requests import request_target_action
from migdash.jobs.rollout_control import pause_rollout
from migdash.jobs.rollouts import create_rollout
from migdash.jobs.webhooks import WebhookFields, save_webhook
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Base, Job, JobState, Role, utcnow
from migdash.store.queries import all_environments
from migdash.store.tokens import create_token
from migdash.store.users import create_user, get_user
from migdash.web.inputs import MAX_CONTENT_LENGTH, MAX_ID

# --- what every route reads -------------------------------------------------------------------

ACTION = ("action", "revision", "purge")
AUDIT = ("actor", "action", "target", "project", "since", "limit")
INPUTS: dict[str, tuple[str, ...]] = {
    "auth.login": ("username", "password", "next"),
    "auth.logout": (),
    "overview.index": (),
    "overview.matrix": (),
    "overview.probe_now": (),
    "projects.index": (),
    "projects.detail": ("n", "page", "q", "target", "depth"),
    "projects.history": ("n", "page"),
    "projects.loading": (),
    "projects.graph_svg": (),
    "projects.revision": (),
    "targets.detail": (),
    "history.target": (),
    "schemas.target": (),
    "schemas.snapshot": (),
    "schemas.diff": ("left", "right"),
    "targets.probe": (),
    "targets.check_drift": (),
    "targets.check_history": (),
    "admin.index": (),
    "admin.project_form": (
        "name",
        "script_location",
        "version_table",
        "version_table_schema",
        "track",
        "url_mode",
        "url_env_var",
    ),
    "admin.init_project_form": ("name", "template"),
    "admin.environment_form": (
        "name",
        "position",
        "protected",
        "required_approvals",
        "promotion_rule",
        "windows",
    ),
    "admin.target_form": (
        "name",
        "project",
        "environment",
        "url",
        "tags",
        "version_table",
        "version_table_schema",
    ),
    "admin.confirm_delete": (),
    "admin.delete": ("seen",),
    "users.index": (),
    "users.create": ("username", "role", "password"),
    "users.detail": (),
    "users.set_role": ("role",),
    "users.set_password": ("password",),
    "users.disable": (),
    "users.enable": (),
    "users.create_token": ("name",),
    "users.revoke_token": (),
    "jobs.index": ("state", "project", "target"),
    "jobs.detail": (),
    "jobs.live": (),
    "jobs.cancel": (),
    "actions.plan_target": ACTION,
    "actions.plan_sql": ACTION,
    "actions.request_target": (*ACTION, "plan_hash", "not_before"),
    "actions.environment": ("environment", "project", *ACTION),
    "actions.merge": ("message", "heads"),
    "actions.revision": (
        "message",
        "head",
        "branch_label",
        "depends_on",
        "autogenerate",
        "confirmed",
        "against",
    ),
    "compare.index": (),
    "compare.project": ("a", "b", "target_a", "target_b"),
    "compare.promotion": ("from", "to"),
    "compare.promote": ("from", "to", "seen"),
    "approvals.index": (),
    "approvals.review": (),
    "approvals.approve": ("comment", "plan_hash"),
    "approvals.reject": ("comment",),
    "audit.index": AUDIT,
    "audit.export_csv": AUDIT,
    "audit.export_json": AUDIT,
    "api.check": ("project", "env", "probe"),
    "health.healthz": (),
    "health.readyz": (),
    "metrics.metrics": (),
    "api.status": ("project", "environment", "env", "tag", "state", "probe"),
    "api.targets": ("project", "environment", "tag"),
    "api.jobs": ("state", "project", "target", "limit"),
    "api.create_job": ("target", "action", "revision", "purge", "plan_hash", "not_before"),
    "api.job": (),
    "api.job_plan": (),
    "api.job_log": ("after",),
    "api.cancel": (),
    "api.pending_approvals": (),
    "api.approve": ("comment", "plan_hash"),
    "api.reject": ("comment",),
    "webhooks.index": (),
    "webhooks.form": (
        "name",
        "url",
        "secret",
        "project",
        "environment",
        "format",
        "events",
        "active",
        "allow_private",
    ),
    "webhooks.detail": (),
    "webhooks.test": (),
    "webhooks.delete": (),
    "api.openapi": (),
    "api_docs.index": (),
    "api.projects": (),
    "api.project": (),
    "api.heads": (),
    "api.history": ("page", "n"),
    "api.graph": (),
    "api.revision": (),
    "api.target": (),
    "api.audit_events": ("actor", "action", "target", "project", "since", "before", "limit"),
    "api.compare": ("a", "b", "target_a", "target_b"),
    "api.schema_diff": ("left", "right"),
    "api.merge": ("message", "heads"),
    "api.new_revision": ("message", "head", "branch_label", "depends_on"),
    "api.promotion": ("from", "to"),
    "api.promote": ("from", "to", "fingerprint"),
    "api.rollouts": (),
    "api.rollout": (),
    "api.rollout_create": (
        "project",
        "revision",
        "environments",
        "tags",
        "canary",
        "wave",
        "concurrency",
        "on_failure",
    ),
    "api.rollout_pause": (),
    "api.rollout_resume": (),
    "api.rollout_cancel": (),
    "api.rollout_approve": ("comment", "fingerprint"),
    "api.rollout_reject": ("comment",),
    "rollouts.index": (),
    "rollouts.create": (
        "project",
        "revision",
        "environment",
        "tags",
        "canary",
        "wave",
        "concurrency",
        "on_failure",
    ),
    "rollouts.detail": (),
    "rollouts.pause": (),
    "rollouts.resume": (),
    "rollouts.cancel": (),
    "rollouts.approve": ("comment", "fingerprint"),
    "rollouts.reject": ("comment",),
}
"""Query (GET), form (web POST) or JSON (API POST) fields each endpoint reads."""
MULTI = frozenset({"heads"})
"""Fields read with ``getlist``: sent zero, one or several times."""
SLOW = frozenset(
    {
        "actions.plan_target",
        "actions.plan_sql",
        "actions.request_target",
        "actions.environment",
        "actions.revision",
        "compare.promotion",
        "compare.promote",
        "approvals.review",
        "approvals.approve",
        "api.create_job",
        "api.job_plan",
        "api.approve",
        "targets.check_drift",
        "targets.check_history",
        "rollouts.create",
        "api.new_revision",
        "api.promotion",
        "api.promote",
        "api.rollout_create",
    }
)
"""Endpoints that may start a child process (a plan, an autogenerate preview) per request."""
BUDGET, SLOW_BUDGET, SYNTHETIC_BUDGET = 18, 6, 30
"""Examples (one request each) per case: at least 1,000 per run in total, in about a minute."""

# --- values ---------------------------------------------------------------------------------

HUGE = "9" * 23
NUMBERS = [
    *("0", "1", "-1", "+3", " 7 ", "1_000", "0x1f", "1.5", "1e309", "NaN", "inf"),
    *(HUGE, "-" + HUGE, str(MAX_ID), str(MAX_ID + 1), str(-MAX_ID - 2)),  # the 64-bit bound
    *("\u0663", "0" * 40 + "1", "9" * 5000),  # an Arabic-Indic 3 (int() reads it); int()'s limit
]
"""Numbers and near-numbers: not ints, ints Python reads loosely, ints no column can hold."""
NASTY = [
    *("", " ", "\x00", "a\x00b", "'", '"', '"""', "'''", "\\", "%", "%00", "null", "[]", "{}"),
    *("<script>alert(1)</script>", "{{ 7 * 7 }}", "${7*7}", "'; DROP TABLE jobs; --"),
    *("../../../../etc/passwd", "heads", "base", "+99999999999999999999999"),
    *(
        "\u202e\u200b\ufeff",
        "\U0001d518\U0001d52b\U0001d526 \u2603 \u00e9",
        "x" * 5000,
        "\u00e9" * 3000,
    ),
]
"""Text that breaks naive code: NUL, quotes, markup, templates, paths, unicode, length."""
REAL: dict[str, list[str]] = {
    "username": ["fresh", "admin", "scratch", "other-admin", "requester"],
    "password": ["correct-horse-battery-staple", "short"],
    "next": ["/jobs/", "//evil.example/", "https://evil.example/"],
    "n": ["25", "50", "7"],
    "page": ["1", "2", "0"],
    "q": ["b2", "create", "nothing matches"],
    "depth": ["3", "12", "0", "201"],
    "name": ["fresh", "shop", "dev", "shop-dev", "scratch", "fresh.name-2"],
    "version_table": ["alembic_version", "other_version"],
    "version_table_schema": ["main"],
    "track": ["heads", "orders@head", "a1"],
    "url_mode": ["config", "connection", "env"],
    "url_env_var": ["DATABASE_URL", "lower_case"],
    "template": ["generic", "multidb", "nope"],
    "position": ["0", "5", "1000000", "1000001"],
    "protected": ["y", "on"],
    "required_approvals": ["1", "2", "20", "21"],
    "promotion_rule": ["warn", "refuse", "sometimes"],
    "windows": [
        "",
        "Mon-Fri 22:00-02:00 UTC; Sat,Sun 00:00-24:00",
        "Mon 25:00-01:00",
        "Tue 10:00-11:00 Nowhere/Else",
    ],
    "not_before": [
        "2026-01-01T00:00",
        "",
        "2026-11-28T22:00",
        "2026-11-28T22:00:00+05:00",
        "0001-01-01T00:00",
        "9999-12-31T23:59:59.999999+00:00",
        "tomorrow",
    ],
    "a": ["dev", "prod", "qa", "scratch"],
    "b": ["prod", "dev", "qa"],
    "target_a": ["shop-dev", "prod-1", "shop-qa"],
    "target_b": ["prod-2", "shop-done"],
    "from": ["qa", "dev", "prod"],
    "to": ["prod", "qa", "dev"],
    "project": ["shop"],
    "environment": ["qa", "dev", "prod", "scratch"],
    "environments": ["qa", "scratch"],
    "env": ["dev", "prod"],
    "url": [
        "sqlite:///:memory:",
        "postgresql+psycopg://u:secret@127.0.0.1:1/x",
        "not a url",
        "http://127.0.0.1:9/hook",
        "https://10.0.0.1/x",
    ],
    "tags": ["eu, primary", "bad tag!"],
    "role": [role.value for role in Role],
    "state": [state.value for state in JobState],
    "target": ["shop-dev", "shop-dev2", "prod-1"],
    "action": ["upgrade", "downgrade", "stamp", "merge", "job.request"],
    "revision": ["heads", "head", "base", "a1", "b2", "c3", "+1", "-1", "orders@head"],
    "purge": ["y"],
    "message": ["a new revision", '"""triple quoted"""'],
    "heads": ["c3", "d4"],
    "head": ["c3", "orders@head"],
    "branch_label": ["fresh_label", "orders"],
    "depends_on": ["b2", "a1, b2"],
    "autogenerate": ["n", "y"],
    "confirmed": ["y"],
    "against": ["shop-dev"],
    "comment": ["looks good"],
    "left": ["shop-dev", "prod-1", "nope"],
    "right": ["shop-done", "shop-dev", "nope"],
    "script_location": [
        "{shop_location}",
        "/nonexistent",
        "relative/dir",
        "{shop_location}/env.py",
    ],
    "plan_hash": ["", "{held_plan}", "0" * 64],
    "seen": ["", "0" * 64],
    "actor": ["admin", "requester"],
    "since": ["2026-11-24", "2026-11-24T10:00+05:00", "0001-01-01", "9999-12-31T23:59:59.999"],
    "limit": ["1", "10", "1000", "1001", "0"],
    "after": ["0", "1"],
    "probe": ["1"],
    "secret": ["a-long-enough-signing-secret", "short"],
    "format": ["json", "slack", "xml"],
    "events": ["job.failed, drift.detected", "job.nope", "project.multiple_heads"],
    "active": ["y"],
    "allow_private": ["y"],
    "tag": ["eu", "primary"],
    "before": ["1000", "1"],
    "canary": ["1", "0", "2"],
    "wave": ["1", "10"],
    "concurrency": ["1", "4"],
    "on_failure": ["halt", "continue", "sometimes"],
    "fingerprint": ["", "0" * 64],
}
"""Values that mean something in the seeded world (the fuzz mixes them with hostile ones)."""
PATH_VALUES: dict[str, list[str]] = {
    "job_id": ["{finished}", "{held}", "{held2}", "{queued}"],
    "token_id": ["{scratch_token}", "{admin_token}"],
    "name": ["shop", "shop-dev", "prod-1", "dev", "prod", "scratch"],
    "name@targets": ["shop-dev", "shop-qa", "prod-1", "shop-done"],
    "name@projects": ["shop", "nope"],
    "name@environments": ["dev", "scratch", "prod"],
    "name@webhooks": ["fuzz-hook", "nope"],
    "name@compare": ["shop", "nope"],
    "kind": ["projects", "environments", "targets", "users"],
    "revision": ["a1", "b2", "c3", "heads", "orders@head", "a"],
    "username": ["scratch", "other-admin", "admin"],
    "rollout_id": ["{rollout}", "{rollout_paused}", "{rollout_held}"],
}
"""Real values for each path argument, the likeliest to get far first (``{key}``: a seeded id).

``name@projects`` is the ``<name>`` that follows ``projects/`` in a rule."""
JOB_FOR = {
    "approve": "{held}",
    "reject": "{held2}",
    "plan": "{held}",
    "cancel": "{queued}",
    "approvals": "{held}",
}
"""The job a rule acts on best (the finished one otherwise)."""
ROLLOUT_FOR = {
    "approve": "{rollout_held}",
    "reject": "{rollout_held}",
    "resume": "{rollout_paused}",
}
"""The rollout a rule acts on best (the running one otherwise)."""

DEEP = b"[" * 50_000 + b"]" * 50_000
REFUSED_BODIES = [
    b"{",
    b"null",
    b"[]",
    b'["comment"]',
    b'"text"',
    b"42",
    b"true",
    b"\xff\xfe\x00",
    b'{"comment": ' + b"9" * 5000 + b"}",
    DEEP,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"comment": ' + b"[" * 33 + b"]" * 33 + b"}",
]
"""Bodies a JSON route refuses with 400: junk, not an object, nested too deep."""
ODD_BODIES = [
    b"",
    b" ",
    b'{"comment": "\\u0000"}',
    b'{"comment": "a", "comment": 1}',
    b'{"plan_hash": 1e999}',
]
TOO_LARGE = b'{"comment": "' + b"x" * MAX_CONTENT_LENGTH + b'"}'
"""One body over the size limit: 413 on every route, read or not."""
RAW_BODIES = [*REFUSED_BODIES, *ODD_BODIES, TOO_LARGE]
BIG_FORM = {"comment": "x" * MAX_CONTENT_LENGTH, "message": "y"}
NUL = "\x00"
"""Refused (400) in any path part, query, form field or JSON string: PostgreSQL cannot take it."""
LONG = "x" * 5000
KILLERS = [HUGE, NUL, LONG, "-" + HUGE, "'\"<script>{{"]
SLOW_KILLERS = KILLERS[:3]
JSON_KILLERS: list[Any] = [10**23, -(10**23), 1.5, None, True, [], {"a": 1}, NUL, LONG]
JSON_REAL: dict[str, Any] = {
    "purge": False,
    "environments": ["qa"],
    "tags": [],
    "heads": ["c3", "d4"],
}
BASELINE = {
    "api.approve:plan_hash": "{held_plan}",
    "approvals.approve:plan_hash": "{held_plan}",
    "webhooks.form:url": "http://127.0.0.1:9/hook",
    "api.status:state": "behind",  # a target's state, not a job's
    "rollouts.create:tags": "",
    "rollouts.create:revision": "c3",
}
"""Where the first REAL value is not the one that gets furthest for an endpoint."""
JSON = "application/json"
TOKEN = "<the admin's API token>"
"""Stands for the seeded admin's token in a request (other values are sent as they are)."""
PATH_KILLERS = [HUGE, str(MAX_ID + 1), "-1", "0", "x" * 300, NUL, "%", "'\"<script>"]
UNKNOWN_API = ["/api/v1/nope", "/api/v1/jobs/x", "/api/v1/jobs/1/nope", "/api/v2/status", "/api/"]
UNKNOWN_WEB = ["/nope", "/jobs/x", "/jobs/1/nope", "/projects/shop/revisions/"]


def texts(name: str, real: dict[str, list[str]] = REAL) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(real.get(name) or ["x"]),
        st.sampled_from(NASTY),
        st.sampled_from(NUMBERS),
        st.text(max_size=30),
        st.integers().map(str),
    )


def json_values(name: str, real: dict[str, list[str]] = REAL) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        texts(name, real),
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(st.text(max_size=5), scalars, max_size=3),
    )


def form_values(name: str, real: dict[str, list[str]] = REAL) -> st.SearchStrategy[Any]:
    return st.lists(texts(name, real), max_size=3) if name in MULTI else texts(name, real)


# --- cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    rule: str
    method: str
    endpoint: str
    arguments: tuple[str, ...] = ()
    converters: tuple[str, ...] = ()

    @property
    def api(self) -> bool:
        return token_path(self.rule)


def token_path(path: str) -> bool:
    """Paths that take the API token (``/metrics`` too), not the session cookie."""
    return path.startswith("/api/") or path == "/metrics"


SYNTHETIC = (
    Case("<unknown api url>", "ANY", "-unknown-api"),
    Case("<unknown web url>", "ANY", "-unknown-web"),
    Case("<wrong method>", "ANY", "-wrong-method"),
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def build_app(instance: Path, **config: Any) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(instance),
            "MIGDASH_SECRET_KEY": "fuzz-secret",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
            "WTF_CSRF_ENABLED": False,
            "MIGDASH_LOGIN_RATE_LIMIT": "100000 per minute",
            **config,
        }
    )


PLACEHOLDER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def placeholders(rule: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The path arguments of *rule* and their converters (``default`` when none is named)."""
    found = PLACEHOLDER.findall(rule)
    return tuple(name for _, name in found), tuple(conv or "default" for conv, _ in found)


def collect_cases() -> list[Case]:
    """Every (rule, method) of a freshly built app; building it connects to nothing."""
    with tempfile.TemporaryDirectory(prefix="migdash-fuzz-") as scratch:
        app = build_app(Path(scratch))
        cases = [
            Case(
                rule.rule,
                method,
                rule.endpoint,
                *placeholders(rule.rule),
            )
            for rule in app.url_map.iter_rules()
            if rule.endpoint != "static"
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        ]
        services_of(app).probes.close()
        services_of(app).db_engine.dispose()
    return sorted(cases, key=lambda c: (c.rule, c.method))


CASES = collect_cases()


def budget(case: Case) -> int:
    if case.endpoint.startswith("-"):
        return SYNTHETIC_BUDGET
    return SLOW_BUDGET if case.endpoint in SLOW else BUDGET


# --- the seeded world -------------------------------------------------------------------------

SHOP = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders", branch_labels=("orders",)),
    RevisionSpec("c3", "b2", "left branch", table="lefty"),
    RevisionSpec("d4", "b2", "right branch", table="righty"),
]


@dataclass
class Site:
    """A seeded app and its admin's session cookie and API token: what :func:`send` needs."""

    app: Flask
    ids: dict[str, Any]
    """Seeded ids and the held job's plan hash: ``{key}`` in REAL and PATH_VALUES."""
    cookie: str
    token: str

    @cached_property
    def real(self) -> dict[str, list[str]]:
        return {name: [v.format(**self.ids) for v in values] for name, values in REAL.items()}

    def close(self) -> None:
        services_of(self.app).probes.close()
        services_of(self.app).db_engine.dispose()


@dataclass
class World(Site):
    """The site on SQLite, restored before every example."""

    new_projects: Path
    snapshot: sqlite3.Connection
    watch: sqlite3.Connection
    """Its own connection to the metadata DB: ``PRAGMA data_version`` moves when others commit."""
    version: int = -1

    def committed(self) -> bool:
        """Whether anything was committed since the last :meth:`restore`."""
        return bool(self.watch.execute("PRAGMA data_version").fetchone()[0] != self.version)

    def unstorable(self) -> list[str]:
        """Columns holding what PostgreSQL refuses: a string over the column's length, or NUL.

        SQLite stores both without a word; checking here keeps the fuzz honest for
        a metadata DB on PostgreSQL.
        """
        found = []
        for table in Base.metadata.sorted_tables:
            checks = {}
            for column in table.columns:
                if isinstance(column.type, sa.String | sa.JSON):
                    name = f'"{column.name}"'
                    check = f"instr({name}, char(0)) > 0 OR instr({name}, '\\u0000') > 0"
                    length = getattr(column.type, "length", None)
                    checks[column.name] = check + (
                        f" OR length({name}) > {length}" if length else ""
                    )
            if checks:
                sums = ", ".join(f"coalesce(sum({check}), 0)" for check in checks.values())
                counts = self.watch.execute(f'SELECT {sums} FROM "{table.name}"').fetchone()  # noqa: S608
                found += [f"{table.name}.{c}" for c, n in zip(checks, counts, strict=True) if n]
        return found

    def restore(self) -> None:
        """Put the metadata DB back as seeded if a request committed anything since."""
        if self.committed():
            raw = services_of(self.app).db_engine.raw_connection()
            try:
                self.snapshot.backup(raw.driver_connection)  # SQLite's online backup
            finally:
                raw.close()
            self.version = self.watch.execute("PRAGMA data_version").fetchone()[0]
        if any(self.new_projects.iterdir()):
            shutil.rmtree(self.new_projects)
            self.new_projects.mkdir()


def _sqlite_at(project: Path, path: Path, revision: str) -> str:
    url = f"sqlite:///{path}"
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(project))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    db_engine.dispose()
    return url


def _seed(app: Flask, root: Path) -> dict[str, Any]:
    """A project with two heads, plain and protected targets, finished/held/queued jobs, users."""
    services = services_of(app)
    project = write_project(root / "scripts" / "shop", SHOP)
    with services.sessions() as session:
        registry.add_project(session, "shop", str(project))
        registry.add_environment(session, "dev")
        registry.add_environment(session, "prod", protected=True, required_approvals=2)
        registry.add_environment(session, "qa")
        registry.add_environment(session, "scratch")
        registry.add_environment(session, "vault", protected=True)
        for name, env, at in [
            ("shop-vault", "vault", "a1"),
            ("shop-dev", "dev", "a1"),
            ("shop-dev2", "dev", "a1"),
            ("shop-done", "dev", "a1"),
            ("shop-qa", "qa", "a1"),
            ("prod-1", "prod", "a1"),
            ("prod-2", "prod", "b2"),
        ]:
            url = _sqlite_at(project, root / f"{name}.db", at)
            registry.add_target(session, name, project="shop", environment=env, url=url)
        create_user(session, "admin", "admin-password", Role.ADMIN)
        create_user(session, "other-admin", "other-password", Role.ADMIN)
        create_user(session, "requester", "requester-password", Role.OPERATOR)
        create_user(session, "scratch", "scratch-password", Role.VIEWER)
        session.commit()

        def submit(target: str, revision: str = "c3") -> int:
            job = request_target_action(
                session,
                services.jobs,
                registry.get_target(session, target),
                "upgrade",
                revision,
                actor="requester",
                role=Role.OPERATOR,
                now=utcnow(),
            )
            session.commit()
            assert job is not None
            return job.id

        ids: dict[str, Any] = {"finished": submit("shop-done")}
        build_worker(services)
        while (task := services.queue.huey.dequeue()) is not None:
            services.queue.huey.execute(task)
        ids.update(held=submit("prod-1"), held2=submit("prod-2", "d4"), queued=submit("shop-dev2"))
        ids.update(_rollouts(session, services))
        _, scratch_token = create_token(session, get_user(session, "scratch"), "x", utcnow())
        ids["scratch_token"] = scratch_token.id
        save_webhook(
            session,
            WebhookFields("fuzz-hook", "http://127.0.0.1:9/x", "s" * 20, allow_private=True),
            actor="admin",
            role=Role.ADMIN,
            now=utcnow(),
        )
        session.commit()
        states = {key: session.get(Job, ids[key]).state for key in ("finished", "held", "queued")}
        ids["held_plan"] = session.get(Job, ids["held"]).plan_hash
        dev = registry.get_environment(session, "dev")
        ids["dev_numbers"] = (dev.position, dev.required_approvals)
    ids["shop_location"] = str(project)
    assert states == {
        "finished": JobState.SUCCEEDED,
        "held": JobState.AWAITING_APPROVAL,
        "queued": JobState.QUEUED,
    }
    return ids


def _rollouts(session: Any, services: Any) -> dict[str, int]:
    """A running and a paused rollout on qa, one awaiting approval on vault."""
    made = {}
    for key, env in [("rollout", "qa"), ("rollout_paused", "qa"), ("rollout_held", "vault")]:
        made[key] = create_rollout(
            session,
            services.jobs,
            registry.get_project(session, "shop"),
            "c3",
            environments=[env],
            actor="requester",
            role=Role.OPERATOR,
            now=utcnow(),
        ).id
    pause_rollout(
        session, made["rollout_paused"], actor="requester", role=Role.OPERATOR, now=utcnow()
    )
    session.commit()
    return made


def seeded_site(root: Path, **config: Any) -> Site:
    for folder in ("instance", "scripts", "new-projects"):
        (root / folder).mkdir()
    app = build_app(
        root / "instance",
        MIGDASH_PROJECTS_ROOT=str(root / "new-projects"),
        MIGDASH_SCRIPT_ROOTS=str(root / "scripts"),
        **config,
    )
    services = services_of(app)
    services.upgrade_schema()
    ids = _seed(app, root)
    with services.sessions() as session:
        token, row = create_token(session, get_user(session, "admin"), "fuzz", utcnow())
        ids["admin_token"] = row.id
        session.commit()
    client = app.test_client()
    response = client.post("/login", data={"username": "admin", "password": "admin-password"})
    assert response.status_code == 302
    cookie = client.get_cookie("session")
    assert cookie is not None
    return Site(app, ids, cookie.value, token)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("fuzz")
    site = seeded_site(root)
    snapshot = sqlite3.connect(":memory:", check_same_thread=False)
    raw = services_of(site.app).db_engine.raw_connection()
    try:
        raw.driver_connection.backup(snapshot)
    finally:
        raw.close()
    watch = sqlite3.connect(root / "instance" / "migdash.db", check_same_thread=False)
    new_projects = root / "new-projects"
    yield World(site.app, site.ids, site.cookie, site.token, new_projects, snapshot, watch)
    watch.close()
    snapshot.close()
    site.close()


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One request, printed (shortened) when an example fails."""

    method: str
    path: str
    query: dict[str, Any]
    form: dict[str, Any] | None = None
    body: bytes | None = None
    content_type: str | None = None
    htmx: bool = False
    authorization: str | None = None
    focus: str | None = None
    """The one field a sweep request made hostile (the others are real)."""
    expect: int | None = None
    """The status this request must get, when the sweep knows it."""

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if v not in (None, {}, False)}
        return ", ".join(f"{k}={shorten(v)}" for k, v in fields.items())

    def _repr_pretty_(self, printer: Any, _cycle: bool) -> None:
        """How Hypothesis prints a failing example: shortened too, not a 1 MiB body."""
        printer.text(f"Sent({self!r})")


def shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else f"{text[:150]}...<{len(text)} chars>...{text[-50:]}"


def fill(case: Case, values: dict[str, str]) -> str:
    """*case*'s rule with each path argument replaced by its (quoted) value."""
    path = case.rule
    for argument, converter in zip(case.arguments, case.converters, strict=True):
        placeholder = f"<{argument}>" if converter == "default" else f"<{converter}:{argument}>"
        path = path.replace(placeholder, quote(values[argument], safe=""), 1)
    return path


def path_values(case: Case, argument: str, site: Site) -> list[str]:
    """Real values for *argument* of *case*, the one that gets furthest first."""
    before = case.rule.split(f"/<{argument}>")[0].rsplit("/", 1)[-1]
    values = PATH_VALUES.get(f"{argument}@{before}", PATH_VALUES[argument])
    if argument == "job_id":
        first = next((job for word, job in JOB_FOR.items() if word in case.rule), "{finished}")
        values = [first, *(v for v in values if v != first)]
    if argument == "rollout_id":
        first = next((r for word, r in ROLLOUT_FOR.items() if word in case.rule), "{rollout}")
        values = [first, *(v for v in values if v != first)]
    return [value.format(**site.ids) for value in values]


def real_path(case: Case, site: Site) -> str:
    return fill(case, {a: path_values(case, a, site)[0] for a in case.arguments})


def path_part(case: Case, argument: str, site: Site) -> st.SearchStrategy[str]:
    real = st.sampled_from(path_values(case, argument, site))
    converter = case.converters[case.arguments.index(argument)]
    hostile = st.sampled_from(NUMBERS) if converter == "int" else texts(argument)
    return st.one_of(real, real, hostile, st.integers().map(str))


@st.composite
def api_body(
    draw: Any, names: tuple[str, ...], real: dict[str, list[str]]
) -> tuple[bytes, str | None]:
    shape = draw(st.sampled_from(["object", "object", "object", "any", "raw"]))
    if shape == "object":
        fields = draw(st.fixed_dictionaries({}, optional={n: json_values(n, real) for n in names}))
        body = json.dumps(fields).encode()
    elif shape == "any":
        body = json.dumps(draw(json_values("comment"))).encode()
    else:
        body = draw(st.sampled_from(RAW_BODIES))
    kinds = ["application/json", "application/json", "text/plain", None]
    return body, draw(st.sampled_from(kinds))


@st.composite
def synthetic_requests(draw: Any, case: Case, site: Site) -> Sent:
    """URLs no rule matches, and methods a rule does not allow."""
    method = draw(st.sampled_from(METHODS))
    if case.endpoint == "-unknown-api":
        path = "/api/v1/" + quote(draw(texts("name")), safe="/")
        return Sent(method, path, {}, authorization=TOKEN)
    if case.endpoint == "-unknown-web":
        path = "/" + quote(draw(texts("name")), safe="/")
        return Sent(method, path, {}, htmx=draw(st.booleans()))
    real = draw(st.sampled_from(CASES))
    allowed = {c.method for c in CASES if c.rule == real.rule}
    method = draw(st.sampled_from([m for m in METHODS if m not in allowed]))
    return Sent(method, real_path(real, site), {}, authorization=TOKEN)


@st.composite
def requests_for(draw: Any, case: Case, site: Site) -> Sent:
    """Random requests: every path argument and field drawn from real and hostile values."""
    if case.endpoint.startswith("-"):
        return draw(synthetic_requests(case, site))
    path = fill(case, {a: draw(path_part(case, a, site)) for a in case.arguments})
    names = INPUTS[case.endpoint]
    junk = st.dictionaries(st.sampled_from(["x", "id", "_", "\x00"]), texts("x"), max_size=1)
    fields = st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional={n: form_values(n, site.real) for n in names}),
        junk,
    )
    if case.api:
        auth = draw(st.sampled_from([TOKEN] * 8 + ["", "nonsense", "\x00\x01"]))
        if case.method == "GET":
            return Sent("GET", path, draw(fields), authorization=auth)
        body, content_type = draw(api_body(names, site.real))
        return Sent("POST", path, {}, body=body, content_type=content_type, authorization=auth)
    htmx = draw(st.booleans())
    if case.method == "GET":
        return Sent("GET", path, draw(fields), htmx=htmx)
    how = draw(st.sampled_from(["form", "form", "form", "query", "raw", "big"]))
    if how == "query":
        return Sent("POST", path, draw(fields), form={}, htmx=htmx)
    if how == "raw":
        body = draw(st.sampled_from([*REFUSED_BODIES, *ODD_BODIES]))
        kind = draw(st.sampled_from(["application/json", "multipart/form-data; boundary=zz"]))
        return Sent("POST", path, {}, body=body, content_type=kind, htmx=htmx)
    return Sent("POST", path, {}, form=BIG_FORM if how == "big" else draw(fields), htmx=htmx)


def sweep(case: Case, site: Site) -> list[Sent]:
    """Systematic requests: the real one, then each input meeting each killer value in turn.

    Random draws can miss one field's 23-digit number; this cannot.
    """
    if case.endpoint.startswith("-"):
        return synthetic_sweep(case, site)
    real = {a: path_values(case, a, site)[0] for a in case.arguments}
    path, names = fill(case, real), INPUTS[case.endpoint]
    as_json = case.api and case.method == "POST"
    base = baseline(case, site, as_json=as_json)

    def request(
        fields: dict[str, Any], focus: str | None = None, to: str = path, **more: Any
    ) -> Sent:
        if as_json:
            body = json.dumps(fields).encode()
            more.update(body=body, content_type=JSON, **auth(case))
            return Sent("POST", to, {}, focus=focus, **more)
        if case.method == "GET":
            return Sent("GET", to, fields, focus=focus, **auth(case), **more)
        return Sent("POST", to, {}, form=fields, focus=focus, **more)

    sent = [request(base)]
    for argument, converter in zip(case.arguments, case.converters, strict=True):
        for killer in PATH_KILLERS:
            nul = killer == NUL and converter != "int"  # an int converter does not match it: 404
            to = fill(case, {**real, argument: killer})
            sent.append(request(base, to=to, expect=400 if nul else None))
    killers = JSON_KILLERS if as_json else KILLERS if case.endpoint not in SLOW else SLOW_KILLERS
    multi = set() if as_json else MULTI
    for name in names:
        for killer in killers:
            value = [killer] if name in multi else killer
            sent.append(request({**base, name: value}, name, expect=400 if killer == NUL else None))
    if case.method == "POST":
        sent += body_sweep(case, path)
    return sent


def body_sweep(case: Case, path: str) -> list[Sent]:
    """Bodies with a known answer: 413 when too large; on pages 415 for any JSON; on JSON
    routes 400 for junk, non-objects and deep nesting."""
    expected: list[tuple[bytes, int | None]] = [(TOO_LARGE, 413)]
    if not case.api:
        expected += [(DEEP, 415), (b"{}", 415)]
    elif INPUTS[case.endpoint]:
        expected += [(body, 400) for body in REFUSED_BODIES]
        expected += [(body, None) for body in ODD_BODIES]
    sent = [
        Sent("POST", path, {}, body=body, content_type=JSON, expect=status, **auth(case))
        for body, status in expected
    ]
    if not case.api:
        sent.append(Sent("POST", path, {}, form=BIG_FORM, expect=413))
    return sent


def baseline(case: Case, site: Site, *, as_json: bool) -> dict[str, Any]:
    """Every input *case* reads, with the real value that gets furthest."""
    base: dict[str, Any] = {}
    for name in INPUTS[case.endpoint]:
        value = BASELINE.get(f"{case.endpoint}:{name}", site.real[name][0])
        base[name] = value.format(**site.ids) if isinstance(value, str) else value
        if name in MULTI and not as_json:
            base[name] = site.real[name]
        elif as_json and name in JSON_REAL:
            base[name] = JSON_REAL[name]
    return base


def auth(case: Case) -> dict[str, Any]:
    return {"authorization": TOKEN} if case.api else {}


def synthetic_sweep(case: Case, site: Site) -> list[Sent]:
    if case.endpoint == "-unknown-api":
        return [
            Sent(method, path, {}, authorization=TOKEN)
            for path in UNKNOWN_API
            for method in ("GET", "POST", "DELETE")
        ]
    if case.endpoint == "-unknown-web":
        return [Sent(m, p, {}) for p in UNKNOWN_WEB for m in ("GET", "POST")]
    wrong = []
    for rule in sorted({c.rule for c in CASES}):
        real = next(c for c in CASES if c.rule == rule)
        allowed = {c.method for c in CASES if c.rule == rule}
        method = "PUT" if "PUT" not in allowed else "PATCH"
        wrong.append(Sent(method, real_path(real, site), {}, authorization=TOKEN))
    return wrong


def send(site: Site, sent: Sent) -> TestResponse:
    client = site.app.test_client()
    headers = {"HX-Request": "true"} if sent.htmx else {}
    if token_path(sent.path):
        if sent.authorization is not None:
            token = site.token if sent.authorization == TOKEN else sent.authorization
            headers["Authorization"] = f"Bearer {token}"
    else:
        client.set_cookie("session", site.cookie)
    options: dict[str, Any] = {"query_string": sent.query, "headers": headers}
    if sent.body is not None:
        options.update(data=sent.body, content_type=sent.content_type)
    elif sent.form is not None:
        options["data"] = sent.form
    return client.open(sent.path, method=sent.method, **options)


# --- what every answer must be ----------------------------------------------------------------

INTERNAL = "Something went wrong on the server"
ALERT = re.compile(r'<(\w+)\b[^>]*\brole="alert"[^>]*>(.*?)</\1>', re.DOTALL)
TAG = re.compile(r"<[^>]+>")
LABEL = re.compile(r"<label>(.*?)</label>", re.DOTALL)
FIELD = re.compile(r'<(?:input|select|textarea)\b[^>]*\bname="([^"]+)"')
ERROR = re.compile(r'<span class="err">([^<]*)</span>')


def errors_beside_fields(html: str) -> dict[str, list[str]]:
    """Form field name -> the errors shown inside its ``<label>``."""
    found = {}
    for block in LABEL.findall(html):
        field, errors = FIELD.search(block), [e for e in ERROR.findall(block) if e.strip()]
        if field and errors:
            found[field.group(1)] = errors
    return found


def check_answer(sent: Sent, response: TestResponse) -> None:
    status = response.status_code
    body = response.get_data(as_text=True)
    assert status < 500, f"{status} for {sent!r}:\n{body[:2000]}"
    assert "Traceback (most recent call last)" not in body
    assert sent.expect in (None, status), f"{status}, not {sent.expect}, for {sent!r}"
    if status < 400:
        return
    if sent.path.startswith("/api/") or (sent.path == "/metrics" and response.is_json):
        assert response.mimetype == "application/json", (status, sent, body[:500])
        error = response.get_json()["error"]
        assert re.fullmatch(r"[a-z][a-z_]*", error["code"]), error
        assert isinstance(error["message"], str), error
        assert error["message"].strip(), error
        if "field" in error:
            assert isinstance(error["field"], str), error
            assert error["field"], error
        if sent.focus and error["code"] == "invalid_input":
            named = error.get("field") == sent.focus or names(sent, error["message"])
            assert named, f"400 does not name {sent.focus}: {error} for {sent!r}"
        return
    assert response.mimetype == "text/html", (status, sent, body[:500])
    alerts = [unescape(TAG.sub("", m.group(2))).strip() for m in ALERT.finditer(body)]
    beside = errors_beside_fields(body)
    assert any(alerts) or beside, f"{status} names no problem for {sent!r}:\n{body[:2000]}"
    assert INTERNAL not in body
    if sent.focus and status == 400:
        named = sent.focus in beside or names(sent, " ".join(alerts))
        assert named, f"400 does not name {sent.focus}: {alerts or beside}, {sent!r}"


def focused(sent: Sent) -> Any:
    """The value a sweep request put in the field it makes hostile."""
    assert sent.focus is not None
    fields = sent.form if sent.form is not None else sent.query
    value = fields.get(sent.focus) if fields else json.loads(sent.body or b"{}")[sent.focus]
    return value[0] if isinstance(value, list) and value else value


def names(sent: Sent, message: str) -> bool:
    """*message* names the swept field, or quotes (the start of) the value sent in it."""
    assert sent.focus is not None
    value = focused(sent)
    text = value.strip() if isinstance(value, str) else ""
    quoted = text and (text[:20] in message or repr(text)[1:21] in message)
    return sent.focus.replace("_", " ") in message.replace("_", " ").lower() or bool(quoted)


# --- the tests ------------------------------------------------------------------------------


def test_every_route_has_a_fuzz_strategy() -> None:
    endpoints = {case.endpoint for case in CASES}
    assert endpoints - INPUTS.keys() == set(), "say in INPUTS which fields each new route reads"
    assert INPUTS.keys() - endpoints == set(), "INPUTS names endpoints the app no longer has"
    arguments = {argument for case in CASES for argument in case.arguments}
    assert arguments - PATH_VALUES.keys() == set(), "give PATH_VALUES for each new path argument"


def test_the_random_part_alone_sends_at_least_1000_requests_per_run() -> None:
    assert sum(budget(case) for case in (*CASES, *SYNTHETIC)) >= 1000


@pytest.mark.parametrize("case", [*CASES, *SYNTHETIC], ids=lambda c: f"{c.method} {c.rule}")
def test_no_input_gets_a_5xx_and_every_4xx_names_the_problem(world: World, case: Case) -> None:
    statuses: list[int] = []
    if case.endpoint == "health.readyz":  # a worker is alive, so readiness gets past its checks
        beat(services_of(world.app).queue, "fuzz-worker", utcnow())

    @settings(
        max_examples=budget(case),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(requests_for(case, world))
    def fuzz(sent: Sent) -> None:
        note(repr(sent))
        world.restore()
        response = send(world, sent)
        statuses.append(response.status_code)
        check_answer(sent, response)
        if world.committed():
            assert world.unstorable() == [], f"PostgreSQL would refuse what {sent!r} stored"

    explicit = sweep(case, world)
    for sent in explicit:
        fuzz = example(sent)(fuzz)
    fuzz()
    assert len(statuses) >= budget(case) + len(explicit)
    if not case.endpoint.startswith("-"):  # the fuzz got past validation too, not only refused
        assert min(statuses) < 400, "every request was refused: fix BASELINE or the world"


ENVIRONMENT_NUMBERS = {"position": (0, 1_000_000), "required_approvals": (1, 20)}
"""The bounds documented for the environment form (the issue's OverflowError came from here)."""


def out_of_range(low: int, high: int) -> st.SearchStrategy[str]:
    numbers = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1))
    return st.one_of(numbers.map(str), st.sampled_from([HUGE, str(MAX_ID + 1), "1e3", "x", "1.5"]))


@pytest.mark.parametrize("path", ["/admin/environments/new", "/admin/environments/dev/edit"])
@pytest.mark.parametrize("field", sorted(ENVIRONMENT_NUMBERS))
def test_environment_numbers_out_of_range_are_refused_next_to_their_field(
    world: World, path: str, field: str
) -> None:
    low, high = ENVIRONMENT_NUMBERS[field]

    @settings(max_examples=15, deadline=None, derandomize=True, database=None)
    @given(out_of_range(low, high))
    def refuse(value: str) -> None:
        world.restore()
        form = {"name": "fresh", "position": "3", "required_approvals": "2", "protected": "y"}
        response = send(world, Sent("POST", path, {}, form={**form, field: value}))
        assert response.status_code in (200, 400, 422), response.status_code
        beside = errors_beside_fields(response.get_data(as_text=True))
        assert field in beside, f"no error beside {field} for {value!r}: {beside}"
        with services_of(world.app).sessions() as session:
            rows = {e.name: (e.position, e.required_approvals) for e in all_environments(session)}
        assert "fresh" not in rows
        assert rows["dev"] == world.ids["dev_numbers"]

    refuse()


@pytest.mark.server
def test_on_postgresql_nul_and_overlong_text_are_refused_not_crashed(
    tmp_path: Path, postgres_url: str
) -> None:
    """PostgreSQL, unlike SQLite, fails on NUL in any query and on text over a column's length.

    The fuzz above runs on SQLite and emulates both rules (NUL answers 400;
    nothing stored exceeds its column); this sends the same requests to a
    metadata DB on PostgreSQL, where breaking either rule would be a 500.
    """
    site = seeded_site(tmp_path, MIGDASH_DATABASE_URL=postgres_url)
    try:
        sent = [
            request
            for case in CASES
            for request in sweep(case, site)
            if request.expect == 400 or (request.focus and focused(request) == LONG)
        ]
        assert len(sent) > 200
        for request in sent:
            check_answer(request, send(site, request))
    finally:
        site.close()
