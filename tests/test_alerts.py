"""Alerts delivered to local HTTP servers standing in for a webhook and Telegram's Bot API,
including one that never answers in time; one slow notifier delays nobody else."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

from api_helpers import backtest_journal
from tradepilot.api.alerts import (
    AlertFollower,
    TelegramNotifier,
    WebhookNotifier,
    alert_for,
    notifiers_from_config,
)
from tradepilot.api.source import SessionView
from tradepilot.model.events import (
    OrderDenied,
    OrderFilled,
    SessionStopped,
    TradingStateChanged,
)
from tradepilot.persistence.queries import JournalQueries


class Receiver:
    """A local HTTP endpoint that records JSON posts; ``delay_s`` makes it too slow."""

    def __init__(self, delay_s: float = 0.0, status: int = 200, telegram: bool = False) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if delay_s:
                    time.sleep(delay_s)
                outer.posts.append((self.path, body))
                reply = json.dumps({"ok": True} if telegram else {}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as the slow endpoint intends

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receivers() -> Iterator[tuple[Receiver, Receiver, Receiver]]:
    hook, telegram, slow = Receiver(), Receiver(telegram=True), Receiver(delay_s=3.0)
    try:
        yield hook, telegram, slow
    finally:
        for r in (hook, telegram, slow):
            r.close()


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backtest_journal(tmp_path_factory.mktemp("alerts") / "bt.db")


def _as_row(event: Any, seq: int = 1) -> dict[str, Any]:
    return {"seq": seq, **msgspec.to_builtins(event)}


def test_events_map_to_alert_kinds() -> None:
    denied = OrderDenied(5, "S-1", "MAX_ORDER_QTY", "1.5 > 0.5")
    breaker = TradingStateChanged(6, "HALTED", "circuit breaker: drawdown 12 % > 10 %")
    manual = TradingStateChanged(7, "HALTED", "operator", None, "manual")
    stopped = SessionStopped(8, "end of data")
    assert alert_for(_as_row(denied)).kind == "denial"  # type: ignore[union-attr]
    assert "MAX_ORDER_QTY" in alert_for(_as_row(denied)).title  # type: ignore[union-attr]
    assert alert_for(_as_row(breaker)).kind == "breaker"  # type: ignore[union-attr]
    assert alert_for(_as_row(manual)) is None
    assert alert_for(_as_row(stopped)).kind == "session_end"  # type: ignore[union-attr]
    flatten = {"seq": 9, "ts": 9, "type": "OperatorCommand", "command": "flatten", "reason": "x"}
    assert alert_for(flatten).kind == "emergency_stop"  # type: ignore[union-attr]
    assert alert_for({"seq": 1, "ts": 1, "type": "OrderAccepted"}) is None


def test_alerts_reach_webhook_and_telegram_and_a_slow_endpoint_delays_nobody(
    journal: Path, receivers: tuple[Receiver, Receiver, Receiver]
) -> None:
    hook, telegram, slow = receivers
    with JournalQueries.open(journal) as q:
        fills = q.summary()["fills"]
    assert fills > 5
    token = "123456:SECRET-token"
    notifiers = [
        WebhookNotifier(hook.url + "/hook", kinds=["fill", "session_end"]),
        TelegramNotifier(token, "42", base_url=telegram.url, kinds=["session_end"]),
        WebhookNotifier(
            slow.url + "/slow", kinds=["session_end"], timeout_s=0.3, retries=2, backoff_s=0.05
        ),
    ]
    view = SessionView.open(journal)
    follower = AlertFollower(view, notifiers)
    started = time.monotonic()
    raised = follower.poll()
    assert raised == fills + 1
    assert notifiers[0].drain(20) and notifiers[1].drain(20)
    fast_done = time.monotonic() - started
    assert len(hook.posts) == fills + 1
    assert [b["kind"] for _, b in hook.posts].count("fill") == fills
    assert hook.posts[-1][1]["kind"] == "session_end"
    ((path, body),) = telegram.posts
    assert path == f"/bot{token}/sendMessage" and body["chat_id"] == "42"
    assert "session ended" in body["text"]
    # the slow endpoint: three attempts (1 + 2 retries), each timing out, then given up
    assert notifiers[2].drain(20)
    assert notifiers[2].delivery.failed == 1 and notifiers[2].delivery.attempts == 3
    assert notifiers[2].delivery.last_error == "ReadTimeout"
    assert fast_done < 3.0, "the slow notifier held up the others"
    assert token not in repr(notifiers[1])
    follower.stop()
    view.close()


def test_a_failing_endpoint_is_retried_then_given_up(journal: Path) -> None:
    broken = Receiver(status=500)
    try:
        notifier = WebhookNotifier(broken.url, kinds=["session_end"], retries=2, backoff_s=0.01)
        view = SessionView.open(journal)
        AlertFollower(view, [notifier]).poll()
        assert notifier.drain(10)
        assert notifier.delivery.failed == 1 and len(broken.posts) == 3
        notifier.close()
        view.close()
    finally:
        broken.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sms": {}}, "unknown alert channels"),
        ({"webhook": {}}, "needs a url"),
        ({"webhook": {"url": "ftp://x"}}, "http(s)"),
        ({"webhook": {"url": "http://127.0.0.1:9", "events": ["fills"]}}, "unknown alert kinds"),
        ({"webhook": {"url": "http://127.0.0.1:9", "timeout_s": 0}}, "timeout_s"),
        ({"webhook": {"url": "http://127.0.0.1:9", "retries": 99}}, "retries"),
        ({"telegram": {"chat_id": "1"}}, "is empty"),
    ],
)
def test_bad_alert_configuration_is_a_clear_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        notifiers_from_config(config, {})


def test_telegram_token_comes_from_the_environment() -> None:
    (n,) = notifiers_from_config({"telegram": {"chat_id": "7", "token_env": "TG"}}, {"TG": "1:abc"})
    assert isinstance(n, TelegramNotifier) and "1:abc" not in repr(n)
    n.close()


_ = OrderFilled  # the fill alerts above come from real OrderFilled events of the backtest
