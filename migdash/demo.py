"""Build the demo workspace: two real Alembic projects and SQLite targets at different revisions.

Used by ``migdash demo`` and by the end-to-end tests.  Targets are brought
to their revisions by running Alembic's own ``upgrade``, so what the
dashboard shows is what Alembic would see.  So that a newcomer sees every
comparison without writing anything: ``analytics`` has models (its env.py
sets ``target_metadata``) with one change no revision holds yet, and
``analytics-staging`` was changed by hand after its upgrade while
``analytics-qa`` sits at the same revision untouched; schema snapshots and
both drift checks are taken when the demo is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.jobs.context import JobServices
from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.store import registry
from migdash.store.models import Environment, Project, Role, Target, User, utcnow
from migdash.store.schema_models import SchemaSnapshot
from migdash.store.users import create_user

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - printed on purpose; the demo binds to 127.0.0.1
DEMO_APPROVER = "reviewer"
"""A second person, so a newcomer can try four-eyes approval of a prod job alone."""
DEMO_APPROVER_PASSWORD = "reviewer-password"  # noqa: S105 - as above

SHOP = [
    RevisionSpec("1a2b3c4d5e6f", None, "create customers table", table="customers"),
    RevisionSpec("2b3c4d5e6f70", "1a2b3c4d5e6f", "add orders table", table="orders"),
    RevisionSpec("3c4d5e6f7081", "2b3c4d5e6f70", "add products table", table="products"),
    RevisionSpec(
        "4d5e6f708192", "3c4d5e6f7081", "add invoices", table="invoices", branch_labels=("billing",)
    ),
    RevisionSpec("5e6f708192a3", "3c4d5e6f7081", "add shipments", table="shipments"),
    RevisionSpec("6f708192a3b4", "4d5e6f708192", "add invoice lines", table="invoice_lines"),
    RevisionSpec("708192a3b4c5", ("6f708192a3b4", "5e6f708192a3"), "merge billing and shipping"),
    RevisionSpec("8192a3b4c5d6", "708192a3b4c5", "add audit log", table="audit_log"),
]

ANALYTICS = [
    RevisionSpec("aa01", None, "create events table", table="events"),
    RevisionSpec("aa02", "aa01", "add sessions table", table="sessions"),
    RevisionSpec("aa03", "aa02", "add daily rollups", table="daily_rollups"),
    RevisionSpec("aa04", "aa03", "add funnels", table="funnels"),
]


ANALYTICS_MODELS = '''"""The analytics models: what the code expects the database to hold."""
import sqlalchemy as sa

metadata = sa.MetaData()
for name in ("sessions", "daily_rollups", "funnels"):
    sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True))
sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source", sa.String(50)),  # in the models, in no revision yet
)
'''

MODELS_IMPORT = """import importlib.util as _util
from pathlib import Path as _Path

_spec = _util.spec_from_file_location("analytics_models", _Path(__file__).with_name("models.py"))
_models = _util.module_from_spec(_spec)
_spec.loader.exec_module(_models)
target_metadata = _models.metadata
"""

HAND_CHANGE = "ALTER TABLE daily_rollups ADD COLUMN note VARCHAR(200)"
"""What somebody ran by hand on analytics-staging after its upgrade."""


def write_models(location: Path) -> None:
    """Give the analytics project models, and make its env.py compare against them."""
    (location / "models.py").write_text(ANALYTICS_MODELS)
    env_py = location / "env.py"
    env_py.write_text(env_py.read_text().replace("target_metadata = None\n", MODELS_IMPORT))


@dataclass(frozen=True)
class DemoTarget:
    name: str
    project: str
    environment: str
    at: str | None
    """Revision to upgrade to; None leaves the database without a version table."""
    url: str | None = None


def demo_targets(db_dir: Path) -> list[DemoTarget]:
    def sqlite(name: str) -> str:
        return f"sqlite:///{db_dir / (name + '.db')}"

    return [
        DemoTarget("shop-dev", "shop", "dev", "heads", sqlite("shop-dev")),
        DemoTarget("shop-staging", "shop", "staging", "6f708192a3b4", sqlite("shop-staging")),
        DemoTarget("shop-prod-eu", "shop", "prod", "3c4d5e6f7081", sqlite("shop-prod-eu")),
        DemoTarget("shop-prod-us", "shop", "prod", None, sqlite("shop-prod-us")),
        DemoTarget(
            "shop-prod-apac",
            "shop",
            "prod",
            None,
            "postgresql+psycopg://shop:demo-secret@127.0.0.1:1/shop",
        ),
        DemoTarget("analytics-dev", "analytics", "dev", "aa04", sqlite("analytics-dev")),
        DemoTarget(
            "analytics-staging", "analytics", "staging", "aa03", sqlite("analytics-staging")
        ),
        DemoTarget("analytics-qa", "analytics", "staging", "aa03", sqlite("analytics-qa")),
        DemoTarget("analytics-prod", "analytics", "prod", "aa02", sqlite("analytics-prod")),
    ]


def build_demo(session: Session, workspace: Path) -> list[DemoTarget]:
    """Write the projects and databases under *workspace* and register them (idempotent)."""
    projects = {"shop": SHOP, "analytics": ANALYTICS}
    db_dir = workspace / "databases"
    db_dir.mkdir(parents=True, exist_ok=True)
    for name, revisions in projects.items():
        location = workspace / "projects" / name
        if not location.exists():
            write_project(location, revisions)
            if name == "analytics":
                write_models(location)
        if session.scalar(sa.select(Project.id).where(Project.name == name)) is None:
            registry.add_project(session, name, str(location))
    for position, env in enumerate(("dev", "staging", "prod")):
        if session.scalar(sa.select(Environment.id).where(Environment.name == env)) is None:
            registry.add_environment(session, env, protected=env == "prod", position=position)
    targets = demo_targets(db_dir)
    for target in targets:
        if session.scalar(sa.select(Target.id).where(Target.name == target.name)) is not None:
            continue
        assert target.url is not None
        if target.url.startswith("sqlite"):
            migrate_database(workspace / "projects" / target.project, target.url, target.at)
            if target.name == "analytics-staging":
                change_by_hand(target.url)
        registry.add_target(
            session,
            target.name,
            project=target.project,
            environment=target.environment,
            url=target.url,
            tags=["demo", target.environment],
        )
    if session.scalar(sa.select(User.id).where(User.username == DEMO_USER)) is None:
        create_user(session, DEMO_USER, DEMO_PASSWORD, Role.ADMIN)
    if session.scalar(sa.select(User.id).where(User.username == DEMO_APPROVER)) is None:
        create_user(session, DEMO_APPROVER, DEMO_APPROVER_PASSWORD, Role.APPROVER)
    session.commit()
    return targets


def change_by_hand(url: str) -> None:
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:
        connection.exec_driver_sql(HAND_CHANGE)
    db_engine.dispose()


def observe_demo(session: Session, services: JobServices, settings: dict[str, Any]) -> int:
    """Snapshots and drift checks a newcomer can read at once (once per workspace).

    Returns how many targets were observed; 0 when the demo was observed before.
    """
    from migdash.jobs.drift import check_model_drift
    from migdash.jobs.reference import check_history_drift
    from migdash.jobs.reference_build import scratch_servers
    from migdash.jobs.schemas import take_schema_snapshot
    from migdash.status import refresh_status

    if session.scalar(sa.select(SchemaSnapshot.id).limit(1)) is not None:
        return 0
    targets = [
        t for t in session.scalars(sa.select(Target).order_by(Target.name)) if "sqlite" in t.url
    ]
    now = utcnow()
    reports = refresh_status(session, services.catalog, services.probes, targets)
    for target, report in zip(targets, reports, strict=True):
        if report.revisions_known and report.status.current:
            take_schema_snapshot(session, target, revisions=report.status.current, now=now)
        if target.project.name == "analytics" and report.status.current:
            check_model_drift(session, services, target, now)
            check_history_drift(session, services, target, now, scratch=scratch_servers(settings))
    session.commit()
    return len(targets)
