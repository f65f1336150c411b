"""``SessionStarted`` records the whole setup: every journal can be projected, snapshotted,
queried and reported, whichever command wrote it; old formats are read or refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from test_projection import assert_matches_engine
from tradepilot import __version__
from tradepilot.app.config import load_config
from tradepilot.app.session import Session
from tradepilot.cli.report import register
from tradepilot.model import fixed
from tradepilot.model.enums import AccountType
from tradepilot.model.events import JOURNAL_FORMAT_VERSION, SessionStarted
from tradepilot.persistence import JournalError, JournalQueries, StateProjection, restore
from tradepilot.persistence.journal import SqliteJournal, open_journal, read_events
from tradepilot.persistence.setup import setup_of

ROOT = Path(__file__).resolve().parents[1]
CRYPTO = ROOT / "examples" / "configs" / "crypto_momentum.yaml"


@pytest.fixture(scope="module")
def config_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Session, Path]:
    path = tmp_path_factory.mktemp("run") / "run.db"
    session = Session.from_config(
        load_config(CRYPTO), start="2021-05-19T00:00", end="2021-05-19T12:00", journal_path=path
    )
    session.run()
    assert session.engine.portfolio.fill_count >= 2
    return session, path


def test_a_run_config_journal_records_its_whole_setup(
    config_run: tuple[Session, Path],
) -> None:
    session, path = config_run
    first = read_events(str(path))[0]
    assert isinstance(first, SessionStarted) and first.mode == "backtest"
    assert first.format_version == JOURNAL_FORMAT_VERSION == 2
    (inst,) = session.engine.instruments.values()
    assert first.instruments == (inst.to_dict(),)  # every field, as decimal strings
    assert first.starting_balances == {"USDT": "100000"}
    assert (first.base_currency, first.account_type) == ("USDT", "CASH")
    assert first.package_version == __version__
    assert json.loads(first.config)["config"]["name"] == "crypto-momentum"
    setup = setup_of(first)
    assert setup.instruments == {inst.id: inst}
    assert setup.starting_balances == {"USDT": fixed.to_raw("100000")}
    assert setup.account_type is AccountType.CASH


def test_a_run_config_journal_is_projected_snapshotted_and_queried(
    config_run: tuple[Session, Path],
) -> None:
    session, path = config_run
    engine = session.engine
    with open_journal(path) as journal:
        full = StateProjection.from_journal(journal)
        assert_matches_engine(full, engine)
        half = StateProjection.for_journal(journal)
        half.fold_rows(journal.rows(limit=journal.last_seq // 2))
        journal.write_snapshot(half.last_seq, half.last_ts, half.to_snapshot())
        restored = restore(journal)
        assert_matches_engine(restored, engine)
        queries = JournalQueries(journal)
        assert len(queries.orders()) == len(engine.orders.orders)
        assert len(queries.fills()) == engine.portfolio.fill_count
        assert queries.balances()["USDT"]["total"] == fixed.to_str(
            engine.portfolio.account.total["USDT"]
        )
        queries.close()


def test_a_run_config_journal_is_reported(config_run: tuple[Session, Path], tmp_path: Path) -> None:
    _, path = config_run
    app = typer.Typer()
    register(app)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "market data: btcusdt-1m-sample" in result.output
    html = out.read_text()
    assert "crypto-momentum" in html and "100000" in html


def test_a_format_1_run_config_journal_is_refused_with_a_reason(tmp_path: Path) -> None:
    with SqliteJournal(tmp_path / "old.db") as journal:
        journal.append(SessionStarted(1, "backtest", '{"config":{"name":"x"},"run":{}}'))
        journal.flush()
        with pytest.raises(JournalError, match="before format 2 by run-config"):
            StateProjection.from_journal(journal)


def test_a_format_1_backtest_journal_is_still_read(tmp_path: Path) -> None:
    spec = '{"dataset":"btcusdt-1m-sample","strategy":"ema_cross","capital":"5000","fee_bps":"3"}'
    setup = setup_of(SessionStarted(1, "backtest", spec))
    (inst,) = setup.instruments.values()
    assert inst.id == "BTCUSDT.SIM" and inst.taker_fee_bps == fixed.to_raw("3")
    assert setup.starting_balances == {"USDT": fixed.to_raw("5000")}


def test_a_newer_journal_format_is_refused(tmp_path: Path) -> None:
    newer = SessionStarted(1, "backtest", "{}", format_version=JOURNAL_FORMAT_VERSION + 1)
    with pytest.raises(JournalError, match="newer than this tradepilot reads"):
        setup_of(newer)
