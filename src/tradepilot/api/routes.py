"""The REST endpoints: session, orders, fills, positions, balances, equity, performance,
execution quality, risk, and operator actions. Every route needs a key (see :mod:`auth`)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query

from tradepilot.api.auth import Authenticator
from tradepilot.api.models import (
    Balance,
    Equity,
    EquityPoint,
    OperatorOutcome,
    OperatorRequest,
    Order,
    Page,
    Position,
    Status,
)
from tradepilot.api.problems import problem_responses
from tradepilot.api.source import SessionView
from tradepilot.core.time import NS_PER_HOUR, NS_PER_MINUTE
from tradepilot.model.enums import OrderStatus

MAX_LIMIT = 1000
MAX_SEQ = 2**62  # beyond any journal, inside SQLite and PostgreSQL integers
OPERATOR_ACTIONS = ("halt", "reduce-only", "resume", "reset-breaker", "flatten")


class CommandRecord(Protocol):
    status: str
    result: str


class Control(Protocol):
    """The running session's operator mailbox (see ``persistence/control.py``)."""

    def send(self, command: str, reason: str = "") -> int: ...

    def get(self, command_id: int) -> CommandRecord | None: ...


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="Items to skip.")]
TimeNs = Annotated[int | None, Query(ge=0, le=2**62, description="ns since the epoch, UTC.")]


def _page(items: list[dict[str, Any]], offset: int, limit: int) -> Page:
    chunk = items[offset : offset + limit]
    nxt = offset + limit if offset + limit < len(items) else None
    return Page(items=chunk, offset=offset, limit=limit, total=len(items), next_offset=nxt)


_STATUSES = {s.value for s in OrderStatus} | {"OPEN", "CLOSED"}


def build_router(
    view: SessionView,
    auth: Authenticator,
    control: Control | None,
    command_wait_s: float = 5.0,
) -> APIRouter:
    read = [Depends(auth.require("read"))]
    admin = [Depends(auth.require("admin"))]
    api = APIRouter(prefix="/api/v1", responses=problem_responses(401, 403, 422, 429))

    @api.get("/status", response_model=Status, dependencies=read, tags=["session"])
    def status() -> Status:
        """The session: mode, configuration, whether it is still running, counts."""
        s = view.queries.status()
        session = s["session"]
        return Status(
            source=view.source,
            read_only=control is None,
            running=session is not None and session["stopped_ts"] is None,
            session=session,
            last_seq=s["last_seq"],
            last_ts=s["last_ts"],
            orders=s["orders"],
            open_orders=s["open_orders"],
            fills=s["fills"],
            open_positions=s["open_positions"],
            trading_state=s["trading_state"],
            realized_pnl=s["realized_pnl"],
            fees=s["fees"],
        )

    @api.get("/summary", dependencies=read, tags=["session"])
    def summary() -> dict[str, Any]:
        """Counts and totals: orders by status, events by kind, anomalies, reconciliations."""
        return view.queries.summary()

    @api.get("/orders", response_model=Page, dependencies=read, tags=["orders"])
    def orders(
        limit: Limit = 100,
        offset: Offset = 0,
        status: Annotated[str | None, Query(description="A status, OPEN or CLOSED.")] = None,
        strategy: str | None = None,
        instrument: str | None = None,
        since: TimeNs = None,
        until: TimeNs = None,
        newest_first: bool = False,
    ) -> Page:
        """Orders, filtered by status, strategy, instrument and creation time."""
        if status is not None and status.upper() not in _STATUSES:
            raise HTTPException(422, f"unknown status {status!r}; use one of {sorted(_STATUSES)}")
        items = view.queries.orders(
            status=status.upper() if status else None,
            instrument=instrument,
            strategy=strategy,
            since=since,
            until=until,
            newest_first=newest_first,
        )
        return _page(items, offset, limit)

    @api.get(
        "/orders/{client_order_id}",
        response_model=Order,
        dependencies=read,
        tags=["orders"],
        responses=problem_responses(404),
    )
    def order(client_order_id: str) -> dict[str, Any]:
        """One order by its client order id (or its venue order id)."""
        found = view.queries.order(client_order_id)
        if found is None:
            for item in view.queries.orders():
                if item["venue_order_id"] == client_order_id:
                    return item
            raise HTTPException(404, f"no order {client_order_id!r} in this session")
        return found

    @api.get("/fills", response_model=Page, dependencies=read, tags=["orders"])
    def fills(
        limit: Limit = 100,
        offset: Offset = 0,
        strategy: str | None = None,
        instrument: str | None = None,
        client_order_id: str | None = None,
        since: TimeNs = None,
        until: TimeNs = None,
    ) -> Page:
        """Fills (trades of this session), in journal order."""
        items = view.queries.fills(
            instrument=instrument,
            strategy=strategy,
            since=since,
            until=until,
            client_order_id=client_order_id,
        )
        return _page(items, offset, limit)

    @api.get("/parent-orders", dependencies=read, tags=["orders"])
    def parent_orders(state: str | None = None) -> list[dict[str, Any]]:
        """Parent orders of execution algorithms and their progress."""
        return view.queries.parent_orders(state)

    @api.get("/positions", response_model=list[Position], dependencies=read, tags=["portfolio"])
    def positions(include_flat: bool = False) -> list[dict[str, Any]]:
        return view.queries.positions(include_flat=include_flat)

    @api.get("/balances", response_model=dict[str, Balance], dependencies=read, tags=["portfolio"])
    def balances() -> dict[str, dict[str, str]]:
        return view.queries.balances()

    @api.get("/equity", response_model=Equity, dependencies=read, tags=["performance"])
    def equity(max_points: Annotated[int, Query(ge=2, le=20000)] = 2000) -> Equity:
        """Equity and drawdown, rebuilt from the fills and marked with the run's prices."""
        curve = view.equity()
        n = curve.ts.size
        step = max(1, -(-n // max_points))
        idx = list(range(0, n, step))
        if n and idx[-1] != n - 1:
            idx.append(n - 1)
        return Equity(
            start_cash=curve.start_cash,
            drawdown_is_fraction=curve.drawdown_is_fraction,
            points=[
                EquityPoint(
                    ts=int(curve.ts[i]),
                    equity=float(curve.equity[i]),
                    drawdown=float(curve.drawdown[i]),
                )
                for i in idx
            ],
        )

    @api.get("/performance", dependencies=read, tags=["performance"])
    def performance(
        sampling: Annotated[str, Query(pattern="^(1m|5m|15m|1h|1d)$")] = "1h",
    ) -> dict[str, Any]:
        """Return, volatility, Sharpe, Sortino, drawdown of the equity sampled as stated."""
        ns = {"1m": NS_PER_MINUTE, "5m": 5 * NS_PER_MINUTE, "15m": 15 * NS_PER_MINUTE}
        ns |= {"1h": NS_PER_HOUR, "1d": 24 * NS_PER_HOUR}
        return view.performance(ns[sampling])

    @api.get("/execution", dependencies=read, tags=["performance"])
    def execution(
        group: Annotated[str, Query(pattern="^(algorithm|strategy|instrument|all)$")] = "algorithm",
    ) -> list[dict[str, Any]]:
        """Execution quality (slippage, shortfall, participation, markouts) per group."""
        return view.execution(group)

    @api.get("/risk", dependencies=read, tags=["risk"])
    def risk(denials: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = 50) -> dict[str, Any]:
        """Trading state, the configured limits and the most recent denials."""
        s = view.queries.summary()
        config = (s["session"] or {}).get("config") or ""
        return {
            "trading_state": s["trading_state"],
            "configuration": config,
            "recent_denials": view.denials(denials),
            "denials_by_kind": {
                k: v
                for k, v in s["events_by_kind"].items()
                if k in ("OrderDenied", "OrderModifyDenied")
            },
        }

    @api.get("/signals", response_model=Page, dependencies=read, tags=["signals"])
    def signals(limit: Limit = 100, offset: Offset = 0) -> Page:
        """Signals received and what became of each (accepted, held, rejected, expired)."""
        kinds = (
            "SignalReceived",
            "SignalAccepted",
            "SignalHeld",
            "SignalRejected",
            "SignalExpired",
        )
        return _page(view.queries.events(kinds=kinds, human=True), offset, limit)

    @api.get("/events", response_model=Page, dependencies=read, tags=["session"])
    def events(
        after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        kinds: Annotated[str | None, Query(description="Comma-separated event kinds.")] = None,
        limit: Limit = 100,
    ) -> Page:
        """Journal events after a sequence number."""
        wanted = [k for k in kinds.split(",") if k] if kinds else None
        items = view.rows_after(after_seq, wanted, limit)
        nxt = items[-1]["seq"] if len(items) == limit else None
        return Page(items=items, offset=after_seq, limit=limit, total=len(items), next_offset=nxt)

    @api.post(
        "/operator/{action}",
        response_model=OperatorOutcome,
        dependencies=admin,
        tags=["operator"],
        responses=problem_responses(404, 409),
    )
    def operator(action: str, body: OperatorRequest | None = None) -> OperatorOutcome:
        """Halt, reduce-only, resume, reset the circuit breaker, or flatten (emergency stop).

        The command goes to the running session's mailbox, is applied between two data
        items, journaled, and survives a restart. The answer waits briefly for the outcome.
        """
        if action not in OPERATOR_ACTIONS:
            raise HTTPException(404, f"unknown action {action!r}; use one of {OPERATOR_ACTIONS}")
        if control is None:
            raise HTTPException(409, "this service serves a finished journal: it is read-only")
        reason = (body.reason if body else "") or "operator via API"
        command_id = control.send(action, reason)
        deadline = time.monotonic() + command_wait_s
        row = control.get(command_id)
        while row is not None and row.status == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
            row = control.get(command_id)
        state = row.status if row is not None else "pending"
        return OperatorOutcome(
            command_id=command_id,
            action=action,
            status=state if state in ("applied", "refused") else "pending",  # type: ignore[arg-type]
            result=row.result if row is not None else "",
        )

    return api
