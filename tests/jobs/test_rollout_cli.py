"""``migdash rollout``: create, show progress per wave, wait with a progress bar, control."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from migdash.cli import main
from tests.jobs.rollout_fleet import build_fleet


def test_create_show_wait_and_resume_from_the_command_line(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, run_queue: Callable[[], int]
) -> None:
    fleet = build_fleet(app, tmp_path, 3, broken=[1])
    created = runner.invoke(
        main,
        [
            "rollout",
            "create",
            "fleet",
            "heads",
            "--env",
            "dev",
            "--canary",
            "1",
            "--wave",
            "2",
            "--json",
        ],
    )
    assert created.exit_code == 0, created.output
    rollout_id = json.loads(created.stdout)["id"]
    assert json.loads(created.stdout)["state"] == "running"

    fleet.drive(run_queue)
    shown = runner.invoke(main, ["rollout", "show", str(rollout_id)])
    assert shown.exit_code == 0, shown.output
    assert "halted after wave 1: 1 target(s) failed: t01" in shown.output
    assert "the canary: 1 target(s): 1 done, 0 running, 0 failed, 0 waiting" in shown.output
    assert "wave 1: 2 target(s): 1 done, 0 running, 1 failed, 0 waiting" in shown.output
    assert "t01 (job " in shown.output
    waited = runner.invoke(main, ["rollout", "show", str(rollout_id), "--wait"])
    assert waited.exit_code == 1
    assert f"rollout {rollout_id} ended halted" in waited.output

    fleet.fix("t01")
    resumed = runner.invoke(main, ["rollout", "resume", str(rollout_id), "--json"])
    assert json.loads(resumed.stdout)["state"] == "running"
    fleet.drive(run_queue)
    waited = runner.invoke(main, ["rollout", "show", str(rollout_id), "--wait", "--json"])
    assert waited.exit_code == 0, waited.output
    data = json.loads(waited.stdout)
    assert data["state"] == "succeeded"
    assert [(w["name"], w["done"]) for w in data["waves"]] == [("the canary", 1), ("wave 1", 2)]
    assert f"rollout {rollout_id}" in waited.stderr, "the progress bar went to stderr"
    listed = runner.invoke(main, ["rollout", "list"])
    assert f"{rollout_id}\tsucceeded\tfleet to heads" in listed.output
