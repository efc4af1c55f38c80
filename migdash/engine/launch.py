"""Start the children that run project code, forked from this process's fork server.

:func:`start_child` is ``subprocess.Popen([python, "-m", MODULE, *ARGS])``
at a few milliseconds instead of ~400: the child is forked from a
pre-imported template, :mod:`migdash.engine.forkserver`, that this process
starts once (with the scrubbed environment) and talks to over a socket.
The child's stdin and stdout are pipes this process holds, exactly as with
``Popen``; the fork server only ever sees their descriptors.

One fork server per process, started on first use and again when it died,
when :func:`~migdash.engine.child.child_environment` changed, or in a
forked copy of this process.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from migdash.engine.child import child_environment

HEADER_SIZE = 4


class ChildStartError(RuntimeError):
    """The fork server could not start a child (it died, or could not be started)."""


class ChildProcess:
    """A running child: ``stdin``/``stdout`` text pipes, ``wait()`` and ``kill()`` as in Popen."""

    def __init__(self, pid: int, stdin: IO[str], stdout: IO[str], status: IO[bytes]) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self._status = status
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (negative: killed by that signal); TimeoutError after *timeout* s."""
        if self.returncode is not None:
            return self.returncode
        if timeout is not None:
            ready, _, _ = select.select([self._status], [], [], timeout)
            if not ready:
                raise TimeoutError(f"child {self.pid} still running after {timeout:.0f} s")
        line = self._status.readline()
        # No line: the fork server died, and with it (SIGKILL) the child.
        self.returncode = int(line) if line.strip() else -signal.SIGKILL
        return self.returncode

    def kill(self) -> None:
        """SIGKILL it and whatever it started in its process group, unless it already ended.

        Once the server has reported its end, its id may belong to another process.
        """
        if self.returncode is None and not self._ended():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    def read_output(self) -> str:
        """Its output until end of file, or until it has ended and the pipe is empty."""
        return "".join(self.output_lines())

    def output_lines(self) -> Iterator[str]:
        """Its output line by line, until end of file or until it has ended and the pipe is empty.

        A process it left running in a session of its own may hold its stdout
        open for ever; what the child itself wrote is in the pipe before its
        end is reported.  Bytes that are not UTF-8 are replaced, not raised.
        """
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out = self.stdout.fileno()
        pending = ""
        while True:
            ready, _, _ = select.select([out, self._status.fileno()], [], [])
            chunk = os.read(out, 65536) if out in ready else b""
            if not chunk:
                break  # end of file, or only the status pipe: it ended, nothing is left
            *complete, pending = (pending + decoder.decode(chunk)).split("\n")
            yield from (f"{line}\n" for line in complete)
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending

    def _ended(self) -> bool:
        return bool(select.select([self._status], [], [], 0)[0])

    def close(self) -> None:
        for stream in (self.stdin, self.stdout, self._status):
            if not stream.closed:
                stream.close()

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class ForkServer:
    """This process's handle on one ``migdash.engine.forkserver`` process."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment
        self.owner = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
                [sys.executable, "-m", "migdash.engine.forkserver", str(theirs.fileno())],
                env=environment,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
            )
        except OSError as exc:
            ours.close()
            raise ChildStartError(f"the fork server could not be started: {exc}") from exc
        finally:
            theirs.close()
        self.control = ours
        self.lock = threading.Lock()

    def usable(self, environment: dict[str, str]) -> bool:
        return (
            self.owner == os.getpid()
            and self.environment == environment
            and self.process.poll() is None
        )

    def start(self, module: str, args: Sequence[str], cwd: str) -> ChildProcess:
        header = json.dumps({"module": module, "args": list(args), "cwd": cwd}).encode()
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            with self.lock:
                message = len(header).to_bytes(HEADER_SIZE, "big") + header
                sent = socket.send_fds(self.control, [message], [stdin_r, stdout_w, status_w])
                if sent < len(message):
                    self.control.sendall(message[sent:])
        except OSError as exc:
            for fd in (stdin_w, stdout_r, status_r):
                os.close(fd)
            raise ChildStartError(f"the fork server is gone: {exc}") from exc
        finally:
            for fd in (stdin_r, stdout_w, status_w):
                os.close(fd)
        status = os.fdopen(status_r, "rb", buffering=0)  # select() must see what is unread
        pid_line = status.readline()
        if not pid_line.strip():
            status.close()
            os.close(stdin_w)
            os.close(stdout_r)
            raise ChildStartError("the fork server died before starting the child")
        return ChildProcess(
            int(pid_line),
            os.fdopen(stdin_w, "w"),
            os.fdopen(stdout_r, "r", errors="replace"),  # project code may print any bytes
            status,
        )

    def retire(self) -> None:
        """Stop taking requests; the server exits once its running children have."""
        try:
            with self.lock:
                header = json.dumps({"retire": True}).encode()
                self.control.sendall(len(header).to_bytes(HEADER_SIZE, "big") + header)
        except OSError:
            self.process.kill()
        self.process.wait()  # the socket stays open until then: its end of file kills children
        self.control.close()


def call_child(
    module: str, payload: Any, *, cwd: str | Path | None = None, timeout: float = 60.0
) -> tuple[dict[str, Any] | None, str]:
    """Run ``python -m <module> RESULT`` with *payload* as JSON on stdin and wait.

    Returns the JSON the child wrote to RESULT (None if it wrote none) and,
    for the caller's error message, the last lines it printed.
    """
    folder = str(cwd) if cwd and Path(cwd).is_dir() else os.getcwd()
    with tempfile.TemporaryDirectory(prefix="migdash-child-") as scratch:
        result_file = Path(scratch) / "result.json"
        try:
            child = start_child(module, [str(result_file)], cwd=folder)
        except ChildStartError as exc:
            return None, str(exc)
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            child.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            with child:
                with contextlib.suppress(BrokenPipeError):  # it died first: its output says why
                    child.stdin.write(json.dumps(payload))
                    child.stdin.close()
                output = child.read_output()
                returncode = child.wait()
        finally:
            timer.cancel()
        if not result_file.exists():
            if expired.is_set():
                return None, f"no result within {timeout:.0f} s"
            tail = " | ".join(output.strip().splitlines()[-3:])
            return None, f"exited with code {returncode}: {tail}"
        data: dict[str, Any] = json.loads(result_file.read_text())
        return data, ""


_server: ForkServer | None = None
_server_lock = threading.Lock()


def start_child(module: str, args: Sequence[str], *, cwd: str) -> ChildProcess:
    """``python -m MODULE ARGS`` in *cwd*, with the scrubbed environment, forked from the server.

    A fork server that died is replaced once; a second failure, or a server
    that could not fork this child, raises :class:`ChildStartError`.
    """
    for attempt in (1, 2):
        server = _fork_server()
        try:
            return server.start(module, args, cwd)
        except ChildStartError:
            if server.process.poll() is None:
                raise  # the server lives (fork refused): its running children must go on
            _discard(server)
            if attempt == 2:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _fork_server() -> ForkServer:
    global _server
    environment = child_environment()
    with _server_lock:
        if _server is None or not _server.usable(environment):
            old, _server = _server, ForkServer(environment)
            if old is not None and old.owner == os.getpid():
                threading.Thread(target=old.retire, name="fork-server-retire", daemon=True).start()
        return _server


def _discard(server: ForkServer) -> None:
    global _server
    with _server_lock:
        if _server is server:
            _server = None
    server.process.kill()
    server.control.close()
    server.process.wait()


def _forget_after_fork() -> None:
    """A forked copy of this process starts its own server, and must not hold ours open."""
    global _server, _server_lock
    _server_lock = threading.Lock()
    if _server is not None:
        _server.control.close()
        _server = None


def _shut_down() -> None:
    """At exit: close the control socket (the server kills any child left) and reap it."""
    server = _server
    if server is not None and server.owner == os.getpid():
        server.control.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(5)


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_shut_down)
