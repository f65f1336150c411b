"""SIGKILL a paper session while orders are live, resume it, compare with an uninterrupted run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def crash_test(tmp_path: Path, *args: str) -> dict[str, int]:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "crash_test.py"),
            "--workdir",
            str(tmp_path),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for line in (
        "orders lost: 0",
        "orders duplicated: 0",
        "positions identical: yes",
        "balances identical: yes",
        "journal records identical: yes",
    ):
        assert line in out.stdout, out.stdout
    numbers = dict(re.findall(r"^(kills[^:]*): (\d+)", out.stdout, re.M))
    return {k: int(v) for k, v in numbers.items()}


@pytest.mark.parametrize("journal", ["sqlite", "postgresql"])
def test_kills_land_while_orders_work_and_lose_or_duplicate_nothing(
    tmp_path: Path, journal: str
) -> None:
    extra = ["--journal", POSTGRES] if journal == "postgresql" else []
    kills = 5
    n = crash_test(
        tmp_path,
        "--kills",
        str(kills),
        "--seed",
        "11",
        "--speed",
        "4000",
        "--duration",
        "8h",
        *extra,
    )
    assert n["kills"] == kills
    assert n["kills after the first order"] == kills
    assert n["kills orders or parent orders working"] >= kills - 1
