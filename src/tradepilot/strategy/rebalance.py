"""Target-portfolio rebalancing: target weights in, sells first, then buys.

:func:`plan_rebalance` is pure: from target weights, the strategy's positions,
prices, its capital and the free cash it computes which sells and which buys
move the portfolio to its targets:

* target weights are clipped to ``max_position`` each and scaled down together to
  at most ``max_exposure``; instruments held but not in the targets go to 0;
* an instrument whose weight is within ``drift_threshold`` of its target is left
  alone (a HOLD with the drift as the reason);
* a sell never exceeds what is held - in a cash account, nor what the account owns
  and has not already promised to an open order;
* buys are limited to ``max_trade_value`` each and, together, to the free cash
  (fees included, less ``cash_buffer`` of capital): if they do not fit, all buys
  are scaled down in proportion; anything below ``min_trade_value`` is dropped.

:class:`RebalanceStrategy` runs it on a schedule (every ``cycle`` of engine time
while the calendar is open) in two phases: it submits the sells and waits for
every one of them to finish; then it plans again with the cash the sells freed
and submits the buys. Each order goes through the signal pipeline as a TARGET
signal, so it is journaled, checked again (lot, cash, ownership, trade value)
and risk-checked like any other. A cycle with nothing to do logs
``holding: positions match targets``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tradepilot.core.time import NS_PER_HOUR, NS_PER_MINUTE
from tradepilot.model import fixed
from tradepilot.model.data import Bar, TradeTick
from tradepilot.model.enums import AccountType
from tradepilot.model.events import Event, OrderFilled
from tradepilot.model.instrument import Instrument
from tradepilot.strategy.allocation import CapitalAllocator
from tradepilot.strategy.base import Strategy
from tradepilot.strategy.calendars import AlwaysOpen, TradingCalendar, schedule_cycles
from tradepilot.strategy.gates import GateConfig, HoldCode
from tradepilot.strategy.indicators import MarketState
from tradepilot.strategy.pipeline import PipelineConfig, SignalPipeline, Status
from tradepilot.strategy.signal_strategy import Idle
from tradepilot.strategy.signals import Signal, SignalAction

SCALE = fixed.SCALE
HOLDING = "holding: positions match targets"


@dataclass(frozen=True)
class RebalanceConfig:
    drift_threshold: float = 0.01  # |weight - target weight| below this: leave it
    max_position: float = 0.10  # largest target weight of one instrument
    max_exposure: float = 0.80  # largest sum of target weights
    min_trade_value: str | None = None
    max_trade_value: str | None = None
    cash_buffer: float = 0.0  # fraction of capital never spent on buys
    liquidate_unlisted: bool = True  # held but not in the targets: sell to 0

    def __post_init__(self) -> None:
        if not 0 <= self.drift_threshold < 1:
            raise ValueError("drift_threshold must be in [0, 1)")
        if not 0 < self.max_position <= 1 or not 0 < self.max_exposure <= 1:
            raise ValueError("max_position and max_exposure must be in (0, 1]")
        if not 0 <= self.cash_buffer < 1:
            raise ValueError("cash_buffer must be in [0, 1)")
        lo = fixed.to_raw(self.min_trade_value) if self.min_trade_value is not None else None
        hi = fixed.to_raw(self.max_trade_value) if self.max_trade_value is not None else None
        if (lo is not None and lo < 0) or (hi is not None and hi <= 0):
            raise ValueError("trade values must be positive")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_trade_value is above max_trade_value")


@dataclass(frozen=True, slots=True)
class PlannedTrade:
    instrument_id: str
    side: int
    quantity: int  # raw, on the lot
    current_qty: int
    target_qty: int  # the position after the trade
    current_weight: float
    target_weight: float
    reason: str

    def describe(self) -> str:
        verb = "BUY" if self.side > 0 else "SELL"
        return f"{verb} {fixed.to_str(self.quantity)} {self.instrument_id}"


@dataclass(frozen=True)
class RebalancePlan:
    sells: list[PlannedTrade] = field(default_factory=list)
    buys: list[PlannedTrade] = field(default_factory=list)
    holds: dict[str, str] = field(default_factory=dict)  # instrument -> why no trade
    targets: dict[str, float] = field(default_factory=dict)  # the weights after clipping

    @property
    def is_empty(self) -> bool:
        return not self.sells and not self.buys


def clip_targets(
    targets: Mapping[str, float], max_position: float, max_exposure: float
) -> dict[str, float]:
    """Clip each weight to ``[0, max_position]``, then scale all down to ``max_exposure``."""
    out = {iid: min(max(w, 0.0), max_position) for iid, w in targets.items()}
    total = sum(out.values())
    if total > max_exposure > 0:
        scale = max_exposure / total
        out = {iid: w * scale for iid, w in out.items()}
    return out


def _cost(qty: int, px: int, inst: Instrument) -> int:
    """What a buy costs: its notional plus the larger of the instrument's fees."""
    notional = fixed.mul(qty, px)
    return notional + fixed.bps_of(notional, max(inst.taker_fee_bps, inst.maker_fee_bps))


def plan_rebalance(
    targets: Mapping[str, float],
    positions: Mapping[str, int],
    prices: Mapping[str, int],
    capital: int,
    free_cash: int,
    instruments: Mapping[str, Instrument],
    config: RebalanceConfig,
    cash_account: bool = True,
    owned: Mapping[str, int] | None = None,
) -> RebalancePlan:
    """The sells and buys that move ``positions`` to ``targets`` (see the module docstring).

    ``positions`` and ``owned`` are raw quantities (the strategy's positions, and
    what a cash account can still sell), ``prices``, ``capital`` and ``free_cash``
    raw money. Instruments are visited in the order of ``targets``, then any other
    held instrument in sorted order, so the plan is deterministic.
    """
    weights = clip_targets(targets, config.max_position, config.max_exposure)
    order = list(weights)
    for iid in sorted(positions):
        if iid not in weights and positions[iid]:
            order.append(iid)
            if config.liquidate_unlisted:
                weights[iid] = 0.0
    min_value = fixed.to_raw(config.min_trade_value) if config.min_trade_value else None
    max_value = fixed.to_raw(config.max_trade_value) if config.max_trade_value else None
    sells: list[PlannedTrade] = []
    buys: list[PlannedTrade] = []
    holds: dict[str, str] = {}
    if capital <= 0:
        return RebalancePlan(holds=dict.fromkeys(order, "no capital"), targets=weights)
    for iid in order:
        if iid not in weights:
            holds[iid] = "held but not in the targets (liquidate_unlisted is off)"
            continue
        inst = instruments.get(iid)
        px = prices.get(iid)
        if inst is None:
            holds[iid] = "unknown instrument"
            continue
        if px is None or px <= 0:
            holds[iid] = "no price yet"
            continue
        pos = positions.get(iid, 0)
        w_cur = fixed.mul(pos, px) / capital
        w_tgt = weights[iid]
        drift = abs(w_cur - w_tgt)
        if drift < config.drift_threshold and not (w_tgt == 0.0 and pos < 0):
            holds[iid] = f"drift {drift:.2%} < threshold {config.drift_threshold:.2%}"
            continue
        target_qty = round(capital * w_tgt) * SCALE // px
        target_qty -= target_qty % inst.lot_size
        delta = target_qty - pos
        if delta == 0:
            holds[iid] = "at target after rounding to the lot"
            continue
        why = f"weight {w_cur:.2%} -> target {w_tgt:.2%}"
        if delta < 0:
            qty = -delta
            if cash_account:
                can = min(pos, owned.get(iid, pos) if owned is not None else pos)
                can = max(can, 0)
                can -= can % inst.lot_size
                if can < qty:
                    why += f" (never sell more than the {fixed.to_str(can)} owned)"
                    qty = can
            if qty <= 0:
                holds[iid] = "nothing owned to sell"
                continue
            if min_value is not None and fixed.mul(qty, px) < min_value and target_qty > 0:
                holds[iid] = f"sell value {fixed.to_str(fixed.mul(qty, px))} < minimum"
                continue
            sells.append(PlannedTrade(iid, -1, qty, pos, pos - qty, w_cur, w_tgt, why))
        else:
            qty = delta
            if max_value is not None:
                limit = max_value * SCALE // px
                limit -= limit % inst.lot_size
                if limit < qty:
                    qty = limit
                    why += f" (max trade value {fixed.to_str(max_value)})"
            buys.append(PlannedTrade(iid, 1, qty, pos, pos + qty, w_cur, w_tgt, why))
    buys = _fit_buys(buys, prices, instruments, free_cash - round(capital * config.cash_buffer))
    kept: list[PlannedTrade] = []
    for trade in buys:
        value = fixed.mul(trade.quantity, prices[trade.instrument_id])
        if trade.quantity <= 0:
            holds[trade.instrument_id] = "no free cash for the buy"
        elif min_value is not None and value < min_value:
            holds[trade.instrument_id] = (
                f"buy value {fixed.to_str(value)} < minimum {fixed.to_str(min_value)}"
            )
        else:
            kept.append(trade)
    return RebalancePlan(sells, kept, holds, weights)


def _fit_buys(
    buys: list[PlannedTrade],
    prices: Mapping[str, int],
    instruments: Mapping[str, Instrument],
    cash: int,
) -> list[PlannedTrade]:
    """Scale all buys down in proportion so that they cost at most ``cash`` (fees included)."""
    if not buys:
        return buys
    cost = sum(
        _cost(t.quantity, prices[t.instrument_id], instruments[t.instrument_id]) for t in buys
    )
    if cost <= cash:
        return buys
    ratio_num, ratio_den = max(cash, 0), cost
    out = []
    for t in buys:
        inst = instruments[t.instrument_id]
        qty = t.quantity * ratio_num // ratio_den
        qty -= qty % inst.lot_size
        out.append(
            PlannedTrade(
                t.instrument_id,
                1,
                qty,
                t.current_qty,
                t.current_qty + qty,
                t.current_weight,
                t.target_weight,
                t.reason + f" (scaled to the free cash {fixed.to_str(max(cash, 0))})",
            )
        )
    return out


# -- target models ---------------------------------------------------------------------------
class TargetModel(Protocol):
    def targets(
        self, now: int, market: Mapping[str, MarketState], universe: Sequence[str]
    ) -> dict[str, float] | Idle:
        """Target weights (fractions of the strategy's capital), or why there are none."""
        ...


@dataclass
class StaticTargets:
    weights: dict[str, float]

    def targets(
        self, now: int, market: Mapping[str, MarketState], universe: Sequence[str]
    ) -> dict[str, float] | Idle:
        return dict(self.weights)


@dataclass
class MomentumRotation:
    """Every instrument gets ``base_weight``; the ``top_n`` strongest over ``lookback``
    get ``top_weight``. A member of the top stays until it falls below rank
    ``top_n + buffer`` (hysteresis against churn)."""

    lookback_ns: int = NS_PER_HOUR
    top_n: int = 2
    top_weight: float = 0.10
    base_weight: float = 0.05
    buffer: int = 1
    top: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.lookback_ns <= 0 or self.top_n < 1 or self.buffer < 0:
            raise ValueError("lookback must be positive, top_n at least 1, buffer >= 0")
        if not 0 <= self.base_weight <= self.top_weight <= 1:
            raise ValueError("need 0 <= base_weight <= top_weight <= 1")

    def targets(
        self, now: int, market: Mapping[str, MarketState], universe: Sequence[str]
    ) -> dict[str, float] | Idle:
        moves: dict[str, float] = {}
        for iid in universe:
            st = market.get(iid)
            mom = st.momentum_pct(self.lookback_ns) if st is not None else None
            if mom is None:
                minutes = self.lookback_ns // NS_PER_MINUTE
                return Idle(
                    HoldCode.WARMING_UP, f"warming up: {iid} has less than {minutes} min of prices"
                )
            moves[iid] = mom
        ranked = sorted(universe, key=lambda i: (-moves[i], universe.index(i)))
        keep_rank = self.top_n + self.buffer
        top = [i for i in self.top if i in ranked[:keep_rank]]
        for iid in ranked:
            if len(top) >= self.top_n:
                break
            if iid not in top:
                top.append(iid)
        self.top = top
        return {iid: self.top_weight if iid in top else self.base_weight for iid in universe}


# -- the strategy ------------------------------------------------------------------------------
class Phase:
    IDLE = "IDLE"
    SELLING = "SELLING"
    BUYING = "BUYING"


class RebalanceStrategy(Strategy):
    """Rebalances ``universe`` to a target model's weights every cycle, sells first."""

    def __init__(
        self,
        strategy_id: str,
        universe: Sequence[str],
        model: TargetModel,
        config: RebalanceConfig | None = None,
        pipeline_config: PipelineConfig | None = None,
        cycle_ns: int = 5 * NS_PER_MINUTE,
        calendar: TradingCalendar | None = None,
        allocator: CapitalAllocator | None = None,
    ) -> None:
        super().__init__(strategy_id)
        if not universe:
            raise ValueError("the rebalancer needs at least one instrument")
        self.universe = list(universe)
        self.model = model
        self.config = config or RebalanceConfig()
        pcfg = pipeline_config or PipelineConfig(
            gates=GateConfig(min_confidence=0.0, min_momentum_pct=0.0)
        )
        self.pipeline = SignalPipeline(self, pcfg, allocator)
        self.cycle_ns = cycle_ns
        self.calendar: TradingCalendar = calendar or AlwaysOpen()
        self.phase = Phase.IDLE
        self.pending: set[str] = set()
        self.plan: RebalancePlan | None = None
        self.reason = "no cycle yet"
        self.code = ""
        self.cycles = 0
        self.rebalances = 0
        self.activity: list[tuple[int, str]] = []  # (ts, "SELL 10 AIG.SIM submitted" ...)
        self.order_log: list[tuple[int, int, str, str]] = []  # (ts, side, iid, order id)
        self._sold = False

    # -- engine callbacks --------------------------------------------------------------------
    def on_start(self) -> None:
        self.pipeline.start()
        schedule_cycles(self.engine, self.cycle_ns, self.calendar, self._cycle)

    def on_bar(self, bar: Bar) -> None:
        self.pipeline.on_bar(bar)

    def on_trade(self, tick: TradeTick) -> None:
        self.pipeline.on_trade(tick)

    def on_fill(self, fill: OrderFilled) -> None:
        self.pipeline.on_fill(fill)
        verb = "BUY" if fill.side > 0 else "SELL"
        self._note(
            f"{verb} {fixed.to_str(fill.last_qty)} {fill.instrument_id} filled @ "
            f"{fixed.to_str(fill.last_px)}"
        )

    def on_order_event(self, event: Event) -> None:
        self.pipeline.on_order_event(event)
        cid = getattr(event, "client_order_id", None)
        if cid is None or cid not in self.pending:
            return
        order = self.engine.orders.orders.get(cid)
        if order is not None and order.is_closed:
            self.pending.discard(cid)
            if not self.pending:
                self._advance()

    def on_flatten(self, reason: str) -> None:
        self.pipeline.stop(reason)
        self.phase = Phase.IDLE
        self.pending.clear()
        self._hold("STOPPED", f"trading stopped: {reason}")

    # -- the cycle -----------------------------------------------------------------------------
    def _note(self, text: str) -> None:
        self.activity.append((self.engine.clock.now(), text))
        if len(self.activity) > 1000:
            del self.activity[:500]

    def _hold(self, code: str, reason: str) -> None:
        self.code, self.reason = code, reason
        self.pipeline.note_hold(code, reason)

    def _cycle(self, ts: int) -> None:
        self.cycles += 1
        if self.pipeline.stopped is not None:
            return
        if self.phase != Phase.IDLE:
            what = "sell" if self.phase == Phase.SELLING else "buy"
            self._hold(
                "REBALANCE_IN_PROGRESS",
                f"holding: rebalance in progress, waiting for {len(self.pending)} {what} order(s)",
            )
            return
        targets = self.model.targets(ts, self.pipeline.market, self.universe)
        if isinstance(targets, Idle):
            self._hold(targets.code, targets.reason)
            return
        plan = self._plan(targets)
        self.plan = plan
        if plan.is_empty:
            self._hold(HoldCode.AT_TARGET.value, HOLDING)
            return
        self.rebalances += 1
        self._sold = False
        if plan.sells:
            self._submit(plan.sells, Phase.SELLING)
            if self.pending:
                return
        self._buy_phase(targets)

    def _plan(self, targets: Mapping[str, float]) -> RebalancePlan:
        engine = self.engine
        pipeline = self.pipeline
        portfolio = engine.portfolio
        cash_account = portfolio.account_type is AccountType.CASH
        instruments = {iid: engine.instruments[iid] for iid in self.universe}
        positions = {iid: pipeline.ledger.qty(iid) for iid in self.universe}
        for iid, pos in pipeline.ledger.positions.items():
            if pos.qty and iid not in positions:
                positions[iid] = pos.qty
                instruments[iid] = engine.instruments[iid]
        prices = {iid: px for iid in positions if (px := portfolio.last_price(iid)) is not None}
        quote = instruments[self.universe[0]].quote
        owned = {iid: portfolio.free(inst.base) for iid, inst in instruments.items()}
        return plan_rebalance(
            targets,
            positions,
            prices,
            pipeline.capital(),
            portfolio.free(quote),
            instruments,
            self.config,
            cash_account,
            owned,
        )

    def _buy_phase(self, targets: Mapping[str, float] | None = None) -> None:
        if targets is None:
            targets = self.plan.targets if self.plan is not None else {}
        plan = self._plan(targets)
        if plan.buys:
            self._submit(plan.buys, Phase.BUYING)
            if self.pending:
                return
        self.phase = Phase.IDLE

    def _submit(self, trades: list[PlannedTrade], phase: str) -> None:
        pipeline = self.pipeline
        self.phase = phase
        self.code = "REBALANCE"
        parts = []
        for trade in trades:
            decision = pipeline.handle(
                Signal(
                    instrument_id=trade.instrument_id,
                    action=SignalAction.TARGET,
                    target_quantity=trade.target_qty / SCALE,
                    ttl_ns=self.cycle_ns,  # a stale target expires instead of trading late
                    note=trade.reason,
                ),
                source="rebalance",
            )
            if decision.status == Status.ACCEPTED and decision.order_id is not None:
                order = self.engine.orders.orders.get(decision.order_id)
                if order is not None and not order.is_closed:
                    self.pending.add(decision.order_id)
                self.order_log.append(
                    (self.engine.clock.now(), decision.side, trade.instrument_id, decision.order_id)
                )
                self._note(f"{trade.describe()} submitted ({phase.lower()} phase)")
                parts.append(trade.describe())
            else:
                self._note(f"{trade.describe()} not sent: {decision.reason}")
        if phase == Phase.SELLING:
            self._sold = bool(parts)
            head = "rebalance: sells first: "
        else:
            head = "rebalance: buys with the freed cash: " if self._sold else "rebalance: buys: "
        label = "sells" if phase == Phase.SELLING else "buys"
        self.reason = head + ", ".join(parts) if parts else f"rebalance: no {label} could be sent"

    def _advance(self) -> None:
        if self.phase == Phase.SELLING:
            self._buy_phase()
        elif self.phase == Phase.BUYING:
            self.phase = Phase.IDLE

    # -- reporting ------------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        now = self.engine.clock.now()
        since = now - self.cycle_ns
        out: dict[str, object] = {
            "signal": "REBALANCE" if self.code == "REBALANCE" else "HOLD",
            "reason": self.reason,
            "phase": self.phase,
        }
        recent = [text for ts, text in self.activity if ts > since]
        if recent:
            out["activity"] = recent
        if self.plan is not None:
            out["targets"] = {k: round(v, 4) for k, v in self.plan.targets.items()}
        portfolio = self.engine.portfolio
        out["positions"] = {
            iid: fixed.to_str(self.pipeline.ledger.qty(iid))
            for iid in self.universe
            if self.pipeline.ledger.qty(iid)
        }
        out["cash"] = fixed.to_str(portfolio.free(self.engine.instruments[self.universe[0]].quote))
        return out
