"""Fault campaign: random traders on real data behind a seeded faulty venue link.

    python scripts/fault_campaign.py --episodes 400 --seed 1
    python scripts/fault_campaign.py --episodes 20 --bars 60 --fault-rate 0.1

Each episode takes a random two-hour window of real one-minute BTC/USDT bars
(``shared/data``), runs a random trader (market, limit, cancel, modify and a TWAP
parent order) behind a :class:`~tradepilot.venues.faults.FaultyLink` that injects
every fault class at once, then heals the link, lets the in-flight window pass,
reconciles and checks:

* no crash (no exception out of the engine);
* no stuck order (nothing UNKNOWN, and the engine's open orders are the venue's);
* no double fill (each venue trade booked at most once) and no lost fill (each
  venue trade booked);
* positions and balances equal the venue's.

An episode *converges* when all of these hold. Prints the fault counts by class and
the rates; exit status 0 only if every episode converged.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tradepilot.data.loaders import BarSeries, load_bars
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.execution.algo_engine import AlgoEngine
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType
from tradepilot.model.events import OrderFilled
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy.base import Strategy
from tradepilot.venues.faults import FAULT_CLASSES, FaultConfig, FaultyLink

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "candles"
    / "binance_spot_btcusdt_1m_20210420_20210520.csv.gz"
)
INST = Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001", "0.001", "0", "10", "10")
SEC = 1_000_000_000
MIN = 60 * SEC


class RandomTrader(Strategy):
    """Market and limit orders, cancels, modifies and a TWAP, at random."""

    strategy_id = "rnd"

    def __init__(self, algos: AlgoEngine, instrument: Instrument, rng: random.Random) -> None:
        super().__init__()
        self.algos = algos
        self.inst = instrument
        self.rng = rng

    def on_bar(self, bar: Bar) -> None:
        rng = self.rng
        iid = self.inst.id
        side = OrderSide.BUY if rng.random() < 0.5 else OrderSide.SELL
        qty = f"0.0{rng.randint(1, 9)}"
        roll = rng.random()
        if roll < 0.15:
            self.submit(iid, side, qty)
        elif roll < 0.45:
            away = fixed.to_raw(str(rng.uniform(-0.004, 0.004)))
            px = bar.close + fixed.mul(bar.close, away) * -int(side)
            self.submit(iid, side, qty, OrderType.LIMIT, price=fixed.to_str(px))
        elif roll < 0.6:
            working = sorted(self.open_orders(), key=lambda o: o.client_order_id)
            if working:
                self.cancel(rng.choice(working).client_order_id)
        elif roll < 0.72:
            working = [
                o
                for o in sorted(self.open_orders(), key=lambda o: o.client_order_id)
                if o.order_type is OrderType.LIMIT and o.price is not None
            ]
            if working:
                order = rng.choice(working)
                step = self.inst.tick_size * rng.randint(-50, 50)
                if rng.random() < 0.5:
                    self.modify(order.client_order_id, price=fixed.to_str(order.price + step))
                else:
                    bigger = order.quantity + self.inst.lot_size * rng.randint(1, 20)
                    self.modify(order.client_order_id, quantity=fixed.to_str(bigger))
        elif roll < 0.75 and not self.algos.parents():
            self.algos.submit_parent(
                iid, side, "0.2", "twap", {"duration": "20m"}, strategy_id=self.strategy_id
            )


@dataclass
class Outcome:
    crashed: bool = False
    stuck: int = 0
    double_fills: int = 0
    lost_fills: int = 0
    mismatches: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    activity: Counter[str] = field(default_factory=Counter)
    error: str = ""

    @property
    def converged(self) -> bool:
        return not (
            self.crashed or self.stuck or self.double_fills or self.lost_fills or self.mismatches
        )


def episode(series: BarSeries, inst: Instrument, seed: int, bars: int, rate: float) -> Outcome:
    rng = random.Random(seed)
    start = rng.randrange(0, len(series) - bars)
    window = series.between(
        int(series.ts_open[start]), int(series.ts_open[start]) + bars * series.interval_ns
    )
    config = EngineConfig(
        starting_balances={"USDT": "1000000", "BTC": "20"},
        latency_ns=200_000_000,
        latency_jitter_ns=300_000_000,
        seed=seed,
        reconcile_interval_ns=10 * MIN,
    )
    journal = MemoryJournal()
    algos = AlgoEngine()
    trader = RandomTrader(algos, inst, rng)
    engine = Engine.simulated([inst], [algos, trader], config, journal=journal)
    faults = FaultConfig.everything(rate)
    link = FaultyLink(engine.venue, engine.clock, engine.schedule, engine.deliver, faults, seed)
    engine.use_link(link)
    out = Outcome()
    try:
        engine.run(window)
        # the link heals; what it still held arrives; the in-flight window passes
        for report in link.heal():
            engine.orders.on_event(report)
        engine.clock.ts += engine.orders.in_flight_ns + 1
        engine.reconcile()
    except Exception:
        out.crashed = True
        out.error = traceback.format_exc()
        out.counts = link.counts
        return out
    out.counts = link.counts
    venue = engine.venue
    handler = engine.orders.reports
    out.activity.update(
        orders=len(engine.orders.orders),
        fills=engine.portfolio.fill_count,
        anomalies=handler.anomalies,
        status_queries=handler.queries,
    )
    om = engine.orders
    out.stuck = sum(1 for o in om.orders.values() if o.status is OrderStatus.UNKNOWN)
    engine_open = sorted(o.client_order_id for o in om.all_open())
    if engine_open != sorted(venue.open_order_ids()):
        out.stuck += len(set(engine_open) ^ set(venue.open_order_ids()))
    booked = Counter(e.trade_id for e in journal.events() if isinstance(e, OrderFilled))
    venue_trades = {f.trade_id for f in venue.fills_since(0)}
    out.double_fills = sum(n - 1 for n in booked.values() if n > 1)
    out.lost_fills = len(venue_trades - set(booked))
    if engine.portfolio.account.total != venue.account.total:
        out.mismatches.append(f"balances {engine.portfolio.account.total} != {venue.account.total}")
    mine = {i: p.qty for i, p in engine.portfolio.positions.items() if p.qty}
    if mine != venue.position_quantities():
        out.mismatches.append(f"positions {mine} != {venue.position_quantities()}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bars", type=int, default=120, help="one-minute bars per episode")
    ap.add_argument("--fault-rate", type=float, default=0.05, help="probability of each fault")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args(argv)
    if args.episodes < 1 or args.bars < 2:
        print("error: --episodes must be at least 1 and --bars at least 2", file=sys.stderr)
        return 2
    if not 0.0 <= args.fault_rate <= 1.0:
        print("error: --fault-rate must be a probability in [0, 1]", file=sys.stderr)
        return 2
    if not args.data.is_file():
        print(f"error: data not found: {args.data}", file=sys.stderr)
        return 2
    inst = INST
    series = load_bars(args.data, inst.id)
    started = time.monotonic()
    totals: Counter[str] = Counter({name: 0 for name in FAULT_CLASSES})
    tally: Counter[str] = Counter()
    activity: Counter[str] = Counter()
    failures: list[tuple[int, Outcome]] = []
    for k in range(args.episodes):
        out = episode(series, inst, args.seed * 1_000_003 + k, args.bars, args.fault_rate)
        totals.update(out.counts)
        activity.update(out.activity)
        tally["crashes"] += out.crashed
        tally["stuck orders"] += out.stuck
        tally["double fills"] += out.double_fills
        tally["lost fills"] += out.lost_fills
        tally["state mismatches"] += len(out.mismatches)
        tally["converged"] += out.converged
        if not out.converged:
            failures.append((k, out))
    elapsed = time.monotonic() - started
    print(f"{args.episodes} episodes of {args.bars} bars, seed {args.seed}, {elapsed:.0f} s")
    print()
    print(f"{'fault class':<20}{'injected':>10}")
    for name in FAULT_CLASSES:
        print(f"{name:<20}{totals[name]:>10}")
    print(f"{'total':<20}{sum(totals.values()):>10}")
    print()
    for name in ("orders", "fills", "anomalies", "status_queries"):
        print(f"{name.replace('_', ' '):<20}{activity[name]:>10}")
    print()
    for name in ("crashes", "stuck orders", "double fills", "lost fills", "state mismatches"):
        print(f"{name:<20}{tally[name]:>10}")
    converged = tally["converged"]
    print(f"{'converged':<20}{converged:>10}  ({100 * converged / args.episodes:.1f} %)")
    for k, out in failures[:5]:
        print(f"\nepisode {k}: {out.error or ''}{'; '.join(out.mismatches)}", file=sys.stderr)
    return 0 if converged == args.episodes else 1


if __name__ == "__main__":
    raise SystemExit(main())
