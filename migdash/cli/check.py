"""``migdash check``: a CI gate over the fleet, locally on the registry or against a server.

Exit status, as ``migdash drift`` (so a pipeline can tell "blocked" from
"broken"): ``0`` no ``--fail-on`` condition holds; ``1`` at least one does
(each is listed); ``2`` the gate could not judge: a wrong command line, an
unknown project or environment, a server that cannot be reached or refuses
the token, a project that cannot be loaded.  With ``--server`` the command
reads ``GET /api/v1/check`` and judges the answer with the same code as
locally, so both ways give the same verdict.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import click
from flask.cli import ScriptInfo
from sqlalchemy.exc import SQLAlchemyError

from migdash.cli.base import emit, json_option, main, store
from migdash.errors import MigdashError
from migdash.jobs.ci_check import gather_check_facts
from migdash.store.models import utcnow

CONDITIONS = ("pending", "unknown", "drift", "multiple-heads", "unreachable")
EXIT_PASS, EXIT_FAIL, EXIT_TROUBLE = 0, 1, 2
DRIFTED = frozenset({"drift", "stamped_not_applied"})
SERVER_TIMEOUT = 120.0
"""Seconds to wait for the server, which probes every selected target before answering."""


class CheckTrouble(click.ClickException):
    """The gate could not judge: status 2, never read as "a condition holds"."""

    exit_code = EXIT_TROUBLE


@dataclass(frozen=True)
class Failure:
    """One condition holding for one target (or project)."""

    condition: str
    project: str
    environment: str | None
    target: str | None
    message: str

    @property
    def subject(self) -> str:
        return "/".join(p for p in (self.project, self.environment, self.target) if p)


def parse_fail_on(_ctx: click.Context, _param: click.Parameter, value: Sequence[str]) -> list[str]:
    """``--fail-on drift --fail-on pending`` or ``--fail-on drift,pending``; default: all."""
    chosen = [item.strip() for raw in value for item in raw.split(",") if item.strip()]
    unknown = [c for c in chosen if c not in CONDITIONS]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(map(repr, unknown))}: choose from {', '.join(CONDITIONS)}"
        )
    return list(dict.fromkeys(chosen)) or list(CONDITIONS)


@main.command("check")
@click.option("--project", default=None, help="Only this project's targets (and heads).")
@click.option("--env", "environment", default=None, help="Only targets in this environment.")
@click.option(
    "--fail-on",
    multiple=True,
    callback=parse_fail_on,
    metavar="|".join(CONDITIONS),
    help="Fail (exit 1) when this holds; repeat or separate with commas. Default: all.",
)
@click.option("--server", default=None, envvar="MIGDASH_SERVER", help="A migdash URL to ask.")
@click.option(
    "--token", default=None, envvar="MIGDASH_TOKEN", help="API token for --server (a viewer's)."
)
@json_option
def check(
    project: str | None,
    environment: str | None,
    fail_on: list[str],
    server: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Probe targets and fail when a --fail-on condition holds: for CI pipelines.

    Conditions: pending (revisions not applied), unknown (a revision the
    project does not have), drift (the latest drift check found differences),
    multiple-heads (a project has more than one head), unreachable. Exits 0
    on pass, 1 when a condition holds, 2 when the check itself failed.
    """
    given = click.get_current_context().get_parameter_source("token")
    if token and not server and given != click.core.ParameterSource.ENVIRONMENT:
        raise click.UsageError("--token is only for --server")
    if server and not token:
        raise click.UsageError("--server needs --token (or MIGDASH_TOKEN): a viewer's API token")
    if server:
        facts = fetch_facts(server, str(token), project, environment)
    else:
        facts = local_facts(project, environment)
    failures, problems = evaluate(facts, fail_on)
    report = {
        "passed": not failures and not problems,
        "fail_on": fail_on,
        "failures": [asdict(f) for f in failures],
        "problems": problems,
        "facts": facts,
    }
    emit(report, as_json, summary(facts, fail_on, failures, problems))
    click.get_current_context().exit(
        EXIT_TROUBLE if problems else EXIT_FAIL if failures else EXIT_PASS
    )


def local_facts(project: str | None, environment: str | None) -> dict[str, Any]:
    """Probe the registry's targets now and gather the facts (snapshots are kept)."""
    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    try:
        with app.app_context(), store() as (session, services):
            facts = gather_check_facts(
                session,
                services.jobs,
                project=project,
                environment=environment,
                probe=True,
                now=utcnow(),
            )
            session.commit()
            return facts
    except MigdashError as exc:
        hint = f"\n  hint: {exc.hint}" if exc.hint else ""
        raise CheckTrouble(f"{exc.message}{hint}") from exc
    except SQLAlchemyError as exc:
        raise CheckTrouble(f"the metadata database cannot be used: {type(exc).__name__}") from exc


def fetch_facts(
    server: str, token: str, project: str | None, environment: str | None
) -> dict[str, Any]:
    """``GET /api/v1/check?probe=1`` on *server*; any refusal or failure is trouble (2)."""
    if urllib.parse.urlsplit(server).scheme not in ("http", "https"):
        raise click.UsageError(f"--server must be an http(s) URL, not {server!r}")
    query = {"probe": "1", "project": project, "env": environment}
    url = f"{server.rstrip('/')}/api/v1/check?" + urllib.parse.urlencode(
        {k: v for k, v in query.items() if v}
    )
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=SERVER_TIMEOUT) as response:  # noqa: S310
            data = json.load(response)
    except urllib.error.HTTPError as exc:
        raise CheckTrouble(f"{server} refused the check: {_api_error(exc)}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CheckTrouble(f"{server} cannot be asked: {reason}") from exc
    if not isinstance(data, dict) or "targets" not in data:
        raise CheckTrouble(f"{server} did not answer as a migdash server does")
    return data


def _api_error(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read())["error"]
        hint = f" (hint: {error['hint']})" if error.get("hint") else ""
        return f"HTTP {exc.code} {error['code']}: {error['message']}{hint}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.code}"


def evaluate(facts: Mapping[str, Any], fail_on: Iterable[str]) -> tuple[list[Failure], list[str]]:
    """The conditions of *fail_on* that hold, and what could not be judged."""
    wanted = set(fail_on)
    failures: list[Failure] = []
    problems = [
        f"project {p['project']} cannot be loaded: {p['error']}"
        for p in facts["projects"]
        if p.get("error")
    ]
    if "multiple-heads" in wanted:
        for p in facts["projects"]:
            heads = p.get("heads") or []
            if len(heads) > 1:
                message = f"{len(heads)} heads: {', '.join(heads)}; merge them"
                failures.append(Failure("multiple-heads", p["project"], None, None, message))
    for t in facts["targets"]:
        failures += [
            Failure(condition, t["project"], t["environment"], t["target"], message)
            for condition, message in _target_conditions(t)
            if condition in wanted
        ]
    return failures, problems


def _target_conditions(target: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    state, pending = target["state"], target.get("pending") or []
    if pending and state in ("behind", "uninitialised"):
        yield "pending", f"{len(pending)} pending revision(s): {', '.join(pending)}"
    if state == "unknown_revision":
        current = ", ".join(target.get("current") or [])
        yield "unknown", f"at {current}, which the project does not have"
    if state == "unreachable":
        yield "unreachable", target.get("error") or "the database did not answer"
    for kind, check in (target.get("drift") or {}).items():
        if check and check.get("outcome") in DRIFTED:
            yield "drift", f"{kind}: {check['outcome']}: {check.get('summary', '')}".rstrip(": ")


def summary(
    facts: Mapping[str, Any], fail_on: Sequence[str], failures: list[Failure], problems: list[str]
) -> str:
    """What a person reads in the pipeline's log: each failure, then the verdict."""
    lines = [f"FAIL  {f.condition:<15} {f.subject}: {f.message}" for f in failures]
    lines += [f"ERROR {'':<15} {problem}" for problem in problems]
    scope = f"{len(facts['targets'])} target(s) of {len(facts['projects'])} project(s)"
    if problems:
        lines.append(f"migdash check: could not judge everything ({scope})")
    elif failures:
        held = ", ".join(dict.fromkeys(f.condition for f in failures))
        lines.append(f"migdash check: failed: {held} ({scope})")
    else:
        lines.append(f"migdash check: passed: none of {', '.join(fail_on)} ({scope})")
    return "\n".join(lines)
