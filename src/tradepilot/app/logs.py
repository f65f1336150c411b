"""Logging: structured JSON lines for machines, a readable format on a terminal.

Every ``logging`` record of tradepilot (and of the libraries it uses) goes through
structlog's formatter, so one line holds the message, level, logger, time and the
context bound with :func:`bind` (session, strategy, order ids). ``auto`` writes JSON
when standard error is not a terminal (a service, a container, CI) and colours
otherwise. Log time is wall-clock time: logs describe the process, not the market.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]
_HANDLER_NAME = "tradepilot"


def configure_logging(
    fmt: LogFormat = "auto", level: int | str = logging.INFO, stream: TextIO | None = None
) -> None:
    """Route the root logger through structlog; idempotent (replaces its own handler)."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != _HANDLER_NAME]
    root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def bind(**context: str | int | None) -> None:
    """Add context (``session=``, ``strategy=``, ``order=``) to every following log line."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items() if v is not None})


def clear() -> None:
    structlog.contextvars.clear_contextvars()
