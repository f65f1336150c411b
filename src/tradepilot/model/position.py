"""Netting positions with exact average price and realised PnL."""

from __future__ import annotations

from tradepilot.model import fixed


class Position:
    """One instrument's net position, folded from fills.

    ``cost`` is the signed notional still held (positive long, negative short), so
    the average entry price is ``cost / qty`` exactly and closing a whole position
    realises ``exit notional - cost`` without any rounding. Only a partial close
    rounds its share of the cost (half-even, nine decimals); the remainder stays in
    ``cost``, so the total PnL of a round trip is always exact.
    """

    __slots__ = (
        "cost",
        "fees",
        "instrument_id",
        "last_px",
        "opened_ts",
        "qty",
        "realized_pnl",
        "trade_count",
        "ts_last",
    )

    def __init__(self, instrument_id: str) -> None:
        self.instrument_id = instrument_id
        self.qty = 0
        self.cost = 0
        self.realized_pnl = 0
        self.fees = 0
        self.opened_ts: int | None = None
        self.ts_last = 0
        self.last_px = 0
        self.trade_count = 0

    @property
    def side(self) -> str:
        return "LONG" if self.qty > 0 else "SHORT" if self.qty < 0 else "FLAT"

    @property
    def is_flat(self) -> bool:
        return self.qty == 0

    @property
    def avg_px(self) -> int | None:
        return fixed.div(self.cost, self.qty) if self.qty else None

    def unrealized_pnl(self, mark: int) -> int:
        return fixed.mul(mark, self.qty) - self.cost

    def apply_fill(self, side: int, qty: int, px: int, fee: int, ts: int) -> int:
        """Apply one fill; return the PnL it realised (before fees)."""
        self.fees += fee
        self.ts_last = ts
        self.last_px = px
        self.trade_count += 1
        signed = qty if side > 0 else -qty
        held = self.qty
        if held == 0 or (held > 0) == (signed > 0):
            if held == 0:
                self.opened_ts = ts
            self.qty = held + signed
            self.cost += fixed.mul(px, signed)
            return 0
        close_qty = min(qty, abs(held))
        portion = (
            self.cost
            if close_qty == abs(held)
            else fixed.div(fixed.mul(self.cost, close_qty), abs(held))
        )
        direction = 1 if held > 0 else -1
        realized = direction * fixed.mul(px, close_qty) - portion
        self.realized_pnl += realized
        self.cost -= portion
        self.qty = held + (close_qty if signed > 0 else -close_qty)
        rest = qty - close_qty
        if self.qty == 0:
            self.cost = 0
            self.opened_ts = None
        if rest:
            # the fill flipped the position: open the other side with what is left
            self.qty = rest if signed > 0 else -rest
            self.cost = fixed.mul(px, self.qty)
            self.opened_ts = ts
        return realized

    def to_dict(self, mark: int | None = None) -> dict[str, object]:
        avg = self.avg_px
        return {
            "instrument_id": self.instrument_id,
            "side": self.side,
            "quantity": fixed.to_str(self.qty),
            "avg_px": fixed.to_str(avg) if avg is not None else None,
            "realized_pnl": fixed.to_str(self.realized_pnl),
            "unrealized_pnl": fixed.to_str(self.unrealized_pnl(mark)) if mark else None,
            "fees": fixed.to_str(self.fees),
        }
