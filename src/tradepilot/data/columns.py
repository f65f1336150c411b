"""Exact, vectorised conversion of text columns to raw fixed-point ints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

_I64 = pa.int64()
_STR = pa.string()
_DECIMAL_RE = r"^[0-9]{1,9}(\.[0-9]{1,9})?$"


def decimal_strings_to_raw(
    values: pa.Array | pa.ChunkedArray | Sequence[str],
) -> npt.NDArray[np.int64]:
    """Exact raw fixed-point ints of plain non-negative decimal strings (vectorised).

    Accepts ``"123"``, ``"0.00009"``, ``"61837.63"``: at most 9 integer and 9
    fractional digits, no sign, no exponent. Anything else raises ``ValueError``
    naming the first bad row (0-based).
    """
    arr = _as_string_array(values)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    ok = pc.fill_null(pc.match_substring_regex(arr, _DECIMAL_RE), False)
    if not pc.all(ok).as_py():
        bad = int(np.flatnonzero(~ok.to_numpy(zero_copy_only=False))[0])
        raise BadDecimal(bad, arr[bad].as_py())
    has_dot = pc.match_substring(arr, ".")
    parts = pc.split_pattern(
        pc.if_else(has_dot, arr, pc.binary_join_element_wise(arr, ".", "")), ".", max_splits=1
    )
    frac = pc.utf8_rpad(pc.list_element(parts, 1), width=9, padding="0")
    digits = pc.binary_join_element_wise(pc.list_element(parts, 0), frac, "")
    out: npt.NDArray[np.int64] = pc.cast(digits, _I64).to_numpy(zero_copy_only=False)
    return out


class BadDecimal(ValueError):
    def __init__(self, row: int, value: object) -> None:
        super().__init__(f"row {row}: not a plain decimal number: {value!r}")
        self.row = row
        self.value = value


def _as_string_array(values: Any) -> Any:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    elif not isinstance(values, pa.Array):
        values = pa.array(list(values), type=_STR)
    if values.type != _STR:
        values = values.cast(_STR)
    return values
