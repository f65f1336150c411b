"""Sizing: how much to trade once the gates said yes.

A sizer turns an accepted entry into a quantity (raw fixed-point, snapped down to
the instrument's lot). First a *base* size from the configured method:

* ``fixed_quantity`` - ``quantity`` base units;
* ``fixed_notional`` - ``notional`` in the quote currency / price;
* ``percent_equity`` - ``percent`` of the strategy's capital / price;
* ``volatility`` - ATR: lose ``risk_per_trade`` of capital on a move of
  ``atr_multiple`` ATRs (``qty = capital * risk / (k * ATR)``); or realised vol:
  ``notional = capital * target_vol / sigma`` with ``sigma`` the standard
  deviation of the instrument's returns over ``vol_horizon``;
* ``kelly`` - ``kelly_fraction`` (25 %) of the full Kelly fraction
  ``f* = p - (1 - p) / b`` (``p`` win rate, ``b = avg_win / avg_loss``) of capital,
  capped by a CVaR budget: ``notional <= cvar_budget * capital / CVaR``, where CVaR
  is the mean loss of the worst ``1 - cvar_alpha`` of the instrument's historical
  returns over ``cvar_horizon``. ``p``, ``avg_win`` and ``avg_loss`` come from the
  configuration, or from the strategy's own closed trades once it has ``min_trades``.

Then the limits, each of which can only shrink the size (the reason names the
one that bound): the max position (``max_position`` of capital, 50 %, counting what
is already held), the heat per trade (loss at the stop <= ``heat`` of capital, 2 %),
the strategy's unused capital, the free cash of a cash account (fees included),
and ``max_trade_value``. A size that rounds to zero lots or falls below
``min_trade_value`` (or the instrument's minimums) is a HOLD with a reason.

``capital`` is the strategy's allocation of the account equity (all of it when
there is a single strategy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import msgspec
import numpy as np

from tradepilot.core.time import NS_PER_HOUR
from tradepilot.model import fixed
from tradepilot.model.instrument import Instrument
from tradepilot.strategy.gates import HoldCode
from tradepilot.strategy.indicators import tail_count

METHODS = ("fixed_quantity", "fixed_notional", "percent_equity", "volatility", "kelly")
SCALE = fixed.SCALE


# -- statistics -------------------------------------------------------------------------------
def kelly_fraction(win_rate: float, avg_win: float, avg_loss: float) -> float:
    """Full Kelly fraction ``p - (1 - p) / b`` with ``b = avg_win / avg_loss`` (may be <= 0)."""
    if not 0.0 <= win_rate <= 1.0:
        raise ValueError(f"win rate must be in 0-1, got {win_rate}")
    if avg_win <= 0 or avg_loss <= 0:
        raise ValueError("average win and loss must be positive")
    b = avg_win / avg_loss
    return win_rate - (1.0 - win_rate) / b


def historical_cvar(returns: Sequence[float] | np.ndarray, alpha: float = 0.95) -> float:
    """Expected shortfall: the mean loss (positive) of the worst ``ceil((1-alpha) n)`` returns.

    Returns 0 when even the worst returns are gains. Raises on an empty sample.
    """
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    if n == 0:
        raise ValueError("CVaR needs at least one return")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    k = tail_count(n, alpha)
    worst = np.partition(r, k - 1)[:k]
    return max(0.0, -math.fsum(worst.tolist()) / k)


class ReturnSample(Protocol):
    """Historical returns as the sizers use them (a fixed sample or a rolling one)."""

    def __len__(self) -> int: ...

    def cvar(self, alpha: float) -> float: ...

    def std(self) -> float | None: ...


class Returns:
    """A fixed sample of returns."""

    __slots__ = ("values",)

    def __init__(self, values: Sequence[float] | np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.values)

    def cvar(self, alpha: float) -> float:
        return historical_cvar(self.values, alpha)

    def std(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if len(self.values) >= 2 else None


def qty_str(raw: int) -> str:
    """Exact decimal text of a raw quantity, without trailing zeros (fast, no Decimal)."""
    whole, frac = divmod(abs(raw), SCALE)
    text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".") if frac else str(whole)
    return f"-{text}" if raw < 0 else text


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Win rate and average win/loss (as fractions of the entry notional) of closed trades."""

    trades: int
    win_rate: float
    avg_win: float
    avg_loss: float

    @classmethod
    def from_returns(cls, returns: Sequence[float]) -> TradeStats:
        wins = [r for r in returns if r > 0]
        losses = [-r for r in returns if r <= 0]
        n = len(returns)
        return cls(
            n,
            len(wins) / n if n else 0.0,
            sum(wins) / len(wins) if wins else 0.0,
            sum(losses) / len(losses) if losses else 0.0,
        )


# -- configuration ------------------------------------------------------------------------------
def _raw_or_none(value: str | Decimal | int | float | None) -> int | None:
    return None if value is None else fixed.to_raw(value)


@dataclass(frozen=True)
class SizingConfig:
    method: str = "percent_equity"
    quantity: str = "0"  # fixed_quantity: base units
    notional: str = "0"  # fixed_notional: quote currency
    percent: float = 0.1  # percent_equity: fraction of capital (0.1 = 10 %)
    vol_method: str = "atr"  # volatility: "atr" | "realized"
    risk_per_trade: float = 0.01
    atr_multiple: float = 2.0
    target_vol: float = 0.01  # realized: per vol_horizon
    vol_horizon_ns: int = NS_PER_HOUR
    kelly_fraction: float = 0.25
    win_rate: float = 0.5
    avg_win: float = 0.02
    avg_loss: float = 0.01
    use_trade_history: bool = False
    min_trades: int = 20
    cvar_budget: float | None = 0.02
    cvar_alpha: float = 0.95
    cvar_horizon_ns: int = NS_PER_HOUR
    min_history: int = 30
    max_position: float | None = 0.5
    heat: float | None = 0.02
    min_trade_value: str | None = None
    max_trade_value: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown sizing method {self.method!r} (use {', '.join(METHODS)})")
        if self.vol_method not in ("atr", "realized"):
            raise ValueError("vol_method must be 'atr' or 'realized'")
        if self.method == "fixed_quantity" and fixed.to_raw(self.quantity) <= 0:
            raise ValueError("fixed_quantity sizing needs a positive quantity")
        if self.method == "fixed_notional" and fixed.to_raw(self.notional) <= 0:
            raise ValueError("fixed_notional sizing needs a positive notional")
        if self.method == "percent_equity" and not 0 < self.percent <= 1:
            raise ValueError("percent_equity sizing needs a percent in (0, 1]")
        for name in ("risk_per_trade", "atr_multiple", "target_vol", "kelly_fraction"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a positive number")
        if self.vol_horizon_ns <= 0 or self.cvar_horizon_ns <= 0:
            raise ValueError("horizons must be positive")
        kelly_fraction(self.win_rate, self.avg_win, self.avg_loss)  # validates
        if not 0 < self.cvar_alpha < 1:
            raise ValueError("cvar_alpha must be in (0, 1)")
        for name in ("cvar_budget", "max_position", "heat"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        lo, hi = _raw_or_none(self.min_trade_value), _raw_or_none(self.max_trade_value)
        if (lo is not None and lo < 0) or (hi is not None and hi <= 0):
            raise ValueError("trade values must be positive")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_trade_value is above max_trade_value")
        if self.min_history < 1 or self.min_trades < 1:
            raise ValueError("min_history and min_trades must be at least 1")

    @property
    def needs_returns(self) -> bool:
        return (self.method == "kelly" and self.cvar_budget is not None) or (
            self.method == "volatility" and self.vol_method == "realized"
        )

    @property
    def returns_horizon_ns(self) -> int:
        return self.cvar_horizon_ns if self.method == "kelly" else self.vol_horizon_ns


class SizingInputs(msgspec.Struct, frozen=True, kw_only=True):
    """What the sizer may look at (raw fixed-point unless noted)."""

    instrument: Instrument
    side: int  # +1 buy, -1 sell
    price: int  # reference price: the limit price or the last price
    capital: int  # the strategy's capital
    position_qty: int = 0  # the strategy's signed position in this instrument
    exposure: int = 0  # the strategy's gross exposure (all instruments) at last prices
    free_cash: int | None = None  # a cash account's free quote balance (None: no limit)
    stop_price: int | None = None
    atr: float | None = None  # price units (float)
    returns: ReturnSample | Sequence[float] | None = None  # over the configured horizon
    trade_stats: TradeStats | None = None
    requested_qty: int | None = None  # an explicit quantity from the signal


class SizeResult(msgspec.Struct, frozen=True):
    quantity: int  # raw, on the lot; 0 means HOLD
    code: str  # HoldCode when quantity is 0
    reason: str
    notional: int = 0

    @property
    def is_hold(self) -> bool:
        return self.quantity == 0


def _sample(returns: ReturnSample | Sequence[float] | None) -> ReturnSample | None:
    if returns is None or hasattr(returns, "cvar"):
        return returns  # type: ignore[return-value]
    return Returns(returns)


def _money(raw: int) -> str:
    return f"{raw / SCALE:.2f}"


def _hold(code: HoldCode, reason: str) -> SizeResult:
    return SizeResult(0, str(code), reason)


def _frac_raw(fraction: float) -> int:
    return round(fraction * SCALE)


_BPS = 10_000 * SCALE  # a fee rate in raw basis points is fee_bps / _BPS


def _cash_limit(cash: int, price: int, fee_bps: int) -> int:
    """The largest raw quantity whose notional plus fee fits in ``cash`` (rounded down;
    with a fee, one raw unit is kept back for the venue's rounding of it)."""
    spare = 1 if fee_bps else 0
    return (cash * _BPS - spare) * SCALE // (price * (_BPS + fee_bps))


def _qty_for(notional: int, price: int) -> int:
    return notional * SCALE // price if notional > 0 else 0


# -- the sizer ------------------------------------------------------------------------------------
class Sizer:
    """Applies a :class:`SizingConfig`: base size, limits, lot snapping, minimums.

    Money is compared in raw integers (notional = ``qty * price // SCALE``, rounded
    down); the reason strings show two decimals.
    """

    __slots__ = (
        "_base",
        "_full_kelly",
        "_heat",
        "_kelly_frac",
        "_max_pos",
        "_max_trade",
        "_min_trade",
        "_notional",
        "_percent",
        "_qty",
        "config",
    )

    def __init__(self, config: SizingConfig) -> None:
        self.config = config
        self._qty = fixed.to_raw(config.quantity)
        self._notional = fixed.to_raw(config.notional)
        self._percent = _frac_raw(config.percent)
        self._min_trade = _raw_or_none(config.min_trade_value)
        self._max_trade = _raw_or_none(config.max_trade_value)
        self._max_pos = None if config.max_position is None else _frac_raw(config.max_position)
        self._heat = None if config.heat is None else _frac_raw(config.heat)
        self._full_kelly = kelly_fraction(config.win_rate, config.avg_win, config.avg_loss)
        self._kelly_frac = config.kelly_fraction * self._full_kelly
        self._base = {
            "fixed_quantity": self._fixed_quantity,
            "fixed_notional": self._fixed_notional,
            "percent_equity": self._percent_equity,
            "volatility": self._volatility,
            "kelly": self._kelly,
        }[config.method]

    # -- base sizes ---------------------------------------------------------------------------
    def base_quantity(self, inp: SizingInputs) -> tuple[int, str] | SizeResult:
        """The method's quantity (raw, unsnapped) and how it was computed, or a HOLD."""
        if inp.requested_qty is not None:
            return inp.requested_qty, "quantity given by the signal"
        return self._base(inp)

    def _fixed_quantity(self, inp: SizingInputs) -> tuple[int, str]:
        return self._qty, "fixed quantity"

    def _fixed_notional(self, inp: SizingInputs) -> tuple[int, str]:
        return _qty_for(self._notional, inp.price), f"fixed notional {_money(self._notional)}"

    def _percent_equity(self, inp: SizingInputs) -> tuple[int, str]:
        cap = inp.capital
        notional = cap * self._percent // SCALE
        return (
            _qty_for(notional, inp.price),
            f"{self.config.percent:.2%} of capital {_money(cap)} = {_money(notional)}",
        )

    def _volatility(self, inp: SizingInputs) -> tuple[int, str] | SizeResult:
        cfg = self.config
        cap = inp.capital / SCALE
        if cfg.vol_method == "atr":
            atr = inp.atr
            if atr is None or not atr > 0:
                return _hold(HoldCode.NO_VOLATILITY, "ATR not available yet")
            qty = cap * cfg.risk_per_trade / (cfg.atr_multiple * atr)
            return (
                int(qty * SCALE),
                f"ATR {atr:.4f}: risk {cfg.risk_per_trade:.2%} of capital over "
                f"{cfg.atr_multiple:g} ATR",
            )
        r = _sample(inp.returns)
        if r is None or len(r) < max(2, cfg.min_history):
            n = 0 if r is None else len(r)
            return _hold(
                HoldCode.NO_VOLATILITY,
                f"realised volatility needs {max(2, cfg.min_history)} returns, have {n}",
            )
        sigma = r.std() or 0.0
        if not sigma > 0:
            return _hold(HoldCode.NO_VOLATILITY, "realised volatility is zero")
        notional = round(inp.capital * min(1.0, cfg.target_vol / sigma))
        return (
            _qty_for(notional, inp.price),
            f"vol target {cfg.target_vol:.2%} / realised {sigma:.2%} -> {_money(notional)}",
        )

    def _kelly(self, inp: SizingInputs) -> tuple[int, str] | SizeResult:
        cfg = self.config
        full, frac = self._full_kelly, self._kelly_frac
        source = ""
        stats = inp.trade_stats
        if (
            cfg.use_trade_history
            and stats is not None
            and stats.trades >= cfg.min_trades
            and stats.avg_win > 0
            and stats.avg_loss > 0
        ):
            full = kelly_fraction(stats.win_rate, stats.avg_win, stats.avg_loss)
            frac = cfg.kelly_fraction * full
            source = f" from {stats.trades} trades"
        if full <= 0:
            p, w, lo = (
                (stats.win_rate, stats.avg_win, stats.avg_loss)
                if source and stats is not None
                else (cfg.win_rate, cfg.avg_win, cfg.avg_loss)
            )
            return _hold(
                HoldCode.NO_EDGE,
                f"no edge: full Kelly {full:.2%} (win rate {p:.0%}, payoff {w / lo:.2f}{source})",
            )
        notional = round(inp.capital * frac)
        budget = cfg.cvar_budget
        if budget is None:
            return _qty_for(notional, inp.price), (
                f"Kelly {cfg.kelly_fraction:g} x {full:.4f}{source} = {frac:.4f} of capital"
            )
        r = _sample(inp.returns)
        n = 0 if r is None else len(r)
        if r is None or n < cfg.min_history:
            return _hold(
                HoldCode.CVAR_HISTORY, f"CVaR needs {cfg.min_history} historical returns, have {n}"
            )
        cvar = r.cvar(cfg.cvar_alpha)
        capped = ""
        if cvar > 0:
            cap = round(inp.capital * budget / cvar)
            if cap < notional:
                notional = cap
                capped = f" x budget {budget:g} caps it"
        return _qty_for(notional, inp.price), (
            f"Kelly {cfg.kelly_fraction:g} x {full:.4f}{source} = {frac:.4f} of capital; "
            f"CVaR {cvar:.5f}{capped}"
        )

    # -- entries -----------------------------------------------------------------------------
    def size(self, inp: SizingInputs) -> SizeResult:
        """Size an entry (or an addition): base size, then every limit, then lot and minimums."""
        px = inp.price
        if px <= 0:
            return _hold(HoldCode.NO_PRICE, "no price to size against")
        if inp.capital <= 0:
            return _hold(HoldCode.NO_CAPITAL, "the strategy has no capital")
        base = self.base_quantity(inp)
        if isinstance(base, SizeResult):
            return base
        qty, why = base
        steps = [why]
        qty, bound = self._limits(inp, qty, steps)
        if bound is not None:
            return bound
        return self._finish(inp.instrument, qty, px, steps)

    def _limits(
        self, inp: SizingInputs, qty: int, steps: list[str]
    ) -> tuple[int, SizeResult | None]:
        cfg = self.config
        px = inp.price
        cap = inp.capital
        max_pos = self._max_pos
        if max_pos is not None:
            held = inp.position_qty
            room = cap * max_pos // SCALE - (held if held >= 0 else -held) * px // SCALE
            if room <= 0:
                return 0, _hold(
                    HoldCode.NO_CAPITAL,
                    f"position already at the maximum {cfg.max_position:.0%} of capital",
                )
            limit = room * SCALE // px
            if limit < qty:
                qty = limit
                steps.append(f"max position {cfg.max_position:.0%} caps at {_money(room)}")
        heat = self._heat
        stop = inp.stop_price
        if heat is not None and stop is not None:
            risk_per_unit = px - stop if px > stop else stop - px
            if risk_per_unit > 0:
                budget = cap * heat // SCALE
                limit = budget * SCALE // risk_per_unit
                if limit < qty:
                    qty = limit
                    steps.append(
                        f"heat {cfg.heat:.1%}: {_money(budget)} at risk with the stop "
                        f"{_money(risk_per_unit)} away"
                    )
        room = cap - inp.exposure
        if room <= 0:
            return 0, _hold(
                HoldCode.NO_CAPITAL,
                f"capital {_money(cap)} is fully used (exposure {_money(inp.exposure)})",
            )
        limit = room * SCALE // px
        if limit < qty:
            qty = limit
            steps.append(f"unused capital {_money(room)}")
        cash = inp.free_cash
        if cash is not None and inp.side > 0:
            if cash <= 0:
                return 0, _hold(HoldCode.NO_CASH, "no free cash")
            inst = inp.instrument
            fee_bps = inst.taker_fee_bps
            if inst.maker_fee_bps > fee_bps:
                fee_bps = inst.maker_fee_bps
            limit = _cash_limit(cash, px, fee_bps)  # notional + fee <= cash
            if limit < qty:
                qty = limit
                steps.append(f"free cash {_money(cash)}")
        max_trade = self._max_trade
        if max_trade is not None:
            limit = max_trade * SCALE // px
            if limit < qty:
                qty = limit
                steps.append(f"max trade value {_money(max_trade)}")
        return qty, None

    def _finish(self, inst: Instrument, qty: int, px: int, steps: list[str]) -> SizeResult:
        lot = inst.lot_size
        snapped = qty - qty % lot if qty > 0 else 0
        if snapped <= 0:
            return _hold(
                HoldCode.SIZE_ZERO,
                f"size {qty_str(max(qty, 0))} rounds to zero lots of {qty_str(lot)} "
                f"({'; '.join(steps)})",
            )
        notional = snapped * px // SCALE
        min_trade = self._min_trade
        if min_trade is not None and notional < min_trade:
            return _hold(
                HoldCode.BELOW_MIN_TRADE,
                f"trade value {_money(notional)} < minimum {_money(min_trade)}",
            )
        if snapped < inst.min_qty:
            return _hold(
                HoldCode.BELOW_MIN_TRADE,
                f"quantity {qty_str(snapped)} < instrument minimum {qty_str(inst.min_qty)}",
            )
        if inst.min_notional and notional < inst.min_notional:
            return _hold(
                HoldCode.BELOW_MIN_TRADE,
                f"trade value {_money(notional)} < instrument minimum {_money(inst.min_notional)}",
            )
        steps.append(f"-> {qty_str(snapped)} ({_money(notional)})")
        return SizeResult(snapped, "", "; ".join(steps), notional)

    # -- targets ---------------------------------------------------------------------------------
    def size_target(
        self,
        inp: SizingInputs,
        target_qty: int,
        cash_account: bool,
        held_in_account: int | None = None,
    ) -> SizeResult:
        """The order that moves the position to ``target_qty`` (its side: ``+1`` if the
        target is above the position).

        Sells never exceed what is held (in a cash account, nor what the account
        owns); buys are limited by free cash and ``max_trade_value``; the heat limit
        applies to buys when there is a stop. The quantity of the result is unsigned.
        """
        px = inp.price
        if px <= 0:
            return _hold(HoldCode.NO_PRICE, "no price to size against")
        pos = inp.position_qty
        delta = target_qty - pos
        if delta == 0:
            return _hold(HoldCode.AT_TARGET, "position already at target")
        steps = [f"target {qty_str(target_qty)}, holding {qty_str(pos)}"]
        qty = abs(delta)
        if delta < 0 and cash_account:
            owned = pos if held_in_account is None else min(pos, held_in_account)
            if owned <= 0:
                return _hold(HoldCode.NOTHING_TO_SELL, "nothing to sell in a cash account")
            if qty > owned:
                qty = owned
                steps.append(f"never sell more than the {qty_str(owned)} owned")
        if delta > 0:
            if inp.free_cash is not None:
                inst = inp.instrument
                fee_bps = max(inst.taker_fee_bps, inst.maker_fee_bps)
                if inp.free_cash <= 0:
                    return _hold(HoldCode.NO_CASH, "no free cash")
                limit = _cash_limit(inp.free_cash, px, fee_bps)
                if limit < qty:
                    qty = limit
                    steps.append(f"free cash {_money(inp.free_cash)}")
            heat, stop = self._heat, inp.stop_price
            if heat is not None and stop is not None and px != stop:
                budget = inp.capital * heat // SCALE
                limit = budget * SCALE // abs(px - stop)
                if limit < qty:
                    qty = limit
                    steps.append(f"heat {self.config.heat:.1%}: {_money(budget)} at risk")
            if self._max_trade is not None:
                limit = self._max_trade * SCALE // px
                if limit < qty:
                    qty = limit
                    steps.append(f"max trade value {_money(self._max_trade)}")
        return self._finish(inp.instrument, qty, px, steps)
