"""Every route × every role: who gets in, who is refused, and that refusals change nothing.

The table is built from ``app.url_map`` at collection time, so a new route
gets its rows automatically and fails until it has a concrete URL below (and,
for web views, a ``required_permission`` mark).  What each role may do is
written here independently of ``migdash.permissions`` (the documented policy),
so loosening a decorator or the role table makes this test fail.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from migdash import create_app
from migdash.jobs.consumer import build_worker
from migdash.jobs.requests import request_target_action
from migdash.jobs.rollout_control import pause_rollout
from migdash.jobs.rollouts import create_rollout
from migdash.jobs.webhooks import WebhookFields, save_webhook
from migdash.permissions import Permission
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Base, JobState, Role, utcnow
from migdash.store.tokens import create_token
from migdash.store.users import create_user, get_user

ROLES = ("anonymous", "viewer", "operator", "approver", "admin")
MINIMUM_ROLE = {
    Permission.VIEW: "viewer",
    Permission.REQUEST: "operator",
    Permission.APPROVE: "approver",
    Permission.AUDIT: "approver",
    Permission.ADMIN: "admin",
}
"""The policy as documented (DESIGN.md and the permission docstrings), not read from the code."""
RANK = ("viewer", "operator", "approver", "admin")
PUBLIC = frozenset({"auth.login"})
OPEN = frozenset({"health.healthz", "health.readyz"})
"""Answer anyone (load balancers): JSON about the process, never the world's data."""
TOKEN_TEXT = frozenset({"metrics.metrics"})
"""Token-authenticated like the API, answering Prometheus text rather than JSON when allowed."""
SKIPPED = frozenset({"static"})


def expected_allowed(role: str, permission: Permission) -> bool:
    return role != "anonymous" and RANK.index(role) >= RANK.index(MINIMUM_ROLE[permission])


# --- concrete URLs for every rule (fill-ins come from the seeded world) -----------------------

UPGRADE_HEADS = "action=upgrade&revision=heads"
PATHS: dict[str, str] = {
    "/": "/",
    "/overview/matrix": "/overview/matrix",
    "/overview/probe": "/overview/probe",
    "/login": "/login",
    "/logout": "/logout",
    "/projects/": "/projects/",
    "/projects/<name>": "/projects/shop",
    "/projects/<name>/graph.svg": "/projects/shop/graph.svg",
    "/projects/<name>/revisions/<revision>": "/projects/shop/revisions/b2",
    "/projects/<name>/history": "/projects/shop/history",
    "/projects/<name>/loading": "/projects/shop/loading",
    "/targets/<name>": "/targets/shop-dev",
    "/history/targets/<name>": "/history/targets/shop-dev",
    "/schemas/targets/<name>": "/schemas/targets/shop-dev",
    "/schemas/targets/<name>/snapshot": "/schemas/targets/shop-dev/snapshot",
    "/schemas/diff": "/schemas/diff?left=shop-dev&right=shop-done",
    "/targets/<name>/probe": "/targets/shop-dev/probe",
    "/targets/<name>/drift": "/targets/shop-dev/drift",
    "/targets/<name>/drift-history": "/targets/shop-dev/drift-history",
    "/admin/": "/admin/",
    "/admin/projects/new": "/admin/projects/new",
    "/admin/projects/init": "/admin/projects/init",
    "/admin/projects/<name>/edit": "/admin/projects/shop/edit",
    "/admin/environments/new": "/admin/environments/new",
    "/admin/environments/<name>/edit": "/admin/environments/dev/edit",
    "/admin/targets/new": "/admin/targets/new",
    "/admin/targets/<name>/edit": "/admin/targets/shop-dev/edit",
    "/admin/<kind>/<name>/delete": "/admin/environments/scratch/delete",
    "/jobs/": "/jobs/",
    "/jobs/<int:job_id>": "/jobs/{finished}",
    "/jobs/<int:job_id>/live": "/jobs/{finished}/live",
    "/jobs/<int:job_id>/cancel": "/jobs/{queued_web}/cancel",
    "/approvals/": "/approvals/",
    "/approvals/<int:job_id>": "/approvals/{held_web_approve}",
    "/approvals/<int:job_id>/approve": "/approvals/{held_web_approve}/approve",
    "/approvals/<int:job_id>/reject": "/approvals/{held_web_reject}/reject",
    "/audit/": "/audit/?actor=requester",
    "/audit/export.csv": "/audit/export.csv",
    "/audit/export.json": "/audit/export.json",
    "/actions/targets/<name>": "/actions/targets/shop-dev?action=upgrade&revision=heads",
    "/actions/targets/<name>/plan.sql": "/actions/targets/shop-dev/plan.sql?" + UPGRADE_HEADS,
    "/actions/environment": "/actions/environment?environment=dev&project=shop&" + UPGRADE_HEADS,
    "/actions/projects/<name>/merge": "/actions/projects/shop/merge",
    "/actions/projects/<name>/revision": "/actions/projects/shop/revision",
    "/compare/": "/compare/",
    "/compare/<name>": "/compare/shop?a=dev&b=prod",
    "/compare/<name>/promote": "/compare/shop/promote?from=prod&to=dev",
    "/api/v1/status": "/api/v1/status",
    "/api/v1/check": "/api/v1/check?project=shop&env=dev",
    "/healthz": "/healthz",
    "/readyz": "/readyz",
    "/metrics": "/metrics",
    "/api/v1/targets": "/api/v1/targets",
    "/api/v1/jobs": "/api/v1/jobs",
    "/api/v1/jobs/<int:job_id>": "/api/v1/jobs/{finished}",
    "/api/v1/jobs/<int:job_id>/log": "/api/v1/jobs/{finished}/log",
    "/api/v1/jobs/<int:job_id>/plan": "/api/v1/jobs/{held_api_approve}/plan",
    "/api/v1/jobs/<int:job_id>/cancel": "/api/v1/jobs/{queued_api}/cancel",
    "/api/v1/approvals": "/api/v1/approvals",
    "/api/v1/jobs/<int:job_id>/approve": "/api/v1/jobs/{held_api_approve}/approve",
    "/api/v1/jobs/<int:job_id>/reject": "/api/v1/jobs/{held_api_reject}/reject",
    "/api/v1/openapi.json": "/api/v1/openapi.json",
    "/api/v1/docs": "/api/v1/docs",
    "/api/v1/projects": "/api/v1/projects",
    "/api/v1/projects/<name>": "/api/v1/projects/shop",
    "/api/v1/projects/<name>/heads": "/api/v1/projects/shop/heads",
    "/api/v1/projects/<name>/history": "/api/v1/projects/shop/history?n=2&page=2",
    "/api/v1/projects/<name>/graph": "/api/v1/projects/shop/graph",
    "/api/v1/projects/<name>/revisions/<revision>": "/api/v1/projects/shop/revisions/b2",
    "/api/v1/targets/<name>": "/api/v1/targets/shop-dev",
    "/api/v1/audit": "/api/v1/audit?actor=requester&limit=5",
    "/api/v1/compare/<name>": "/api/v1/compare/shop?a=dev&b=prod",
    "/api/v1/schemas/diff": "/api/v1/schemas/diff?left=shop-dev&right=shop-done",
    "/api/v1/projects/<name>/merge": "/api/v1/projects/shop/merge",
    "/api/v1/projects/<name>/revision": "/api/v1/projects/shop/revision",
    "/api/v1/compare/<name>/promote": "/api/v1/compare/shop/promote?from=prod&to=dev",
    "/api/v1/rollouts": "/api/v1/rollouts",
    "/api/v1/rollouts/<int:rollout_id>": "/api/v1/rollouts/{rollout_running}",
    "/api/v1/rollouts/<int:rollout_id>/pause": "/api/v1/rollouts/{rollout_running}/pause",
    "/api/v1/rollouts/<int:rollout_id>/resume": "/api/v1/rollouts/{rollout_paused}/resume",
    "/api/v1/rollouts/<int:rollout_id>/cancel": "/api/v1/rollouts/{rollout_cancel}/cancel",
    "/api/v1/rollouts/<int:rollout_id>/approve": "/api/v1/rollouts/{rollout_held}/approve",
    "/api/v1/rollouts/<int:rollout_id>/reject": "/api/v1/rollouts/{rollout_held2}/reject",
    "/users/": "/users/",
    "/users/<username>": "/users/scratch",
    "/users/<username>/role": "/users/scratch/role",
    "/users/<username>/password": "/users/scratch/password",
    "/users/<username>/disable": "/users/scratch/disable",
    "/users/<username>/enable": "/users/scratch/enable",
    "/users/<username>/tokens": "/users/scratch/tokens",
    "/users/tokens/<int:token_id>/revoke": "/users/tokens/{scratch_token}/revoke",
    "/webhooks/": "/webhooks/",
    "/webhooks/new": "/webhooks/new",
    "/webhooks/<name>": "/webhooks/matrix-hook",
    "/webhooks/<name>/edit": "/webhooks/matrix-hook/edit",
    "/webhooks/<name>/test": "/webhooks/matrix-hook/test",
    "/webhooks/<name>/delete": "/webhooks/scratch-hook/delete",
    "/rollouts/": "/rollouts/",
    "/rollouts/<int:rollout_id>": "/rollouts/{rollout_running}",
    "/rollouts/<int:rollout_id>/pause": "/rollouts/{rollout_running}/pause",
    "/rollouts/<int:rollout_id>/resume": "/rollouts/{rollout_paused}/resume",
    "/rollouts/<int:rollout_id>/cancel": "/rollouts/{rollout_cancel}/cancel",
    "/rollouts/<int:rollout_id>/approve": "/rollouts/{rollout_held}/approve",
    "/rollouts/<int:rollout_id>/reject": "/rollouts/{rollout_held2}/reject",
}
"""One real URL per rule; ``{name}`` fields are ids of the seeded world.

User and token changes act on ``scratch``, whom no role of the matrix signs in as."""

POST_BODIES: dict[str, dict[str, str]] = {
    "auth.login": {"username": "admin", "password": "not-the-password"},
    "actions.revision": {"message": "from the authorisation matrix"},
    "actions.merge": {"message": "merge from the matrix"},
    "admin.delete": {},
    "rollouts.create": {"project": "shop", "revision": "heads", "environment": "scratch"},
}
API_BODIES: dict[str, Any] = {
    "api.create_job": {"target": "shop-dev", "action": "upgrade", "revision": "heads"},
    "api.approve": {"comment": "matrix"},
    "api.reject": {"comment": "matrix"},
    "api.merge": {"message": "merge from the matrix"},
    "api.new_revision": {"message": "from the matrix"},
    "api.promote": {"from": "prod", "to": "dev", "fingerprint": "0" * 64},
    "api.rollout_create": {"project": "shop", "revision": "heads", "environments": ["scratch"]},
    "api.rollout_approve": {"comment": "matrix"},
    "api.rollout_reject": {"comment": "matrix"},
}


@dataclass(frozen=True)
class Case:
    rule: str
    method: str
    endpoint: str

    @property
    def api(self) -> bool:
        return self.endpoint.startswith("api.") or self.endpoint in TOKEN_TEXT


def collect_cases() -> list[Case]:
    """Every (rule, method) of a freshly built app; building it connects to nothing."""
    with tempfile.TemporaryDirectory(prefix="migdash-authz-") as scratch:
        app = create_app(
            {"TESTING": True, "MIGDASH_INSTANCE": scratch, "MIGDASH_SECRET_KEY": "collect"}
        )
        cases = [
            Case(rule.rule, method, rule.endpoint)
            for rule in app.url_map.iter_rules()
            if rule.endpoint not in SKIPPED
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        ]
        services_of(app).probes.close()
        services_of(app).db_engine.dispose()
    return sorted(cases, key=lambda c: (c.rule, c.method))


CASES = collect_cases()


# --- the seeded world (built once per module: the matrix only needs to be fast) -------------


@dataclass
class World:
    app: Flask
    ids: dict[str, int]
    cookies: dict[str, str] = field(default_factory=dict)
    """Session cookie of each signed-in role; each test gets a fresh client holding it."""
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str) -> FlaskClient:
        client = self.app.test_client()
        if role in self.cookies:
            client.set_cookie("session", self.cookies[role])
        return client

    def fingerprint(self) -> list[Any]:
        """Every row of every metadata table (but token last-use times) plus the queue length."""
        services = services_of(self.app)
        rows: list[Any] = []
        with services.db_engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                columns = [c for c in table.columns if c.name != "last_used_at"]
                query = sa.select(*columns).order_by(*table.primary_key.columns)
                rows.append((table.name, [tuple(r) for r in connection.execute(query)]))
        rows.append(("queue", services.queue.pending_count()))
        return rows


LINEAR = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
    RevisionSpec("c3", "b2", "create items", table="items"),
]


def _sqlite_at(project: Path, path: Path, revision: str) -> str:
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{path}"
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(project))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    db_engine.dispose()
    return url


def _rollouts(session: Any, services: Any) -> dict[str, int]:
    """Rollouts by requester: running, paused and to cancel on fleet; two held on vault."""
    project = registry.get_project(session, "shop")
    ids = {}
    for key, env in [
        ("rollout_running", "fleet"),
        ("rollout_paused", "fleet"),
        ("rollout_cancel", "fleet"),
        ("rollout_held", "vault"),
        ("rollout_held2", "vault"),
    ]:
        made = create_rollout(
            session,
            services.jobs,
            project,
            "heads",
            environments=[env],
            actor="requester",
            role=Role.OPERATOR,
            now=utcnow(),
        )
        ids[key] = made.id
    pause_rollout(
        session, ids["rollout_paused"], actor="requester", role=Role.OPERATOR, now=utcnow()
    )
    session.commit()
    return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A project, unprotected and protected targets, held, queued and finished jobs, users."""
    root = tmp_path_factory.mktemp("authz")
    (root / "instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(root / "instance"),
            "MIGDASH_SECRET_KEY": "authz-secret",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
            "WTF_CSRF_ENABLED": False,
            "MIGDASH_LOGIN_RATE_LIMIT": "1000 per minute",
        }
    )
    services = services_of(app)
    services.upgrade_schema()
    project = write_project(root / "shop", LINEAR)
    ids: dict[str, int] = {}
    with services.sessions() as session:
        registry.add_project(session, "shop", str(project))
        registry.add_environment(session, "dev")
        registry.add_environment(session, "prod", protected=True)
        registry.add_environment(session, "scratch")
        registry.add_environment(session, "fleet")
        registry.add_environment(session, "vault", protected=True)
        for name, env in [
            ("fleet-1", "fleet"),
            ("vault-1", "vault"),
            ("shop-dev", "dev"),
            ("shop-dev2", "dev"),
            ("shop-done", "dev"),
            ("prod-1", "prod"),
            ("prod-2", "prod"),
            ("prod-3", "prod"),
            ("prod-4", "prod"),
        ]:
            url = _sqlite_at(project, root / f"{name}.db", "a1")
            registry.add_target(session, name, project="shop", environment=env, url=url)
        for role in RANK:
            create_user(session, role, f"{role}-password", Role(role))
        create_user(session, "requester", "requester-password", Role.OPERATOR)
        session.commit()

        def submit(target: str) -> int:
            job = request_target_action(
                session,
                services.jobs,
                registry.get_target(session, target),
                "upgrade",
                "heads",
                actor="requester",
                role=Role.OPERATOR,
                now=utcnow(),
            )
            session.commit()
            return job.id

        ids["finished"] = submit("shop-done")
        build_worker(services)
        huey = services.queue.huey
        while (task := huey.dequeue()) is not None:
            huey.execute(task)
        for key, target in [
            ("held_web_approve", "prod-1"),
            ("held_web_reject", "prod-2"),
            ("held_api_approve", "prod-3"),
            ("held_api_reject", "prod-4"),
            ("queued_web", "shop-dev"),
            ("queued_api", "shop-dev2"),
        ]:
            ids[key] = submit(target)
        tokens = {}
        for role in RANK:
            tokens[role], _ = create_token(session, get_user(session, role), "matrix", utcnow())
        ids.update(_rollouts(session, services))
        create_user(session, "scratch", "scratch-password", Role.VIEWER)
        _, scratch_token = create_token(session, get_user(session, "scratch"), "x", utcnow())
        ids["scratch_token"] = scratch_token.id
        for hook in ("matrix-hook", "scratch-hook"):
            save_webhook(
                session,
                WebhookFields(hook, "http://127.0.0.1:9/x", "s" * 20, allow_private=True),
                actor="admin",
                role=Role.ADMIN,
                now=utcnow(),
            )
        session.commit()
    world = World(app, ids, tokens=tokens)
    for role in RANK:
        client = app.test_client()
        response = client.post("/login", data={"username": role, "password": f"{role}-password"})
        assert response.status_code == 302
        cookie = client.get_cookie("session")
        assert cookie is not None
        world.cookies[role] = cookie.value
    yield world
    services.probes.close()
    services.db_engine.dispose()


def test_the_world_is_what_the_matrix_assumes(world: World) -> None:
    from migdash.store.models import Job

    with services_of(world.app).sessions() as session:
        states = {
            key: session.get(Job, job_id).state
            for key, job_id in world.ids.items()
            if key != "scratch_token" and not key.startswith("rollout_")
        }
    assert states["finished"] == JobState.SUCCEEDED.value
    assert {states[k] for k in states if k.startswith("held")} == {"awaiting_approval"}
    assert {states[k] for k in states if k.startswith("queued")} == {"queued"}


def test_every_rule_has_a_concrete_url() -> None:
    rules = {case.rule for case in CASES}
    assert rules - PATHS.keys() == set(), "add a real URL for each new rule to PATHS"
    assert PATHS.keys() - rules == set(), "PATHS names rules the app no longer has"


def test_every_web_view_declares_its_permission() -> None:
    with tempfile.TemporaryDirectory(prefix="migdash-authz-") as scratch:
        app = create_app(
            {"TESTING": True, "MIGDASH_INSTANCE": scratch, "MIGDASH_SECRET_KEY": "collect"}
        )
        unmarked = {
            endpoint
            for endpoint, view in app.view_functions.items()
            if endpoint not in SKIPPED | PUBLIC | OPEN
            and not isinstance(getattr(view, "required_permission", None), Permission)
        }
        services_of(app).probes.close()
    assert unmarked == set()


# Pinned policy for the sensitive areas: a decorator loosened by mistake fails here.
PINNED = {
    "admin.": Permission.ADMIN,
    "users.": Permission.ADMIN,
    "webhooks.": Permission.ADMIN,
    "audit.": Permission.AUDIT,
    "api.audit_events": Permission.AUDIT,
    "approvals.approve": Permission.APPROVE,
    "approvals.reject": Permission.APPROVE,
    "api.approve": Permission.APPROVE,
    "api.reject": Permission.APPROVE,
    "actions.": Permission.REQUEST,
    "compare.promot": Permission.REQUEST,
    "targets.check_drift": Permission.REQUEST,  # runs the project's env.py against the target
    "targets.check_history": Permission.REQUEST,  # runs the project's code on a scratch database
    "jobs.cancel": Permission.REQUEST,
    "api.cancel": Permission.REQUEST,
    "api.create_job": Permission.REQUEST,
    "rollouts.approve": Permission.APPROVE,
    "rollouts.reject": Permission.APPROVE,
    "rollouts.create": Permission.REQUEST,
    "rollouts.pause": Permission.REQUEST,
    "rollouts.resume": Permission.REQUEST,
    "rollouts.cancel": Permission.REQUEST,
    "api.merge": Permission.REQUEST,
    "api.new_revision": Permission.REQUEST,
    "api.promot": Permission.REQUEST,
    "api.rollout_create": Permission.REQUEST,
    "api.rollout_pause": Permission.REQUEST,
    "api.rollout_resume": Permission.REQUEST,
    "api.rollout_cancel": Permission.REQUEST,
    "api.rollout_approve": Permission.APPROVE,
    "api.rollout_reject": Permission.APPROVE,
}
VIEW_ONLY_POSTS = frozenset(
    {"overview.probe_now", "targets.probe", "schemas.snapshot", "auth.logout"}
)
"""POSTs any signed-in user may send: they change no registry, job or approval."""


def view_permission(app: Flask, endpoint: str) -> Permission | None:
    return getattr(app.view_functions[endpoint], "required_permission", None)


def test_sensitive_endpoints_keep_their_pinned_permission(world: World) -> None:
    for case in CASES:
        permission = view_permission(world.app, case.endpoint)
        for prefix, pinned in PINNED.items():
            if case.endpoint.startswith(prefix):
                assert permission == pinned, case
        if case.method == "POST" and case.endpoint not in PUBLIC | VIEW_ONLY_POSTS:
            assert permission not in (None, Permission.VIEW), f"{case} mutates with VIEW only"


# --- the matrix ---------------------------------------------------------------------------


def send(world: World, case: Case, role: str) -> TestResponse:
    path = PATHS[case.rule].format(**world.ids)
    client = world.client("anonymous" if case.api else role)
    if case.api:
        token = world.tokens.get(role)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.open(
            path, method=case.method, headers=headers, json=API_BODIES.get(case.endpoint, {})
        )
    return client.open(path, method=case.method, data=POST_BODIES.get(case.endpoint, {}))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.rule}")
def test_matrix(world: World, case: Case, role: str) -> None:
    if case.endpoint in OPEN:  # health: the same JSON for everyone, nothing about the world
        response = send(world, case, role)
        assert response.status_code in (200, 503)
        assert response.get_json()["status"] in ("ok", "ready", "not_ready")
        assert "shop" not in response.get_data(as_text=True)
        return
    if case.endpoint in PUBLIC:  # the sign-in page: open to all, and no way in without a password
        response = send(world, case, role)
        assert response.status_code == 200
        if case.method == "POST":
            assert "Wrong username or password." in response.get_data(as_text=True)
        return
    permission = view_permission(world.app, case.endpoint)
    assert isinstance(permission, Permission), f"{case.endpoint} has no required_permission"
    allowed = expected_allowed(role, permission)
    before = world.fingerprint() if case.method == "POST" and not allowed else None
    response = send(world, case, role)
    status = response.status_code
    location = response.headers.get("Location", "")

    if case.api:
        body = response.get_json(silent=True)
        if case.endpoint in TOKEN_TEXT and status == 200:
            assert response.mimetype == "text/plain"
            body = {}
        assert isinstance(body, (dict, list)), f"the API answered {response.mimetype}"
        if role == "anonymous":
            assert status == 401
            assert body["error"]["code"] == "unauthorized"
        elif not allowed:
            assert status == 403
            assert body["error"]["code"] == "forbidden"
            assert f"needs the {MINIMUM_ROLE[permission]} role" in body["error"]["message"]
        elif case.method == "GET":
            assert status == 200, body
        else:
            assert status < 500, body
            assert status not in (401, 403), body
            if status >= 400:
                assert body["error"]["code"] not in ("forbidden", "unauthorized", "four_eyes")
    elif role == "anonymous":
        assert status == 302
        assert location.startswith("/login?next="), location
        stub = response.get_data(as_text=True).replace(html.escape(location), "")
        assert "shop" not in stub, "an anonymous response had data"
        assert "requester" not in stub
    elif not allowed:
        assert status == 403, response.get_data(as_text=True)[:500]
        assert f"needs the {MINIMUM_ROLE[permission]} role" in response.get_data(as_text=True)
    elif case.method == "GET":
        assert status == 200, response.get_data(as_text=True)[:500]
    elif case.endpoint == "auth.logout":
        assert (status, location) == (302, "/login")
    else:
        assert status < 500, response.get_data(as_text=True)[:500]
        assert status not in (401, 403), response.get_data(as_text=True)[:500]
        assert not location.startswith("/login"), location

    if before is not None:
        assert world.fingerprint() == before, f"a refused {case.method} changed the database"
