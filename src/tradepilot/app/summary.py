"""The end-of-run summary: counts, money, and performance, from a run's portfolio and orders."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from tradepilot.analytics.equity import equity_curve, run_performance
from tradepilot.analytics.market import MarketSeries, PriceInput
from tradepilot.analytics.performance import ClosedTrade
from tradepilot.execution.order_manager import OrderManager
from tradepilot.model import fixed
from tradepilot.model.enums import AssetClass, OrderStatus
from tradepilot.model.events import Event, OrderFilled
from tradepilot.portfolio.portfolio import Portfolio


class RunParts(Protocol):
    """What a summary reads of a run (an ``Engine`` has them)."""

    @property
    def portfolio(self) -> Portfolio: ...

    @property
    def orders(self) -> OrderManager: ...

    @property
    def events_processed(self) -> int: ...


@dataclass(frozen=True)
class RunSummary:
    start: int
    end: int
    events: int
    orders: int
    filled_orders: int
    canceled_orders: int
    denied_orders: int
    rejected_orders: int
    fills: int
    fees: str
    traded_notional: str
    start_equity: str
    end_equity: str
    return_pct: float
    max_drawdown_pct: float
    sharpe: float
    sortino: float
    round_trips: int
    win_rate_pct: float
    profit_factor: float
    denials: dict[str, int]
    equity_sampling: str = ""
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_safe(v) for k, v in asdict(self).items()}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def closed_trades(portfolio: Portfolio) -> list[ClosedTrade]:
    s = fixed.SCALE
    return [
        ClosedTrade(
            rt.instrument_id,
            rt.side,
            rt.entry_ts,
            rt.exit_ts,
            rt.max_qty / s,
            rt.entry_px / s,
            rt.exit_px / s,
            rt.pnl / s,
            rt.fees / s,
            rt.mae / s,
            rt.mfe / s,
        )
        for rt in portfolio.round_trips
    ]


def summarize(
    run: RunParts, prices: PriceInput | MarketSeries = None, warnings: tuple[str, ...] = ()
) -> RunSummary:
    """The summary of a run; drawdown and ratios on the run's one equity series.

    The series is :func:`~tradepilot.analytics.equity.equity_curve` of the run's fills,
    marked at ``prices`` (of the data the run replayed) - the same series, and so the
    same numbers, as the HTML report of the run's journal.
    """
    pf = run.portfolio
    orders = list(run.orders.orders.values())
    counts = {status: 0 for status in OrderStatus}
    denials: dict[str, int] = {}
    fills: list[Event] = []
    for order in orders:
        counts[order.status] += 1
        if order.status is OrderStatus.DENIED:
            code = getattr(order.events[-1], "code", "?")
            denials[code] = denials.get(code, 0) + 1
        fills.extend(e for e in order.events if isinstance(e, OrderFilled))
    fills.sort(key=lambda e: e.ts)
    # the portfolio samples its equity at the start and at the end of the run
    start_ts = pf.equity_ts[0] if pf.equity_ts else 0
    end_ts = max(pf.equity_ts[-1] if pf.equity_ts else 0, start_ts)
    start_eq = pf.equity_values[0] if pf.equity_values else pf.equity()
    end_eq = pf.equity()
    curve = equity_curve(
        fills,
        prices.prices if isinstance(prices, MarketSeries) else prices,
        start_cash=fixed.to_float(start_eq),
        bounds=(start_ts, end_ts),
        instruments=pf.instruments,
    )
    instruments = pf.instruments.values()
    equities = bool(instruments) and all(i.asset_class is AssetClass.EQUITY for i in instruments)
    report, sampling = run_performance(curve, closed_trades(pf), *((252, 6.5) if equities else ()))
    trades = report.trades
    return RunSummary(
        start=start_ts,
        end=end_ts,
        events=run.events_processed,
        orders=len(orders),
        filled_orders=counts[OrderStatus.FILLED],
        canceled_orders=counts[OrderStatus.CANCELED] + counts[OrderStatus.EXPIRED],
        denied_orders=counts[OrderStatus.DENIED],
        rejected_orders=counts[OrderStatus.REJECTED],
        fills=pf.fill_count,
        fees=fixed.to_str(pf.total_fees),
        traded_notional=fixed.to_str(pf.traded_notional),
        start_equity=fixed.to_str(start_eq),
        end_equity=fixed.to_str(end_eq),
        return_pct=(end_eq / start_eq - 1.0) * 100.0 if start_eq else 0.0,
        max_drawdown_pct=report.max_drawdown * 100.0,
        sharpe=report.sharpe_ratio,
        sortino=report.sortino_ratio,
        round_trips=trades.n_trades,
        win_rate_pct=trades.win_rate * 100.0 if trades.n_trades else float("nan"),
        profit_factor=trades.profit_factor,
        denials=denials,
        equity_sampling=sampling.describe(),
        warnings=warnings,
    )
