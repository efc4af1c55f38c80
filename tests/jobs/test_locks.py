"""One mutating job per target at a time: the lease row plus the database's advisory lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from migdash.jobs.locks import AdvisoryLock
from migdash.scaffold import RevisionSpec
from tests.conftest import migrate_to


def sleeping(table: str, sleep_sql: str) -> str:
    return (
        f'op.execute("{sleep_sql}")\n'
        f'op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))\n'
    )


def version_of(url: str) -> list[str]:
    db_engine = sa.create_engine(url)
    try:
        with db_engine.connect() as connection:
            return [
                row[0]
                for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            ]
    finally:
        db_engine.dispose()


@pytest.mark.server
def test_a_postgres_job_waits_for_the_advisory_lock_and_a_second_request_is_refused(
    make_project: Callable[..., Any],
    register: Callable[..., None],
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    start_worker: Callable[..., Any],
    wait_for_jobs: Callable[..., list[Any]],
    log_lines: Callable[[int], list[str]],
    status: Callable[[], dict[str, Any]],
    postgres_url: str,
) -> None:
    """Another session (a second installation, a person) holds the lock: the job waits.

    Within one installation a target has one pending job at a time, so the
    second request is refused with the first job's id instead of queueing a
    plan that would be stale by the time it ran.
    """
    project = make_project(
        [
            RevisionSpec(
                "a1", None, "slow accounts", upgrade_body=sleeping("accounts", "SELECT pg_sleep(1)")
            ),
            RevisionSpec("b2", "a1", "orders", table="orders"),
        ]
    )
    migrate_to(project, postgres_url, None)
    register(project, pg=postgres_url)
    lock = AdvisoryLock(postgres_url)
    outsider = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with outsider.connect() as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": lock._key()})
        first = cli_json("upgrade", "pg", "+1")["id"]
        start_worker(threads=2)
        wait_for_jobs(
            [first],
            timeout=30,
            until=lambda jobs: any("waiting for lock" in line for line in log_lines(first)),
        )
        refused = cli("upgrade", "pg", "+1", ok=False)
        assert refused.exit_code == 1
        assert f"job {first} is already pending for target pg" in refused.output
        connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": lock._key()})
    outsider.dispose()
    (job,) = wait_for_jobs([first], timeout=60)
    assert job.state == "succeeded", job.error
    assert job.result_revisions == ["a1"]
    second = cli_json("upgrade", "pg", "+1")["id"]
    (after,) = wait_for_jobs([second], timeout=60)
    assert after.state == "succeeded", after.error
    assert job.finished_at <= after.started_at
    assert not any("waiting for lock" in line for line in log_lines(second))
    assert version_of(postgres_url) == ["b2"]
    assert status()["pg"]["state"] == "up_to_date"


@pytest.mark.server
def test_mariadb_upgrade_holds_get_lock_while_it_runs(
    make_project: Callable[..., Any],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    wait_for_jobs: Callable[..., list[Any]],
    log_lines: Callable[[int], list[str]],
    load_job: Callable[[int], Any],
    mariadb_url: str,
) -> None:
    project = make_project(
        [
            RevisionSpec("a1", None, "create accounts", table="accounts"),
            RevisionSpec(
                "b2", "a1", "slow orders", upgrade_body=sleeping("orders", "SELECT SLEEP(2)")
            ),
        ]
    )
    migrate_to(project, mariadb_url, "a1")
    register(project, maria=mariadb_url)
    lock_name = AdvisoryLock(mariadb_url).name
    assert str(sa.make_url(mariadb_url).database) in lock_name
    job_id = cli_json("upgrade", "maria", "heads")["id"]
    observer = sa.create_engine(mariadb_url, poolclass=sa.pool.NullPool)

    worker = threading.Thread(target=run_queue)
    worker.start()
    try:
        wait_for_jobs(
            [job_id],
            timeout=30,
            until=lambda jobs: any(
                "Running upgrade a1 -> b2" in line for line in log_lines(jobs[0].id)
            ),
        )
        with observer.connect() as connection:
            holder = connection.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": lock_name})
            mine = connection.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
            held_by = holder.scalar()
            second_try = connection.execute(
                sa.text("SELECT GET_LOCK(:n, 0)"), {"n": lock_name}
            ).scalar()
    finally:
        worker.join(60)

    assert held_by is not None, "someone held the lock during the run"
    assert held_by != mine, "the worker's connection held it, not ours"
    assert second_try == 0, "a second GET_LOCK during the run must fail"
    job = load_job(job_id)
    assert job.state == "succeeded", job.error
    assert job.result_revisions == ["b2"]
    assert version_of(mariadb_url) == ["b2"]
    with observer.connect() as connection:
        assert (
            connection.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": lock_name}).scalar()
            is None
        ), "released afterwards"
    observer.dispose()
