"""SIGKILL a paper session at random points, resume it, and compare with an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_crash_test_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "crash_test.py"),
            "--kills",
            "6",
            "--seed",
            "11",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "orders lost: 0" in out.stdout
    assert "orders duplicated: 0" in out.stdout
    assert "positions identical: yes" in out.stdout
    assert "balances identical: yes" in out.stdout
    assert "journal records identical: yes" in out.stdout
