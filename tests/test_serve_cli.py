"""``tradepilot keys`` and ``tradepilot serve``: keys stored hashed, clear one-line errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api_helpers import backtest_journal
from tradepilot.cli.main import app

runner = CliRunner()


def test_keys_are_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    res = runner.invoke(
        app, ["keys", "create", "--scope", "admin", "--label", "ops", "--keys", str(keys)]
    )
    assert res.exit_code == 0, res.output
    (secret,) = [line for line in res.stdout.splitlines() if line.startswith("tp_")]
    text = keys.read_text()
    assert secret not in text and secret.split("_")[2] not in text
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    (entry,) = json.loads(text)["keys"]
    assert entry["scope"] == "admin" and entry["label"] == "ops"
    listed = runner.invoke(app, ["keys", "list", "--keys", str(keys)])
    assert entry["key_id"] in listed.stdout and secret not in listed.stdout
    assert (
        runner.invoke(app, ["keys", "revoke", entry["key_id"], "--keys", str(keys)]).exit_code == 0
    )
    assert json.loads(keys.read_text())["keys"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--scope", "root"], "unknown scope"),
        (["keys", "revoke", "nope"], "no key 'nope'"),
        (["serve", "JOURNAL"], "no API keys"),
        (["serve", "missing.db", "--keys", "KEYS"], "no journal at missing.db"),
        (["serve", "JOURNAL", "--keys", "KEYS", "--alerts", "BOMB"], "aliases"),
        (["serve", "JOURNAL", "--keys", "KEYS", "--alerts", "NOALERTS"], "no `alerts:` mapping"),
        (["serve", "JOURNAL", "--keys", "KEYS", "--alerts", "BADHOOK"], "http(s)"),
        (["serve", "JOURNAL", "--keys", "KEYS", "--port", "0"], "greater than or equal to 1"),
        (["serve", "JOURNAL", "--keys", "CORRUPT"], "cannot read the key file"),
    ],
)
def test_bad_input_is_a_one_line_error(
    tmp_path: Path, args: list[str], message: str, built_journal: Path
) -> None:
    keys = tmp_path / "keys.json"
    runner.invoke(app, ["keys", "create", "--keys", str(keys)])
    files = {
        "JOURNAL": str(built_journal),
        "KEYS": str(keys),
        "BOMB": "a: &a [1, 1]\nalerts: [*a, *a]\n",
        "NOALERTS": "webhook: {url: 'http://127.0.0.1:9'}\n",
        "BADHOOK": "alerts: {webhook: {url: 'ftp://x'}}\n",
        "CORRUPT": "{not json",
    }
    argv = []
    for arg in args:
        if arg in ("BOMB", "NOALERTS", "BADHOOK", "CORRUPT"):
            path = tmp_path / f"{arg.lower()}.txt"
            path.write_text(files[arg])
            argv.append(str(path))
        else:
            argv.append(files.get(arg, arg))
    if args[:2] == ["keys", "revoke"] or args[:2] == ["keys", "create"]:
        argv += ["--keys", str(keys)]
    res = runner.invoke(app, argv, catch_exceptions=False)
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    assert message in res.output


@pytest.fixture(scope="module")
def built_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backtest_journal(tmp_path_factory.mktemp("serve") / "bt.db")
