"""``python -m migdash`` is the ``migdash`` command."""

from migdash.cli import main

main()
