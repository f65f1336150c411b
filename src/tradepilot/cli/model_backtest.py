"""The out-of-sample backtest of a walk-forward training run, through the engine.

Each walk-forward fold's models were trained only on data before its test block
(purged and embargoed). This runs the engine over the test blocks - and nothing
else - with the run configuration's gates, sizing, exits and risk limits; at every
cycle the ensemble uses the models of the fold whose test block holds the time.
Before the first test block the engine only warms its features and market state
(no model: no signal). The result is compared with buying and holding over the
same span.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tradepilot.app.config import DataSpec, RunConfig
from tradepilot.app.session import Session
from tradepilot.core.time import NS_PER_MINUTE
from tradepilot.strategy.ml.features import FeatureComputer
from tradepilot.strategy.ml.models import Member
from tradepilot.strategy.ml.source import EnsembleSignalGenerator, EnsembleStrategy
from tradepilot.strategy.ml.training import TrainResult, iso


def fold_schedule(result: TrainResult) -> tuple[list[int], list[list[Member]], int]:
    """(start time of each fold's test block, its members, end of the last block)."""
    ds = result.data
    starts = [int(ds.ts[f.test[0]]) for f in result.walk_forward.folds_index()]
    members = [f.members for f in result.walk_forward.folds]
    end = int(ds.bars.ts[-1])
    return starts, members, end


def run(
    run_config: RunConfig,
    data_path: Path,
    symbol: str,
    result: TrainResult,
    log_path: Path | None = None,
) -> dict[str, Any]:
    """The engine over the out-of-sample blocks; the session report plus buy-and-hold."""
    ensembles = [s for s in run_config.strategies if s.kind == "ensemble"]
    if len(run_config.strategies) != 1 or not ensembles:
        raise ValueError("the backtest configuration must hold exactly one kind: ensemble strategy")
    starts, members, end = fold_schedule(result)
    warm = (FeatureComputer().warmup + 10) * NS_PER_MINUTE
    first = starts[0]
    cfg = dataclasses.replace(
        run_config,
        data=(
            DataSpec(
                file=str(data_path),
                symbols=(symbol,),
                venue="SIM",
                quote=run_config.currency,
                tick_size="0.01",
                lot_size="0.00001",
                min_notional="5",
                asset_class="CRYPTO",
            ),
        ),
        start=None,
        end=None,
    )
    # bar open times: [first - warm, end) closes the last bar at ``end``
    session = Session.from_config(
        cfg,
        start=iso(first - warm),
        end=iso(end),
        log_path=log_path,
        journal_path=None,
    )
    strat = session.built.strategies[0]
    assert isinstance(strat, EnsembleStrategy)

    def members_at(now: int) -> Sequence[Member] | None:
        k = bisect_right(starts, now) - 1
        return members[k] if k >= 0 else None

    old = strat.generator
    strat.generator = EnsembleSignalGenerator(old.instrument_id, old.config, members_at=members_at)
    report = session.run()
    bars = result.data.bars
    i0 = int(bars.ts.searchsorted(first, "left"))
    hold = float(bars.close[-1] / bars.close[min(i0, len(bars) - 1)] - 1.0) * 100.0
    report["oos"] = {
        "start": iso(first),
        "end": iso(end),
        "folds": len(starts),
        "buy_and_hold_pct": round(hold, 3),
    }
    return report
