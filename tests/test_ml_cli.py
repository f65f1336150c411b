"""``tradepilot model``: train on real candles (small), list, show, evaluate, and one-line
errors for bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ml_helpers import BTC
from tradepilot.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def candles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 9,000 real bars (6 days) as a file of their own."""
    path = tmp_path_factory.mktemp("data") / "btc.csv.gz"
    with gzip.open(BTC, "rt") as src, gzip.open(path, "wt") as dst:
        for i, line in enumerate(src):
            if i > 9_000:
                break
            dst.write(line)
    return path


def _config(tmp_path: Path, **over: object) -> Path:
    cfg = {
        "name": "tiny",
        "data": {"symbol": "BTCUSDT"},
        "label": {"kind": "forward", "horizon": 30, "fee": 0.001},
        "members": [
            {"name": "logreg", "kind": "logreg"},
            {"name": "forest", "kind": "forest", "params": {"n_estimators": 5}},
            {"name": "lightgbm", "kind": "lightgbm", "params": {"n_estimators": 10}},
            {"name": "xgboost", "kind": "xgboost", "params": {"n_estimators": 10}},
        ],
        "walk_forward": {"folds": 2, "embargo": 30},
        "backtest": {"config": str(ROOT / "examples" / "configs" / "crypto_ensemble.yaml")},
        **over,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_list_show_evaluate(tmp_path: Path, candles: Path) -> None:
    out = tmp_path / "models" / "tiny"
    report = tmp_path / "report.json"
    res = runner.invoke(
        app,
        ["model", "train", "--config", str(_config(tmp_path)), "--data", str(candles),
         "--out", str(out), "--report", str(report)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    for text in ("fold 0", "fold 1", "out of sample, all folds", "baseline", "ensemble",
                 "engine backtest of the out-of-sample periods", "buy and hold"):  # fmt: skip
        assert text in res.output
    payload = json.loads(report.read_text())
    assert payload["backtest"]["summary"]["end_equity"]
    assert payload["manifest"]["walk_forward"]["overall"]["ensemble"]["n"] > 100
    assert (out / "manifest.json").exists()
    res = runner.invoke(app, ["model", "list", "--root", str(tmp_path / "models")])
    assert res.exit_code == 0 and "bundled" in res.output and "tiny" in res.output
    res = runner.invoke(app, ["model", "show", str(out)])
    assert res.exit_code == 0 and "tod_cos" in res.output and "scikit-learn" in res.output
    res = runner.invoke(app, ["model", "evaluate", "bundled", "--data", str(candles)])
    assert res.exit_code == 0, res.output
    assert "overlap the training window" in res.output and "ensemble" in res.output


def test_the_shuffled_label_control_writes_no_artifact(tmp_path: Path, candles: Path) -> None:
    res = runner.invoke(
        app,
        ["model", "train", "--config", str(_config(tmp_path, backtest={})), "--data",
         str(candles), "--out", str(tmp_path / "m"), "--shuffle-labels"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "no artifact written" in res.output and not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "show", "nowhere"], "no model artifact here"),
        (["model", "train", "--config", "nope.yaml"], "no such training configuration"),
        (["model", "evaluate", "bundled", "--data", "nope.csv"], "no such data file"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"label": {"kind": "up"}}, "label: label kind must be one of"),
        ({"walk_forward": {"folds": 0}}, "walk_forward: walk-forward needs at least one fold"),
        ({"members": [{"kind": "svm"}]}, "members[0].kind must be one of"),
        ({"colour": 1}, "unknown key(s) colour"),
    ],
)
def test_bad_training_configuration_values(tmp_path: Path, over: dict[str, object],
                                           message: str) -> None:  # fmt: skip
    res = runner.invoke(app, ["model", "train", "--config", str(_config(tmp_path, **over))])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_corrupt_and_mismatched_artifacts_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{")
    res = runner.invoke(app, ["model", "show", str(tmp_path)])
    assert res.exit_code == 2 and "unreadable manifest" in res.output
    import shutil

    from tradepilot.strategy.ml import artifacts

    copy = tmp_path / "copy"
    shutil.copytree(artifacts.bundled_path(), copy)
    body = json.loads((copy / "manifest.json").read_text())
    body["features"]["names"].reverse()
    (copy / "manifest.json").write_text(json.dumps(body))
    res = runner.invoke(app, ["model", "evaluate", str(copy), "--data", str(BTC)])
    assert res.exit_code == 2 and "retrain the model" in res.output
