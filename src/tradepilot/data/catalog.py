"""Data sets: the sample bundled with the package and the ones a user imported.

Imported data sets are copied into ``$TRADEPILOT_HOME/data`` (default
``~/.tradepilot/data``) together with a small JSON manifest that records their
kind, instrument and source, so ``tradepilot data list`` can show them and
``tradepilot backtest --data NAME`` can find them by name.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import pyarrow.csv as pcsv

from tradepilot.data.loaders import (
    BarSeries,
    DataError,
    TradeSeries,
    load_bars,
    load_trades,
    symbol_rows,
)
from tradepilot.model.enums import AssetClass
from tradepilot.model.instrument import Instrument

DEFAULT_DATASET = "btcusdt-1m-sample"


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "bars" | "trades"
    path: str
    symbol: str
    venue: str
    base: str
    quote: str
    tick_size: str
    lot_size: str
    min_notional: str = "0"
    maker_fee_bps: str = "10"
    taker_fee_bps: str = "10"
    asset_class: str = "CRYPTO"
    description: str = ""
    bundled: bool = False

    def instrument(self, fee_bps: str | None = None) -> Instrument:
        return Instrument.create(
            symbol=self.symbol,
            venue=self.venue,
            base=self.base,
            quote=self.quote,
            tick_size=self.tick_size,
            lot_size=self.lot_size,
            min_qty=self.lot_size,
            min_notional=self.min_notional,
            maker_fee_bps=fee_bps if fee_bps is not None else self.maker_fee_bps,
            taker_fee_bps=fee_bps if fee_bps is not None else self.taker_fee_bps,
            asset_class=AssetClass(self.asset_class),
        )

    def load_bars(self, instrument_id: str) -> BarSeries:
        return load_bars(self.path, instrument_id)

    def load_trades(self, instrument_id: str) -> TradeSeries:
        return load_trades(self.path, instrument_id)


def _bundled_dir() -> Path:
    return Path(str(resources.files("tradepilot.data") / "bundled"))


def home() -> Path:
    return Path(os.environ.get("TRADEPILOT_HOME", Path.home() / ".tradepilot"))


def bundled() -> list[Dataset]:
    folder = _bundled_dir()
    return [
        Dataset(
            name=DEFAULT_DATASET,
            kind="bars",
            path=str(folder / "binance_spot_btcusdt_1m_20210514_20210520.csv.gz"),
            symbol="BTCUSDT",
            venue="SIM",
            base="BTC",
            quote="USDT",
            tick_size="0.01",
            lot_size="0.00001",
            min_notional="5",
            description="Binance spot BTC/USDT 1-minute candles, 2021-05-14 to 2021-05-20 "
            "(includes the 19 May crash), 9,881 bars",
            bundled=True,
        )
    ]


def imported() -> list[Dataset]:
    folder = home() / "data"
    out = []
    for manifest in sorted(folder.glob("*.json")):
        try:
            out.append(Dataset(**json.loads(manifest.read_text())))
        except (TypeError, ValueError, OSError) as exc:  # JSON, encoding, keys, a folder
            raise DataError(
                f"{manifest}: unreadable manifest ({exc}); move it away to list the others"
            ) from None
    return out


def all_datasets() -> list[Dataset]:
    return bundled() + imported()


def find(name_or_path: str) -> Dataset:
    for ds in all_datasets():
        if ds.name == name_or_path:
            return ds
    path = Path(name_or_path)
    if path.exists():
        return Dataset(
            name=path.name,
            kind="bars",
            path=str(path),
            symbol="BTCUSDT",
            venue="SIM",
            base="BTC",
            quote="USDT",
            tick_size="0.01",
            lot_size="0.00001",
        )
    names = ", ".join(d.name for d in all_datasets())
    raise DataError(f"no data set or file named {name_or_path!r} (known: {names})")


#: Asset classes ``data import`` accepts, and ``auto``: an equity when the symbol is its
#: own base (``SPY``/``SPY``/``USD``), else crypto (``BTCUSDT``/``BTC``/``USDT``).
ASSET_CLASSES = ("auto", *(a.value.lower() for a in AssetClass))


def import_file(
    path: str | Path,
    name: str,
    kind: str,
    symbol: str | None = None,
    base: str | None = None,
    quote: str | None = None,
    tick_size: str = "0.01",
    lot_size: str | None = None,
    venue: str = "SIM",
    series_symbol: str | None = None,
    asset_class: str = "auto",
) -> Dataset:
    """Validate a file by loading it, then copy it into the data folder with a manifest.

    With ``series_symbol`` only that symbol's rows are kept (written as CSV), and the
    instrument defaults to it: ``--series-symbol SPY`` is the equity SPY quoted in USD,
    traded in whole shares. An existing data set of the same name is not overwritten.
    """
    src = Path(path)
    if kind not in ("bars", "trades"):
        raise DataError("kind must be 'bars' or 'trades'")
    if asset_class.lower() not in ASSET_CLASSES:
        raise DataError(f"asset class must be one of {', '.join(ASSET_CLASSES)}")
    if not name or Path(name).name != name or name.startswith("."):
        raise DataError(f"data set name {name!r} must be a plain file name")
    if any(ds.name == name for ds in all_datasets()):
        raise DataError(f"a data set named {name!r} exists already; choose another name")
    picked = series_symbol is not None and symbol is None
    symbol = symbol or series_symbol or "BTCUSDT"
    base = base or (symbol if picked else "BTC")
    if asset_class.lower() == "auto":
        cls = AssetClass.EQUITY if symbol == base else AssetClass.CRYPTO
    else:
        cls = AssetClass(asset_class.upper())
    equity = cls is AssetClass.EQUITY
    quote = quote or ("USD" if equity else "USDT")
    lot_size = lot_size or ("1" if equity else "0.00001")
    try:  # the instrument must be valid before anything is stored, not at backtest time
        Instrument.create(symbol, venue, base, quote, tick_size, lot_size, asset_class=cls)
    except ValueError as exc:
        raise DataError(f"--tick-size {tick_size!r} / --lot-size {lot_size!r}: {exc}") from None
    iid = f"{symbol}.{venue}"
    loaded = (
        load_bars(src, iid, symbol=series_symbol)
        if kind == "bars"
        else load_trades(src, iid, symbol=series_symbol)
    )
    folder = home() / "data"
    folder.mkdir(parents=True, exist_ok=True)
    rows = None
    if series_symbol is not None:
        try:
            rows = symbol_rows(src, series_symbol)
        except DataError:
            rows = None  # a single-symbol file: nothing to pick, keep it whole
    if rows is not None:
        dest = folder / f"{name}.csv"
        pcsv.write_csv(rows, str(dest))
        origin = f"the {series_symbol} rows of {src.name}"
    else:
        dest = folder / f"{name}{''.join(src.suffixes)}"
        shutil.copyfile(src, dest)
        origin = src.name
    ds = Dataset(
        name=name,
        kind=kind,
        path=str(dest),
        symbol=symbol,
        venue=venue,
        base=base,
        quote=quote,
        tick_size=tick_size,
        lot_size=lot_size,
        asset_class=cls.value,
        description=f"imported from {origin}, {len(loaded):,} rows",
    )
    (folder / f"{name}.json").write_text(json.dumps(asdict(ds), indent=2))
    return ds
