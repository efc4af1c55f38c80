"""The ``/api/v1`` shapes, declared once: spectree validates requests and responses with
them and builds the OpenAPI document from them, so the document cannot drift from the routes.

Response models forbid extra members (``additionalProperties: false``): a route
that starts answering a field the document does not list fails its own response
validation (and the schemathesis test), instead of growing an undocumented API.
Request text may not hold a NUL character (PostgreSQL refuses it in any query)
and is bounded by the column it ends up in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from migdash.engine.state import TargetState
from migdash.store.models import JobState
from migdash.web.inputs import MAX_ID

NO_NUL = r"^[^\x00]*$"


Name = Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL)]
Action = Annotated[str, StringConstraints(max_length=50, pattern=NO_NUL)]
Revision = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]
PlanHash = Annotated[str, StringConstraints(max_length=64, pattern=NO_NUL)]
Comment = Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL)]
"""Request text is bounded by the column it ends up in, and holds no NUL."""
Id = Annotated[int, Field(ge=0, le=MAX_ID)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Request(BaseModel):
    """Unknown members are ignored, as the API always did; known ones are checked strictly."""

    model_config = ConfigDict(extra="ignore")


# --- errors ---------------------------------------------------------------------------------


class ErrorDetail(Strict):
    code: str = Field(description="Stable, machine-readable: invalid_input, not_found, ...")
    message: str
    hint: str
    field: str | None = Field(None, description="The request field at fault (invalid_input)")
    job: int | None = Field(None, description="The job the error is about, when there is one")


class ErrorBody(Strict):
    """Every error the API answers, whatever its status."""

    error: ErrorDetail


# --- requests -------------------------------------------------------------------------------


class StatusQuery(Request):
    project: Name | None = None
    environment: Name | None = None
    env: Name | None = Field(None, description="Same as environment (older spelling)")
    tag: Name | None = None
    state: TargetState | None = None
    probe: bool = Field(False, description="Probe the targets now instead of the cached status")


class TargetsQuery(Request):
    project: Name | None = None
    environment: Name | None = None
    tag: Name | None = None


class JobsQuery(Request):
    state: Name | None = None
    project: Name | None = None
    target: Name | None = None
    limit: int = Field(100, ge=1, le=1000)


class LogQuery(Request):
    after: Id = Field(0, description="Only log lines with an id above this one")


class PageQuery(Request):
    page: int = Field(1, ge=1, le=1_000_000)
    n: int = Field(50, ge=1, le=500, description="Entries per page")


class AuditQuery(Request):
    actor: Name | None = None
    action: Action | None = None
    target: Name | None = None
    project: Name | None = None
    since: datetime | None = None
    before: Id | None = Field(None, description="Only events older than this id (next page)")
    limit: int = Field(100, ge=1, le=1000)


class CompareQuery(Request):
    a: Name | None = Field(None, description="Environment a (with b)")
    b: Name | None = Field(None, description="Environment b (with a)")
    target_a: Name | None = Field(None, description="Target a (with target_b)")
    target_b: Name | None = Field(None, description="Target b (with target_a)")


class DiffQuery(Request):
    left: Name
    right: Name


class CreateJob(Request):
    target: Name
    action: Annotated[str, StringConstraints(max_length=20, pattern=NO_NUL)] = Field(
        description="upgrade, downgrade or stamp"
    )
    revision: Revision
    purge: StrictBool = False
    plan_hash: PlanHash | None = Field(None, description="Refuse unless the plan is this one")
    not_before: datetime | None = Field(
        None, description="Do not start before this time (ISO-8601; no offset means UTC)"
    )


class Approve(Request):
    comment: Comment | None = None
    plan_hash: PlanHash | None = Field(None, description="The plan reviewed (required)")


class Reject(Request):
    comment: Comment | None = None


# --- responses ------------------------------------------------------------------------------


class TargetStatus(Strict):
    project: str
    environment: str
    target: str
    state: TargetState
    current: list[str] | None = Field(description="null where the database has not told us")
    heads: list[str]
    pending: list[str] | None = Field(description="null where it cannot be known")
    error: str | None
    checked_at: datetime | None


class CheckQuery(Request):
    project: Name | None = None
    env: Name | None = Field(None, description="An environment")
    probe: bool = Field(False, description="Probe the targets now instead of the cached status")


class DriftFacts(Strict):
    outcome: str
    summary: str
    checked_at: str


class CheckTarget(TargetStatus):
    drift: dict[str, DriftFacts | None] = Field(
        description="The latest check of each kind (models, history), null when never run"
    )


class CheckProject(Strict):
    project: str
    heads: list[str] | None = Field(description="null when the project cannot be loaded")
    error: str | None


class CheckFacts(Strict):
    """What ``migdash check --server`` judges."""

    checked_at: str
    probed: bool
    project: str | None
    environment: str | None
    projects: list[CheckProject]
    targets: list[CheckTarget]


class TargetInfo(Strict):
    target: str
    project: str
    environment: str
    url: str = Field(description="Masked: never a password")
    tags: list[str]


class TargetDetail(TargetInfo):
    status: TargetStatus


class Job(Strict):
    id: int
    kind: str
    project: str
    target: str | None
    arguments: dict[str, Any]
    state: JobState
    note: str | None
    requested_by: str
    requested_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    from_revisions: list[str] | None
    planned_steps: list[str]
    result_revisions: list[str] | None
    failed_step: str | None
    error: str | None
    output: dict[str, Any] | None
    plan_hash: str | None
    not_before: datetime | None = Field(description="Asked for at request: not to start before")
    scheduled_for: datetime | None = Field(
        description="While scheduled: when it starts (window opening or not_before)"
    )


class NothingToDo(Strict):
    job: None
    nothing_to_do: bool
    target: str


class Decision(Job):
    approvals: int
    required_approvals: int


class JobPlan(Strict):
    job: int
    plan_hash: str
    current: list[str]
    steps: list[str]
    sql: str | None
    sql_error: str | None
    warnings: list[str]


class LogLine(Strict):
    id: int
    at: datetime
    line: str


class RevisionEntry(Strict):
    revision: str
    down_revisions: list[str]
    branch_labels: list[str]
    depends_on: list[str]
    message: str
    is_head: bool
    is_branch_point: bool
    is_merge: bool


class RevisionDetail(RevisionEntry):
    doc: str
    children: list[str]
    source: str | None


class ProjectInfo(Strict):
    name: str
    heads: list[str] | None = Field(description="null when the project cannot be loaded")
    multiple_heads: bool
    problem: str | None


class History(Strict):
    project: str
    page: int
    pages: int
    n: int
    total: int
    revisions: list[RevisionEntry]


class GraphRevision(Strict):
    revision: str
    down_revisions: list[str]
    depends_on: list[str]
    branch_labels: list[str]
    message: str


class Graph(Strict):
    heads: list[str]
    bases: list[str]
    branch_points: list[str]
    merge_points: list[str]
    revisions: list[GraphRevision]


class AuditEvent(Strict):
    id: int
    at: datetime
    actor: str
    action: str
    project: str | None
    environment: str | None
    target: str | None
    job_id: int | None
    from_revisions: list[str] | None
    to_revision: str | None
    sql_hash: str | None
    detail: dict[str, Any]
    ip: str | None


class Side(Strict):
    kind: str
    name: str
    revisions: list[str]
    agree: bool
    targets: list[TargetStatus]
    unknown: list[str]


class Lacked(Strict):
    revision: str
    message: str
    lacked_by: list[str]


class Comparison(Strict):
    project: str
    a: Side
    b: Side
    a_lacks: list[Lacked]
    b_lacks: list[Lacked]
    same: bool
    problem: str | None
    notes: list[str]


class DiffSide(Strict):
    target: str
    dialect: str
    fingerprint: str


class DiffItem(Strict):
    change: str
    kind: str
    table: str | None
    name: str
    detail: str
    cosmetic: bool
    before: Any = None
    after: Any = None


class SchemaDiff(Strict):
    left: DiffSide
    right: DiffSide
    same: bool
    summary: str
    real_count: int
    cosmetic_count: int
    items: list[DiffItem]


class OpenAPIDocument(BaseModel):
    """This document (OpenAPI 3.1)."""

    model_config = ConfigDict(extra="allow")
    openapi: str
