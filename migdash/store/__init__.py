"""migdash's own metadata database: projects, environments, targets, users, snapshots.

SQLAlchemy 2.0 models (``models``), the engine/session factory (``session``),
named writes (``registry``) and reads (``queries``).  The schema is created
and upgraded by the Alembic migrations in ``migrations/``: migdash oversees
itself too.
"""

from migdash.store import models, schema_models, webhook_models  # noqa: E402 - every table

__all__ = ["models", "schema_models", "webhook_models"]
