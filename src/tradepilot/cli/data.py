"""``tradepilot data list|import``: the bundled and imported market data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tradepilot.cli.output import console, fail
from tradepilot.data import catalog
from tradepilot.data.loaders import DataError

data_app = typer.Typer(help="List and import market data sets.", no_args_is_help=True)


@data_app.command("list")
def data_list() -> None:
    """Show the bundled and imported data sets."""
    table = Table(title="data sets")
    for col in ("name", "kind", "instrument", "source", "description"):
        table.add_column(col)
    try:
        datasets = catalog.all_datasets()
    except DataError as exc:
        fail(str(exc))
    for ds in datasets:
        table.add_row(
            ds.name,
            ds.kind,
            f"{ds.symbol}.{ds.venue}",
            "bundled" if ds.bundled else "imported",
            ds.description,
        )
    console.print(table)


@data_app.command("import")
def data_import(
    path: Annotated[Path, typer.Argument(help="CSV/Parquet/JSON file to import.")],
    name: Annotated[str, typer.Option(help="Name to give the data set.")],
    kind: Annotated[str, typer.Option(help="bars | trades")] = "bars",
    symbol: Annotated[
        str | None,
        typer.Option(help="Instrument symbol (default: --series-symbol, else BTCUSDT)."),
    ] = None,
    base: Annotated[
        str | None, typer.Option(help="Base currency (default: the symbol of an equity, BTC).")
    ] = None,
    quote: Annotated[
        str | None, typer.Option(help="Quote currency (default: USD for equities, USDT).")
    ] = None,
    tick_size: Annotated[str, typer.Option(help="Price increment.")] = "0.01",
    lot_size: Annotated[
        str | None,
        typer.Option(help="Quantity increment (default: 1 share for equities, 0.00001)."),
    ] = None,
    series_symbol: Annotated[
        str | None,
        typer.Option(help="Keep only this symbol's rows of a multi-symbol file (e.g. SPY)."),
    ] = None,
    asset_class: Annotated[
        str,
        typer.Option(
            help="auto | crypto | equity | fx | future (auto: equity when the symbol is its "
            "own base, e.g. SPY)."
        ),
    ] = "auto",
) -> None:
    """Validate a file and add it to the local data sets."""
    try:
        ds = catalog.import_file(
            path,
            name,
            kind,
            symbol,
            base,
            quote,
            tick_size,
            lot_size,
            series_symbol=series_symbol,
            asset_class=asset_class,
        )
    except (ValueError, DataError, OSError) as exc:
        fail(str(exc))
        return
    console.print(
        f"imported {ds.name}: {ds.symbol} ({ds.asset_class.lower()}, {ds.base}/{ds.quote}), "
        f"{ds.description}"
    )


def register(app: typer.Typer) -> None:
    """Add ``data`` to ``app``."""
    app.add_typer(data_app, name="data")
