"""``/metrics``: Prometheus text format, for any personal API token (the viewer role suffices).

Access is the API's: ``Authorization: Bearer <token>``, checked and
recorded (last use) as for ``/api/v1``, so a scraper is a named viewer
whose token can be revoked like any other (``migdash token create``), and no
extra secret or setting exists.  The values come from
:class:`migdash.jobs.metrics.MetadataCollector`, read at scrape time from
the metadata DB and the queue, so every web process answers the same.
"""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from migdash.jobs.metrics import MetadataCollector
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.web.api import authenticate, permission

bp = Blueprint("metrics", __name__)
bp.before_request(authenticate)

PUBLIC = frozenset({"metrics.metrics"})
"""Not behind the sign-in page: the token (checked above) is the way in."""


@bp.get("/metrics")
@permission(Permission.VIEW)
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetadataCollector(services_of().jobs))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
