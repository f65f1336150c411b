"""Alerts: notifications of what happens in a session, to a webhook or a Telegram chat.

:class:`AlertFollower` follows a session's journal (like the event stream, so it works
beside a running engine or in another process) and turns events into alerts:

* ``fill`` - an order filled (``OrderFilled``);
* ``denial`` - the risk engine denied an order or a modification;
* ``breaker`` - the circuit breaker halted trading;
* ``emergency_stop`` - an operator flatten / emergency stop;
* ``stale_data`` - market data stopped (``DataStale`` events, when a feed reports them);
* ``session_end`` - the session stopped (``SessionStopped``).

Each notifier has its own queue and thread and retries with exponential backoff; a
notifier that is down or slow delays only itself and never the engine (which does not
even know it exists) nor the other notifiers. Secrets (the Telegram token) never
appear in logs or in the notifier's ``repr``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from tradepilot.api.source import SessionView

logger = logging.getLogger("tradepilot.alerts")

ALERT_KINDS = ("fill", "denial", "breaker", "emergency_stop", "stale_data", "session_end")


@dataclass(frozen=True)
class Alert:
    kind: str
    seq: int
    ts: int
    title: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seq": self.seq,
            "ts": self.ts,
            "title": self.title,
            **self.details,
        }

    def text(self) -> str:
        return f"tradepilot · {self.title}"


def alert_for(event: Mapping[str, Any]) -> Alert | None:
    """The alert an event raises, if any (``event`` as the journal queries return it)."""
    kind = event.get("type")
    seq, ts = int(event.get("seq", 0)), int(event.get("ts", 0))
    if kind == "OrderFilled":
        side = "BUY" if event.get("side") == 1 else "SELL"
        title = (
            f"fill {side} {event.get('last_qty')} {event.get('instrument_id')} "
            f"@ {event.get('last_px')} ({event.get('client_order_id')})"
        )
        return Alert("fill", seq, ts, title, {"event": dict(event)})
    if kind in ("OrderDenied", "OrderModifyDenied"):
        title = (
            f"denied {event.get('client_order_id')}: {event.get('code')} - {event.get('reason')}"
        )
        return Alert("denial", seq, ts, title, {"event": dict(event)})
    if kind == "TradingStateChanged":
        reason = str(event.get("reason", ""))
        if event.get("state") == "HALTED" and reason.startswith("circuit breaker"):
            return Alert("breaker", seq, ts, f"trading halted: {reason}", {"event": dict(event)})
        return None
    if kind == "OperatorCommand" and event.get("command") == "flatten":
        title = f"emergency stop: {event.get('reason') or 'by the operator'}"
        return Alert("emergency_stop", seq, ts, title, {"event": dict(event)})
    if kind == "DataStale":
        return Alert(
            "stale_data",
            seq,
            ts,
            f"market data stale: {event.get('reason', '')}",
            {"event": dict(event)},
        )
    if kind == "SessionStopped":
        return Alert(
            "session_end",
            seq,
            ts,
            f"session ended: {event.get('reason', '')}",
            {"event": dict(event)},
        )
    return None


@dataclass
class Delivery:
    """What became of the alerts sent through one notifier (for tests and metrics)."""

    sent: int = 0
    failed: int = 0
    attempts: int = 0
    last_error: str = ""


class Notifier:
    """Sends alerts from its own queue and thread, with retries and backoff."""

    name = "notifier"

    def __init__(
        self,
        kinds: Iterable[str] = ALERT_KINDS,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_queue: int = 10_000,
    ) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(ALERT_KINDS)
        if unknown:
            raise ValueError(f"unknown alert kinds {sorted(unknown)}; use {', '.join(ALERT_KINDS)}")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.delivery = Delivery()
        self.posted = 0
        self._queue: queue.Queue[Alert | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name=f"alerts-{self.name}", daemon=True)
        self._client = httpx.Client(timeout=timeout_s)
        self._thread.start()

    def post(self, alert: Alert) -> None:
        if alert.kind not in self.kinds:
            return
        self.posted += 1
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.delivery.failed += 1
            logger.warning("%s: alert queue full, alert %s dropped", self.name, alert.seq)

    def send(self, alert: Alert) -> None:
        """Deliver one alert; raise on failure (the caller retries)."""
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            for attempt in range(self.retries + 1):
                self.delivery.attempts += 1
                try:
                    self.send(alert)
                    self.delivery.sent += 1
                    break
                except (httpx.HTTPError, ValueError) as exc:
                    self.delivery.last_error = type(exc).__name__
                    if attempt == self.retries:
                        self.delivery.failed += 1
                        logger.warning(
                            "%s: alert %s not delivered after %d attempts (%s)",
                            self.name,
                            alert.seq,
                            attempt + 1,
                            type(exc).__name__,
                        )
                    else:
                        time.sleep(self.backoff_s * 2**attempt)

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every alert posted so far was sent or given up; True if in time."""
        deadline = time.monotonic() + timeout_s
        while self.delivery.sent + self.delivery.failed < self.posted:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=self.timeout_s * (self.retries + 2))
        self._client.close()


class WebhookNotifier(Notifier):
    """POSTs each alert as JSON to a URL; any 2xx is success."""

    name = "webhook"

    def __init__(self, url: str, **kwargs: Any) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the webhook URL must be http(s): {url!r}")
        self.url = url
        super().__init__(**kwargs)

    def send(self, alert: Alert) -> None:
        self._client.post(self.url, json=alert.to_json()).raise_for_status()


class TelegramNotifier(Notifier):
    """Sends each alert as a message through the Telegram Bot API (``sendMessage``)."""

    name = "telegram"

    def __init__(
        self, token: str, chat_id: str, base_url: str = "https://api.telegram.org", **kwargs: Any
    ) -> None:
        if not token or not chat_id:
            raise ValueError("telegram alerts need a bot token and a chat id")
        self._token = token
        self.chat_id = chat_id
        self.base_url = base_url.rstrip("/")
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"TelegramNotifier(chat_id={self.chat_id!r}, token=***)"

    def send(self, alert: Alert) -> None:
        res = self._client.post(
            f"{self.base_url}/bot{self._token}/sendMessage",
            json={"chat_id": self.chat_id, "text": alert.text(), "disable_web_page_preview": True},
        )
        res.raise_for_status()
        if not res.json().get("ok", False):
            raise ValueError("telegram answered ok=false")


@dataclass
class AlertFollower:
    """Follows a journal and hands each alert to every notifier."""

    view: SessionView
    notifiers: list[Notifier]
    after_seq: int = 0
    poll_s: float = 0.5
    on_alert: Callable[[Alert], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def poll(self) -> int:
        """Read the new events once; return how many alerts they raised."""
        raised = 0
        while True:
            rows = self.view.rows_after(self.after_seq, None, 1000)
            for row in rows:
                self.after_seq = row["seq"]
                alert = alert_for(row)
                if alert is None:
                    continue
                raised += 1
                if self.on_alert is not None:
                    self.on_alert(alert)
                for notifier in self.notifiers:
                    notifier.post(alert)
            if len(rows) < 1000:
                return raised

    def start(self) -> AlertFollower:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.poll()
                except Exception:  # a bad read must not end the alerts for good
                    logger.exception("alerts: reading the journal failed; retrying")
                self._stop.wait(self.poll_s)

        self._thread = threading.Thread(target=loop, name="alerts-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for notifier in self.notifiers:
            notifier.close()


def notifiers_from_config(config: Mapping[str, Any], env: Mapping[str, str]) -> list[Notifier]:
    """Notifiers from an ``alerts:`` mapping (YAML), secrets from the environment.

    ``{"webhook": {"url": ..., "events": [...]}, "telegram": {"token_env": "NAME",
    "chat_id": ..., "events": [...]}}``; ``events`` defaults to every kind.
    """
    out: list[Notifier] = []
    unknown = set(config) - {"webhook", "telegram"}
    if unknown:
        raise ValueError(f"unknown alert channels {sorted(unknown)}; use webhook, telegram")
    common = ("events", "timeout_s", "retries")
    hook = config.get("webhook")
    if hook is not None:
        if not isinstance(hook, Mapping) or not isinstance(hook.get("url"), str):
            raise ValueError("alerts.webhook needs a url")
        out.append(WebhookNotifier(hook["url"], **_options(hook, common)))
    tg = config.get("telegram")
    if tg is not None:
        if not isinstance(tg, Mapping):
            raise ValueError("alerts.telegram must be a mapping")
        token_env = str(tg.get("token_env", "TRADEPILOT_TELEGRAM_TOKEN"))
        token = env.get(token_env, "")
        if not token:
            raise ValueError(
                f"alerts.telegram: the bot token is read from ${token_env}, which is empty"
            )
        base = str(tg.get("base_url", "https://api.telegram.org"))
        out.append(
            TelegramNotifier(token, str(tg.get("chat_id", "")), base, **_options(tg, common))
        )
    return out


def _options(section: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for name in names:
        if name not in section:
            continue
        value = section[name]
        if name == "events":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("alerts: events must be a list of alert kinds")
            opts["kinds"] = value
        elif name == "timeout_s":
            if not isinstance(value, int | float) or not 0 < value <= 60:
                raise ValueError("alerts: timeout_s must be a number in (0, 60]")
            opts["timeout_s"] = float(value)
        elif name == "retries":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
                raise ValueError("alerts: retries must be an integer from 0 to 10")
            opts["retries"] = value
    return opts


def describe(notifiers: Iterable[Notifier]) -> str:
    return json.dumps([{"channel": n.name, "events": sorted(n.kinds)} for n in notifiers])
