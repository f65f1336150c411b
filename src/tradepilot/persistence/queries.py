"""Read-only queries over a journal: what the REST service serves.

:class:`JournalQueries` restores a :class:`~tradepilot.persistence.projection.StateProjection`
once (latest snapshot + tail, see :func:`~tradepilot.persistence.snapshots.restore`)
and keeps it current with :meth:`JournalQueries.refresh`, which folds only the rows
written since the last call (every query refreshes first unless
``auto_refresh=False``). Results are plain ``dict``/``list`` values ready for JSON:
prices, quantities and money as decimal strings (:func:`tradepilot.model.fixed.to_str`),
times as ints (ns since the epoch, UTC), sides as ``"BUY"``/``"SELL"``.

Both journal backends give the same results for the same events. Calls are
serialised by a lock, so one instance can serve several threads.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from tradepilot.model import fixed
from tradepilot.model.enums import AccountType, OrderStatus
from tradepilot.model.events import AnyEvent
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.model.position import Position
from tradepilot.persistence.integrity import ClosingContext
from tradepilot.persistence.journal import PersistentJournal, _open_existing
from tradepilot.persistence.projection import FillRecord, ParentOrderRecord, StateProjection
from tradepilot.persistence.snapshots import restore

__all__ = [
    "JournalQueries",
    "fill_to_dict",
    "order_to_dict",
    "parent_to_dict",
    "position_to_dict",
]

#: Pseudo statuses accepted by :meth:`JournalQueries.orders`.
OPEN = "OPEN"
CLOSED = "CLOSED"

#: Event fields holding raw fixed-point values (converted by ``events(human=True)``).
_FIXED_FIELDS = frozenset(
    {
        "quantity",
        "price",
        "trigger_price",
        "last_qty",
        "last_px",
        "fee",
        "filled_qty",
        "remaining_qty",
        "avg_px",
        "arrival_px",
    }
)
_decoder = msgspec.json.Decoder(AnyEvent)
_SIDE = {1: "BUY", -1: "SELL"}


def _s(raw: int | None) -> str | None:
    return None if raw is None else fixed.to_str(raw)


def order_to_dict(order: Order) -> dict[str, Any]:
    avg = order.avg_px
    return {
        "client_order_id": order.client_order_id,
        "venue_order_id": order.venue_order_id,
        "instrument_id": order.instrument_id,
        "strategy_id": order.strategy_id,
        "parent_id": order.parent_id,
        "side": order.side.name,
        "order_type": order.order_type.value,
        "time_in_force": order.time_in_force.value,
        "quantity": fixed.to_str(order.quantity),
        "price": _s(order.price),
        "trigger_price": _s(order.trigger_price),
        "status": order.status.value,
        "is_open": not order.status.is_closed,
        "filled_qty": fixed.to_str(order.filled_qty),
        "leaves_qty": fixed.to_str(order.leaves_qty),
        "avg_px": _s(avg),
        "fees": fixed.to_str(order.fees),
        "triggered": order.triggered,
        "post_only": order.post_only,
        "reduce_only": order.reduce_only,
        "expire_ts": order.expire_ts,
        "tags": order.tags,
        "ts_init": order.ts_init,
        "ts_last": order.ts_last,
    }


def fill_to_dict(fill: FillRecord) -> dict[str, Any]:
    return {
        "seq": fill.seq,
        "ts": fill.ts,
        "client_order_id": fill.client_order_id,
        "trade_id": fill.trade_id,
        "instrument_id": fill.instrument_id,
        "strategy_id": fill.strategy_id,
        "side": _SIDE.get(fill.side, str(fill.side)),
        "quantity": fixed.to_str(fill.qty),
        "price": fixed.to_str(fill.px),
        "notional": fixed.to_str(fixed.mul(fill.px, fill.qty)),
        "fee": fixed.to_str(fill.fee),
        "fee_currency": fill.fee_currency,
        "liquidity": fill.liquidity,
    }


def position_to_dict(pos: Position) -> dict[str, Any]:
    return {
        "instrument_id": pos.instrument_id,
        "side": pos.side,
        "quantity": fixed.to_str(pos.qty),
        "avg_px": _s(pos.avg_px),
        "cost": fixed.to_str(pos.cost),
        "realized_pnl": fixed.to_str(pos.realized_pnl),
        "fees": fixed.to_str(pos.fees),
        "trade_count": pos.trade_count,
        "last_px": fixed.to_str(pos.last_px),
        "opened_ts": pos.opened_ts,
        "ts_last": pos.ts_last,
    }


def parent_to_dict(parent: ParentOrderRecord) -> dict[str, Any]:
    return {
        "parent_id": parent.parent_id,
        "instrument_id": parent.instrument_id,
        "strategy_id": parent.strategy_id,
        "side": _SIDE.get(parent.side, str(parent.side)),
        "quantity": fixed.to_str(parent.quantity),
        "algorithm": parent.algorithm,
        "params": parent.params,
        "urgency": parent.urgency,
        "arrival_px": _s(parent.arrival_px),
        "state": parent.state,
        "filled_qty": fixed.to_str(parent.filled_qty),
        "remaining_qty": fixed.to_str(parent.remaining_qty),
        "avg_px": _s(parent.avg_px),
        "reason": parent.reason,
        "ts_start": parent.ts_start,
        "ts_last": parent.ts_last,
    }


def _statuses(status: str | OrderStatus | Iterable[str | OrderStatus]) -> set[OrderStatus]:
    """The statuses a filter names (a status, ``OPEN``, ``CLOSED`` or a collection of them)."""
    names = [status] if isinstance(status, str) else list(status)
    wanted: set[OrderStatus] = set()
    for name in names:
        key = str(name).upper()
        if key == OPEN:
            wanted.update(s for s in OrderStatus if not s.is_closed)
        elif key == CLOSED:
            wanted.update(s for s in OrderStatus if s.is_closed)
        else:
            try:
                wanted.add(OrderStatus(key))
            except ValueError:
                known = ", ".join([*(s.value for s in OrderStatus), OPEN, CLOSED])
                raise ValueError(f"unknown order status {name!r} (known: {known})") from None
    return wanted


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")


class JournalQueries(ClosingContext):
    """Queries over one journal session, from a projection kept up to date incrementally.

    ``instruments``, ``base_currency``, ``starting_balances`` and ``account_type`` are
    needed only when the session's ``SessionStarted`` cannot provide them and no
    snapshot exists (see :func:`~tradepilot.persistence.snapshots.restore`).
    ``own_journal`` closes ``journal`` with :meth:`close`.
    """

    def __init__(
        self,
        journal: PersistentJournal,
        instruments: Mapping[str, Instrument] | Iterable[Instrument] | None = None,
        base_currency: str | None = None,
        starting_balances: Mapping[str, int] | None = None,
        account_type: AccountType | None = None,
        *,
        use_snapshot: bool = True,
        auto_refresh: bool = True,
        own_journal: bool = False,
    ) -> None:
        self.journal = journal
        self.auto_refresh = auto_refresh
        self._own_journal = own_journal
        self._lock = threading.RLock()
        self._projection = restore(
            journal,
            instruments,
            base_currency,
            starting_balances,
            account_type,
            use_snapshot=use_snapshot,
        )

    @classmethod
    def open(
        cls,
        url_or_path: str | Path,
        session: str | None = None,
        instruments: Mapping[str, Instrument] | Iterable[Instrument] | None = None,
        base_currency: str | None = None,
        starting_balances: Mapping[str, int] | None = None,
        account_type: AccountType | None = None,
        *,
        use_snapshot: bool = True,
        auto_refresh: bool = True,
    ) -> JournalQueries:
        """Open an existing journal (a SQLite file's own session by default) for queries."""
        journal = _open_existing(url_or_path, session)
        try:
            return cls(
                journal,
                instruments,
                base_currency,
                starting_balances,
                account_type,
                use_snapshot=use_snapshot,
                auto_refresh=auto_refresh,
                own_journal=True,
            )
        except BaseException:
            journal.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        if self._own_journal:
            self.journal.close()

    def refresh(self) -> int:
        """Fold the rows written since the last refresh; return how many there were."""
        with self._lock:
            projection = self._projection
            return projection.fold_rows(self.journal.rows(after_seq=projection.last_seq))

    @property
    def projection(self) -> StateProjection:
        """The projection behind the queries (refreshed by the queries, not by reading it)."""
        return self._projection

    def _current(self) -> StateProjection:
        if self.auto_refresh:
            self.refresh()
        return self._projection

    # -- queries -------------------------------------------------------------------------------
    def orders(
        self,
        status: str | OrderStatus | Iterable[str | OrderStatus] | None = None,
        instrument: str | None = None,
        strategy: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Orders in creation order (``newest_first`` reverses it), filtered.

        ``status``: a status name, ``"OPEN"`` (not closed), ``"CLOSED"``, or several
        of them; ``since``/``until``: creation time ``since <= ts_init < until`` (ns);
        ``limit``: at most that many (after filtering and ordering).
        """
        _check_limit(limit)
        wanted = _statuses(status) if status is not None else None
        with self._lock:
            proj = self._current()
            source = proj.orders
            if wanted is not None and not any(s.is_closed for s in wanted):
                source = proj.open_orders
            orders: Iterable[Order] = source.values()
            if newest_first:
                orders = reversed(source.values())
            out: list[dict[str, Any]] = []
            if limit == 0:
                return out
            for order in orders:
                if wanted is not None and order.status not in wanted:
                    continue
                if instrument is not None and order.instrument_id != instrument:
                    continue
                if strategy is not None and order.strategy_id != strategy:
                    continue
                if since is not None and order.ts_init < since:
                    continue
                if until is not None and order.ts_init >= until:
                    continue
                out.append(order_to_dict(order))
                if limit is not None and len(out) >= limit:
                    break
            return out

    def order(self, client_order_id: str) -> dict[str, Any] | None:
        """One order by client order id, or ``None``."""
        with self._lock:
            order = self._current().orders.get(client_order_id)
            return None if order is None else order_to_dict(order)

    def fills(
        self,
        instrument: str | None = None,
        strategy: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        client_order_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Fills in journal order, filtered (``since <= ts < until``, ns)."""
        _check_limit(limit)
        with self._lock:
            fills = self._current().fills
            out: list[dict[str, Any]] = []
            if limit == 0:
                return out
            for fill in fills:
                if instrument is not None and fill.instrument_id != instrument:
                    continue
                if strategy is not None and fill.strategy_id != strategy:
                    continue
                if client_order_id is not None and fill.client_order_id != client_order_id:
                    continue
                if since is not None and fill.ts < since:
                    continue
                if until is not None and fill.ts >= until:
                    continue
                out.append(fill_to_dict(fill))
                if limit is not None and len(out) >= limit:
                    break
            return out

    def positions(self, include_flat: bool = True) -> list[dict[str, Any]]:
        """Positions by instrument id (flat ones too unless ``include_flat=False``)."""
        with self._lock:
            positions = self._current().positions
            return [
                position_to_dict(positions[iid])
                for iid in sorted(positions)
                if include_flat or positions[iid].qty
            ]

    def balances(self) -> dict[str, dict[str, str]]:
        """``{currency: {"total", "locked", "free"}}``; ``locked`` is derived from the
        open orders (see :meth:`StateProjection.locked`)."""
        with self._lock:
            return {
                ccy: {
                    "total": fixed.to_str(total),
                    "locked": fixed.to_str(locked),
                    "free": fixed.to_str(total - locked),
                }
                for ccy, (total, locked) in self._current().balances().items()
            }

    def parent_orders(self, state: str | None = None) -> list[dict[str, Any]]:
        """Parent orders of execution algorithms (``state``: RUNNING, DONE, ...)."""
        with self._lock:
            return [
                parent_to_dict(p)
                for p in self._current().parents.values()
                if state is None or p.state == state.upper()
            ]

    def events(
        self,
        kinds: Collection[str] | None = None,
        since_seq: int = 0,
        limit: int | None = None,
        human: bool = False,
    ) -> list[dict[str, Any]]:
        """Journal events with ``seq > since_seq``, in order, as dicts with ``seq``.

        Read from the journal itself (not the projection). Each dict holds ``seq`` and
        the event's fields with its kind under ``type``; values are as journaled (raw
        fixed-point ints) unless ``human`` converts them to decimal strings. A payload
        this code cannot decode comes back as ``{"seq", "ts", "type", "raw"}``.
        """
        _check_limit(limit)
        out: list[dict[str, Any]] = []
        if limit == 0:
            return out
        with self._lock:
            for seq, ts, kind, payload in self.journal.rows(
                after_seq=since_seq, kinds=kinds, limit=limit
            ):
                try:
                    event = _decoder.decode(payload)
                except msgspec.MsgspecError:
                    raw = payload.decode("utf-8", "replace")
                    out.append({"seq": seq, "ts": ts, "type": kind, "raw": raw})
                    continue
                item: dict[str, Any] = {"seq": seq, **msgspec.to_builtins(event)}
                if human:
                    for key in _FIXED_FIELDS.intersection(item):
                        value = item[key]
                        if isinstance(value, int):
                            item[key] = fixed.to_str(value)
                out.append(item)
        return out

    def status(self) -> dict[str, Any]:
        """The cheap part of :meth:`summary` (no pass over every order): what a status
        line or a dashboard polls often."""
        with self._lock:
            proj = self._current()
            session, state = proj.session, proj.trading_state
            return {
                "session": None
                if session is None
                else {
                    "mode": session.mode,
                    "started_ts": session.ts,
                    "stopped_ts": session.stopped_ts,
                    "stop_reason": session.stop_reason,
                    "config": session.config,
                },
                "last_seq": proj.last_seq,
                "last_ts": proj.last_ts,
                "orders": len(proj.orders),
                "open_orders": len(proj.open_orders),
                "fills": proj.fill_count,
                "open_positions": sum(1 for pos in proj.positions.values() if pos.qty),
                "realized_pnl": fixed.to_str(proj.realized_pnl()),
                "fees": {
                    ccy: fixed.to_str(amount)
                    for ccy, amount in sorted(proj.fees_by_currency.items())
                },
                "trading_state": None
                if state is None
                else {
                    "state": state.state,
                    "reason": state.reason,
                    "until_ns": state.until_ns,
                    "source": state.source,
                    "ts": state.ts,
                },
            }

    def summary(self) -> dict[str, Any]:
        """Counts and totals of the session: orders by status, fills, fees, realised PnL."""
        with self._lock:
            proj = self._current()
            session = proj.session
            parents: dict[str, int] = {}
            for parent in proj.parents.values():
                parents[parent.state] = parents.get(parent.state, 0) + 1
            state = proj.trading_state
            recon = proj.reconciliation
            by_instrument = {
                iid: fixed.to_str(proj.positions[iid].realized_pnl)
                for iid in sorted(proj.positions)
            }
            return {
                "session": None
                if session is None
                else {
                    "mode": session.mode,
                    "started_ts": session.ts,
                    "stopped_ts": session.stopped_ts,
                    "stop_reason": session.stop_reason,
                    "config": session.config,
                },
                "last_seq": proj.last_seq,
                "last_ts": proj.last_ts,
                "events": proj.events_applied,
                "events_by_kind": dict(sorted(proj.kind_counts.items())),
                "orders": len(proj.orders),
                "open_orders": len(proj.open_orders),
                "orders_by_status": proj.orders_by_status(),
                "fills": proj.fill_count,
                "traded_notional": fixed.to_str(proj.traded_notional),
                "fees": {
                    ccy: fixed.to_str(amount)
                    for ccy, amount in sorted(proj.fees_by_currency.items())
                },
                "realized_pnl": fixed.to_str(proj.realized_pnl()),
                "realized_pnl_by_instrument": by_instrument,
                "open_positions": sum(1 for pos in proj.positions.values() if pos.qty),
                "parent_orders": dict(sorted(parents.items())),
                "trading_state": None
                if state is None
                else {
                    "state": state.state,
                    "reason": state.reason,
                    "until_ns": state.until_ns,
                    "source": state.source,
                    "ts": state.ts,
                },
                "reconciliations": proj.reconciliations,
                "last_reconciliation": None
                if recon is None
                else {"ts": recon.ts, "corrections": recon.corrections, "details": recon.details},
                "unknown_events": dict(sorted(proj.unknown_kinds.items())),
                "anomalies": dict(sorted(proj.anomalies.items())),
            }
