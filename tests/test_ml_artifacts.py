"""Artifacts: round trip, the manifest's contents, refusal of mismatched or corrupt files,
skops' trusted types, and the shipped artifact loading from the installed package."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tradepilot.strategy.ml import artifacts
from tradepilot.strategy.ml.features import FEATURE_NAMES
from tradepilot.strategy.ml.models import MemberSpec, fit_member


def _members() -> tuple[list, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, len(FEATURE_NAMES)))
    y = (x[:, 0] + rng.normal(size=400) > 0).astype(float)
    t = np.arange(400, dtype=np.int64)
    specs = [
        MemberSpec("logreg", "logreg"),
        MemberSpec("forest", "forest", params={"n_estimators": 5}),
        MemberSpec("lightgbm", "lightgbm", params={"n_estimators": 5}),
        MemberSpec("xgboost", "xgboost", 2.0, params={"n_estimators": 5}),
    ]
    return [fit_member(s, x, y, t, t) for s in specs], x


def _body() -> dict[str, object]:
    return {
        "name": "t",
        "version": 3,
        "features": {"set": "bars-v1", "names": list(FEATURE_NAMES)},
        "training": {"end_ns": 5, "start": "a", "end": "b"},
    }


def test_round_trip_predicts_the_same(tmp_path: Path) -> None:
    members, x = _members()
    manifest = artifacts.save(tmp_path / "m", members, _body(), {"logreg": {"accuracy": 0.6}})
    assert len(manifest.model_id) == 12 and manifest.features == list(FEATURE_NAMES)
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == [
        "forest.skops", "lightgbm.txt", "logreg.skops", "manifest.json", "xgboost.json",
    ]  # fmt: skip
    loaded = [artifacts.load_member(manifest, info) for info in manifest.members]
    for a, b in zip(members, loaded, strict=True):
        np.testing.assert_allclose(a.proba(x), b.proba(x), rtol=1e-6)
        assert (a.name, a.kind, a.weight) == (b.name, b.kind, b.weight)
    assert manifest.members[0].metrics == {"accuracy": 0.6}
    # the id is a digest of the manifest (which holds every file's sha256)
    assert artifacts.save(tmp_path / "m2", members, _body()).model_id != manifest.model_id


def test_a_forest_predicts_as_scikit_learn_does() -> None:
    members, x = _members()
    forest = members[1]
    np.testing.assert_allclose(
        forest.raw_proba(x), forest.estimator.predict_proba(x.astype(np.float32))[:, 1]
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda b: b["features"]["names"].pop(), "missing \\['tod_cos'\\]"),
        (lambda b: b["features"]["names"].append("funding"), "unknown \\['funding'\\]"),
        (lambda b: b["features"]["names"].reverse(), "same names in another order"),
        (lambda b: b["features"].update(set="bars-v0"), "feature set 'bars-v0'"),
        (lambda b: b.pop("training"), "incomplete manifest"),
        (lambda b: b.update(format=9), "not a format-1 model manifest"),
    ],
)
def test_a_mismatched_or_broken_manifest_is_refused(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    members, _ = _members()
    artifacts.save(tmp_path, members[:1], _body())
    path = tmp_path / "manifest.json"
    body = json.loads(path.read_text())
    edit(body)
    path.write_text(json.dumps(body))
    with pytest.raises(artifacts.ArtifactError, match=message):
        artifacts.load_manifest(tmp_path)


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    members, _ = _members()
    manifest = artifacts.save(tmp_path, members, _body())
    (tmp_path / "forest.skops").write_bytes(b"PK\x03\x04 junk")
    (tmp_path / "xgboost.json").unlink()
    info = {i.name: i for i in manifest.members}
    with pytest.raises(artifacts.ArtifactError, match="does not match its manifest checksum"):
        artifacts.load_member(manifest, info["forest"])
    with pytest.raises(artifacts.ArtifactError, match=r"xgboost\.json is missing"):
        artifacts.load_member(manifest, info["xgboost"])
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(artifacts.ArtifactError, match="unreadable manifest"):
        artifacts.load_manifest(tmp_path)
    with pytest.raises(artifacts.ArtifactError, match="no model artifact here"):
        artifacts.load_manifest(tmp_path / "absent")


def test_a_skops_file_with_untrusted_types_is_refused(tmp_path: Path) -> None:
    import hashlib
    import math

    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    members, _ = _members()
    manifest = artifacts.save(tmp_path, members[:1], _body())
    data = skops.io.dumps(FunctionTransformer(math.sqrt))
    (tmp_path / "logreg.skops").write_bytes(data)
    body = json.loads((tmp_path / "manifest.json").read_text())
    body["members"][0]["sha256"] = hashlib.sha256(data).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(body))
    manifest = artifacts.load_manifest(tmp_path)
    with pytest.raises(artifacts.ArtifactError, match="untrusted types"):
        artifacts.load_member(manifest, manifest.members[0])


def test_the_shipped_artifact_loads_from_the_package_and_is_small(tmp_path: Path) -> None:
    path = artifacts.bundled_path()
    assert "site-packages" in str(path) or path.is_relative_to(
        Path(artifacts.__file__).resolve().parent
    )
    manifest = artifacts.load_manifest("bundled")
    assert [m.name for m in manifest.members] == ["logreg", "forest", "lightgbm", "xgboost"]
    body = manifest.body
    assert body["training"]["end"] == "2021-05-14T00:00:00Z"  # before the bundled sample
    assert len(body["training"]["data_sha256"]) == 64
    assert set(body["libraries"]) == set(artifacts.LIBRARIES)
    assert "ensemble" in body["walk_forward"]["overall"]
    total = sum(p.stat().st_size for p in path.iterdir())
    assert total < 400_000
    members = [artifacts.load_member(manifest, i) for i in manifest.members]
    p = [float(m.proba(np.zeros((1, len(FEATURE_NAMES))))[0]) for m in members]
    assert all(0 < q < 1 for q in p)
    # the package data rule covers the artifact's files
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"strategy/ml/bundled/*/*"' in pyproject
    shutil.copytree(path, tmp_path / "copy")
    assert artifacts.load_manifest(tmp_path / "copy").model_id == manifest.model_id
