"""Run the benchmark workloads W1 (bars) and W2 (trade ticks) and print their speed.

    python bench/bench_workloads.py                 # W1 and W2 on 1M events, 3 runs each
    python bench/bench_workloads.py --workload W1 --size 100000 --runs 1

Data: the files written by ``shared/bench/gen_data.py`` (generated into ``--data``
when missing and the generator is found next to the repository). Each run happens
in a fresh child process so that its peak RSS is its own; loading is timed
separately from the engine run. Prints per run and the median, and checks the
order/fill/cancel counts and final equity against the reference results.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT.parent / "shared" / "bench" / "gen_data.py"

# workload, size -> (orders, fills, cancels, final equity)
REFERENCE = {
    ("W1", 100_000): (3_717, 3_717, 0, "98679.96"),
    ("W1", 1_000_000): (37_013, 37_013, 0, "89254.85"),
    ("W2", 1_000_000): (1_032, 57, 974, "99983.92"),
}


def run_once(workload: str, data: Path, size: int) -> dict[str, object]:
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "bench"))
    from tradepilot.data.loaders import load_bars, load_trades
    from tradepilot.engine.kernel import Engine, EngineConfig
    from tradepilot.model import fixed
    from tradepilot.model.enums import OrderStatus
    from tradepilot.model.events import OrderCanceled
    from tradepilot.persistence.journal import SqliteJournal
    from tradepilot.strategy.base import Strategy
    from tradepilot.strategy.examples.ema_cross import EmaCross, EmaCrossParams
    from workloads import RestingLimits, bench_instrument

    inst = bench_instrument()
    t0 = time.perf_counter()
    series: object
    strategy: Strategy
    if workload == "W1":
        series = load_bars(data / f"bars_1m_{size}.parquet", inst.id)
        strategy = EmaCross(EmaCrossParams(inst.id, 10, 30))
    else:
        series = load_trades(data / f"trades_{size}.parquet", inst.id)
        strategy = RestingLimits(inst.id)
    load_s = time.perf_counter() - t0
    journal_path = data / f"journal-{workload}-{size}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{journal_path}{suffix}").unlink(missing_ok=True)
    journal = SqliteJournal(journal_path, batch_size=8192)
    engine = Engine.simulated([inst], [strategy], EngineConfig(), journal=journal)
    t1 = time.perf_counter()
    engine.run(series)  # type: ignore[arg-type]
    run_s = time.perf_counter() - t1
    journal.close()
    orders = engine.orders.orders.values()
    cancels = sum(1 for o in orders if o.status is OrderStatus.CANCELED)
    canceled_events = sum(1 for o in orders for e in o.events if isinstance(e, OrderCanceled))
    assert cancels == canceled_events
    events = engine.events_processed
    return {
        "workload": workload,
        "size": size,
        "events": events,
        "load_s": round(load_s, 3),
        "run_s": round(run_s, 3),
        "events_per_s": round(events / run_s),
        "orders": len(engine.orders.orders),
        "fills": engine.portfolio.fill_count,
        "cancels": cancels,
        "final_equity": fixed.to_str(engine.portfolio.equity()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def ensure_data(data: Path) -> None:
    if (data / "bars_1m_1000000.parquet").exists():
        return
    if not GENERATOR.exists():
        sys.exit(f"no benchmark data in {data} and no generator at {GENERATOR}")
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(data)], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workload", choices=["W1", "W2", "all"], default="all")
    ap.add_argument("--size", type=int, default=1_000_000, choices=[100_000, 1_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_once(args.workload, args.data, args.size)))
        return 0
    ensure_data(args.data)
    failed = False
    for workload in ["W1", "W2"] if args.workload == "all" else [args.workload]:
        results = []
        for _ in range(args.runs):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--workload",
                    workload,
                    "--size",
                    str(args.size),
                    "--data",
                    str(args.data),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            res = json.loads(out.stdout)
            results.append(res)
            print(
                f"{workload} {args.size:>9,} events: {res['events_per_s']:>9,} events/s "
                f"(run {res['run_s']} s, load {res['load_s']} s), peak RSS {res['peak_rss_mb']} MB"
            )
        med = statistics.median(r["events_per_s"] for r in results)  # type: ignore[misc]
        rss = statistics.median(r["peak_rss_mb"] for r in results)  # type: ignore[misc]
        last = results[-1]
        ref = REFERENCE.get((workload, args.size))
        got = (last["orders"], last["fills"], last["cancels"], last["final_equity"])
        verdict = "no reference"
        if ref is not None:
            ok = got[:3] == ref[:3] and abs(float(str(got[3])) - float(ref[3])) <= 0.01
            verdict = "matches reference" if ok else f"MISMATCH: expected {ref}"
            failed |= not ok
        print(
            f"{workload} median: {med:,.0f} events/s, peak RSS {rss} MB | orders {got[0]}, "
            f"fills {got[1]}, cancels {got[2]}, final equity {got[3]} USDT ({verdict})"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
