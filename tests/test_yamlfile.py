"""YAML inputs (configurations, alerts, exchange accounts and faults) refuse aliases and
oversized files with one clear line, before any expansion can exhaust memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradepilot.app.config import load_config
from tradepilot.core.yamlfile import load_yaml

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert path.stat().st_size < 1024
    with pytest.raises(ValueError, match="aliases"):
        load_yaml(path)
    with pytest.raises(ValueError, match="aliases"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [("a: [1, 2", "not valid YAML"), ("x" * 2_000_001, "larger than")],
)
def test_broken_or_huge_yaml_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_yaml(path)
    assert "\n" not in str(info.value)


def test_plain_yaml_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("a: 1\nb: [x, y]\n")
    assert load_yaml(path) == {"a": 1, "b": ["x", "y"]}
