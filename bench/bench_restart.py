"""Restart time: full replay of a journal versus latest snapshot + tail.

    python bench/bench_restart.py [--events 1000000] [--every 100000] [--tail N]
                                  [--backend sqlite|postgres|both] [--url URL]
                                  [--runs 3] [--seed 0]

Builds a journal of ``--events`` realistic order events (market orders, resting
limits with partial fills, cancels, modifies, denials, venue rejects, rejected
data, parent orders with child orders; deterministic ids), folding them into a
projection while writing and snapshotting it every ``--every`` events, except in
the last ``--tail`` events (default: ``--every``, the worst case: the newest
snapshot is a whole interval behind). Then, on a freshly opened journal, it times

(a) a full replay of every event (no snapshot), and
(b) ``restore``: the newest snapshot plus the events after it,

checks that both give the same state, and prints the seconds of each of ``--runs``
runs and their median (each timing includes the full garbage collection that
follows loading). SQLite writes to a temporary directory; PostgreSQL to a fresh
session that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import tradepilot  # noqa: F401
except ImportError:  # run from a checkout without installing: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tradepilot.app.build import RunSpec
from tradepilot.model import fixed
from tradepilot.model.events import (
    CancelOrder,
    DataRejected,
    Event,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderInitialized,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderRejected,
    OrderSubmitted,
    OrderUpdated,
    ParentOrderFinished,
    ParentOrderProgress,
    ParentOrderStarted,
    SessionStarted,
    SessionStopped,
)
from tradepilot.persistence import (
    PersistentJournal,
    Snapshotter,
    StateProjection,
    open_journal,
    restore,
)
from tradepilot.persistence.projection import session_setup

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
T0 = 1_620_950_400_000_000_000
S = fixed.SCALE
TICK = S // 100  # 0.01
LOT = S // 1000  # 0.001
FEE_BPS = 10 * S


@dataclass(slots=True)
class _Resting:
    strategy: str
    side: int
    quantity: int
    price: int
    filled: int = 0


class Synthetic:
    """A deterministic stream of valid order lifecycles on one instrument."""

    def __init__(self, instrument_id: str, seed: int) -> None:
        self.iid = instrument_id
        self.rng = random.Random(seed)
        self.t = T0
        self.px = 50_000 * S
        self.position = 0
        self.counters: dict[str, int] = {}
        self.venue_n = 0
        self.trade_n = 0
        self.resting: dict[str, _Resting] = {}

    def _cid(self, prefix: str, sep: str = "-") -> str:
        n = self.counters[prefix] = self.counters.get(prefix, 0) + 1
        return f"{prefix}{sep}{n}"

    def _tick(self) -> int:
        rng = self.rng
        self.t += rng.randint(1, 400) * 1_000_000
        self.px = max(1_000 * S, self.px + rng.randint(-40, 40) * TICK)
        return self.t

    def _fill(self, cid: str, strategy: str, side: int, qty: int, px: int, taker: bool) -> Event:
        self.trade_n += 1
        self.position += qty if side > 0 else -qty
        notional = fixed.mul(px, qty)
        return OrderFilled(
            self.t, cid, self.iid, strategy, f"SIM-T{self.trade_n}", side, qty, px,
            fixed.bps_of(notional, FEE_BPS), "USDT", "TAKER" if taker else "MAKER",
        )  # fmt: skip

    def _side(self) -> int:
        if self.position > 2 * S:
            return -1
        if self.position < 50 * LOT:
            return 1
        return 1 if self.rng.random() < 0.5 else -1

    def _qty(self, side: int) -> int:
        qty = self.rng.randint(1, 50) * 10 * LOT
        if side < 0:
            held = self.position - sum(
                r.quantity - r.filled for r in self.resting.values() if r.side < 0
            )
            qty = min(qty, held)
        return qty

    def _market(self, strategy: str, cid: str, parent: str | None = None) -> Iterator[Event]:
        side = self._side()
        qty = self._qty(side)
        t = self.t
        if qty < LOT:
            yield OrderInitialized(t, cid, self.iid, strategy, side, "MARKET", LOT,
                                   parent_id=parent)  # fmt: skip
            yield OrderDenied(t, cid, "NO_POSITION", "nothing to sell")
            return
        yield OrderInitialized(t, cid, self.iid, strategy, side, "MARKET", qty, parent_id=parent)
        yield OrderSubmitted(t, cid)
        self.venue_n += 1
        yield OrderAccepted(t, cid, f"SIM-{self.venue_n}")
        self._tick()
        if qty >= 20 * LOT and self.rng.random() < 0.2:
            first = (qty // 2) // LOT * LOT
            yield self._fill(cid, strategy, side, first, self.px, True)
            yield self._fill(cid, strategy, side, qty - first, self.px + side * TICK, True)
        else:
            yield self._fill(cid, strategy, side, qty, self.px, True)

    def events(self, n: int, config: str) -> Iterator[Event]:
        """Exactly ``n`` events: SessionStarted, order activity, SessionStopped."""
        yield SessionStarted(self.t, "backtest", config)
        yield from itertools.islice(self._activity(), max(n - 2, 0))
        yield SessionStopped(self._tick(), "end of data")

    def _activity(self) -> Iterator[Event]:
        rng = self.rng
        while True:
            yield from self._action(rng.random())

    def _action(self, r: float) -> Iterator[Event]:
        t = self._tick()
        rng = self.rng
        resting = self.resting
        if len(resting) > 40:
            r = 0.60  # work the resting orders off
        if r < 0.40:
            yield from self._market("ema_cross", self._cid("ema_cross"))
        elif r < 0.60:
            side = self._side()
            qty = self._qty(side)
            if qty < LOT:
                return
            cid = self._cid("mm")
            price = self.px - side * rng.randint(1, 30) * TICK
            yield OrderInitialized(t, cid, self.iid, "mm", side, "LIMIT", qty, price=price)
            yield OrderSubmitted(t, cid)
            self.venue_n += 1
            yield OrderAccepted(t, cid, f"SIM-{self.venue_n}")
            resting[cid] = _Resting("mm", side, qty, price)
        elif r < 0.78 and resting:
            cid = next(iter(resting))
            rest = resting[cid]
            leaves = rest.quantity - rest.filled
            part = leaves if rng.random() < 0.5 or leaves < 2 * LOT else leaves // 2 // LOT * LOT
            yield self._fill(cid, rest.strategy, rest.side, part, rest.price, False)
            if part == leaves:
                del resting[cid]
            else:
                rest.filled += part
        elif r < 0.88 and resting:
            cid = rng.choice(list(resting))
            yield CancelOrder(t, cid, "stale")
            yield OrderPendingCancel(t, cid)
            yield OrderCanceled(t, cid)
            del resting[cid]
        elif r < 0.92 and resting:
            cid = rng.choice(list(resting))
            rest = resting[cid]
            rest.price -= rest.side * TICK
            yield ModifyOrder(t, cid, price=rest.price)
            yield OrderPendingUpdate(t, cid)
            yield OrderUpdated(t, cid, rest.quantity, rest.price, None)
        elif r < 0.95:
            cid = self._cid("ema_cross")
            yield OrderInitialized(t, cid, self.iid, "ema_cross", 1, "MARKET", 900 * S)
            yield OrderDenied(t, cid, "MAX_NOTIONAL", "order notional above the limit")
        elif r < 0.97:
            cid = self._cid("mm")
            yield OrderInitialized(t, cid, self.iid, "mm", 1, "LIMIT", 10 * LOT,
                                   price=self.px + 1_000 * S, post_only=True)  # fmt: skip
            yield OrderSubmitted(t, cid)
            yield OrderRejected(t, cid, "post-only order would take liquidity")
        elif r < 0.98:
            yield DataRejected(t, self.iid, f"out-of-order timestamp {t - 1} < {t}")
        else:
            parent = self._cid("twap")
            side = self._side()
            yield ParentOrderStarted(t, parent, self.iid, "twap", side, 0, "TWAP",
                                     '{"slices":2}', self.px)  # fmt: skip
            filled = 0
            for _ in range(2):
                before = self.position
                yield from self._market("twap", self._cid(parent, "-c"), parent)
                filled += abs(self.position - before)
                yield ParentOrderProgress(self.t, parent, filled, 0, self.px)
            yield ParentOrderFinished(self._tick(), parent, "DONE", filled, self.px)


def build(journal: PersistentJournal, n: int, every: int, tail: int, seed: int) -> dict[str, float]:
    """Write ``n`` events, snapshotting every ``every`` except in the last ``tail``."""
    spec = RunSpec()
    setup = session_setup(spec.canonical_json())
    iid = next(iter(setup.instruments))
    projection = StateProjection(
        setup.instruments, setup.base_currency, setup.starting_balances, setup.account_type
    )
    snapshotter = Snapshotter(journal, every=every, keep=None)
    stop_at = n - tail
    start = time.perf_counter()
    snap_time = 0.0
    for event in Synthetic(iid, seed).events(n, spec.canonical_json()):
        journal.append(event)
        projection.apply(journal.last_seq, event)
        if journal.last_seq <= stop_at and snapshotter.due(projection):
            t0 = time.perf_counter()
            snapshotter.snapshot(projection)
            snap_time += time.perf_counter() - t0
    journal.flush()
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "snapshots": snapshotter.written,
        "snapshot_seconds": snap_time / max(snapshotter.written, 1),
    }


def timed(fn: Callable[[], StateProjection]) -> tuple[float, StateProjection]:
    """Seconds to build a projection, including the garbage collection it leads to.

    Loading pauses the cyclic collector; the full collection run here is what the
    process would otherwise pay soon after, so it is counted too.
    """
    gc.collect()
    start = time.perf_counter()
    projection = fn()
    gc.collect()
    return time.perf_counter() - start, projection


def measure(open_: Callable[[], PersistentJournal], args: argparse.Namespace, label: str) -> None:
    with open_() as journal:
        built = build(journal, args.events, args.every, args.tail, args.seed)
        n = journal.last_seq
        infos = journal.snapshots()
    print(
        f"{label}: wrote {n:,} events in {built['seconds']:.1f} s with "
        f"{int(built['snapshots'])} snapshots ({built['snapshot_seconds']:.2f} s each, "
        f"newest at seq {infos[-1].seq:,}, {infos[-1].size / 1e6:.1f} MB)"
    )
    full_s: list[float] = []
    restore_s: list[float] = []
    same = True
    for _ in range(args.runs):
        with open_() as journal:
            seconds, full = timed(lambda: StateProjection.from_journal(journal))
            full_s.append(seconds)
        del full
        with open_() as journal:
            seconds, restored = timed(lambda: restore(journal))
            restore_s.append(seconds)
            full = StateProjection.from_journal(journal)
        same = same and restored.to_snapshot() == full.to_snapshot()
        del full, restored
    snap_seq = infos[-1].seq

    def show(values: list[float]) -> str:
        runs = ", ".join(f"{v:.2f}" for v in values)
        return f"median {statistics.median(values):5.2f} s  (runs: {runs})"

    print(f"  (a) full replay of {n:,} events:                  {show(full_s)}")
    print(f"  (b) snapshot at seq {snap_seq:,} + {n - snap_seq:,} tail events: {show(restore_s)}")
    print(f"  same state both ways: {same}")
    if not same:
        raise SystemExit("restore and full replay disagree")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--tail", type=int, default=None, help="default: --every")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.tail is None:
        args.tail = args.every
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
            path = str(Path(tmp) / "journal.db")
            measure(lambda: open_journal(path), args, "SQLite")
    if args.backend in ("postgres", "both"):
        from tradepilot.persistence.postgres import drop_session

        session = f"bench-restart-{uuid.uuid4().hex[:12]}"
        try:
            measure(lambda: open_journal(args.url, session=session), args, "PostgreSQL")
        finally:
            drop_session(args.url, session)


if __name__ == "__main__":
    main()
