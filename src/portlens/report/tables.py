"""Tables that fit the terminal: cells never wrap mid-number; when a table is too wide,
low-priority columns are left out (and stderr says which), since JSON/CSV have them all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich import box
from rich.console import Console
from rich.table import Table

WRAP_MIN = 16
"""Columns allowed to fold are never narrower than this."""


def fitting_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *,
                  drop_order: Sequence[str] = (), wrap: frozenset[str] = frozenset(),
                  headers: Mapping[str, str] | None = None, title: str | None = None,
                  console: Console | None = None, right: frozenset[str] = frozenset(),
                  total_row: bool = False, wrap_width: int = WRAP_MIN
                  ) -> tuple[Table, list[str]]:
    """The widest table (leaving out ``drop_order`` columns first) that fits the console;
    returns it and the names left out. ``right`` columns are right-aligned (numbers); with
    ``total_row`` the last row is a bold totals row under a rule. ``wrap`` columns fold (never
    narrower than WRAP_MIN) and count as ``wrap_width`` wide when deciding what fits.

    The natural width is measured unconstrained (rich would rather cut a no-wrap cell with an
    ellipsis than say a table does not fit), counting ``wrap`` columns at their folded width.
    """
    console = console or Console()
    names = list(columns)
    headers = headers or {}

    def content(name: str) -> int:
        i = names.index(name)
        return max([len(line) for line in headers.get(name, name).split("\n")]
                   + [len(row[i]) for row in rows])

    def build(keep: list[str]) -> Table:
        index = [names.index(name) for name in keep]
        table = Table(title=title, title_justify="left", header_style="bold",
                      box=box.SIMPLE_HEAD, pad_edge=False)
        for name in keep:
            if name in wrap:
                table.add_column(headers.get(name, name), overflow="fold", min_width=WRAP_MIN)
            else:
                table.add_column(headers.get(name, name), no_wrap=True,
                                 justify="right" if name in right else "left")
        body = rows[:-1] if total_row else rows
        for row in body:
            table.add_row(*(row[i] for i in index))
        if total_row and rows:
            table.add_section()
            table.add_row(*(rows[-1][i] for i in index), style="bold")
        return table

    unconstrained = console.options.update_width(1 << 16)
    keep = list(names)
    drop = [name for name in drop_order if name in keep]
    while True:
        table = build(keep)
        natural = console.measure(table, options=unconstrained).maximum
        natural -= sum(max(content(n) - wrap_width, 0) for n in keep if n in wrap)
        if natural <= console.width or not drop:
            return table, [name for name in names if name not in keep]
        keep.remove(drop.pop(0))


def print_fitting(columns: Sequence[str], rows: Sequence[Sequence[str]], *,
                  drop_order: Sequence[str] = (), wrap: frozenset[str] = frozenset(),
                  headers: Mapping[str, str] | None = None, title: str | None = None) -> None:
    console = Console()
    table, left_out = fitting_table(columns, rows, drop_order=drop_order, wrap=wrap,
                                    headers=headers, title=title, console=console)
    console.print(table)
    if left_out:
        # One line, however narrow the terminal: scripts grep stderr for it.
        Console(stderr=True, soft_wrap=True).print(
            f"({', '.join(left_out)} left out to fit the terminal; --json has everything)",
            style="dim")
