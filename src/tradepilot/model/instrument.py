"""Tradable instruments and the snapping of prices and quantities to their increments."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradepilot.model import fixed
from tradepilot.model.enums import AssetClass


class InvalidInput(ValueError):
    """Input that the engine refuses, with a reason a user can act on."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument at one venue.

    Increments, minimums and fee rates are raw fixed-point ints; fee rates are in
    basis points (10 bps = 0.1 %). ``id`` is ``SYMBOL.VENUE``.
    """

    symbol: str
    venue: str
    base: str
    quote: str
    tick_size: int
    lot_size: int
    min_qty: int = 0
    min_notional: int = 0
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0
    asset_class: AssetClass = AssetClass.CRYPTO
    id: str = field(init=False, compare=False, repr=False)  # SYMBOL.VENUE, computed once

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.symbol}.{self.venue}")
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise InvalidInput(f"{self.symbol}: tick and lot size must be positive")
        if self.min_qty < 0 or self.min_notional < 0:
            raise InvalidInput(f"{self.symbol}: minimums cannot be negative")

    @classmethod
    def create(
        cls,
        symbol: str,
        venue: str,
        base: str,
        quote: str,
        tick_size: str | Decimal,
        lot_size: str | Decimal,
        min_qty: str | Decimal = "0",
        min_notional: str | Decimal = "0",
        maker_fee_bps: str | Decimal = "0",
        taker_fee_bps: str | Decimal = "0",
        asset_class: AssetClass = AssetClass.CRYPTO,
    ) -> Instrument:
        """Build an instrument from human-readable decimal values."""
        return cls(
            symbol=symbol,
            venue=venue,
            base=base,
            quote=quote,
            tick_size=fixed.to_raw(tick_size),
            lot_size=fixed.to_raw(lot_size),
            min_qty=fixed.to_raw(min_qty),
            min_notional=fixed.to_raw(min_notional),
            maker_fee_bps=fixed.to_raw(maker_fee_bps),
            taker_fee_bps=fixed.to_raw(taker_fee_bps),
            asset_class=asset_class,
        )

    # -- boundary conversion -------------------------------------------------
    def price(self, value: int | float | str | Decimal) -> int:
        """A user price snapped to the nearest tick; refuses NaN, zero and negatives."""
        raw = fixed.to_raw(value) if not isinstance(value, int) else value * fixed.SCALE
        return self.snap_price(raw)

    def quantity(self, value: int | float | str | Decimal) -> int:
        """A user quantity floored to the lot size; refuses zero, negatives and sub-lot sizes."""
        raw = fixed.to_raw(value) if not isinstance(value, int) else value * fixed.SCALE
        return self.snap_qty(raw)

    def snap_price(self, raw: int) -> int:
        if raw <= 0:
            raise InvalidInput(f"{self.id}: price must be positive, got {fixed.to_str(raw)}")
        tick = self.tick_size
        q, r = divmod(raw, tick)
        if 2 * r >= tick:
            q += 1
        return q * tick

    def snap_qty(self, raw: int) -> int:
        if raw <= 0:
            raise InvalidInput(f"{self.id}: quantity must be positive, got {fixed.to_str(raw)}")
        snapped = raw - raw % self.lot_size
        if snapped == 0:
            raise InvalidInput(
                f"{self.id}: quantity {fixed.to_str(raw)} is below the lot size "
                f"{fixed.to_str(self.lot_size)}"
            )
        return snapped

    def is_on_tick(self, raw_price: int) -> bool:
        return raw_price > 0 and raw_price % self.tick_size == 0

    def is_on_lot(self, raw_qty: int) -> bool:
        return raw_qty > 0 and raw_qty % self.lot_size == 0

    def notional(self, price: int, qty: int) -> int:
        return fixed.mul(price, qty)

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "venue": self.venue,
            "base": self.base,
            "quote": self.quote,
            "tick_size": fixed.to_str(self.tick_size),
            "lot_size": fixed.to_str(self.lot_size),
            "min_qty": fixed.to_str(self.min_qty),
            "min_notional": fixed.to_str(self.min_notional),
            "maker_fee_bps": fixed.to_str(self.maker_fee_bps),
            "taker_fee_bps": fixed.to_str(self.taker_fee_bps),
            "asset_class": self.asset_class.value,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Instrument:
        return cls.create(
            symbol=d["symbol"],
            venue=d["venue"],
            base=d["base"],
            quote=d["quote"],
            tick_size=str(d["tick_size"]),
            lot_size=str(d["lot_size"]),
            min_qty=str(d.get("min_qty", "0")),
            min_notional=str(d.get("min_notional", "0")),
            maker_fee_bps=str(d.get("maker_fee_bps", "0")),
            taker_fee_bps=str(d.get("taker_fee_bps", "0")),
            asset_class=AssetClass(d.get("asset_class", "CRYPTO")),
        )
