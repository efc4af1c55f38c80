"""The ledger project and the production layout, for the tests of several real workers.

``LEDGER``: each revision records in the target itself that it ran, so a
revision run twice on one target shows up there (and would fail, as its
table exists).  :func:`app` puts the metadata DB on PostgreSQL, as the
README's production layout does; a test module that wants it imports it
under that name.  :func:`assert_each_revision_ran_once` reads both records
back: the targets' own ``runs`` tables and migdash's applied revisions.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from migdash import create_app
from migdash.config import ensure_instance
from migdash.scaffold import RevisionSpec
from migdash.services import services_of
from migdash.store.schema_models import AppliedRevision

LEDGER = [
    RevisionSpec(
        "a1", None, "ledger", upgrade_body='op.execute("CREATE TABLE runs (revision TEXT)")'
    ),
    RevisionSpec(
        "b2",
        "a1",
        "orders",
        upgrade_body=(
            'op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True))\n'
            "op.execute(\"INSERT INTO runs VALUES ('b2')\")"
        ),
    ),
    RevisionSpec(
        "c3",
        "b2",
        "items",
        upgrade_body=(
            'op.create_table("items", sa.Column("id", sa.Integer, primary_key=True))\n'
            "op.execute(\"INSERT INTO runs VALUES ('c3')\")"
        ),
    ),
]
"""Each revision records that it ran in the target itself; running one twice would fail."""


@pytest.fixture
def app(tmp_path: Path, postgres_url: str) -> Iterator[Flask]:
    """The suite's app, with its metadata DB on PostgreSQL as in production."""
    ensure_instance(tmp_path / "instance")
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "instance"),
            "MIGDASH_DATABASE_URL": postgres_url,
            "MIGDASH_SECRET_KEY": "test-secret-key",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
        }
    )
    services_of(app).upgrade_schema()
    yield app
    services_of(app).probes.close()
    services_of(app).db_engine.dispose()


def assert_each_revision_ran_once(
    app: Flask, expected: dict[str, list[str]], urls: dict[str, str]
) -> None:
    """The targets themselves, and migdash's record of applied revisions, say: once each.

    *expected* is what each target should have run, in order; the last one is where it is now.
    """
    applied_by_migdash: Counter[tuple[int, str]] = Counter()
    with services_of(app).sessions() as session:
        for row in session.scalars(sa.select(AppliedRevision)):
            applied_by_migdash[(row.target_id, row.revision)] += 1
    assert set(applied_by_migdash.values()) == {1}
    assert len(applied_by_migdash) == sum(len(revisions) for revisions in expected.values())
    for name, url in urls.items():
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            ran = sorted(row[0] for row in db.execute("SELECT revision FROM runs"))
            (current,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        assert ran == sorted(expected[name]), (name, ran)
        assert current == expected[name][-1]
