"""The ``/api/v1`` shapes of the project actions, promotions and rollouts (``api_actions``).

Kept apart from :mod:`migdash.web.api_models` only for size; the same rules hold:
request text is bounded and holds no NUL, response models forbid extra members.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from migdash.web.api_models import (
    NO_NUL,
    Comment,
    Name,
    PlanHash,
    Request,
    Revision,
    Strict,
)

Message = Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL)]
Names = Annotated[list[Name], Field(max_length=50)]


# --- requests -------------------------------------------------------------------------------


class CreateMerge(Request):
    message: Message
    heads: list[Revision] | None = Field(
        None, max_length=50, description="The heads to merge (all of them when left out)"
    )


class CreateRevision(Request):
    message: Message
    head: Revision | None = Field(None, description="The parent (the single head when left out)")
    branch_label: Name | None = None
    depends_on: Annotated[str, StringConstraints(max_length=1000, pattern=NO_NUL)] | None = Field(
        None, description="Revisions it depends on, comma-separated"
    )


class PromotionQuery(Request):
    from_: Name = Field(alias="from", description="The environment whose revisions are promoted")
    to: Name = Field(description="The environment that receives them")


class RequestPromotion(Request):
    from_: Name = Field(alias="from", description="The environment whose revisions are promoted")
    to: Name = Field(description="The environment that receives them")
    fingerprint: PlanHash | None = Field(
        None, description="Refuse (409, nothing requested) unless the plans are still these"
    )


class CreateRollout(Request):
    project: Name
    revision: Revision
    environments: Names = Field(min_length=1)
    tags: Names = Field(default_factory=list, description="Only targets with every one of these")
    canary: int = Field(2, ge=0, le=10_000, description="Targets in the first wave")
    wave: int = Field(10, ge=1, le=10_000, description="Targets per wave after it")
    concurrency: int = Field(4, ge=1, le=1_000, description="Member jobs at once, at most")
    on_failure: Literal["halt", "continue"] = "halt"


class ApproveRollout(Request):
    comment: Comment | None = None
    fingerprint: PlanHash | None = Field(None, description="Refuse unless the plans are these")


class RejectRollout(Request):
    comment: Comment | None = None


# --- responses ------------------------------------------------------------------------------


class PromotionTarget(Strict):
    target: str
    state: str
    current: list[str]
    destination: str | None = Field(description="Where its upgrade goes; null: nothing lacked")
    lacks: list[str]
    keeps: list[str]
    steps: list[str]
    plan_hash: str | None
    problem: str | None


class PromotionOrder(Strict):
    rule: str
    previous: str | None
    out_of_order: list[str]
    refused: bool


class PromotionPlan(Strict):
    project: str
    source: str
    destination: str
    protected: bool
    required_approvals: int
    source_revisions: list[str]
    targets: list[PromotionTarget]
    order: PromotionOrder
    problems: list[str]
    fingerprint: str = Field(description="Send it back to request exactly these plans")


class PromotionNothingToDo(Strict):
    nothing_to_do: bool


class RolloutSummary(Strict):
    id: int
    project: str
    destination: str
    state: str
    requested_by: str
    requested_at: datetime


class WaveProgress(Strict):
    number: int
    name: str
    done: int
    running: int
    failed: int
    waiting: int
    cancelled: int
    targets: int


class RolloutMember(Strict):
    target: str
    environment: str
    wave: int
    state: str
    job_id: int | None
    jobs: int = Field(description="Jobs this member requested (a resume may add one)")
    error: str | None


class Rollout(Strict):
    id: int
    project: str
    destination: str
    environments: list[str]
    tags: list[str]
    canary: int
    wave_size: int
    concurrency: int
    on_failure: str
    state: str
    note: str | None
    requested_by: str
    required_approvals: int
    fingerprint: str
    eta_seconds: float | None
    waves: list[WaveProgress]
    members: list[RolloutMember]
    plans: list[Any] = Field(description="The distinct plans, with the targets sharing each")
