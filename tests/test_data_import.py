"""``data import``: one symbol picked from a multi-symbol file, labelled with its asset class."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tradepilot.app.build import RunSpec
from tradepilot.app.session import run_backtest
from tradepilot.cli import data as data_cli
from tradepilot.data import catalog
from tradepilot.data.loaders import DataError
from tradepilot.model.enums import AssetClass
from tradepilot.strategy import registry

EQUITIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "equities"
MINUTE_BARS = EQUITIES / "lean_us_equity_minute_trade_bars.csv.gz"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRADEPILOT_HOME", str(tmp_path))
    return tmp_path


def test_series_symbol_keeps_only_that_symbol_and_labels_an_equity(home: Path) -> None:
    ds = catalog.import_file(MINUTE_BARS, "spy", "bars", series_symbol="SPY")
    assert (ds.symbol, ds.base, ds.quote, ds.lot_size) == ("SPY", "SPY", "USD", "1")
    assert ds.asset_class == "EQUITY"
    assert ds.instrument().asset_class is AssetClass.EQUITY
    stored = Path(ds.path)
    assert stored.parent == home / "data" and stored.suffix == ".csv"
    rows = stored.read_text().splitlines()
    assert len(rows) == 1 + 4_839  # header + the SPY rows, not the five-symbol file
    assert all(r.startswith('"SPY"') for r in rows[1:])
    # the backtest that failed on row 4840 (the next symbol's first bar) now runs
    spec = RunSpec(dataset="spy", params=registry.run_params("ema_cross", {}))
    _, summary = run_backtest(spec, home / "spy.db")
    assert summary.events == 4_839 and summary.fills > 0 and not summary.denials
    assert summary.equity_sampling.startswith("each 1 min bar, 4,839 points")
    assert "sqrt(98,280)" in summary.equity_sampling  # 252 sessions of 390 minutes


def test_crypto_defaults_are_kept(home: Path) -> None:
    bundled = catalog.find(catalog.DEFAULT_DATASET).path
    ds = catalog.import_file(bundled, "btc", "bars")
    assert (ds.symbol, ds.base, ds.quote, ds.asset_class) == ("BTCUSDT", "BTC", "USDT", "CRYPTO")


def test_import_refuses_to_overwrite_and_bad_names(home: Path) -> None:
    catalog.import_file(MINUTE_BARS, "spy", "bars", series_symbol="SPY")
    before = (home / "data" / "spy.csv").read_bytes()
    with pytest.raises(DataError, match="exists already"):
        catalog.import_file(MINUTE_BARS, "spy", "bars", series_symbol="IBM")
    assert (home / "data" / "spy.csv").read_bytes() == before
    for bad in ("../x", ".hidden", ""):
        with pytest.raises(DataError):
            catalog.import_file(MINUTE_BARS, bad, "bars", series_symbol="SPY")
    with pytest.raises(DataError, match="no rows with symbol 'QQQ'"):
        catalog.import_file(MINUTE_BARS, "qqq", "bars", series_symbol="QQQ")
    assert not (home / "data" / "qqq.json").exists()


def test_cli_reports_the_instrument_and_refuses_in_one_line(home: Path) -> None:
    app = typer.Typer()
    data_cli.register(app)
    runner = CliRunner()
    ok = runner.invoke(
        app, ["data", "import", str(MINUTE_BARS), "--name", "ibm", "--series-symbol", "IBM"]
    )
    assert ok.exit_code == 0, ok.output
    assert "IBM (equity, IBM/USD)" in ok.output
    again = runner.invoke(
        app, ["data", "import", str(MINUTE_BARS), "--name", "ibm", "--series-symbol", "IBM"]
    )
    assert again.exit_code == 2 and "Traceback" not in again.output
    bad = runner.invoke(
        app, ["data", "import", str(MINUTE_BARS), "--name", "x", "--asset-class", "bonds"]
    )
    assert bad.exit_code == 2
