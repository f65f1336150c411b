"""The ``ensemble`` signal source: features, models, a vote, and a graceful fallback.

:class:`EnsembleSignalGenerator` is fed every bar of its instrument (features are
computed incrementally by :class:`~.features.FeatureComputer`) and, once per
cycle, asks its members for calibrated probabilities and turns the
:func:`~.ensemble.combine` vote into a BUY or SELL signal whose confidence the
pipeline's gates judge (``min_confidence: 0.6``, the momentum filter...).

Members come from an artifact (:mod:`~.artifacts`), loaded at the first cycle, or
are handed in (the walk-forward backtest gives each test period the models of its
fold). A member is dropped, with a journaled
:class:`~tradepilot.model.events.ModelDropped` event, when its file is missing
(``MISSING``), unreadable or fails its checksum (``CORRUPT``), the artifact was
trained on other features (``MISMATCH``), the artifact is older than ``max_age``
measured on the engine clock against the end of its training window (``STALE``),
or it raises or returns a non-finite number at predict time (``PREDICT_ERROR``).
With fewer than ``min_members`` left, the ``fallback`` rule decides - ``momentum``
(the one-hour momentum rule) or ``hold`` - and an
:class:`~tradepilot.model.events.EnsembleFallback` event is journaled; every cycle
log line says which source decided (``signal_source``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tradepilot.core.time import NS_PER_HOUR, NS_PER_MINUTE, parse_duration
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.events import EnsembleFallback, ModelDropped
from tradepilot.strategy.allocation import CapitalAllocator
from tradepilot.strategy.calendars import TradingCalendar
from tradepilot.strategy.gates import HoldCode
from tradepilot.strategy.ml import artifacts
from tradepilot.strategy.ml.ensemble import Vote, combine
from tradepilot.strategy.ml.features import FeatureComputer
from tradepilot.strategy.ml.models import Member
from tradepilot.strategy.pipeline import PipelineConfig, SignalPipeline
from tradepilot.strategy.signal_strategy import (
    Idle,
    MomentumSignalGenerator,
    SignalStrategy,
)
from tradepilot.strategy.signals import FileSignalSource, Signal, SignalAction

FALLBACKS = ("momentum", "hold")
ENSEMBLE_DOWN = "ENSEMBLE_DOWN"
NO_MODEL = "NO_MODEL"


class Drop:
    MISSING = "MISSING"
    CORRUPT = "CORRUPT"
    MISMATCH = "MISMATCH"
    STALE = "STALE"
    PREDICT_ERROR = "PREDICT_ERROR"


@dataclass(frozen=True)
class EnsembleConfig:
    """The ``ensemble:`` section of a strategy (see ``docs/ml.md``)."""

    model: str = "bundled"  # an artifact directory, or "bundled" for the shipped one
    members: tuple[str, ...] = ()  # members to use (empty: all in the manifest)
    weights: Mapping[str, float] = field(default_factory=dict)  # override the manifest's
    min_members: int = 2
    max_age_ns: int | None = None  # drop the artifact when older than this (engine time)
    fallback: str = "momentum"
    threshold_pct: float = 1.78  # momentum fallback: confidence scale, as the momentum rule
    lookback_ns: int = NS_PER_HOUR
    ttl_ns: int | None = None

    def __post_init__(self) -> None:
        if self.min_members < 1:
            raise ValueError(f"min_members must be at least 1, got {self.min_members}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {', '.join(FALLBACKS)}")
        if self.max_age_ns is not None and self.max_age_ns <= 0:
            raise ValueError("max_age must be positive")
        for name, w in self.weights.items():
            if not (isinstance(w, int | float) and math.isfinite(w) and w > 0):
                raise ValueError(f"weight of {name} must be a positive number, got {w!r}")
        if self.threshold_pct <= 0 or self.lookback_ns <= 0:
            raise ValueError("threshold_pct and lookback must be positive")


_KEYS = (
    "model",
    "members",
    "weights",
    "min_members",
    "max_age",
    "fallback",
    "threshold_pct",
    "lookback",
    "ttl",
)


def parse_config(data: Mapping[str, Any] | None, where: str = "ensemble") -> EnsembleConfig:
    """An :class:`EnsembleConfig` from a YAML mapping; ValueError naming the key at fault."""
    d = dict(data or {})
    unknown = sorted(set(d) - set(_KEYS))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(_KEYS)})"
        )
    kw: dict[str, Any] = {}
    try:
        if "model" in d:
            kw["model"] = str(d["model"])
        if "members" in d:
            members = d["members"]
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise ValueError("members must be a list of member names")
            kw["members"] = tuple(members)
        if "weights" in d:
            weights = d["weights"]
            if not isinstance(weights, Mapping):
                raise ValueError("weights must map member names to numbers")
            kw["weights"] = {str(k): v for k, v in weights.items()}
        if "min_members" in d:
            n = d["min_members"]
            if isinstance(n, bool) or not isinstance(n, int):
                raise ValueError(f"min_members must be an integer, got {n!r}")
            kw["min_members"] = n
        if d.get("max_age") is not None:
            kw["max_age_ns"] = parse_duration(str(d["max_age"]))
        if "fallback" in d:
            kw["fallback"] = str(d["fallback"])
        if "threshold_pct" in d:
            text = str(d["threshold_pct"]).strip().removesuffix("%")
            kw["threshold_pct"] = float(text)
        if "lookback" in d:
            kw["lookback_ns"] = parse_duration(str(d["lookback"]))
        if d.get("ttl") is not None:
            kw["ttl_ns"] = parse_duration(str(d["ttl"]))
        return EnsembleConfig(**kw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


@dataclass
class _Slot:
    """One member and where it stands."""

    name: str
    member: Member | None
    dropped: str | None = None  # the drop code


class EnsembleSignalGenerator:
    """Features per bar, the ensemble vote per cycle, the fallback when too few models."""

    def __init__(
        self,
        instrument_id: str,
        config: EnsembleConfig | None = None,
        members: Sequence[Member] | None = None,
        model_path: str | Path | None = None,
        members_at: Callable[[int], Sequence[Member] | None] | None = None,
    ) -> None:
        self.instrument_id = instrument_id
        self.config = cfg = config or EnsembleConfig()
        self.features = FeatureComputer()
        self.model_path = model_path if model_path is not None else cfg.model
        self._given = list(members) if members is not None else None
        self._members_at = members_at  # walk-forward: the fold's models at a time
        self._slots: list[_Slot] | None = None
        self._manifest: artifacts.Manifest | None = None
        self.model_id = ""
        self.fallback_active = False
        self.source = "ensemble"
        self.last_vote: Vote | None = None
        self.last_probs: dict[str, float] = {}
        self._fallback = MomentumSignalGenerator(
            instrument_id, cfg.threshold_pct, cfg.lookback_ns, cfg.ttl_ns
        )

    # -- market data ------------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        if bar.instrument_id != self.instrument_id:
            return
        s = fixed.SCALE
        self.features.update(
            bar.ts, bar.open / s, bar.high / s, bar.low / s, bar.close / s, bar.volume / s
        )

    # -- members -------------------------------------------------------------------------
    def _emit_drop(
        self, pipeline: SignalPipeline, now: int, slot: _Slot, code: str, why: str
    ) -> None:
        slot.dropped = code
        slot.member = None
        pipeline._emit(
            ModelDropped(
                now,
                pipeline.strategy_id,
                self.model_id,
                slot.name,
                code,
                why,
                self.alive_count(),
            )
        )

    def alive_count(self) -> int:
        return sum(1 for s in self._slots or () if s.member is not None)

    def _load(self, now: int, pipeline: SignalPipeline) -> list[_Slot]:
        """Load the members (once); every failure is a journaled drop after all loaded."""
        cfg = self.config
        if self._given is not None:
            slots = [_Slot(m.name, m) for m in self._given]
            self._slots = slots
            return slots
        slots = [_Slot(name, None) for name in cfg.members]
        self._slots = slots
        failures: list[tuple[_Slot, str, str]] = []
        try:
            manifest = artifacts.load_manifest(self.model_path)
        except artifacts.ArtifactError as exc:
            if isinstance(exc, artifacts.ManifestMismatch):
                code = Drop.MISMATCH
                names = list(cfg.members) or list(exc.members)
            else:
                code = Drop.MISSING if "no model artifact" in str(exc) else Drop.CORRUPT
                names = list(cfg.members) or ["*"]
            slots[:] = [_Slot(name, None) for name in names]
            failures = [(slot, code, str(exc)) for slot in slots]
        else:
            self._manifest = manifest
            self.model_id = manifest.model_id
            infos = {m.name: m for m in manifest.members}
            if not cfg.members:
                slots.extend(_Slot(name, None) for name in infos)
            for slot in slots:
                info = infos.get(slot.name)
                if info is None:
                    failures.append((slot, Drop.MISSING, f"{slot.name}: not in the artifact"))
                    continue
                try:
                    member = artifacts.load_member(manifest, info)
                except artifacts.ArtifactError as exc:
                    code = Drop.MISSING if "is missing" in str(exc) else Drop.CORRUPT
                    failures.append((slot, code, str(exc)))
                    continue
                if slot.name in cfg.weights:
                    member.weight = float(cfg.weights[slot.name])
                slot.member = member
        for slot, code, why in failures:
            self._emit_drop(pipeline, now, slot, code, why)
        return slots

    def _check_age(self, now: int, pipeline: SignalPipeline) -> None:
        max_age, manifest = self.config.max_age_ns, self._manifest
        if max_age is None or manifest is None:
            return
        age = now - manifest.trained_until_ns
        if age <= max_age:
            return
        for slot in self._slots or ():
            if slot.member is not None:
                self._emit_drop(
                    pipeline,
                    now,
                    slot,
                    Drop.STALE,
                    f"{slot.name}: trained up to {age // NS_PER_HOUR} h ago, "
                    f"older than max_age {max_age // NS_PER_HOUR} h",
                )

    # -- a cycle -------------------------------------------------------------------------
    def generate(self, now: int, pipeline: SignalPipeline) -> Sequence[Signal] | Idle:
        if self._members_at is not None:
            return self._generate_scheduled(now, pipeline)
        slots = self._slots if self._slots is not None else self._load(now, pipeline)
        self._check_age(now, pipeline)
        if self.alive_count() < self.config.min_members:
            return self._decide(now, pipeline, {}, {})  # the fallback needs no features
        row = self.features.last
        if row is None:
            return Idle(
                HoldCode.WARMING_UP,
                f"warming up: features need {self.features.warmup} bars, "
                f"have {self.features.count}",
            )
        probs: dict[str, float] = {}
        x = row.reshape(1, -1)
        for slot in slots:
            member = slot.member
            if member is None:
                continue
            try:
                p = float(member.proba(x)[0])
                if not math.isfinite(p):
                    raise ValueError(f"probability {p}")
            except Exception as exc:  # a model failing must not stop the loop
                self._emit_drop(
                    pipeline,
                    now,
                    slot,
                    Drop.PREDICT_ERROR,
                    f"{slot.name}: {type(exc).__name__}: {exc}",
                )
                continue
            probs[slot.name] = p
        weights = {s.name: s.member.weight for s in slots if s.member is not None}
        return self._decide(now, pipeline, probs, weights)

    def _generate_scheduled(self, now: int, pipeline: SignalPipeline) -> Sequence[Signal] | Idle:
        assert self._members_at is not None
        members = self._members_at(now)
        if not members:
            self.source = "none"
            return Idle(NO_MODEL, "no model for this period (not out of sample)")
        row = self.features.last
        if row is None:
            return Idle(HoldCode.WARMING_UP, "warming up: features not ready")
        x = row.reshape(1, -1)
        probs = {m.name: float(m.proba(x)[0]) for m in members}
        self._slots = [_Slot(m.name, m) for m in members]
        return self._decide(now, pipeline, probs, {m.name: m.weight for m in members})

    def _decide(
        self,
        now: int,
        pipeline: SignalPipeline,
        probs: dict[str, float],
        weights: dict[str, float],
    ) -> Sequence[Signal] | Idle:
        cfg = self.config
        self.last_probs = probs
        if len(probs) < cfg.min_members:
            reason = (
                f"{len(probs)} of {len(self._slots or ())} ensemble members left, "
                f"need {cfg.min_members}: {cfg.fallback} rule decides"
            )
            if not self.fallback_active:
                self.fallback_active = True
                pipeline._emit(
                    EnsembleFallback(
                        now,
                        pipeline.strategy_id,
                        cfg.fallback,
                        True,
                        len(probs),
                        cfg.min_members,
                        reason,
                    )
                )
            self.last_vote = None
            self.source = f"fallback:{cfg.fallback}"
            if cfg.fallback == "hold":
                return Idle(ENSEMBLE_DOWN, reason)
            out = self._fallback.generate(now, pipeline)
            if isinstance(out, Idle):
                return Idle(out.code, f"fallback (momentum): {out.reason}")
            return [
                Signal(
                    instrument_id=s.instrument_id,
                    action=s.action,
                    confidence=s.confidence,
                    expected_return=s.expected_return,
                    ttl_ns=s.ttl_ns,
                    note=f"fallback (momentum): {s.note}; {reason}",
                )
                for s in out
            ]
        if self.fallback_active:
            self.fallback_active = False
            pipeline._emit(
                EnsembleFallback(
                    now,
                    pipeline.strategy_id,
                    cfg.fallback,
                    False,
                    len(probs),
                    cfg.min_members,
                    "enough ensemble members again",
                )
            )
        vote = combine(probs, weights)
        self.last_vote = vote
        self.source = "ensemble"
        detail = " ".join(f"{k} {v:.3f}" for k, v in probs.items())
        return [
            Signal(
                instrument_id=self.instrument_id,
                action=SignalAction.BUY if vote.buy else SignalAction.SELL,
                confidence=vote.confidence,
                ttl_ns=cfg.ttl_ns,
                note=(f"ensemble p_up {vote.p_up:.3f}, agreement {vote.agreement:.2f} ({detail})"),
            )
        ]

    def status(self) -> dict[str, object]:
        out: dict[str, object] = {"signal_source": self.source}
        if self._slots is not None:
            out["members"] = f"{self.alive_count()}/{len(self._slots)}"
        vote = self.last_vote
        if vote is not None:
            out["p_up"] = round(vote.p_up, 4)
            out["agreement"] = round(vote.agreement, 4)
        return out


class EnsembleStrategy(SignalStrategy):
    """A :class:`SignalStrategy` whose generator is the ensemble (fed every bar)."""

    generator: EnsembleSignalGenerator

    def __init__(
        self,
        strategy_id: str,
        generator: EnsembleSignalGenerator,
        config: PipelineConfig | None = None,
        cycle_ns: int = 5 * NS_PER_MINUTE,
        calendar: TradingCalendar | None = None,
        allocator: CapitalAllocator | None = None,
        sources: Sequence[FileSignalSource] = (),
    ) -> None:
        super().__init__(
            strategy_id,
            config,
            generator,
            cycle_ns,
            calendar,
            allocator,
            sources,
            generator.instrument_id,
        )

    def on_bar(self, bar: Bar) -> None:
        self.generator.on_bar(bar)
        self.pipeline.on_bar(bar)

    def status(self) -> dict[str, object]:
        out = super().status()
        out.update(self.generator.status())
        return out


def probabilities(members: Sequence[Member], row: np.ndarray[Any, Any]) -> dict[str, float]:
    """Each member's calibrated P(up) for one feature row (for tools and tests)."""
    x = np.asarray(row, dtype=np.float64).reshape(1, -1)
    return {m.name: float(m.proba(x)[0]) for m in members}


def build_strategy(
    strategy_id: str,
    instrument_id: str,
    section: Mapping[str, Any],
    pipeline: PipelineConfig,
    cycle_ns: int,
    calendar: TradingCalendar | None,
    allocator: CapitalAllocator | None,
    sources: Sequence[FileSignalSource],
    resolve: Callable[[str], Path],
    where: str = "ensemble",
) -> EnsembleStrategy:
    """The strategy of a ``kind: ensemble`` configuration entry (the model path is
    resolved like the configuration's other files; ``bundled`` is the shipped model)."""
    cfg = parse_config(section, f"{where}.ensemble")
    if cfg.ttl_ns is None:
        cfg = dataclasses.replace(cfg, ttl_ns=cycle_ns)
    model: str | Path = cfg.model
    if cfg.model not in ("bundled", artifacts.BUNDLED):
        model = resolve(cfg.model)
    generator = EnsembleSignalGenerator(instrument_id, cfg, model_path=model)
    return EnsembleStrategy(
        strategy_id, generator, pipeline, cycle_ns, calendar, allocator, sources
    )
