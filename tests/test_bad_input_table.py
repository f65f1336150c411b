"""A table of bad input across the command line, configurations, signal files and data import.

Every case runs the real command (in-process through typer's runner) next to a stored
journal, cycle log and data set, and asserts: a non-zero exit, no traceback (a usage
error or one ``error:`` line), and every stored file byte-identical afterwards. Run
commands point at the stored journal with ``--overwrite``: a rejected run must not
even move it aside.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from tradepilot.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "examples" / "configs" / "crypto_momentum.yaml").read_text())
CANDLES = "open_time_ms,open_time,open,high,low,close,volume\n"
ROW = "{ms},x,100,101,99,100.5,3\n"


def _candles(n: int = 5) -> str:
    return CANDLES + "".join(ROW.format(ms=1620950400000 + i * 60_000) for i in range(n))


class Store:
    """What is already on disk: a journal with its log, and an imported data set."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.journal = root / "runs" / "kept.db"
        self.log = root / "runs" / "kept.jsonl"
        self.home = root / "home"
        self.inputs = root / "inputs"

    def fingerprint(self) -> dict[str, str]:
        out = {}
        for folder in (self.root / "runs", self.home):
            for p in sorted(folder.rglob("*")):
                if p.is_file() and not p.name.endswith(".lock"):
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(tmp_path_factory.mktemp("stored"))
    s.inputs.mkdir()
    old_home = os.environ.get("TRADEPILOT_HOME")
    os.environ["TRADEPILOT_HOME"] = str(s.home)
    os.environ.pop("TRADEPILOT_JOURNAL_URL", None)
    try:
        csv = s.inputs / "good.csv"
        csv.write_text(_candles())
        assert cli(["data", "import", str(csv), "--name", "kept"]).exit_code == 0
        result = cli(
            [
                *("paper", "--session", "kept", "--journal", str(s.journal)),
                *("--log", str(s.log), "--speed", "1e12", "--duration", "2h", "--quiet"),
            ]
        )
        assert result.exit_code == 0, result.output
        assert s.journal.stat().st_size > 0 and s.log.stat().st_size > 0
        yield s
    finally:
        if old_home is None:
            os.environ.pop("TRADEPILOT_HOME", None)
        else:
            os.environ["TRADEPILOT_HOME"] = old_home


def cli(args: list[str]) -> Result:
    return CliRunner().invoke(app, args)


def assert_rejected(store: Store, args: list[str]) -> Result:
    before = store.fingerprint()
    result = cli(args)
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 or "Usage:" in result.output or "rejected" in result.output, (
        result.output
    )
    assert store.fingerprint() == before
    return result


# -- backtest arguments --------------------------------------------------------------------------
BACKTEST = [
    ["--start", "garbage"],
    ["--start", "2021-13-45"],
    ["--end", "garbage"],
    ["--start", "2030-01-01"],
    ["--end", "2000-01-01"],
    ["--start", "2021-05-15", "--end", "2021-05-14"],
    ["--start", "Infinity"],
    ["--capital", "-5"],
    ["--capital", "0"],
    ["--capital", "abc"],
    ["--capital", "inf"],
    ["--capital", "nan"],
    ["--capital", "1e999"],
    ["--capital", ""],
    ["--capital", "1" + "0" * 400],
    ["--fee-bps", "-50"],
    ["--fee-bps", "abc"],
    ["--fee-bps", "inf"],
    ["--fee-bps", "nan"],
    ["--fee-bps", "1e9"],
    ["--fee-bps", "-0.1"],
    ["--latency-ms", "-1"],
    ["--latency-ms", "inf"],
    ["--latency-ms", "nan"],
    ["--latency-ms", "1e308"],
    ["--latency-ms", "abc"],
    ["--jitter-ms", "-1"],
    ["--jitter-ms", "inf"],
    ["--jitter-ms", "nan"],
    ["--jitter-ms", "1e308"],
    ["--slippage-ticks", "-100"],
    ["--slippage-ticks", "abc"],
    ["--slippage-ticks", "1.5"],
    ["--limit-fill", "sideways"],
    ["--limit-fill", ""],
    ["--strategy", "nope"],
    ["--strategy", "../x"],
    ["-p", "fast=abc"],
    ["-p", "fast=-3"],
    ["-p", "nonsense"],
    ["-p", "fast=nan"],
    ["-p", "slow=0"],
    ["-p", "bogus=1"],
    ["--data", "no-such-set"],
    ["--data", "../../etc/passwd"],
    ["--seed", "abc"],
    ["--session", "../x"],
    ["--session", ""],
    ["--session", "a/b"],
]


@pytest.mark.parametrize("bad", BACKTEST, ids=[" ".join(b) for b in BACKTEST])
def test_backtest_arguments(store: Store, bad: list[str]) -> None:
    assert_rejected(store, ["backtest", *bad, "--journal", str(store.journal), "--overwrite"])


def test_backtest_journal_targets(store: Store) -> None:
    assert_rejected(store, ["backtest", "--journal", str(store.log / "j.db")])
    assert_rejected(store, ["backtest", "--journal", "mysql://db/x"])
    assert_rejected(store, ["backtest", "--journal", str(store.root / "runs")])
    assert_rejected(store, ["backtest", "--journal", str(store.journal)])  # exists


# -- paper arguments -----------------------------------------------------------------------------
PAPER = [
    ["--duration", "inf"],
    ["--duration", "1e308h"],
    ["--duration", "-1h"],
    ["--duration", "0"],
    ["--duration", "abc"],
    ["--duration", "nan"],
    ["--cycle", "inf"],
    ["--cycle", "0"],
    ["--cycle", "-5m"],
    ["--cycle", "abc"],
    ["--cycle", "nan"],
    ["--speed", "nan"],
    ["--speed", "inf"],
    ["--speed", "0"],
    ["--speed", "-1"],
    ["--speed", "abc"],
    ["--latency-ms", "inf"],
    ["--latency-ms", "nan"],
    ["--latency-ms", "-1"],
    ["--capital", "-1"],
    ["--capital", "nan"],
    ["--fee-bps", "-50"],
    ["--start", "garbage"],
    ["--start", "2030-01-01"],
    ["--strategy", "nope"],
    ["-p", "threshold_pct=abc"],
    ["--data", "nowhere"],
    ["--resume", "--overwrite"],
]


@pytest.mark.parametrize("bad", PAPER, ids=[" ".join(b) for b in PAPER])
def test_paper_arguments(store: Store, bad: list[str]) -> None:
    files = ["--journal", str(store.journal), "--log", str(store.log)]
    assert_rejected(store, ["paper", "--session", "kept", *files, "--overwrite", *bad])


@pytest.mark.parametrize("name", ["../x", ".", "..", "a/b", "", "x" * 101, "-x", "a\\b", "a b"])
def test_paper_session_names(store: Store, name: str) -> None:
    assert_rejected(store, ["paper", "--session", name, "--speed", "1e12", "--duration", "1h"])


def test_paper_new_session_over_a_stored_one(store: Store) -> None:
    files = ["--journal", str(store.journal), "--log", str(store.log)]
    result = assert_rejected(store, ["paper", "--session", "kept", *files])
    assert "--resume" in result.output
    assert_rejected(store, ["paper", "--session", "missing", "--resume"])


# -- configurations -----------------------------------------------------------------------------
def _set(path: str, value: object) -> dict[str, object]:
    import copy

    config = copy.deepcopy(CONFIG)
    node = config
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return config


INF = float("inf")
NAN = float("nan")
CONFIGS = [
    ("session.cycle", "inf"),
    ("session.cycle", INF),
    ("session.cycle", 0),
    ("session.cycle", "-5m"),
    ("session.duration", "1e308h"),
    ("session.speed", INF),
    ("session.speed", NAN),
    ("session.speed", 0),
    ("session.speed", -1),
    ("session.speed", "fast"),
    ("account.latency_ms", INF),
    ("account.latency_ms", NAN),
    ("account.latency_ms", -1),
    ("account.fee_bps", "-50"),
    ("account.fee_bps", -50),
    ("account.fee_bps", "abc"),
    ("account.fee_bps", True),
    ("account.capital", "1e999"),
    ("account.capital", "-1"),
    ("account.capital", "abc"),
    ("account.capital", True),
    ("account.type", "LOAN"),
    ("account.journal", "false"),
    ("name", "../x"),
    ("name", "a/b"),
    ("name", ""),
    ("name", None),
    ("market", "mars"),
    ("holidays", "yes"),
    ("journal", "false"),
    ("data", []),
    ("data", "btc"),
    ("data.0.dataset", "no-such-set"),
    ("strategies", []),
    ("strategies.0.kind", "bogus"),
    ("strategies.0.id", ""),
    ("strategies.0.allocation", 5.0),
    ("strategies.0.allocation", NAN),
    ("strategies.0.allocation", 0),
    ("strategies.0.allocation", -1),
    ("strategies.0.allocation", "abc"),
    ("strategies.0.instrument", "ETHUSDT"),
    ("strategies.0.gates.min_confidence", 1.5),
    ("strategies.0.gates.min_confidence", NAN),
    ("strategies.0.gates.min_confidence", -0.1),
    ("strategies.0.sizing.kelly_fraction", INF),
    ("strategies.0.sizing.kelly_fraction", 0),
    ("strategies.0.sizing.heat", "-2%"),
    ("strategies.0.sizing.cvar_alpha", 2.0),
    ("strategies.0.sizing.win_rate", NAN),
    ("strategies.0.sizing.max_position", "1e9%"),
    ("strategies.0.sizing.method", "yolo"),
    ("strategies.0.exits.stop_atr_mult", None),
    ("strategies.0.exits.atr_period", None),
    ("strategies.0.exits.max_hold", "-1h"),
    ("strategies.0.generator.lookback", "inf"),
    ("risk.max_position_pct", 1e9),
    ("risk.max_position_pct", NAN),
    ("risk.max_position_pct", -5),
    ("risk.max_trade_value", "-1"),
    ("risk.max_orders_per_day", -5),
    ("risk.max_orders_per_day", 1.5),
    ("risk.max_orders_per_day", True),
    ("risk.price_band_pct", 500),
    ("risk.unknown_limit", 1),
    ("risk.circuit_breaker.cooldown", "inf"),
    ("risk.circuit_breaker.max_drawdown_pct", 150),
    ("range", {"start": "garbage"}),
    ("range", {"start": "2021-05-15", "end": "2021-05-14"}),
    ("range", {"start": "2030-01-01"}),
]


@pytest.mark.parametrize(("path", "value"), CONFIGS, ids=[f"{p}={v!r}" for p, v in CONFIGS])
def test_run_config_values(store: Store, path: str, value: object) -> None:
    config = store.inputs / "bad.yaml"
    config.write_text(yaml.safe_dump(_set(path, value)))
    files = ["--journal", str(store.journal), "--log", str(store.log)]
    assert_rejected(store, ["run-config", str(config), *files, "--overwrite", "--quiet"])


RAW_CONFIGS = {
    "alias bomb": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n",
    "a list": "- 1\n- 2\n",
    "invalid yaml": "name: [unclosed\n",
    "empty": "",
    "a number": "42\n",
    "binary": "\x00\x01\x02",
    "tab indentation": "name: x\n\tdata: 1\n",
}


@pytest.mark.parametrize("text", RAW_CONFIGS.values(), ids=RAW_CONFIGS.keys())
def test_run_config_files(store: Store, text: str) -> None:
    config = store.inputs / "raw.yaml"
    config.write_text(text)
    assert_rejected(store, ["run-config", str(config), "--journal", str(store.journal)])


def test_run_config_paths(store: Store) -> None:
    assert_rejected(store, ["run-config", str(store.inputs / "missing.yaml")])
    assert_rejected(store, ["run-config", str(store.inputs)])


# -- signal files ----------------------------------------------------------------------------------
SIGNALS = {
    "infinity timestamp": ("s.jsonl", '{"ts": Infinity, "instrument_id": "X", "action": "BUY"}\n'),
    "1e999 timestamp": ("s.jsonl", '{"ts": 1e999, "instrument_id": "X", "action": "BUY"}\n'),
    "400-digit quantity": (
        "s.jsonl",
        '{"ts": 1, "instrument_id": "X", "action": "BUY", "quantity": ' + "9" * 400 + "}\n",
    ),
    "confidence 1.5": ("s.csv", "ts,instrument_id,action,confidence\n1,X,BUY,1.5\n"),
    "confidence nan": ("s.csv", "ts,instrument_id,action,confidence\n1,X,BUY,nan\n"),
    "negative quantity": ("s.csv", "ts,instrument_id,action,quantity\n1,X,BUY,-1\n"),
    "unknown action": ("s.csv", "ts,instrument_id,action\n1,X,MOON\n"),
    "unknown column": ("s.csv", "ts,instrument_id,action,colour\n1,X,BUY,red\n"),
    "not json": ("s.jsonl", "{nope\n"),
    "json list": ("s.jsonl", "[1, 2]\n"),
    "bad time": ("s.csv", "ts,instrument_id,action\nyesterday,X,BUY\n"),
    "binary": ("s.csv", "\xff\xfe\x00garbage"),
}


@pytest.mark.parametrize(("name", "text"), SIGNALS.values(), ids=SIGNALS.keys())
def test_signal_files(store: Store, name: str, text: str) -> None:
    path = store.inputs / name
    path.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    assert_rejected(store, ["signals", "check", str(path)])


def test_signal_file_paths(store: Store) -> None:
    fake = store.inputs / "s.jsonl.gz"
    fake.write_bytes(b"this is not gzip")
    assert_rejected(store, ["signals", "check", str(fake)])
    assert_rejected(store, ["signals", "check", str(store.inputs)])
    assert_rejected(store, ["signals", "check", str(store.inputs / "missing.csv")])


# -- data import -----------------------------------------------------------------------------------
IMPORTS = [
    ["--name", "../../x"],
    ["--name", ""],
    ["--name", ".hidden"],
    ["--name", "a/b"],
    ["--name", "kept"],  # exists
    ["--name", "btcusdt-1m-sample"],  # the bundled set
    ["--name", "new", "--tick-size", "abc"],
    ["--name", "new", "--tick-size", "-1"],
    ["--name", "new", "--tick-size", "0"],
    ["--name", "new", "--lot-size", "0"],
    ["--name", "new", "--lot-size", "-1"],
    ["--name", "new", "--lot-size", "abc"],
    ["--name", "new", "--kind", "bogus"],
    ["--name", "new", "--asset-class", "bogus"],
]


@pytest.mark.parametrize("bad", IMPORTS, ids=[" ".join(b) for b in IMPORTS])
def test_data_import_options(store: Store, bad: list[str]) -> None:
    assert_rejected(store, ["data", "import", str(store.inputs / "good.csv"), *bad])


BAD_DATA = {
    "nan price": _candles(2) + "1620950520000,x,nan,101,99,100,3\n",
    "out of order": _candles(3) + ROW.format(ms=1620950400000),
    "negative volume": _candles(1) + "1620950460000,x,100,101,99,100.5,-3\n",
    "high below low": _candles(1) + "1620950460000,x,100,99,101,100,3\n",
    "nul in header": CANDLES.replace("volume", "vol\x00ume") + ROW.format(ms=1620950400000),
    "no rows": CANDLES,
    "not csv": "\x00\x01\x02\x03",
}


@pytest.mark.parametrize("text", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_data_import_files(store: Store, text: str) -> None:
    path = store.inputs / "bad.csv"
    path.write_text(text)
    assert_rejected(store, ["data", "import", str(path), "--name", "fresh"])


def test_data_import_paths(store: Store) -> None:
    fake = store.inputs / "fake.csv.gz"
    fake.write_bytes(b"not gzip at all")
    assert_rejected(store, ["data", "import", str(fake), "--name", "fresh"])
    assert_rejected(store, ["data", "import", str(store.inputs), "--name", "fresh"])
    assert_rejected(store, ["data", "import", str(store.inputs / "none.csv"), "--name", "fresh"])


def test_a_corrupt_manifest_is_a_clear_error(store: Store) -> None:
    broken = store.home / "data" / "broken.json"
    for text in ("{not json", "[1, 2]", '{"name": "x"}', "\xff\xfe"):
        broken.write_bytes(text.encode("latin-1"))
        try:
            result = assert_rejected(store, ["data", "list"])
            assert "broken.json" in result.output
        finally:
            broken.unlink()


def test_the_table_holds_at_least_150_cases() -> None:
    cases = (len(BACKTEST) + 4 + len(PAPER) + 9 + 2 + len(CONFIGS) + len(RAW_CONFIGS) + 2) + (
        len(SIGNALS) + 3 + len(IMPORTS) + len(BAD_DATA) + 3 + 4
    )
    assert cases >= 150
