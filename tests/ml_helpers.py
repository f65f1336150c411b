"""Shared data for the machine-learning tests: real BTC/USDT candles, a slice at a time."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from tradepilot.data.loaders import load_bars
from tradepilot.strategy.ml.dataset import BarArrays

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BTC = SHARED / "candles" / "binance_spot_btcusdt_1m_20210420_20210520.csv.gz"


@cache
def btc_bars() -> BarArrays:
    """All 42,915 Binance spot BTC/USDT one-minute bars (2021-04-20 .. 2021-05-20)."""
    if not BTC.exists():
        raise FileNotFoundError(f"the shared real data is missing: {BTC}")
    return BarArrays.from_series(load_bars(BTC, "BTCUSDT.SIM"))


def btc_slice(start: int, stop: int) -> BarArrays:
    return btc_bars().select(slice(start, stop))
