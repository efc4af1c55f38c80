"""Pages say what is true: unknown is never shown as "nothing", every page reads one source.

Each test here names a way a person could be told one thing while another
happens: a dead database shown as "nothing pending", the overview and the
project page disagreeing, a protected environment's button that does not say
it only asks, stamp wording on an upgrade, a refused form that forgets what
was typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from migdash.engine.state import TargetState, TargetStatus
from migdash.jobs.requests import request_target_action
from migdash.services import services_of
from migdash.status import (
    POSITION_UNKNOWN,
    TargetReport,
    project_graph,
    refresh_status,
    split_by_applied,
)
from migdash.store import registry
from migdash.store.models import Environment, Job, JobState, Role, Snapshot, Target, utcnow
from migdash.store.queries import all_environments, find_targets
from tests.conftest import migrate_to
from tests.web.pagetext import section, target_states

HX = {"HX-Request": "true"}
SECRET = "pw-typed-9f3c"


@pytest.fixture
def admin(login: Callable[..., FlaskClient]) -> FlaskClient:
    return login(Role.ADMIN)


@pytest.fixture
def read(app: Flask) -> Iterator[Callable[[], Session]]:
    """Fresh sessions on the metadata DB, to see what a request really stored."""
    opened: list[Session] = []

    def open_session() -> Session:
        opened.append(services_of(app).sessions())
        return opened[-1]

    yield open_session
    for session in opened:
        session.close()


@pytest.fixture
def fleet(
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    tmp_path: Path,
) -> Any:
    """linear: t-head (c3), t-a1 (a1), t-empty (no version table), t-dead (unreachable),
    t-alien (a revision linear does not have)."""
    linear = make_project("linear")
    register_project(linear)
    register_target(linear, "t-head", env="dev", at="heads")
    register_target(linear, "t-a1", env="staging", at="a1")
    register_target(linear, "t-empty", env="staging", at=None)
    register_target(linear, "t-dead", env="prod", url=f"sqlite:///{tmp_path / 'no' / 'x.db'}")
    register_target(make_project("labels"), "t-alien", env="prod", at="x2", registered_as="linear")
    return linear


def cell(html: str, target: str) -> str:
    """One target's block in the overview matrix (up to the next target or the cell's end)."""
    found = re.search(rf'data-target="{target}".*?(?=<div class="target|</td>)', html, re.S)
    assert found, target
    return found.group()


def status_of(html: str) -> str:
    return section(html, '<section id="target-status"', "</section>")


def column(html: str, heading: str) -> str:
    """One list of the revision page's "Where it is applied" (Applied, Not applied, Unknown)."""
    return section(html, f"<h3>{heading} (", "</ul>")


# --- 1. the overview polls once per refresh period -------------------------------------------


def test_only_the_page_loads_the_matrix_on_load_the_fragment_only_polls(
    app: Flask, admin: FlaskClient, fleet: Any
) -> None:
    app.config["MIGDASH_REFRESH_SECONDS"] = 45
    page = admin.get("/").get_data(as_text=True)
    (trigger,) = re.findall(r'id="matrix"[^>]*hx-trigger="([^"]*)"', page)
    assert trigger == "load delay:200ms, every 45s"
    for fragment in (
        admin.get("/overview/matrix", headers=HX),
        admin.post("/overview/probe", headers=HX),
    ):
        assert fragment.status_code == 200
        (trigger,) = re.findall(
            r'id="matrix"[^>]*hx-trigger="([^"]*)"', fragment.get_data(as_text=True)
        )
        assert trigger == "every 45s"


def test_job_fragments_stop_polling_once_nothing_can_change(
    app: Flask,
    admin: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
) -> None:
    project = make_project("linear")
    register_project(project)
    register_target(project, "db1", at="a1")
    job_id = request_job(app, "db1")
    live = admin.get(f"/jobs/{job_id}/live", headers=HX)
    table = admin.get("/jobs/", headers=HX)
    assert (live.status_code, table.status_code) == (200, 200)
    assert 'hx-trigger="every 1s"' in live.get_data(as_text=True)
    assert 'hx-trigger="every 3s"' in table.get_data(as_text=True)
    assert admin.post(f"/jobs/{job_id}/cancel", headers=HX).status_code == 286
    live = admin.get(f"/jobs/{job_id}/live", headers=HX)
    table = admin.get("/jobs/", headers=HX)
    assert (live.status_code, table.status_code) == (286, 286)
    assert "hx-trigger" not in live.get_data(as_text=True)
    assert "hx-trigger" not in table.get_data(as_text=True)


# --- 2. unknown is shown as unknown -------------------------------------------------------


def test_never_probed_targets_are_unknown_not_empty(admin: FlaskClient, fleet: Any) -> None:
    overview = admin.get("/").get_data(as_text=True)
    assert set(target_states(overview).values()) == {"not_probed"}
    for name in ("t-head", "t-dead"):
        block = cell(overview, name)
        assert "current revision unknown" in block
        assert "pending unknown" in block
    revision = admin.get("/projects/linear/revisions/a1").get_data(as_text=True)
    assert "Applied (0)" in revision
    assert "Not applied (0)" in revision
    assert "Unknown (5)" in revision
    # a target's own page probes it on its first view, so it never guesses
    head = status_of(admin.get("/targets/t-head").get_data(as_text=True))
    assert 'data-state="up_to_date"' in head
    dead = status_of(admin.get("/targets/t-dead").get_data(as_text=True))
    assert 'data-state="unreachable"' in dead
    assert "nothing pending" not in dead
    assert "&lt;base&gt;" not in dead
    assert "unknown" in section(dead, "<dt>Current</dt>", "</dd>")
    assert 'id="pending-unknown"' in dead


def test_unreachable_target_is_unknown_on_every_page(
    admin: FlaskClient, fleet: Any, probe_all: Callable[[], Any]
) -> None:
    probe_all()
    overview = admin.get("/").get_data(as_text=True)
    assert target_states(overview)["t-dead"] == "unreachable"
    dead = cell(overview, "t-dead")
    assert "current revision unknown" in dead
    assert "pending unknown" in dead
    assert "pending unknown" not in cell(overview, "t-a1")
    assert "2 pending" in cell(overview, "t-a1")

    status = status_of(admin.get("/targets/t-dead").get_data(as_text=True))
    assert 'id="pending-unknown"' in status
    assert "nothing pending" not in status
    assert "Pending (0" not in status

    project = admin.get("/projects/linear").get_data(as_text=True)
    targets = section(project, 'id="project-targets"', "</section>")
    dead_line = section(targets, 'data-target="t-dead"', "</li>")
    assert "current revision unknown" in dead_line
    assert "current revision unknown" not in section(targets, 'data-target="t-a1"', "</li>")
    unplaced = section(project, '<p class="small unplaced">', "</p>")
    assert "t-dead" in unplaced
    assert "t-alien" in unplaced  # its revision is not one of linear's
    assert "t-head" not in unplaced


def test_revision_page_has_a_third_group_for_unknown(
    admin: FlaskClient, fleet: Any, probe_all: Callable[[], Any]
) -> None:
    probe_all()
    html = admin.get("/projects/linear/revisions/b2").get_data(as_text=True)
    applied, missing, unknown = (
        column(html, heading) for heading in ("Applied", "Not applied", "Unknown")
    )
    assert re.findall(r"/targets/([\w-]+)", applied) == ["t-head"]
    assert sorted(re.findall(r"/targets/([\w-]+)", missing)) == ["t-a1", "t-empty"]
    assert sorted(re.findall(r"/targets/([\w-]+)", unknown)) == ["t-alien", "t-dead"]
    assert "unreachable" in unknown


@pytest.mark.parametrize("state", list(TargetState))
def test_split_by_applied_never_calls_an_unanswered_target_missing(
    app: Flask, fleet: Any, db_session: Session, state: TargetState
) -> None:
    project = registry.get_project(db_session, "linear")
    graph, _ = project_graph(services_of(app).catalog, project)
    assert graph is not None
    for current in ((), ("a1",), ("c3",)):
        status = TargetStatus(state, current, ("c3",), ())
        report = TargetReport("t", "linear", "dev", status, None)
        split = split_by_applied(graph, "b2", [report])
        if state in POSITION_UNKNOWN:
            assert split.unknown == [report]
        elif current == ("c3",):
            assert split.applied == [report]
        else:
            assert split.missing == [report]


# --- 3. one source for the overview and the project page -----------------------------------


def test_overview_and_project_page_agree_when_a_job_records_during_a_probe(
    app: Flask,
    admin: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the overview probes a stale target, a job finishes on another and records it."""
    project = make_project("linear")
    register_project(project)
    register_target(project, "stale", env="dev", at="a1")
    b_url = register_target(project, "busy", env="dev", at="a1")
    probe_all()
    services = services_of(app)
    with services.sessions() as session:
        stale = session.scalar(sa.select(Target.id).where(Target.name == "stale"))
        for snapshot in session.scalars(sa.select(Snapshot).where(Snapshot.target_id == stale)):
            snapshot.checked_at -= timedelta(hours=1)
        session.commit()
    # the overview's background refresh probes through probe_as_completed
    probe_as_completed = services.probes.probe_as_completed

    def job_finishes_meanwhile(requests: list[Any], **options: Any) -> Any:
        monkeypatch.setattr(services.probes, "probe_as_completed", probe_as_completed)
        migrate_to(project, b_url, "heads")  # the "worker" upgrades busy and re-probes it
        with services.sessions() as worker:
            busy = [t for t in find_targets(worker) if t.name == "busy"]
            refresh_status(worker, services.catalog, services.probes, busy)
            worker.commit()
        return probe_as_completed(requests, **options)

    monkeypatch.setattr(services.probes, "probe_as_completed", job_finishes_meanwhile)
    overview = target_states(admin.get("/overview/matrix", headers=HX).get_data(as_text=True))
    project_page = admin.get("/projects/linear").get_data(as_text=True)
    listed = dict(re.findall(r'<li [^>]*data-target="([^"]+)" data-state="([^"]+)"', project_page))
    assert overview == listed == {"busy": "up_to_date", "stale": "behind"}


# --- 4. protected environments ask; the job page says where time went ----------------------


@pytest.fixture
def protected_world(
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    db_session: Session,
) -> Any:
    project = make_project("linear")
    register_project(project)
    registry.add_environment(db_session, "dev")
    registry.add_environment(db_session, "prod", protected=True, required_approvals=2)
    db_session.commit()
    register_target(project, "db-dev", env="dev", at="a1")
    register_target(project, "db-prod", env="prod", at="a1")
    return project


@pytest.mark.parametrize(
    ("env", "button"),
    [("prod", "Request approval for 1 job(s)"), ("dev", "Queue 1 upgrade job(s)")],
)
def test_environment_action_button_says_what_it_does(
    admin: FlaskClient, protected_world: Any, env: str, button: str
) -> None:
    html = admin.get(
        f"/actions/environment?project=linear&environment={env}&action=upgrade&revision=heads"
    ).get_data(as_text=True)
    (label,) = re.findall(r'id="confirm-environment-action">([^<]*)<', html)
    assert label == button
    assert ('id="needs-approval"' in html) == (env == "prod")


@pytest.mark.parametrize("target", ["db-dev", "db-prod"])
def test_every_request_button_on_protected_pages_asks_for_approval(
    admin: FlaskClient, protected_world: Any, target: str
) -> None:
    """Plan pages for each action: the one button that requests says what it will do."""
    for kind, revision in (("upgrade", "heads"), ("downgrade", "base"), ("stamp", "c3")):
        html = admin.get(f"/actions/targets/{target}?action={kind}&revision={revision}")
        (label,) = re.findall(r'id="confirm-action">([^<]*)<', html.get_data(as_text=True))
        assert label == ("Request approval" if target == "db-prod" else f"Confirm {kind}")


def request_job(app: Flask, target: str, kind: str = "upgrade", revision: str = "heads") -> int:
    """A job row as the plan page's button makes it (nothing is queued to a worker here)."""
    services = services_of(app)
    with services.sessions() as session:
        (row,) = [t for t in find_targets(session) if t.name == target]
        job = request_target_action(
            session, services.jobs, row, kind, revision, actor="amir", role=Role.ADMIN, now=utcnow()
        )
        session.commit()
        assert job is not None
        return job.id


def set_job(app: Flask, job_id: int, **fields: Any) -> None:
    with services_of(app).sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        for name, value in fields.items():
            setattr(job, name, value)
        session.commit()


def waits(client: FlaskClient, job_id: int) -> dict[str, str]:
    html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    rows = re.findall(r'<dd id="wait-(\w+)">(.*?)</dd>', html, re.S)
    return {name: " ".join(text.split()) for name, text in rows}


def test_job_page_separates_waiting_for_approval_from_waiting_in_the_queue(
    app: Flask, admin: FlaskClient, protected_world: Any
) -> None:
    job_id = request_job(app, "db-prod")
    requested = utcnow() - timedelta(seconds=100)
    set_job(app, job_id, requested_at=requested)
    seen = waits(admin, job_id)
    assert seen["approval"].startswith("waiting since 1 min ago")
    assert seen["queue"] == "not yet: queued once approved"
    assert seen["run"] == "not started"

    set_job(app, job_id, state=JobState.QUEUED, queued_at=requested + timedelta(seconds=30))
    seen = waits(admin, job_id)
    assert seen["approval"] == "waited 30.0 s"
    assert seen["queue"].startswith("waiting for a worker since 1 min ago")

    started = requested + timedelta(seconds=32.5)
    set_job(app, job_id, state=JobState.RUNNING, started_at=started, worker="w1")
    seen = waits(admin, job_id)
    assert seen["queue"] == "waited 2.5 s"
    assert seen["run"].startswith("running since")

    finished = started + timedelta(seconds=4)
    set_job(app, job_id, state=JobState.SUCCEEDED, finished_at=finished)
    assert waits(admin, job_id) == {
        "approval": "waited 30.0 s",
        "queue": "waited 2.5 s",
        "run": "ran 4.0 s",
    }


def test_job_page_for_unprotected_and_rejected_jobs(
    app: Flask, admin: FlaskClient, protected_world: Any
) -> None:
    dev_job = request_job(app, "db-dev")
    seen = waits(admin, dev_job)
    assert seen["approval"] == "not needed"
    assert seen["queue"].startswith("waiting for a worker since")
    prod_job = request_job(app, "db-prod")
    requested = utcnow() - timedelta(seconds=12)
    set_job(
        app,
        prod_job,
        requested_at=requested,
        state=JobState.REJECTED,
        finished_at=requested + timedelta(seconds=7),
    )
    assert waits(admin, prod_job) == {
        "approval": "waited 7.0 s, then rejected",
        "queue": "never queued",
        "run": "not started",
    }


# --- 5. wording matches the action ------------------------------------------------------

STAMP_ONLY = "No SQL: stamp only writes the version table."


@pytest.mark.parametrize(
    ("kind", "revision", "heading"),
    [
        ("upgrade", "heads", "Revisions to apply"),
        ("downgrade", "a1", "Revisions to remove"),
        ("stamp", "b2", "Version table changes"),
    ],
)
def test_plan_and_environment_pages_word_each_action(
    admin: FlaskClient, protected_world: Any, kind: str, revision: str, heading: str
) -> None:
    if kind == "downgrade":  # from a1 there is nothing below a1; move db-dev up first
        migrate_to(protected_world, _url_of(admin, "db-dev"), "c3")
    plan = admin.get(f"/actions/targets/db-dev?action={kind}&revision={revision}")
    html = plan.get_data(as_text=True)
    assert plan.status_code == 200
    assert f"<h2>{heading} (" in html
    assert (STAMP_ONLY in html) == (kind == "stamp")
    env = admin.get(
        f"/actions/environment?project=linear&environment=dev&action={kind}&revision={revision}"
    ).get_data(as_text=True)
    says = section(env, 'id="action-says"', "</p>")
    assert (STAMP_ONLY in says) == (kind == "stamp")
    assert ("applies the revisions" in says) == (kind == "upgrade")
    assert ("removes the revisions" in says) == (kind == "downgrade")


def _url_of(client: FlaskClient, target: str) -> str:
    app = client.application
    with services_of(app).sessions() as session:
        return session.scalar(sa.select(Target).where(Target.name == target)).url


def test_target_page_says_no_sql_only_beside_the_stamp_form(
    admin: FlaskClient, protected_world: Any, probe_all: Callable[[], Any]
) -> None:
    probe_all()
    html = admin.get("/targets/db-dev").get_data(as_text=True)
    assert html.count(STAMP_ONLY) == 1
    forms = section(html, '<div class="action-forms">', "<section>\n  <h2>Recent")
    stamp_form = next(f for f in forms.split("<form")[1:] if 'name="action" value="stamp"' in f)
    assert STAMP_ONLY in stamp_form.split("</form>")[0]


@pytest.mark.parametrize(
    ("kind", "revision", "heading"),
    [("upgrade", "heads", "Revisions to apply"), ("stamp", "b2", "Version table changes")],
)
def test_the_review_page_words_each_action(
    app: Flask, admin: FlaskClient, protected_world: Any, kind: str, revision: str, heading: str
) -> None:
    job_id = request_job(app, "db-prod", kind=kind, revision=revision)
    html = admin.get(f"/approvals/{job_id}").get_data(as_text=True)
    assert f"<h2>{heading} (" in html
    assert (STAMP_ONLY in html) == (kind == "stamp")


# --- 6. refused forms come back as typed ---------------------------------------------------


def errors_beside(html: str) -> dict[str, list[str]]:
    """Field name -> the errors inside its ``<label>``; ``form`` -> the alerts (no one field)."""
    found: dict[str, list[str]] = {}
    for block in re.findall(r"<label>(.*?)</label>", html, re.S):
        field = re.search(r'<(?:input|select)\b[^>]*\bname="([^"]+)"', block)
        errors = re.findall(r'<span class="err">([^<]*)</span>', block)
        if field and errors:
            found[field.group(1)] = [unescape(e) for e in errors]
    alerts = re.findall(r'<p class="error" role="alert">([^<]*)</p>', html)
    if alerts:
        found["form"] = [unescape(a) for a in alerts]
    return found


def input_tag(html: str, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert match, name
    return match.group()


def input_value(html: str, name: str) -> str | None:
    """The value an ``<input>`` comes back with, unescaped (None: no value attribute)."""
    value = re.search(r'value="([^"]*)"', input_tag(html, name))
    return unescape(value.group(1)) if value else None


ENV_FORM = {"name": "qa", "position": "3", "protected": "y", "required_approvals": "2"}


@pytest.mark.parametrize(
    ("change", "field", "status", "says"),
    [
        ({"name": "bad name!"}, "name", 400, "environment name 'bad name!' is not allowed"),
        ({"required_approvals": "0"}, "required_approvals", 400, "between 1 and 20"),
        ({"name": "dev"}, "form", 409, "an environment named 'dev' already exists"),
        ({"position": "first"}, "position", 400, "Not a valid integer value."),
    ],
)
def test_environment_form_comes_back_as_typed_with_the_message_beside_the_field(
    admin: FlaskClient,
    protected_world: Any,
    read: Callable[[], Session],
    change: dict[str, str],
    field: str,
    status: int,
    says: str,
) -> None:
    sent = {**ENV_FORM, **change}
    response = admin.post("/admin/environments/new", data=sent)
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert says in " ".join(errors_beside(html)[field])
    assert input_value(html, "name") == sent["name"]
    assert input_value(html, "required_approvals") == sent["required_approvals"]
    assert "checked" in input_tag(html, "protected")
    assert [e.name for e in all_environments(read())] == ["dev", "prod"]


def test_editing_an_environment_keeps_nothing_of_a_refused_change(
    admin: FlaskClient, protected_world: Any, read: Callable[[], Session]
) -> None:
    response = admin.post(
        "/admin/environments/prod/edit",
        data={"name": "prod uction", "protected": "", "required_approvals": "5"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "is not allowed" in " ".join(errors_beside(html)["name"])
    assert input_value(html, "name") == "prod uction"
    assert input_value(html, "required_approvals") == "5"
    session = read()
    assert [e.name for e in all_environments(session)] == ["dev", "prod"]
    prod = session.scalar(sa.select(Environment).where(Environment.name == "prod"))
    assert prod is not None
    assert (prod.protected, prod.required_approvals) == (True, 2)


TARGET_FORM = {"name": "db-new", "project": "linear", "environment": "dev", "tags": "eu, pci"}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"url": f"not a url {SECRET}"}, "url", "that is not a database URL"),
        ({"url": ""}, "url", "a new target needs a database URL"),
        ({"name": "bad/name", "url": f"sqlite:///x{SECRET}.db"}, "name", "is not allowed"),
        ({"tags": "ok, bad tag!", "url": f"sqlite:///x{SECRET}.db"}, "tags", "tag 'bad tag!'"),
    ],
)
def test_target_form_comes_back_as_typed_but_never_the_url(
    admin: FlaskClient,
    protected_world: Any,
    read: Callable[[], Session],
    change: dict[str, str],
    field: str,
    says: str,
) -> None:
    sent = {**TARGET_FORM, **change}
    response = admin.post("/admin/targets/new", data=sent)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert says in " ".join(errors_beside(html)[field])
    assert SECRET not in html
    assert input_value(html, "url") in (None, "")
    assert input_value(html, "name") == sent["name"]
    assert input_value(html, "tags") == sent["tags"]
    assert re.search(r'<option selected value="linear">|<option value="linear" selected', html)
    assert sorted(t.name for t in find_targets(read())) == ["db-dev", "db-prod"]


def test_editing_a_target_with_a_bad_url_keeps_the_stored_one(
    admin: FlaskClient, protected_world: Any, read: Callable[[], Session]
) -> None:
    before = _url_of(admin, "db-dev")
    response = admin.post(
        "/admin/targets/db-dev/edit",
        data={**TARGET_FORM, "name": "db-renamed", "url": f"nope {SECRET}"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "that is not a database URL" in " ".join(errors_beside(html)["url"])
    assert SECRET not in html
    assert input_value(html, "name") == "db-renamed"
    assert _url_of(admin, "db-dev") == before
    assert "db-renamed" not in [t.name for t in find_targets(read())]


@pytest.fixture
def forked(
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
) -> Any:
    project = make_project("two_heads")
    register_project(project)
    register_target(project, "fork-dev", at="c3")
    return project


REVISION_FORM = {
    "message": "add audit table",
    "head": "d4",
    "branch_label": "audit",
    "depends_on": "a1",
}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"message": "   "}, "message", "a message is required"),
        ({"message": "bell \x07"}, "message", "control character"),
        ({"branch_label": "bad label!"}, "branch_label", "branch label 'bad label!'"),
        ({"depends_on": "a1, zz9"}, "form", "Unknown revision 'zz9'"),
        ({"autogenerate": "y"}, "against", "autogenerate needs a target"),
    ],
)
def test_revision_form_comes_back_filled_on_the_project_page(
    app: Flask,
    admin: FlaskClient,
    forked: Any,
    read: Callable[[], Session],
    change: dict[str, str],
    field: str,
    says: str,
) -> None:
    sent = {**REVISION_FORM, **change}
    response = admin.post("/actions/projects/two_heads/revision", data=sent)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    form = section(html, '<details id="new-revision" open>', "</details>")
    assert says in " ".join(errors_beside(form)[field])
    for name in ("message", "branch_label", "depends_on"):
        assert input_value(form, name) == sent[name]
    assert '<option value="d4" selected>' in form
    assert ("checked" in input_tag(form, "autogenerate")) == ("autogenerate" in sent)
    assert "<h2>Revision graph</h2>" in html  # the whole project page, not an error page
    assert read().scalar(sa.select(sa.func.count()).select_from(Job)) == 0


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"message": "merge \x1b"}, "message", "control character"),
        ({"heads": ["c3"]}, "form", "at least two heads"),
    ],
)
def test_merge_form_comes_back_filled_on_the_project_page(
    admin: FlaskClient,
    forked: Any,
    read: Callable[[], Session],
    change: dict[str, Any],
    field: str,
    says: str,
) -> None:
    sent = {"message": "join both", "heads": ["c3", "d4"], **change}
    response = admin.post("/actions/projects/two_heads/merge", data=sent)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    form = section(
        html, '<form method="post" action="/actions/projects/two_heads/merge"', "</form>"
    )
    assert says in " ".join(errors_beside(form)[field])
    assert input_value(form, "message") == sent["message"]
    checked = re.findall(r'name="heads" value="(\w+)" checked', form)
    assert checked == sent["heads"]
    assert read().scalar(sa.select(sa.func.count()).select_from(Job)) == 0


def test_a_merge_refused_where_no_merge_form_is_shown_still_says_why(
    admin: FlaskClient, protected_world: Any, read: Callable[[], Session]
) -> None:
    response = admin.post("/actions/projects/linear/merge", data={"message": "m", "heads": "c3"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="merge"' not in html  # one head: the page has no merge form
    reason, hint = errors_beside(html)["form"]
    assert reason == "The merge was refused: a merge needs at least two heads"
    assert hint == "The project's heads: c3"
    assert read().scalar(sa.select(sa.func.count()).select_from(Job)) == 0


def test_a_good_revision_request_still_goes_through(
    app: Flask, admin: FlaskClient, forked: Any
) -> None:
    response = admin.post(
        "/actions/projects/two_heads/revision", data={"message": "fine", "head": "c3"}
    )
    assert response.status_code == 302
    assert re.search(r"/jobs/\d+$", response.headers["Location"])
