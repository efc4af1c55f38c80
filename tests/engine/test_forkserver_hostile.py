"""The fork server against children that misbehave and a parent that races it.

Children run project code, so they may print any bytes, leave processes
behind that hold their pipes, or outlive a timeout; and the parent may send a
request right behind a ``retire``.  None of it may hang a caller, kill an
unrelated running child, or leak a descriptor in a long-lived worker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap
import time
from pathlib import Path

import pytest

from migdash.engine.child import child_environment
from migdash.engine.launch import ForkServer, call_child, start_child
from tests.conftest import alive

HOSTILE = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    request = json.loads(sys.stdin.read() or "{}")
    if request.get("leave"):  # a process that inherits stdout and outlives this one
        left = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            start_new_session=request["leave"] == "session",
        )
        with open(request["pidfile"], "w") as pidfile:
            pidfile.write(str(left.pid))
    if request.get("bytes"):
        sys.stdout.buffer.write(bytes.fromhex(request["bytes"]))
        sys.stdout.flush()
    time.sleep(request.get("sleep", 0))
    if len(sys.argv) > 1 and request.get("result"):
        with open(sys.argv[1], "w") as result:
            json.dump({"ok": True}, result)
    raise SystemExit(request.get("exit", 0))
    """
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "hostile.py").write_text(HOSTILE)
    return tmp_path


def gone_soon(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


@pytest.mark.parametrize("leave", ["group", "session"])
def test_call_child_returns_by_its_timeout_though_a_process_it_left_holds_stdout(
    folder: Path, leave: str
) -> None:
    pidfile = folder / "left.pid"
    started = time.monotonic()
    request = {"leave": leave, "pidfile": str(pidfile), "sleep": 60}
    data, problem = call_child("hostile", request, cwd=folder, timeout=1)
    elapsed = time.monotonic() - started
    left = int(pidfile.read_text())
    try:
        assert data is None
        assert problem == "no result within 1 s"
        assert elapsed < 10, f"call_child waited {elapsed:.1f} s for a 1 s timeout"
        if leave == "group":
            assert gone_soon(left), "the timeout kills what the child started in its group"
    finally:
        if alive(left):
            os.kill(left, signal.SIGKILL)


def test_a_child_that_ended_leaves_nothing_running_that_holds_its_output(folder: Path) -> None:
    """The worker reads a job's output to end of file: a leftover must not hang it."""
    pidfile = folder / "left.pid"
    started = time.monotonic()
    with start_child("hostile", [], cwd=str(folder)) as child:
        child.stdin.write(json.dumps({"leave": "group", "pidfile": str(pidfile), "exit": 4}))
        child.stdin.close()
        lines = list(child.stdout)  # as the worker's _converse reads it
        code = child.wait(30)
    left = int(pidfile.read_text())
    try:
        assert code == 4
        assert lines == []
        assert time.monotonic() - started < 10, "end of file waited for the leftover"
        assert gone_soon(left), "the leftover outlived the child"
    finally:
        if alive(left):
            os.kill(left, signal.SIGKILL)


def test_output_that_is_not_utf8_is_reported_not_raised(folder: Path) -> None:
    request = {"bytes": "636166e9206f75747075740a", "exit": 2}  # b"caf\xe9 output\n"
    data, problem = call_child("hostile", request, cwd=folder, timeout=30)
    assert data is None
    assert problem == "exited with code 2: caf\ufffd output"
    with start_child("hostile", [], cwd=str(folder)) as child:
        child.stdin.write(json.dumps(request))
        child.stdin.close()
        assert list(child.stdout) == ["caf\ufffd output\n"]
        assert child.wait(30) == 2


def message(header: dict[str, object]) -> bytes:
    body = json.dumps(header).encode()
    return len(body).to_bytes(4, "big") + body


def send_request(server: ForkServer, folder: Path, request: dict[str, object]):
    """One raw request: the child's stdin gets *request*; returns its status pipe."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    status_r, status_w = os.pipe()
    header = {"module": "hostile", "args": [], "cwd": str(folder)}
    socket.send_fds(server.control, [message(header)], [stdin_r, stdout_w, status_w])
    for fd in (stdin_r, stdout_w, status_w):
        os.close(fd)
    os.write(stdin_w, json.dumps(request).encode())
    os.close(stdin_w)
    os.close(stdout_r)
    return os.fdopen(status_r, "rb")


def test_a_request_right_behind_a_retire_does_not_kill_the_running_children(
    folder: Path,
) -> None:
    """A thread that took the old server just before it was replaced may still send to it."""
    server = ForkServer(child_environment())
    try:
        running_child = send_request(server, folder, {"sleep": 1, "exit": 3})
        assert running_child.readline().strip().isdigit()
        os.kill(server.process.pid, signal.SIGSTOP)  # both messages wait in the socket
        server.control.sendall(message({"retire": True}))
        late = send_request(server, folder, {"exit": 5})
        os.kill(server.process.pid, signal.SIGCONT)
        with running_child, late:
            assert late.readline().strip().isdigit(), "the late request got its child"
            assert late.readline() == b"5\n"
            assert running_child.readline() == b"3\n", "the running child was killed"
        assert server.process.wait(30) == 0
    finally:
        server.process.kill()
        server.process.wait()
        server.control.close()


def test_children_leak_no_descriptor_in_a_long_lived_parent(folder: Path) -> None:
    call_child("hostile", {"result": True}, cwd=folder)  # the server is running
    before = sorted(os.listdir("/proc/self/fd"))
    for index in range(100):
        kind = index % 4
        if kind == 0:
            assert call_child("hostile", {"result": True}, cwd=folder)[0] == {"ok": True}
        elif kind == 1:
            assert call_child("no_such_module", {}, cwd=folder)[0] is None
        elif kind == 2:
            assert call_child("hostile", {"exit": 7}, cwd=folder)[1].startswith("exited")
        elif index % 20 == 3:
            assert call_child("hostile", {"sleep": 30}, cwd=folder, timeout=0.2)[0] is None
    assert sorted(os.listdir("/proc/self/fd")) == before
