"""The child process that runs one Alembic command: ``python -m migdash.jobs.runner RESULT``.

It reads an :class:`~migdash.engine.actions.ActionSpec` as JSON on stdin,
prints every line of output to stdout (stderr is joined to it, so a
``fileConfig`` console handler set up by ``env.py`` is captured too), and
writes the :class:`~migdash.engine.actions.ActionResult` as JSON to RESULT.
It asks the kernel to kill it if the worker dies, so a ``kill -9`` of the
worker never leaves a migration running unattended.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from migdash.engine.child import die_with_parent


def main(argv: list[str]) -> int:
    result_path = Path(argv[1])
    die_with_parent(int(argv[2]) if len(argv) > 2 else os.getppid())
    os.dup2(1, 2)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    from migdash.engine.actions import ActionSpec, run_action

    spec = ActionSpec.from_json(json.load(sys.stdin))
    result = run_action(spec, lambda line: print(line, flush=True), capture_log=False)
    result_path.write_text(json.dumps(result.to_json()))
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
