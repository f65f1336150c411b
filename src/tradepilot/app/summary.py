"""The end-of-run summary: counts, money, and performance, from a run's portfolio and orders."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from tradepilot.analytics.performance import ClosedTrade, performance_report, periods_per_year_for
from tradepilot.execution.order_manager import OrderManager
from tradepilot.model import fixed
from tradepilot.model.enums import OrderStatus
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


def summarize(run: RunParts) -> RunSummary:
    pf = run.portfolio
    orders = list(run.orders.orders.values())
    counts = {status: 0 for status in OrderStatus}
    denials: dict[str, int] = {}
    for order in orders:
        counts[order.status] += 1
        if order.status is OrderStatus.DENIED:
            code = getattr(order.events[-1], "code", "?")
            denials[code] = denials.get(code, 0) + 1
    ts = np.asarray(pf.equity_ts, dtype=np.int64)
    equity = np.asarray(pf.equity_values, dtype=np.float64) / fixed.SCALE
    start_eq = pf.equity_values[0] if pf.equity_values else pf.equity()
    end_eq = pf.equity()
    trades = closed_trades(pf)
    report = (
        performance_report(ts, equity, trades, periods_per_year_for(pf.sample_interval_ns))
        if len(ts)
        else None
    )
    return RunSummary(
        start=int(ts[0]) if len(ts) else 0,
        end=int(ts[-1]) if len(ts) else 0,
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
        max_drawdown_pct=report.max_drawdown * 100.0 if report else 0.0,
        sharpe=report.sharpe_ratio if report else float("nan"),
        sortino=report.sortino_ratio if report else float("nan"),
        round_trips=len(trades),
        win_rate_pct=report.trades.win_rate * 100.0 if report and trades else float("nan"),
        profit_factor=report.trades.profit_factor if report else float("nan"),
        denials=denials,
    )
