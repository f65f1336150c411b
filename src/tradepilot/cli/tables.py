"""Tables that fit the terminal: columns chosen by width, never squeezed into "…".

rich shrinks every column of a table wider than the console until each cell is cut to
"…". :func:`fit_table` instead keeps whole columns, most important first, while the
table fits the width; the columns left out are named in the caption (``--wide`` shows
them all). Cells and headers never wrap, so every number is shown in full or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

import typer
from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "WideOpt", "fit_table", "print_table", "table_width"]

WideOpt = Annotated[
    bool, typer.Option("--wide", help="Show every column, even past the terminal's width.")
]

T = TypeVar("T")


@dataclass(frozen=True)
class Column(Generic[T]):
    """One column: its header, how a row's cell reads, and how much it matters.

    ``rank``: columns with a lower rank are kept first when the width is short; the
    table still shows the kept columns in their declared order.
    """

    header: str
    cell: Callable[[T], str]
    rank: int = 0
    justify: JustifyMethod = "right"


def _cell_len(markup: str) -> int:
    return Text.from_markup(markup).cell_len


def table_width(widths: Sequence[int]) -> int:
    """Width of a boxed rich table whose columns hold ``widths`` characters.

    Each column has one space of padding on either side and one rule between columns and
    at both edges.
    """
    return sum(w + 2 for w in widths) + len(widths) + 1


def fit_table(
    title: str,
    key_header: str,
    columns: Sequence[Column[T]],
    rows: Sequence[tuple[str, T]],
    width: int | None,
    *,
    wide: bool = False,
    caption: str = "",
    sections_after: Sequence[int] = (),
) -> Table:
    """A table of ``rows`` (key, item) with as many ``columns`` as fit in ``width``.

    ``width`` None or ``wide`` keeps every column. ``sections_after``: row indices after
    which a rule is drawn.
    """
    cells = [[c.cell(item) for c in columns] for _, item in rows]
    need = [
        max([_cell_len(c.header), *(_cell_len(r[i]) for r in cells)]) for i, c in enumerate(columns)
    ]
    key_need = max([_cell_len(key_header), *(_cell_len(k) for k, _ in rows)])
    kept = list(range(len(columns)))
    if width is not None and not wide:
        kept = []
        for i in sorted(range(len(columns)), key=lambda i: (columns[i].rank, i)):
            if table_width([key_need, *(need[j] for j in kept), need[i]]) <= width:
                kept.append(i)
        kept.sort()
    left_out = [columns[i].header for i in range(len(columns)) if i not in kept]
    notes = [caption] if caption else []
    if left_out:
        notes.append(f"not shown at this width (--wide): {', '.join(left_out)}")
    table = Table(
        title=title,
        title_justify="left",
        caption="\n".join(notes) or None,
        caption_justify="left",
    )
    table.add_column(key_header, no_wrap=True)
    for i in kept:
        table.add_column(columns[i].header, justify=columns[i].justify, no_wrap=True)
    for n, ((key, _), row) in enumerate(zip(rows, cells, strict=True)):
        table.add_row(key, *(row[i] for i in kept), end_section=n in sections_after)
    return table


def print_table(console: Console, table: Table, wide: bool = False) -> None:
    """Print ``table``; ``wide`` lets it run past the terminal's width rather than squeeze."""
    width = None
    if wide:
        natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
        width = max(console.width, natural)
    console.print(table, width=width)
