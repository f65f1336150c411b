"""One equity series per run: the CLI summary, the paper report and the HTML report agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tradepilot.analytics.equity import closed_trades, equity_curve, run_performance
from tradepilot.analytics.market import load_market
from tradepilot.analytics.report import render_report
from tradepilot.app.build import RunSpec
from tradepilot.app.session import run_backtest
from tradepilot.model import fixed
from tradepilot.model.events import OrderFilled
from tradepilot.persistence.journal import read_events
from tradepilot.strategy import registry


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    path = tmp_path_factory.mktemp("eq") / "bt.db"
    spec = RunSpec(params=registry.run_params("ema_cross", {}))
    prepared, summary = run_backtest(spec, path)
    return path, prepared, summary


def test_summary_and_report_measure_the_same_series(run: tuple[Path, object, object]) -> None:
    path, _, summary = run
    events = read_events(path)
    market = load_market("btcusdt-1m-sample")
    perf, sampling = run_performance(equity_curve(events, market.prices), closed_trades(events))
    # every minute (each bar), not the engine's hourly sample
    assert sampling.interval_ns == 60 * 10**9
    assert sampling.points == 9_881
    assert summary.max_drawdown_pct == pytest.approx(perf.max_drawdown * 100.0, rel=1e-9)  # type: ignore[attr-defined]
    assert summary.sharpe == pytest.approx(perf.sharpe_ratio, rel=1e-9)  # type: ignore[attr-defined]
    assert summary.sortino == pytest.approx(perf.sortino_ratio, rel=1e-9)  # type: ignore[attr-defined]
    assert summary.equity_sampling == "each 1 min bar, 9,881 points; annualised x sqrt(525,600)"  # type: ignore[attr-defined]
    html = render_report(events, market)
    assert "<h2>Performance</h2>" in html
    shown = re.search(r"<td>Sharpe \(rf 0\)</td><td>([^<]+)</td>", html)
    assert shown is not None and shown.group(1) == f"{perf.sharpe_ratio:,.3f}"
    dd = re.search(r"<td>max drawdown</td><td>([^<]+) %</td>", html)
    assert dd is not None and float(dd.group(1)) == pytest.approx(
        summary.max_drawdown_pct,  # type: ignore[attr-defined]
        abs=5e-4,
    )
    assert "each 1 min bar, 9,881 points" in html


def test_round_trips_from_the_journal_match_the_engine(run: tuple[Path, object, object]) -> None:
    path, prepared, _ = run
    trips = closed_trades(read_events(path))
    engine_trips = prepared.engine.portfolio.round_trips  # type: ignore[attr-defined]
    assert len(trips) == len(engine_trips) > 0
    for mine, theirs in zip(trips, engine_trips, strict=True):
        assert mine.pnl == pytest.approx(theirs.pnl / fixed.SCALE, abs=1e-6)
        assert (mine.entry_ts, mine.exit_ts) == (theirs.entry_ts, theirs.exit_ts)


def test_the_default_run_trades_a_share_of_equity(run: tuple[Path, object, object]) -> None:
    path, _, _ = run
    first = next(e for e in read_events(path) if isinstance(e, OrderFilled))
    notional = fixed.to_float(first.last_qty) * fixed.to_float(first.last_px)
    assert 45_000 < notional <= 50_000  # half of the $100k capital, not 0.01 BTC (~$500)
    assert registry.run_params("ema_cross", {}) == {"equity_fraction": "0.5"}
    assert registry.run_params("ema_cross", {"quantity": "0.2"}) == {"quantity": "0.2"}
    assert registry.run_params("momentum", {"fast": "3"})["equity_fraction"] == "0.5"


def test_bad_equity_fraction_is_refused() -> None:
    for bad in ("-0.1", "1.5", "nan"):
        with pytest.raises(ValueError):
            registry.build("ema_cross", "BTCUSDT.SIM", {"equity_fraction": bad})
