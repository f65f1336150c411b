"""Exchange filters: what a real venue refuses beyond the instrument's increments.

The instrument carries the tick and lot sizes, the minimum quantity and the minimum
notional. :class:`ExchangeFilters` adds the venue-wide rules a real exchange enforces
per symbol: a maximum order rate, a maximum number of open orders and a percent-price
band around the last price. Each refusal is an ``OrderRejected`` whose reason names the
filter as the exchange does (``Filter failure: NOTIONAL``, ``Too many new orders``...).

:meth:`ExchangeFilters.binance_spot` holds Binance spot's values for BTCUSDT (its
exchange-information filters and order rate limit); the default has no limits, so
hand-made test venues behave as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradepilot.core.time import NS_PER_SECOND
from tradepilot.model import fixed

__all__ = ["BINANCE_SPOT_MIN_NOTIONAL", "ExchangeFilters"]

#: Binance spot's minimum order value for USDT pairs such as BTCUSDT (``NOTIONAL`` filter).
BINANCE_SPOT_MIN_NOTIONAL = "5"


@dataclass(frozen=True, slots=True)
class ExchangeFilters:
    """Per-symbol limits of a venue (None: no limit).

    * ``max_orders`` new orders per ``rate_window_ns`` (Binance: 50 per 10 s);
    * ``max_open_orders`` working at once (Binance ``MAX_NUM_ORDERS``: 200);
    * ``price_up`` / ``price_down``: a limit or stop price must lie within
      ``[price_down, price_up] x`` the last price (Binance ``PERCENT_PRICE_BY_SIDE``
      for BTCUSDT: 0.2 and 5; Binance uses a 5-minute average price, this venue the last).
    """

    max_orders: int | None = None
    rate_window_ns: int = 10 * NS_PER_SECOND
    max_open_orders: int | None = None
    price_up: float | None = None
    price_down: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_orders", "max_open_orders"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or None: no limit)")
        if self.rate_window_ns <= 0:
            raise ValueError("rate_window_ns must be positive")
        up, down = self.price_up, self.price_down
        if up is not None and not up > 1:  # also refuses NaN
            raise ValueError("price_up must be above 1")
        if down is not None and not 0 < down < 1:
            raise ValueError("price_down must be in (0, 1)")

    @classmethod
    def binance_spot(cls) -> ExchangeFilters:
        """Binance spot's limits for BTCUSDT."""
        return cls(max_orders=50, max_open_orders=200, price_up=5.0, price_down=0.2)

    def price_refusal(self, price: int, last: int | None) -> str | None:
        """Why ``price`` falls outside the percent-price band around ``last``, if it does."""
        if last is None or last <= 0:
            return None
        if self.price_up is not None and price > last * self.price_up:
            return (
                f"Filter failure: PERCENT_PRICE_BY_SIDE: price {fixed.to_str(price)} above "
                f"{self.price_up:g} x the last price {fixed.to_str(last)}"
            )
        if self.price_down is not None and price < last * self.price_down:
            return (
                f"Filter failure: PERCENT_PRICE_BY_SIDE: price {fixed.to_str(price)} below "
                f"{self.price_down:g} x the last price {fixed.to_str(last)}"
            )
        return None
