"""The local exchange's core on hand-made market data: triggers, OCO peers, locks.

No server: the replay is stepped by calling ``tick`` with the wall time at which
each recorded item is due, so every expectation below is exact.
"""

from __future__ import annotations

import pytest

from tradepilot.model import fixed
from tradepilot.model.data import BookLevel, BookSnapshot, MarketData, TradeTick
from tradepilot.venues.exchange.accounts import AccountSpec
from tradepilot.venues.exchange.core import ExchangeCore, OrderRequest, Rejected
from tradepilot.venues.exchange.replay import ReplayData, binance_instrument

R = fixed.to_raw
S = fixed.to_str
T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000


def _core(trades: list[str]) -> tuple[ExchangeCore, list[MarketData]]:
    inst = binance_instrument("BTCUSDT")
    snap = BookSnapshot(
        inst.id,
        T0,
        (BookLevel(R("100"), R("5")), BookLevel(R("99"), R("5")), BookLevel(R("90"), R("50"))),
        (BookLevel(R("101"), R("5")), BookLevel(R("102"), R("5")), BookLevel(R("110"), R("50"))),
        update_id=10,
    )
    events: list[MarketData] = [snap]
    for i, px in enumerate(trades, start=1):
        events.append(TradeTick(inst.id, T0 + i * SEC, R(px), R("0.001"), 1, str(1000 + i)))
    spec = AccountSpec("a", "k", "s", {"USDT": "10000", "BTC": "2"})
    core = ExchangeCore(ReplayData([inst], events, "book"), [spec], speed=1.0)
    core.tick(core.replay.wall_of(T0))
    return core, events


def _step(core: ExchangeCore, events: list[MarketData], i: int) -> None:
    core.tick(core.replay.wall_of(events[i].ts))


def _free(core: ExchangeCore, ccy: str) -> str:
    return S(core.balances("a")[ccy][0])


def test_take_profit_and_stop_loss_trigger_on_the_last_trade() -> None:
    core, events = _core(["100.5", "105", "95"])
    tp = core.submit(
        "a",
        OrderRequest("BTCUSDT", -1, "STOP_LIMIT", R("0.5"), R("99"), R("104"), trigger_above=True),
    )
    sl = core.submit(
        "a",
        OrderRequest("BTCUSDT", -1, "STOP_LIMIT", R("0.5"), R("90"), R("96"), trigger_above=False),
    )
    assert (tp.status, tp.triggered, sl.triggered) == ("NEW", False, False)
    assert _free(core, "BTC") == "1"  # both sells hold their BTC
    _step(core, events, 1)  # 100.5: neither fires
    assert not tp.triggered and not sl.triggered
    _step(core, events, 2)  # 105: the take-profit fires, sells 0.5 into the 100 bid
    assert tp.status == "FILLED" and [(S(f.price), S(f.qty)) for f in tp.fills] == [("100", "0.5")]
    assert not sl.triggered
    _step(core, events, 3)  # 95: the stop-loss fires
    assert sl.status == "FILLED" and sl.fills[0].price == R("100")
    assert _free(core, "BTC") == "1"
    fees = sum(f.commission for f in tp.fills + sl.fills)
    assert core.balances("a")["USDT"][0] == R("10000") + R("100") - fees


def test_a_stop_that_would_trigger_at_once_is_refused_and_changes_nothing() -> None:
    core, _ = _core(["100.5"])
    core.tick(core.replay.wall_of(T0 + SEC))
    before = core.balances("a")
    with pytest.raises(Rejected) as info:
        core.submit(
            "a", OrderRequest("BTCUSDT", -1, "STOP_LIMIT", R("1"), R("99"), R("101"), False)
        )
    assert info.value.code == "TRIGGER"
    assert core.balances("a") == before and not core.accounts["a"].orders


def test_oco_legs_share_one_lock_and_the_trigger_cancels_the_peer() -> None:
    core, events = _core(["100.5", "97"])
    limit = core.submit("a", OrderRequest("BTCUSDT", -1, "LIMIT", R("1.5"), R("108")))
    assert limit.status == "NEW" and _free(core, "BTC") == "0.5"
    stop = core.submit(
        "a",
        OrderRequest(
            "BTCUSDT", -1, "STOP_MARKET", R("1.5"), None, R("98"), False,
            lock=False, oco_peer=limit.order_id,
        ),
    )  # fmt: skip
    assert _free(core, "BTC") == "0.5"  # the stop leg holds nothing more
    _step(core, events, 1)
    assert limit.is_open and not stop.triggered
    _step(core, events, 2)  # 97 <= 98: the stop fires, the limit is cancelled first
    assert limit.status == "CANCELED"
    assert stop.status == "FILLED"
    assert [(S(f.price), S(f.qty)) for f in stop.fills] == [("100", "1.5")]
    assert _free(core, "BTC") == "0.5"


def test_trailing_stop_follows_the_best_price() -> None:
    core, events = _core(["100", "103", "104", "102.5", "101.9"])
    trail = core.submit("a", OrderRequest("BTCUSDT", -1, "STOP_MARKET", R("1"), trail_price=R("2")))
    assert trail.stop_price is not None
    for i in (1, 2, 3, 4):
        _step(core, events, i)
    assert trail.hwm == R("104") and trail.stop_price == R("102")
    assert not trail.triggered  # 102.5 is above the stop
    _step(core, events, 5)  # 101.9 <= 102
    assert trail.status == "FILLED"


def test_client_ids_unique_among_open_orders_only() -> None:
    core, _ = _core([])
    first = core.submit("a", OrderRequest("BTCUSDT", 1, "LIMIT", R("0.1"), R("95"), client_id="x"))
    with pytest.raises(Rejected) as info:
        core.submit("a", OrderRequest("BTCUSDT", 1, "LIMIT", R("0.1"), R("95"), client_id="x"))
    assert info.value.code == "DUPLICATE"
    core.cancel("a", first)
    again = core.submit("a", OrderRequest("BTCUSDT", 1, "LIMIT", R("0.1"), R("95"), client_id="x"))
    assert again.is_open and again.order_id != first.order_id


def test_market_order_walks_the_book_and_the_rest_expires() -> None:
    core, _ = _core([])
    rec = core.submit("a", OrderRequest("BTCUSDT", 1, "MARKET", R("70")))
    assert [(S(f.price), S(f.qty)) for f in rec.fills] == [
        ("101", "5"),
        ("102", "5"),
        ("110", "50"),
    ]
    assert rec.status == "EXPIRED" and rec.executed == R("60")
    insufficient = core.balances("a")
    with pytest.raises(Rejected) as info:
        core.submit("a", OrderRequest("BTCUSDT", 1, "LIMIT", R("1000"), R("100")))
    assert info.value.code == "BALANCE"
    assert core.balances("a") == insufficient
