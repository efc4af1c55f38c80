"""Edited after apply, and each target's timeline.

Real jobs apply revisions (the job child sends back each file's text as it
ran); files are then edited, converted to CRLF or reformatted; only a real
change flags the targets that ran the file, and only them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from migdash.jobs.history import edited_after_apply, timeline
from migdash.services import services_of
from migdash.status import project_graph, refresh_status
from migdash.store import registry
from migdash.store.models import JobState
from migdash.store.schema_models import AppliedRevision


def statuses(app: Flask, name: str) -> dict[str, str]:
    services = services_of(app)
    with services.sessions() as session:
        target = registry.get_target(session, name)
        (report,) = refresh_status(session, services.catalog, services.probes, [target])
        session.commit()
        graph, _ = project_graph(services.catalog, target.project)
        assert graph is not None
        records = edited_after_apply(session, graph, target, report.status.current)
        return {r.revision: r.status for r in records}


def revision_file(project: Any, revision: str) -> Path:
    return next((project.location / "versions").glob(f"{revision}_*.py"))


def test_an_edited_file_flags_the_targets_that_ran_it_and_no_others(
    app: Flask,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
) -> None:
    project = make_project("linear")
    register(
        project,
        t1=make_target(project, at="a1"),
        t2=make_target(project, at="a1"),
        t3=make_target(project, at="c3"),  # brought there by Alembic, not by migdash
    )
    jobs = [cli_json("upgrade", "t1", "b2")["id"], cli_json("upgrade", "t2", "heads")["id"]]
    run_queue()
    assert [load_job(j).state for j in jobs] == [JobState.SUCCEEDED] * 2
    with services_of(app).sessions() as session:
        kept = {(r.revision, r.job_id) for r in session.query(AppliedRevision)}
    assert kept == {("b2", jobs[0]), ("b2", jobs[1]), ("c3", jobs[1])}

    assert statuses(app, "t1") == {"b2": "unchanged", "a1": "not recorded"}
    assert statuses(app, "t2") == {"c3": "unchanged", "b2": "unchanged", "a1": "not recorded"}
    assert set(statuses(app, "t3").values()) == {"not recorded"}

    c3 = revision_file(project, "c3")
    c3.write_text(c3.read_text().replace("'items'", "'items_renamed'"))
    assert statuses(app, "t2")["c3"] == "edited"
    assert statuses(app, "t3")["c3"] == "not recorded", "t3 never ran it through migdash"
    assert "c3" not in statuses(app, "t1")
    services = services_of(app)
    with services.sessions() as session:
        target = registry.get_target(session, "t2")
        graph, _ = project_graph(services.catalog, target.project)
        assert graph is not None
        (edited,) = [
            r for r in edited_after_apply(session, graph, target, ("c3",)) if r.status == "edited"
        ]
    assert "-        'items'," in edited.diff
    assert "+        'items_renamed'," in edited.diff
    assert edited.job_id == jobs[1]


def test_crlf_and_reformatting_do_not_count_as_edits(
    app: Flask,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
) -> None:
    project = make_project("linear")
    register(project, t1=make_target(project, at="a1"))
    cli_json("upgrade", "t1", "heads")
    run_queue()
    b2 = revision_file(project, "b2")
    text = b2.read_text()
    reformatted = text.replace("\n\n\ndef ", "\n\n\n# a comment added later\n\ndef ")
    reformatted = reformatted.replace("op.create_table(", "op.create_table( ")
    b2.write_bytes(reformatted.replace("\n", "\r\n").encode())
    assert statuses(app, "t1")["b2"] == "unchanged"
    b2.write_text(text.replace("orders", "purchases"))
    assert statuses(app, "t1")["b2"] == "edited"


def test_the_timeline_attributes_changes_to_jobs_or_to_outside_migdash(
    app: Flask,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
) -> None:
    from tests.conftest import migrate_to

    project = make_project("linear")
    url = make_target(project, at="a1")
    register(project, t1=url)
    statuses(app, "t1")  # first sight: a1
    job_id = cli_json("upgrade", "t1", "b2")["id"]
    run_queue()
    statuses(app, "t1")
    migrate_to(project, url, "c3")  # someone runs Alembic by hand
    statuses(app, "t1")
    with services_of(app).sessions() as session:
        entries = [
            (e.before, e.after, e.attribution)
            for e in timeline(session, registry.get_target(session, "t1"))
            if e.what == "revisions"
        ]
    assert entries == [
        (None, ("a1",), "first seen"),
        (("a1",), ("b2",), f"job {job_id}"),
        (("b2",), ("c3",), "outside migdash"),
    ]


def test_the_history_page_and_the_cli_show_edits_and_the_timeline(
    app: Flask,
    login: Callable[..., Any],
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
) -> None:
    project = make_project("linear")
    register(project, t1=make_target(project, at="a1"), t2=make_target(project, at="a1"))
    statuses(app, "t1")
    job_id = cli_json("upgrade", "t1", "heads")["id"]
    run_queue()
    statuses(app, "t1")
    b2 = revision_file(project, "b2")
    b2.write_text(b2.read_text().replace("'orders'", "'orders_v2'"))
    statuses(app, "t1")
    web = login("viewer")
    page = web.get("/history/targets/t1").get_data(as_text=True)
    assert 'id="edited-warning"' in page
    assert 'data-revision="b2" data-status="edited"' in page
    assert 'data-revision="c3" data-status="unchanged"' in page
    assert 'data-revision="a1" data-status="not recorded"' in page
    assert "orders_v2" in page, "the diff is shown"
    assert f"job {job_id}" in page
    other = web.get("/history/targets/t2").get_data(as_text=True)
    assert 'id="edited-warning"' not in other, "t2 never ran b2"
    data = cli_json("timeline", "t1")
    assert {r["revision"]: r["status"] for r in data["revisions"]} == {
        "c3": "unchanged",
        "b2": "edited",
        "a1": "not recorded",
    }
    assert [e["attribution"] for e in data["timeline"] if e["what"] == "revisions"] == [
        "first seen",
        f"job {job_id}",
    ]
