"""Open an Alembic project (script directory) by path, without running env.py.

migdash reads projects through Alembic's own ``ScriptDirectory``; this module
builds the programmatic ``Config`` it needs and turns every way a project can
be broken into one :class:`~migdash.errors.BrokenProject` that names the file
and the cause, so one broken project never takes the others down.
"""

from __future__ import annotations

import re
import traceback
import warnings
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionMap
from alembic.util import CommandError

from migdash.errors import BrokenProject

_REVISION_ASSIGNMENT = re.compile(
    r"""^revision\s*(?::\s*[\w\[\], |]+)?\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE
)
_DUPLICATE = re.compile(r"Revision (\S+) is present more than once")
_QUOTED_ID = re.compile(r"'([^']+)'|\b([0-9a-f]{4,})\b")
_REFERENCE = re.compile(r"^(down_revision|depends_on)\b[^=\n]*=\s*(\([^)]*\)|[^\n]*)", re.MULTILINE)


def alembic_config(location: str | Path) -> Config:
    """Build the Alembic ``Config`` for a project given as a folder or an ``alembic.ini``.

    A folder holding ``env.py`` is the script directory itself; a folder
    holding ``alembic.ini`` (or the ini file) is read the way the CLI would,
    so ``version_locations`` and ``%(here)s`` keep working.
    """
    path = Path(location)
    if path.is_file():
        return Config(str(path))
    if not path.exists():
        raise BrokenProject(str(location), "the folder does not exist")
    if (path / "env.py").exists() or (path / "versions").is_dir():
        config = Config()
        config.set_main_option("script_location", str(path))
        return config
    if (path / "alembic.ini").is_file():
        return Config(str(path / "alembic.ini"))
    raise BrokenProject(
        str(location),
        "no env.py, versions/ folder or alembic.ini found here; "
        "point the project at its Alembic script directory",
    )


def open_project(location: str | Path) -> ScriptDirectory:
    """Return the project's ``ScriptDirectory`` with its revision map fully loaded.

    Loading imports every revision file, which is where syntax errors, import
    errors, missing down_revisions and cycles surface; each becomes a
    :class:`BrokenProject`.
    """
    try:
        script_dir = ScriptDirectory.from_config(alembic_config(location))
    except CommandError as exc:
        raise BrokenProject(str(location), str(exc)) from exc
    load_revision_map(script_dir, str(location))
    return script_dir


def load_revision_map(script_dir: ScriptDirectory, location: str) -> RevisionMap:
    """Force Alembic to load and validate every revision, translating failures."""
    revision_map = script_dir.revision_map
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            revision_map.heads  # noqa: B018 - loads, links and cycle-checks the map
    except BrokenProject:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure in user code is a broken project
        raise diagnose_load_failure(exc, script_dir, location) from exc
    for warning in caught:
        duplicate = _DUPLICATE.search(str(warning.message))
        if duplicate:
            revision = duplicate.group(1)
            files = [str(p) for p in _all_files_declaring(version_folders(script_dir), revision)]
            raise BrokenProject(
                location,
                f"revision {revision} is declared in more than one file ({', '.join(files)}); "
                "Alembic would silently use only one of them",
                file=files[-1] if files else None,
            )
    return revision_map


def version_folders(script_dir: ScriptDirectory) -> list[Path]:
    """The folders Alembic reads revision files from, in its order."""
    return [Path(p) for p in script_dir._version_locations]  # noqa: SLF001 - no public accessor


def diagnose_load_failure(
    exc: BaseException, script_dir: ScriptDirectory, location: str
) -> BrokenProject:
    """Name the file to blame for a failed load, and say why in one line."""
    folders = [p.resolve() for p in version_folders(script_dir)]
    if isinstance(exc, SyntaxError) and exc.filename:
        return BrokenProject(
            location,
            f"syntax error on line {exc.lineno}: {exc.msg}",
            file=exc.filename,
        )
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        frame_path = Path(frame.filename).resolve()
        if any(folder in frame_path.parents for folder in folders):
            return BrokenProject(
                location,
                f"{type(exc).__name__} on line {frame.lineno}: {exc}",
                file=str(frame_path),
            )
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        return _missing_reference(location, exc.args[0], folders)
    files = _files_by_revision(folders)
    # Alembic's CycleDetected carries the revision ids; otherwise read them from the message.
    mentioned = list(getattr(exc, "revisions", ())) or [
        a or b for a, b in _QUOTED_ID.findall(str(exc))
    ]
    blamed = [files[rev] for rev in mentioned if rev in files]
    reason = str(exc)
    if "Cycle" in type(exc).__name__ or "cycle" in reason.lower():
        reason = f"the revision graph has a cycle: {reason}"
    return BrokenProject(location, reason, file=blamed[-1] if blamed else None)


def _missing_reference(location: str, missing: str, folders: list[Path]) -> BrokenProject:
    """Alembic links the map with ``map_[rev]``, so a dangling reference is a bare KeyError.

    Name the file whose ``down_revision`` or ``depends_on`` mentions the id.
    """
    quoted = re.compile(rf"""['"]{re.escape(missing)}['"]""")
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            for name, value in _REFERENCE.findall(path.read_text(errors="replace")):
                if quoted.search(value):
                    return BrokenProject(
                        location,
                        f"{name} names {missing!r}, which no revision file in the project declares",
                        file=str(path),
                    )
    return BrokenProject(location, f"revision {missing!r} is referenced but no file declares it")


def _all_files_declaring(folders: list[Path], revision: str) -> list[Path]:
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            match = _REVISION_ASSIGNMENT.search(path.read_text(errors="replace"))
            if match and match.group(1) == revision:
                found.append(path)
    return found


def _files_by_revision(folders: list[Path]) -> dict[str, str]:
    """Map revision id to file by reading the ``revision = ...`` line.

    Used only to name a file in an error message, after Alembic itself has
    failed to link the map, so it reads text rather than importing again.
    """
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            match = _REVISION_ASSIGNMENT.search(path.read_text(errors="replace"))
            if match:
                found[match.group(1)] = str(path)
    return found
