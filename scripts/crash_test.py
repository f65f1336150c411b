"""Crash test: kill a paper session with SIGKILL N times, resume it each time, compare.

    python scripts/crash_test.py --kills 200
    python scripts/crash_test.py --kills 5 --seed 3 --workdir /tmp/crash

1. An uninterrupted reference session runs to the end (as fast as possible).
2. The same session runs paced; at random moments it is killed with SIGKILL (no
   chance to flush or clean up) and restarted with ``--resume``, N times, then it
   is left to finish.
3. The two journals and reports are compared: orders lost (in the reference, not
   in the crashed run), orders duplicated (an id initialised twice), positions,
   balances and the journal's trading records (everything but stop/reconciliation
   markers) must be identical.

Exit status 0 only if nothing was lost or duplicated and the final state is identical.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# not compared: stop/repair markers, and the first record (it holds the pacing speed)
MARKER_KINDS = ("SessionStarted", "SessionStopped", "ReconciliationCompleted")
DAY_S = 86_400


def paper_cmd(session: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tradepilot.cli",
        "paper",
        "--session",
        session,
        "--quiet",
        *extra,
    ]


def has_started(path: Path) -> bool:
    """True once the session's first record is durable."""
    if not path.exists():
        return False
    conn = sqlite3.connect(str(path))
    try:
        return bool(conn.execute("SELECT 1 FROM events WHERE seq = 1").fetchone())
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


def journal_rows(path: Path) -> list[tuple[str, bytes]]:
    conn = sqlite3.connect(str(path))
    try:
        rows = conn.execute("SELECT kind, payload FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [(kind, bytes(payload)) for kind, payload in rows if kind not in MARKER_KINDS]


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
    ap.add_argument("--min-life", type=float, default=0.2, help="shortest time before a kill, s")
    ap.add_argument("--max-life", type=float, default=2.5, help="longest time before a kill, s")
    ap.add_argument("--duration", default="24h")
    ap.add_argument("--threshold", default="0.3", help="momentum threshold, %%/hour (trades more)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tradepilot-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    # the sessions run in the work folder: keep a relative PYTHONPATH pointing at this code
    path = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(path)}
    common = [
        "--duration",
        args.duration,
        "--cycle",
        "300s",
        "-p",
        f"threshold_pct={args.threshold}",
    ]

    subprocess.run(
        paper_cmd("reference", "--speed", "1e9", *common),
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )

    # pace the crashed run so that N kills spread over the whole session
    live = max(0.05, (args.min_life + args.max_life) / 2 - 0.8)
    speed = max(50.0, DAY_S / (args.kills * live))
    started = time.monotonic()
    # --overwrite: a run killed before its first record starts over (old files kept aside)
    first_run = paper_cmd("crashed", "--speed", f"{speed:.0f}", *common, "--overwrite")
    journal = work / "runs" / "crashed.db"

    def start() -> subprocess.Popen[bytes]:
        # a kill can land before the first record is durable: then start over
        cmd = paper_cmd("crashed", "--resume") if has_started(journal) else first_run
        return subprocess.Popen(
            cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    proc = start()
    kills = 0
    finished_early = 0
    while kills < args.kills:
        try:
            proc.wait(timeout=rng.uniform(args.min_life, args.max_life))
            finished_early += 1  # it reached the end before this kill: run the last part again
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        if finished_early > 3:
            break
        proc = start()
    _, stderr = proc.communicate(timeout=600)
    if proc.returncode != 0:
        print(stderr.decode(), file=sys.stderr)
        print(f"the final resumed run failed with exit code {proc.returncode}")
        return 1

    ref_rows = journal_rows(work / "runs" / "reference.db")
    crash_rows = journal_rows(work / "runs" / "crashed.db")
    ref_ids, crash_ids = order_ids(ref_rows), order_ids(crash_rows)
    lost = sorted(set(ref_ids) - set(crash_ids))
    duplicated = sorted(cid for cid, n in crash_ids.items() if n > 1)
    ref_report = json.loads((work / "runs" / "reference.report.json").read_text())
    crash_report = json.loads((work / "runs" / "crashed.report.json").read_text())
    same_positions = ref_report["positions"] == crash_report["positions"]
    same_balances = ref_report["balances"] == crash_report["balances"]
    same_journal = ref_rows == crash_rows
    print(f"kills: {kills} (SIGKILL at random points, {time.monotonic() - started:.0f} s)")
    print(f"orders in the reference run: {len(ref_ids)}, in the crashed run: {len(crash_ids)}")
    print(f"orders lost: {len(lost)}")
    print(f"orders duplicated: {len(duplicated)}")
    print(f"positions identical: {'yes' if same_positions else 'NO'}")
    print(f"balances identical: {'yes' if same_balances else 'NO'}")
    print(f"journal records identical: {'yes' if same_journal else 'NO'}")
    print(f"work folder: {work}")
    ok = not lost and not duplicated and same_positions and same_balances and same_journal
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
