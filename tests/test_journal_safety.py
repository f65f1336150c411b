"""Journals, logs and data sets are never destroyed implicitly; one writer per journal.

The PostgreSQL tests need the server at ``TRADEPILOT_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and fail when it is absent.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from tradepilot.app.build import RunSpec
from tradepilot.app.session import Session, SessionOptions, SpecPlan
from tradepilot.cli.main import app
from tradepilot.core.time import NS_PER_HOUR, NS_PER_MINUTE
from tradepilot.persistence.files import JournalExists, open_new_journal
from tradepilot.persistence.journal import JournalError, SqliteJournal, read_events
from tradepilot.persistence.locks import JournalBusy

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "configs" / "crypto_momentum.yaml"
PG_URL = os.environ.get(
    "TRADEPILOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHORT = ["--end", "2021-05-14T04:00"]
SPEC = RunSpec(strategy="momentum", params={"threshold_pct": "0.3"})
OPTIONS = SessionOptions(
    "paper", speed=1e12, duration_ns=6 * NS_PER_HOUR, cycle_ns=5 * NS_PER_MINUTE
)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def backtest_journal(tmp_path: Path) -> Path:
    journal = tmp_path / "bt.db"
    result = cli("backtest", *SHORT, "--journal", str(journal))
    assert result.exit_code == 0, result.output
    assert len(read_events(journal)) > 10
    return journal


# -- a new session never replaces an existing journal -------------------------------------------
def test_backtest_refuses_an_existing_journal_and_names_the_ways_on(
    tmp_path: Path, backtest_journal: Path
) -> None:
    before = fingerprint(tmp_path)
    line = one_line_error(cli("backtest", *SHORT, "--journal", str(backtest_journal)))
    assert str(backtest_journal) in line and "--overwrite" in line
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize(
    "bad",
    [
        ["--start", "garbage"],
        ["--slippage-ticks", "-100"],
        ["--capital", "-5"],
        ["--strategy", "nope"],
        ["--start", "2021-05-14T05:00"],  # end before start
        ["--limit-fill", "sideways"],
        ["--data", "no-such-set"],
    ],
)
def test_a_rejected_backtest_leaves_the_journal_untouched_even_with_overwrite(
    tmp_path: Path, backtest_journal: Path, bad: list[str]
) -> None:
    before = fingerprint(tmp_path)
    one_line_error(cli("backtest", *SHORT, *bad, "--journal", str(backtest_journal), "--overwrite"))
    assert fingerprint(tmp_path) == before


def test_overwrite_moves_the_old_journal_aside(tmp_path: Path, backtest_journal: Path) -> None:
    old = backtest_journal.read_bytes()
    for n in (1, 2):
        result = cli("backtest", *SHORT, "--journal", str(backtest_journal), "--overwrite")
        assert result.exit_code == 0, result.output
        assert (tmp_path / f"bt.db.bak{n}").exists()
    assert (tmp_path / "bt.db.bak1").read_bytes() == old
    assert len(read_events(tmp_path / "bt.db.bak1")) == len(read_events(backtest_journal))


def test_the_default_backtest_journal_takes_the_next_free_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADEPILOT_JOURNAL_URL", raising=False)
    for _ in range(2):
        assert cli("backtest", *SHORT).exit_code == 0
    first = (tmp_path / "runs" / "backtest.db").read_bytes()
    assert (tmp_path / "runs" / "backtest-2.db").read_bytes() == first


def paper(tmp: Path, name: str, *extra: str) -> Result:
    return cli(
        "paper",
        "--session",
        name,
        "--journal",
        str(tmp / f"{name}.db"),
        "--log",
        str(tmp / f"{name}.jsonl"),
        "--speed",
        "1e12",
        "--duration",
        "3h",
        "--quiet",
        *extra,
    )


def test_a_new_paper_session_refuses_an_existing_session(tmp_path: Path) -> None:
    assert paper(tmp_path, "s").exit_code == 0
    before = fingerprint(tmp_path)
    line = one_line_error(paper(tmp_path, "s"))
    assert "--resume" in line and "--overwrite" in line and "s.db" in line
    assert fingerprint(tmp_path) == before
    # the journal gone but its cycle log still there: still refused
    (tmp_path / "s.db").rename(tmp_path / "elsewhere.db")
    assert "s.jsonl" in one_line_error(paper(tmp_path, "s"))
    # a WAL file alone is part of a journal
    (tmp_path / "s.jsonl").rename(tmp_path / "elsewhere.jsonl")
    (tmp_path / "s.db-wal").write_bytes(b"x")
    assert "s.db-wal" in one_line_error(paper(tmp_path, "s"))


def test_resume_and_overwrite_together_are_refused(tmp_path: Path) -> None:
    assert paper(tmp_path, "s").exit_code == 0
    before = fingerprint(tmp_path)
    one_line_error(paper(tmp_path, "s", "--resume", "--overwrite"))
    assert fingerprint(tmp_path) == before


def test_run_config_refuses_an_existing_journal(tmp_path: Path) -> None:
    args = ["run-config", str(CONFIG), "--end", "2021-05-14T06:00", "--quiet"]
    files = ["--journal", str(tmp_path / "c.db"), "--log", str(tmp_path / "c.jsonl")]
    report = ["--report", str(tmp_path / "c.json")]
    assert cli(*args, *files, *report).exit_code == 0
    before = fingerprint(tmp_path)
    assert "c.db" in one_line_error(cli(*args, *files, *report))
    one_line_error(cli(*args, "--start", "nonsense", *files, *report, "--overwrite"))
    assert fingerprint(tmp_path) == before
    assert cli(*args, *files, *report, "--overwrite").exit_code == 0
    assert (tmp_path / "c.db.bak1").exists() and (tmp_path / "c.jsonl.bak1").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "", "x" * 101, "a\x00b"])
def test_session_names_are_refused_outside_the_safe_set(tmp_path: Path, name: str) -> None:
    result = cli("paper", "--session", name, "--speed", "1e12", "--duration", "1h")
    one_line_error(result)
    assert not list(tmp_path.parent.glob("x*"))


def test_a_config_name_cannot_leave_the_runs_folder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("name: crypto-momentum", "name: ../../escape"))
    assert "not a valid name" in one_line_error(cli("run-config", str(bad)))


def test_a_journal_under_a_regular_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    line = one_line_error(cli("backtest", *SHORT, "--journal", str(tmp_path / "file" / "j.db")))
    assert "not a directory" in line


# -- one writer per journal ------------------------------------------------------------------------
def test_a_second_owner_of_a_sqlite_journal_is_refused_in_process(tmp_path: Path) -> None:
    first = open_new_journal(tmp_path / "j.db")
    with pytest.raises(JournalBusy, match="in use by another session"):
        open_new_journal(tmp_path / "j.db", overwrite=True)
    with pytest.raises(JournalBusy):
        SqliteJournal(tmp_path / "j.db", exclusive=True)
    first.close()
    with pytest.raises(JournalExists):
        open_new_journal(tmp_path / "j.db")
    SqliteJournal(tmp_path / "j.db", exclusive=True).close()  # free again


def _paper_process(tmp: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("TRADEPILOT_JOURNAL_URL", None)
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "tradepilot.cli", "paper", "--session", "live", "--quiet"),
            *("--journal", str(tmp / "live.db"), "--log", str(tmp / "live.jsonl"), *extra),
        ],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_events(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with sqlite3.connect(path) as conn:
                    if conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0:
                        return
            except sqlite3.Error:
                pass
        time.sleep(0.1)
    raise AssertionError(f"no events in {path} after {timeout} s")


def test_two_processes_cannot_write_one_journal(tmp_path: Path) -> None:
    first = _paper_process(tmp_path, "--speed", "60", "--duration", "24h")
    try:
        _wait_for_events(tmp_path / "live.db")
        for extra in (("--resume",), ("--overwrite", "--speed", "1e12")):
            second = _paper_process(tmp_path, *extra)
            _, err = second.communicate(timeout=120)
            assert second.returncode == 2, err
            assert "in use by another session" in err and "Traceback" not in err
        assert first.poll() is None  # the owner runs on, its files untouched
        assert not list(tmp_path.glob("*.bak*"))
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 0
    # once the owner has stopped, the session resumes (at its journaled pace: stop it)
    resumed = _paper_process(tmp_path, "--resume")
    try:
        assert resumed.stderr is not None
        banner = resumed.stderr.readline()
        assert "(resumed)" in banner, banner
        time.sleep(1)
    finally:
        resumed.send_signal(signal.SIGTERM)
        resumed.communicate(timeout=120)
    assert resumed.returncode == 0


# -- disk full -------------------------------------------------------------------------------------
class _FullDisk:
    """A SQLite connection whose writes fail with 'disk is full' after ``allowed`` batches."""

    def __init__(self, conn: sqlite3.Connection, allowed: int) -> None:
        self._conn = conn
        self.allowed = allowed

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        if self.allowed <= 0:
            raise sqlite3.OperationalError("database or disk is full")
        self.allowed -= 1
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_disk_full_ends_the_session_with_a_clear_error_and_resume_continues(
    tmp_path: Path,
) -> None:
    ref = Session(
        SpecPlan(SPEC), OPTIONS, log_path=tmp_path / "ref.jsonl", journal_path=tmp_path / "ref.db"
    ).run()
    session = Session(
        SpecPlan(SPEC), OPTIONS, log_path=tmp_path / "s.jsonl", journal_path=tmp_path / "s.db"
    )
    journal = session.journal
    assert isinstance(journal, SqliteJournal)
    journal._conn = _FullDisk(journal._conn, allowed=5)  # type: ignore[assignment]
    with pytest.raises(JournalError, match="no space left on the device") as info:
        session.run()
    assert "resumed" in str(info.value)
    stored = read_events(tmp_path / "s.db")
    assert 0 < len(stored) < len(read_events(tmp_path / "ref.db"))
    resumed = Session(
        None, None, log_path=tmp_path / "s.jsonl", journal_path=tmp_path / "s.db", resume=True
    ).run()
    for key in ("positions", "balances", "summary"):
        assert resumed[key] == ref[key]


def test_disk_full_from_the_command_line_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = SqliteJournal.flush

    def full(self: SqliteJournal) -> None:
        if self.last_batch >= 1:
            self._conn = _FullDisk(self._conn, 0)  # type: ignore[assignment]
        real(self)

    monkeypatch.setattr(SqliteJournal, "flush", full)
    line = one_line_error(paper(tmp_path, "full"))
    assert "no space left" in line and "full.db" in line


# -- PostgreSQL journals from the command line -----------------------------------------------------
def _drop_pg_session(name: str) -> None:
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        for table in ("events", "batches", "snapshots"):
            conn.execute(text(f"DELETE FROM {table} WHERE session = :s"), {"s": name})
    engine.dispose()


@pytest.fixture
def pg_session() -> Iterator[str]:
    """A session name nobody else uses; its rows (and its config run's) are deleted after."""
    name = f"t-safety-{uuid.uuid4().hex[:12]}"
    yield name
    _drop_pg_session(name)
    _drop_pg_session(f"{name}-c-backtest")


def test_backtest_into_postgresql_writes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_session: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("backtest", *SHORT, "--journal", PG_URL, "--session", pg_session)
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []  # no ./postgresql+psycopg:/... file
    events = read_events(PG_URL, pg_session)
    assert len(events) > 10
    line = one_line_error(cli("backtest", *SHORT, "--journal", PG_URL, "--session", pg_session))
    assert "already holds events" in line
    assert len(read_events(PG_URL, pg_session)) == len(events)


def test_paper_resume_and_run_config_take_the_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_session: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRADEPILOT_JOURNAL_URL", PG_URL)
    args = ["--speed", "1e12", "--duration", "3h", "--quiet"]
    assert cli("paper", "--session", pg_session, *args).exit_code == 0
    n = len(read_events(PG_URL, pg_session))
    assert n >= 2 and not (tmp_path / "runs" / f"{pg_session}.db").exists()
    result = cli("paper", "--session", pg_session, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert "in use" in one_line_error(_with_pg_owner(pg_session, "paper", "--session", pg_session))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.read_text().replace("name: crypto-momentum", f"name: {pg_session}-c"))
    result = cli("run-config", str(cfg), "--end", "2021-05-14T06:00", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(read_events(PG_URL, f"{pg_session}-c-backtest")) > 10
    assert not (tmp_path / "runs" / f"{pg_session}-c-backtest.db").exists()


def _with_pg_owner(session: str, *args: str) -> Result:
    """Run a command while another connection owns ``session``."""
    from tradepilot.persistence.postgres import PostgresJournal

    with PostgresJournal(PG_URL, session, exclusive=True):
        return cli(*args, "--resume", "--quiet")
