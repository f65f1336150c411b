"""The signal pipeline: from a signal to a risk-checked order.

::

    submit ──> validate ──> queue ──> process: expired? ──> gates ──> sizing ──> order
      │            │                     │                   │          │          │
    SignalReceived SignalRejected    SignalExpired       SignalHeld  SignalHeld  SignalAccepted
                                                                                  + the order's
                                                                                  own events

A pipeline belongs to one hosting :class:`~tradepilot.strategy.base.Strategy` and
sends its orders through that strategy (so they carry its id, pass the risk
engine and reach the venue like any other order). It keeps the strategy's own
positions (a :class:`~tradepilot.strategy.allocation.Ledger`), a
:class:`~tradepilot.strategy.indicators.MarketState` per instrument, the exit
levels of open positions, the queue, and the HOLD summary. Everything reads time
from the engine clock, so a backtest and a paper session of the same data make
the same decisions.

Three ways in, one path:

* in-process - the host (or any code on the engine thread) calls :meth:`handle`
  (submit and process now) or :meth:`submit` (queue; processed on the next bar);
* a file - :class:`~tradepilot.strategy.signals.FileSignalSource` replayed by the
  host when the engine clock reaches each signal's time;
* a plain call from another thread (an API) - :meth:`post`, picked up on the
  engine thread at the next bar.

A queued signal whose instrument has an order in flight waits (until its time to
live runs out, which drops it with ``SignalExpired``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from tradepilot.core.time import NS_PER_HOUR
from tradepilot.model import fixed
from tradepilot.model.data import Bar, TradeTick
from tradepilot.model.enums import AccountType, OrderStatus, OrderType, TimeInForce
from tradepilot.model.events import Event, OrderDenied, OrderFilled, ParentOrderFinished
from tradepilot.model.instrument import Instrument, InvalidInput
from tradepilot.model.order import Order
from tradepilot.model.order_factory import new_order
from tradepilot.strategy.algo_choice import DIRECT, SELF_EXITING, check_algo, choose
from tradepilot.strategy.allocation import CapitalAllocator, Ledger
from tradepilot.strategy.exits import ExitConfig, ExitManager, ExitTrigger
from tradepilot.strategy.gates import GateConfig, HoldCode, HoldSummary, Intent, evaluate
from tradepilot.strategy.indicators import MarketState
from tradepilot.strategy.signals import (
    ACTION_VALUES,
    QueuedSignal,
    RejectCode,
    Signal,
    SignalAccepted,
    SignalAction,
    SignalExpired,
    SignalHeld,
    SignalQueue,
    SignalReceived,
    SignalRejected,
    signal_json,
    validate,
)
from tradepilot.strategy.sizing import Sizer, SizeResult, SizingConfig, SizingInputs

if TYPE_CHECKING:
    from tradepilot.execution.algo_engine import AlgoEngine
    from tradepilot.execution.context import TradingContext
    from tradepilot.strategy.base import Strategy

SCALE = fixed.SCALE
EXIT_PRIORITY = 1_000


class Status:
    QUEUED = "QUEUED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    HELD = "HELD"
    ACCEPTED = "ACCEPTED"
    DENIED = "DENIED"  # accepted, but the risk engine denied the order


@dataclass(frozen=True)
class PipelineConfig:
    gates: GateConfig = field(default_factory=GateConfig)
    sizing: SizingConfig = field(default_factory=SizingConfig)
    exits: ExitConfig = field(default_factory=ExitConfig)
    drift_threshold: float = 0.0  # TARGET weight signals: skip |weight - target| below this
    history_ns: int = 24 * NS_PER_HOUR  # prices kept per instrument (returns, momentum)
    atr_period: int = 14
    journal: bool = True  # append signal events to the engine's journal
    #: the execution algorithm of this strategy's orders, unless a signal names its own
    algo: str = DIRECT
    algo_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_algo(self.algo, self.algo_params, default=True)
        if not 0 <= self.drift_threshold < 1:
            raise ValueError("drift_threshold must be in [0, 1)")
        lookback = self.gates.momentum_lookback_ns
        need = max(lookback, self.sizing.returns_horizon_ns)
        if self.history_ns < need:
            raise ValueError(
                f"history ({self.history_ns} ns) is shorter than the longest lookback ({need} ns)"
            )


class Decision(msgspec.Struct, frozen=True):
    """What became of one signal."""

    signal_id: str
    instrument_id: str
    action: str
    status: str
    code: str = ""
    reason: str = ""
    intent: str = ""
    side: int = 0
    quantity: int = 0
    order_id: str | None = None
    confidence: float | None = None
    momentum_pct: float | None = None

    @property
    def label(self) -> str:
        """BUY / SELL for an order, HOLD for a hold, else the status."""
        if self.status in (Status.ACCEPTED, Status.DENIED):
            return "BUY" if self.side > 0 else "SELL"
        if self.status == Status.HELD:
            return "HOLD"
        return self.status


_EXIT = Intent.EXIT
_REVERSAL = Intent.REVERSAL_EXIT
_REBALANCE = Intent.REBALANCE
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_GTC = TimeInForce.GTC
_GTD = TimeInForce.GTD
_DENIED = OrderStatus.DENIED
_CASH = AccountType.CASH


class SignalPipeline:
    """Validation, queue, gates, sizing, exits and order submission for one strategy."""

    def __init__(
        self,
        host: Strategy,
        config: PipelineConfig | None = None,
        allocator: CapitalAllocator | None = None,
    ) -> None:
        self.host = host
        self.config = cfg = config or PipelineConfig()
        self.allocator = allocator
        self.sizer = Sizer(cfg.sizing)
        self.exits = ExitManager(cfg.exits)
        self.ledger = Ledger()
        self.market: dict[str, MarketState] = {}
        self.queue = SignalQueue()
        self.holds = HoldSummary()
        self.rejections: dict[str, int] = {}
        self.counts = dict.fromkeys(
            ("received", "rejected", "expired", "held", "accepted", "denied"), 0
        )
        self.last: Decision | None = None
        self.idle_reason: str | None = None  # a HOLD without a signal (warming up, closed)
        self.stopped: str | None = None  # why trading stopped (the engine is flattening)
        self._seen: set[str] = set()
        self._seq = 0
        self._flight: dict[str, str] = {}  # client order id -> instrument
        self._flying: dict[str, int] = {}  # instrument -> orders in flight
        self._levels: dict[str, tuple[float | None, float | None]] = {}  # cid -> stop, take
        self._exit_orders: set[str] = set()
        self._self_exiting: set[str] = set()  # parents (bracket, OCO) that place their exits
        #: the algorithm host that works parent orders (set by the wiring, e.g. app/build)
        self.algos: AlgoEngine | None = None
        self._watching = False
        self._inbox: deque[tuple[Signal, str]] = deque()
        self._engine: TradingContext | None = None
        self._returns_horizon = cfg.sizing.returns_horizon_ns if cfg.sizing.needs_returns else None

    # -- wiring ----------------------------------------------------------------------------------
    @property
    def engine(self) -> TradingContext:
        engine = self._engine
        if engine is None:
            engine = self._bind()
        return engine

    def _bind(self) -> TradingContext:
        """Look the context's parts up once (the hot path reads them from here)."""
        engine = self._engine = self.host.context
        self._clock = engine.clock
        self._instruments = engine.instruments
        self._portfolio = engine.portfolio
        self._orders = engine.orders
        self._append = engine.journal.append if self.config.journal else None
        self._publish = engine.bus.publish
        self._cash = engine.portfolio.account_type is _CASH
        by_symbol: dict[str, list[str]] = {}
        for inst in engine.instruments.values():
            by_symbol.setdefault(inst.symbol, []).append(inst.id)
        self._symbols = {sym: ids[0] for sym, ids in by_symbol.items() if len(ids) == 1}
        return engine

    @property
    def strategy_id(self) -> str:
        return self.host.strategy_id

    def start(self) -> None:
        """Call from the host's ``on_start``: fixes the allocation base."""
        if self.allocator is not None:
            self.allocator.start(self.engine.portfolio.equity())

    def stop(self, reason: str) -> None:
        """Stop trading (the engine is flattening): every later signal is held with
        ``reason``, exits stop (the engine closes the positions itself)."""
        self.stopped = reason
        self.exits.positions.clear()

    def state(self, instrument_id: str) -> MarketState:
        st = self.market.get(instrument_id)
        if st is None:
            cfg = self.config
            st = self.market[instrument_id] = MarketState(
                instrument_id, cfg.history_ns, cfg.atr_period, self._returns_horizon
            )
        return st

    def _emit(self, event: Event) -> None:
        if self._engine is None:
            self._bind()
        append = self._append
        if append is not None:
            append(event)
        self._publish(event)

    # -- market data (from the host) ---------------------------------------------------------------
    def on_bar(self, bar: Bar) -> list[Decision]:
        """Update the market state, check exits, process the queue."""
        iid = bar.instrument_id
        self.state(iid).on_bar(bar)
        out: list[Decision] = []
        if iid in self.exits.positions and not self._flying.get(iid):
            s = SCALE
            trigger = self.exits.check(
                iid,
                bar.ts,
                bar.close / s,
                bar.low / s,
                bar.high / s,
                *self._risk_state(),
            )
            if trigger is not None:
                out.append(self.exit(iid, trigger))
        if self.queue or self._inbox:
            out.extend(self.process())
        return out

    def on_trade(self, tick: TradeTick) -> list[Decision]:
        iid = tick.instrument_id
        self.state(iid).on_price(tick.ts, tick.price)
        out: list[Decision] = []
        if iid in self.exits.positions and not self._flying.get(iid):
            trigger = self.exits.check(
                iid, tick.ts, tick.price / SCALE, risk_state=self._risk_state()[0]
            )
            if trigger is not None:
                out.append(self.exit(iid, trigger))
        if self.queue or self._inbox:
            out.extend(self.process())
        return out

    def _risk_state(self) -> tuple[str, str]:
        return self.engine.trading_state()

    # -- order feedback (from the host) ------------------------------------------------------------
    def on_fill(self, fill: OrderFilled) -> None:
        iid = fill.instrument_id
        before, after = self.ledger.on_fill(fill)
        exits = self.exits
        flipped = before != 0 and after != 0 and (after > 0) != (before > 0)
        if after == 0 or flipped:
            exits.on_close(iid)
        key = fill.client_order_id
        if self._watching:  # a child of a parent order: the parent holds the levels
            order = self._orders.orders.get(key)
            if order is not None and order.parent_id is not None:
                key = order.parent_id
                if key in self._self_exiting:
                    return  # a bracket / OCO places its own exits
        if (before == 0 and after != 0) or flipped:
            pos = self.ledger.position(iid)
            avg = pos.avg_px if pos is not None else None
            stop, take = self._levels.get(key, (None, None))
            exits.on_open(
                iid,
                1 if after > 0 else -1,
                (avg or fill.last_px) / SCALE,
                fill.ts,
                self.state(iid).atr,
                stop,
                take,
            )
        elif abs(after) > abs(before):
            pos = self.ledger.position(iid)
            if pos is not None and pos.avg_px is not None:
                exits.on_change(iid, pos.avg_px / SCALE)

    def on_order_event(self, event: Event) -> None:
        cid = getattr(event, "client_order_id", None)
        if cid is None or cid not in self._flight:
            return
        order = self.engine.orders.orders.get(cid)
        if order is not None and order.is_closed:
            self._land(cid)

    def _land(self, cid: str) -> None:
        iid = self._flight.pop(cid, None)
        if iid is not None:
            n = self._flying.get(iid, 0) - 1
            if n > 0:
                self._flying[iid] = n
            else:
                self._flying.pop(iid, None)
        self._levels.pop(cid, None)
        self._exit_orders.discard(cid)

    def in_flight(self, instrument_id: str | None = None) -> int:
        if instrument_id is None:
            return len(self._flight)
        return self._flying.get(instrument_id, 0)

    # -- ways in ---------------------------------------------------------------------------------
    def submit(self, signal: Signal, source: str = "strategy") -> Decision:
        """Validate and queue a signal (engine thread). A rejection changes nothing else."""
        accepted = self._accept(signal, source)
        if isinstance(accepted, Decision):
            return accepted
        return self._enqueue(accepted, source)

    def _enqueue(self, sig: Signal, source: str) -> Decision:
        ttl = sig.ttl_ns
        now = self._clock.now()
        self.queue.push(QueuedSignal(sig, source, now, None if ttl is None else sig.ts + ttl))
        return Decision(
            sig.signal_id, sig.instrument_id, sig.action, Status.QUEUED, confidence=sig.confidence
        )

    def _accept(self, signal: Signal, source: str) -> Signal | Decision:
        """Assign id and time, journal the arrival and validate: the valid signal, or the
        rejection (which changes nothing but the counters and the journal)."""
        engine = self._engine or self._bind()
        now = self._clock.now()
        self.counts["received"] += 1
        if type(signal) is not Signal or not (
            type(signal.instrument_id) is str
            and type(signal.signal_id) is str
            and type(signal.strategy_id) is str
        ):
            iid = str(getattr(signal, "instrument_id", ""))[:100]
            sid = self._next_id()
            self._emit(
                SignalReceived(now, sid, self.strategy_id, iid, "", source, repr(signal)[:500])
            )
            why = (
                "not a Signal"
                if type(signal) is not Signal
                else "instrument_id, signal_id and strategy_id must be text"
            )
            return self._reject(now, sid, self.strategy_id, iid, "MALFORMED", why, source)
        sid = signal.signal_id
        changes: dict[str, object] = {}
        if not sid:
            sid = changes["signal_id"] = self._next_id()
        if not signal.strategy_id:
            changes["strategy_id"] = self.strategy_id
        if signal.ts == 0:
            changes["ts"] = now
        action = signal.action
        if type(action) is not SignalAction and action in ACTION_VALUES:
            changes["action"] = SignalAction(action)
        if signal.instrument_id not in engine.instruments:
            known = self._symbols.get(signal.instrument_id)
            if known is not None:  # a plain symbol that names one instrument
                changes["instrument_id"] = known
        sig = msgspec.structs.replace(signal, **changes) if changes else signal
        iid = sig.instrument_id
        self._emit(
            SignalReceived(
                now, sid, sig.strategy_id, iid, str(sig.action), source, signal_json(sig)
            )
        )
        rejection = validate(sig, now, engine.instruments, self._seen)
        if rejection is not None:
            return self._reject(
                now, sid, sig.strategy_id, iid, rejection.code, rejection.reason, source
            )
        self._seen.add(sid)
        return sig

    def reject_malformed(self, reason: str, source: str, instrument_id: str = "") -> Decision:
        """Record a signal that could not even be read (a bad file line)."""
        now = self.engine.clock.now()
        self.counts["received"] += 1
        sid = self._next_id()
        self._emit(SignalReceived(now, sid, self.strategy_id, instrument_id, "", source, ""))
        return self._reject(
            now, sid, self.strategy_id, instrument_id, RejectCode.MALFORMED, reason, source
        )

    def _reject(
        self, now: int, sid: str, strategy_id: str, iid: str, code: str, reason: str, source: str
    ) -> Decision:
        self.counts["rejected"] += 1
        code = str(code)
        self.rejections[code] = self.rejections.get(code, 0) + 1
        self._emit(SignalRejected(now, sid, strategy_id, iid, code, reason, source))
        decision = Decision(sid, iid, "", Status.REJECTED, code, reason)
        self.last = decision
        return decision

    def _next_id(self) -> str:
        while True:
            self._seq += 1
            sid = f"{self.strategy_id}-s{self._seq}"
            if sid not in self._seen:
                return sid

    def post(self, signal: Signal, source: str = "api") -> None:
        """Hand a signal over from any thread; it is validated on the engine thread."""
        self._inbox.append((signal, source))

    def handle(self, signal: Signal, source: str = "strategy") -> Decision:
        """Submit a signal and process the queue now; the decision about this signal.

        With nothing else waiting and no order in flight for its instrument, the
        signal is decided at once without passing through the queue (the same
        outcome, faster).
        """
        if not self.queue and not self._inbox and type(signal) is Signal:
            accepted = self._accept(signal, source)
            if isinstance(accepted, Decision):
                return accepted
            sig = accepted
            if not self._flying.get(sig.instrument_id):
                decision = self._decide(sig, self._clock.now())
                self.last = decision
                return decision
            return self._enqueue(sig, source)
        queued = self.submit(signal, source)
        if queued.status != Status.QUEUED:
            return queued
        mine = queued
        for decision in self.process():
            if decision.signal_id == queued.signal_id:
                mine = decision
        return mine

    # -- processing ------------------------------------------------------------------------------
    def process(self) -> list[Decision]:
        """Decide every queued signal whose instrument is free; drop the expired ones."""
        inbox = self._inbox
        while inbox:
            sig, source = inbox.popleft()
            self.submit(sig, source)
        queue = self.queue
        if not queue:
            return []
        if self._engine is None:
            self._bind()
        now = self._clock.now()
        waiting: list[QueuedSignal] = []
        out: list[Decision] = []
        while queue:
            item = queue.pop()
            sig = item.signal
            if item.expires_ts is not None and item.expires_ts <= now:
                self.counts["expired"] += 1
                self._emit(
                    SignalExpired(
                        now, sig.signal_id, sig.strategy_id, sig.instrument_id, item.expires_ts
                    )
                )
                decision = Decision(
                    sig.signal_id,
                    sig.instrument_id,
                    sig.action,
                    Status.EXPIRED,
                    "EXPIRED",
                    f"expired at {item.expires_ts} while waiting",
                )
                self.last = decision
                out.append(decision)
                continue
            if self._flying.get(sig.instrument_id):
                waiting.append(item)
                continue
            decision = self._decide(sig, now)
            self.last = decision
            out.append(decision)
        for item in waiting:
            queue.push(item)
        return out

    def _decide(self, sig: Signal, now: int) -> Decision:
        if self.stopped is not None:
            return self._held(sig, now, "STOPPED", f"trading stopped: {self.stopped}")
        iid = sig.instrument_id
        pos = self.ledger.qty(iid)
        st = self.market.get(iid)
        gates = self.config.gates
        mom = st.momentum_pct(gates.momentum_lookback_ns) if st is not None else None
        gate = evaluate(sig, pos, mom, gates)
        intent = gate.intent
        if intent is None:
            return self._held(sig, now, gate.code, gate.reason, mom)
        inst = self._instruments[iid]
        if intent is _EXIT or intent is _REVERSAL:
            qty = self._closable(inst, pos)
            if qty <= 0:
                return self._held(
                    sig, now, HoldCode.NOTHING_TO_SELL.value, "the account owns nothing to sell"
                )
            return self._send(sig, now, inst, -1 if pos > 0 else 1, qty, intent, gate.reason, mom)
        price = self._price(sig, inst)
        if price is None:
            return self._held(sig, now, HoldCode.NO_PRICE.value, f"no price for {iid} yet", mom)
        if intent is _REBALANCE:
            return self._rebalance(sig, now, inst, pos, price, mom)
        side = sig.side
        result = self.sizer.size(self._inputs(sig, inst, price, pos, side, st))
        if result.quantity == 0:
            return self._held(sig, now, result.code, result.reason, mom)
        reason = f"{gate.reason}: {result.reason}"
        return self._send(sig, now, inst, side, result.quantity, intent, reason, mom)

    def _rebalance(
        self, sig: Signal, now: int, inst: Instrument, pos: int, price: int, mom: float | None
    ) -> Decision:
        cfg = self.config
        capital = self.capital()
        if sig.target_quantity is not None:
            target = round(sig.target_quantity * SCALE)
        else:
            weight = sig.target_weight or 0.0
            target_value = round(capital * weight)
            target = target_value * SCALE // price
            if capital > 0 and cfg.drift_threshold > 0:
                drift = abs(fixed.mul(pos, price) - target_value) / capital
                if drift < cfg.drift_threshold:
                    return self._held(
                        sig,
                        now,
                        HoldCode.DRIFT_BELOW_THRESHOLD.value,
                        f"drift {drift:.2%} < threshold {cfg.drift_threshold:.2%}",
                        mom,
                    )
        lot = inst.lot_size
        target = target - target % lot if target >= 0 else -((-target) - (-target) % lot)
        side = 1 if target > pos else -1
        inputs = self._inputs(sig, inst, price, pos, side, self.market.get(inst.id))
        owned = self._owned(inst) if self._cash else None
        result: SizeResult = self.sizer.size_target(inputs, target, self._cash, owned)
        if result.quantity == 0:
            return self._held(sig, now, result.code, result.reason, mom)
        return self._send(sig, now, inst, side, result.quantity, _REBALANCE, result.reason, mom)

    # -- helpers ---------------------------------------------------------------------------------
    def _owned(self, inst: Instrument) -> int:
        """What a cash account can still sell of the instrument's base asset."""
        return self._portfolio.free(inst.base)

    def _closable(self, inst: Instrument, pos: int) -> int:
        qty = abs(pos)
        if pos > 0 and self._cash:
            qty = min(qty, self._owned(inst))
            qty -= qty % inst.lot_size
        return qty

    def _price(self, sig: Signal, inst: Instrument) -> int | None:
        if sig.price is not None:
            try:
                return inst.snap_price(round(sig.price * SCALE))
            except InvalidInput:
                return None
        return self._portfolio.last_price(sig.instrument_id)

    def price_of(self, instrument_id: str) -> int | None:
        return self.engine.portfolio.last_price(instrument_id)

    def capital(self) -> int:
        """The strategy's capital: its allocation plus its PnL, or the account equity."""
        portfolio = self.engine.portfolio
        if self.allocator is None:
            return portfolio.equity()
        return self.allocator.capital(
            self.strategy_id, self.ledger.pnl(portfolio.last_price), portfolio.equity()
        )

    def _inputs(
        self,
        sig: Signal,
        inst: Instrument,
        price: int,
        pos: int,
        side: int,
        st: MarketState | None,
    ) -> SizingInputs:
        portfolio = self._portfolio
        cfg = self.config
        atr = st.atr if st is not None else None
        stop = None
        if sig.stop_loss is not None:
            stop = round(sig.stop_loss * SCALE)
        else:
            level = cfg.exits.stop_for(side, price / SCALE, atr)
            if level is not None:
                stop = round(level * SCALE)
        return SizingInputs(
            instrument=inst,
            side=side,
            price=price,
            capital=self.capital(),
            position_qty=pos,
            exposure=self.ledger.exposure(portfolio.last_price),
            free_cash=portfolio.free(inst.quote) if self._cash else None,
            stop_price=stop,
            atr=atr,
            returns=st.returns if st is not None else None,
            trade_stats=self.ledger.stats() if cfg.sizing.use_trade_history else None,
            requested_qty=round(sig.quantity * SCALE) if sig.quantity is not None else None,
        )

    def _held(
        self, sig: Signal, now: int, code: str, reason: str, mom: float | None = None
    ) -> Decision:
        self.counts["held"] += 1
        self.holds.add(code, reason)
        self._emit(SignalHeld(now, sig.signal_id, sig.strategy_id, sig.instrument_id, code, reason))
        return Decision(
            sig.signal_id,
            sig.instrument_id,
            sig.action,
            Status.HELD,
            code,
            reason,
            confidence=sig.confidence,
            momentum_pct=mom,
        )

    def note_hold(self, code: str, reason: str) -> None:
        """A HOLD without a signal (warming up, market closed): counted and shown in status."""
        self.holds.add(code, reason)
        self.idle_reason = reason
        self.last = Decision("", "", "", Status.HELD, str(code), reason)

    def _send(
        self,
        sig: Signal,
        now: int,
        inst: Instrument,
        side: int,
        qty: int,
        intent: Intent,
        reason: str,
        mom: float | None,
    ) -> Decision:
        host = self.host
        sid = host.strategy_id
        iid = sig.instrument_id
        cid = self._orders.next_id(sid)
        is_exit = intent is _EXIT or intent is _REVERSAL
        price = None
        order_type = _MARKET
        tif = _GTC
        expire = None
        if sig.price is not None and not is_exit:
            price = inst.snap_price(round(sig.price * SCALE))
            order_type = _LIMIT
            if sig.ttl_ns is not None:
                tif, expire = _GTD, sig.ts + sig.ttl_ns
        try:
            algo, params = choose(sig, self.config.algo, self.config.algo_params, is_exit)
        except ValueError as exc:  # a default that no longer fits this signal (its price)
            return self._refuse_algo(sig, now, str(exc))
        if algo != DIRECT:
            return self._send_parent(sig, now, side, qty, intent, reason, mom, algo, params)
        self._emit(
            SignalAccepted(
                now, sig.signal_id, sig.strategy_id, iid, cid, side, qty, intent.value, reason
            )
        )
        order: Order = host.submit_raw(
            new_order(
                now,
                cid,
                iid,
                sid,
                side,
                qty,
                order_type,
                price,
                time_in_force=tif,
                expire_ts=expire,
                reduce_only=is_exit,
                tags=sig.signal_id,
            )
        )
        if order.status is _DENIED:
            self.counts["denied"] += 1
            last = order.events[-1]
            code = last.code if isinstance(last, OrderDenied) else "DENIED"
            why = last.reason if isinstance(last, OrderDenied) else ""
            if is_exit:
                self.exits.exit_denied(iid, self._risk_state()[0])
            return Decision(
                sig.signal_id,
                iid,
                sig.action,
                Status.DENIED,
                code,
                f"order denied by the risk engine: {why}",
                intent.value,
                side,
                qty,
                cid,
                sig.confidence,
                mom,
            )
        if is_exit and not order.is_closed:
            self._exit_orders.add(cid)
        return self._accepted(sig, side, qty, intent, reason, mom, cid, not order.is_closed)

    def _send_parent(
        self,
        sig: Signal,
        now: int,
        side: int,
        qty: int,
        intent: Intent,
        reason: str,
        mom: float | None,
        algo: str,
        params: dict[str, Any],
    ) -> Decision:
        """Hand the sized order to an execution algorithm as a parent order.

        The algorithm's children go through the risk engine like any order. A parent the
        algorithm refuses (its parameters do not fit the market: a bracket's stop already
        reached) is a rejected signal; nothing was recorded or sent for it.
        """
        algos = self._algo_host()
        iid = sig.instrument_id
        if algos is None:
            return self._refuse_algo(
                sig, now, f"{algo}: no algorithm host is wired to {self.strategy_id}"
            )
        try:
            pid = algos.submit_parent(iid, side, qty, algo, params, strategy_id=self.strategy_id)
        except ValueError as exc:
            return self._refuse_algo(sig, now, str(exc))
        self._emit(
            SignalAccepted(
                now, sig.signal_id, sig.strategy_id, iid, pid, side, qty, intent.value, reason
            )
        )
        working = not algos.parent(pid).status.is_final
        if working and algo in SELF_EXITING:
            self._self_exiting.add(pid)
        return self._accepted(
            sig, side, qty, intent, f"{reason} (via {algo} {pid})", mom, pid, working
        )

    def _accepted(
        self,
        sig: Signal,
        side: int,
        qty: int,
        intent: Intent,
        reason: str,
        mom: float | None,
        order_id: str,
        working: bool,
    ) -> Decision:
        """Count an accepted signal; keep its order (or parent) in flight while it works."""
        self.counts["accepted"] += 1
        iid = sig.instrument_id
        if working:
            self._flight[order_id] = iid
            self._flying[iid] = self._flying.get(iid, 0) + 1
            is_exit = intent is _EXIT or intent is _REVERSAL
            levels = sig.stop_loss is not None or sig.take_profit is not None
            if levels and not is_exit and order_id not in self._self_exiting:
                self._levels[order_id] = (sig.stop_loss, sig.take_profit)
        return Decision(
            sig.signal_id,
            iid,
            sig.action,
            Status.ACCEPTED,
            "",
            reason,
            intent.value,
            side,
            qty,
            order_id,
            sig.confidence,
            mom,
        )

    def _refuse_algo(self, sig: Signal, now: int, reason: str) -> Decision:
        return self._reject(
            now,
            sig.signal_id,
            sig.strategy_id,
            sig.instrument_id,
            RejectCode.BAD_ALGO,
            reason,
            "pipeline",
        )

    def _algo_host(self) -> AlgoEngine | None:
        """The algorithm host given in :attr:`algos`; parents' ends are watched from then on."""
        algos = self.algos
        if algos is not None and not self._watching:
            self._watching = True
            self.engine.bus.subscribe(ParentOrderFinished, self._on_parent_finished)
        return algos

    def _on_parent_finished(self, event: ParentOrderFinished) -> None:
        if event.parent_id in self._flight:
            self._land(event.parent_id)
        self._self_exiting.discard(event.parent_id)

    # -- exits -----------------------------------------------------------------------------------
    def exit(self, instrument_id: str, trigger: ExitTrigger) -> Decision:
        """Close a position for an exit trigger, through the normal signal path."""
        return self.handle(
            Signal(
                instrument_id=instrument_id,
                action=SignalAction.CLOSE,
                priority=EXIT_PRIORITY,
                note=f"{trigger.code}: {trigger.reason}",
            ),
            source="exit",
        )

    # -- reporting -------------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        """Fields for a cycle log: the last decision and its reason."""
        last = self.last
        out: dict[str, object] = {}
        if last is None:
            out["signal"] = "HOLD"
            out["reason"] = self.idle_reason or "no signal yet"
            return out
        out["signal"] = last.label
        if last.confidence is not None:
            out["confidence"] = round(last.confidence, 4)
        if last.momentum_pct is not None:
            out["momentum_pct"] = round(last.momentum_pct, 4)
        out["reason"] = last.reason if last.status != Status.HELD else f"HOLD: {last.reason}"
        if last.code:
            out["code"] = last.code
        return out

    def summary(self) -> dict[str, object]:
        return {
            "signals": dict(self.counts),
            "holds": self.holds.to_dict(),
            "rejections": dict(sorted(self.rejections.items())),
            "closed_trades": len(self.ledger.trade_returns),
        }
