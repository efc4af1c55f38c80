"""Template globals and filters: state colours, short ids, masked URLs."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

from migdash.engine.scrub import mask_url

STATE_LABELS = {
    "up_to_date": "up to date",
    "behind": "behind",
    "unknown_revision": "unknown revision",
    "diverged": "diverged",
    "uninitialised": "uninitialised",
    "unreachable": "unreachable",
    "broken_project": "broken project",
    "not_probed": "not probed yet",
    "busy": "busy",
    "failed": "failed",
}


def short_rev(revision: str | None) -> str:
    return (revision or "")[:12]


def ago(moment: datetime | None) -> str:
    """A compact age ("12 s ago") for snapshot times stored as naive UTC."""
    if moment is None:
        return "never"
    seconds = int((datetime.now(UTC).replace(tzinfo=None) - moment).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def register_templating(app: Flask) -> None:
    app.jinja_env.filters["short"] = short_rev
    app.jinja_env.filters["masked"] = mask_url
    app.jinja_env.filters["ago"] = ago
    app.jinja_env.globals["STATE_LABELS"] = STATE_LABELS
