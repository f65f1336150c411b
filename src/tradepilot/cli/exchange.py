"""``tradepilot exchange serve``: run the local exchange in the foreground.

    tradepilot exchange serve --dialect binance \\
        --data ../shared/data/book/binance_spot_btcusdt_20240808 --speed 1 --port 8765
    tradepilot exchange serve --dialect alpaca \\
        --data ../shared/data/equities/lean_us_equity_minute_trade_bars.csv.gz --symbols SPY,IBM

Accounts come from ``--accounts FILE`` (YAML) or the environment
(``TP_EXCHANGE_API_KEY``/``TP_EXCHANGE_API_SECRET``). API keys are printed at
start; secrets never are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from tradepilot.venues.exchange.replay import ReplayData

__all__ = ["exchange_app"]

exchange_app = typer.Typer(
    help="A local exchange speaking Binance's or Alpaca's API over replayed real data.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def load_data(dialect: str, data: list[str], symbols: str, day: str | None) -> ReplayData:
    """Market data for a dialect: Binance L2 session folders, or a bars file for Alpaca."""
    from tradepilot.venues.exchange.replay import load_bar_data, load_book_data

    if dialect == "binance":
        return load_book_data([Path(d) for d in data])
    if len(data) != 1:
        raise ValueError("the alpaca dialect replays one bars file (--data FILE)")
    names = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    if not names:
        raise ValueError("--symbols is required for the alpaca dialect")
    return load_bar_data(data[0], names, day=day, history_days=5)


@exchange_app.command("serve")
def serve(
    data: Annotated[
        list[str], typer.Option("--data", "-d", help="Session folder(s) or a bars file.")
    ],
    dialect: Annotated[str, typer.Option(help="binance or alpaca.")] = "binance",
    speed: Annotated[float, typer.Option(help="Replay speed (x wall clock).")] = 1.0,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    faults: Annotated[str | None, typer.Option(help="Fault profile (YAML).")] = None,
    accounts: Annotated[str | None, typer.Option(help="Accounts file (YAML).")] = None,
    symbols: Annotated[str, typer.Option(help="Alpaca: symbols of the bars file.")] = "SPY",
    day: Annotated[str | None, typer.Option(help="Alpaca: the day to replay.")] = None,
    skip: Annotated[float, typer.Option(help="Seconds of data to skip at the start.")] = 0.0,
) -> None:
    """Serve the exchange until interrupted."""
    # imported here: the server stack is not loaded for every other command
    from aiohttp import web

    from tradepilot.venues.exchange.accounts import load_accounts
    from tradepilot.venues.exchange.core import ExchangeCore
    from tradepilot.venues.exchange.faults import FaultInjector, load_profile
    from tradepilot.venues.exchange.server import ExchangeServer

    if dialect not in ("binance", "alpaca"):
        _fail("--dialect must be binance or alpaca")
    try:
        specs = load_accounts(accounts)
        replay = load_data(dialect, data, symbols, day)
        profile = load_profile(faults) if faults else None
    except (OSError, ValueError) as exc:
        _fail(str(exc))
        return
    core = ExchangeCore(
        replay,
        specs,
        speed=speed,
        clock_mode="wall" if dialect == "binance" else "replay",
        skip_ns=int(skip * 1e9),
    )
    server = ExchangeServer(core, dialect, FaultInjector(profile))
    console.print(
        f"[bold]{dialect}[/] exchange on http://{host}:{port} "
        f"({', '.join(i.symbol for i in replay.instruments)}, {len(replay.events)} items, "
        f"speed {speed}x)"
    )
    for spec in specs:
        console.print(f"  account [cyan]{spec.name}[/] api key {spec.api_key}")
    web.run_app(server.app(), host=host, port=port, print=None, access_log=None)


def register(app: typer.Typer) -> None:
    """Add ``exchange`` to ``app``."""
    app.add_typer(exchange_app, name="exchange")
