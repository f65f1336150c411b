"""OrderBook unit tests and a full rebuild of the Binance L2 capture sessions."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tradepilot.data.book_loader import (
    BookSession,
    applicable_deltas,
    decimal_strings_to_raw,
    iter_book_session_events,
    load_book_session,
)
from tradepilot.model.book import OrderBook
from tradepilot.model.data import (
    BookDeltas,
    BookLevel,
    BookSnapshot,
    QuoteTick,
    TradeTick,
)
from tradepilot.model.fixed import to_raw


def shared_data_dir() -> Path:
    """``shared/data`` next to the repository checkout."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


# Matched points = bookTicker records whose update_id is the final id of an applied depth message.
SESSIONS: dict[str, int] = {
    "binance_spot_btcusdt_20240808": 1072,
    "binance_spot_ethusdt_20240808": 1056,
    "binance_usdm_btcusdt_20240808": 629,
    "binance_usdm_ethusdt_20240808": 551,
    "binance_usdm_btcusdt_20240718": 625,
    "binance_usdm_ethusdt_20240718": 834,
    "binance_usdm_btcusdt_20230404": 1565,
}

R = to_raw
BID, ASK = 1, -1


def lv(*pairs: tuple[str, str]) -> tuple[BookLevel, ...]:
    return tuple(BookLevel(R(p), R(q)) for p, q in pairs)


def snap(bids: tuple[BookLevel, ...], asks: tuple[BookLevel, ...], uid: int = 10) -> BookSnapshot:
    return BookSnapshot("X", ts=100, bids=bids, asks=asks, update_id=uid)


def deltas(
    bids: tuple[BookLevel, ...] = (), asks: tuple[BookLevel, ...] = (), uid: int = 11, ts: int = 200
) -> BookDeltas:
    return BookDeltas("X", ts=ts, bids=bids, asks=asks, update_id=uid, first_update_id=uid)


@pytest.fixture
def book() -> OrderBook:
    b = OrderBook("X")
    b.apply_snapshot(
        snap(
            bids=lv(("99", "1"), ("100", "2"), ("98", "3")),  # unsorted on purpose
            asks=lv(("102", "4"), ("101", "1.5"), ("103", "5")),
        )
    )
    return b


# ---------------------------------------------------------------------------- OrderBook


def test_empty_book() -> None:
    b = OrderBook()
    assert b.best_bid() is None and b.best_ask() is None
    assert b.mid() is None and b.spread() is None
    assert not b.is_crossed()
    assert b.levels(BID, 5) == [] and b.levels(ASK, 5) == []
    assert b.walk(1, R(1)) == [] and b.walk(-1, R(1)) == []
    assert b.size_at(BID, R(1)) == 0
    assert b.update_id == 0 and b.ts == 0


def test_one_sided_book() -> None:
    b = OrderBook()
    b.apply(snap(bids=lv(("100", "1")), asks=()))
    assert b.best_bid() == (R(100), R(1)) and b.best_ask() is None
    assert b.mid() is None and b.spread() is None and not b.is_crossed()
    assert b.walk(1, R(1)) == []
    assert b.walk(-1, R(5)) == [(R(100), R(1))]


def test_snapshot(book: OrderBook) -> None:
    assert book.best_bid() == (R(100), R(2))
    assert book.best_ask() == (R(101), R("1.5"))
    assert book.best_bid_price() == R(100) and book.best_ask_price() == R(101)
    assert book.levels(BID, 10) == [(R(100), R(2)), (R(99), R(1)), (R(98), R(3))]
    assert book.levels(ASK, 2) == [(R(101), R("1.5")), (R(102), R(4))]
    assert book.levels(ASK, 0) == []
    assert book.depth(BID) == 3 and book.depth(ASK) == 3
    assert book.spread() == R(1)
    assert book.mid() == R("100.5")
    assert book.update_id == 10 and book.ts == 100
    assert not book.is_crossed()


def test_snapshot_replaces_and_skips_zero_sizes(book: OrderBook) -> None:
    book.apply_snapshot(snap(bids=lv(("50", "1"), ("51", "0")), asks=lv(("60", "2")), uid=42))
    assert book.levels(BID, 10) == [(R(50), R(1))]
    assert book.levels(ASK, 10) == [(R(60), R(2))]
    assert book.size_at(BID, R(100)) == 0
    assert book.update_id == 42


def test_mid_is_floored() -> None:
    b = OrderBook()
    b.apply(snap(bids=(BookLevel(10, 1),), asks=(BookLevel(13, 1),)))
    assert b.mid() == 11  # floor(23 / 2)
    assert b.spread() == 3


def test_deltas_add_update_delete(book: OrderBook) -> None:
    book.apply_deltas(
        deltas(
            bids=lv(("100.5", "7"), ("99", "9"), ("98", "0")),  # add new best, update, delete
            asks=lv(("101", "0"), ("104", "1")),  # delete best, add deep
            uid=77,
            ts=555,
        )
    )
    assert book.levels(BID, 10) == [(R("100.5"), R(7)), (R(100), R(2)), (R(99), R(9))]
    assert book.levels(ASK, 10) == [(R(102), R(4)), (R(103), R(5)), (R(104), R(1))]
    assert book.size_at(BID, R(98)) == 0
    assert book.size_at(ASK, R(104)) == R(1)
    assert book.update_id == 77 and book.ts == 555


def test_delete_missing_level_is_noop(book: OrderBook) -> None:
    before = (book.levels(BID, 10), book.levels(ASK, 10))
    book.apply(deltas(bids=lv(("97", "0")), asks=lv(("150", "0"))))
    assert (book.levels(BID, 10), book.levels(ASK, 10)) == before
    assert book.update_id == 11


def test_deltas_apply_in_order_within_batch(book: OrderBook) -> None:
    book.apply(deltas(bids=lv(("95", "1"), ("95", "0"), ("96", "0"), ("96", "2"))))
    assert book.size_at(BID, R(95)) == 0
    assert book.size_at(BID, R(96)) == R(2)
    assert book.depth(BID) == 4


def test_delete_everything(book: OrderBook) -> None:
    book.apply(
        deltas(
            bids=lv(("98", "0"), ("99", "0"), ("100", "0")),
            asks=lv(("101", "0"), ("102", "0"), ("103", "0")),
        )
    )
    assert book.best_bid() is None and book.best_ask() is None
    assert book.levels(BID, 3) == [] and book.walk(1, R(1)) == []


def test_crossed_and_locked() -> None:
    b = OrderBook()
    b.apply(snap(bids=lv(("100", "1")), asks=lv(("101", "1"))))
    assert not b.is_crossed()
    b.apply(deltas(bids=lv(("101", "1"))))
    assert b.is_crossed()  # locked counts as crossed
    b.apply(deltas(bids=lv(("101", "0"), ("102", "1"))))
    assert b.is_crossed()
    b.clear()
    assert not b.is_crossed() and b.best_bid() is None


def test_walk_buy_partial_levels(book: OrderBook) -> None:
    levels_before = (book.levels(BID, 10), book.levels(ASK, 10))
    assert book.walk(1, R(1)) == [(R(101), R(1))]
    assert book.walk(1, R(3)) == [(R(101), R("1.5")), (R(102), R("1.5"))]
    assert book.walk(1, R("5.5")) == [(R(101), R("1.5")), (R(102), R(4))]
    # More than the whole side: takes everything.
    assert book.walk(1, R(100)) == [(R(101), R("1.5")), (R(102), R(4)), (R(103), R(5))]
    assert (book.levels(BID, 10), book.levels(ASK, 10)) == levels_before


def test_walk_sell(book: OrderBook) -> None:
    assert book.walk(-1, R("2.5")) == [(R(100), R(2)), (R(99), R("0.5"))]
    assert book.walk(-1, R(100)) == [(R(100), R(2)), (R(99), R(1)), (R(98), R(3))]


def test_walk_limit_price(book: OrderBook) -> None:
    assert book.walk(1, R(10), limit_price=R(102)) == [(R(101), R("1.5")), (R(102), R(4))]
    assert book.walk(1, R(10), limit_price=R("101.5")) == [(R(101), R("1.5"))]
    assert book.walk(1, R(10), limit_price=R(100)) == []
    assert book.walk(-1, R(10), limit_price=R(99)) == [(R(100), R(2)), (R(99), R(1))]
    assert book.walk(-1, R(10), limit_price=R("100.5")) == []
    assert book.walk(-1, R(1), limit_price=R(1)) == [(R(100), R(1))]


def test_walk_zero_or_negative_qty(book: OrderBook) -> None:
    assert book.walk(1, 0) == [] and book.walk(-1, -5) == []


def test_bad_side_and_type(book: OrderBook) -> None:
    for call in (
        lambda: book.walk(0, R(1)),
        lambda: book.levels(2, 1),
        lambda: book.size_at(0, R(100)),
        lambda: book.depth(-2),
    ):
        with pytest.raises(ValueError, match="side"):
            call()
    with pytest.raises(TypeError):
        book.apply(TradeTick("X", 1, R(1), R(1), 1))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- conversion


def test_decimal_strings_to_raw_exact() -> None:
    values = ["0", "5000", "61837.63", "0.00009", "0.000000001", "999999999.999999999", "1.10"]
    assert decimal_strings_to_raw(values).tolist() == [to_raw(v) for v in values]
    assert decimal_strings_to_raw([]).tolist() == []


@pytest.mark.parametrize("bad", ["", "-1", "1e-5", "1.", ".5", "1.0000000001", "1000000000", "nan"])
def test_decimal_strings_to_raw_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="row 1"):
        decimal_strings_to_raw(["1", bad])


# ---------------------------------------------------------------------------- loader (synthetic)

SPOT_HEADERS = {
    "snapshot": "local_ts_ns,last_update_id,side,level,price,qty",
    "depth_updates": "local_ts_ns,event_ts_ms,first_update_id,last_update_id,side,price,qty",
    "bbo": "local_ts_ns,update_id,bid_price,bid_qty,ask_price,ask_qty",
    "trades": "local_ts_ns,exch_ts_ms,trade_id,price,qty,aggressor_side,is_buyer_maker",
}


def write_session(folder: Path, rows: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, lines in rows.items():
        with gzip.open(folder / f"{folder.name}_{kind}.csv.gz", "wt") as f:
            f.write("\n".join([SPOT_HEADERS[kind], *lines]) + "\n")
    return folder


def tiny_rows() -> dict[str, list[str]]:
    return {
        "snapshot": [
            "1000,20,ask,1,10.2,1",
            "1000,20,bid,0,10.0,2",
            "1000,20,ask,0,10.1,3",
            "1000,20,bid,1,9.9,4",
        ],
        "depth_updates": [
            "900,0,15,19,bid,9.8,1",  # stale: u <= 20, arrived before the snapshot
            "950,0,20,22,bid,9.95,5",  # straddles the snapshot, arrived before it
            "950,0,20,22,ask,10.1,0",
            "1000,0,23,23,ask,10.15,7",  # same ts as the snapshot: goes after it
            "1200,0,24,25,bid,10.0,0",
        ],
        "bbo": ["990,19,10.0,2,10.1,3", "1000,23,10.0,2,10.15,7", "1200,25,9.95,5,10.15,7"],
        "trades": ["1000,0,7,10.1,0.5,buy,false", "1100,0,8,10.0,0.25,sell,true"],
    }


def test_load_tiny_session(tmp_path: Path) -> None:
    s = load_book_session(write_session(tmp_path / "s1", tiny_rows()), "BTC")
    assert s.market == "spot"
    assert s.snapshot == BookSnapshot(
        "BTC", 1000, lv(("10.0", "2"), ("9.9", "4")), lv(("10.1", "3"), ("10.2", "1")), 20
    )
    assert len(s.deltas) == 4
    assert s.deltas[1] == BookDeltas("BTC", 950, lv(("9.95", "5")), lv(("10.1", "0")), 22, 20)
    assert [d.update_id for d in applicable_deltas(s)] == [22, 23, 25]
    assert s.trades[0] == TradeTick("BTC", 1000, R("10.1"), R("0.5"), 1, "7")
    assert s.trades[1].aggressor == -1 and s.trades[1].trade_id == "8"
    assert s.bbo[2] == (25, QuoteTick("BTC", 1200, R("9.95"), R("10.15"), R(5), R(7)))


def test_replay_order(tmp_path: Path) -> None:
    s = load_book_session(write_session(tmp_path / "s1", tiny_rows()), "BTC")
    events = list(iter_book_session_events(s))
    got = [(type(e).__name__, e.ts, getattr(e, "update_id", None)) for e in events]
    assert got == [
        ("QuoteTick", 990, None),
        ("BookSnapshot", 1000, 20),
        ("BookDeltas", 1000, 22),  # buffered message, re-stamped to the snapshot's ts
        ("BookDeltas", 1000, 23),
        ("TradeTick", 1000, None),
        ("QuoteTick", 1000, None),
        ("TradeTick", 1100, None),
        ("BookDeltas", 1200, 25),
        ("QuoteTick", 1200, None),
    ]
    b = OrderBook()
    for e in events:
        if isinstance(e, BookSnapshot | BookDeltas):
            b.apply(e)
    assert b.levels(BID, 5) == [(R("9.95"), R(5)), (R("9.9"), R(4))]
    assert b.levels(ASK, 5) == [(R("10.15"), R(7)), (R("10.2"), R(1))]


def test_missing_file(tmp_path: Path) -> None:
    rows = tiny_rows()
    del rows["bbo"]
    with pytest.raises(ValueError, match="missing file"):
        load_book_session(write_session(tmp_path / "s1", rows), "BTC")
    with pytest.raises(ValueError, match="not a directory"):
        load_book_session(tmp_path / "nope", "BTC")


@pytest.mark.parametrize(
    ("kind", "line", "match"),
    [
        ("depth_updates", "1300,0,26,26,bid,10.0.1,1", "line 7: column 'price'"),
        ("depth_updates", "1300,0,26,26,mid,10.0,1", "line 7: column 'side'"),
        ("depth_updates", "1300,0,26,26,bid,10.0", "cannot read CSV"),
        ("depth_updates", "1300,0,x,26,bid,10.0,1", "cannot read CSV"),
        ("depth_updates", "1300,0,,26,bid,10.0,1", "line 7: empty value"),
        ("depth_updates", "1100,0,26,26,bid,10.0,1", "goes backwards"),
        ("depth_updates", "1300,0,27,27,bid,10.0,1", "sequence gap"),
        ("trades", "1200,0,9,10,1,hold,false", "aggressor_side"),
        ("bbo", "1300,26,10,1e3,11,1", "column 'bid_qty'"),
        ("snapshot", "1001,20,bid,2,9.8,1", "more than one snapshot"),
    ],
)
def test_malformed_rows(tmp_path: Path, kind: str, line: str, match: str) -> None:
    rows = tiny_rows()
    rows[kind].append(line)
    with pytest.raises(ValueError, match=match):
        load_book_session(write_session(tmp_path / "s1", rows), "BTC")


def test_gap_after_snapshot(tmp_path: Path) -> None:
    rows = tiny_rows()
    rows["depth_updates"] = rows["depth_updates"][3:]  # first kept message starts at 23 > 21
    with pytest.raises(ValueError, match="gap after the snapshot"):
        load_book_session(write_session(tmp_path / "s1", rows), "BTC")
    assert len(load_book_session(tmp_path / "s1", "BTC", check_sequence=False).deltas) == 2


# ---------------------------------------------------------------------------- real sessions


@pytest.fixture(scope="module", params=sorted(SESSIONS))
def session(request: pytest.FixtureRequest) -> Iterator[BookSession]:
    folder = shared_data_dir() / "book" / request.param
    if not folder.is_dir():
        pytest.fail(f"shared data not found (the tests need ../shared/data): {folder}")
    yield load_book_session(folder, request.param)


def test_real_values_convert_exactly(session: BookSession) -> None:
    """Vectorised parsing agrees with the Decimal-based ``to_raw`` on the raw text."""
    name = session.instrument_id
    path = shared_data_dir() / "book" / name / f"{name}_snapshot.csv.gz"
    with gzip.open(path, "rt") as f:
        next(f)
        rows = [line.rstrip("\n").split(",") for line in f]
    levels = {(r[-4], to_raw(Decimal(r[-2])), to_raw(Decimal(r[-1]))) for r in rows}
    snap_levels = {("bid", x.price, x.size) for x in session.snapshot.bids} | {
        ("ask", x.price, x.size) for x in session.snapshot.asks
    }
    assert snap_levels == levels
    assert len(session.snapshot.bids) == len(session.snapshot.asks) == 1000


def test_replay_is_in_arrival_order(session: BookSession) -> None:
    events = list(iter_book_session_events(session))
    kept = applicable_deltas(session)
    assert len(events) == 1 + len(kept) + len(session.trades) + len(session.bbo)
    ts = [e.ts for e in events]
    assert ts == sorted(ts)
    book_events = [e for e in events if isinstance(e, BookSnapshot | BookDeltas)]
    assert book_events[0] is session.snapshot
    ids = [e.update_id for e in book_events]
    assert ids == sorted(ids) and ids[1:] == [d.update_id for d in kept]
    assert kept[0].first_update_id <= session.snapshot.update_id + 1 or session.market == "usdm"


def test_rebuilt_book_matches_book_ticker(session: BookSession) -> None:
    """Snapshot + depth stream reproduce every bookTicker taken at a depth message's final id."""
    bbo_by_id = {uid: q for uid, q in session.bbo}
    book = OrderBook(session.instrument_id)
    matched = applied = 0
    for ev in iter_book_session_events(session):
        if isinstance(ev, BookDeltas):
            book.apply_deltas(ev)
            applied += 1
        elif isinstance(ev, BookSnapshot):
            book.apply_snapshot(ev)
        else:
            continue
        assert not book.is_crossed(), f"crossed after update {book.update_id}: {book!r}"
        q = bbo_by_id.get(book.update_id)
        if q is not None and applied:
            assert book.best_bid() == (q.bid, q.bid_size), f"bid at update {book.update_id}"
            assert book.best_ask() == (q.ask, q.ask_size), f"ask at update {book.update_id}"
            matched += 1
    assert applied == len(applicable_deltas(session))
    assert matched > 0
    assert matched == SESSIONS[session.instrument_id]
