"""Broken projects: one :class:`BrokenProject` naming the file and the cause; the catalog copes.

Each project here is real (written by the scaffold) and then broken the way
people break them: a typo, a missing import, a revision that names a parent
nobody has, a cycle, a wrong folder.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migdash.engine.catalog import GraphCatalog
from migdash.engine.project import check_script_location, open_project
from migdash.errors import BrokenProject, InvalidInput
from migdash.scaffold import RevisionSpec, write_project, write_revision


def revision_file(project: Any, revision: str) -> Path:
    """The one file of *project* that holds *revision*."""
    (path,) = Path(project.location, "versions").glob(f"{revision}_*.py")
    return path


def edit(path: Path, old: str, new: str) -> None:
    """Replace *old* by *new* in *path* (which must contain it) and move its mtime forward."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))
    bump_mtime(path)


def bump_mtime(path: Path, seconds: int = 10) -> None:
    """Move *path*'s mtime forward by whole seconds, so no clock granularity can hide a change."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


def broken(location: Path) -> BrokenProject:
    """Open *location*, expecting it to be broken, and return the error."""
    with pytest.raises(BrokenProject) as info:
        open_project(location)
    return info.value


def assert_readable(exc: BrokenProject, *fragments: str) -> None:
    """One line a person can act on: the project, the cause, no traceback, no repr soup."""
    text = str(exc)
    assert "\n" not in text
    assert "Traceback" not in text
    assert exc.location in text
    assert text.startswith(f"Project at {exc.location} cannot be loaded: ")
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} missing from {text!r}"


# --- open_project ---------------------------------------------------------------------------


def test_syntax_error_names_the_file_and_line(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    bad = revision_file(project, "b2")
    edit(bad, "def upgrade():", "def upgrade(:")

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, bad.name, "syntax error on line 16")


def test_import_error_names_the_file_and_the_module(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    bad = revision_file(project, "c3")
    edit(bad, "from alembic import op\n", "from alembic import op\nimport nonexistent_module\n")

    line = bad.read_text().splitlines().index("import nonexistent_module") + 1

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, "ModuleNotFoundError", "nonexistent_module", f"line {line}")


def test_error_raised_while_the_file_runs_names_the_file(make_project: Callable[..., Any]) -> None:
    project = make_project("merged")
    bad = revision_file(project, "e5")
    edit(bad, "revision = 'e5'", "revision = 'e5'\nraise RuntimeError('half-edited file')")

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, "RuntimeError", "half-edited file")


def test_missing_down_revision_names_the_file_that_refers_to_it(
    make_project: Callable[..., Any],
) -> None:
    project = make_project("linear")
    bad = revision_file(project, "b2")
    edit(bad, "down_revision = 'a1'", "down_revision = 'zz9'")

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, "down_revision", "'zz9'")


def test_missing_depends_on_names_the_file_that_refers_to_it(
    make_project: Callable[..., Any],
) -> None:
    project = make_project("depends")
    bad = revision_file(project, "x2")
    edit(bad, "depends_on = ('b2',)", "depends_on = ('nowhere',)")

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, "depends_on", "'nowhere'")


def test_cycle_is_reported_with_the_revisions_and_a_file_in_it(
    make_project: Callable[..., Any],
) -> None:
    project = make_project(
        [
            RevisionSpec("a1", None, "base"),
            RevisionSpec("b2", ("a1", "c3"), "loops back"),
            RevisionSpec("c3", "b2", "closes the loop"),
        ]
    )

    exc = broken(project.location)

    assert exc.file is not None
    in_cycle = {revision_file(project, "b2").name, revision_file(project, "c3").name}
    assert Path(exc.file).name in in_cycle
    assert_readable(exc, "cycle", "b2", "c3")


def test_two_revision_cycle_with_no_base(make_project: Callable[..., Any]) -> None:
    project = make_project(
        [RevisionSpec("a1", "b2", "points up"), RevisionSpec("b2", "a1", "points down")]
    )

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name in {
        revision_file(project, "a1").name,
        revision_file(project, "b2").name,
    }
    assert_readable(exc, "cycle")


def test_missing_folder(tmp_path: Path) -> None:
    location = tmp_path / "no" / "such" / "project"

    exc = broken(location)

    assert exc.file is None
    assert_readable(exc, "does not exist")
    assert not location.exists()


def test_folder_without_env_py_or_versions(tmp_path: Path) -> None:
    location = tmp_path / "not_alembic"
    location.mkdir()
    (location / "README.txt").write_text("just a folder")

    exc = broken(location)

    assert exc.file is None
    assert_readable(exc, "no env.py", "versions")


def test_sound_project_opens(make_project: Callable[..., Any]) -> None:
    """The control for the cases above: the unbroken shape loads with every revision."""
    project = make_project("merged")

    script_dir = open_project(project.location)

    assert sorted(rev.revision for rev in script_dir.walk_revisions()) == [
        "a1",
        "b2",
        "c3",
        "d4",
        "e5",
        "f6",
    ]


# --- GraphCatalog ---------------------------------------------------------------------------


def test_catalog_keeps_other_projects_working_when_one_is_broken(
    make_project: Callable[..., Any],
) -> None:
    good = make_project("linear", name="good")
    bad = make_project("merged", name="bad")
    edit(revision_file(bad, "d4"), "def upgrade():", "def upgrade(:")
    catalog = GraphCatalog()

    assert catalog.graph(str(good.location)).heads == ("c3",)
    with pytest.raises(BrokenProject) as info:
        catalog.graph(str(bad.location))
    assert info.value.file is not None
    assert Path(info.value.file).name == revision_file(bad, "d4").name
    assert catalog.graph(str(good.location)).history == ("c3", "b2", "a1")


def test_catalog_returns_the_cached_graph_while_nothing_changes(
    make_project: Callable[..., Any],
) -> None:
    project = make_project("two_heads")
    catalog = GraphCatalog()

    first = catalog.graph(str(project.location))
    second = catalog.graph(str(project.location))

    assert first is second
    assert sorted(first.heads) == ["c3", "d4"]


def test_catalog_caches_a_broken_project_too(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    edit(revision_file(project, "a1"), "def upgrade():", "def upgrade(:")
    catalog = GraphCatalog()

    with pytest.raises(BrokenProject) as first:
        catalog.graph(str(project.location))
    with pytest.raises(BrokenProject) as second:
        catalog.graph(str(project.location))

    assert first.value is second.value


def test_catalog_reloads_when_a_revision_file_is_added(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    before = catalog.graph(str(project.location))

    write_revision(project.location / "versions", RevisionSpec("d4", "c3", "added later"))
    after = catalog.graph(str(project.location))

    assert after is not before
    assert before.heads == ("c3",)
    assert after.heads == ("d4",)
    assert after.history == ("d4", "c3", "b2", "a1")
    assert catalog.graph(str(project.location)) is after


def test_catalog_reloads_when_a_revision_file_is_edited(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    before = catalog.graph(str(project.location))

    # Same length, so only the mtime tells the catalog that something changed.
    edit(revision_file(project, "b2"), "create orders", "CREATE ORDERS")
    after = catalog.graph(str(project.location))

    assert after is not before
    assert before.nodes["b2"].message == "create orders"
    assert after.nodes["b2"].message == "CREATE ORDERS"


def test_catalog_reloads_when_a_revision_file_is_removed(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    assert catalog.graph(str(project.location)).heads == ("c3",)

    revision_file(project, "c3").unlink()

    assert catalog.graph(str(project.location)).heads == ("b2",)


def test_catalog_recovers_when_a_broken_file_is_fixed(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    bad = revision_file(project, "c3")
    edit(bad, "def upgrade():", "def upgrade(:")
    catalog = GraphCatalog()
    with pytest.raises(BrokenProject):
        catalog.graph(str(project.location))

    edit(bad, "def upgrade(:", "def upgrade():")

    assert catalog.graph(str(project.location)).heads == ("c3",)


def test_catalog_breaks_when_a_good_file_is_broken(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    assert catalog.graph(str(project.location)).heads == ("c3",)

    edit(revision_file(project, "c3"), "def upgrade():", "def upgrade(:")

    with pytest.raises(BrokenProject) as info:
        catalog.graph(str(project.location))
    assert info.value.file is not None
    assert Path(info.value.file).name == revision_file(project, "c3").name


def test_catalog_notices_a_project_folder_that_appears(
    tmp_path: Path, make_project: Callable[..., Any]
) -> None:
    catalog = GraphCatalog()
    location = tmp_path / "projects" / "late"
    with pytest.raises(BrokenProject, match="does not exist"):
        catalog.graph(str(location))

    make_project("linear", name="late")

    assert catalog.graph(str(location)).heads == ("c3",)


def test_catalog_forget_drops_the_cached_graph(make_project: Callable[..., Any]) -> None:
    project = make_project("linear")
    catalog = GraphCatalog()
    before = catalog.graph(str(project.location))

    catalog.forget(str(project.location))

    after = catalog.graph(str(project.location))
    assert after is not before
    assert after.history == before.history


def test_a_revision_id_declared_twice_is_a_broken_project(tmp_path: Path) -> None:
    from migdash.scaffold import RevisionSpec, write_project, write_revision

    location = write_project(
        tmp_path / "dup",
        [
            RevisionSpec("a1", None, "first"),
            RevisionSpec("b2", "a1", "second"),
        ],
    )
    copy = write_revision(location / "versions", RevisionSpec("b2", "a1", "second again"))
    with pytest.raises(BrokenProject, match="declared in more than one file") as excinfo:
        open_project(location)
    assert excinfo.value.file is not None
    assert Path(excinfo.value.file).name in {copy.name, "b2_second.py"}


# --- locations that are not Alembic environments --------------------------------------------

MARK = "PLANTED-7f3a"
PLANTED = f"{MARK} root:x:0:0:root:/root:/bin/bash"
"""A recognisable line planted in broken files: no message may quote any of it."""


def assert_quotes_nothing(exc: BaseException) -> None:
    """Neither the message nor the traceback a log would print shows the planted line."""
    rendered = "".join(traceback.format_exception(exc))
    assert MARK not in str(exc)
    assert MARK not in rendered
    assert "File contains no section headers" not in rendered


def ini_project(tmp_path: Path, ini_text: str | bytes, *, env: bool = True) -> Path:
    """An ``alembic.ini`` beside a sound ``migrations/`` script folder; returns the ini."""
    write_project(tmp_path / "proj" / "migrations", [RevisionSpec("a1", None, "first")])
    if not env:
        (tmp_path / "proj" / "migrations" / "env.py").unlink()
    ini = tmp_path / "proj" / "alembic.ini"
    if isinstance(ini_text, bytes):
        ini.write_bytes(ini_text)
    else:
        ini.write_text(ini_text)
    return ini


SOUND_INI = "[alembic]\nscript_location = %(here)s/migrations\n"

BAD_INIS: dict[str, tuple[str | bytes, str]] = {
    "plain text": (f"{PLANTED}\nhello\n", "is not an ini file (no section header)"),
    "binary": (b"\x7fELF\x00\x01" + PLANTED.encode(), "is not an ini file (it holds binary data)"),
    "not utf-8": (b"[alembic]\nscript_location = \xff\xfe\n", "is not an ini file (it is not text"),
    "no alembic section": (f"[server]\nmotd = {PLANTED}\n", "no [alembic] section"),
    "no script_location": (f"[alembic]\nsqlalchemy.url = {PLANTED}\n", "has no script_location"),
    "empty script_location": ("[alembic]\nscript_location =\n", "has no script_location"),
    "unset reference": (
        f"[alembic]\nscript_location = %(nope)s/{PLANTED}\n",
        "refers to a %(name)s value that is not set",
    ),
    "bad reference syntax": (f"[alembic]\nscript_location = %{PLANTED}\n", "refers to a %(name)s"),
    "section twice": (f"[alembic]\n[alembic]\n{PLANTED} = 1\n", "a section is repeated on line 2"),
    "option twice": (
        f"[alembic]\nscript_location = a\nscript_location = {PLANTED}\n",
        "a setting is repeated on line 3",
    ),
    "unparsable line": (f"[alembic]\nscript_location = a\n{MARK} x\n", "line 3 cannot be parsed"),
    "package resource": (f"[alembic]\nscript_location = {PLANTED}:x\n", "package resource"),
    "points nowhere": ("[alembic]\nscript_location = %(here)s/elsewhere\n", "which does not exist"),
    "points at a file": ("[alembic]\nscript_location = %(here)s/alembic.ini\n", "is not a folder"),
    "too large": ("[alembic]\n" + "# padding\n" * 200_000, "too large to be an alembic.ini"),
}


@pytest.mark.parametrize("case", list(BAD_INIS))
def test_an_ini_that_is_not_an_alembic_config_is_a_clean_broken_project(
    tmp_path: Path, case: str
) -> None:
    text, reason = BAD_INIS[case]
    ini = ini_project(tmp_path, text)

    exc = broken(ini)

    assert_readable(exc, str(ini), reason)
    assert exc.file is None
    assert_quotes_nothing(exc)
    with pytest.raises(InvalidInput) as refused:
        check_script_location(str(ini))
    assert reason in refused.value.message
    assert str(ini) in refused.value.message
    assert refused.value.field == "script_location"
    assert_quotes_nothing(refused.value)


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def symlink_loop(path: Path) -> Path:
    os.symlink(path.with_name("loop-b"), path)
    os.symlink(path, path.with_name("loop-b"))
    return path


def planted_file(path: Path) -> Path:
    path.write_text(f"{PLANTED}\n")
    return path


LOCATIONS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda p: p / "no" / "such", "does not exist"),
    "a parent is a file": (lambda p: planted_file(p / "f") / "sub", "does not exist"),
    "a plain file": (
        lambda p: planted_file(p / "passwd"),
        "is not an ini file (no section header)",
    ),
    "env.py itself": (
        lambda p: write_project(p / "proj", []) / "env.py",
        "is env.py itself; give the folder that holds it",
    ),
    "env.py is a folder": (
        lambda p: _env_py_folder(p / "proj"),
        "env.py is not a file",
    ),
    "alembic.ini is a folder": (lambda p: _ini_folder(p / "proj"), "alembic.ini is not a file"),
    "an ini path that is a folder": (
        lambda p: _mkdir(p / "alembic.ini"),
        "is a folder, not an ini file",
    ),
    "a fifo": (lambda p: fifo(p / "pipe"), "is neither a folder nor a file"),
    "a device": (lambda _p: Path("/dev/null"), "is neither a folder nor a file"),
    "a symlink loop": (lambda p: symlink_loop(p / "loop-a"), "cannot be resolved"),
    "an empty folder": (lambda p: _mkdir(p / "empty"), "has no env.py"),
}


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _env_py_folder(folder: Path) -> Path:
    _mkdir(folder)
    (folder / "env.py").mkdir()
    return folder


def _ini_folder(folder: Path) -> Path:
    _mkdir(folder)
    (folder / "alembic.ini").mkdir()
    return folder


@pytest.mark.parametrize("case", list(LOCATIONS))
def test_a_location_that_is_not_an_alembic_environment(tmp_path: Path, case: str) -> None:
    make, reason = LOCATIONS[case]
    location = make(tmp_path)

    exc = broken(location)

    assert_readable(exc, reason)
    assert_quotes_nothing(exc)
    with pytest.raises(InvalidInput, match=re.escape(reason)) as refused:
        check_script_location(str(location))
    assert str(location) in refused.value.message
    assert_quotes_nothing(refused.value)


def test_an_unreadable_ini_is_a_clean_broken_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied, simulated so that it also holds when the tests run as root."""
    ini = ini_project(tmp_path, SOUND_INI)
    real_open = Path.open

    def guarded(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == ini:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)

    assert_readable(broken(ini), str(ini), "cannot be read (permission denied)")
    with pytest.raises(InvalidInput, match=r"cannot be read \(permission denied\)"):
        check_script_location(str(ini))


@pytest.mark.parametrize(
    "setting",
    [f"path_separator = {PLANTED}\nversion_locations = a b", f"truncate_slug_length = {PLANTED}"],
)
def test_settings_alembic_refuses_are_named_by_kind_not_quoted(
    tmp_path: Path, setting: str
) -> None:
    ini = ini_project(tmp_path, f"{SOUND_INI}{setting}\n")

    exc = broken(ini)

    assert_readable(exc, "Alembic cannot use the settings in the configuration (ValueError)")
    assert_quotes_nothing(exc)


def test_an_ini_project_opens_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative script_location is read from the ini's folder, as ``alembic`` run there would."""
    ini = ini_project(tmp_path, "[alembic]\nscript_location = migrations\n")
    elsewhere = _mkdir(tmp_path / "elsewhere")
    monkeypatch.chdir(elsewhere)

    assert [r.revision for r in open_project(ini).walk_revisions()] == ["a1"]
    assert [r.revision for r in open_project(ini.parent).walk_revisions()] == ["a1"]
    assert check_script_location(str(ini)) == str(ini)
    assert check_script_location(str(ini.parent)) == str(ini.parent)


@given(
    lines=st.lists(
        st.text(alphabet=st.sampled_from("[]=:%()$ \tab_.\\/#;"), max_size=30), max_size=8
    ),
    position=st.integers(min_value=0, max_value=8),
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_ini_text_makes_a_message_quote_the_file(
    tmp_path: Path, lines: list[str], position: int
) -> None:
    """Whatever surrounds it, a planted line at column 0 is an ini error, and never quoted."""
    marker = "PLANTEDzq7 secret"
    lines.insert(min(position, len(lines)), marker)
    ini = tmp_path / "alembic.ini"
    ini.write_text("\n".join(lines) + "\n")

    with pytest.raises(BrokenProject) as exc:
        open_project(ini)
    with pytest.raises(InvalidInput) as refused:
        check_script_location(str(ini))
    for error in (exc.value, refused.value):
        assert marker not in "".join(traceback.format_exception(error))


def test_checking_a_location_runs_none_of_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No env.py, no revision file, no prepend_sys_path: registration only reads."""
    sentinel = tmp_path / "ran"
    ini = ini_project(
        tmp_path,
        f"{SOUND_INI}prepend_sys_path = {tmp_path / 'injected'}\npath_separator = os\n",
    )
    payload = f"open({str(sentinel)!r}, 'w').write('ran')\n"
    (ini.parent / "migrations" / "env.py").write_text(payload)
    (ini.parent / "migrations" / "versions" / "zz_hook.py").write_text(payload)
    path_before, modules_before = list(sys.path), set(sys.modules)

    assert check_script_location(str(ini)) == str(ini)
    assert check_script_location(str(ini.parent / "migrations")) == str(ini.parent / "migrations")

    assert not sentinel.exists()
    assert sys.path == path_before
    assert set(sys.modules) == modules_before


def test_a_folder_named_like_a_revision_file_does_not_hide_the_real_error(
    make_project: Callable[..., Any],
) -> None:
    """Naming the file to blame reads the versions folder; what cannot be read is skipped."""
    project = make_project("linear")
    (project.location / "versions" / "a0_not_a_file.py").mkdir()
    bad = revision_file(project, "b2")
    edit(bad, "down_revision = 'a1'", "down_revision = 'zz9'")

    exc = broken(project.location)

    assert exc.file is not None
    assert Path(exc.file).name == bad.name
    assert_readable(exc, "down_revision", "'zz9'")
