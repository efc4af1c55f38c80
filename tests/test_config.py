"""Settings are read at call time, parsed strictly, and the factory does no work."""

from __future__ import annotations

from pathlib import Path

import pytest

from migdash import create_app
from migdash.config import ensure_instance, load_settings, validate
from migdash.errors import ConfigError


def test_environment_overrides_defaults_and_mapping_overrides_environment(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "MIGDASH_INSTANCE": str(tmp_path),
            "MIGDASH_PROBE_TIMEOUT": "2.5",
            "MIGDASH_REFRESH_SECONDS": "10",
        },
        {"MIGDASH_REFRESH_SECONDS": 7},
    )
    assert settings["MIGDASH_PROBE_TIMEOUT"] == 2.5
    assert settings["MIGDASH_REFRESH_SECONDS"] == 7
    assert settings["MIGDASH_DATABASE_URL"] == f"sqlite:///{tmp_path / 'migdash.db'}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MIGDASH_PROBE_TIMEOUT", "soon"),
        ("MIGDASH_PROBE_TIMEOUT", "0"),
        ("MIGDASH_PROBE_WORKERS", "1.5"),
        ("MIGDASH_SECURE_COOKIES", "maybe"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({"MIGDASH_INSTANCE": str(tmp_path), name: value})


def test_secret_key_is_required_outside_testing(tmp_path: Path) -> None:
    settings = load_settings({"MIGDASH_INSTANCE": str(tmp_path)})
    with pytest.raises(ConfigError, match="secret key") as excinfo:
        validate(settings)
    assert "MIGDASH_SECRET_KEY" in excinfo.value.hint


def test_ensure_instance_writes_a_private_key_once(tmp_path: Path) -> None:
    ensure_instance(tmp_path / "inst")
    key_file = tmp_path / "inst" / "secret_key"
    first = key_file.read_text()
    ensure_instance(tmp_path / "inst")
    assert key_file.read_text() == first
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert (
        load_settings({"MIGDASH_INSTANCE": str(tmp_path / "inst")})["MIGDASH_SECRET_KEY"] == first
    )


def test_factory_connects_to_nothing_and_creates_no_files(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    app = create_app({"TESTING": True, "MIGDASH_INSTANCE": str(instance)})
    assert app.instance_path == str(instance)
    assert not instance.exists()


def test_the_readme_documents_every_variable_migdash_reads() -> None:
    """Keep README.md true: each MIGDASH_* variable read anywhere has a row in its table."""
    import re
    from pathlib import Path

    from migdash.config import ENVIRONMENT
    from migdash.engine.child import EXTRA_VARIABLE

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    documented = set(re.findall(r"^\| `(MIGDASH_[A-Z_]+)` \|", readme, re.MULTILINE))
    read = {*ENVIRONMENT, EXTRA_VARIABLE, "MIGDASH_CLI_USER", "MIGDASH_SERVER", "MIGDASH_TOKEN"}
    assert read - documented == set(), "document these in README.md's configuration table"
    assert documented - read == set(), "README.md documents variables nothing reads"
