"""Big synthetic Alembic projects, for the graph benchmarks and the tests that guard them.

A real team's project of thousands of revisions is mostly a straight line
with short-lived branches that merge back, a few long-lived branches left
open (several heads), branch labels and the odd ``depends_on``.
:func:`synthetic_revisions` draws that shape from a seed, so the same size
always gives the same files, and :func:`write_synthetic_project` writes them
as ordinary revision files through :mod:`migdash.scaffold`.
"""

from __future__ import annotations

import random
from pathlib import Path

from migdash.scaffold import RevisionSpec, write_project

BRANCH_EVERY = 40
"""Roughly one side branch opens per this many trunk revisions."""
OPEN_HEADS = 2
"""Side branches that never merge back: the project ends with 1 + this many heads."""


def synthetic_revisions(size: int, *, seed: int = 10) -> list[RevisionSpec]:
    """*size* revisions: a trunk, side branches merged back, open branches, labels, depends_on.

    Revisions come out parents first, so any prefix is a valid project too.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible shape, not a secret
    specs: list[RevisionSpec] = []
    trunk: str | None = None
    side: list[tuple[str, int]] = []  # (tip, revisions still to add before it merges back)
    open_tips: list[str] = []
    while len(specs) < size:
        rev = f"{rng.getrandbits(48):012x}"
        number = len(specs)
        if side and rng.random() < 0.5:
            tip, left = side.pop(rng.randrange(len(side)))
            if left > 0:
                specs.append(RevisionSpec(rev, tip, f"side change {number}"))
                side.append((rev, left - 1))
            else:
                specs.append(RevisionSpec(rev, (trunk, tip), f"merge side branch {number}"))
                trunk = rev
            continue
        if open_tips and rng.random() < 0.05:
            index = rng.randrange(len(open_tips))
            specs.append(RevisionSpec(rev, open_tips[index], f"long-lived change {number}"))
            open_tips[index] = rev
            continue
        labels = (f"release_{number}",) if number and number % 500 == 0 else ()
        depends = (_earlier(rng, specs),) if number > 10 and rng.random() < 0.01 else ()
        specs.append(
            RevisionSpec(
                rev, trunk, f"trunk change {number}", branch_labels=labels, depends_on=depends
            )
        )
        if (
            trunk is not None
            and len(open_tips) < OPEN_HEADS
            and number >= 20 * (1 + len(open_tips))
        ):
            open_tips.append(trunk)  # the previous trunk revision becomes a branch point
        elif trunk is not None and rng.random() < 1 / BRANCH_EVERY * 4:
            side.append((trunk, rng.randrange(1, 12)))
        trunk = rev
    return specs[:size]


def _earlier(rng: random.Random, specs: list[RevisionSpec]) -> str:
    return specs[rng.randrange(len(specs) // 2)].revision


def write_synthetic_project(root: Path, size: int, *, seed: int = 10) -> Path:
    """Write a project of *size* synthetic revisions at *root* (an Alembic script folder)."""
    return write_project(root, synthetic_revisions(size, seed=seed))
