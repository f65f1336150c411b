"""Model artifacts: versioned files with a manifest, and their safe loading.

An artifact is a directory::

    manifest.json          what was trained, on what, how well, with which libraries
    logreg.skops           scikit-learn models: skops (no pickle of arbitrary objects)
    forest.skops
    lightgbm.txt           LightGBM's native text model
    xgboost.json           XGBoost's native JSON model

The manifest records the format version, the model version and an id (a digest
of the manifest body), the feature set with its names *in order*, the label
definition, the training window (first and last bar close time), the bars'
sha256 digest and source file name, the library versions, and per member its
kind, file, file sha256, weight, Platt calibration and walk-forward metrics.

:func:`load_manifest` refuses a manifest that does not parse or whose feature
list differs from the running one (:class:`ManifestMismatch`, naming the
difference). :func:`load_member` loads one member or raises
:class:`ArtifactError` with a one-line reason (missing, checksum mismatch,
untrusted types in a skops file, unreadable); the ensemble source turns that into
a dropped member. This is the only module of the package that touches files.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from tradepilot.strategy.ml.features import FEATURE_NAMES, FEATURE_SET
from tradepilot.strategy.ml.models import KINDS, Member

FORMAT = 1
MANIFEST = "manifest.json"
SUFFIX = {"logreg": ".skops", "forest": ".skops", "lightgbm": ".txt", "xgboost": ".json"}
LIBRARIES = ("numpy", "scikit-learn", "lightgbm", "xgboost", "skops")
# the only non-default type a shipped skops file may hold (a fitted decision tree)
SKOPS_TRUSTED = ("sklearn.tree._tree.Tree",)
BUNDLED = "btcusdt-ensemble"


class ArtifactError(ValueError):
    """An artifact or one of its members cannot be used (one-line reason)."""


class ManifestMismatch(ArtifactError):
    """The manifest does not match the running feature set (``members``: its member names)."""

    def __init__(self, message: str, members: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.members = members


@dataclass(frozen=True)
class MemberInfo:
    name: str
    kind: str
    file: str
    sha256: str
    weight: float = 1.0
    a: float = 1.0
    b: float = 0.0
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    path: Path  # the artifact directory
    body: Mapping[str, Any]
    members: tuple[MemberInfo, ...]

    @property
    def model_id(self) -> str:
        return str(self.body.get("id", ""))

    @property
    def trained_until_ns(self) -> int:
        return int(self.body["training"]["end_ns"])

    @property
    def features(self) -> list[str]:
        return list(self.body["features"]["names"])


# distributions that provide a library under another name (xgboost-cpu installs xgboost)
_DISTRIBUTIONS = {"xgboost": ("xgboost", "xgboost-cpu")}


def library_versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        out[lib] = "missing"
        for dist in _DISTRIBUTIONS.get(lib, (lib,)):
            try:
                out[lib] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def bundled_path() -> Path:
    """The artifact shipped with the package (trained on real BTC/USDT candles)."""
    return Path(str(resources.files("tradepilot.strategy.ml") / "bundled" / BUNDLED))


def resolve(path: str | Path) -> Path:
    """``bundled`` (or the bundled artifact's name) -> the shipped artifact, else the path."""
    text = str(path)
    if text in ("bundled", BUNDLED):
        return bundled_path()
    return Path(text).expanduser()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- saving ------------------------------------------------------------------------------------
def member_bytes(member: Member) -> bytes:
    est = member.estimator
    if member.kind in ("logreg", "forest"):
        import skops.io

        data: bytes = skops.io.dumps(est, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
        return data
    if member.kind == "lightgbm":
        return str(est.model_to_string()).encode()
    return bytes(est.save_raw("json"))


def save(
    directory: str | Path,
    members: Sequence[Member],
    body: Mapping[str, Any],
    member_metrics: Mapping[str, Mapping[str, float]] | None = None,
) -> Manifest:
    """Write the member files and the manifest (``body`` + members + id) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for m in members:
        data = member_bytes(m)
        name = f"{m.name}{SUFFIX[m.kind]}"
        (out / name).write_bytes(data)
        entries.append(
            {
                "name": m.name,
                "kind": m.kind,
                "file": name,
                "sha256": _sha256(data),
                "weight": m.weight,
                "calibration": {"a": m.a, "b": m.b},
                "metrics": dict((member_metrics or {}).get(m.name, {})),
            }
        )
    manifest: dict[str, Any] = {"format": FORMAT, **dict(body), "members": entries}
    manifest.pop("id", None)
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    manifest["id"] = _sha256(canonical.encode())[:12]
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return load_manifest(out)


# -- loading -----------------------------------------------------------------------------------
def load_manifest(directory: str | Path, feature_names: Sequence[str] = FEATURE_NAMES) -> Manifest:
    """Read and check a manifest; raises :class:`ArtifactError` / :class:`ManifestMismatch`."""
    root = resolve(directory)
    path = root / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{root}: no model artifact here (no {MANIFEST})")
    try:
        body = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a format-{FORMAT} model manifest")
    try:
        feats = body["features"]
        names = list(feats["names"])
        set_name = str(feats["set"])
        int(body["training"]["end_ns"])
        members = tuple(
            MemberInfo(
                name=str(e["name"]),
                kind=str(e["kind"]),
                file=str(e["file"]),
                sha256=str(e["sha256"]),
                weight=float(e.get("weight", 1.0)),
                a=float(e["calibration"]["a"]),
                b=float(e["calibration"]["b"]),
                metrics=dict(e.get("metrics", {})),
            )
            for e in body["members"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: incomplete manifest ({type(exc).__name__}: {exc})") from None
    expected = list(feature_names)
    if set_name != FEATURE_SET or names != expected:
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        detail = (
            f"missing {missing}" if missing else "",
            f"unknown {extra}" if extra else "",
            "same names in another order" if not missing and not extra else "",
        )
        raise ManifestMismatch(
            f"{path}: trained on feature set {set_name!r} ({len(names)} features), the engine "
            f"computes {FEATURE_SET!r} ({len(expected)}): "
            + "; ".join(d for d in detail if d)
            + " - retrain the model",
            tuple(m.name for m in members),
        )
    for m in members:
        if m.kind not in KINDS:
            raise ArtifactError(f"{path}: member {m.name} has unknown kind {m.kind!r}")
    return Manifest(root, body, members)


def load_member(manifest: Manifest, info: MemberInfo) -> Member:
    """Load one member file, checking its checksum; :class:`ArtifactError` if unusable."""
    path = manifest.path / info.file
    if not path.is_file():
        raise ArtifactError(f"{info.name}: model file {info.file} is missing")
    data = path.read_bytes()
    if _sha256(data) != info.sha256:
        raise ArtifactError(f"{info.name}: {info.file} does not match its manifest checksum")
    try:
        est = _load_estimator(info.kind, data)
    except ArtifactError:
        raise
    except Exception as exc:  # a third-party loader failing on a bad file
        raise ArtifactError(f"{info.name}: cannot load {info.file}: {exc}") from None
    return Member(info.name, info.kind, est, info.a, info.b, info.weight)


def _load_estimator(kind: str, data: bytes) -> Any:
    if kind in ("logreg", "forest"):
        import skops.io

        untrusted = skops.io.get_untrusted_types(data=data)
        refused = sorted(set(untrusted) - set(SKOPS_TRUSTED))
        if refused:
            raise ArtifactError(f"skops file holds untrusted types {refused}")
        return skops.io.loads(data, trusted=list(untrusted))
    if kind == "lightgbm":
        import lightgbm

        return lightgbm.Booster(model_str=data.decode())
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(data))
    booster.set_param({"nthread": 1})
    return booster
