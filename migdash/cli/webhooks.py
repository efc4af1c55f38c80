"""``migdash webhook add|list|remove|deliveries``: the same functions as the /webhooks page.

Every command needs the admin role: a webhook's receiver and scope are
registry configuration, and its delivery log shows what was announced.
URLs are printed masked (scheme and host) and secrets never.
"""

from __future__ import annotations

import click

from migdash.cli.base import Actor, emit, json_option, main, requires, store
from migdash.jobs.webhooks import (
    WebhookFields,
    delivery_json,
    remove_webhook,
    save_webhook,
    webhook_json,
)
from migdash.permissions import Permission
from migdash.store.models import utcnow
from migdash.store.webhook_models import EVENTS
from migdash.store.webhooks import all_webhooks, deliveries_of, get_webhook


@main.group("webhook")
def webhook_group() -> None:
    """HTTP receivers of job, drift, heads and reachability events."""


@webhook_group.command("add")
@click.argument("name")
@click.option("--url", required=True, help="http(s) URL the events are POSTed to.")
@click.option(
    "--secret",
    prompt=True,
    hide_input=True,
    help="HMAC-SHA256 key of X-Migdash-Signature (16+ characters); prompted if not given.",
)
@click.option("--project", default=None, help="Only this project's events.")
@click.option("--env", "environment", default=None, help="Only this environment's events.")
@click.option("--format", "fmt", type=click.Choice(["json", "slack"]), default="json")
@click.option(
    "--event",
    "events",
    multiple=True,
    help=f"Subscribe to this event (repeat; default: all): {', '.join(EVENTS)}.",
)
@click.option(
    "--allow-private", is_flag=True, help="Allow a receiver on a loopback or private address."
)
@json_option
@requires(Permission.ADMIN)
def webhook_add(
    name: str,
    url: str,
    secret: str,
    project: str | None,
    environment: str | None,
    fmt: str,
    events: tuple[str, ...],
    allow_private: bool,
    as_json: bool,
    actor: Actor,
) -> None:
    """Add a webhook (its receiver's address is checked: no internal hosts unless allowed)."""
    fields = WebhookFields(
        name=name,
        url=url,
        secret=secret,
        project=project,
        environment=environment,
        format=fmt,
        events=events,
        allow_private=allow_private,
    )
    with store() as (session, _):
        hook = save_webhook(session, fields, actor=actor.name, role=actor.role, now=utcnow())
        session.commit()
        data = webhook_json(hook)
        emit(data, as_json, f"added webhook {hook.name} ({data['url']})")


@webhook_group.command("list")
@json_option
@requires(Permission.ADMIN)
def webhook_list(as_json: bool, actor: Actor) -> None:
    """Webhooks (URLs masked)."""
    with store() as (session, _):
        rows = [webhook_json(hook) for hook in all_webhooks(session)]
        emit(
            rows,
            as_json,
            "\n".join(
                f"{r['name']:<20} {r['url']:<40} {r['format']:<6} "
                f"{r['project'] or '*'}/{r['environment'] or '*'} {','.join(r['events'])}"
                for r in rows
            )
            or "no webhooks",
        )


@webhook_group.command("remove")
@click.argument("name")
@json_option
@requires(Permission.ADMIN)
def webhook_remove(name: str, as_json: bool, actor: Actor) -> None:
    """Remove a webhook and its delivery log."""
    with store() as (session, _):
        hook = get_webhook(session, name)
        remove_webhook(session, hook, actor=actor.name, role=actor.role, now=utcnow())
        session.commit()
    emit({"removed": name}, as_json, f"removed webhook {name}")


@webhook_group.command("deliveries")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@requires(Permission.ADMIN)
def webhook_deliveries(name: str, limit: int, as_json: bool, actor: Actor) -> None:
    """A webhook's deliveries, newest first, with every attempt."""
    with store() as (session, _):
        hook = get_webhook(session, name)
        rows = [delivery_json(d) for d in deliveries_of(session, hook.id, limit)]
    lines = []
    for row in rows:
        lines.append(f"{row['id']:>6} {row['event']:<24} {row['state']:<10} {row['created_at']}")
        lines.extend(
            f"         attempt {n}: {a['at']} status={a['status']} {a['error'] or ''}".rstrip()
            for n, a in enumerate(row["attempts"], 1)
        )
    emit(rows, as_json, "\n".join(lines) or "no deliveries")
