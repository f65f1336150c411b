from __future__ import annotations

from tradepilot.data.streams import merge_streams
from tradepilot.model.data import TradeTick


def _ticks(iid: str, times: list[int]) -> list[TradeTick]:
    return [TradeTick(iid, t, 1, 1, 0, f"{iid}{i}") for i, t in enumerate(times)]


def test_merge_is_time_ordered_with_a_fixed_tie_break() -> None:
    a = _ticks("A", [1, 3, 3, 5])
    b = _ticks("B", [2, 3, 4])
    merged = list(merge_streams(a, b))
    assert [t.ts for t in merged] == [1, 2, 3, 3, 3, 4, 5]
    assert [t.trade_id for t in merged if t.ts == 3] == ["A1", "A2", "B1"]
    assert list(merge_streams(a, b)) == merged


def test_merge_handles_empty_and_single_streams() -> None:
    a = _ticks("A", [1, 2])
    assert list(merge_streams(a)) == a
    assert list(merge_streams([], a, [])) == a
