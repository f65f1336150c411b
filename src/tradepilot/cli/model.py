"""``tradepilot model``: train, list, show and evaluate model artifacts.

* ``model train --config TRAIN.yaml [--data FILE] [--out DIR]`` - walk-forward
  evaluation (per fold and overall: accuracy, precision, recall, Brier score, log
  loss for each model, the ensemble and the naive baseline), the final models
  written as an artifact, then the engine backtest of the out-of-sample periods;
* ``model list [--root DIR]`` - the shipped artifact and those under ``DIR``;
* ``model show ARTIFACT`` - its manifest: features, window, digest, libraries,
  metrics;
* ``model evaluate ARTIFACT --data FILE`` - score it on other bars (refuses an
  artifact trained on other features).

Bad input (a missing file, a corrupt artifact, a mismatched manifest, bad values)
prints one line and exits with status 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from tradepilot.app.config import load_config
from tradepilot.cli import model_backtest
from tradepilot.core.yamlfile import load_yaml
from tradepilot.data import catalog
from tradepilot.data.loaders import DataError, load_bars
from tradepilot.persistence.journal import JournalError
from tradepilot.strategy.ml import artifacts
from tradepilot.strategy.ml.dataset import BarArrays, build
from tradepilot.strategy.ml.labels import LabelConfig
from tradepilot.strategy.ml.training import (
    TrainResult,
    iso,
    parse_iso,
    parse_train_config,
    train,
)
from tradepilot.strategy.ml.walkforward import ensemble_proba, scores

__all__ = ["app"]

app = typer.Typer(
    help="Machine-learning signal models: train, list, show, evaluate.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)
METRICS = ("accuracy", "precision", "recall", "brier", "log_loss")


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None or not isinstance(v, int | float) or not math.isfinite(v):
        return "-"
    return f"{v:.{digits}f}"


def _load(data: str, symbol: str, base: Path | None = None) -> tuple[BarArrays, Path]:
    p = Path(data).expanduser()
    if not p.is_absolute() and base is not None and (base / p).exists():
        p = base / p
    if not p.exists():
        try:
            p = Path(catalog.find(data).path)
        except (ValueError, DataError):
            raise ValueError(f"{data}: no such data file or data set") from None
    series = load_bars(p, f"{symbol}.SIM")
    if len(series) == 0:
        raise ValueError(f"{p}: no bars")
    return BarArrays.from_series(series), p


def _cut(bars: BarArrays, until_ns: int | None) -> BarArrays:
    if until_ns is None:
        return bars
    n = int(np.searchsorted(bars.ts, until_ns, "right"))
    if n == 0:
        raise ValueError("no bars before train_until")
    return bars.select(slice(0, n))


def scores_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("model")
    for m in ("n", *METRICS):
        table.add_column(m, justify="right")
    for name, s in rows.items():
        table.add_row(name, f"{int(s['n']):,}", *(_fmt(s[m]) for m in METRICS))
    return table


def print_report(result: TrainResult) -> None:
    wf = result.walk_forward
    ds = result.data
    cfg = result.config
    console.print(
        f"{cfg.name}: {len(ds.bars):,} bars {iso(int(ds.bars.ts[0]))} -> "
        f"{iso(int(ds.bars.ts[-1]))}, {len(ds.y):,} samples (every {cfg.sample_step} bars), "
        f"label {cfg.label.kind} {cfg.label.horizon} bars net of {cfg.label.fee * 2e4:g} bps "
        f"round trip, base rate {float(np.mean(ds.y)):.3f}",
        highlight=False,
    )
    w = cfg.walk_forward
    console.print(
        f"walk-forward: {len(wf.folds)} folds, {w.mode}, purge by label end, embargo "
        f"{w.embargo} bars, calibration on the last {w.calibration:.0%} of each training window",
        highlight=False,
    )
    for f in wf.folds:
        title = (
            f"fold {f.index}: train {f.train_n:,} samples {iso(int(ds.bars.ts[f.train_bars[0]]))}"
            f" -> {iso(int(ds.bars.ts[f.train_bars[1]]))}, test {f.test_n:,} "
            f"{iso(int(ds.bars.ts[f.test_bars[0]]))} -> {iso(int(ds.bars.ts[f.test_bars[1]]))}"
        )
        console.print(scores_table(title, f.scores))
    console.print(scores_table("out of sample, all folds", wf.overall))


def backtest_table(report: dict[str, Any]) -> Table:
    s = report["summary"]
    oos = report["oos"]
    t = Table(
        title="engine backtest of the out-of-sample periods",
        show_header=False,
        title_justify="left",
    )
    t.add_column(style="bold")
    t.add_column(justify="right")
    counts = next(iter(report["signals"].values()))["signals"]
    for k, v in (
        ("period", f"{oos['start']} -> {oos['end']} ({oos['folds']} folds)"),
        ("signals", ", ".join(f"{n:,} {k}" for k, n in counts.items() if n)),
        ("orders", f"{s['orders']:,} ({s['filled_orders']:,} filled)"),
        ("round trips", f"{s['round_trips']:,}"),
        ("fees", str(s["fees"])),
        ("return", f"{s['return_pct']:.3f} %"),
        ("buy and hold", f"{oos['buy_and_hold_pct']:.3f} %"),
        ("max drawdown", f"{s['max_drawdown_pct']:.3f} %"),
        ("Sharpe", _fmt(s["sharpe"], 3)),
        ("win rate", _fmt(s["win_rate_pct"], 1) + " %"),
    ):
        t.add_row(k, v)
    for code, n in list(report["holds"].items())[:6]:
        t.add_row(f"hold: {code}", f"{n:,}")
    return t


@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training configuration (YAML).")],
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Bar file or data set (default: config).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Artifact directory (default: config).")] = None,
    backtest: Annotated[
        bool, typer.Option(help="Backtest the out-of-sample periods through the engine.")
    ] = True,
    shuffle_labels: Annotated[
        bool, typer.Option(help="Control run: shuffle the training labels (no artifact).")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="Write the report as JSON.")] = None,
) -> None:
    """Walk-forward train the ensemble, write the artifact, backtest out of sample."""
    try:
        if not config.is_file():
            raise ValueError(f"{config}: no such training configuration")
        raw = load_yaml(config)
        cfg = parse_train_config(raw)
        base = config.resolve().parent
        source = data or cfg.data
        if source is None:
            raise ValueError("give --data or data.file in the configuration")
        bars, path = _load(source, cfg.symbol, base)
        until = parse_iso(cfg.train_until, "train_until") if cfg.train_until else None
        bars = _cut(bars, until)
        run_cfg = None
        if backtest and cfg.backtest_config:
            bt = Path(cfg.backtest_config)
            run_cfg = load_config(bt if bt.is_absolute() else base / bt)
        with console.status("training (walk-forward, then the final models)"):
            result = train(bars, cfg, shuffle_labels=shuffle_labels)
    except (ValueError, DataError, OSError) as exc:
        _fail(str(exc))
        return
    print_report(result)
    body = result.manifest_body(path.name)
    target = out or (base / cfg.output if cfg.output else None)
    if shuffle_labels:
        console.print("shuffled-label control: no artifact written")
    elif target is not None:
        manifest = artifacts.save(
            target,
            result.members,
            body,
            {k: v for k, v in body["walk_forward"]["overall"].items()},
        )
        size = sum(f.stat().st_size for f in target.iterdir())
        console.print(f"artifact {manifest.model_id} written to {target} ({size / 1024:.0f} KB)")
    payload: dict[str, Any] = {"manifest": body}
    if run_cfg is not None:
        try:
            with console.status("backtesting the out-of-sample periods through the engine"):
                bt_report = model_backtest.run(run_cfg, path, cfg.symbol, result)
        except (ValueError, DataError, JournalError, OSError) as exc:
            _fail(f"out-of-sample backtest: {exc}")
            return
        console.print(backtest_table(bt_report))
        payload["backtest"] = bt_report
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(payload, indent=2, default=str))


def _manifest(path: str) -> artifacts.Manifest:
    try:
        return artifacts.load_manifest(path)
    except artifacts.ArtifactError as exc:
        _fail(str(exc))
        raise


@app.command("list")
def list_cmd(
    root: Annotated[Path, typer.Option(help="Look for artifacts under this folder.")] = Path(
        "models"
    ),
) -> None:
    """The shipped artifact and the artifacts under ROOT."""
    found = [artifacts.bundled_path()]
    if root.is_dir():
        found += sorted(p.parent for p in root.glob("**/" + artifacts.MANIFEST))
    table = Table(title="model artifacts", title_justify="left")
    for col in ("path", "id", "name", "version", "members", "trained on", "OOS accuracy"):
        table.add_column(col)
    for p in found:
        try:
            m = artifacts.load_manifest(p)
        except artifacts.ArtifactError as exc:
            table.add_row(str(p), "-", f"[red]{exc}[/]", "", "", "", "")
            continue
        tr = m.body["training"]
        acc = m.body.get("walk_forward", {}).get("overall", {}).get("ensemble", {})
        table.add_row(
            "bundled" if p == artifacts.bundled_path() else str(p),
            m.model_id,
            str(m.body.get("name", "")),
            str(m.body.get("version", "")),
            ", ".join(x.name for x in m.members),
            f"{tr['start']} -> {tr['end']}",
            _fmt(acc.get("accuracy")),
        )
    console.print(table)


@app.command("show")
def show_cmd(
    artifact: Annotated[str, typer.Argument(help="Artifact directory, or 'bundled'.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """An artifact's manifest: features, training window, digest, libraries, metrics."""
    m = _manifest(artifact)
    if json_out:
        console.print_json(json.dumps(m.body))
        return
    b = m.body
    tr = b["training"]
    console.print(
        f"{b.get('name')} v{b.get('version')} id {m.model_id} ({m.path})", highlight=False
    )
    console.print(
        f"trained on {tr['source']} {tr['symbol']}: {tr['start']} -> {tr['end']}, "
        f"{tr['bars']:,} bars, {tr['samples']:,} samples, data sha256 {tr['data_sha256'][:16]}…",
        highlight=False,
    )
    console.print(f"label: {b['label']}", highlight=False)
    console.print(f"features ({b['features']['set']}): {', '.join(m.features)}", highlight=False)
    console.print(
        "libraries: " + ", ".join(f"{k} {v}" for k, v in b["libraries"].items()), highlight=False
    )
    overall = b.get("walk_forward", {}).get("overall")
    if overall:
        rows = {
            k: {kk: (vv if vv is not None else math.nan) for kk, vv in v.items()}
            for k, v in overall.items()
        }
        console.print(scores_table("walk-forward, out of sample", rows))
    for info in m.members:
        console.print(
            f"member {info.name}: {info.kind}, {info.file}, weight {info.weight:g}, "
            f"Platt a {info.a:.3f} b {info.b:.3f}",
            highlight=False,
        )


@app.command("evaluate")
def evaluate_cmd(
    artifact: Annotated[str, typer.Argument(help="Artifact directory, or 'bundled'.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Bar file or data set.")],
    start: Annotated[str | None, typer.Option(help="First bar (ISO, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Last bar (ISO, UTC).")] = None,
    step: Annotated[int, typer.Option(help="Sample every STEP bars.")] = 5,
) -> None:
    """Score an artifact's members and ensemble on bars (refuses mismatched features)."""
    m = _manifest(artifact)
    try:
        members = [artifacts.load_member(m, info) for info in m.members]
        lab = m.body["label"]
        label = LabelConfig(
            str(lab["kind"]),
            int(lab["horizon_bars"]),
            float(lab["fee"]),
            float(lab["take_profit"]),
            float(lab["stop_loss"]),
        )
        bars, _ = _load(data, str(m.body["training"].get("symbol", "BTCUSDT")))
        lo = parse_iso(start, "start") if start else None
        hi = parse_iso(end, "end") if end else None
        keep = np.ones(len(bars), dtype=bool)
        if lo is not None:
            keep &= bars.ts >= lo
        if hi is not None:
            keep &= bars.ts <= hi
        bars = bars.select(keep)
        ds = build(bars, label, step)
        if len(ds.y) == 0:
            raise ValueError("no samples with warm features and known labels in this range")
    except (ValueError, KeyError, DataError, OSError) as exc:
        _fail(str(exc))
        return
    tr = m.body["training"]
    if int(ds.ts[0]) <= int(tr["end_ns"]) and int(ds.ts[-1]) >= int(tr["start_ns"]):
        err.print("[yellow]warning:[/] these bars overlap the training window: in-sample scores")
    rows = {mb.name: scores(mb.proba(ds.x), ds.y) for mb in members}
    rows["ensemble"] = scores(ensemble_proba(members, ds.x), ds.y)
    rows["baseline"] = scores(np.full(len(ds.y), float(tr["base_rate"])), ds.y)
    console.print(
        scores_table(f"{m.model_id} on {iso(int(ds.ts[0]))} -> {iso(int(ds.ts[-1]))}", rows)
    )


def register(root: typer.Typer) -> None:
    """Add ``model`` to ``root``."""
    root.add_typer(app, name="model")
