"""Run one Alembic command against one target, with every line of output sent to a sink.

This is what the worker's child process executes (``migdash.jobs.runner``):
a project's ``env.py`` is arbitrary code, so it never runs inside the web or
worker process.  Commands go through ``alembic.command`` with a ``Config``
built here; the target's URL reaches ``env.py`` the way the project says
(``sqlalchemy.url``, an open connection in ``config.attributes``, or an
environment variable), and :func:`database_guard` refuses any statement sent
to a database other than the target, so an ``env.py`` that ignores all three
fails loudly instead of migrating the wrong database.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from alembic import autogenerate, command
from alembic.config import Config
from sqlalchemy.engine import URL, make_url

from migdash.engine.drift import compare_models
from migdash.engine.migrate import preview_plan, run_planned
from migdash.engine.planning import PlanChanged, PlannedStep
from migdash.engine.project import alembic_config
from migdash.engine.revision_files import (
    check_message,
    escape_for_literal,
    verified_revision_files,
)
from migdash.engine.scrub import mask_url, scrub_text, url_secrets
from migdash.errors import MigdashError, PlanRefused

Sink = Callable[[str], None]
URL_MODES = ("config", "connection", "env")
MUTATING = frozenset({"upgrade", "downgrade", "stamp"})
_STEP = re.compile(r"Running (upgrade|downgrade|stamp) (.*)$")


class WrongDatabase(MigdashError):
    """``env.py`` connected somewhere other than the target; nothing was run there."""

    hint = (
        "Make env.py use config.get_main_option('sqlalchemy.url'), the connection in "
        "config.attributes['connection'], or the project's URL environment variable, "
        "and set the project's URL mode to match."
    )


@dataclass(frozen=True)
class ActionSpec:
    """Everything the child process needs, as plain JSON-able data."""

    kind: str
    """upgrade, downgrade, stamp, merge, revision, plan (steps and offline SQL), or drift
    (the models against the target, as ``alembic check``: :mod:`migdash.engine.drift`)."""
    script_location: str
    url: str | None = None
    url_mode: str = "config"
    url_env_var: str | None = None
    revision: str | None = None
    """Destination (upgrade/downgrade/stamp/sql) or the head to build on (revision)."""
    direction: str = "upgrade"
    """plan only: the action being planned (upgrade, downgrade or stamp)."""
    purge: bool = False
    message: str | None = None
    heads: tuple[str, ...] = ()
    branch_label: str | None = None
    depends_on: tuple[str, ...] = ()
    autogenerate: bool = False
    preview: bool = False
    """revision --autogenerate only: report the detected operations, write nothing."""
    current: tuple[str, ...] = ()
    """plan only: the target's revisions as probed just now (the plan starts there)."""
    expected_steps: tuple[PlannedStep, ...] | None = None
    """upgrade/downgrade/stamp: the approved plan; Alembic's steps must equal it or nothing runs."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.expected_steps is not None:
            data["expected_steps"] = [s.to_json() for s in self.expected_steps]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionSpec:
        data = dict(data)
        data["heads"] = tuple(data.get("heads") or ())
        data["depends_on"] = tuple(data.get("depends_on") or ())
        data["current"] = tuple(data.get("current") or ())
        if data.get("expected_steps") is not None:
            data["expected_steps"] = tuple(PlannedStep.from_json(s) for s in data["expected_steps"])
        return cls(**data)


@dataclass(frozen=True)
class StepTiming:
    step: str
    seconds: float


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    error: str | None = None
    traceback: str | None = None
    failed_step: str | None = None
    steps: tuple[StepTiming, ...] = ()
    sql: str | None = None
    new_file: str | None = None
    operations: str | None = None
    """revision --autogenerate: the detected operations, rendered as Python."""
    plan: dict[str, Any] | None = None
    """plan: steps, env.py digest, offline SQL (or why there is none)."""
    refused: bool = False
    """The run was refused before its first step (the plan changed, or Alembic refused it)."""
    applied: list[dict[str, str]] | None = None
    """upgrade: each revision applied, with its file's text as it ran."""
    drift: dict[str, Any] | None = None
    """drift: what :func:`migdash.engine.drift.compare_models` found."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionResult:
        data = dict(data)
        data["steps"] = tuple(StepTiming(**s) for s in data.get("steps") or ())
        return cls(**data)


@dataclass
class StepClock:
    """Times each revision step from the ``Running upgrade a -> b`` lines Alembic logs.

    Works on plain text lines, so the worker can time a child process's
    output whether Alembic's log went through migdash's handler or through
    a ``fileConfig`` console handler set up by ``env.py``.
    """

    sink: Sink
    steps: list[StepTiming] = field(default_factory=list)
    current: str | None = None
    started: float = 0.0

    def line(self, text: str) -> None:
        match = _STEP.search(text)
        if match:
            self.finish()
            self.current, self.started = f"{match.group(1)} {match.group(2)}", time.monotonic()
        self.sink(text)

    def finish(self) -> None:
        if self.current is not None:
            self.steps.append(StepTiming(self.current, round(time.monotonic() - self.started, 3)))
            self.sink(f"  step took {self.steps[-1].seconds:.3f} s")
            self.current = None


def run_action(spec: ActionSpec, sink: Sink, *, capture_log: bool = True) -> ActionResult:
    """Run *spec*; failures come back as ``ActionResult(ok=False)`` with a scrubbed traceback.

    With *capture_log*, Alembic's log lines ("Running upgrade a -> b") are
    sent to *sink* too; the child process turns it off because its own
    logging already writes them to stdout.
    """
    secrets = url_secrets(spec.url) if spec.url else []
    clock = StepClock(lambda text: sink(scrub_text(text, secrets)))
    handler = _LineHandler(clock.line)
    alembic_log = logging.getLogger("alembic")
    if capture_log:
        alembic_log.addHandler(handler)
    alembic_log.setLevel(logging.INFO)
    try:
        result = _dispatch(spec, clock)
        clock.finish()
        return ActionResult(ok=True, steps=tuple(clock.steps), **result)
    except (PlanChanged, PlanRefused) as exc:
        sink(f"REFUSED: {scrub_text(exc.message, secrets)}")
        return ActionResult(
            ok=False,
            error=scrub_text(exc.message, secrets),
            refused=True,
            steps=tuple(clock.steps),
        )
    except Exception as exc:  # noqa: BLE001 - any failure in user code becomes a failed job
        failed = clock.current
        clock.current = None
        message = scrub_text(f"{type(exc).__name__}: {exc}", secrets)
        sink(f"FAILED: {message}")
        return ActionResult(
            ok=False,
            error=message,
            traceback=scrub_text(traceback.format_exc(), secrets),
            failed_step=failed,
            steps=tuple(clock.steps),
        )
    finally:
        alembic_log.removeHandler(handler)


def _dispatch(spec: ActionSpec, clock: StepClock) -> dict[str, Any]:
    stdout = _LineStream(clock.line)
    if spec.kind == "merge":
        config = _config(spec, stdout)
        message = check_message(spec.message)
        with verified_revision_files(message):
            script = command.merge(
                config,
                list(spec.heads),
                message=escape_for_literal(message),
                branch_label=spec.branch_label,
            )
        return {"new_file": str(script.path) if script else None}
    if spec.kind == "revision":
        return _revision(spec, stdout)
    if spec.kind == "plan":
        config = _config(spec, stdout)
        plan = preview_plan(
            config, spec.direction, spec.revision or "heads", spec.current, purge=spec.purge
        )
        return {"plan": plan}
    if spec.kind == "drift":
        with _target_connection(spec) as connection, database_guard(spec.url):
            return {"drift": compare_models(_config(spec, stdout, connection))}
    if spec.kind not in MUTATING:
        raise MigdashError(f"unknown action {spec.kind!r}")
    with _target_connection(spec) as connection, database_guard(spec.url):
        config = _config(spec, stdout, connection)
        applied = run_planned(
            config,
            spec.kind,
            spec.revision or ("-1" if spec.kind == "downgrade" else "heads"),
            spec.expected_steps,
            purge=spec.purge,
        )
    return {"applied": applied}


def _revision(spec: ActionSpec, stdout: _LineStream) -> dict[str, Any]:
    captured: dict[str, Any] = {}

    def capture(context: Any, revision: Any, directives: list[Any]) -> None:
        script = directives[0]
        if spec.autogenerate:
            upgrade_ops = (
                script.upgrade_ops_list[-1]
                if hasattr(script, "upgrade_ops_list")
                else script.upgrade_ops
            )
            captured["empty"] = upgrade_ops.is_empty()
            captured["operations"] = autogenerate.render_python_code(upgrade_ops)
        if spec.preview:
            directives[:] = []

    message = check_message(spec.message)
    guard = database_guard(spec.url) if spec.autogenerate else nullcontext()
    with (
        _target_connection(spec) if spec.autogenerate else nullcontext() as connection,
        guard,
        verified_revision_files(message),
    ):
        config = _config(spec, stdout, connection)
        result = command.revision(
            config,
            message=escape_for_literal(message),
            autogenerate=spec.autogenerate,
            head=spec.revision or "head",
            branch_label=spec.branch_label,
            depends_on=cast(Any, list(spec.depends_on) or None),  # Alembic takes a list too
            process_revision_directives=capture,
        )
    scripts = result if isinstance(result, list) else [result]
    new_file = next((str(s.path) for s in scripts if s is not None), None)
    return {
        "new_file": None if spec.preview else new_file,
        "operations": captured.get("operations"),
    }


def _config(
    spec: ActionSpec,
    stdout: Any,
    connection: sa.Connection | None = None,
    output_buffer: io.StringIO | None = None,
) -> Config:
    config = alembic_config(spec.script_location)  # a folder, or an alembic.ini read as the CLI
    config.stdout, config.output_buffer = stdout, output_buffer
    if spec.url:
        if spec.url_mode == "env":
            if not spec.url_env_var:
                raise MigdashError("the project's URL mode is 'env' but no variable is named")
            os.environ[spec.url_env_var] = spec.url
        config.set_main_option("sqlalchemy.url", spec.url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _target_connection(spec: ActionSpec) -> Iterator[sa.Connection | None]:
    """An open connection for ``connection`` mode (committed at the end), else None."""
    if spec.url_mode != "connection" or not spec.url:
        yield None
        return
    db_engine = sa.create_engine(spec.url, poolclass=sa.pool.NullPool)
    try:
        with db_engine.begin() as connection:
            yield connection
    finally:
        db_engine.dispose()


def same_database(url: URL | str, target: URL | str) -> bool:
    """True when two URLs name the same database (driver and credentials aside)."""
    a, b = (
        make_url(str(url)) if isinstance(url, str) else url,
        make_url(str(target)) if isinstance(target, str) else target,
    )
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        return _sqlite_path(a.database) == _sqlite_path(b.database)
    return (a.host or "localhost", a.port, a.database) == (
        b.host or "localhost",
        b.port,
        b.database,
    )


def _sqlite_path(database: str | None) -> str:
    if not database or database == ":memory:":
        return ":memory:"
    path = database.removeprefix("file:").split("?", 1)[0]
    return str(Path(path).resolve())


@contextmanager
def database_guard(url: str | None) -> Iterator[None]:
    """Refuse every statement sent to a database other than *url* while the block runs."""
    if not url:
        yield
        return
    target = make_url(url)

    def check(conn: sa.Connection, *_args: Any) -> None:
        if not same_database(conn.engine.url, target):
            raise WrongDatabase(
                f"env.py connected to {mask_url(str(conn.engine.url))}, not the target "
                f"{mask_url(url)}; nothing was run"
            )

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", check)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", check)


class _LineStream(io.TextIOBase):
    """A text stream that hands each complete line to a callback (for ``Config(stdout=...)``)."""

    def __init__(self, on_line: Sink) -> None:
        self._on_line = on_line
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._on_line(line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._on_line(self._partial)
            self._partial = ""


class _LineHandler(logging.Handler):
    def __init__(self, on_line: Sink) -> None:
        super().__init__(logging.INFO)
        self._on_line = on_line

    def emit(self, record: logging.LogRecord) -> None:
        self._on_line(record.getMessage())


_GET_BIND = re.compile(r"get_bind\s*\(|\.bind\b|get_context\s*\(\s*\)\s*\.\s*connection")


def offline_hazards(paths: dict[str, str]) -> dict[str, str]:
    """Revisions whose source reads through a live connection, which offline SQL cannot show.

    *paths* maps revision id to file; the result maps revision id to the reason.
    """
    found = {}
    for revision, path in paths.items():
        text = Path(path).read_text(errors="replace")
        if _GET_BIND.search(text):
            found[revision] = (
                "uses op.get_bind() (reads or writes through a live connection); the offline "
                "script cannot show what it will do"
            )
    return found
