"""The fork server: a key-less template process that forks each child running project code.

Starting ``python -m migdash.jobs.runner`` costs ~400 ms, nearly all of it
importing Alembic, SQLAlchemy and the drivers; the migration itself often
takes a few milliseconds.  This process pays the imports once and forks a
child per request, which then behaves as ``python -m MODULE ARGS`` started in
the requested folder would.

What keeps it as safe as a fresh interpreter:

* it is started with :func:`~migdash.engine.child.child_environment` (no
  ``MIGDASH_*`` variable: no key, no metadata DB URL) and inherits no file
  descriptor but its control socket;
* it never runs project code itself and never sees a target URL: the URL
  travels on the child's stdin pipe, straight from the parent to the child;
* every child is forked from the same pristine state, so nothing one
  project's ``env.py`` does reaches the next child;
* it has no threads (fork is safe), and when its parent dies (the control
  socket reaches end of file) it kills its children and exits, and each
  child is SIGKILLed by the kernel if the fork server itself dies.

Protocol (:mod:`migdash.engine.launch` is the other side): each request is a
length-prefixed JSON header ``{"module", "args", "cwd"}`` sent with three
file descriptors: the child's stdin, its stdout (stderr joins it) and a
status pipe on which this process writes the child's pid, and later its
exit code, one line each.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import json
import logging
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from migdash.engine.child import die_with_parent, protect_process_memory

PRELOAD = (
    "logging.config",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "sqlalchemy.dialects.postgresql.psycopg2",
    "sqlalchemy.dialects.mysql.pymysql",
    "sqlalchemy.dialects.mysql.mysqldb",
    "psycopg",
    "pymysql",
    "mako.template",
    "alembic.command",
    "alembic.config",
    "alembic.script",
    "alembic.runtime.migration",
    "alembic.runtime.environment",
    "alembic.operations",
    "alembic.autogenerate",
    "alembic.ddl.sqlite",
    "alembic.ddl.postgresql",
    "alembic.ddl.mysql",
    "migdash.engine.actions",
    "migdash.engine.graph",
)
"""Imported once here, so children start with them; a missing optional driver is skipped.

Not the modules children run as ``__main__`` (``migdash.jobs.runner``,
``migdash.engine.loader``): runpy warns when one is already imported.
"""

HEADER = struct.Struct("!I")
MAX_HEADER = 1 << 20
FDS_PER_REQUEST = 3
PR_SET_NAME = 15


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    warm_up()


def warm_up() -> None:
    """Run one upgrade of migdash's own two-revision scaffold on a scratch SQLite file.

    What Alembic and SQLAlchemy set up lazily on their first use (caches,
    late imports) is then set up here, once, rather than in every child.
    Only migdash's own template code runs; a failure here only costs speed.
    """
    with contextlib.suppress(Exception), tempfile.TemporaryDirectory() as scratch:
        from migdash.engine.actions import ActionSpec, run_action
        from migdash.scaffold import RevisionSpec, write_project

        project = write_project(
            Path(scratch) / "warm-up",
            [RevisionSpec("w1", None, "one", table="one"), RevisionSpec("w2", "w1", "two")],
        )
        spec = ActionSpec(
            kind="upgrade",
            script_location=str(project),
            url=f"sqlite:///{Path(scratch) / 'warm-up.db'}",
            revision="heads",
        )
        run_action(spec, lambda _line: None, capture_log=False)
    logging.getLogger("alembic").setLevel(logging.NOTSET)  # as a fresh interpreter has it


def read_request(control: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One request and its descriptors, or None at end of file (the parent is gone).

    Reads exactly one request: a stream socket may hold the next one right
    behind it (a request sent just after ``retire``), and a first read of up
    to 64 KiB took its bytes and descriptors too.
    """
    data, fds, _flags, _addr = socket.recv_fds(control, HEADER.size, FDS_PER_REQUEST)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    while len(data) < HEADER.size:
        data += _recv_more(control, HEADER.size - len(data))
    (length,) = HEADER.unpack_from(data)
    if length > MAX_HEADER:
        raise ValueError(f"request header of {length} bytes")
    body = data[HEADER.size :]
    while len(body) < length:
        body += _recv_more(control, length - len(body))
    return json.loads(body.decode("utf-8")), fds


def _recv_more(control: socket.socket, size: int) -> bytes:
    chunk = control.recv(size)
    if not chunk:
        raise EOFError("the parent closed the control socket mid-request")
    return chunk


def run_child(request: dict[str, Any], fds: list[int], server_pid: int) -> int:
    """In the forked child: become ``python -m MODULE ARGS`` in CWD; return the exit code."""
    stdin, stdout, _status = fds
    os.setpgid(0, 0)  # its own process group: killing the group reaches what it started
    die_with_parent(server_pid)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.dup2(stdout, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
    _name_process(f"migdash-{request['module'].rsplit('.', 1)[-1]}")
    os.chdir(request["cwd"])
    sys.path[0] = os.getcwd()  # as ``python -m`` started here would have it
    sys.argv = [request["module"], *request["args"]]
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:  # noqa: BLE001 - reported as a fresh interpreter would
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


def _name_process(name: str) -> None:
    """Linux: what ``ps -o comm`` shows (the command line stays the fork server's)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15])


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def serve(control: socket.socket) -> None:
    """Fork a child per request until the parent goes away; then kill the children and exit.

    A ``{"retire": true}`` request (the parent's environment changed) ends
    it gently instead: no more children, exit when the running ones have.
    """
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, "control")
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    children: dict[int, int] = {}  # pid -> status descriptor
    server_pid = os.getpid()
    retiring = False
    try:
        while not (retiring and not children):
            for key, _events in selector.select():
                if key.data == "wake":
                    os.read(wake_read, 4096)
                    continue
                request = read_request(control)
                if request is None:
                    return
                if request[0].get("retire"):
                    retiring = True
                    continue
                pid = _fork(*request, server_pid=server_pid)
                if pid is not None:
                    children[pid] = request[1][2]
            _reap(children)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _fork(request: dict[str, Any], fds: list[int], *, server_pid: int) -> int | None:
    """The child's pid; None when the kernel refused the fork (e.g. EAGAIN).

    A refused fork fails that one request (its caller reads end of file on
    the status pipe); the children already running go on.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:
        for fd in fds:
            os.close(fd)
        return None
    if pid == 0:  # never return into the server's loop, whatever happens
        code = 1
        try:
            code = run_child(request, fds, server_pid)
        except BaseException:  # noqa: BLE001 - e.g. its folder is gone: say so on its stdout
            with contextlib.suppress(BaseException):
                traceback.print_exc()
                sys.stderr.flush()
        finally:
            os._exit(code)
    with contextlib.suppress(OSError):  # also here, so the group exists once its pid is sent
        os.setpgid(pid, pid)
    os.close(fds[0])
    os.close(fds[1])
    _write_line(fds[2], str(pid))
    return pid


def _reap(children: dict[int, int]) -> None:
    """Report each ended child, after killing what it left running in its process group.

    A process it started could hold its stdout open, and its caller would
    wait for end of file forever.  The group is killed while the child is
    still a zombie (WNOWAIT), so its id cannot have been reused.
    """
    for pid in list(children):
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _done, status = os.waitpid(pid, 0)
        _write_line(children[pid], str(os.waitstatus_to_exitcode(status)))
        os.close(children.pop(pid))


def _write_line(fd: int, text: str) -> None:
    with contextlib.suppress(BrokenPipeError):
        os.write(fd, f"{text}\n".encode())


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[1]))
    protect_process_memory()  # inherited by every child: siblings cannot read each other's URL
    preload()
    serve(control)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
