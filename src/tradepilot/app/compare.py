"""Run one parent order through several execution algorithms on a real L2 session.

Each algorithm gets a fresh :class:`~tradepilot.engine.kernel.Engine` fed with the same
``book/binance_*`` session (snapshot, depth updates, trades and best bid/offer, replayed
by :func:`~tradepilot.data.book_loader.iter_book_session_events`), the same parent order
submitted at the same moment through an
:class:`~tradepilot.execution.algo_engine.AlgoEngine`, and its own journal. The results
are computed afterwards from each journal with :mod:`tradepilot.analytics.execution`,
against the session's mids and trades - never from the engines' memory.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradepilot.analytics.execution import ExecutionReport, ParentExecution, analyze_journal
from tradepilot.analytics.market import MarketSeries, market_from_book
from tradepilot.model import fixed
from tradepilot.model.data import BookDeltas, BookSnapshot, MarketData
from tradepilot.model.enums import AccountType, OrderSide
from tradepilot.model.instrument import Instrument
from tradepilot.strategy.base import Strategy
from tradepilot.venues.sim.filters import BINANCE_SPOT_MIN_NOTIONAL, ExchangeFilters

if TYPE_CHECKING:
    from tradepilot.data.book_loader import BookSession
    from tradepilot.engine.kernel import Engine
    from tradepilot.execution.algo_engine import AlgoEngine
    from tradepilot.persistence.journal import Journal, SqliteJournal

__all__ = [
    "COMPARE_DEFAULTS",
    "DEFAULT_SESSION",
    "NOT_COMPARED",
    "CompareResult",
    "CompareSpec",
    "algorithm_names",
    "algorithm_params",
    "compare_engine",
    "default_session_dir",
    "historical_volume_profile",
    "resolve_session",
    "run_compare",
    "session_instrument",
]

DEFAULT_SESSION = "binance_spot_btcusdt_20240808"
NS_PER_SECOND = 1_000_000_000
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
# Fee rates in bps (maker, taker) by market when none is given.
_DEFAULT_FEES = {"spot": ("10", "10"), "usdm": ("2", "5")}
# Binance's exchange filters by market: minimum order value (NOTIONAL / MIN_NOTIONAL) and
# the venue-wide limits (order rate, open orders, percent-price band; spot values).
_MIN_NOTIONAL = {"spot": BINANCE_SPOT_MIN_NOTIONAL, "usdm": "100"}
_SESSION_FILTERS = {"spot": ExchangeFilters.binance_spot()}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def default_session_dir() -> Path:
    """``<repo>/../shared/data/book/binance_spot_btcusdt_20240808``."""
    return _repo_root().parent / "shared" / "data" / "book" / DEFAULT_SESSION


def resolve_session(path_or_name: str | Path | None) -> Path:
    """A session folder from a path, a folder name under ``shared/data/book``, or None."""
    if path_or_name is None:
        return default_session_dir()
    path = Path(path_or_name)
    if path.is_dir():
        return path
    candidate = default_session_dir().parent / str(path_or_name)
    if candidate.is_dir():
        return candidate
    raise ValueError(f"no L2 session folder at {path} (nor {candidate})")


# ----------------------------------------------------------------------------- the setup


def _gcd(values: Iterator[int]) -> int:
    return functools.reduce(math.gcd, values, 0)


def session_instrument(
    session: BookSession, symbol: str, venue: str = "BINANCE", fee_bps: str | None = None
) -> Instrument:
    """The instrument of a session: tick and lot are the GCD of the prices and sizes seen.

    ``symbol`` such as ``BTCUSDT``; the quote is the known currency it ends with. Fees
    default to 10/10 bps (spot) or 2/5 bps maker/taker (USD-M).
    """
    snap = session.snapshot
    levels = (*snap.bids, *snap.asks)
    tick = _gcd(
        x for x in (*(lv.price for lv in levels), *(t.price for t in session.trades)) if x > 0
    )
    lot = _gcd(x for x in (*(lv.size for lv in levels), *(t.size for t in session.trades)) if x > 0)
    if tick <= 0 or lot <= 0:
        raise ValueError("the session has no prices or sizes to infer tick and lot sizes from")
    quote = next((q for q in _QUOTES if symbol.endswith(q) and len(symbol) > len(q)), "USDT")
    base = symbol[: -len(quote)] if symbol.endswith(quote) else symbol
    maker, taker = _DEFAULT_FEES.get(session.market, ("10", "10"))
    min_notional = _MIN_NOTIONAL.get(session.market, "0")
    if fee_bps is not None:
        maker = taker = fee_bps
    return Instrument(
        symbol=symbol,
        venue=venue,
        base=base,
        quote=quote,
        tick_size=tick,
        lot_size=lot,
        min_qty=lot,
        min_notional=fixed.to_raw(min_notional),
        maker_fee_bps=fixed.to_raw(maker),
        taker_fee_bps=fixed.to_raw(taker),
    )


def _symbol_of(folder: Path) -> tuple[str, str]:
    """``(market, SYMBOL)`` from a ``binance_<market>_<symbol>_<date>`` folder name."""
    parts = folder.name.split("_")
    if len(parts) >= 4 and parts[0] == "binance":
        return parts[1], parts[2].upper()
    return "spot", "BTCUSDT"


# Exit tools rather than ways to work an order: left out of "all".
NOT_COMPARED = frozenset({"bracket", "oco"})


def algorithm_names(include_all: bool = False) -> list[str]:
    """The registered execution algorithms that can work a plain parent order, sorted.

    ``include_all`` also lists the exit tools (``bracket``, ``oco``), which need prices
    given with ``--param``.
    """
    from tradepilot.execution.algos import ALGORITHMS

    return sorted(n for n in ALGORITHMS if include_all or n not in NOT_COMPARED)


# Parameters set from the comparison's duration when the algorithm has them.
_DURATION_FIELDS = ("duration", "horizon", "max_duration", "timeout")
#: Defaults for parameters an algorithm requires and the comparison cannot derive.
COMPARE_DEFAULTS: Mapping[str, Mapping[str, object]] = {
    "pov": {"participation": 0.1},
    "iceberg": {"visible_pct": 10.0},
}


@functools.cache
def historical_volume_profile() -> Any:
    """Intraday volume profile (1-minute buckets, UTC) of the bundled BTC/USDT candles."""
    from tradepilot.data.catalog import bundled
    from tradepilot.execution.algos.vwap import volume_profile

    ds = bundled()[0]
    return volume_profile(ds.load_bars(f"{ds.symbol}.{ds.venue}"))


def algorithm_params(
    algorithm: str, duration_ns: int, overrides: Mapping[str, object] | None = None
) -> dict[str, object]:
    """Parameters that make ``algorithm`` work the parent over ``duration_ns``.

    Every duration-like field the algorithm has (``duration``, ``horizon``,
    ``max_duration``, ``timeout``) gets ``duration_ns``; with a ``timeout``, a
    ``fallback_to_market`` field is switched on so the order completes. ``vwap`` gets the
    intraday volume profile of the bundled candles (:func:`historical_volume_profile`),
    ``pov`` a participation of 10 %, ``iceberg`` a visible 10 % (``COMPARE_DEFAULTS``).
    ``overrides`` (mapping form, e.g. ``{"slices": 10}``) are applied last.
    """
    from tradepilot.execution.algos import ALGORITHMS

    cls = ALGORITHMS.get(algorithm)
    if cls is None:
        known = ", ".join(algorithm_names(include_all=True))
        raise ValueError(f"unknown algorithm {algorithm!r} (known: {known})")
    fields = {f.name for f in dataclasses.fields(cls.params_type)}
    params: dict[str, object] = {}
    for name in _DURATION_FIELDS:
        if name in fields:
            params[name] = duration_ns
    if "timeout" in params and "fallback_to_market" in fields:
        params["fallback_to_market"] = True
    if "profile" in fields and "profile" not in (overrides or {}):
        params["profile"] = historical_volume_profile()
    params.update(COMPARE_DEFAULTS.get(algorithm, {}))
    params.update(overrides or {})
    return params


def _describe_params(params: Mapping[str, object]) -> dict[str, object]:
    """Parameters for the run's config record (a volume profile is named, not listed)."""
    return {
        k: ("historical profile of the bundled candles" if k == "profile" else v)
        for k, v in params.items()
    }


@dataclass(frozen=True)
class CompareSpec:
    """What to compare: one parent order, the algorithms, the session, the costs."""

    session: Path = field(default_factory=default_session_dir)
    side: int = 1
    quantity: str = "20"
    duration_ns: int = 5 * 60 * NS_PER_SECOND
    algorithms: tuple[str, ...] = ()  # empty: all registered
    start_offset_ns: int = 5 * NS_PER_SECOND  # after the session's first book snapshot
    out_dir: Path = Path("runs/compare")
    fee_bps: str | None = None
    latency_ms: float = 0.0
    seed: int = 0
    params: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    def config_json(self, algorithm: str, instrument: Instrument, capital: str) -> str:
        return json.dumps(
            {
                "command": "compare",
                "session": str(self.session),
                "instrument_id": instrument.id,
                "algorithm": algorithm,
                "side": "buy" if self.side > 0 else "sell",
                "quantity": self.quantity,
                "duration_ns": self.duration_ns,
                "start_offset_ns": self.start_offset_ns,
                "fee_bps": self.fee_bps,
                "latency_ms": self.latency_ms,
                "seed": self.seed,
                "capital": capital,
                "params": algorithm_params(algorithm, self.duration_ns, self.params.get(algorithm)),
            },
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )


@dataclass(frozen=True)
class CompareResult:
    """One algorithm's run: its journal, the analysis of that journal, any error."""

    algorithm: str
    journal: Path
    report: ExecutionReport | None
    error: str = ""

    @property
    def parent(self) -> ParentExecution | None:
        if self.report is None or not self.report.parents:
            return None
        for p in self.report.parents:
            if p.algorithm == self.algorithm:
                return p
        return self.report.parents[0]


class _Driver(Strategy):
    """Submits the parent at the first book update at or after ``start_ts``; stops the
    engine once the parent has finished."""

    strategy_id = "compare"

    def __init__(
        self,
        algos: AlgoEngine,
        instrument_id: str,
        side: int,
        quantity: str,
        algorithm: str,
        params: Mapping[str, object],
        start_ts: int,
    ) -> None:
        super().__init__()
        self.algos = algos
        self.instrument_id = instrument_id
        self.side = side
        self.quantity = quantity
        self.algorithm = algorithm
        self.params = dict(params)
        self.start_ts = start_ts
        self.parent_id: str | None = None
        self.error = ""

    def on_book(self, update: BookSnapshot | BookDeltas) -> None:
        if self.parent_id is None:
            if self.now() < self.start_ts or self.error:
                return
            try:
                self.parent_id = self.execute(
                    self.instrument_id,
                    OrderSide(self.side),
                    self.quantity,
                    self.algorithm,
                    self.params,
                )
            except ValueError as exc:
                self.error = str(exc)
                self.engine.stop(f"parent refused: {exc}")
            return
        if self.algos is not None and self.algos.parent(self.parent_id).status.is_final:
            self.engine.stop("parent finished")


def _capital(spec: CompareSpec, instrument: Instrument, session: BookSession) -> int:
    """Quote cash: twice the parent's notional at the snapshot's best ask (at least 1M)."""
    ask = session.snapshot.asks[0].price if session.snapshot.asks else 0
    notional = fixed.mul(ask, fixed.to_raw(spec.quantity))
    return max(2 * notional, fixed.to_raw("1000000"))


def compare_engine(
    spec: CompareSpec,
    algorithm: str,
    instrument: Instrument,
    session: BookSession,
    journal: Journal | None = None,
) -> tuple[Engine, str]:
    """A fresh engine that will work ``spec``'s parent with ``algorithm`` when run on the
    session's events; returns it with the ``config_json`` to pass to ``Engine.run``."""
    from tradepilot.engine.kernel import Engine, EngineConfig
    from tradepilot.execution.algo_engine import AlgoEngine

    capital = _capital(spec, instrument, session)
    balances = {instrument.quote: fixed.to_str(capital)}
    if session.market == "spot":
        account = AccountType.CASH
        if spec.side < 0:
            balances[instrument.base] = spec.quantity  # a spot sale needs the asset
    else:
        account = AccountType.MARGIN
    config = EngineConfig(
        starting_balances=balances,
        base_currency=instrument.quote,
        account_type=account,
        venue=instrument.venue,
        latency_ns=int(spec.latency_ms * 1_000_000),
        seed=spec.seed,
        mode="compare",
        exchange_filters=_SESSION_FILTERS.get(session.market, ExchangeFilters()),
    )
    params = algorithm_params(algorithm, spec.duration_ns, spec.params.get(algorithm))
    algos = AlgoEngine()
    start_ts = session.snapshot.ts + spec.start_offset_ns
    driver = _Driver(algos, instrument.id, spec.side, spec.quantity, algorithm, params, start_ts)
    engine = Engine.simulated([instrument], [algos, driver], config, journal=journal)
    return engine, spec.config_json(algorithm, instrument, fixed.to_str(capital))


def _fresh_journal(path: Path) -> SqliteJournal:
    """A new SQLite journal at ``path``; an earlier run's file there is replaced."""
    from tradepilot.persistence.journal import SqliteJournal

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return SqliteJournal(path)


def _run_one(
    spec: CompareSpec,
    algorithm: str,
    instrument: Instrument,
    session: BookSession,
    data: Sequence[MarketData],
    market: MarketSeries,
) -> CompareResult:
    path = spec.out_dir / f"{algorithm}.db"
    journal = _fresh_journal(path)
    engine, config_json = compare_engine(spec, algorithm, instrument, session, journal)
    try:
        engine.run(data, config_json=config_json)
    finally:
        journal.close()
    driver = engine.strategies[1]
    error = driver.error if isinstance(driver, _Driver) else ""
    report = analyze_journal(path, market.prices, market.trades)
    return CompareResult(algorithm, path, report, error)


def run_compare(
    spec: CompareSpec, on_done: Callable[[CompareResult], None] | None = None
) -> list[CompareResult]:
    """Run the parent through every algorithm of ``spec`` (all registered when empty).

    Raises ``ValueError`` for a bad session, side, quantity or algorithm name before
    anything runs.
    """
    from tradepilot.data.book_loader import iter_book_session_events, load_book_session

    if spec.side not in (1, -1):
        raise ValueError(f"side must be buy or sell, got {spec.side!r}")
    if fixed.to_raw(spec.quantity) <= 0:
        raise ValueError(f"quantity must be positive, got {spec.quantity}")
    if spec.duration_ns <= 0:
        raise ValueError("duration must be positive")
    known = algorithm_names(include_all=True)
    names = list(spec.algorithms) or algorithm_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {', '.join(unknown)} (known: {', '.join(known)})")
    for name in names:  # parameter errors before any run
        _check_params(name, algorithm_params(name, spec.duration_ns, spec.params.get(name)))
    folder = resolve_session(spec.session)
    _, symbol = _symbol_of(folder)
    inst_probe = f"{symbol}.BINANCE"
    session = load_book_session(folder, inst_probe)
    instrument = session_instrument(session, symbol, "BINANCE", spec.fee_bps)
    qty = fixed.to_raw(spec.quantity)
    if qty % instrument.lot_size:
        raise ValueError(
            f"quantity {spec.quantity} is not a multiple of the lot size "
            f"{fixed.to_str(instrument.lot_size)}"
        )
    data: list[MarketData] = list(iter_book_session_events(session))
    market = market_from_book(session.bbo, session.trades, str(folder))
    spec = dataclasses.replace(spec, session=folder)
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        result = _run_one(spec, name, instrument, session, data, market)
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


def _check_params(algorithm: str, params: Mapping[str, Any]) -> None:
    from tradepilot.execution.algos import ALGORITHMS
    from tradepilot.execution.algos.base import coerce_params

    coerce_params(ALGORITHMS[algorithm].params_type, dict(params), algorithm)
