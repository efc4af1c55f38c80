"""Property-based testing of ``/api/v1`` against its own served OpenAPI document (schemathesis).

A real HTTP server (werkzeug, in a thread, on a free port) serves an app over a
populated registry: a project with a branch and a merge, plain and protected
targets on real SQLite databases, finished, queued and held jobs, and an admin
with a token.  schemathesis loads ``/api/v1/openapi.json`` from that server and,
for every operation, sends requests generated from the document (valid ones
and, where the document allows, invalid ones), half of them with path
parameters that name real objects so the answers are not all 404s.  Every
answer must be below 500, have a status the document lists, and match the
schema the document gives for that status.

Derandomized with no example database, so CI sends the same requests each run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.serving import make_server

from migdash import create_app
from migdash.jobs.consumer import build_worker
from migdash.jobs.requests import request_target_action
from migdash.jobs.rollout_control import pause_rollout
from migdash.jobs.rollouts import create_rollout
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Role, utcnow
from migdash.store.tokens import create_token
from migdash.store.users import create_user, get_user
from tests.web.conftest import _upgrade

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES, SLOW_EXAMPLES = 25, 6
SLOW = frozenset(
    {
        "POST /api/v1/jobs",
        "GET /api/v1/jobs/{job_id}/plan",
        "GET /api/v1/compare/{name}/promote",
        "POST /api/v1/compare/{name}/promote",
        "POST /api/v1/rollouts",
    }
)
"""Operations that plan an action in a child process per request."""
MORE = {"POST /api/v1/compare/{name}/promote": 12, "POST /api/v1/rollouts": 12}
"""Slow operations whose real inputs are one strategy of several: a few more examples."""
REAL_INPUTS: dict[str, list[dict[str, Any]]] = {
    "GET /api/v1/compare/{name}": [
        {"query": {"a": "dev", "b": "prod"}},
        {"query": {"target_a": "shop-dev", "target_b": "shop-new"}},
    ],
    "GET /api/v1/schemas/diff": [{"query": {"left": "shop-dev", "right": "shop-new"}}],
    "POST /api/v1/jobs": [
        {"body": {"target": "shop-new", "action": "stamp", "revision": "a1"}},
        {"body": {"target": "shop-new", "action": "upgrade", "revision": "b2"}},
    ],
    "POST /api/v1/jobs/{job_id}/reject": [{"body": {"comment": "no"}}],
    "POST /api/v1/projects/{name}/merge": [{"body": {"message": "merge"}}],
    "POST /api/v1/projects/{name}/revision": [{"body": {"message": "more"}}],
    "GET /api/v1/compare/{name}/promote": [{"query": {"from": "stage", "to": "qa"}}],
    "POST /api/v1/compare/{name}/promote": [{"body": {"from": "stage", "to": "qa"}}],
    "POST /api/v1/rollouts": [
        {"body": {"project": "shop", "revision": "b2", "environments": ["fleet"], "tags": []}}
    ],
    "POST /api/v1/rollouts/{rollout_id}/approve": [{"body": {"comment": "ok"}}],
    "POST /api/v1/rollouts/{rollout_id}/reject": [{"body": {"comment": "no"}}],
}
"""Query or body values that get past validation to real objects (the rest is generated)."""
FORKED = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "left", table="lefty"),
    RevisionSpec("c3", "a1", "right", table="righty"),
]
"""Two heads, no target: something to merge."""
BRANCHY = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
    RevisionSpec("c3", "b2", "left branch", table="lefty"),
    RevisionSpec("d4", "b2", "right branch", table="righty"),
    RevisionSpec("e5", ("c3", "d4"), "merge left and right"),
]


@dataclass(frozen=True)
class Served:
    base_url: str
    token: str
    real: dict[str, list[Any]]
    """Real values for path parameters: ``name@projects``, ``job_id``, ..."""


def populate(app: Flask, root: Path) -> tuple[str, dict[str, list[Any]]]:
    services = services_of(app)
    services.upgrade_schema()
    shop = write_project(root / "shop", BRANCHY)
    with services.sessions() as session:
        registry.add_project(session, "shop", str(shop))
        registry.add_environment(session, "dev")
        registry.add_environment(session, "prod", protected=True)
        registry.add_project(session, "forked", str(write_project(root / "forked", FORKED)))
        for env in ("stage", "qa", "fleet"):
            registry.add_environment(session, env)
        registry.add_environment(session, "vault", protected=True)
        for name, env, at in [
            ("shop-dev", "dev", "c3"),
            ("shop-new", "dev", "a1"),
            ("shop-prod", "prod", "a1"),
            ("shop-prod2", "prod", "a1"),
            ("shop-stage", "stage", "b2"),  # promoted to qa
            ("shop-qa", "qa", "a1"),
            ("shop-f1", "fleet", "a1"),  # rolled out to
            ("shop-f2", "fleet", "a1"),
            ("shop-vault", "vault", "a1"),
        ]:
            url = f"sqlite:///{root / name}.db"
            _upgrade(shop, url, at)
            registry.add_target(session, name, project="shop", environment=env, url=url)
        create_user(session, "requester", "requester-password", Role.OPERATOR)
        create_user(session, "boss", "boss-password", Role.ADMIN)
        jobs = [
            request_target_action(
                session,
                services.jobs,
                registry.get_target(session, target),
                "upgrade",
                "heads",
                actor="requester",
                role=Role.OPERATOR,
                now=utcnow(),
            )
            for target in ("shop-new", "shop-prod", "shop-dev", "shop-prod2")
        ]
        session.commit()
        build_worker(services)
        huey = services.queue.huey
        huey.execute(huey.dequeue())  # the first one runs (and succeeds); the rest stay queued
        token, _ = create_token(session, get_user(session, "boss"), "schemathesis", utcnow())
        rollouts = seed_rollouts(session, services)
        session.commit()
    real = {
        "name@projects": ["shop"],
        "name@compare": ["shop"],
        "name@targets": ["shop-dev", "shop-prod", "shop-new"],
        "job_id": [job.id for job in jobs[:3] if job is not None],
        "job_id@reject": [jobs[3].id if jobs[3] is not None else 0],  # held, for reject alone
        "revision": ["a1", "e5", "heads", "c3"],
        "name@merge": ["forked"],
        **rollouts,
    }
    return token, real


def seed_rollouts(session: Any, services: Any) -> dict[str, list[int]]:
    """Rollouts by someone else for each control route: running, paused, held (protected)."""
    made = {}
    for key, env in [
        ("rollout_id", "fleet"),
        ("rollout_id@pause", "fleet"),
        ("rollout_id@resume", "fleet"),
        ("rollout_id@cancel", "fleet"),
        ("rollout_id@approve", "vault"),
        ("rollout_id@reject", "vault"),
    ]:
        made[key] = create_rollout(
            session,
            services.jobs,
            registry.get_project(session, "shop"),
            "b2",
            environments=[env],
            actor="requester",
            role=Role.OPERATOR,
            now=utcnow(),
        ).id
    pause_rollout(
        session, made["rollout_id@resume"], actor="requester", role=Role.OPERATOR, now=utcnow()
    )
    return {key: [rollout_id] for key, rollout_id in made.items()}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("schemathesis")
    (root / "instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(root / "instance"),
            "MIGDASH_SECRET_KEY": "schemathesis-secret",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
        }
    )
    token, real = populate(app, root)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_port}", token, real)
    finally:
        server.shutdown()
        thread.join(5)
        services_of(app).probes.close()
        services_of(app).db_engine.dispose()


def real_path_parameters(path: str, real: dict[str, list[Any]]) -> st.SearchStrategy[dict]:
    """Path parameters naming real objects (``job_id@reject``: the job id of the reject route,
    first; ``name@projects``: the name after ``projects/``)."""
    parts = path.strip("/").split("/")
    choices: dict[str, st.SearchStrategy[Any]] = {}
    for index, part in enumerate(parts):
        if part.startswith("{"):
            argument = part.strip("{}")
            keys = [f"{argument}@{parts[-1]}", f"{argument}@{parts[index - 1]}", argument]
            known = [real[k] for k in keys if k in real]
            if known:  # a parameter without real values is generated like the rest
                choices[argument] = st.sampled_from(known[0])
    return st.fixed_dictionaries(choices)


def operations(served: Served) -> list[Any]:
    schema = schemathesis.openapi.from_url(
        f"{served.base_url}/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {served.token}"},
    )
    return [result.ok() for result in schema.get_all_operations()]


def strategy_for(operation: Any, served: Served) -> st.SearchStrategy[Any]:
    """Generated requests, and generated requests around real path parameters and inputs."""
    label = f"{operation.method.upper()} {operation.path}"
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    for inputs in REAL_INPUTS.get(label, [{}] if "{" in operation.path else []):
        strategies.append(
            real_path_parameters(operation.path, served.real).flatmap(
                lambda fixed, inputs=inputs: operation.as_strategy(
                    GenerationMode.POSITIVE, path_parameters=fixed or None, **inputs
                )
            )
        )
    strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


def fuzz(operation: Any, served: Served, session: requests.Session) -> list[int]:
    """Send the operation's generated requests; return the statuses of the answers."""
    label = f"{operation.method.upper()} {operation.path}"
    headers = {"Authorization": f"Bearer {served.token}"}
    sent: list[int] = []

    @settings(
        max_examples=MORE.get(label, SLOW_EXAMPLES if label in SLOW else EXAMPLES),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy_for(operation, served))
    def check(case: Any) -> None:
        response = case.call_and_validate(
            base_url=served.base_url,
            session=session,
            headers=headers,
            checks=CHECKS,
            timeout=30,
        )
        sent.append(response.status_code)

    check()
    return sent


def test_every_operation_answers_as_its_document_says(served: Served) -> None:
    found = operations(served)
    document = requests.get(
        f"{served.base_url}/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {served.token}"},
        timeout=30,
    ).json()
    documented = {f"{m.upper()} {p}" for p, item in document["paths"].items() for m in item}
    # schemathesis leaves out the document's own URL; everything else is exercised
    assert {f"{op.method.upper()} {op.path}" for op in found} == documented - {
        "GET /api/v1/openapi.json"
    }
    session = requests.Session()
    sent = {f"{op.method.upper()} {op.path}": fuzz(op, served, session) for op in found}
    # the token got in (negative cases also drop or mangle it: those are 401, as documented)
    assert all(set(statuses) - {401} for statuses in sent.values()), sent
    succeeded = {label for label, statuses in sent.items() if min(statuses) < 300}
    # approving needs the plan_hash of a held job's fresh plan: nothing generated has it
    never = set(sent) - succeeded - {"POST /api/v1/jobs/{job_id}/approve"}
    assert never == set(), f"never past validation (add REAL_INPUTS for them): {never}"
