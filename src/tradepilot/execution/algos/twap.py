"""``twap``: equal shares of the parent over equal slices of time (see ``scheduled``)."""

from __future__ import annotations

from dataclasses import dataclass

from tradepilot.execution.algos.scheduled import ScheduledAlgo, ScheduleParams


@dataclass(frozen=True, kw_only=True)
class TwapParams(ScheduleParams):
    """All the options of :class:`~tradepilot.execution.algos.scheduled.ScheduleParams`."""


class TwapAlgo(ScheduledAlgo[TwapParams]):
    name = "twap"
    params_type = TwapParams
