"""Journal append throughput: N fills appended with group commit, per backend.

    python bench/bench_journal.py [--events N] [--backend sqlite|postgres|both]
                                  [--batch 1000] [--runs 3] [--url URL]

Each run appends N ``OrderFilled`` events (built beforehand) to a fresh journal,
flushing every ``--batch`` events (one transaction and one batch record per
flush), and closes it; the time covers encoding, buffering, the flushes and the
close. Prints events/s of each run and the median. SQLite writes to a temporary
directory; PostgreSQL to a fresh session that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

try:
    import tradepilot  # noqa: F401
except ImportError:  # run from a checkout without installing: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tradepilot.model.events import Event, OrderFilled
from tradepilot.persistence.journal import PersistentJournal, SqliteJournal

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def make_events(n: int) -> list[Event]:
    """Realistic fills: alternating sides, moving prices, distinct ids."""
    t0 = 1_620_950_400_000_000_000
    events: list[Event] = []
    for i in range(n):
        taker = i % 3 != 0
        px = 5_000_000_000_000 + (i * 7919) % 50_000_000_000
        qty = 1_000 + (i * 31) % 250_000
        events.append(
            OrderFilled(
                ts=t0 + i * 1_000_000,
                client_order_id=f"O-20210514-{i // 4:09d}",
                instrument_id="BTCUSDT.BINANCE",
                strategy_id="ema-cross-001",
                trade_id=f"T-{i:012d}",
                side=1 if i % 2 == 0 else 2,
                last_qty=qty,
                last_px=px,
                fee=(px * qty // 100_000_000) * (10 if taker else 2) // 10_000,
                fee_currency="USDT",
                liquidity="TAKER" if taker else "MAKER",
            )
        )
    return events


def run_once(journal: PersistentJournal, events: list[Event], batch: int) -> float:
    """Seconds to append every event, flushing every ``batch``, and close."""
    append = journal.append
    flush = journal.flush
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        for event in events[i : i + batch]:
            append(event)
        flush()
    journal.close()
    return time.perf_counter() - start


def bench_sqlite(events: list[Event], batch: int, runs: int) -> list[float]:
    rates = []
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        for run in range(runs):
            path = Path(tmp) / f"run{run}.db"
            # batch_size above the flush interval: every batch comes from an explicit flush
            journal = SqliteJournal(path, session="bench", batch_size=batch + 1)
            rates.append(len(events) / run_once(journal, events, batch))
            os.remove(path)
    return rates


def bench_postgres(events: list[Event], batch: int, runs: int, url: str) -> list[float]:
    from tradepilot.persistence.postgres import PostgresJournal, drop_session

    rates = []
    for _ in range(runs):
        session = f"bench-{uuid.uuid4().hex[:12]}"
        journal = PostgresJournal(url, session=session, batch_size=batch + 1)
        try:
            rates.append(len(events) / run_once(journal, events, batch))
        finally:
            journal.close()
            drop_session(url, session)
    return rates


def report(name: str, rates: list[float]) -> None:
    runs = "  ".join(f"{rate:,.0f}" for rate in rates)
    print(f"{name:<9} runs (events/s): {runs}")
    print(f"{name:<9} median: {statistics.median(rates):,.0f} events/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Journal append throughput with group commit, per backend."
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per run")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--batch", type=int, default=1000, help="events per flush (batch)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("TRADEPILOT_JOURNAL_URL", DEFAULT_URL))
    args = parser.parse_args(argv)
    if args.events < 1 or args.batch < 1 or args.runs < 1:
        parser.error("--events, --batch and --runs must be positive")

    events = make_events(args.events)
    print(f"{args.events:,} OrderFilled events, flush every {args.batch:,}, {args.runs} runs")
    benches: dict[str, Callable[[], list[float]]] = {
        "sqlite": lambda: bench_sqlite(events, args.batch, args.runs),
        "postgres": lambda: bench_postgres(events, args.batch, args.runs, args.url),
    }
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for name in names:
        report(name, benches[name]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
