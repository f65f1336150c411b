"""Bad input gets a clear error or a rejection event with a reason, and changes no state."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest

from tradepilot.data.loaders import DataError, load_bars, load_trades
from tradepilot.engine.kernel import Engine
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType
from tradepilot.model.events import DataRejected, OrderDenied
from tradepilot.model.instrument import Instrument, InvalidInput
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy.base import Strategy

INST = Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001", "0.001", "5", "10", "10")
HEADER = "open_time_ms,open_time,open,high,low,close,volume\n"


def _candles(tmp_path: Path, rows: list[str], gz: bool = True) -> Path:
    path = tmp_path / ("c.csv.gz" if gz else "c.csv")
    text = HEADER + "".join(r + "\n" for r in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


GOOD = "1620950400000,x,100,101,99,100.5,3"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1620950460000,x,nan,101,99,100.5,3", "open is not a valid"),
        ("1620950460000,x,0,101,0,100.5,3", "must be positive"),
        ("1620950460000,x,-1,101,99,100.5,3", "open is not a valid"),
        ("1620950460000,x,100,99,101,100.5,3", "inconsistent bar"),
        ("1620950460000,x,100,101,99,100.5,-3", "volume is not a valid"),
        ("1620950400000,x,100,101,99,100.5,3", "time order"),
        ("1620950340000,x,100,101,99,100.5,3", "time order"),
        ("1620950460000,x,1e3,101,99,100.5,3", "not a valid"),
    ],
)
def test_bad_bars_are_refused_with_the_row(tmp_path: Path, row: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        load_bars(_candles(tmp_path, [GOOD, row]), INST.id)
    assert "row 2" in str(info.value)


def test_good_bars_convert_exactly(tmp_path: Path) -> None:
    bars = list(
        load_bars(
            _candles(tmp_path, [GOOD, "1620950460000,x,100.5,102.25,100,101.1,4.000001"]), INST.id
        )
    )
    assert bars[1].high == fixed.to_raw("102.25") and bars[1].volume == fixed.to_raw("4.000001")
    assert bars[0].ts == bars[0].ts_open + 60_000_000_000


def test_bad_trades_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("utc_ms,price,size\n1000,10.5,1\n999,10.6,1\n")
    with pytest.raises(DataError, match="time order"):
        load_trades(path, INST.id)
    path.write_text("utc_ms,price,size\n1000,10.5,0\n")
    with pytest.raises(DataError, match="size must be positive"):
        load_trades(path, INST.id)


def test_missing_file_and_malformed_json(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_bars(tmp_path / "none.csv", INST.id)
    bad = tmp_path / "x.json"
    bad.write_text("[[1, 2, 3")
    with pytest.raises(DataError, match="malformed JSON"):
        load_bars(bad, INST.id)


@pytest.mark.parametrize("value", ["nan", "inf", "abc", "", None, True])
def test_fixed_refuses_non_numbers(value: object) -> None:
    with pytest.raises(ValueError):
        fixed.to_raw(value)  # type: ignore[arg-type]


def test_instrument_boundary_snapping() -> None:
    assert INST.price("100.004") == fixed.to_raw("100")
    assert INST.price("100.005") == fixed.to_raw("100.01")
    assert INST.quantity("0.0019") == fixed.to_raw("0.001")
    for bad in ("0", "-1", "0.0009", float("nan")):
        with pytest.raises((InvalidInput, ValueError)):
            INST.quantity(bad)
    with pytest.raises((InvalidInput, ValueError)):
        INST.price("-5")


class Scripted(Strategy):
    """Submits a list of bad orders on the first bar and records what came back."""

    strategy_id = "scripted"

    def __init__(self, orders: list[dict[str, object]]) -> None:
        super().__init__()
        self.orders = orders
        self.results: list[OrderStatus] = []

    def on_bar(self, bar: Bar) -> None:
        if self.results:
            return
        for spec in self.orders:
            order = self.submit(**spec)  # type: ignore[arg-type]
            self.results.append(order.status)


BAD_ORDERS = [
    {"instrument_id": "NOPE.SIM", "side": OrderSide.BUY, "quantity": "1"},
    {"instrument_id": INST.id, "side": OrderSide.BUY, "quantity": "0"},
    {"instrument_id": INST.id, "side": OrderSide.BUY, "quantity": "-1"},
    {"instrument_id": INST.id, "side": OrderSide.BUY, "quantity": "0.0001"},
    {"instrument_id": INST.id, "side": OrderSide.BUY, "quantity": float("nan")},
    {
        "instrument_id": INST.id,
        "side": OrderSide.BUY,
        "quantity": "1",
        "order_type": OrderType.LIMIT,
        "price": "-100",
    },
    {
        "instrument_id": INST.id,
        "side": OrderSide.BUY,
        "quantity": "1",
        "order_type": OrderType.LIMIT,
        "price": float("nan"),
    },
    {
        "instrument_id": INST.id,
        "side": OrderSide.BUY,
        "quantity": "1",
        "order_type": OrderType.LIMIT,
    },
    {
        "instrument_id": INST.id,
        "side": OrderSide.BUY,
        "quantity": "0.001",
        "order_type": OrderType.LIMIT,
        "price": "100",
    },  # notional 0.1 < min notional 5
]


def _bar(i: int, px: str = "100") -> Bar:
    raw = fixed.to_raw(px)
    t = 1_600_000_000_000_000_000 + i * 60_000_000_000
    return Bar(INST.id, t + 60_000_000_000, t, raw, raw, raw, raw, fixed.to_raw("10"))


def test_bad_orders_are_denied_with_reasons_and_change_nothing() -> None:
    strat = Scripted(BAD_ORDERS)
    journal = MemoryJournal()
    engine = Engine.simulated([INST], [strat], journal=journal)
    engine.run([_bar(i) for i in range(3)])
    assert strat.results == [OrderStatus.DENIED] * len(BAD_ORDERS)
    denials = [e for e in journal.events() if isinstance(e, OrderDenied)]
    assert len(denials) == len(BAD_ORDERS)
    assert all(d.reason and d.code for d in denials)
    assert engine.portfolio.account.total == {"USDT": fixed.to_raw("100000")}
    assert engine.venue.account.total == {"USDT": fixed.to_raw("100000")}
    assert engine.venue.account.locked == {}
    assert not engine.portfolio.positions and engine.portfolio.fill_count == 0


def test_insufficient_balance_is_rejected_by_the_venue_with_a_reason() -> None:
    strat = Scripted([{"instrument_id": INST.id, "side": OrderSide.BUY, "quantity": "5000"}])
    journal = MemoryJournal()
    engine = Engine.simulated([INST], [strat], journal=journal)
    engine.run([_bar(i) for i in range(3)])
    order = next(iter(engine.orders.orders.values()))
    assert order.status is OrderStatus.REJECTED
    assert "insufficient USDT" in order.events[-1].reason  # type: ignore[attr-defined]
    assert engine.venue.account.total == {"USDT": fixed.to_raw("100000")}


def test_out_of_order_data_is_rejected_without_touching_state() -> None:
    journal = MemoryJournal()
    seen: list[int] = []

    class Watcher(Strategy):
        def on_bar(self, bar: Bar) -> None:
            seen.append(bar.ts)

    engine = Engine.simulated([INST], [Watcher()], journal=journal)
    bars = [_bar(0), _bar(2), _bar(1, "1"), _bar(3)]
    engine.run(bars)
    assert seen == [bars[0].ts, bars[1].ts, bars[3].ts]
    rejected = [e for e in journal.events() if isinstance(e, DataRejected)]
    assert len(rejected) == 1 and "out-of-order" in rejected[0].reason
    assert engine.portfolio.last_price(INST.id) == fixed.to_raw("100")
    assert engine.data_rejected == 1


def test_decimal_quantities_are_exact() -> None:
    assert INST.quantity(Decimal("0.003")) == 3_000_000
