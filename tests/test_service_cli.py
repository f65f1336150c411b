"""``tradepilot service install|status``: a unit that resumes, never overwritten silently."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api_helpers import backtest_journal, make_keys, serving
from tradepilot.cli.main import app

runner = CliRunner()
CONFIG = Path(__file__).resolve().parents[1] / "examples" / "configs" / "crypto_momentum.yaml"


def _install(tmp_path: Path, *extra: str) -> tuple[int, str]:
    res = runner.invoke(
        app,
        [
            "service",
            "install",
            str(CONFIG),
            "--name",
            "btc",
            "--directory",
            str(tmp_path / "units"),
            "--workdir",
            str(tmp_path),
            *extra,
        ],
    )
    return res.exit_code, res.output


def _exec_start(unit: str) -> str:
    (line,) = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


def test_unit_restarts_on_failure_and_resumes_once_the_journal_exists(tmp_path: Path) -> None:
    code, out = _install(tmp_path, "--schedule", "Mon..Fri 09:25 America/New_York")
    assert code == 0, out
    unit = (tmp_path / "units" / "tradepilot-btc.service").read_text()
    assert "Restart=on-failure" in unit and "EnvironmentFile=-" in unit
    timer = (tmp_path / "units" / "tradepilot-btc.timer").read_text()
    assert "OnCalendar=Mon..Fri 09:25 America/New_York" in timer
    # run the unit's command line with `echo` in place of the shell's exec: which branch?
    argv = shlex.split(_exec_start(unit))
    assert argv[:2] == ["/bin/sh", "-c"]
    script = argv[2].replace("exec ", "echo ")
    first = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    assert "--resume" not in first.stdout and "--session btc" in first.stdout
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "btc.db").write_bytes(b"")
    again = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    assert again.stdout.strip().endswith("--resume")


def test_existing_units_are_never_overwritten_silently(tmp_path: Path) -> None:
    assert _install(tmp_path)[0] == 0
    path = tmp_path / "units" / "tradepilot-btc.service"
    path.write_text("# edited by hand\n")
    code, out = _install(tmp_path)
    assert code != 0 and "--overwrite" in out and "Traceback" not in out
    assert path.read_text() == "# edited by hand\n"
    assert _install(tmp_path, "--overwrite")[0] == 0
    assert "Restart=on-failure" in path.read_text()


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 70, "a b"])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    res = runner.invoke(
        app, ["service", "install", str(CONFIG), "--name", name, "--directory", str(tmp_path)]
    )
    assert res.exit_code != 0 and "session name" in res.output
    assert list(tmp_path.iterdir()) == []


def test_status_asks_a_running_service(tmp_path: Path) -> None:
    keys = make_keys()
    journal = backtest_journal(tmp_path / "bt.db")
    with serving(journal, keys) as (url, _):
        env = {**os.environ, "TP_KEY": keys.read}
        res = runner.invoke(
            app, ["service", "status", "--url", url, "--key-env", "TP_KEY"], env=env
        )
        assert res.exit_code == 0, res.output
        assert "backtest session, stopped, ACTIVE" in res.output
        bad = runner.invoke(
            app,
            ["service", "status", "--url", url, "--key-env", "TP_KEY"],
            env={**env, "TP_KEY": "tp_x_y"},
        )
        assert bad.exit_code != 0 and "401" in bad.output
    res = runner.invoke(app, ["service", "status", "--url", url, "--key-env", "TP_KEY"], env=env)
    assert res.exit_code != 0 and "cannot reach" in res.output
