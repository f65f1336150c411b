"""Logs: one JSON object per line with the bound context; readable text on a terminal."""

from __future__ import annotations

import io
import json
import logging

from tradepilot.app.logs import bind, clear, configure_logging


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_the_session_and_order_context() -> None:
    out = io.StringIO()
    configure_logging("auto", logging.INFO, out)  # not a terminal: JSON
    try:
        bind(session="paper-1", strategy="momentum", order=None)
        logging.getLogger("tradepilot.alerts").warning("alert %s not delivered", 17)
        record = json.loads(out.getvalue().strip().splitlines()[-1])
        assert record["event"] == "alert 17 not delivered"
        assert record["level"] == "warning" and record["logger"] == "tradepilot.alerts"
        assert record["session"] == "paper-1" and record["strategy"] == "momentum"
        assert "order" not in record and record["timestamp"].endswith("Z")
    finally:
        clear()
        configure_logging("console", logging.WARNING, io.StringIO())


def test_console_format_on_a_terminal_is_not_json() -> None:
    out = _Tty()
    configure_logging("auto", logging.INFO, out)
    try:
        logging.getLogger("tradepilot.persistence").warning("journal tail discarded")
        line = out.getvalue().strip().splitlines()[-1]
        assert "journal tail discarded" in line and not line.startswith("{")
    finally:
        configure_logging("console", logging.WARNING, io.StringIO())
