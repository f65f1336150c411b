"""Prometheus metrics of a session, computed from its journal at scrape time.

Counters are folded incrementally from the events since the last scrape; gauges
come from the projection and the equity curve. The registry belongs to one app, so
several services (or tests) in a process do not share series.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tradepilot.api.source import SessionView
from tradepilot.model import fixed
from tradepilot.model.events import (
    OrderAccepted,
    OrderDenied,
    OrderFilled,
    OrderModifyDenied,
    OrderRejected,
    OrderStatusUnknown,
    OrderSubmitted,
    ReconciliationCompleted,
    SignalAccepted,
    SignalReceived,
)

#: Bucket bounds of the order acknowledgement latency, seconds.
ACK_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
STATES = ("ACTIVE", "REDUCING", "HALTED")


class _Fold:
    """Running totals over the journal's events (advanced only by new events)."""

    def __init__(self) -> None:
        self.seen = 0
        self.denials: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.unknown = 0
        self.fills = 0
        self.notional = 0
        self.fees: Counter[str] = Counter()
        self.reconciliations = 0
        self.corrections = 0
        self.signals = 0
        self.signals_accepted = 0
        self.ack_buckets = [0] * len(ACK_BUCKETS)
        self.ack_count = 0
        self.ack_sum = 0.0
        self._submitted: dict[str, int] = {}
        self._signal_ts: dict[str, int] = {}
        self.decision_latency: list[float] = []

    def advance(self, view: SessionView) -> None:
        events = view.events()
        for ev in events[self.seen :]:
            kind = type(ev)
            if kind is OrderFilled:
                assert isinstance(ev, OrderFilled)
                self.fills += 1
                self.notional += fixed.mul(ev.last_px, ev.last_qty)
                self.fees[ev.fee_currency] += ev.fee
            elif kind is OrderDenied or kind is OrderModifyDenied:
                self.denials[getattr(ev, "code", "DENIED")] += 1
            elif kind is OrderRejected:
                assert isinstance(ev, OrderRejected)
                self.rejects[ev.reason.split(":")[0][:60]] += 1
            elif kind is OrderStatusUnknown:
                self.unknown += 1
            elif kind is OrderSubmitted:
                assert isinstance(ev, OrderSubmitted)
                self._submitted[ev.client_order_id] = ev.ts
            elif kind is OrderAccepted:
                assert isinstance(ev, OrderAccepted)
                sent = self._submitted.pop(ev.client_order_id, None)
                if sent is not None:
                    self._observe((ev.ts - sent) / 1e9)
            elif kind is ReconciliationCompleted:
                assert isinstance(ev, ReconciliationCompleted)
                self.reconciliations += 1
                self.corrections += ev.corrections
            elif kind is SignalReceived:
                self.signals += 1
            elif kind is SignalAccepted:
                self.signals_accepted += 1
        self.seen = len(events)

    def _observe(self, seconds: float) -> None:
        self.ack_count += 1
        self.ack_sum += seconds
        for i, bound in enumerate(ACK_BUCKETS):
            if seconds <= bound:
                self.ack_buckets[i] += 1


class SessionCollector(Collector):
    def __init__(self, view: SessionView) -> None:
        self.view = view
        self._fold = _Fold()
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            fold = self._fold
            fold.advance(self.view)
            summary = self.view.queries.summary()
            positions = self.view.queries.positions(include_flat=False)
            curve = self.view.equity()

        orders = GaugeMetricFamily("tradepilot_orders", "Orders by status.", labels=["status"])
        for status, n in sorted(summary["orders_by_status"].items()):
            orders.add_metric([status], n)
        yield orders
        denials = CounterMetricFamily(
            "tradepilot_order_denials",
            "Orders denied by the risk engine, by rule.",
            labels=["code"],
        )
        for code, n in sorted(fold.denials.items()):
            denials.add_metric([code], n)
        yield denials
        rejects = CounterMetricFamily(
            "tradepilot_order_rejects",
            "Orders rejected by the venue, by reason.",
            labels=["reason"],
        )
        for reason, n in sorted(fold.rejects.items()):
            rejects.add_metric([reason], n)
        yield rejects
        yield CounterMetricFamily(
            "tradepilot_venue_unknown_outcomes",
            "Requests whose outcome the venue left unknown (timeouts).",
            value=fold.unknown,
        )
        yield CounterMetricFamily("tradepilot_fills", "Fills.", value=fold.fills)
        yield CounterMetricFamily(
            "tradepilot_traded_notional",
            "Traded notional, quote currency.",
            value=fixed.to_float(fold.notional),
        )
        fees = CounterMetricFamily("tradepilot_fees", "Fees paid.", labels=["currency"])
        for ccy, amount in sorted(fold.fees.items()):
            fees.add_metric([ccy], fixed.to_float(amount))
        yield fees
        yield CounterMetricFamily("tradepilot_signals", "Signals received.", value=fold.signals)
        yield CounterMetricFamily(
            "tradepilot_signals_accepted",
            "Signals that became orders.",
            value=fold.signals_accepted,
        )
        yield CounterMetricFamily(
            "tradepilot_reconciliations", "Reconciliation passes.", value=fold.reconciliations
        )
        yield CounterMetricFamily(
            "tradepilot_reconciliation_corrections",
            "Corrections made by reconciliation.",
            value=fold.corrections,
        )
        hist = HistogramMetricFamily(
            "tradepilot_order_ack_latency_seconds",
            "Order sent to accepted by the venue, session time.",
        )
        cumulative = [
            (str(b), float(n)) for b, n in zip(ACK_BUCKETS, fold.ack_buckets, strict=True)
        ]
        cumulative.append(("+Inf", float(fold.ack_count)))
        hist.add_metric([], cumulative, sum_value=fold.ack_sum)
        yield hist
        if curve.equity.size:
            yield GaugeMetricFamily(
                "tradepilot_equity", "Equity, quote currency.", value=float(curve.equity[-1])
            )
            yield GaugeMetricFamily(
                "tradepilot_drawdown",
                "Drawdown from the running peak (fraction).",
                value=float(curve.drawdown[-1]),
            )
        yield GaugeMetricFamily(
            "tradepilot_realized_pnl",
            "Realised PnL, quote currency.",
            value=float(summary["realized_pnl"]),
        )
        exposure = GaugeMetricFamily(
            "tradepilot_exposure", "Position value at the last price.", labels=["instrument"]
        )
        for pos in positions:
            exposure.add_metric(
                [pos["instrument_id"]], float(pos["quantity"]) * float(pos["last_px"])
            )
        yield exposure
        trading = summary["trading_state"] or {}
        state = str(trading.get("state", "ACTIVE"))
        states = GaugeMetricFamily(
            "tradepilot_trading_state", "1 for the current trading state.", labels=["state"]
        )
        for name in STATES:
            states.add_metric([name], 1.0 if state == name else 0.0)
        yield states
        tripped = state == "HALTED" and "breaker" in str(trading.get("reason", "")).lower()
        yield GaugeMetricFamily(
            "tradepilot_circuit_breaker_tripped",
            "1 when the circuit breaker holds the session halted.",
            value=1.0 if tripped else 0.0,
        )
        yield GaugeMetricFamily(
            "tradepilot_journal_last_seq",
            "Sequence number of the last journaled event.",
            value=summary["last_seq"],
        )
        if summary["last_ts"] is not None:
            yield GaugeMetricFamily(
                "tradepilot_journal_last_event_timestamp_seconds",
                "Session time of the last journaled event.",
                value=summary["last_ts"] / 1e9,
            )


def registry_for(view: SessionView) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SessionCollector(view))
    return registry
