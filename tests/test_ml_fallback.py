"""The ensemble source in the engine: every failure mode drops a member with a journaled
event, too few members hand over to the fallback rule (and the cycle log says so), and
the journal of a run is byte-identical when it is repeated."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import yaml

from tradepilot.app.config import parse_config as parse_run
from tradepilot.app.session import Session
from tradepilot.strategy.ml import artifacts
from tradepilot.strategy.ml.models import Member
from tradepilot.strategy.ml.source import EnsembleConfig, parse_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "configs" / "crypto_ensemble.yaml"


def rows(path: Path) -> list[tuple[int, int, str, bytes]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT seq, ts, kind, payload FROM events ORDER BY seq"))


def events(path: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(r[3]) for r in rows(path) if r[2] == kind]


def run(
    tmp_path: Path, name: str = "run", hours: int = 6, **ensemble: Any
) -> tuple[dict[str, Any], list[dict[str, Any]], Path]:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["strategies"][0]["ensemble"].update(ensemble)
    raw["range"] = {"start": "2021-05-19T00:00", "end": f"2021-05-19T{hours:02d}:00"}
    log, journal = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.db"
    report = Session.from_config(parse_run(raw, ROOT), log_path=log, journal_path=journal).run()
    return report, [json.loads(x) for x in log.read_text().splitlines()], journal


def copy_bundled(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(artifacts.bundled_path(), target)
    return target


def rewrite_manifest(model: Path, edit: Any) -> None:
    path = model / artifacts.MANIFEST
    body = json.loads(path.read_text())
    edit(body)
    path.write_text(json.dumps(body))


def decided(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r for r in log if r["extra"].get("code") != "WARMING_UP" and r["confidence"] is not None
    ]


def test_the_bundled_ensemble_decides_and_journals_no_drop(tmp_path: Path) -> None:
    report, log, journal = run(tmp_path)
    assert not events(journal, "ModelDropped") and not events(journal, "EnsembleFallback")
    live = [r for r in log[:-1] if r["extra"].get("code") != "WARMING_UP"]
    assert live and all(r["extra"]["signal_source"] == "ensemble" for r in live)
    assert all(r["extra"]["members"] == "4/4" for r in live)
    assert all(0 <= r["extra"]["p_up"] <= 1 for r in live if "p_up" in r["extra"])
    received = events(journal, "SignalReceived")
    assert received and all("ensemble p_up" in json.loads(e["signal"])["note"]
                            for e in received)  # fmt: skip
    assert report["signals"]["crypto_ensemble"]["signals"]["rejected"] == 0


def test_a_missing_member_is_dropped_and_the_rest_vote(tmp_path: Path) -> None:
    model = copy_bundled(tmp_path)
    (model / "forest.skops").unlink()
    _, log, journal = run(tmp_path, model=str(model))
    drops = events(journal, "ModelDropped")
    assert [(d["member"], d["code"], d["members_left"]) for d in drops] == [
        ("forest", "MISSING", 3)
    ]
    assert "forest.skops is missing" in drops[0]["reason"]
    assert not events(journal, "EnsembleFallback")  # 3 left, min_members 3
    assert log[-1]["extra"]["members"] == "3/4" and log[-1]["extra"]["signal_source"] == "ensemble"


def test_a_corrupt_member_is_dropped(tmp_path: Path) -> None:
    model = copy_bundled(tmp_path)
    data = bytearray((model / "xgboost.json").read_bytes())
    data[100:110] = b"##########"
    (model / "xgboost.json").write_bytes(bytes(data))
    # and a LightGBM file that is garbage but carries a matching checksum
    garbage = b"not a model"
    (model / "lightgbm.txt").write_bytes(garbage)
    import hashlib

    def fix(body: dict[str, Any]) -> None:
        for m in body["members"]:
            if m["name"] == "lightgbm":
                m["sha256"] = hashlib.sha256(garbage).hexdigest()

    rewrite_manifest(model, fix)
    _, log, journal = run(tmp_path, model=str(model), min_members=2)
    drops = {d["member"]: d for d in events(journal, "ModelDropped")}
    assert set(drops) == {"xgboost", "lightgbm"}
    assert all(d["code"] == "CORRUPT" for d in drops.values())
    assert "checksum" in drops["xgboost"]["reason"]
    assert "cannot load lightgbm.txt" in drops["lightgbm"]["reason"]
    assert log[-1]["extra"]["members"] == "2/4"
    assert log[-1]["extra"]["signal_source"] == "ensemble"  # min_members 2


def test_a_stale_model_hands_over_to_the_momentum_rule(tmp_path: Path) -> None:
    # trained up to 2021-05-14; on 2021-05-19 it is 5 days old
    _, log, journal = run(tmp_path, max_age="4d")
    drops = events(journal, "ModelDropped")
    assert sorted(d["member"] for d in drops) == ["forest", "lightgbm", "logreg", "xgboost"]
    assert {d["code"] for d in drops} == {"STALE"}
    assert "older than max_age 96 h" in drops[0]["reason"]
    fallback = events(journal, "EnsembleFallback")
    assert len(fallback) == 1 and fallback[0]["active"] and fallback[0]["rule"] == "momentum"
    assert fallback[0]["members_left"] == 0 and fallback[0]["min_members"] == 3
    # every cycle after the first hour is the momentum rule's, and the log says so
    later = [r for r in log[:-1] if r["timestamp"] >= "2021-05-19T01:05"]
    assert later and all(r["extra"]["signal_source"] == "fallback:momentum" for r in later)
    assert all(r["confidence"] is not None for r in later)
    received = events(journal, "SignalReceived")
    assert received and all("fallback (momentum)" in json.loads(e["signal"])["note"]
                            for e in received)  # fmt: skip


def test_a_member_raising_at_predict_time_is_dropped(tmp_path: Path) -> None:
    import hashlib

    import lightgbm

    model = copy_bundled(tmp_path)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))  # trained on 3 features: predicting on 16 raises
    booster = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, x[:, 0] > 0).booster_
    text = booster.model_to_string().encode()
    (model / "lightgbm.txt").write_bytes(text)

    def fix(body: dict[str, Any]) -> None:
        for m in body["members"]:
            if m["name"] == "lightgbm":
                m["sha256"] = hashlib.sha256(text).hexdigest()

    rewrite_manifest(model, fix)
    _, log, journal = run(tmp_path, model=str(model))
    drops = events(journal, "ModelDropped")
    assert [(d["member"], d["code"]) for d in drops] == [("lightgbm", "PREDICT_ERROR")]
    first_live = next(r for r in log if r["extra"].get("code") != "WARMING_UP")
    assert drops[0]["ts"] >= 0 and first_live["extra"]["members"] == "3/4"


def test_a_model_trained_on_other_features_is_refused(tmp_path: Path) -> None:
    model = copy_bundled(tmp_path)
    rewrite_manifest(model, lambda b: b["features"]["names"].reverse())
    _, log, journal = run(tmp_path, model=str(model), fallback="hold")
    drops = events(journal, "ModelDropped")
    assert len(drops) == 4 and {d["code"] for d in drops} == {"MISMATCH"}
    assert "same names in another order" in drops[0]["reason"]
    assert events(journal, "EnsembleFallback")[0]["rule"] == "hold"
    live = [r for r in log[:-1] if r["extra"].get("code") not in (None, "WARMING_UP")]
    assert live and {r["extra"]["code"] for r in live} == {"ENSEMBLE_DOWN"}
    assert "hold rule decides" in live[-1]["extra"]["reason"]


def test_all_members_failing_falls_back(tmp_path: Path) -> None:
    report, log, journal = run(tmp_path, model=str(tmp_path / "nowhere"))
    drops = events(journal, "ModelDropped")
    assert [(d["member"], d["code"]) for d in drops] == [("*", "MISSING")]
    assert "no model artifact here" in drops[0]["reason"]
    fallback = events(journal, "EnsembleFallback")
    assert len(fallback) == 1 and fallback[0]["members_left"] == 0
    assert log[-1]["extra"]["signal_source"] == "fallback:momentum"
    assert report["signals"]["crypto_ensemble"]["signals"]["received"] > 0


def test_in_memory_members_raising_each_cycle_all_drop(tmp_path: Path) -> None:
    """Members handed in (as the walk-forward backtest does) fail the same way."""
    from tradepilot.strategy.ml.source import EnsembleSignalGenerator

    class Broken:
        def predict_proba(self, x: Any) -> Any:
            raise RuntimeError("boom")

    members = [Member(f"m{i}", "logreg", Broken()) for i in range(4)]
    gen = EnsembleSignalGenerator("BTCUSDT.SIM", EnsembleConfig(min_members=2), members=members)
    emitted: list[Any] = []

    class Pipe:
        strategy_id = "s"
        market: ClassVar[dict[str, Any]] = {}

        def _emit(self, event: Any) -> None:
            emitted.append(event)

    gen.features.last = np.zeros(16)
    out = gen.generate(1, Pipe())  # type: ignore[arg-type]
    assert [type(e).__name__ for e in emitted] == ["ModelDropped"] * 4 + ["EnsembleFallback"]
    assert {e.code for e in emitted[:4]} == {"PREDICT_ERROR"}
    assert "RuntimeError: boom" in emitted[0].reason
    assert not isinstance(out, list)  # the momentum rule has no prices yet: it idles


def test_journals_are_byte_identical_when_repeated(tmp_path: Path) -> None:
    for i, scenario in enumerate(({}, {"max_age": "4d"})):
        _, log_a, a = run(tmp_path, f"a{i}", hours=8, **scenario)
        _, log_b, b = run(tmp_path, f"b{i}", hours=8, **scenario)
        assert rows(a) == rows(b)
        assert log_a == log_b


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"min_members": 0}, "min_members must be at least 1"),
        ({"fallback": "panic"}, "fallback must be one of momentum, hold"),
        ({"max_age": "soon"}, "ensemble"),
        ({"weights": {"forest": -1}}, "weight of forest must be a positive number"),
        ({"colour": "red"}, "unknown key(s) colour"),
        ({"members": "forest"}, "members must be a list"),
    ],
)
def test_bad_ensemble_sections_are_clear_errors(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(section)
    raw = yaml.safe_load(CONFIG.read_text())
    raw["strategies"][0]["ensemble"].update(section)
    with pytest.raises(ValueError, match=r"strategies\[0\]\.ensemble"):
        parse_run(raw, ROOT)
