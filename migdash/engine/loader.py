"""The child process that reads a project's revision graph: ``python -m migdash.engine.loader``.

Loading Alembic's revision map imports every revision file, which is
arbitrary code; the web and worker processes never do it themselves.  This
child reads the project location as JSON on stdin, loads it through
:func:`migdash.engine.project.open_project`, and writes plain data (the
nodes, heads, bases and version folders, or the reason the project is
broken) to the result file named on its command line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from migdash.engine.child import die_with_parent


def load(location: str) -> dict[str, Any]:
    """Graph data for *location*, or ``{"ok": False, "reason", "file"}``."""
    from migdash.engine.graph import graph_data
    from migdash.engine.project import open_project, version_folders
    from migdash.errors import BrokenProject

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # a revision that prints is not data
            script_dir = open_project(location)
            data = graph_data(script_dir)
    except BrokenProject as exc:
        return {"ok": False, "reason": exc.reason, "file": exc.file}
    except Exception as exc:  # noqa: BLE001 - anything else a project does is its breakage
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({Path(last[0].filename).name}, line {last[0].lineno})" if last else ""
        return {"ok": False, "reason": f"{type(exc).__name__}{where}", "file": None}
    return {"ok": True, "folders": [str(p) for p in version_folders(script_dir)], **data}


def main(argv: list[str]) -> int:
    result_path = Path(argv[1])
    die_with_parent(int(argv[2]) if len(argv) > 2 else os.getppid())
    location = json.load(sys.stdin)
    result_path.write_text(json.dumps(load(str(location))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
