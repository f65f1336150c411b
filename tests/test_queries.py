"""The query API over a journal, on both backends, against the engine's own state.

The PostgreSQL tests need the server at ``TRADEPILOT_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); when it cannot be reached
they fail - they never skip.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from test_projection import IID, Run, default_scenario
from test_snapshots import Target, connect_pg, make_target
from tradepilot.model import fixed
from tradepilot.model.enums import OrderStatus
from tradepilot.model.events import OrderFilled, ReconciliationCompleted, TradingStateChanged
from tradepilot.persistence import (
    JournalError,
    JournalQueries,
    ProjectingJournal,
    Snapshotter,
    SqliteJournal,
)
from tradepilot.persistence.queries import order_to_dict, position_to_dict

pytestmark = [
    pytest.mark.filterwarnings("error::tradepilot.persistence.integrity.JournalRecoveryWarning"),
    pytest.mark.filterwarnings("error::tradepilot.persistence.snapshots.SnapshotWarning"),
]


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[Engine]:
    engine = connect_pg()
    yield engine
    engine.dispose()


@pytest.fixture
def scenario() -> Run:
    return default_scenario()


def write_scenario(target: Target, run: Run, upto: int | None = None, every: int = 700) -> None:
    """The scenario's events written as the kernel would, with snapshots every ``every``."""
    with target.open() as journal:
        proj = run.projection()
        writer = ProjectingJournal(journal, proj, Snapshotter(journal, every=every))
        for event in run.events[:upto]:
            writer.append(event)


def open_queries(target: Target, **kwargs: Any) -> JournalQueries:
    session = target.session if target.pg is not None else None
    return JournalQueries.open(target.location, session, **kwargs)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def queries(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JournalQueries]:
    pg = request.getfixturevalue("pg_engine") if request.param == "postgres" else None
    target = make_target(request.param, tmp_path_factory.mktemp("queries"), pg)
    try:
        write_scenario(target, default_scenario())
        with open_queries(target) as q:
            yield q
    finally:
        target.cleanup()


def expected_orders(run: Run) -> list[dict[str, Any]]:
    return [order_to_dict(o) for o in run.engine.orders.orders.values()]


# -- orders ----------------------------------------------------------------------------------------
def test_all_orders_match_the_engine(queries: JournalQueries, scenario: Run) -> None:
    orders = queries.orders()
    assert orders == expected_orders(scenario)
    engine_order = next(iter(scenario.engine.orders.orders.values()))
    first = orders[0]
    assert first["client_order_id"] == engine_order.client_order_id
    assert first["quantity"] == fixed.to_str(engine_order.quantity)
    assert first["side"] in ("BUY", "SELL")
    assert first["status"] == engine_order.status.value
    assert isinstance(first["ts_init"], int)


def test_orders_by_status(queries: JournalQueries, scenario: Run) -> None:
    everything = expected_orders(scenario)
    for status in OrderStatus:
        mine = [o for o in everything if o["status"] == status.value]
        assert queries.orders(status=status.value) == mine
        assert queries.orders(status=status) == mine
        assert queries.orders(status=status.value.lower()) == mine
    open_ = [o for o in everything if o["is_open"]]
    closed = [o for o in everything if not o["is_open"]]
    assert open_ and closed
    assert queries.orders(status="open") == open_
    assert queries.orders(status="CLOSED") == closed
    both = [o for o in everything if o["status"] in ("FILLED", "CANCELED")]
    assert queries.orders(status=["FILLED", OrderStatus.CANCELED]) == both
    with pytest.raises(ValueError, match="unknown order status 'DONE'"):
        queries.orders(status="DONE")


def test_orders_by_instrument_and_strategy(queries: JournalQueries, scenario: Run) -> None:
    everything = expected_orders(scenario)
    assert queries.orders(instrument=IID) == everything
    assert queries.orders(instrument="ETHUSDT.SIM") == []
    for strategy in ("busy", "other"):
        mine = [o for o in everything if o["strategy_id"] == strategy]
        assert mine
        assert queries.orders(strategy=strategy) == mine
    assert queries.orders(strategy="nobody") == []
    combined = [o for o in everything if o["strategy_id"] == "other" and o["status"] == "DENIED"]
    assert combined
    assert queries.orders(status="DENIED", strategy="other", instrument=IID) == combined


def test_orders_by_time_and_limit(queries: JournalQueries, scenario: Run) -> None:
    everything = expected_orders(scenario)
    times = sorted({o["ts_init"] for o in everything})
    since, until = times[len(times) // 4], times[len(times) // 2]
    window = [o for o in everything if since <= o["ts_init"] < until]
    assert window and window[0]["ts_init"] == since and window[-1]["ts_init"] < until
    assert queries.orders(since=since, until=until) == window
    assert queries.orders(since=since) == [o for o in everything if o["ts_init"] >= since]
    assert queries.orders(until=until) == [o for o in everything if o["ts_init"] < until]
    assert queries.orders(since=until, until=since) == []
    assert queries.orders(limit=5) == everything[:5]
    assert queries.orders(limit=3, newest_first=True) == everything[::-1][:3]
    assert queries.orders(since=since, until=until, limit=2) == window[:2]
    assert queries.orders(status="OPEN", newest_first=True) == [
        o for o in everything[::-1] if o["is_open"]
    ]
    assert queries.orders(limit=0) == []
    with pytest.raises(ValueError, match="limit must not be negative"):
        queries.orders(limit=-1)


def test_one_order(queries: JournalQueries, scenario: Run) -> None:
    for cid in list(scenario.engine.orders.orders)[::37]:
        assert queries.order(cid) == order_to_dict(scenario.engine.orders.orders[cid])
    assert queries.order("no-such-order") is None


# -- fills, positions, balances ------------------------------------------------------------
def expected_fills(run: Run) -> list[dict[str, Any]]:
    out = []
    for seq, event in enumerate(run.events, 1):
        if isinstance(event, OrderFilled):
            out.append(
                {
                    "seq": seq,
                    "ts": event.ts,
                    "client_order_id": event.client_order_id,
                    "trade_id": event.trade_id,
                    "instrument_id": event.instrument_id,
                    "strategy_id": event.strategy_id,
                    "side": "BUY" if event.side > 0 else "SELL",
                    "quantity": fixed.to_str(event.last_qty),
                    "price": fixed.to_str(event.last_px),
                    "notional": fixed.to_str(fixed.mul(event.last_px, event.last_qty)),
                    "fee": fixed.to_str(event.fee),
                    "fee_currency": event.fee_currency,
                    "liquidity": event.liquidity,
                }
            )
    return out


def test_fills_with_each_filter(queries: JournalQueries, scenario: Run) -> None:
    fills = expected_fills(scenario)
    assert len(fills) == scenario.engine.portfolio.fill_count > 20
    assert queries.fills() == fills
    assert queries.fills(instrument=IID) == fills
    assert queries.fills(instrument="ETHUSDT.SIM") == []
    for strategy in ("busy", "other"):
        mine = [f for f in fills if f["strategy_id"] == strategy]
        assert mine and queries.fills(strategy=strategy) == mine
    since, until = fills[len(fills) // 3]["ts"], fills[2 * len(fills) // 3]["ts"]
    assert queries.fills(since=since, until=until) == [f for f in fills if since <= f["ts"] < until]
    assert queries.fills(limit=4) == fills[:4]
    assert (
        queries.fills(strategy="other", limit=2)
        == [f for f in fills if f["strategy_id"] == "other"][:2]
    )
    cid = fills[-1]["client_order_id"]
    assert queries.fills(client_order_id=cid) == [f for f in fills if f["client_order_id"] == cid]
    assert {f["liquidity"] for f in fills} == {"MAKER", "TAKER"}


def expected_locked(run: Run, currency: str) -> int:
    """Buys lock quote at their price (a market buy at the last fill price) plus the larger
    fee, as the venue locks it; sells lock base."""
    pf = run.engine.portfolio
    inst = run.engine.instruments[IID]
    fee_bps = max(inst.maker_fee_bps, inst.taker_fee_bps)
    total = 0
    for order in run.engine.orders.all_open():
        if order.side > 0 and currency == "USDT":
            px = order.price or order.trigger_price or pf.positions[IID].last_px
            notional = fixed.mul(px, order.leaves_qty)
            total += notional + fixed.bps_of(notional, fee_bps)
        elif order.side < 0 and currency == "BTC":
            total += order.leaves_qty
    return total


def test_positions_and_balances(queries: JournalQueries, scenario: Run) -> None:
    pf = scenario.engine.portfolio
    assert queries.positions() == [
        position_to_dict(pf.positions[iid]) for iid in sorted(pf.positions)
    ]
    held = [p for p in queries.positions() if p["quantity"] != "0"]
    assert queries.positions(include_flat=False) == held
    balances = queries.balances()
    assert set(balances) == set(pf.account.total)
    for ccy, amount in pf.account.total.items():
        row = balances[ccy]
        assert row["total"] == fixed.to_str(amount)
        assert fixed.to_raw(row["free"]) == amount - fixed.to_raw(row["locked"])
        assert row["locked"] == fixed.to_str(expected_locked(scenario, ccy))
    assert any(row["locked"] != "0" for row in balances.values())


def test_parent_orders(queries: JournalQueries) -> None:
    parents = queries.parent_orders()
    assert parents and {p["state"] for p in parents} == {"DONE", "RUNNING"}
    assert queries.parent_orders(state="done") == [p for p in parents if p["state"] == "DONE"]
    assert parents[0]["algorithm"] == "TWAP" and parents[0]["quantity"] == "0.008"


# -- events and summary -------------------------------------------------------------------------
def test_events_with_each_filter(queries: JournalQueries, scenario: Run) -> None:
    n = len(scenario.events)
    everything = queries.events()
    assert [e["seq"] for e in everything] == list(range(1, n + 1))
    assert [e["type"] for e in everything] == [type(e).__name__ for e in scenario.events]
    assert everything[0]["type"] == "SessionStarted" and everything[-1]["type"] == "SessionStopped"
    fills = queries.events(kinds=["OrderFilled"])
    assert [e["seq"] for e in fills] == [f["seq"] for f in expected_fills(scenario)]
    assert isinstance(fills[0]["last_qty"], int)
    two = queries.events(kinds={"OrderDenied", "OrderRejected"})
    assert {e["type"] for e in two} == {"OrderDenied", "OrderRejected"}
    assert queries.events(since_seq=n - 3) == everything[-3:]
    assert queries.events(since_seq=10, limit=5) == everything[10:15]
    assert queries.events(kinds=["OrderFilled"], since_seq=fills[2]["seq"], limit=2) == fills[3:5]
    assert queries.events(kinds=["NoSuchKind"]) == [] and queries.events(limit=0) == []
    human = queries.events(kinds=["OrderFilled"], limit=1, human=True)[0]
    raw = fills[0]
    assert human["last_qty"] == fixed.to_str(raw["last_qty"])
    assert human["fee"] == fixed.to_str(raw["fee"]) and human["side"] == raw["side"]
    assert human["trade_id"] == raw["trade_id"]


def test_summary(queries: JournalQueries, scenario: Run) -> None:
    engine = scenario.engine
    pf = engine.portfolio
    summary = queries.summary()
    statuses = Counter(o.status.value for o in engine.orders.orders.values())
    assert summary["orders_by_status"] == dict(sorted(statuses.items()))
    assert summary["orders"] == len(engine.orders.orders)
    assert summary["open_orders"] == len(engine.orders.all_open())
    assert summary["fills"] == pf.fill_count
    assert summary["fees"] == {"USDT": fixed.to_str(pf.total_fees)}
    realized = sum(p.realized_pnl for p in pf.positions.values())
    assert summary["realized_pnl"] == fixed.to_str(realized)
    assert summary["realized_pnl_by_instrument"] == {
        iid: fixed.to_str(p.realized_pnl) for iid, p in pf.positions.items()
    }
    assert summary["traded_notional"] == fixed.to_str(pf.traded_notional)
    assert summary["last_seq"] == summary["events"] == len(scenario.events)
    assert summary["last_ts"] == scenario.events[-1].ts
    assert sum(summary["events_by_kind"].values()) == len(scenario.events)
    assert summary["session"]["mode"] == "backtest"
    assert summary["session"]["stop_reason"] == "end of data"
    assert summary["parent_orders"]["DONE"] >= 1
    changes = [e for e in scenario.events if isinstance(e, TradingStateChanged)]
    assert [c.source for c in changes] == ["manual", "engine", "manual", "manual"]
    last = changes[-1]
    assert summary["trading_state"] == {
        "state": last.state,
        "reason": last.reason,
        "until_ns": last.until_ns,
        "source": "manual",
        "ts": last.ts,
    }
    recons = [e for e in scenario.events if isinstance(e, ReconciliationCompleted)]
    assert summary["reconciliations"] == len(recons) > 0
    assert summary["last_reconciliation"] == {
        "ts": recons[-1].ts,
        "corrections": recons[-1].corrections,
        "details": recons[-1].details,
    }
    assert summary["unknown_events"] == {} and summary["anomalies"] == {}


# -- keeping up with a journal that grows --------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_refresh_folds_only_new_rows(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, scenario: Run
) -> None:
    pg = request.getfixturevalue("pg_engine") if backend == "postgres" else None
    target = make_target(backend, tmp_path, pg)
    half = len(scenario.events) // 2
    try:
        write_scenario(target, scenario, upto=half, every=300)
        with open_queries(target) as auto, open_queries(target, auto_refresh=False) as manual:
            assert auto.projection.last_seq == manual.projection.last_seq == half
            assert auto.refresh() == 0
            with target.open() as writer:  # the engine carries on in another connection
                for event in scenario.events[half:]:
                    writer.append(event)
                writer.flush()
                assert auto.orders() == expected_orders(scenario)  # refreshed by the query
                assert manual.summary()["last_seq"] == half  # not yet
                assert manual.refresh() == len(scenario.events) - half
                assert manual.orders() == expected_orders(scenario)
                assert manual.refresh() == 0
            assert auto.summary() == manual.summary()
    finally:
        target.cleanup()


def test_both_backends_give_the_same_answers(
    tmp_path: Path, pg_engine: Engine, scenario: Run
) -> None:
    answers = []
    for backend in ("sqlite", "postgres"):
        target = make_target(backend, tmp_path, pg_engine if backend == "postgres" else None)
        try:
            write_scenario(target, scenario, every=450)
            with open_queries(target) as q:
                answers.append(
                    (
                        q.orders(),
                        q.orders(status="OPEN", strategy="busy", limit=7),
                        q.fills(strategy="other"),
                        q.positions(),
                        q.balances(),
                        q.parent_orders(),
                        q.events(kinds=["OrderCanceled", "OrderUpdated"], since_seq=99),
                        q.summary(),
                    )
                )
        finally:
            target.cleanup()
    assert answers[0] == answers[1]


def test_queries_from_several_threads(tmp_path: Path, scenario: Run) -> None:
    target = make_target("sqlite", tmp_path, None)
    write_scenario(target, scenario)
    results: list[object] = []
    with open_queries(target) as q:
        threads = [
            threading.Thread(target=lambda: results.append((q.summary(), q.orders(limit=3))))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 4 and all(r == results[0] for r in results)


def test_open_refuses_a_missing_journal_and_closes_its_own(tmp_path: Path, scenario: Run) -> None:
    with pytest.raises(JournalError, match="no journal at"):
        JournalQueries.open(tmp_path / "missing.db")
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        scenario.write(journal)
        q = JournalQueries(journal, [scenario.instrument], "USDT", scenario.balances)
        q.close()  # not its journal: still open
        assert q.orders(limit=1) == expected_orders(scenario)[:1]
    setup = {"base_currency": "USDT", "starting_balances": scenario.balances}
    with JournalQueries.open(path, instruments=[scenario.instrument], **setup) as q:
        assert q.summary()["orders"] == len(scenario.engine.orders.orders)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        q.events(limit=1)
