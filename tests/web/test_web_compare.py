"""The compare page: environments side by side, what each lacks in apply order, promotion.

The project is branched and merged; staging and prod sit on divergent
branches, so each lacks something of the other.  What the page lists is
checked against what Alembic itself runs on a copy of the database.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from flask import Flask
from flask.testing import FlaskClient

from migdash import create_app
from migdash.jobs.requests import request_target_action
from migdash.scaffold import RevisionSpec
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import AuditEvent, Job, JobLogLine, JobState, Role, utcnow
from migdash.store.schema_models import SchemaSnapshot
from migdash.store.users import create_user
from tests.web.pagetext import HOSTILE, INLINE_SCRIPT, section

BRANCHED = [
    RevisionSpec("a1", None, "create accounts", table="accounts"),
    RevisionSpec("b2", "a1", "create orders", table="orders"),
    RevisionSpec("c3", "b2", "left one", table="left_one"),
    RevisionSpec("c4", "c3", "left two", table="left_two"),
    RevisionSpec("d3", "b2", "right one", table="right_one"),
    RevisionSpec("d4", "d3", "right two", table="right_two"),
    RevisionSpec("e5", ("c4", "d4"), "merge left and right"),
    RevisionSpec("f6", "e5", "after the merge", table="after_merge"),
]
PLACES = {"dev-1": "f6", "staging-1": "c4", "prod-1": "d4", "prod-2": "d4"}


@dataclass(frozen=True)
class World:
    project: Any
    urls: dict[str, str]


@pytest.fixture
def world(
    app: Flask,
    db_session: Any,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
) -> Callable[..., World]:
    """shop: dev at the head, staging on the left branch, prod on the right one (protected)."""

    def build(places: dict[str, str] = PLACES, specs: list[RevisionSpec] = BRANCHED) -> World:
        project = make_project(specs, name="shop")
        register_project(project)
        for env in ("dev", "staging", "prod"):
            registry.add_environment(db_session, env, protected=env == "prod")
        db_session.commit()
        urls = {
            name: register_target(project, name, env=name.split("-")[0], at=at)
            for name, at in places.items()
        }
        probe_all()
        return World(project, urls)

    return build


@pytest.fixture
def operator(login: Callable[..., FlaskClient]) -> FlaskClient:
    return login(Role.OPERATOR)


def lacks(html: str, key: str) -> list[str]:
    """Revision ids listed under ``<div id="{key}-lacks">``, top to bottom."""
    block = section(html, f'<div id="{key}-lacks"', "</div>")
    return re.findall(r'<li data-revision="([^"]+)"', block)


def alembic_runs(
    caplog: pytest.LogCaptureFixture, project: Any, url: str, destination: str, copy: Path
) -> list[str]:
    """The revisions ``alembic upgrade <destination>`` runs on a copy of the SQLite target."""
    shutil.copy(sa.engine.make_url(url).database or "", copy)
    db_engine = sa.create_engine(f"sqlite:///{copy}")
    caplog.clear()
    with (
        caplog.at_level(logging.INFO, logger="alembic.runtime.migration"),
        db_engine.begin() as connection,
    ):
        config = project.alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, destination)
    db_engine.dispose()
    return re.findall(r"Running upgrade .*? -> (\w+)", caplog.text)


def jobs_and_audit(app: Flask) -> tuple[list[Job], list[AuditEvent], int]:
    with services_of(app).sessions() as session:
        jobs = list(session.scalars(sa.select(Job).order_by(Job.id)))
        events = list(session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)))
        session.expunge_all()
    return jobs, events, services_of(app).queue.pending_count()


# --- the board ------------------------------------------------------------------------------


def test_the_board_shows_environments_in_order_with_each_target(
    app: Flask, world: Callable[..., World], operator: FlaskClient, db_session: Any
) -> None:
    world()
    target = registry.get_target(db_session, "prod-1")
    db_session.add(
        SchemaSnapshot(
            target_id=target.id,
            revisions=["d4"],
            dialect="sqlite",
            normaliser_version=1,
            fingerprint="f" * 8 + "0" * 56,
            schema={},
        )
    )
    db_session.commit()

    html = operator.get("/compare/shop").get_data(as_text=True)

    board = section(html, '<table class="matrix" id="board">', "</table>")
    assert re.findall(r'<th data-environment="([^"]+)"', board) == ["dev", "staging", "prod"]
    states = dict(re.findall(r'data-target="([^"]+)" data-state="([^"]+)"', board))
    assert states == {
        "dev-1": "up_to_date",
        "staging-1": "behind",
        "prod-1": "behind",
        "prod-2": "behind",
    }
    cards = {
        re.findall(r'data-target="([^"]+)"', card)[0]: card
        for card in board.split('<div class="target ')[1:]
    }
    assert "/revisions/d4" in cards["prod-1"]
    assert "/revisions/c4" in cards["staging-1"]
    assert 'data-pending="0"' in cards["dev-1"]
    assert 'data-pending="4"' in cards["prod-1"]  # c3, c4, e5, f6
    assert 'data-schema="ffffffff' in cards["prod-1"]
    assert "ffffffff0000" in cards["prod-1"]
    assert "no snapshot yet" in cards["prod-2"]
    assert "no snapshot yet" not in cards["prod-1"]
    assert 'href="/schemas/targets/prod-1"' in cards["prod-1"]


def test_compare_is_linked_from_the_nav_and_the_project_page(
    world: Callable[..., World], operator: FlaskClient
) -> None:
    world()
    assert 'href="/compare/"' in operator.get("/").get_data(as_text=True)
    assert 'href="/compare/shop"' in operator.get("/projects/shop").get_data(as_text=True)
    assert 'href="/compare/shop"' in operator.get("/compare/").get_data(as_text=True)


# --- what each side lacks -------------------------------------------------------------------


def test_divergent_staging_and_prod_each_lack_the_other_branch_as_alembic_applies_it(
    world: Callable[..., World],
    operator: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    built = world()

    html = operator.get("/compare/shop?a=staging&b=prod").get_data(as_text=True)

    prod_lacks = alembic_runs(caplog, built.project, built.urls["prod-1"], "c4", tmp_path / "p.db")
    staging_lacks = alembic_runs(
        caplog, built.project, built.urls["staging-1"], "d4", tmp_path / "s.db"
    )
    assert lacks(html, "b") == prod_lacks
    assert lacks(html, "a") == staging_lacks
    assert set(prod_lacks) == {"c3", "c4"}
    assert set(staging_lacks) == {"d3", "d4"}
    assert "left two" in section(html, '<div id="b-lacks"', "</ol>")


def test_lacks_across_the_merge_are_in_apply_order(
    world: Callable[..., World],
    operator: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    built = world()

    html = operator.get("/compare/shop?a=dev&b=prod").get_data(as_text=True)

    expected = alembic_runs(caplog, built.project, built.urls["prod-1"], "f6", tmp_path / "p.db")
    assert lacks(html, "b") == expected
    assert {"e5", "f6"} <= set(expected)
    assert lacks(html, "a") == []


def test_two_targets_can_be_compared(
    world: Callable[..., World],
    operator: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    built = world()

    html = operator.get("/compare/shop?target_a=staging-1&target_b=dev-1").get_data(as_text=True)

    staging_lacks = alembic_runs(
        caplog, built.project, built.urls["staging-1"], "f6", tmp_path / "s.db"
    )
    assert lacks(html, "a") == staging_lacks
    assert lacks(html, "b") == []
    assert "promote-" not in html, "promotion is offered between environments only"
    link = section(html, '<p id="schema-diff-link">', "</p>")
    assert 'href="/schemas/diff?left=staging-1&amp;right=dev-1"' in link


def test_a_side_whose_targets_disagree_says_which_lack_what(
    world: Callable[..., World], operator: FlaskClient
) -> None:
    world({**PLACES, "prod-2": "d3"})

    html = operator.get("/compare/shop?a=dev&b=prod").get_data(as_text=True)
    back = operator.get("/compare/shop?a=prod&b=staging").get_data(as_text=True)

    assert "its targets disagree" in html
    items = re.findall(
        r'<li data-revision="(\w+)">.*?lacked by ([^<]+)</span>',
        section(html, '<div id="b-lacks"', "</ol>"),
    )
    lacked_by = {rev: who for rev, who in items}
    assert lacked_by.pop("d4") == "prod-2"
    assert set(lacked_by.values()) == {"prod-1, prod-2"}
    assert set(lacked_by) == {"c3", "c4", "e5", "f6"}
    offer = section(back, 'id="promote-prod-to-staging"', "</div>")
    assert "Cannot promote" in offer
    assert "prod-2 at d3" in offer
    assert "/compare/shop/promote" not in offer


def test_htmx_gets_the_comparison_fragment_only(
    world: Callable[..., World], operator: FlaskClient
) -> None:
    world()
    fragment = operator.get(
        "/compare/shop?a=staging&b=prod", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert '<section id="comparison">' in fragment
    assert "<html" not in fragment
    assert 'id="board"' not in fragment
    assert lacks(fragment, "b") == ["c3", "c4"]


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ("a=staging", 400, "choose environment b too"),
        ("target_b=prod-1", 400, "choose target a too"),
        ("a=staging&b=nope", 404, "nope"),
        ("target_a=prod-1&target_b=nope", 404, "nope"),
    ],
)
def test_a_half_chosen_pair_is_refused_naming_what_is_missing(
    world: Callable[..., World], operator: FlaskClient, query: str, status: int, named: str
) -> None:
    world()
    response = operator.get(f"/compare/shop?{query}")
    assert response.status_code == status
    assert named in response.get_data(as_text=True)


def test_hostile_revision_messages_are_escaped(
    world: Callable[..., World], operator: FlaskClient
) -> None:
    specs = [
        RevisionSpec("a1", None, HOSTILE),
        RevisionSpec("b2", "a1", f"{HOSTILE} two"),
    ]
    world({"staging-1": "b2", "prod-1": "a1"}, specs)

    pages = [
        operator.get("/compare/shop?a=staging&b=prod").get_data(as_text=True),
        operator.get("/compare/shop/promote?from=staging&to=prod").get_data(as_text=True),
    ]

    for html in pages:
        assert "<script>alert(1)" not in html
        assert "&lt;script&gt;alert(1)" in html
        assert INLINE_SCRIPT.findall(html) == []


# --- promotion ------------------------------------------------------------------------------


def confirm_form(html: str) -> dict[str, str]:
    form = section(html, 'action="/compare/shop/promote"', "</form>")
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def test_promote_to_protected_prod_holds_one_job_per_target_for_approval(
    app: Flask,
    world: Callable[..., World],
    operator: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    built = world()
    html = operator.get("/compare/shop/promote?from=staging&to=prod").get_data(as_text=True)
    assert "Request approval for 2 job(s)" in html
    for name in ("prod-1", "prod-2"):
        row = section(html, f'<tr data-target="{name}">', "</tr>")
        steps = re.findall(r"\(upgrade \w+ -&gt; (\w+)\)", row)
        runs = alembic_runs(caplog, built.project, built.urls[name], "c4", tmp_path / f"{name}.db")
        assert steps == runs
        assert "keeps <code>d3</code>, <code>d4</code>" in row  # staging lacks them: they stay

    response = operator.post("/compare/shop/promote", data=confirm_form(html))

    assert response.status_code == 302, response.get_data(as_text=True)
    jobs, events, queued = jobs_and_audit(app)
    assert [(j.target_name, j.state, j.arguments["revision"]) for j in jobs] == [
        ("prod-1", JobState.AWAITING_APPROVAL, "c4"),
        ("prod-2", JobState.AWAITING_APPROVAL, "c4"),
    ]
    assert queued == 0
    actions = [e.action for e in events if e.action != "registry.environment.add"]
    assert actions.count("job.request") == 2
    (promotion,) = [e for e in events if e.action == "promotion.request"]
    assert promotion.detail["source"] == "staging"
    assert promotion.detail["jobs"] == [j.id for j in jobs]
    assert promotion.environment == "prod"


def test_promote_to_an_unprotected_environment_queues_the_jobs(
    app: Flask, world: Callable[..., World], operator: FlaskClient
) -> None:
    world()
    html = operator.get("/compare/shop/promote?from=dev&to=staging").get_data(as_text=True)
    assert "Queue 1 upgrade job(s)" in html

    operator.post("/compare/shop/promote", data=confirm_form(html))

    jobs, _, queued = jobs_and_audit(app)
    assert [(j.target_name, j.state, j.arguments["revision"]) for j in jobs] == [
        ("staging-1", JobState.QUEUED, "f6")
    ]
    assert queued == 1


def test_nothing_to_promote_requests_nothing(
    app: Flask, world: Callable[..., World], operator: FlaskClient
) -> None:
    world()
    html = operator.get("/compare/shop/promote?from=staging&to=dev").get_data(as_text=True)
    assert 'id="nothing-to-do"' in html
    assert 'id="confirm-promotion"' not in html

    response = operator.post("/compare/shop/promote", data={"from": "staging", "to": "dev"})

    assert response.status_code == 302
    assert jobs_and_audit(app)[0] == []


def test_skipping_an_environment_warns_and_the_jobs_say_so(
    app: Flask, world: Callable[..., World], operator: FlaskClient, db_session: Any
) -> None:
    world()
    compare = operator.get("/compare/shop?a=dev&b=prod").get_data(as_text=True)
    offer = section(compare, 'id="promote-dev-to-prod"', "</div>")
    assert 'data-order="warn"' in offer
    assert "staging comes before prod" in offer
    html = operator.get("/compare/shop/promote?from=dev&to=prod").get_data(as_text=True)
    warning = section(html, 'id="order-warning"', "</p>")
    assert re.findall(r"<code>(\w+)</code>", warning) == ["e5", "f6"]

    operator.post("/compare/shop/promote", data=confirm_form(html))

    jobs, _, _ = jobs_and_audit(app)
    assert len(jobs) == 2
    with services_of(app).sessions() as session:
        lines = session.scalars(
            sa.select(JobLogLine.line).where(JobLogLine.job_id == jobs[0].id)
        ).all()
    assert any(line.startswith("warning: staging does not hold e5, f6") for line in lines)


def test_an_environment_that_refuses_out_of_order_promotions_refuses(
    app: Flask, world: Callable[..., World], operator: FlaskClient, db_session: Any
) -> None:
    world()
    registry.edit_environment(
        db_session, registry.get_environment(db_session, "prod"), promotion_rule="refuse"
    )
    db_session.commit()
    compare = operator.get("/compare/shop?a=dev&b=prod").get_data(as_text=True)
    offer = section(compare, 'id="promote-dev-to-prod"', "</div>")
    assert 'data-order="refused"' in offer
    assert "/compare/shop/promote" not in offer

    response = operator.post("/compare/shop/promote", data={"from": "dev", "to": "prod"})

    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "prod refuses promotions out of order" in body
    assert "e5, f6" in body
    assert jobs_and_audit(app)[0] == []
    in_order = operator.post("/compare/shop/promote", data={"from": "staging", "to": "prod"})
    assert in_order.status_code == 302, "a promotion from the environment before is in order"


def test_promotion_is_all_or_nothing(
    app: Flask, world: Callable[..., World], operator: FlaskClient, db_session: Any
) -> None:
    """prod-1 is requested first; prod-2 holds a pending job: nothing at all is kept."""
    world()
    services = services_of(app)
    held = request_target_action(
        db_session,
        services.jobs,
        registry.get_target(db_session, "prod-2"),
        "upgrade",
        "heads",
        actor="someone",
        role=Role.OPERATOR,
        now=utcnow(),
    )
    db_session.commit()
    assert held is not None
    before = jobs_and_audit(app)

    response = operator.post("/compare/shop/promote", data={"from": "staging", "to": "prod"})

    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "nothing was requested" in body
    assert f"job {held.id} is already pending for target prod-2" in body
    after = jobs_and_audit(app)
    assert [j.id for j in after[0]] == [j.id for j in before[0]]
    assert [e.id for e in after[1]] == [e.id for e in before[1]]
    assert after[2] == before[2]


def test_a_plan_that_changed_since_it_was_read_is_refused(
    app: Flask, world: Callable[..., World], operator: FlaskClient, caplog: Any
) -> None:
    built = world()
    html = operator.get("/compare/shop/promote?from=staging&to=prod").get_data(as_text=True)
    form = confirm_form(html)
    config = built.project.alembic_config(built.urls["prod-2"])
    command.upgrade(config, "c3")  # prod-2 moves after the page was read

    response = operator.post("/compare/shop/promote", data=form)

    assert response.status_code == 409
    assert "changed since you read it" in response.get_data(as_text=True)
    assert jobs_and_audit(app)[0] == []


def test_a_source_whose_targets_disagree_is_refused_with_the_list(
    app: Flask, world: Callable[..., World], operator: FlaskClient
) -> None:
    world({**PLACES, "staging-2": "c3"})

    response = operator.post("/compare/shop/promote", data={"from": "staging", "to": "prod"})

    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "the targets of staging disagree" in body
    assert "staging-1 at c4" in body
    assert "staging-2 at c3" in body
    assert jobs_and_audit(app)[0] == []


def test_revisions_on_two_branches_that_are_not_the_heads_are_refused_by_name(
    app: Flask, world: Callable[..., World], operator: FlaskClient, db_session: Any
) -> None:
    built = world({**PLACES, "prod-1": "b2", "prod-2": "b2"})
    command.upgrade(built.project.alembic_config(built.urls["staging-1"]), "d4")  # now c4 + d4
    html = operator.get("/compare/shop/promote?from=staging&to=prod").get_data(as_text=True)
    problems = section(html, 'id="promotion-problems"', "</div>")
    assert "c4" in problems
    assert "d4" in problems
    assert 'id="confirm-promotion"' not in html

    response = operator.post("/compare/shop/promote", data={"from": "staging", "to": "prod"})

    assert response.status_code == 409
    assert jobs_and_audit(app)[0] == []


def test_a_viewer_reads_the_comparison_but_is_offered_no_promotion(
    world: Callable[..., World], login: Callable[..., FlaskClient]
) -> None:
    world()
    viewer = login(Role.VIEWER)
    html = viewer.get("/compare/shop?a=staging&b=prod").get_data(as_text=True)
    assert lacks(html, "b") == ["c3", "c4"]
    assert "/compare/shop/promote" not in html
    assert viewer.get("/compare/shop/promote?from=staging&to=prod").status_code == 403
    assert (
        viewer.post("/compare/shop/promote", data={"from": "staging", "to": "prod"}).status_code
        == 403
    )


def test_the_environment_form_sets_the_promotion_rule(
    app: Flask, world: Callable[..., World], login: Callable[..., FlaskClient], db_session: Any
) -> None:
    world()
    admin = login(Role.ADMIN)
    form = admin.get("/admin/environments/prod/edit").get_data(as_text=True)
    assert 'name="promotion_rule"' in form

    response = admin.post(
        "/admin/environments/prod/edit",
        data={"name": "prod", "position": "2", "protected": "y", "promotion_rule": "refuse"},
    )
    bad = admin.post("/admin/environments/new", data={"name": "qa", "promotion_rule": "sometimes"})

    assert response.status_code == 302, response.get_data(as_text=True)
    db_session.expire_all()
    assert registry.get_environment(db_session, "prod").promotion_rule == "refuse"
    assert bad.status_code == 400
    assert "Not a valid choice" in section(bad.get_data(as_text=True), 'name="promotion_rule"')
    with pytest.raises(Exception, match="no environment named 'qa'"):
        registry.get_environment(db_session, "qa")


def test_the_promote_post_needs_the_csrf_token_of_its_confirm_page(
    tmp_path: Path, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> None:
    """With CSRF on, as in production: no token, no job; the confirm page's token works."""
    (tmp_path / "csrf-instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "csrf-instance"),
            "MIGDASH_SECRET_KEY": "csrf-secret-key",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
        }
    )
    services = services_of(app)
    services.upgrade_schema()
    project = make_project(BRANCHED, name="shop")
    try:
        with services.sessions() as session:
            registry.add_project(session, "shop", str(project.location))
            for env, at in (("staging", "c4"), ("prod", "d4")):
                registry.add_environment(session, env, protected=env == "prod")
                url = make_target(project, at=at, name=env)
                registry.add_target(session, f"{env}-1", project="shop", environment=env, url=url)
            create_user(session, "olga", "olga-password", Role.OPERATOR)
            session.commit()
        client = app.test_client()
        login_page = client.get("/login").get_data(as_text=True)
        (token,) = re.findall(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', login_page)
        client.post(
            "/login", data={"username": "olga", "password": "olga-password", "csrf_token": token}
        )
        page = client.get("/compare/shop/promote?from=staging&to=prod").get_data(as_text=True)
        form = confirm_form(page)

        refused = client.post(
            "/compare/shop/promote", data={k: v for k, v in form.items() if k != "csrf_token"}
        )
        assert refused.status_code == 400
        assert jobs_and_audit(app)[0] == []

        accepted = client.post("/compare/shop/promote", data=form)
        assert accepted.status_code == 302, accepted.get_data(as_text=True)[:500]
        assert [j.target_name for j in jobs_and_audit(app)[0]] == ["prod-1"]
    finally:
        services.probes.close()
        services.db_engine.dispose()


def test_going_back_to_a_pushed_comparison_gets_the_whole_page(
    world: Callable[..., World], operator: FlaskClient
) -> None:
    """htmx pushes each comparison's URL; restoring one it has not cached asks for the page."""
    world()
    restored = operator.get(
        "/compare/shop?a=staging&b=prod",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    ).get_data(as_text=True)
    assert "<html" in restored
    assert 'id="board"' in restored
    assert lacks(restored, "b") == ["c3", "c4"]
