"""The transport: Huey carries "run job N" and nothing else.

The embedded default is Huey on a SQLite file in the instance folder (no
server); ``MIGDASH_QUEUE_URL=redis://...`` runs the same code on Redis with
workers on any number of processes or machines.  The Huey instance is built
here from settings, on first use, and the single task is registered on it
then: nothing is bound at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey

from migdash.errors import ConfigError

TASK_NAME = "migdash.run_job"


def build_huey(queue_url: str | None, instance: str) -> Huey:
    """Huey for *queue_url* (``redis://``) or a SQLite file in *instance* (the default)."""
    if not queue_url:
        Path(instance).mkdir(parents=True, exist_ok=True)
        return SqliteHuey("migdash", filename=str(Path(instance) / "queue.db"), results=False)
    if queue_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("migdash", url=queue_url, results=False)
    if queue_url.startswith("sqlite:///"):
        return SqliteHuey("migdash", filename=queue_url.removeprefix("sqlite:///"), results=False)
    raise ConfigError(
        f"MIGDASH_QUEUE_URL={queue_url!r} is not a queue URL",
        hint="Use redis://host:6379/0, or leave it unset for the embedded SQLite queue.",
    )


class JobQueue:
    """Submits job ids; in a worker, runs them with the handler it was given."""

    def __init__(self, queue_url: str | None, instance: str) -> None:
        self._queue_url = queue_url
        self._instance = instance
        self._huey: Huey | None = None
        self._task: Any = None
        self.handler: Callable[[int], None] | None = None

    @property
    def huey(self) -> Huey:
        if self._huey is None:
            self._huey = build_huey(self._queue_url, self._instance)
            self._task = self._huey.task(retries=0, name=TASK_NAME)(self._run)
        return self._huey

    def submit(self, job_ids: Iterable[int], delay: float | None = None) -> None:
        """Enqueue "run job N" for each id (a duplicate is harmless: claims are compare-and-set)."""
        self.huey  # noqa: B018 - builds the task on first use
        for job_id in job_ids:
            if delay:
                self._task.schedule(args=(job_id,), delay=delay)
            else:
                self._task(job_id)

    def pending_count(self) -> int:
        return int(self.huey.pending_count())

    def _run(self, job_id: int) -> None:
        if self.handler is None:
            raise RuntimeError("this process has no job handler; run `migdash worker`")
        self.handler(job_id)
