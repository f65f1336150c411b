"""Crash test: SIGKILL a paper session N times while orders are live, resume it each time, compare.

    python scripts/crash_test.py --kills 200
    python scripts/crash_test.py --kills 200 --journal postgresql+psycopg://postgres@127.0.0.1/test
    python scripts/crash_test.py --kills 5 --seed 3 --workdir /tmp/crash

1. An uninterrupted reference session of the ``maker`` strategy runs to the end (as
   fast as possible). The strategy always rests a bid (and an ask while it holds
   inventory), moves them by modify or cancel-and-replace, and works its inventory
   with TWAP parent orders: orders are working nearly all the time.
2. The same session runs paced. The first kill waits until the journal holds an
   order; every kill lands at a random moment of a process's life, which is often
   still the resume (start-up, replay, reconciliation) and otherwise the live
   session, so the kills spread over the whole session. Each killed run is resumed
   with ``--resume``; after N kills the session is left to finish.
3. After each kill the durable journal is folded: does it hold an order, are orders
   or parent orders working, did the killed process journal anything (if not, it
   died during the resume)? At the end the two journals and reports are compared:
   orders lost (in the reference, not in the crashed run), orders duplicated (an id
   initialised twice), positions, balances and the journal's trading records
   (everything but start/stop/reconciliation markers) must be identical.

Exit status 0 only if nothing was lost or duplicated, the final state is identical and
every kill landed after the first order.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tradepilot.persistence.journal import PersistentJournal, is_postgres_url, open_journal
from tradepilot.persistence.projection import StateProjection

# not compared: start/stop/repair markers (the first record holds the pacing speed)
MARKER_KINDS = ("SessionStarted", "SessionStopped", "ReconciliationCompleted")


@dataclass
class Durable:
    """What the journal held when a process died."""

    rows: int
    orders: int
    working_orders: int
    working_parents: int
    last_ts: int


class Store:
    """The journals of the two sessions: SQLite files under runs/ or PostgreSQL sessions."""

    def __init__(self, work: Path, url: str | None, tag: str) -> None:
        self.work = work
        self.url = url
        self.tag = tag

    def session(self, name: str) -> str:
        return f"{name}-{self.tag}" if self.url else name

    def args(self, name: str) -> list[str]:
        return ["--journal", self.url] if self.url else []

    def _path(self, name: str) -> Path:
        return self.work / "runs" / f"{name}.db"

    def last(self, name: str) -> tuple[int, int, bool]:
        """``(last seq, its ts, holds an order)`` of the durable journal, read while it runs."""
        last = "SELECT seq, ts FROM events{} ORDER BY seq DESC LIMIT 1"
        order = "SELECT 1 FROM events WHERE kind = 'OrderInitialized'{} LIMIT 1"
        if self.url:
            import psycopg

            plain = self.url.replace("postgresql+psycopg://", "postgresql://", 1)
            key = (self.session(name),)
            with psycopg.connect(plain) as conn:
                row = conn.execute(last.format(" WHERE session = %s"), key).fetchone()
                has = conn.execute(order.format(" AND session = %s"), key).fetchone()
        else:
            import sqlite3

            path = self._path(name)
            if not path.exists():
                return 0, 0, False
            conn = sqlite3.connect(str(path))
            try:
                row = conn.execute(last.format("")).fetchone()
                has = conn.execute(order.format("")).fetchone() if row else None
            except sqlite3.DatabaseError:
                return 0, 0, False
            finally:
                conn.close()
        return (int(row[0]), int(row[1]), has is not None) if row else (0, 0, False)

    def _open(self, name: str, scratch: Path) -> PersistentJournal:
        if self.url:
            return open_journal(self.url, session=self.session(name))
        for suffix in ("", "-wal", "-shm"):  # read a copy: the session's files stay as they are
            src = Path(f"{self._path(name)}{suffix}")
            dst = Path(f"{scratch}{suffix}")
            dst.unlink(missing_ok=True)
            if src.exists():
                shutil.copyfile(src, dst)
        return open_journal(scratch)

    def durable(self, name: str) -> Durable:
        journal = self._open(name, self.work / "probe.db")
        with journal:
            state = StateProjection.from_journal(journal)
            rows = journal.last_seq
        running = sum(1 for p in state.parents.values() if p.state == "RUNNING")
        return Durable(rows, len(state.orders), len(state.open_orders), running, state.last_ts)

    def first_ts(self, name: str) -> int:
        journal = self._open(name, self.work / "first.db")
        with journal:
            for _, ts, _, _ in journal.rows(limit=1):
                return int(ts)
        return 0

    def report(self, name: str) -> dict[str, object]:
        path = self.work / "runs" / f"{self.session(name)}.report.json"
        report: dict[str, object] = json.loads(path.read_text())
        return report

    def rows(self, name: str) -> list[tuple[str, bytes]]:
        journal = self._open(name, self.work / "final.db")
        with journal:
            rows = list(journal.rows())
        return [(kind, bytes(payload)) for _, _, kind, payload in rows if kind not in MARKER_KINDS]


def order_ids(rows: list[tuple[str, bytes]]) -> Counter[str]:
    return Counter(
        json.loads(payload)["client_order_id"]
        for kind, payload in rows
        if kind == "OrderInitialized"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed", type=float, default=600.0, help="pacing of the crashed run")
    ap.add_argument(
        "--resume-share", type=float, default=0.25, help="share of kills aimed at the resume"
    )
    ap.add_argument("--duration", default="12h")
    ap.add_argument("--journal", default=None, help="PostgreSQL URL (default: SQLite files)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    if args.kills < 1 or not 0 < args.speed < 1e9 or not 0 <= args.resume_share < 1:
        print(
            "error: --kills and --speed must be positive, --resume-share in [0, 1)", file=sys.stderr
        )
        return 2
    if args.journal is not None and not is_postgres_url(args.journal):
        print("error: --journal takes a postgresql+psycopg:// URL", file=sys.stderr)
        return 2
    hours = float(args.duration.rstrip("h")) if args.duration.endswith("h") else None
    if hours is None or not 0 < hours <= 24 * 6:
        print("error: --duration is a number of hours, e.g. 12h", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tradepilot-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    store = Store(work, args.journal, f"{args.seed}-{os.getpid()}-{int(time.time())}")
    # the sessions run the code next to this script
    src = str(Path(__file__).resolve().parents[1] / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}

    def paper(name: str, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tradepilot.cli",
            "paper",
            "--session",
            store.session(name),
            "--quiet",
            *store.args(name),
            *extra,
        ]

    common = ["-s", "maker", "--duration", args.duration, "--cycle", "300s"]
    subprocess.run(
        paper("reference", "--speed", "1e9", *common),
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )

    # kill i lands once the session has passed a random point of the i-th of N equal parts
    # of its market time; a share of the resumed runs is killed during the resume itself
    ref_first, ref_last = store.first_ts("reference"), store.durable("reference").last_ts
    span = max(ref_last - ref_first, 1)
    aimed = {k for k in range(1, args.kills) if rng.random() < args.resume_share}
    parts = args.kills - len(aimed)
    targets = [ref_first + int(span * (i + rng.random()) / parts) for i in range(parts)]
    started = time.monotonic()

    def start(resume: bool) -> subprocess.Popen[bytes]:
        cmd = (
            paper("crashed", "--resume")
            if resume
            else paper("crashed", "--speed", f"{args.speed:g}", *common)
        )
        return subprocess.Popen(
            cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    proc = start(resume=False)
    kills = 0
    tally: Counter[str] = Counter()
    positions: list[int] = []
    before = 0  # durable rows when the current process started
    startup = 1.0  # seconds from a resume's start to its first new record (measured)
    finished = False
    while kills < args.kills and not finished:
        launched = time.monotonic()
        in_resume = kills in aimed
        deadline = launched + rng.uniform(0.3, 1.0) * startup
        target = targets[min(len(positions) - tally["during the resume"], len(targets) - 1)]
        while True:
            if proc.poll() is not None:
                finished = True  # it reached the end of the session first
                break
            seq, ts, has_order = store.last("crashed")
            if seq > before and not in_resume and startup == 1.0:
                startup = max(0.2, time.monotonic() - launched)
            if in_resume and (time.monotonic() >= deadline or seq > before):
                break
            if not in_resume and has_order and ts >= target:
                time.sleep(rng.uniform(0.0, 0.05))  # anywhere in the work that follows
                break
            time.sleep(0.01)
        if finished:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        seen = store.durable("crashed")
        tally["after the first order"] += seen.orders > 0
        tally["orders working"] += seen.working_orders > 0
        tally["parent orders working"] += seen.working_parents > 0
        tally["orders or parent orders working"] += (
            seen.working_orders > 0 or seen.working_parents > 0
        )
        tally["during the resume"] += kills > 1 and seen.rows == before
        before = seen.rows
        positions.append(seen.last_ts)
        proc = start(resume=True)
    _, stderr = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        print(stderr.decode(), file=sys.stderr)
        print(f"the final resumed run failed with exit code {proc.returncode}")
        return 1

    ref_rows = store.rows("reference")
    crash_rows = store.rows("crashed")
    ref_ids, crash_ids = order_ids(ref_rows), order_ids(crash_rows)
    lost = sorted(set(ref_ids) - set(crash_ids))
    duplicated = sorted(cid for cid, n in crash_ids.items() if n > 1)
    ref_report = json.loads(
        (work / "runs" / f"{store.session('reference')}.report.json").read_text()
    )
    crash_report = json.loads(
        (work / "runs" / f"{store.session('crashed')}.report.json").read_text()
    )
    same_positions = ref_report["positions"] == crash_report["positions"]
    same_balances = ref_report["balances"] == crash_report["balances"]
    same_journal = ref_rows == crash_rows
    lived = [t for t in positions if t]
    first_ts, last_ts = min(lived, default=ref_first), max(lived, default=ref_first)
    deciles = {min(9, (t - ref_first) * 10 // span) for t in lived}
    print(f"journal: {'PostgreSQL' if args.journal else 'SQLite'}")
    print(f"kills: {kills} (SIGKILL at random points, {time.monotonic() - started:.0f} s)")
    for name in (
        "after the first order",
        "orders working",
        "parent orders working",
        "orders or parent orders working",
        "during the resume",
    ):
        print(f"kills {name}: {tally[name]}")
    print(
        f"kills spread over the session: first at {100 * (first_ts - ref_first) // span} %, "
        f"last at {100 * (last_ts - ref_first) // span} %, deciles hit {len(deciles)}/10"
    )
    print(f"orders in the reference run: {len(ref_ids)}, in the crashed run: {len(crash_ids)}")
    print(f"orders lost: {len(lost)}")
    print(f"orders duplicated: {len(duplicated)}")
    print(f"positions identical: {'yes' if same_positions else 'NO'}")
    print(f"balances identical: {'yes' if same_balances else 'NO'}")
    print(f"journal records identical: {'yes' if same_journal else 'NO'}")
    print(f"work folder: {work}")
    ok = (
        not lost
        and not duplicated
        and same_positions
        and same_balances
        and same_journal
        and tally["after the first order"] == kills
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
