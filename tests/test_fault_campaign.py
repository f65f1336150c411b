"""The seeded fault-injection link and a small fault campaign on real data."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from tradepilot.data.loaders import load_bars
from tradepilot.model.instrument import Instrument
from tradepilot.venues.faults import FAULT_CLASSES, FaultConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fault_campaign.py"


def campaign() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fault_campaign", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


FC = campaign()
INST: Instrument = FC.INST


@pytest.fixture(scope="module")
def series() -> object:
    if not FC.DATA.is_file():
        pytest.fail(f"shared data not found (the tests need ../shared/data): {FC.DATA}")
    return load_bars(FC.DATA, INST.id)


def test_twenty_episodes_hit_every_fault_class_and_all_converge(series: object) -> None:
    fc = FC
    totals: Counter[str] = Counter()
    fills = 0
    for k in range(20):
        out = fc.episode(series, INST, 7_000 + k, 120, 0.05)
        assert not out.crashed, out.error
        assert out.converged, (k, out)
        totals.update(out.counts)
        fills += out.activity["fills"]
    assert all(totals[name] >= 1 for name in FAULT_CLASSES), totals
    assert fills > 100  # the traders really traded
    assert sum(totals.values()) > 200


def test_an_episode_is_reproducible_from_its_seed(series: object) -> None:
    fc = FC
    a = fc.episode(series, INST, 42, 60, 0.1)
    b = fc.episode(series, INST, 42, 60, 0.1)
    assert a.counts == b.counts and a.activity == b.activity


def test_the_campaign_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    fc = FC
    assert fc.main(["--episodes", "3", "--bars", "30", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    for name in (*FAULT_CLASSES, "crashes", "double fills", "converged"):
        assert name in out
    assert "100.0 %" in out


@pytest.mark.parametrize(
    "bad",
    [{"drop_report": -0.1}, {"timeout": 1.5}, {"rate_limit": math.nan}, {"max_delay_ns": -1}],
)
def test_fault_config_refuses_what_is_not_a_probability(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaultConfig(**bad)  # type: ignore[arg-type]


def test_the_campaign_refuses_bad_arguments_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fc = FC
    assert fc.main(["--episodes", "0"]) == 2
    assert fc.main(["--fault-rate", "nan"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error:") for line in err)
