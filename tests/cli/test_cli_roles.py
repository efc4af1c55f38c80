"""The CLI applies roles everywhere: every mutating command acts as ``--as`` / ``MIGDASH_CLI_USER``.

The commands are discovered from the click group tree, so a command added
later is either listed below as a read or an exemption (with the reason), or
given a case in ``CASES``; otherwise :func:`test_every_command_is_classified`
fails and names it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from migdash.cli import main
from migdash.jobs.rollout_control import pause_rollout
from migdash.jobs.rollouts import create_rollout
from migdash.jobs.webhooks import WebhookFields, save_webhook
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import AuditEvent, Role, utcnow
from migdash.store.tokens import create_token
from migdash.store.users import create_user, get_user

PASSWORD = "correct-horse"  # noqa: S105 - test users only

READ_ONLY = {
    # status and current record the snapshot they probe, as a page view does; no role beyond
    # viewer is needed for any of these.
    ("status",),
    ("current",),
    ("heads",),
    ("history",),
    ("show",),
    ("graph",),
    ("compare",),
    ("jobs",),
    ("job",),
    ("project", "list"),
    ("env", "list"),
    ("target", "list"),
    ("user", "list"),
    ("token", "list"),
    # schema reads: they read targets and keep what they saw, as a probe does
    ("diff",),
    ("snapshot",),
    ("timeline",),
    # the CI gate: probes and records snapshots as status does; reads the latest drift checks
    ("check",),
    ("rollout", "list"),
    ("rollout", "show"),
}
ADMIN_READS = {
    ("webhook", "list"): [],
    ("webhook", "deliveries"): ["hook-gone"],
}
"""Reads of admin-only configuration: a viewer is refused, an admin reads, nothing changes."""
CHECKS = {
    ("drift",): ["t-up"],
    ("drift-history",): ["t-up"],
    ("reference",): ["t-up"],
}
"""Checks that run project code against a target (operator role), keep a result, audit nothing."""
EXEMPT = {
    ("db", "upgrade"): "runs before any user exists; it changes the schema, not the data",
    ("worker",): "runs jobs authorised when requested; the gate is re-checked before each runs",
    ("serve",): "a server process: the web app authorises every request itself",
    ("demo",): "bootstrap of a throwaway demo instance, which creates its own users",
}

CASES: dict[tuple[str, ...], list[str]] = {
    ("db", "rotate-key"): [],
    ("project", "add"): ["newp", "--script-location", "{linear}"],
    ("project", "edit"): ["edited", "--track", "b2"],
    ("project", "remove"): ["spare", "--yes"],
    ("project", "init"): ["fresh"],
    ("env", "add"): ["qa"],
    ("env", "edit"): ["dev", "--position", "7"],
    ("env", "remove"): ["empty", "--yes"],
    ("target", "add"): ["t-new", "--project", "linear", "--env", "dev", "--url", "{at_a1}"],
    ("target", "edit"): ["t-edit", "--tag", "eu"],
    ("target", "remove"): ["t-gone", "--yes"],
    ("user", "create"): ["newbie", "--password", "long-enough"],
    ("user", "set-role"): ["ted", "operator"],
    ("user", "set-password"): ["ted", "--password", "another-pass"],
    ("user", "disable"): ["dan"],
    ("token", "create"): ["laptop", "--user", "olga"],
    ("token", "revoke"): ["{token}"],
    ("upgrade",): ["t-up", "heads"],
    ("downgrade",): ["t-down", "-1"],
    ("stamp",): ["t-stamp", "b2"],
    ("merge",): ["two_heads", "-m", "join the heads"],
    ("revision",): ["linear", "-m", "next step"],
    ("cancel",): ["{cancel}"],
    ("approve",): ["{approve}"],
    ("reject",): ["{reject}"],
    ("promote",): ["promo", "stage", "live"],
    ("webhook", "add"): [
        *("hook-new", "--url", "http://127.0.0.1:9/hook", "--secret", "s" * 20),
        "--allow-private",
    ],
    ("webhook", "remove"): ["hook-gone"],
    ("rollout", "create"): ["linear", "heads", "--env", "fleet"],
    ("rollout", "pause"): ["{rollout_pause}"],
    ("rollout", "resume"): ["{rollout_resume}"],
    ("rollout", "cancel"): ["{rollout_cancel}"],
    ("rollout", "approve"): ["{rollout_approve}"],
    ("rollout", "reject"): ["{rollout_reject}"],
}


def command_tree(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from command_tree(command, (*prefix, name))
        else:
            yield (*prefix, name)


def find_command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


MUTATING = sorted(
    set(command_tree(main)) - READ_ONLY - set(EXEMPT) - set(CHECKS) - set(ADMIN_READS)
)


@dataclass
class Workspace:
    """A registry with something for every mutating command to act on."""

    runner: FlaskCliRunner
    values: dict[str, str]
    projects_root: Path

    def args(self, path: tuple[str, ...]) -> list[str]:
        return [*path, *(a.format(**self.values) for a in CASES[path])]

    def invoke(self, args: list[str], env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(main, args, env=env)


def snapshot(app: Flask) -> dict[str, Any]:
    """Every row of every table of the metadata DB, and what waits in the job queue."""
    services = services_of(app)
    tables = sa.MetaData()
    tables.reflect(bind=services.db_engine)
    with services.db_engine.connect() as connection:
        rows: dict[str, Any] = {
            name: sorted(repr(tuple(row)) for row in connection.execute(sa.select(table)))
            for name, table in tables.tables.items()
        }
    rows["<queue>"] = services.queue.pending_count()
    return rows


def audit_since(app: Flask, after: int) -> list[AuditEvent]:
    with services_of(app).sessions() as session:
        query = sa.select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id)
        return list(session.scalars(query))


def last_audit_id(app: Flask) -> int:
    with services_of(app).sessions() as session:
        return session.scalar(sa.select(sa.func.max(AuditEvent.id))) or 0


@pytest.fixture
def workspace(
    app: Flask,
    runner: FlaskCliRunner,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
) -> Workspace:
    linear = make_project("linear")
    at_a1, at_head = make_target(linear, at="a1"), make_target(linear, at="heads")
    services = services_of(app)
    with services.sessions() as session:
        for username, role in [
            ("vera", Role.VIEWER),
            ("ada", Role.ADMIN),
            ("olga", Role.OPERATOR),
            ("ted", Role.VIEWER),
            ("dan", Role.VIEWER),
        ]:
            create_user(session, username, PASSWORD, role)
        registry.add_project(session, "linear", str(linear.location))
        for shape, name in [
            ("two_heads", "two_heads"),
            ("linear", "spare"),
            ("linear", "edited"),
            ("linear", "promo"),
        ]:
            registry.add_project(session, name, str(make_project(shape, name=name).location))
        registry.add_environment(session, "dev")
        registry.add_environment(session, "prod", protected=True)
        registry.add_environment(session, "empty")
        registry.add_environment(session, "stage")
        registry.add_environment(session, "live")
        registry.add_environment(session, "fleet")
        registry.add_environment(session, "vault", protected=True)
        for name, environment, url in [
            ("t-up", "dev", at_a1),
            ("t-down", "dev", at_head),
            ("t-stamp", "dev", at_a1),
            ("t-edit", "dev", at_a1),
            ("t-gone", "dev", at_a1),
            ("t-cancel", "dev", at_a1),
            ("p-approve", "prod", at_a1),
            ("p-reject", "prod", at_a1),
            ("r-fleet", "fleet", at_a1),
            ("r-vault", "vault", at_a1),
        ]:
            registry.add_target(session, name, project="linear", environment=environment, url=url)
        promo = {
            "s-src": ("stage", make_target(linear)),
            "s-dst": ("live", make_target(linear, at="a1")),
        }
        for name, (environment, url) in promo.items():
            registry.add_target(session, name, project="promo", environment=environment, url=url)
        _, token = create_token(session, get_user(session, "olga"), "ci", utcnow())
        save_webhook(
            session,
            WebhookFields("hook-gone", "http://127.0.0.1:9/x", "s" * 20, allow_private=True),
            actor="cli",
            role=Role.ADMIN,
            now=utcnow(),
        )
        session.commit()
        values = {"linear": str(linear.location), "at_a1": at_a1, "token": str(token.id)}

    def request(target: str) -> str:
        """A job olga (an operator) asks for: queued on dev, awaiting approval on prod."""
        result = runner.invoke(main, ["upgrade", target, "heads", "--as", "olga", "--json"])
        assert result.exit_code == 0, (result.output, result.exception)
        return str(json.loads(result.stdout)["id"])

    values.update(cancel=request("t-cancel"), approve=request("p-approve"))
    values["reject"] = request("p-reject")
    values.update(rollouts(app))
    return Workspace(runner, values, Path(services.settings["MIGDASH_PROJECTS_ROOT"]))


def rollouts(app: Flask) -> dict[str, str]:
    """Rollouts by olga to pause, resume (paused) and cancel on fleet; to decide on vault."""
    services = services_of(app)
    made = {}
    with services.sessions() as session:
        project = registry.get_project(session, "linear")
        for name, env in [
            ("pause", "fleet"),
            ("resume", "fleet"),
            ("cancel", "fleet"),
            ("approve", "vault"),
            ("reject", "vault"),
        ]:
            found = create_rollout(
                session,
                services.jobs,
                project,
                "heads",
                environments=[env],
                actor="olga",
                role=Role.OPERATOR,
                now=utcnow(),
            )
            made[f"rollout_{name}"] = str(found.id)
        session.flush()
        pause_rollout(
            session, int(made["rollout_resume"]), actor="olga", role=Role.OPERATOR, now=utcnow()
        )
        session.commit()
    return made


def test_every_command_is_classified() -> None:
    """A new command must be listed as a read, an exemption, or get a case below."""
    commands = set(command_tree(main))
    assert not (READ_ONLY | set(EXEMPT) | set(ADMIN_READS)) - commands, "stale names in the lists"
    assert set(MUTATING) == set(CASES), (
        f"mutating commands without a case: {sorted(set(MUTATING) - set(CASES))}; "
        f"cases for no mutating command: {sorted(set(CASES) - set(MUTATING))}"
    )


def test_admin_reads_refuse_a_viewer_serve_an_admin_and_change_nothing(
    app: Flask, workspace: Workspace
) -> None:
    before = snapshot(app)
    for path, args in ADMIN_READS.items():
        refused = workspace.invoke([*path, *args, "--as", "vera"])
        assert refused.exit_code == 1, path
        assert "vera (viewer) may not admin" in refused.output
        served = workspace.invoke([*path, *args, "--json", "--as", "ada"])
        assert served.exit_code == 0, (path, served.output)
        assert isinstance(json.loads(served.stdout), list)
    assert snapshot(app) == before


@pytest.mark.parametrize("path", MUTATING, ids=" ".join)
def test_every_mutating_command_takes_as(path: tuple[str, ...]) -> None:
    (option,) = [p for p in find_command(path).params if "--as" in p.opts]
    assert option.envvar == "MIGDASH_CLI_USER"


def test_a_viewer_is_refused_every_mutating_command_and_nothing_changes(
    app: Flask, workspace: Workspace
) -> None:
    before = snapshot(app)
    assert len(before["job"]) == 3, "the workspace holds jobs to cancel, approve and reject"
    problems = []
    for path in MUTATING:
        result = workspace.invoke(workspace.args(path), env={"MIGDASH_CLI_USER": "vera"})
        if result.exit_code == 0 or "vera (viewer) may not" not in result.output:
            problems.append((path, result.exit_code, result.output))
        elif snapshot(app) != before:
            problems.append((path, "changed the metadata DB", result.output))
    assert problems == []
    assert not workspace.projects_root.exists(), "project init wrote no folder"


def test_an_admin_runs_every_mutating_command_and_the_audit_names_them(
    app: Flask, workspace: Workspace
) -> None:
    problems = []
    for path in MUTATING:
        before, after_id = snapshot(app), last_audit_id(app)
        result = workspace.invoke([*workspace.args(path), "--as", "ada"])
        actors = [(e.action, e.actor) for e in audit_since(app, after_id)]
        if result.exit_code != 0:
            problems.append((path, result.exit_code, result.output))
        elif not actors or {actor for _, actor in actors} != {"ada"}:
            problems.append((path, "audit rows", actors))
        elif snapshot(app) == before:
            problems.append((path, "changed nothing", result.output))
    assert problems == []


@pytest.mark.parametrize("role", list(Role))
def test_registry_changes_need_the_admin_role(
    app: Flask, runner: FlaskCliRunner, role: Role
) -> None:
    with services_of(app).sessions() as session:
        create_user(session, "someone", PASSWORD, role)
        session.commit()
    before = snapshot(app)
    result = runner.invoke(main, ["env", "add", "qa", "--as", "someone"])
    if role is Role.ADMIN:
        assert result.exit_code == 0, result.output
        assert [(e.action, e.actor) for e in audit_since(app, 0)] == [
            ("registry.environment.add", "someone")
        ]
    else:
        assert result.exit_code == 1
        assert f"someone ({role.value}) may not admin: this needs the admin role" in result.output
        assert snapshot(app) == before


def test_without_as_the_trusted_cli_actor_acts(
    app: Flask, runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIGDASH_CLI_USER", raising=False)
    for args in (["env", "add", "qa"], ["project", "init", "fresh"], ["user", "create", "u1"]):
        result = runner.invoke(main, args, input="long-enough\nlong-enough\n")
        assert result.exit_code == 0, result.output
    assert [(e.action, e.actor) for e in audit_since(app, 0)] == [
        ("registry.environment.add", "cli"),
        ("registry.project.add", "cli"),
        ("user.create", "cli"),
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [("nobody", "no user named 'nobody'"), ("dan", "user 'dan' is disabled")],
)
def test_as_an_unknown_or_disabled_user_is_refused(
    app: Flask, runner: FlaskCliRunner, name: str, message: str
) -> None:
    with services_of(app).sessions() as session:
        create_user(session, "dan", PASSWORD, Role.ADMIN).active = False
        session.commit()
    before = snapshot(app)
    for args in (["env", "add", "qa", "--as", name], ["user", "set-role", "dan", "viewer"]):
        result = runner.invoke(main, args, env={"MIGDASH_CLI_USER": name})
        assert result.exit_code == 1
        assert message in result.output
    assert snapshot(app) == before


def test_a_viewer_is_refused_before_being_asked_for_a_password(
    app: Flask, runner: FlaskCliRunner
) -> None:
    with services_of(app).sessions() as session:
        create_user(session, "vera", PASSWORD, Role.VIEWER)
        session.commit()
    for args in (["user", "create", "eve"], ["user", "set-password", "vera"]):
        result = runner.invoke(main, [*args, "--as", "vera"], input="long-enough\nlong-enough\n")
        assert result.exit_code == 1
        assert "vera (viewer) may not admin" in result.output
        assert "Password" not in result.output


@pytest.mark.parametrize("path", sorted(CHECKS), ids=" ".join)
def test_a_viewer_is_refused_the_checks_that_run_project_code(
    app: Flask, workspace: Workspace, path: tuple[str, ...]
) -> None:
    before = snapshot(app)
    result = workspace.invoke([*path, *CHECKS[path]], env={"MIGDASH_CLI_USER": "vera"})
    assert result.exit_code != 0
    assert "vera (viewer) may not" in result.output
    assert snapshot(app) == before
    (option,) = [p for p in find_command(path).params if "--as" in p.opts]
    assert option.envvar == "MIGDASH_CLI_USER"


@pytest.mark.parametrize("kind", ["upgrade", "downgrade", "stamp"])
def test_the_offline_plan_needs_the_role_its_web_page_needs(
    app: Flask, workspace: Workspace, kind: str
) -> None:
    """``--sql`` shows the plan's SQL, as the web's plan page does for operators only."""
    revision = {"upgrade": "heads", "downgrade": "-1", "stamp": "b2"}[kind]
    before = snapshot(app)
    viewer = workspace.invoke([kind, "t-down", revision, "--sql"], env={"MIGDASH_CLI_USER": "vera"})
    operator = workspace.invoke([kind, "t-down", revision, "--sql", "--as", "olga"])

    assert viewer.exit_code == 1
    assert "vera (viewer) may not" in viewer.output
    assert operator.exit_code == 0, operator.output
    assert snapshot(app) == before
