"""Open an Alembic project (script directory) by path, without running env.py.

migdash reads projects through Alembic's own ``ScriptDirectory``; this module
builds the programmatic ``Config`` it needs and turns every way a project can
be broken into one :class:`~migdash.errors.BrokenProject` that names the file
and the cause, so one broken project never takes the others down.
"""

from __future__ import annotations

import configparser
import locale
import os
import re
import stat
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionMap
from alembic.util import CommandError

from migdash.errors import BrokenProject, InvalidInput

MAIN_SECTION = "alembic"
MAX_INI_BYTES = 1_000_000
"""An alembic.ini is a few kilobytes; anything far larger is not one (and is not read whole)."""

_REVISION_ASSIGNMENT = re.compile(
    r"""^revision\s*(?::\s*[\w\[\], |]+)?\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE
)
_DUPLICATE = re.compile(r"Revision (\S+) is present more than once")
_QUOTED_ID = re.compile(r"'([^']+)'|\b([0-9a-f]{4,})\b")
_REFERENCE = re.compile(r"^(down_revision|depends_on)\b[^=\n]*=\s*(\([^)]*\)|[^\n]*)", re.MULTILINE)


def alembic_config(location: str | Path) -> Config:
    """Build the Alembic ``Config`` for a project given as a folder or an ``alembic.ini``.

    A folder holding ``env.py`` (or only ``versions/``: enough to read the
    graph) is the script directory itself; a folder holding ``alembic.ini``
    (or the ini file) is read the way the CLI would, so ``version_locations``
    and ``%(here)s`` keep working.  migdash reads the ini first, so a file
    that is not one is a :class:`BrokenProject` quoting nothing from it, and
    pins ``script_location`` to the resolved folder (any working directory).
    """
    try:
        layout = _layout(_resolve(Path(location)), registering=False)
    except _Unusable as exc:
        raise BrokenProject(str(location), str(exc)) from None
    try:
        config = Config(str(layout.ini)) if layout.ini else Config()
        config.set_main_option("script_location", str(layout.script_folder).replace("%", "%%"))
    except Exception as exc:  # noqa: BLE001 - the file changed under us; never quote it
        raise BrokenProject(str(location), _config_failure(exc)) from None
    return config


def open_project(location: str | Path) -> ScriptDirectory:
    """Return the project's ``ScriptDirectory`` with its revision map fully loaded.

    Loading imports every revision file, which is where syntax errors, import
    errors, missing down_revisions and cycles surface; each becomes a
    :class:`BrokenProject`.
    """
    config = alembic_config(location)
    try:
        script_dir = ScriptDirectory.from_config(config)
    except Exception as exc:  # noqa: BLE001 - every way Alembic refuses the settings
        raise BrokenProject(str(location), _config_failure(exc)) from None
    load_revision_map(script_dir, str(location))
    return script_dir


def check_script_location(path: str, roots: Sequence[str | Path] = ()) -> str:
    """The absolute, resolved *path* if it is a usable Alembic environment, for registration.

    Usable means a folder holding ``env.py``, or an ``alembic.ini`` (or a
    folder holding one) whose ``script_location`` is such a folder.  Nothing
    of the project is imported or run (no ``env.py``, no revision file, no
    ``ScriptDirectory.from_config``, which would extend ``sys.path``): the
    ini is read here with :mod:`configparser`, and no message quotes the
    file.  With *roots*, the location and the folder its ini points at
    must both lie inside one of them once symlinks and ``..`` are resolved;
    the location is checked against them before anything is read.

    :raises InvalidInput: with ``field="script_location"`` and the reason.
    """
    text = path.strip()
    if not text:
        raise _refusal("the script location is empty")
    if not os.path.isabs(text):
        raise _refusal(f"the script location {text!r} is not an absolute path")
    allowed = [Path(root).resolve() for root in roots]
    try:
        location = _resolve(Path(text))
        _require_inside(location, allowed)
        layout = _layout(location, registering=True)
        _require_inside(layout.script_folder, allowed)
    except _Unusable as exc:
        reason = str(exc)
        raise _refusal(reason if text in reason else f"{text}: {reason}") from None
    return str(location)


class _Unusable(Exception):
    """Why a location is not an Alembic environment, in words that quote nothing from a file."""


@dataclass(frozen=True)
class _Layout:
    script_folder: Path
    """The folder Alembic calls ``script_location`` (holds ``env.py`` and ``versions/``)."""
    ini: Path | None
    """The ``alembic.ini`` the settings come from, if any."""


def _refusal(message: str) -> InvalidInput:
    return InvalidInput(
        message,
        hint="Give the absolute path of the folder holding env.py and versions/, "
        "or of the project's alembic.ini.",
        field="script_location",
    )


def _require_inside(path: Path, roots: list[Path]) -> None:
    if roots and not any(path == root or root in path.parents for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise _Unusable(f"{path} is outside the folders projects may live in ({allowed})")


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        raise _Unusable(f"{path} cannot be resolved (a loop of symbolic links?)") from None


def _kind(path: Path) -> str:
    """``folder``, ``file``, ``missing`` or ``other``, without following into errors."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        raise _Unusable(f"{path} cannot be read ({_os_reason(exc)})") from None
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "other"


def _os_reason(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__


def _layout(location: Path, *, registering: bool) -> _Layout:
    """Where the project's script folder and ini are, judged from file names and the ini only."""
    kind = _kind(location)
    if kind == "missing":
        raise _Unusable(f"{location} does not exist")
    if kind == "folder":
        return _folder_layout(location, registering=registering)
    if kind == "other":
        raise _Unusable(f"{location} is neither a folder nor a file")
    if location.name == "env.py":
        raise _Unusable(f"{location} is env.py itself; give the folder that holds it")
    return _Layout(_ini_script_folder(location, registering=registering), location)


def _folder_layout(folder: Path, *, registering: bool) -> _Layout:
    env = _kind(folder / "env.py")
    if env == "file":
        return _Layout(folder, None)
    if env != "missing":
        raise _Unusable(f"{folder / 'env.py'} is not a file")
    if not registering and _kind(folder / "versions") == "folder":
        return _Layout(folder, None)  # the graph can be read; actions will say what is missing
    ini = _kind(folder / "alembic.ini")
    if ini == "file":
        return _Layout(
            _ini_script_folder(folder / "alembic.ini", registering=registering),
            folder / "alembic.ini",
        )
    if ini != "missing":
        raise _Unusable(f"{folder / 'alembic.ini'} is not a file")
    if folder.suffix == ".ini":
        raise _Unusable(f"{folder} is a folder, not an ini file")
    if registering:
        raise _Unusable(f"{folder} has no env.py (nor an alembic.ini): not an Alembic environment")
    raise _Unusable(
        f"{folder} has no env.py, versions/ folder or alembic.ini; "
        "point the project at its Alembic script directory"
    )


def _ini_script_folder(ini: Path, *, registering: bool) -> Path:
    """The folder the ini's ``script_location`` names, resolved from the ini's own folder."""
    value = _read_script_location(ini)
    if not os.path.isabs(value) and ":" in value:
        raise _Unusable(
            f"the script_location in {ini} names a package resource (package:path); "
            "migdash needs a folder path it can check without importing anything"
        )
    folder = _resolve(ini.parent / value)
    kind = _kind(folder)
    if kind != "folder":
        what = "does not exist" if kind == "missing" else "is not a folder"
        raise _Unusable(f"the script_location in {ini} points to {folder}, which {what}")
    env = _kind(folder / "env.py")
    if env == "file" or (not registering and _kind(folder / "versions") == "folder"):
        return folder
    raise _Unusable(f"the script_location in {ini} points to {folder}, which has no env.py")


def _read_script_location(ini: Path) -> str:
    """``[alembic] script_location`` read as Alembic reads it (``%(here)s`` included)."""
    parser = configparser.ConfigParser(defaults={"here": ini.parent.absolute().as_posix()})
    problem = None
    try:
        parser.read_string(_read_text(ini), source=str(ini))
    except configparser.Error as exc:
        problem = _ini_problem(exc)
    if problem:
        raise _Unusable(f"{ini} is not {problem}")
    if not parser.has_section(MAIN_SECTION):
        raise _Unusable(f"{ini} is not an Alembic configuration (no [{MAIN_SECTION}] section)")
    try:
        value = parser.get(MAIN_SECTION, "script_location", fallback="").strip()
    except configparser.Error:
        value = None
    if value is None:
        raise _Unusable(f"the script_location in {ini} refers to a %(name)s value that is not set")
    if not value:
        raise _Unusable(f"the [{MAIN_SECTION}] section of {ini} has no script_location")
    return value


def _ini_problem(exc: configparser.Error) -> str:
    """configparser's own messages quote the offending line; say what is wrong instead."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return "an ini file (no section header)"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"a valid ini file (a section is repeated on line {exc.lineno})"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"a valid ini file (a setting is repeated on line {exc.lineno})"
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        return f"a valid ini file (line {exc.errors[0][0]} cannot be parsed)"
    return "a valid ini file"


def _read_text(ini: Path) -> str:
    """The ini's text in the encoding Alembic will use, refusing what cannot be an ini."""
    try:
        with ini.open("rb") as handle:
            data = handle.read(MAX_INI_BYTES + 1)
    except OSError as exc:
        reason = _os_reason(exc)
        raise _Unusable(f"{ini} cannot be read ({reason})") from None
    if len(data) > MAX_INI_BYTES:
        raise _Unusable(f"{ini} is too large to be an alembic.ini ({MAX_INI_BYTES} bytes at most)")
    if b"\0" in data:
        raise _Unusable(f"{ini} is not an ini file (it holds binary data)")
    try:
        return data.decode(locale.getpreferredencoding(False))
    except (UnicodeDecodeError, LookupError):
        raise _Unusable(
            f"{ini} is not an ini file (it is not text in the expected encoding)"
        ) from None


def _config_failure(exc: BaseException) -> str:
    """One line for a configuration Alembic refused; its own words only for CommandError.

    configparser's messages (and Alembic's ValueErrors about a setting)
    quote the file, so everything else is named by its kind only.
    """
    if isinstance(exc, CommandError):
        return str(exc).splitlines()[0] if str(exc) else "Alembic refused the configuration"
    if isinstance(exc, OSError):
        return f"the configuration cannot be read ({_os_reason(exc)})"
    return f"Alembic cannot use the settings in the configuration ({type(exc).__name__})"


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
            for name, value in _REFERENCE.findall(_read_source(path)):
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
            match = _REVISION_ASSIGNMENT.search(_read_source(path))
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
            match = _REVISION_ASSIGNMENT.search(_read_source(path))
            if match:
                found[match.group(1)] = str(path)
    return found


def _read_source(path: Path) -> str:
    """A revision file's text for naming it in a message; unreadable counts as empty."""
    try:
        return path.read_text(errors="replace")
    except OSError:  # a folder named like a revision file, or no permission
        return ""
