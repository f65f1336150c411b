"""Passive fills on a real L2 session never exceed what the market traded around them."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from tradepilot.analytics.execution import analyze_journal
from tradepilot.analytics.market import market_from_book_session
from tradepilot.app.compare import CompareSpec, default_session_dir, run_compare
from tradepilot.cli.report import PARTICIPATION_NOTE, compare_table
from tradepilot.model.events import OrderFilled
from tradepilot.persistence.journal import read_events

PASSIVE = ("limit", "chaser")


@pytest.fixture(scope="module")
def passive(tmp_path_factory: pytest.TempPathFactory) -> list:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("passive")
    return run_compare(CompareSpec(quantity="20", algorithms=PASSIVE, out_dir=out))


def test_a_passive_buy_at_the_bid_does_not_outtrade_the_market(passive: list) -> None:  # type: ignore[type-arg]
    market = market_from_book_session(default_session_dir(), "BTCUSDT.BINANCE")
    assert market.trades is not None
    for r in passive:
        p = r.parent
        assert p is not None
        # today's rule filled 20 BTC in 3.6 s while 0.30 BTC traded: participation 5,395 %
        assert 0 < p.participation <= 1.0, (r.algorithm, p.participation)
        assert p.time_to_last_fill_ns is not None and p.time_to_last_fill_ns > 10 * 10**9
        fills = [e for e in read_events(r.journal) if isinstance(e, OrderFilled)]
        maker = sum(f.last_qty for f in fills if f.liquidity == "MAKER") / 1e9
        # every second, what we filled passively stays within what traded up to then
        t0 = fills[0].ts
        for f in fills:
            ours = sum(g.last_qty for g in fills if g.liquidity == "MAKER" and g.ts <= f.ts) / 1e9
            _, volume = market.trades.vwap(t0 - 10**9, f.ts)
            assert ours <= volume + 1e-9
        assert maker > 0


def test_participation_over_100_percent_is_flagged(passive: list) -> None:  # type: ignore[type-arg]
    assert all(r.parent.participation <= 1.0 for r in passive)
    console = Console(width=200, record=True)
    console.print(compare_table(passive, "passive"))
    assert PARTICIPATION_NOTE not in console.export_text()
    # a run that filled more than the market traded is flagged in the table
    from dataclasses import replace
    from types import SimpleNamespace

    parent = replace(passive[0].parent, participation=2.5)
    over = [SimpleNamespace(algorithm="limit", error="", parent=parent)]
    console = Console(width=200, record=True)
    console.print(compare_table(over, "over"))
    text = console.export_text()
    assert "!250.0" in text and PARTICIPATION_NOTE in text


def test_analysis_reads_back_the_same_participation(passive: list, tmp_path: Path) -> None:  # type: ignore[type-arg]
    market = market_from_book_session(default_session_dir(), "BTCUSDT.BINANCE")
    for r in passive:
        again = analyze_journal(r.journal, market.prices, market.trades).parents[0]
        assert again.participation == pytest.approx(r.parent.participation)
