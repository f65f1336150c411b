"""``run-config --paper`` killed with SIGKILL and resumed with ``--resume``: nothing lost,
nothing duplicated, the same journal, report and cycle log as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CRYPTO = ROOT / "examples" / "configs" / "crypto_momentum.yaml"
# 06:00-18:00 on 19 May 2021: the first order at 07:50, eight more by 18:00
WINDOW = ["--start", "2021-05-19T06:00", "--duration", "12h", "--quiet"]
MARKERS = ("SessionStarted", "SessionStopped", "ReconciliationCompleted")


def cli(*args: str, config: Path = CRYPTO) -> list[str]:
    return [sys.executable, "-m", "tradepilot.cli", "run-config", str(config), "--paper", *args]


def run(workdir: Path, *args: str, config: Path = CRYPTO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args, config=config),
        cwd=workdir,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}


def rows(path: Path) -> list[tuple[str, bytes]]:
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT kind, payload FROM events ORDER BY seq").fetchall()
    return [(kind, bytes(payload)) for kind, payload in found]


def trading_rows(path: Path) -> list[tuple[str, bytes]]:
    return [(k, p) for k, p in rows(path) if k not in MARKERS]


def orders(path: Path) -> Counter[str]:
    return Counter(
        json.loads(p)["client_order_id"] for k, p in rows(path) if k == "OrderInitialized"
    )


def wait_for_orders(proc: subprocess.Popen[bytes], journal: Path, n: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the session ended before it could be killed"
        try:
            if journal.exists() and sum(orders(journal).values()) >= n:
                return
        except sqlite3.Error:
            pass  # the writer holds the file for a moment
        time.sleep(0.05)
    raise AssertionError(f"no {n} orders in the journal in time")


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("reference")
    out = run(work, "--session", "s", "--speed", "1e9", *WINDOW)
    assert out.returncode == 0, out.stderr
    return work / "runs"


def test_run_config_paper_killed_and_resumed_loses_and_duplicates_nothing(
    reference: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "runs" / "s.db"
    first = subprocess.Popen(
        cli("--session", "s", "--speed", "3600", *WINDOW),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_orders(first, journal, 1)
    kill9(first)
    killed_at = orders(journal)
    assert killed_at

    # a forgotten --resume does not wipe the interrupted session
    before = rows(journal)
    again = run(tmp_path, "--session", "s", *WINDOW)
    assert again.returncode != 0 and "--resume" in again.stderr
    assert "Traceback" not in again.stderr
    assert rows(journal) == before

    # killed a second time after it traded on, then left to finish
    second = subprocess.Popen(
        cli("--session", "s", "--resume"),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_orders(second, journal, sum(killed_at.values()) + 2)
    kill9(second)
    done = run(tmp_path, "--session", "s", "--resume")
    assert done.returncode == 0, done.stderr

    ref_orders, got = orders(reference / "s.db"), orders(journal)
    assert len(ref_orders) >= 8
    assert set(got) == set(ref_orders)  # nothing lost
    assert max(got.values()) == 1  # nothing sent twice
    assert trading_rows(journal) == trading_rows(reference / "s.db")
    resumes = [k for k, _ in rows(journal) if k == "ReconciliationCompleted"]
    assert len(resumes) == 2
    ref_report = json.loads((reference / "s.report.json").read_text())
    report = json.loads((tmp_path / "runs" / "s.report.json").read_text())
    assert report["resumed"] is True and report["reconciliation"]["mismatches"] == []
    for key in ("summary", "positions", "balances", "signals", "holds"):
        assert report[key] == ref_report[key], key
    ref_log = (reference / "s.jsonl").read_text().splitlines()
    assert (tmp_path / "runs" / "s.jsonl").read_text().splitlines() == ref_log


def test_resume_refuses_a_changed_configuration(reference: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed.yaml"
    changed.write_text(CRYPTO.read_text().replace('capital: "100000"', 'capital: "90000"'))
    (tmp_path / "runs").mkdir()
    for suffix in (".db", ".jsonl"):
        (tmp_path / "runs" / f"s{suffix}").write_bytes((reference / f"s{suffix}").read_bytes())
    out = run(tmp_path, "--session", "s", "--resume", config=changed)
    assert out.returncode != 0 and "differs from the one the session was started" in out.stderr
    assert "Traceback" not in out.stderr
