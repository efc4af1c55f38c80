"""Load and show big revision graphs with migdash, next to Alembic's own map build and walk.

For each size (synthetic projects with branches, merges, open heads, labels
and depends_on, written by :mod:`migdash.synthetic`) it prints, in one run:

  * migdash cold       - ``GraphCatalog.graph``: the loader child imports every
                          revision file, the parent rebuilds masks and history;
  * migdash disk       - a new process's first load with the parsed graph on disk
                          (what a restarted web or worker process pays);
  * migdash memory     - a later request: one signature check of the folder;
  * alembic map        - ``ScriptDirectory(...).revision_map.heads`` in-process;
  * alembic walk       - ``list(walk_revisions())`` on that map (``alembic history``);
and the ratios (map + walk) / migdash.  Then, through the Flask test client
with a fresh instance (empty graph cache): the project and history pages'
first request after start-up (and whether it answered "loading graph…"),
the first request after a restart with the disk cache, the warm median,
page and SVG sizes and the node count handed to ``dot``; and, with ``--full``, drawing the
whole folded graph (the old default, now only drawn in the background).

Usage: python bench/graph_bench.py [--sizes 100 1000 5000 10000] [--full]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory

from migdash import create_app
from migdash.config import ensure_instance
from migdash.engine.catalog import GraphCatalog
from migdash.engine.render import build_dot, dot_node_count, render_svg
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Role
from migdash.store.users import create_user
from migdash.synthetic import write_synthetic_project


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def median_time(action: Callable[[], Any], runs: int = 5) -> float:
    return statistics.median(timed(action)[0] for _ in range(runs))


def load_figures(location: Path, cache: Path) -> dict[str, float]:
    cold, graph = timed(lambda: GraphCatalog(cache).graph(str(location)))
    disk = median_time(lambda: GraphCatalog(cache).graph(str(location)), 3)
    warm_catalog = GraphCatalog(cache)
    warm_catalog.graph(str(location))
    memory = median_time(lambda: warm_catalog.graph(str(location)))
    script_dir = ScriptDirectory(str(location))
    alembic_map, _ = timed(lambda: script_dir.revision_map.heads)
    alembic_walk, walked = timed(lambda: [s.revision for s in script_dir.walk_revisions()])
    assert walked == list(graph.history), "history differs from Alembic's walk_revisions"
    return {
        "cold": cold,
        "disk": disk,
        "memory": memory,
        "map": alembic_map,
        "walk": alembic_walk,
    }


def make_app(instance: Path) -> Any:
    ensure_instance(instance)
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(instance),
            "MIGDASH_SECRET_KEY": "bench-secret-key",
            "WTF_CSRF_ENABLED": False,
        }
    )
    services_of(app).upgrade_schema()
    return app


def signed_in(app: Any, location: Path, register: bool) -> Any:
    with services_of(app).sessions() as session:
        if register:
            registry.add_project(session, "big", str(location))
            create_user(session, "viewer", "correct-horse", Role.VIEWER)
            session.commit()
    client = app.test_client()
    client.post("/login", data={"username": "viewer", "password": "correct-horse"})
    return client


def first_request(client: Any, url: str) -> tuple[float, bool]:
    elapsed, response = timed(lambda: client.get(url))
    assert response.status_code == 200, response.status_code
    return elapsed, "Loading graph…" in response.get_data(as_text=True)


def wait_loaded(client: Any) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        response = client.get("/projects/big/loading", headers={"HX-Request": "true"})
        if response.headers.get("HX-Refresh") == "true":
            return
        time.sleep(0.1)
    raise SystemExit("the graph did not load within 600 s")


def page_figures(location: Path, root: Path) -> dict[str, Any]:
    instance = root / "instance"
    app = make_app(instance)
    client = signed_in(app, location, register=True)
    figures: dict[str, Any] = {}
    figures["first"], figures["first_loading"] = first_request(client, "/projects/big")
    figures["history_first"], figures["history_loading"] = first_request(
        client, "/projects/big/history"
    )
    wait_loaded(client)
    response = client.get("/projects/big")
    html = response.get_data(as_text=True)
    svg = re.search(r'<div class="svg-wrap" id="revision-graph">(.*?)</div>', html, re.S)
    figures["page_bytes"] = len(response.data)
    figures["svg_bytes"] = len(svg.group(1)) if svg else 0
    figures["svg_nodes"] = svg.group(1).count('class="node"') if svg else 0
    figures["warm"] = median_time(lambda: client.get("/projects/big"))
    figures["history_warm"] = median_time(lambda: client.get("/projects/big/history"))
    services_of(app).probes.close()
    restarted = make_app(instance)  # same instance folder: the graph is on disk
    client = signed_in(restarted, location, register=False)
    figures["restart"], figures["restart_loading"] = first_request(client, "/projects/big")
    services_of(restarted).probes.close()
    return figures


FULL_TIMEOUT = 300.0


def full_drawing(location: Path, cache: Path) -> tuple[int, float, int]:
    graph = GraphCatalog(cache).graph(str(location))
    dot = build_dot(graph)
    elapsed, svg = timed(lambda: render_svg(dot, timeout=FULL_TIMEOUT))
    return dot_node_count(dot), elapsed, len(svg)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 5_000, 10_000])
    parser.add_argument(
        "--full", action="store_true", help="also time dot on the whole folded graph (slow)"
    )
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="migdash-graph-bench-"))
    try:
        for size in args.sizes:
            report(size, root / str(size), args.full)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def report(size: int, root: Path, full: bool) -> None:
    written, location = timed(lambda: write_synthetic_project(root / "project", size))
    print(f"\n== {size} revisions (written in {written:.2f} s)")
    load = load_figures(location, root / "cache")
    alembic = load["map"] + load["walk"]
    print(f"  alembic map build       {load['map']:8.3f} s")
    print(f"  alembic walk_revisions  {load['walk']:8.3f} s   map + walk {alembic:.3f} s")
    kinds = (("cold", "cold (child)"), ("disk", "warm from disk"), ("memory", "in memory"))
    for key, what in kinds:
        ratio = alembic / load[key]
        print(f"  migdash {what:<15} {load[key]:8.3f} s   alembic / migdash {ratio:7.1f}x")
    pages = page_figures(location, root)
    loading = {True: "answered 'loading graph…'", False: "answered with the graph"}
    print(f"  project page, first     {pages['first']:8.3f} s   {loading[pages['first_loading']]}")
    print(
        f"  history page, first     {pages['history_first']:8.3f} s   "
        f"{loading[pages['history_loading']]}"
    )
    print(
        f"  project page, restart   {pages['restart']:8.3f} s   "
        f"{loading[pages['restart_loading']]} (graph on disk)"
    )
    print(f"  project page, warm p50  {pages['warm']:8.3f} s   goal 0.200 s")
    print(f"  history page, warm p50  {pages['history_warm']:8.3f} s")
    print(
        f"  page {pages['page_bytes'] / 1024:.0f} KB, inline SVG "
        f"{pages['svg_bytes'] / 1024:.0f} KB with {pages['svg_nodes']} boxes"
    )
    if full:
        nodes, elapsed, svg_bytes = full_drawing(location, root / "cache")
        print(
            f"  whole folded graph      {elapsed:8.3f} s   {nodes} nodes, "
            f"{svg_bytes / 1024:.0f} KB (the old default; above 1,000 nodes only drawn "
            "in the background)"
        )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
