"""migdash's own metadata database: projects, environments, targets, users, snapshots.

SQLAlchemy 2.0 models (``models``), the engine/session factory (``session``),
named writes (``registry``) and reads (``queries``).  The schema is created
and upgraded by the Alembic migrations in ``migrations/``: migdash oversees
itself too.
"""

from migdash.store import (  # noqa: E402 - every table on Base.metadata
    models,
    rollout_models,
    schema_models,
    webhook_models,
)

__all__ = ["models", "rollout_models", "schema_models", "webhook_models"]
