"""Build the demo workspace: two real Alembic projects and SQLite targets at different revisions.

Used by ``migdash demo`` and by the end-to-end tests.  Targets are brought
to their revisions by running Alembic's own ``upgrade``, so what the
dashboard shows is what Alembic would see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.store import registry
from migdash.store.models import Environment, Project, Role, Target, User
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
