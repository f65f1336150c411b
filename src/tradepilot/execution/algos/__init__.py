"""Execution algorithms and their registry (see ``docs/algorithms.md``).

``ALGORITHMS`` maps the name given to
:meth:`~tradepilot.execution.algo_engine.AlgoEngine.submit_parent` to the class; each
class names its parameters dataclass in ``params_type``.
"""

from __future__ import annotations

from typing import Any

from tradepilot.execution.algos.auto import AutoAlgo, AutoParams
from tradepilot.execution.algos.base import AlgoParams, Algorithm, ParentStatus
from tradepilot.execution.algos.bracket import BracketAlgo, BracketParams
from tradepilot.execution.algos.chaser import ChaserAlgo, ChaserParams
from tradepilot.execution.algos.iceberg import IcebergAlgo, IcebergParams
from tradepilot.execution.algos.limit import LimitAlgo, LimitParams
from tradepilot.execution.algos.market import MarketAlgo, MarketParams
from tradepilot.execution.algos.oco import OcoAlgo, OcoParams
from tradepilot.execution.algos.pov import PovAlgo, PovParams
from tradepilot.execution.algos.scheduled import ScheduleParams
from tradepilot.execution.algos.twap import TwapAlgo, TwapParams
from tradepilot.execution.algos.vwap import VolumeProfile, VwapAlgo, VwapParams, volume_profile

ALGORITHMS: dict[str, type[Algorithm[Any]]] = {
    cls.name: cls
    for cls in (
        MarketAlgo,
        LimitAlgo,
        TwapAlgo,
        VwapAlgo,
        PovAlgo,
        IcebergAlgo,
        ChaserAlgo,
        BracketAlgo,
        OcoAlgo,
        AutoAlgo,
    )
}

__all__ = [
    "ALGORITHMS",
    "AlgoParams",
    "Algorithm",
    "AutoAlgo",
    "AutoParams",
    "BracketAlgo",
    "BracketParams",
    "ChaserAlgo",
    "ChaserParams",
    "IcebergAlgo",
    "IcebergParams",
    "LimitAlgo",
    "LimitParams",
    "MarketAlgo",
    "MarketParams",
    "OcoAlgo",
    "OcoParams",
    "ParentStatus",
    "PovAlgo",
    "PovParams",
    "ScheduleParams",
    "TwapAlgo",
    "TwapParams",
    "VolumeProfile",
    "VwapAlgo",
    "VwapParams",
    "volume_profile",
]
