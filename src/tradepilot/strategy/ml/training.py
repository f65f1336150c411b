"""Training: a configuration, the walk-forward report, and the final models.

:func:`train` takes the bars (already cut to the training window - nothing after
``train_until`` is ever seen), builds the samples, runs the purged walk-forward
evaluation (:mod:`~.walkforward`), then fits the members on the whole window
(fit on the first part, Platt calibration on the rest) and returns everything
the artifact manifest records. It does no I/O: the ``model`` command reads the
files and writes the artifact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tradepilot.strategy.ml.dataset import BarArrays, TrainingSet, build
from tradepilot.strategy.ml.features import FEATURE_NAMES, FEATURE_SET
from tradepilot.strategy.ml.labels import LabelConfig
from tradepilot.strategy.ml.models import KINDS, Member, MemberSpec, default_members, fit_member
from tradepilot.strategy.ml.walkforward import WalkForwardConfig, WalkForwardResult, evaluate

_TOP = (
    "name",
    "version",
    "data",
    "train_until",
    "sample_step",
    "label",
    "members",
    "walk_forward",
    "backtest",
    "output",
)


@dataclass(frozen=True)
class TrainConfig:
    name: str = "model"
    version: int = 1
    data: str | None = None  # default data file (relative to the config) or data set name
    symbol: str = "BTCUSDT"
    train_until: str | None = None  # ISO time: bars closing after it are never used
    sample_step: int = 5
    label: LabelConfig = field(default_factory=LabelConfig)
    members: tuple[MemberSpec, ...] = field(default_factory=default_members)
    walk_forward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    backtest_config: str | None = None  # a run configuration for the out-of-sample backtest
    output: str | None = None


def _section(data: object, where: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping")
    return dict(data)


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    return value


def _float(value: object, where: str) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"{where}: not a number: {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{where}: must be finite")
    return out


def parse_train_config(raw: object) -> TrainConfig:
    """A :class:`TrainConfig` from a parsed YAML document; ValueError naming the key."""
    top = _section(raw, "training configuration")
    unknown = sorted(set(top) - set(_TOP))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(_TOP)})")
    kw: dict[str, Any] = {}
    if "name" in top:
        kw["name"] = str(top["name"])
    if "version" in top:
        kw["version"] = _int(top["version"], "version")
    data = _section(top.get("data"), "data")
    if set(data) - {"file", "dataset", "symbol"}:
        raise ValueError("data: give file (or dataset) and symbol")
    if "file" in data or "dataset" in data:
        kw["data"] = str(data.get("file", data.get("dataset")))
    if "symbol" in data:
        kw["symbol"] = str(data["symbol"])
    if top.get("train_until") is not None:
        kw["train_until"] = str(top["train_until"])
        parse_iso(kw["train_until"], "train_until")
    if "sample_step" in top:
        kw["sample_step"] = _int(top["sample_step"], "sample_step")
        if kw["sample_step"] < 1:
            raise ValueError("sample_step must be at least 1 bar")
    label = _section(top.get("label"), "label")
    known = ("kind", "horizon", "fee", "take_profit", "stop_loss")
    if set(label) - set(known):
        raise ValueError(f"label: unknown key(s) {sorted(set(label) - set(known))}")
    lk: dict[str, Any] = {}
    for key, value in label.items():
        where = f"label.{key}"
        lk[key] = (
            str(value)
            if key == "kind"
            else _int(value, where)
            if key == "horizon"
            else _float(value, where)
        )
    try:
        kw["label"] = LabelConfig(**lk)
    except ValueError as exc:
        raise ValueError(f"label: {exc}") from None
    if "members" in top:
        items = top["members"]
        if not isinstance(items, list) or not items:
            raise ValueError("members: give a list of {name, kind, weight, params}")
        specs = []
        for i, item in enumerate(items):
            m = _section(item, f"members[{i}]")
            if set(m) - {"name", "kind", "weight", "params"}:
                raise ValueError(f"members[{i}]: keys are name, kind, weight, params")
            kind = str(m.get("kind", m.get("name", "")))
            if kind not in KINDS:
                raise ValueError(f"members[{i}].kind must be one of {', '.join(KINDS)}")
            try:
                specs.append(
                    MemberSpec(
                        str(m.get("name", kind)),
                        kind,
                        _float(m.get("weight", 1.0), f"members[{i}].weight"),
                        _section(m.get("params"), f"members[{i}].params"),
                    )
                )
            except ValueError as exc:
                raise ValueError(f"members[{i}]: {exc}") from None
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"members: names must be unique, got {names}")
        kw["members"] = tuple(specs)
    wf = _section(top.get("walk_forward"), "walk_forward")
    wk: dict[str, Any] = {}
    for key, value in wf.items():
        where = f"walk_forward.{key}"
        if key == "mode":
            wk[key] = str(value)
        elif key == "calibration":
            wk[key] = _float(value, where)
        elif key in ("folds", "test", "train", "embargo", "seed"):
            wk[key] = _int(value, where)
        else:
            raise ValueError(f"walk_forward: unknown key {key!r}")
    try:
        kw["walk_forward"] = WalkForwardConfig(**wk)
    except ValueError as exc:
        raise ValueError(f"walk_forward: {exc}") from None
    bt = _section(top.get("backtest"), "backtest")
    if set(bt) - {"config"}:
        raise ValueError("backtest: the only key is config (a run configuration)")
    if bt.get("config") is not None:
        kw["backtest_config"] = str(bt["config"])
    if top.get("output") is not None:
        kw["output"] = str(top["output"])
    return TrainConfig(**kw)


def parse_iso(text: str, where: str) -> int:
    """ns since the epoch of an ISO time (UTC if no zone)."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: not an ISO time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class TrainResult:
    config: TrainConfig
    data: TrainingSet
    walk_forward: WalkForwardResult
    members: list[Member]

    def manifest_body(self, source: str) -> dict[str, Any]:
        """Everything the manifest records except the member files."""
        ds = self.data
        bars = ds.bars
        cfg = self.config
        from tradepilot.strategy.ml.artifacts import library_versions

        return {
            "name": cfg.name,
            "version": cfg.version,
            "features": {"set": FEATURE_SET, "names": list(FEATURE_NAMES)},
            "label": {
                "kind": cfg.label.kind,
                "horizon_bars": cfg.label.horizon,
                "fee": cfg.label.fee,
                "take_profit": cfg.label.take_profit,
                "stop_loss": cfg.label.stop_loss,
            },
            "training": {
                "source": source,
                "symbol": cfg.symbol,
                "bars": len(bars),
                "samples": len(ds.y),
                "sample_step": cfg.sample_step,
                "start": iso(int(bars.ts[0])),
                "end": iso(int(bars.ts[-1])),
                "start_ns": int(bars.ts[0]),
                "end_ns": int(bars.ts[-1]),
                "data_sha256": bars.digest(),
                "base_rate": float(np.mean(ds.y)),
            },
            "walk_forward": {
                "folds": cfg.walk_forward.folds,
                "mode": cfg.walk_forward.mode,
                "embargo_bars": cfg.walk_forward.embargo,
                "calibration": cfg.walk_forward.calibration,
                "oos_samples": len(self.walk_forward.oos_index),
                "overall": _rounded(self.walk_forward.overall),
            },
            "libraries": library_versions(),
        }


def _rounded(scores: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | None]]:
    return {
        name: {k: (round(v, 6) if math.isfinite(v) else None) for k, v in s.items()}
        for name, s in scores.items()
    }


def train(
    bars: BarArrays,
    config: TrainConfig,
    shuffle_labels: bool = False,
    members: Sequence[MemberSpec] | None = None,
) -> TrainResult:
    """Walk-forward evaluation, then the final members fitted on the whole window."""
    ds = build(bars, config.label, config.sample_step)
    specs = list(members or config.members)
    wf = evaluate(ds.x, ds.y, ds.t0, ds.t1, specs, config.walk_forward, shuffle_labels)
    final = [
        fit_member(
            s, ds.x, ds.y, ds.t0, ds.t1, config.walk_forward.calibration, config.walk_forward.seed
        )
        for s in specs
    ]
    return TrainResult(config, ds, wf, final)
