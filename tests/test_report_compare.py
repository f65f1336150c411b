"""``tradepilot compare``: every number it prints can be recomputed from the run's journal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tradepilot.app.compare import (
    CompareSpec,
    algorithm_names,
    compare_engine,
    default_session_dir,
    run_compare,
    session_instrument,
)
from tradepilot.cli.report import register
from tradepilot.data.book_loader import load_book_session
from tradepilot.model.events import OrderFilled, OrderInitialized, ParentOrderStarted
from tradepilot.persistence.journal import read_events

SESSION = default_session_dir()


def from_journal(path: Path) -> dict[str, float]:
    """Filled quantity, average price and slippage of the parent, straight from the events."""
    events = read_events(path)
    (started,) = [e for e in events if isinstance(e, ParentOrderStarted)]
    children = {
        e.client_order_id
        for e in events
        if isinstance(e, OrderInitialized) and e.parent_id == started.parent_id
    }
    fills = [e for e in events if isinstance(e, OrderFilled) and e.client_order_id in children]
    qty = sum(f.last_qty for f in fills)
    notional = sum(f.last_qty * f.last_px for f in fills)
    assert started.arrival_px is not None
    avg = notional / qty / 1e9 if qty else float("nan")
    arrival = started.arrival_px / 1e9
    return {
        "filled": qty / 1e9,
        "avg": avg,
        "slippage_bps": started.side * (avg - arrival) / arrival * 1e4,
        "fills": len(fills),
        "fees": sum(f.fee for f in fills) / 1e9,
        "quantity": started.quantity / 1e9,
    }


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("compare")
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app,
        ["compare", "--quantity", "2", "--duration", "1m", "--out-dir", str(out)],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    return result.output, out


def _cells(output: str, algorithm: str) -> list[str]:
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 2 and cells[1] == algorithm:
            return cells[1:-1]
    raise AssertionError(f"no row for {algorithm} in:\n{output}")


def _num(text: str) -> float:
    return float(re.sub(r"[,%()]", "", text.split()[0]))


def test_every_algorithm_ran_with_its_own_journal(cli_run: tuple[str, Path]) -> None:
    output, out = cli_run
    for name in algorithm_names():
        assert (out / f"{name}.db").is_file()
        _cells(output, name)


def test_printed_numbers_match_the_journal(cli_run: tuple[str, Path]) -> None:
    output, out = cli_run
    for name in algorithm_names():
        truth = from_journal(out / f"{name}.db")
        cells = _cells(output, name)
        # algorithm, status, filled, fill %, avg price, slip, vs VWAP, IS, fees, particip.,
        # fills, time
        assert _num(cells[2]) == pytest.approx(truth["filled"], rel=1e-5)
        if truth["filled"]:
            assert _num(cells[4]) == pytest.approx(truth["avg"], abs=0.006)
            assert _num(cells[5]) == pytest.approx(truth["slippage_bps"], abs=0.006)
        assert int(cells[10].replace(",", "")) == truth["fills"]


def test_results_match_the_journal_exactly(tmp_path: Path) -> None:
    names = tuple(algorithm_names()[:2])
    spec = CompareSpec(
        side=-1, quantity="1.5", duration_ns=30 * 10**9, algorithms=names, out_dir=tmp_path
    )
    results = run_compare(spec)
    assert [r.algorithm for r in results] == list(names)
    for r in results:
        p = r.parent
        assert p is not None and p.side == -1 and p.algorithm == r.algorithm
        truth = from_journal(r.journal)
        assert p.quantity == truth["quantity"] == 1.5
        assert p.filled == pytest.approx(truth["filled"], rel=1e-12)
        assert p.n_fills == truth["fills"]
        assert p.fees == pytest.approx(truth["fees"], rel=1e-9)
        if p.filled:
            assert p.avg_px == pytest.approx(truth["avg"], rel=1e-12)
            assert p.slippage_bps == pytest.approx(truth["slippage_bps"], abs=1e-6)
        sf = p.shortfall
        assert sf.delay + sf.trading + sf.opportunity + sf.fees == pytest.approx(sf.total)


def test_instrument_is_inferred_from_the_session() -> None:
    session = load_book_session(SESSION, "BTCUSDT.BINANCE")
    inst = session_instrument(session, "BTCUSDT")
    assert (inst.base, inst.quote, inst.id) == ("BTC", "USDT", "BTCUSDT.BINANCE")
    assert inst.tick_size == 10_000_000  # 0.01
    assert inst.lot_size == 10_000  # 0.00001


def test_bad_input_is_refused(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    for args in (
        ["--side", "hold"],
        ["--algorithms", "nope"],
        ["--quantity", "-1"],
        ["--session", str(tmp_path / "missing")],
    ):
        result = runner.invoke(app, ["compare", "--out-dir", str(tmp_path), *args])
        assert result.exit_code == 2, (args, result.output)


def test_engine_events_rebuild_the_parents() -> None:
    """An engine without a journal gives the same analysis as its journal would."""
    from tradepilot.analytics.execution import analyze_execution
    from tradepilot.cli.report import engine_events, execution_table
    from tradepilot.data.book_loader import iter_book_session_events
    from tradepilot.persistence.journal import MemoryJournal

    session = load_book_session(SESSION, "BTCUSDT.BINANCE")
    inst = session_instrument(session, "BTCUSDT")
    spec = CompareSpec(quantity="1", duration_ns=20 * 10**9)
    name = algorithm_names()[0]
    data = list(iter_book_session_events(session))
    journal = MemoryJournal()
    with_journal, config = compare_engine(spec, name, inst, session, journal)
    with_journal.run(data, config_json=config)
    without, config = compare_engine(spec, name, inst, session)
    without.run(data, config_json=config)
    a = analyze_execution(journal.events())
    b = analyze_execution(engine_events(without))
    assert len(a.parents) == len(b.parents) == 1
    pa, pb = a.parents[0], b.parents[0]
    assert (pa.algorithm, pa.arrival_px, pa.filled, pa.avg_px, pa.status) == (
        pb.algorithm,
        pb.arrival_px,
        pb.filled,
        pb.avg_px,
        pb.status,
    )
    assert pa.shortfall == pb.shortfall
    assert execution_table(without).row_count == 1
