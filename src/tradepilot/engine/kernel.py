"""The kernel: wires the components and runs the one event loop every mode uses.

Order of work for each market-data item at time ``t`` (deterministic):

1. scheduled work due at or before ``t`` - order arrivals at the venue after
   their latency, strategy timers - in (due time, scheduling order);
2. the venue matches its working orders against the item, and the events it
   produces are applied, journaled and published (portfolio first, then
   strategies);
3. the portfolio marks the price and the strategies see the item;
4. scheduled work due at ``t`` again (orders sent in step 3 with zero latency
   arrive now, so a bar-driven order is first matched against the next bar);
5. the equity curve is sampled when its interval has passed.

Backtest, paper and live differ only in the clock, the data iterator, an
optional pacer that waits for wall time, and the venue behind the order manager.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradepilot.core.bus import MessageBus
from tradepilot.core.clock import SimClock
from tradepilot.execution.context import Component, TimerOwner
from tradepilot.execution.order_manager import DEFAULT_IN_FLIGHT_NS, OrderManager
from tradepilot.execution.reconciliation import (
    ReconcilableVenue,
    ReconciliationReport,
    reconcile_with_venue,
)
from tradepilot.execution.report_handling import VenueLink
from tradepilot.model import fixed
from tradepilot.model.account import Account
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick
from tradepilot.model.enums import AccountType, OrderStatus
from tradepilot.model.events import (
    DataRejected,
    Event,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequestDenied,
    SessionStopped,
    TradingStateChanged,
    VenueRequestFailed,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.order_factory import closing_order
from tradepilot.persistence.journal import Journal, NullJournal
from tradepilot.persistence.projection import StateProjection
from tradepilot.persistence.setup import session_started
from tradepilot.portfolio.portfolio import Portfolio
from tradepilot.risk.circuit_breaker import CircuitBreaker
from tradepilot.risk.config import RiskConfig, build_rules
from tradepilot.risk.engine import RiskEngine, RiskRule, TradingState
from tradepilot.risk.view import EngineRiskView
from tradepilot.venues.base import Venue
from tradepilot.venues.errors import failure_outcome
from tradepilot.venues.sim.filters import ExchangeFilters
from tradepilot.venues.sim.models import FillModel, LatencyModel
from tradepilot.venues.sim.venue import SimulatedVenue

_ORDER_EVENT_FIELD = "client_order_id"
# an order in one of these states was waiting for the venue's answer when the process died
_AWAITING_ANSWER = (OrderStatus.SUBMITTED, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_UPDATE)
FLATTEN_STRATEGY_ID = "flatten"


@dataclass
class EngineConfig:
    """Everything that defines a run besides its data and strategies."""

    starting_balances: dict[str, str] = field(default_factory=lambda: {"USDT": "100000"})
    base_currency: str = "USDT"
    account_type: AccountType = AccountType.CASH
    venue: str = "SIM"
    fill_model: FillModel = field(default_factory=FillModel)
    exchange_filters: ExchangeFilters = field(default_factory=ExchangeFilters)
    latency_ns: int = 0
    latency_jitter_ns: int = 0
    seed: int = 0
    sample_interval_ns: int = 3_600_000_000_000
    mode: str = "backtest"
    risk: RiskConfig | None = None  # configured limits and circuit breaker; None = core only
    # how long a request may take to reach the venue; None: 10 s + twice the latency model's
    in_flight_ns: int | None = None
    reconcile_interval_ns: int | None = None  # periodic reconciliation; None = off

    def in_flight_window(self) -> int:
        if self.in_flight_ns is not None:
            return self.in_flight_ns
        return DEFAULT_IN_FLIGHT_NS + 2 * (self.latency_ns + self.latency_jitter_ns)


class Engine:
    """The kernel. It is given its venue and its clock; :meth:`simulated` builds both for a
    backtest or a paper session from an :class:`EngineConfig`."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        strategies: Sequence[Component],
        *,
        venue: Venue,
        clock: SimClock,
        config: EngineConfig | None = None,
        journal: Journal | None = None,
        risk_rules: Sequence[RiskRule] = (),
    ) -> None:
        self.config = cfg = config or EngineConfig()
        self.clock = clock
        self.bus = MessageBus()
        self.journal: Journal = journal or NullJournal()
        self.instruments = {i.id: i for i in instruments}
        balances = {ccy: fixed.to_raw(v) for ccy, v in cfg.starting_balances.items()}
        self._events: deque[Event] = deque()
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self._heap_seq = 0
        self.venue = venue
        venue.connect(self._events.append, self.schedule)
        for iid in self.instruments:
            venue.subscribe(iid)
        self.orders: OrderManager
        self.portfolio = Portfolio(
            Account(cfg.base_currency, dict(balances), cfg.account_type),
            instruments,
            open_orders=lambda: self.orders.all_open(),
            sample_interval_ns=cfg.sample_interval_ns,
        )
        rules = [*(build_rules(cfg.risk) if cfg.risk is not None else []), *risk_rules]
        self.risk = RiskEngine(
            EngineRiskView(
                self.portfolio, lambda: self.orders.all_open(), self.clock, self.instruments
            ),
            rules,
        )
        self.breaker: CircuitBreaker | None = None
        if cfg.risk is not None and cfg.risk.circuit_breaker is not None:
            self.breaker = CircuitBreaker.from_config(cfg.risk.circuit_breaker, self.risk)
        self.orders = OrderManager(
            self.clock,
            self.bus,
            self.risk,
            self.venue,
            self.journal.append,
            schedule=self.schedule,
            status_source=self.venue,
            in_flight_ns=cfg.in_flight_window(),
            capabilities=venue.capabilities,
            mark_price=self.portfolio.last_price,
        )
        self.strategies = list(strategies)
        self._timers: dict[tuple[str, str], int] = {}
        self._stop_reason: str | None = None
        self._flatten_on_stop = False
        self._flattening = False
        self._commands: deque[Callable[[], None]] = deque()
        self._state_source = "engine"
        self.risk.listeners.append(self._journal_trading_state)
        self.events_processed = 0
        self.data_rejected = 0
        self.bus.subscribe(OrderFilled, self.portfolio.on_fill)
        if self.breaker is not None:
            for kind in (OrderRejected, OrderAccepted, OrderFilled, VenueRequestFailed):
                self.bus.subscribe(kind, self.breaker.on_event)
        for strat in self.strategies:
            strat.attach(self)
            self.bus.subscribe(OrderFilled, self._fill_router(strat))
            self.bus.subscribe(Event, self._event_router(strat))

    @classmethod
    def simulated(
        cls,
        instruments: Sequence[Instrument],
        strategies: Sequence[Component],
        config: EngineConfig | None = None,
        journal: Journal | None = None,
        risk_rules: Sequence[RiskRule] = (),
        clock: SimClock | None = None,
    ) -> Engine:
        """An engine on a :class:`SimulatedVenue` (backtest, paper), set up from ``config``:
        the venue's name, fill model, latency and seed, exchange filters, and the account
        it starts with."""
        cfg = config or EngineConfig()
        clock = clock or SimClock()
        balances = {ccy: fixed.to_raw(v) for ccy, v in cfg.starting_balances.items()}
        venue = SimulatedVenue(
            cfg.venue,
            list(instruments),
            Account(cfg.base_currency, balances, cfg.account_type),
            clock,
            cfg.fill_model,
            LatencyModel(cfg.latency_ns, cfg.latency_jitter_ns, cfg.seed),
            cfg.exchange_filters,
        )
        return cls(
            instruments,
            strategies,
            venue=venue,
            clock=clock,
            config=cfg,
            journal=journal,
            risk_rules=risk_rules,
        )

    # -- scheduling ----------------------------------------------------------------------------
    def schedule(self, ts: int, fn: Callable[[], None]) -> None:
        self._heap_seq += 1
        heapq.heappush(self._heap, (ts, self._heap_seq, fn))

    # -- the trading context (what components are given) ----------------------------------
    @property
    def seed(self) -> int:
        return self.config.seed

    def trading_state(self) -> tuple[str, str]:
        risk = self.risk
        return str(risk.state), risk.state_reason

    def set_timer(
        self, strategy: TimerOwner, name: str, interval_ns: int, start_ns: int | None = None
    ) -> None:
        if interval_ns <= 0:
            raise ValueError("timer interval must be positive")
        key = (strategy.strategy_id, name)
        generation = self._timers.get(key, 0) + 1
        self._timers[key] = generation
        first = start_ns if start_ns is not None else self.clock.now() + interval_ns

        def fire(due: int) -> None:
            if self._timers.get(key) != generation:
                return
            strategy.on_timer(name, due)
            self.schedule(due + interval_ns, lambda: fire(due + interval_ns))

        self.schedule(first, lambda: fire(first))

    def cancel_timer(self, strategy: TimerOwner, name: str) -> None:
        key = (strategy.strategy_id, name)
        if key in self._timers:
            self._timers[key] += 1

    def every(self, interval_ns: int, fn: Callable[[int], None], start_ns: int) -> None:
        """Run ``fn(ts)`` every ``interval_ns`` of engine time (cycle logs, snapshots)."""

        def fire(due: int) -> None:
            fn(due)
            self.schedule(due + interval_ns, lambda: fire(due + interval_ns))

        self.schedule(start_ns, lambda: fire(start_ns))

    def stop(self, reason: str = "stopped", flatten: bool = False) -> None:
        """Ask the loop to stop after the current item (safe from a signal handler).

        With ``flatten`` the engine first cancels every open order and closes every
        position with reduce-only market orders - sent through the risk engine like
        any other order - and keeps consuming data until they are done.
        """
        self._stop_reason = reason
        self._flatten_on_stop = self._flatten_on_stop or flatten

    @property
    def venue_queries(self) -> ReconcilableVenue:
        """Where status queries and reconciliation ask (the venue, or a link in front of it)."""
        source = self.orders.reports.source
        return source if source is not None else self.venue

    def reconcile(self, quiet: bool = False) -> ReconciliationReport:
        """Reconcile orders, fills, balances and positions with the venue (journaled)."""
        return reconcile_with_venue(
            self.orders, self.venue_queries, self.portfolio, self.journal.append, quiet
        )

    def _reconcile_periodically(self, ts: int) -> None:
        try:
            self.reconcile(quiet=True)
        except Exception as exc:  # the venue did not answer: the next pass tries again
            self.orders.request_failed("", "reconcile", failure_outcome(exc), str(exc))

    def deliver(self, report: Event) -> None:
        """A venue report reaches the engine (applied at the next drain of the loop)."""
        self._events.append(report)

    def use_link(self, link: VenueLink) -> None:
        """Send requests and queries through ``link``; the venue's reports reach it first.

        The link (a fault injector, a recorder) forwards what it lets through to
        :meth:`deliver`.
        """
        self.orders.venue = link
        self.orders.reports.source = link
        self.venue.connect(link.on_report, self.schedule)

    # -- restart ------------------------------------------------------------------------------
    def restore_state(self, state: StateProjection) -> None:
        """Seed the engine with a projected state (latest snapshot + journal tail).

        This is the restart path for a venue that cannot be replayed (a live one):
        orders, positions, balances, id counters and the trading state come from the
        journal, open orders whose last request had no answer become UNKNOWN, and the
        caller then reconciles with the venue (:func:`tradepilot.app.reconcile`).
        """
        seed = state.clone()  # the engine must not share objects with a projection in use
        om = self.orders
        om.restore(seed.orders, seed.ids, (f.trade_id for f in seed.fills))
        self.portfolio.restore(
            seed.positions,
            seed.account.total,
            seed.fill_count,
            seed.total_fees,
            seed.traded_notional,
        )
        if seed.trading_state is not None:
            ts = seed.trading_state
            self.risk.resume_state(TradingState(ts.state), ts.reason, ts.until_ns)
        for order in list(om.all_open()):
            if order.status in _AWAITING_ANSWER:
                om.mark_unknown(order.client_order_id, "restart: no answer was journaled")

    # -- operator commands ------------------------------------------------------------------
    def command(self, fn: Callable[[], None]) -> None:
        """Queue an outside action (API, operator, signal handler) for the next item boundary.

        Safe to call from another thread. Running such actions only between data items
        gives them a well-defined place in the journal, where a resume re-applies them.
        """
        self._commands.append(fn)

    def set_trading_state(
        self, state: TradingState, reason: str, until_ns: int | None = None
    ) -> None:
        """Change the trading state by hand (journaled with source ``manual``)."""
        self._state_source = "manual"
        try:
            self.risk.set_state(state, reason, until_ns)
        finally:
            self._state_source = "engine"

    def _journal_trading_state(self, state: TradingState, reason: str) -> None:
        self.journal.append(
            TradingStateChanged(
                self.clock.now(), state.value, reason, self.risk.state_until, self._state_source
            )
        )

    def _run_commands(self) -> None:
        commands = self._commands
        while commands:
            commands.popleft()()
            if self._events:
                self._drain()

    def is_flat(self) -> bool:
        no_positions = all(p.qty == 0 for p in self.portfolio.positions.values())
        return no_positions and not self.orders.all_open()

    def flatten(self, reason: str = "flatten") -> None:
        """Cancel all open orders and close every position through the normal order path."""
        self._flattening = True
        for strat in self.strategies:
            strat.on_flatten(reason)
        self._drain()
        self.orders.cancel_all(reason=reason)
        now = self.clock.now()
        for iid, pos in sorted(self.portfolio.positions.items()):
            if pos.qty:
                cid = self.orders.next_id(FLATTEN_STRATEGY_ID)
                self.orders.submit(
                    closing_order(now, cid, iid, FLATTEN_STRATEGY_ID, pos.qty, reason)
                )
        self._drain()

    # -- the loop ----------------------------------------------------------------------------------
    def start(self, config_json: str = "") -> None:
        cfg = self.config
        self.journal.append(
            session_started(
                self.clock.now(),
                cfg.mode,
                config_json,
                self.instruments.values(),
                cfg.starting_balances,
                cfg.base_currency,
                cfg.account_type,
            )
        )
        for strat in self.strategies:
            strat.on_start()
        self._drain()

    def run(
        self,
        data: Iterable[Any],
        progress: Callable[[int], None] | None = None,
        pacer: Callable[[int], None] | None = None,
        flush_every_item: bool = False,
        config_json: str = "",
    ) -> None:
        """Process every item of ``data`` (in time order) and finish the session."""
        started = False
        heap = self._heap
        events = self._events
        clock = self.clock
        venue = self.venue
        portfolio = self.portfolio
        journal = self.journal
        bar_handlers = self._handlers("on_bar")
        trade_handlers = self._handlers("on_trade")
        quote_handlers = self._handlers("on_quote")
        book_handlers = self._handlers("on_book")
        last_ts = -1
        count = 0
        risk = self.risk
        feed_prices = risk.wants_prices
        watch_equity = risk.wants_equity or self.breaker is not None
        for item in data:
            ts = item.ts
            if not started:
                clock.ts = ts
                portfolio.next_sample_ts = ts
                self.start(config_json)
                started = True
                interval = self.config.reconcile_interval_ns
                if interval:
                    self.every(interval, self._reconcile_periodically, ts + interval)
            if ts < last_ts:
                self._reject_data(item, f"out-of-order timestamp {ts} < {last_ts}")
                continue
            last_ts = ts
            if pacer is not None:
                pacer(ts)
            if self._commands:
                self._run_commands()
            if heap and heap[0][0] <= ts:
                self._run_due(ts)
            clock.ts = ts
            kind = type(item)
            if kind is Bar:
                venue.on_bar(item)
                if events:
                    self._drain()
                portfolio.on_bar(item)
                for handler in bar_handlers:
                    handler(item)
            elif kind is TradeTick:
                venue.on_trade(item)
                if events:
                    self._drain()
                portfolio.mark(item.instrument_id, item.price)
                for handler in trade_handlers:
                    handler(item)
            elif kind is QuoteTick:
                venue.on_quote(item)
                portfolio.mark(item.instrument_id, (item.bid + item.ask) // 2)
                for handler in quote_handlers:
                    handler(item)
            elif kind is BookSnapshot or kind is BookDeltas:
                venue.on_book(item)
                if events:
                    self._drain()
                px = venue.reference_price(item.instrument_id)
                if px is not None:
                    portfolio.mark(item.instrument_id, px)
                for handler in book_handlers:
                    handler(item)
            else:
                self._reject_data(item, f"unsupported data type {kind.__name__}")
                continue
            if events:
                self._drain()
            if heap and heap[0][0] <= ts:
                self._run_due(ts)
            if feed_prices:
                iid = item.instrument_id
                px = portfolio.last_px.get(iid)
                if px is not None:
                    risk.on_price(iid, ts, px)
            if ts >= portfolio.next_sample_ts:
                portfolio.sample(ts)
                if watch_equity:
                    self._watch_equity(ts)
            count += 1
            if flush_every_item:
                journal.flush()
            if progress is not None and not count & 0x3FFF:
                progress(count)
            if self._stop_reason is not None:
                if not self._flatten_on_stop:
                    break
                if not self._flattening:
                    self.flatten(f"flatten on stop: {self._stop_reason}")
                    pacer = None  # close out as fast as the data allows
                elif self.is_flat():
                    break
        self.events_processed += count
        if progress is not None:
            progress(count)
        if not started:
            self.start(config_json)
        self.finish(self._stop_reason or "end of data")

    def finish(self, reason: str) -> None:
        for strat in self.strategies:
            strat.on_stop()
        self._drain()
        self.portfolio.sample(self.clock.now())
        self.journal.append(SessionStopped(self.clock.now(), reason))
        self.journal.flush()

    def _watch_equity(self, ts: int) -> None:
        equity = self.portfolio.equity_values[-1]
        self.risk.on_equity(ts, equity)
        if self.breaker is not None:
            self.breaker.on_equity(ts, equity)
            self.breaker.poll(ts)

    def _handlers(self, name: str) -> list[Callable[[Any], None]]:
        """Bound callbacks of the strategies that override ``name`` (skips no-op calls)."""
        base = getattr(Component, name)
        return [getattr(s, name) for s in self.strategies if getattr(type(s), name) is not base]

    def _run_due(self, ts: int) -> None:
        heap = self._heap
        clock = self.clock
        while heap and heap[0][0] <= ts:
            due, _, fn = heapq.heappop(heap)
            if due > clock.ts:
                clock.ts = due
            fn()
            if self._events:
                self._drain()

    def _drain(self) -> None:
        events = self._events
        on_event = self.orders.on_event
        while events:
            on_event(events.popleft())

    def _reject_data(self, item: Any, reason: str) -> None:
        self.data_rejected += 1
        self.journal.append(
            DataRejected(self.clock.now(), getattr(item, "instrument_id", "?"), reason)
        )

    # -- event routing to strategies ------------------------------------------------------------
    @staticmethod
    def _fill_router(strat: Component) -> Callable[[OrderFilled], None]:
        sid = strat.strategy_id

        def route(fill: OrderFilled) -> None:
            if fill.strategy_id == sid:
                strat.on_fill(fill)

        return route

    def _event_router(self, strat: Component) -> Callable[[Event], None]:
        orders = self.orders.orders
        sid = strat.strategy_id

        def route(event: Event) -> None:
            cid = getattr(event, _ORDER_EVENT_FIELD, None)
            if cid is None:
                return
            if type(event) is OrderRequestDenied:  # no order of its own: route by strategy
                if event.strategy_id == sid:
                    strat.on_order_event(event)
                return
            order = orders.get(cid)
            if order is not None and order.strategy_id == sid:
                strat.on_order_event(event)

        return route
