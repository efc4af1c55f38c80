"""The fork server: children that behave as ``python -m`` would, hold no key, and die with us.

Every child that runs project code (jobs, plans, graph loads) is forked from
``migdash.engine.forkserver``.  These tests hold it to what a fresh
interpreter gave: the module runs as ``__main__`` with its argv, in its
folder, with stdin and stdout piped and the exit code reported; nothing one
child does reaches the next; no ``MIGDASH_*`` variable and no stray file
descriptor reaches the server or a child; and when this process dies, the
server and its children die too.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migdash.engine import launch
from migdash.engine.launch import call_child, start_child
from tests.conftest import alive

PROBE_MODULE = "forkprobe"
PROBE = '''
"""Reports what a child sees, then does what stdin asks."""
import json, logging, os, sys

request = json.loads(sys.stdin.read() or "{}")
seen = {
    "logging": [len(logging.getLogger().handlers), logging.getLogger("alembic").level],
    "alembic_modules": sorted(m for m in sys.modules if m.startswith("alembic.runtime")),
    "name": __name__,
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "pid": os.getpid(),
    "ppid": os.getppid(),
    "env": sorted(os.environ),
    "leftover": getattr(sys, "forkprobe_leftover", None),
    "environ_leftover": os.environ.get("FORKPROBE_LEFTOVER"),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
}
sys.forkprobe_leftover = "set by an earlier child"
os.environ["FORKPROBE_LEFTOVER"] = "set by an earlier child"
print(json.dumps(seen), flush=True)
print("to stderr", file=sys.stderr, flush=True)
if request.get("sleep"):
    import time
    time.sleep(request["sleep"])
if request.get("raise"):
    raise RuntimeError(request["raise"])
if "exit" in request:
    raise SystemExit(request["exit"])
'''


@pytest.fixture
def probe_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the probe module; children find it on ``sys.path[0]`` (their cwd)."""
    folder = tmp_path / "project folder with spaces"
    folder.mkdir()
    (folder / f"{PROBE_MODULE}.py").write_text(PROBE)
    return folder


def run_probe(folder: Path, request: dict[str, object], args: list[str] | None = None):
    with start_child(PROBE_MODULE, args or [], cwd=str(folder)) as child:
        child.stdin.write(json.dumps(request))
        child.stdin.close()
        output = child.stdout.read()
        code = child.wait(30)
    first, *rest = output.splitlines()
    return json.loads(first), rest, code


def test_a_child_runs_its_module_as_main_in_its_folder(probe_folder: Path) -> None:
    seen, rest, code = run_probe(probe_folder, {}, ["one", "two words"])
    assert code == 0
    assert seen["name"] == "__main__"
    assert seen["argv"] == ["one", "two words"]
    assert seen["cwd"] == str(probe_folder)
    assert seen["path0"] == str(probe_folder), "sys.path[0] is the folder, as with python -m"
    assert seen["logging"] == [0, logging.NOTSET], "logging as a fresh interpreter has it"
    assert "alembic.runtime.migration" in seen["alembic_modules"], "Alembic is pre-imported"
    assert rest == ["to stderr"], "stderr joins stdout"
    assert seen["fds"] == [0, 1, 2, *[fd for fd in seen["fds"] if fd > 2]]
    assert [fd for fd in seen["fds"] if fd > 2] == [3], "only listdir's own descriptor is open"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [({"exit": 0}, 0), ({"exit": 7}, 7), ({"exit": "a message"}, 1), ({"raise": "boom"}, 1)],
)
def test_exit_codes_are_those_of_a_fresh_interpreter(
    probe_folder: Path, request_: dict[str, object], expected: int
) -> None:
    _seen, rest, code = run_probe(probe_folder, request_)
    assert code == expected
    if "raise" in request_:
        assert rest[-1] == "RuntimeError: boom", rest
    if request_.get("exit") == "a message":
        assert rest[-1] == "a message"


def test_a_child_whose_folder_is_gone_fails_and_the_server_lives_on(
    probe_folder: Path, tmp_path: Path
) -> None:
    neighbour = start_child(PROBE_MODULE, [], cwd=str(probe_folder))
    neighbour.stdin.write(json.dumps({"sleep": 1.5, "exit": 3}))
    neighbour.stdin.close()
    neighbour.stdout.readline()
    with start_child(PROBE_MODULE, [], cwd=str(tmp_path / "gone")) as child:
        child.stdin.close()
        output = child.stdout.read()
        assert child.wait(30) == 1
    assert "FileNotFoundError" in output
    with neighbour:
        neighbour.stdout.read()
        assert neighbour.wait(30) == 3, "the failed child touched no other child"
    assert run_probe(probe_folder, {})[2] == 0, "the server still forks children"
    server = launch._server
    assert server is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    assert children.read_text().split() == [], "no second server loop runs in a child"


def test_nothing_one_child_does_reaches_the_next(probe_folder: Path) -> None:
    first, _, _ = run_probe(probe_folder, {})
    second, _, _ = run_probe(probe_folder, {})
    assert first["pid"] != second["pid"]
    assert first["ppid"] == second["ppid"], "both forked by the same server"
    assert second["leftover"] is None, "a module-level change of one child reached another"
    assert second["environ_leftover"] is None


def test_no_migdash_variable_reaches_the_server_or_a_child(
    probe_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGDASH_SECRET_KEY", "fork-server-must-not-see-this")
    monkeypatch.setenv("MIGDASH_DATABASE_URL", "postgresql://u:pw@h/meta")
    seen, _, _ = run_probe(probe_folder, {})
    assert not [name for name in seen["env"] if name.startswith("MIGDASH_")], seen["env"]
    server_env = Path(f"/proc/{seen['ppid']}/environ").read_bytes()
    assert b"fork-server-must-not-see-this" not in server_env
    assert b"MIGDASH_" not in server_env
    server_fds = [int(fd) for fd in os.listdir(f"/proc/{seen['ppid']}/fd") if int(fd) > 2]
    opened = {os.readlink(f"/proc/{seen['ppid']}/fd/{fd}").split(":")[0] for fd in server_fds}
    assert opened <= {"socket", "pipe", "anon_inode"}, "no file (a key, the metadata DB) is open"


def test_a_changed_environment_gets_a_new_server_and_the_old_one_finishes_its_children(
    probe_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = start_child(PROBE_MODULE, [], cwd=str(probe_folder))
    slow.stdin.write(json.dumps({"sleep": 1.0, "exit": 5}))
    slow.stdin.close()
    old_server = json.loads(slow.stdout.readline())["ppid"]
    monkeypatch.setenv("MIGDASH_CHILD_ENV", "FORKPROBE_PASSED")
    monkeypatch.setenv("FORKPROBE_PASSED", "yes")
    seen, _, _ = run_probe(probe_folder, {})
    assert seen["ppid"] != old_server, "the environment changed: a new server"
    assert "FORKPROBE_PASSED" in seen["env"]
    with slow:
        slow.stdout.read()
        assert slow.wait(30) == 5, "the retiring server let its running child finish"
    deadline = time.monotonic() + 10
    while alive(old_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(old_server), "the old server exited"


def test_a_dead_server_is_replaced_and_its_child_reported_killed(probe_folder: Path) -> None:
    child = start_child(PROBE_MODULE, [], cwd=str(probe_folder))
    child.stdin.write(json.dumps({"sleep": 30}))
    child.stdin.close()
    server = json.loads(child.stdout.readline())["ppid"]
    os.kill(server, signal.SIGKILL)
    with child:
        child.stdout.read()
        assert child.wait(10) == -signal.SIGKILL, "the child died with its server"
    seen, _, code = run_probe(probe_folder, {})
    assert code == 0
    assert seen["ppid"] != server


def test_call_child_gives_up_after_its_timeout(probe_folder: Path) -> None:
    started = time.monotonic()
    data, problem = call_child(PROBE_MODULE, {"sleep": 30}, cwd=probe_folder, timeout=0.5)
    assert data is None
    assert problem == "no result within 0 s" or problem.startswith("no result within")
    assert time.monotonic() - started < 10


def test_many_threads_starting_children_at_once_each_get_their_own(probe_folder: Path) -> None:
    results: dict[int, tuple[list[str], int]] = {}

    def one(index: int) -> None:
        seen, _rest, code = run_probe(probe_folder, {"exit": index}, [f"child-{index}"])
        results[index] = (seen["argv"], code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {i: ([f"child-{i}"], i) for i in range(16)}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(args=st.lists(st.text(st.characters(exclude_characters="\x00", codec="utf-8")), max_size=4))
def test_any_argv_arrives_as_sent(probe_folder: Path, args: list[str]) -> None:
    seen, _, code = run_probe(probe_folder, {}, args)
    assert code == 0
    assert seen["argv"] == args


def test_when_the_parent_dies_the_server_and_its_children_die(tmp_path: Path) -> None:
    """A parent killed with SIGKILL: its fork server sees the socket close and kills the child."""
    (tmp_path / "sleeper.py").write_text("import time\ntime.sleep(60)\n")
    script = textwrap.dedent(
        f"""
        import sys, time
        from migdash.engine.launch import start_child
        child = start_child("sleeper", [], cwd={str(tmp_path)!r})
        print(child.pid, launch_server(), flush=True)
        time.sleep(60)
        """
    ).replace(
        "launch_server()", "__import__('migdash.engine.launch').engine.launch._server.process.pid"
    )
    parent = subprocess.Popen(  # noqa: S603 - our own test script
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child_pid, server_pid = (int(x) for x in parent.stdout.readline().split())
    assert alive(child_pid)
    assert alive(server_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while (alive(child_pid) or alive(server_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child_pid), "the child outlived its parent"
    assert not alive(server_pid), "the fork server outlived its parent"


def test_a_forked_copy_of_this_process_starts_its_own_server(probe_folder: Path) -> None:
    first, _, _ = run_probe(probe_folder, {})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked copy: its children must come from a server of its own
        try:
            seen, _, _ = run_probe(probe_folder, {})
            os.write(write, str(seen["ppid"]).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as reader:
        copy_server = int(reader.read() or 0)
    assert copy_server not in (0, first["ppid"])
    assert launch._server is not None
    assert launch._server.process.pid == first["ppid"], "ours is untouched"
