"""The wheel carries templates, static files (htmx included) and migdash's own migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_static_and_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("migdash-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "migdash/templates/base.html",
        "migdash/templates/partials/overview/matrix.html",
        "migdash/static/css/migdash.css",
        "migdash/static/vendor/htmx.min.js",
        "migdash/store/migrations/env.py",
        "migdash/store/migrations/versions/0001_initial_schema.py",
    ):
        assert required in names, f"{required} missing from {wheel.name}"

    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import migdash, sys;"
        "app = migdash.create_app({'TESTING': True, 'MIGDASH_INSTANCE': sys.argv[1]});"
        "print(app.template_folder); print(app.static_folder)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "instance")],
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    template_folder, static_folder = result.stdout.split()
    assert template_folder == str(unpacked / "migdash" / "templates")
    assert static_folder == str(unpacked / "migdash" / "static")
