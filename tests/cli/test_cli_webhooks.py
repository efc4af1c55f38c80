"""``migdash webhook``: the same guard as the pages, URLs masked, secrets never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from migdash.cli import main
from migdash.jobs import delivery

SECRET = "cli-secret-0123456789"  # noqa: S105 - a test key


def run(runner: FlaskCliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://[::1]:9/x",
        "http://10.1.1.1/x",
        "http://192.168.0.10/x",
        "http://intranet.example/x",
    ],
)
def test_an_internal_receiver_is_refused_unless_allowed(
    app: Flask, runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    real = delivery.resolve_host
    monkeypatch.setattr(
        delivery,
        "resolve_host",
        lambda host, port: ["192.168.7.7"] if host == "intranet.example" else real(host, port),
    )
    code, output = run(runner, "webhook", "add", "hook", "--url", url, "--secret", SECRET)
    assert code == 1
    assert "loopback, private or reserved" in output
    assert run(runner, "webhook", "list", "--json") == (0, "[]\n")

    code, output = run(
        runner, "webhook", "add", "hook", "--url", url, "--secret", SECRET, "--allow-private"
    )
    assert code == 0, output
    assert len(json.loads(run(runner, "webhook", "list", "--json")[1])) == 1


def test_list_and_deliveries_mask_the_url_and_hide_the_secret(runner: FlaskCliRunner) -> None:
    url = "http://127.0.0.1:8000/services/PATHTOKEN"
    code, output = run(
        runner,
        *("webhook", "add", "chat", "--url", url, "--secret", SECRET, "--allow-private"),
        *("--format", "slack", "--event", "job.failed", "--event", "drift.detected"),
    )
    assert code == 0, output
    outputs = [output]
    for args in (["list"], ["list", "--json"], ["deliveries", "chat", "--json"]):
        code, text = run(runner, "webhook", *args)
        assert code == 0, text
        outputs.append(text)
    (listed,) = json.loads(outputs[2])
    assert listed == {
        "name": "chat",
        "url": "http://127.0.0.1:8000/***",
        "project": None,
        "environment": None,
        "format": "slack",
        "events": ["job.failed", "drift.detected"],
        "active": True,
        "allow_private": True,
    }
    assert json.loads(outputs[3]) == []
    for text in outputs:
        assert "PATHTOKEN" not in text
        assert SECRET not in text


def test_remove_and_unknown_names(runner: FlaskCliRunner) -> None:
    run(
        runner,
        "webhook",
        "add",
        "gone",
        "--url",
        "http://127.0.0.1/x",
        "--secret",
        SECRET,
        "--allow-private",
    )
    assert run(runner, "webhook", "remove", "gone")[0] == 0
    code, output = run(runner, "webhook", "remove", "gone")
    assert code == 1
    assert "no webhook 'gone'" in output
    code, output = run(
        runner,
        "webhook",
        "add",
        "bad",
        "--url",
        "http://127.0.0.1/x",
        "--secret",
        SECRET,
        "--allow-private",
        "--event",
        "job.exploded",
    )
    assert (code, "unknown event 'job.exploded'" in output) == (1, True)


def test_rotate_key_re_encrypts_webhook_urls_and_secrets(tmp_path: Path) -> None:
    """Old key only -> add a webhook; new,old -> rotate; new only -> it still reads."""
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "MIGDASH_INSTANCE": str(tmp_path / "inst"),
    }

    def migdash(key: str, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "migdash", *args],
            env={**base, "MIGDASH_ENCRYPTION_KEY": key},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    migdash(
        old,
        "webhook",
        "add",
        "w",
        "--url",
        "http://127.0.0.1:9/x",
        "--secret",
        SECRET,
        "--allow-private",
    )
    migdash(f"{new},{old}", "db", "rotate-key")
    assert "http://127.0.0.1:9/***" in migdash(new, "webhook", "list")
