"""Child processes that run project code, and the little they are given.

A project's ``env.py`` and revision files are arbitrary code.  They never
run in the web or worker process, which hold the encryption key and the
metadata DB: reading a project's revision graph (``migdash.engine.loader``)
and running an action (``migdash.jobs.runner``) happen in children.  A child
gets a small environment (:func:`child_environment`: no ``MIGDASH_*``
variable, so no key and no metadata DB URL), inherits no open file
descriptor, receives the one target URL it needs on stdin, and is killed if
its parent dies (:func:`die_with_parent`).
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Mapping
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4

PASSED = (
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "PYTHONDONTWRITEBYTECODE",
    "VIRTUAL_ENV",
    "SYSTEMROOT",
)
"""Always passed: what Python, the locale and database drivers need to start."""

EXTRA_VARIABLE = "MIGDASH_CHILD_ENV"


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child that runs project code.

    ``MIGDASH_CHILD_ENV`` lists further names to pass (comma-separated; a
    trailing ``*`` passes every name with that prefix, e.g. ``PG*``).  No
    ``MIGDASH_`` variable is ever passed, whatever it says.
    """
    source = os.environ if environ is None else environ
    extra = [n.strip() for n in source.get(EXTRA_VARIABLE, "").split(",") if n.strip()]
    prefixes = tuple(n[:-1] for n in extra if n.endswith("*") and len(n) > 1)
    names = set(PASSED) | {n for n in extra if not n.endswith("*")}
    return {
        key: value
        for key, value in source.items()
        if not key.startswith("MIGDASH_")
        and (key in names or (prefixes and key.startswith(prefixes)))
    }


def die_with_parent(expected_parent: int) -> None:
    """Linux: SIGKILL this process when its parent exits (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != expected_parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def protect_process_memory() -> None:
    """Linux: make this process non-dumpable, so same-user processes cannot read its memory.

    Children run project code as the same OS user; without this they could
    read the parent's keys through ``/proc/<pid>/environ`` or ``/proc/<pid>/mem``.
    (A root or ptrace-capable process still can; see the README.)
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0)
    except (OSError, AttributeError):
        return


def project_folder(script_location: str) -> str:
    """Where a child runs: beside the project, so ``prepend_sys_path = .`` means what it says."""
    location = Path(script_location)
    folder = location.parent
    return str(folder) if folder.is_dir() else os.getcwd()
