"""What the service reads: one journal session (running or finished) and what follows from it.

:class:`SessionView` answers every read endpoint from the journal alone, so the service
works the same beside a running engine, in another process, or on a finished run.
Portfolio state comes from :class:`~tradepilot.persistence.queries.JournalQueries`
(a projection folded incrementally); the equity curve, performance and execution
quality are recomputed from the journal's events when new events have arrived since
the last request, and marked with the run's own market data when it can be found.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from tradepilot.analytics.execution import ExecutionSummary, analyze_execution, session_config
from tradepilot.analytics.market import MarketSeries, market_from_run_config
from tradepilot.analytics.performance import performance_report, periods_per_year_for
from tradepilot.analytics.report import EquityCurve, equity_curve
from tradepilot.core.time import NS_PER_HOUR
from tradepilot.model.events import AnyEvent, Event
from tradepilot.persistence.queries import JournalQueries

_decoder = msgspec.json.Decoder(AnyEvent)

#: Event kinds counted as a denial by the risk engine.
DENIAL_KINDS = ("OrderDenied", "OrderModifyDenied")


def finite(value: float) -> float | None:
    """A float for JSON: ``None`` for NaN and infinities."""
    return value if math.isfinite(value) else None


class SessionView:
    """Read access to one journal session for the service (thread-safe)."""

    def __init__(self, queries: JournalQueries, source: str) -> None:
        self.queries = queries
        self.source = source
        self._lock = threading.RLock()
        self._events: list[Event] = []
        self._events_seq = 0
        self._market: MarketSeries | None = None
        self._market_loaded = False
        self._curve: tuple[int, EquityCurve] | None = None

    @classmethod
    def open(cls, journal: str | Path, session: str | None = None) -> SessionView:
        return cls(JournalQueries.open(journal, session), str(journal))

    def close(self) -> None:
        self.queries.close()

    @property
    def journal(self) -> Any:
        return self.queries.journal

    # -- events ----------------------------------------------------------------------------
    def events(self) -> list[Event]:
        """Every event of the session so far (read incrementally)."""
        with self._lock:
            for seq, _ts, _kind, payload in self.journal.rows(after_seq=self._events_seq):
                # an event kind this version does not know is skipped, as the projection does
                with contextlib.suppress(msgspec.MsgspecError):
                    self._events.append(_decoder.decode(payload))
                self._events_seq = seq
            return self._events

    def last_seq(self) -> int:
        with self._lock:
            self.queries.refresh()
            return self.queries.projection.last_seq

    def rows_after(
        self, after_seq: int, kinds: Collection[str] | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        return self.queries.events(kinds=kinds, since_seq=after_seq, limit=limit, human=True)

    # -- market data and derived series ----------------------------------------------------
    def market(self) -> MarketSeries | None:
        """The run's market data, when the journaled configuration names data found here."""
        with self._lock:
            if not self._market_loaded:
                self._market_loaded = True
                found = session_config(self.events())
                if found is not None:
                    try:
                        self._market = market_from_run_config(*found)
                    except (ValueError, OSError):
                        self._market = None
            return self._market

    def equity(self) -> EquityCurve:
        with self._lock:
            events = self.events()
            if self._curve is None or self._curve[0] != self._events_seq:
                market = self.market()
                prices = market.prices if market is not None else None
                self._curve = (self._events_seq, equity_curve(events, prices))
            return self._curve[1]

    def performance(self, sampling_ns: int = NS_PER_HOUR) -> dict[str, Any]:
        """Performance statistics of the equity curve sampled every ``sampling_ns``."""
        curve = self.equity()
        if curve.ts.size == 0:
            return {"sampling_ns": sampling_ns, "available": False}
        grid = np.arange(int(curve.ts[0]), int(curve.ts[-1]) + 1, sampling_ns, dtype=np.int64)
        if grid.size == 0 or grid[-1] != curve.ts[-1]:
            grid = np.append(grid, curve.ts[-1])
        idx = np.searchsorted(curve.ts, grid, side="right") - 1
        sampled = curve.equity[np.clip(idx, 0, None)]
        ppy = periods_per_year_for(sampling_ns)
        report = performance_report(grid, sampled, [], ppy)
        return {
            "available": True,
            "sampling_ns": sampling_ns,
            "periods_per_year": ppy,
            "annualisation": f"sqrt({ppy:g}) periods of {sampling_ns // 1_000_000_000}s a year",
            "start_ts": report.start_ts_ns,
            "end_ts": report.end_ts_ns,
            "start_equity": report.start_equity,
            "end_equity": report.end_equity,
            "total_return": finite(report.total_return),
            "annualized_return": finite(report.annualized_return),
            "annualized_volatility": finite(report.annualized_volatility),
            "sharpe_ratio": finite(report.sharpe_ratio),
            "sortino_ratio": finite(report.sortino_ratio),
            "max_drawdown": finite(report.max_drawdown),
            "max_drawdown_duration_ns": report.max_drawdown_duration_ns,
            "calmar_ratio": finite(report.calmar_ratio),
        }

    def execution(self, group: str) -> list[dict[str, Any]]:
        market = self.market()
        report = analyze_execution(
            self.events(),
            market.prices if market is not None else None,
            market.trades if market is not None else None,
        )
        rows = report.by(group) if group != "all" else [report.total]  # type: ignore[arg-type]
        return [execution_to_dict(s) for s in rows]

    def denials(self, limit: int) -> list[dict[str, Any]]:
        rows = self.queries.events(kinds=DENIAL_KINDS, human=True)
        return rows[-limit:] if limit else []


def execution_to_dict(s: ExecutionSummary) -> dict[str, Any]:
    return {
        "group": s.group,
        "key": s.key,
        "parents": s.parents,
        "fills": s.fills,
        "quantity": finite(s.quantity),
        "filled": finite(s.filled),
        "fill_rate": finite(s.fill_rate),
        "avg_px": finite(s.avg_px),
        "filled_notional": finite(s.filled_notional),
        "fees": finite(s.fees),
        "slippage_bps": finite(s.slippage_bps),
        "slippage_vwap_bps": finite(s.slippage_vwap_bps),
        "shortfall_bps": finite(s.shortfall.total_bps),
        "participation": finite(s.participation),
        "price_improvement_bps": finite(s.price_improvement_bps),
        "markouts_bps": {str(m.horizon_ns): finite(m.bps) for m in s.markouts},
        "median_time_to_first_fill_ns": finite(s.median_time_to_first_fill_ns),
        "median_time_to_last_fill_ns": finite(s.median_time_to_last_fill_ns),
    }
