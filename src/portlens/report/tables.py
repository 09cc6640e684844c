"""Every table portlens prints (conns, ports, handshakes, sockets, packets --stats, interfaces,
the live view) goes through this one renderer, which writes plain text.

Why not rich's Table: it reads cells as markup and emoji codes (``[fe80::1]:40000`` came out
as ``:40000``, ``fc00:0:2:100:1:1`` with a 💯 in it), it lays the whole table out before the
first row appears (minutes and hundreds of MB for 50,000 connections), and it cuts or wraps
cells to fit. Here a cell is text and nothing else (control characters are shown escaped);
column widths come from the first rows (all of them on ordinary tables), so rows are written as
they come; on a terminal whole columns are left out to fit, in an order each table gives,
never a part of a cell, and the caller says which and that ``--wide`` brings them back. When
standard output is not a terminal, every column is printed in full, plain and aligned, as ss
and ps do, so grep, awk and ``less -S`` see everything.
"""

from __future__ import annotations

import functools
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, TextIO, TypeVar, overload

from portlens.report import human
from portlens.report.clock import Clock

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SEP = "  "
"""Between columns."""
FIRST_ROWS = 1000
"""Column widths are decided on at most this many rows; later rows wider than a column push
the rest of their line right instead of being cut."""
CODED_ROWS = 16384
"""Rows of columns whose text the core makes (CoreCells) written at once: a few MB of
text."""
FIRST_WAIT = 0.5
"""...or, on a live capture, on the rows that came within this many seconds, so that its first
rows show at once. Files wait for FIRST_ROWS (or their end): the layout of a file's table never
depends on how fast the machine was."""
FOLD_WIDTH = 16
"""A folding column is given at least this width (or its longest part) before columns are
left out for it."""

BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"


@dataclass(frozen=True)
class Column:
    """One column: its name (what notes call it), its header (lines split at ``\\n``), numbers
    right-aligned, and whether a terminal may fold it onto several lines between the parts of
    a list (``2 completed, 1 refused``)."""

    name: str
    header: str = ""
    right: bool = False
    fold: bool = False

    @property
    def title(self) -> str:
        return self.header or self.name


@dataclass
class Screen:
    """Where tables go: ``width`` is the terminal's columns, None when every column is printed
    in full (standard output is not a terminal, or ``--wide``); ``style`` allows bold headers,
    ``err_style`` dim notes on stderr."""

    out: TextIO
    err: TextIO
    width: int | None = None
    style: bool = False
    err_style: bool = False
    first_wait: float | None = None
    """Seconds after its first row that a table is laid out at the latest (live capture)."""

    def note(self, text: str) -> None:
        """One line on stderr (the counts under a table), never folded: scripts grep it."""
        text = clean(text)
        self.err.write(f"{DIM}{text}{RESET}\n" if self.err_style else text + "\n")
        self.err.flush()


def clean(text: str) -> str:
    """The text with control characters (an escape sequence in a file name...) spelled out,
    so nothing in a cell can move the cursor or recolour the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def width_of(text: str) -> int:
    """Terminal cells the text takes (µ is one, a CJK character two)."""
    if text.isascii():
        return len(text)
    from rich.cells import cell_len  # rich's start (3 ms) only for text that needs it

    return cell_len(text)


def _pad(text: str, width: int, right: bool) -> str:
    if text.isascii():  # the common case, in C: a table can have a row per connection
        return text.rjust(width) if right else text.ljust(width)
    fill = width - width_of(text)
    if fill <= 0:
        return text
    return " " * fill + text if right else text + " " * fill


def fold_parts(text: str) -> list[str]:
    """A list cell's unbreakable parts: '5 completed, 2 refused' -> ['5 completed,',
    '2 refused']: a number stays with its word."""
    parts = text.split(", ")
    return [p + "," for p in parts[:-1]] + parts[-1:]


def _fold(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for part in fold_parts(text):
        if lines and width_of(lines[-1]) + 1 + width_of(part) <= width:
            lines[-1] += " " + part
        else:
            lines.append(part)
    return lines or [""]


@dataclass
class Layout:
    """Which columns are shown and how wide, decided once from the header and sample rows."""

    columns: Sequence[Column]
    shown: list[int]
    widths: list[int]
    left_out: list[str] = field(default_factory=list)
    folds: bool = True
    """False when printing in full: a later, longer list cell stays on one line."""

    @classmethod
    def fit(cls, columns: Sequence[Column], sample: Iterable[Sequence[str]],
            width: int | None, drop_order: Sequence[str] = (), fold_width: int = FOLD_WIDTH
            ) -> Layout:
        """The widest layout that fits ``width`` (None: every column in full), leaving out
        the ``drop_order`` columns first, one whole column at a time. Columns not named in
        ``drop_order`` are never left out, even if the line is then wider than the terminal:
        the terminal wraps it, nothing is cut."""
        n = len(columns)
        natural = [max(width_of(line) for line in c.title.split("\n")) for c in columns]
        least = list(natural)  # the narrowest a folding column can be without a cut part
        for row in sample:
            for i, cell in enumerate(row):
                w = width_of(cell)
                natural[i] = max(natural[i], w)
                if columns[i].fold and w > least[i]:
                    least[i] = max(least[i], *(width_of(p) for p in fold_parts(cell)))
        want = [min(natural[i], max(least[i], fold_width)) if columns[i].fold else natural[i]
                for i in range(n)]
        shown = list(range(n))
        if width is None:
            return cls(columns, shown, natural, folds=False)

        def need(keep: list[int]) -> int:
            return sum(want[i] for i in keep) + len(SEP) * (len(keep) - 1)

        names = [c.name for c in columns]
        for name in drop_order:
            if need(shown) <= width:
                break
            if name in names and names.index(name) in shown:
                shown.remove(names.index(name))
        widths = [want[i] if i in shown else 0 for i in range(n)]
        spare = width - need(shown)
        for i in shown:  # folding columns take what is left, up to their full width
            if columns[i].fold and spare > 0:
                grow = min(spare, natural[i] - widths[i])
                widths[i] += grow
                spare -= grow
        left_out = [names[i] for i in range(n) if i not in shown]
        return cls(columns, shown, [widths[i] for i in range(n)], left_out)

    @property
    def total_width(self) -> int:
        return sum(self.widths[i] for i in self.shown) + len(SEP) * (len(self.shown) - 1)

    def header_lines(self) -> list[str]:
        titles = [self.columns[i].title.split("\n") for i in self.shown]
        height = max(len(t) for t in titles)
        # multi-line headers sit on the bottom line, next to the cells they name
        titles = [[""] * (height - len(t)) + t for t in titles]
        return [self._join([titles[k][line] for k in range(len(self.shown))])
                for line in range(height)]

    @functools.cached_property
    def ascii_format(self) -> str | None:
        """The row as one ``str.format`` when none of its cells can fold (ASCII cells are as
        wide as they are long, so padding them is what ``_join`` does): sockets prints one
        line per connection, 150,000 on the benchmark capture."""
        if len(self.shown) < 2 or (self.folds and any(self.columns[i].fold for i in self.shown)):
            return None
        last = len(self.shown) - 1
        parts = []
        for k, i in enumerate(self.shown):
            column, width = self.columns[i], self.widths[i]
            parts.append("{}" if k == last and not column.right
                         else f"{{:{'>' if column.right else '<'}{width}}}")
        return SEP.join(parts)

    def line(self, row: Sequence[str]) -> str | None:
        """The row's one line when its cells are printable ASCII and cannot fold, else None
        (``lines`` then)."""
        fmt = self.ascii_format
        if fmt is None:
            return None
        cells = [row[i] for i in self.shown]
        text = "".join(cells)
        if not (text.isascii() and text.isprintable()):
            return None
        return fmt.format(*cells).rstrip()

    def lines(self, row: Sequence[str]) -> list[str]:
        cells = [row[i] for i in self.shown]
        folded: list[list[str]] | None = None
        for k, i in enumerate(self.shown):
            if self.folds and self.columns[i].fold and width_of(cells[k]) > self.widths[i]:
                folded = folded or [[c] for c in cells]
                folded[k] = _fold(cells[k], self.widths[i])
        if folded is None:
            return [self._join(cells)]
        height = max(len(f) for f in folded)
        return [self._join([f[line] if line < len(f) else "" for f in folded])
                for line in range(height)]

    def _join(self, cells: Sequence[str]) -> str:
        last = len(self.shown) - 1
        parts = []
        for k, (i, cell) in enumerate(zip(self.shown, cells, strict=True)):
            column = self.columns[i]
            parts.append(cell if k == last and not column.right
                         else _pad(cell, self.widths[i], column.right))
        return SEP.join(parts).rstrip()


_Cells = TypeVar("_Cells", bound="CoreCells")


class CoreCells(Sequence[str]):
    """A column whose rows' text the core makes from numbers and codes once the layout is
    fixed (``_write_chunk``, crates/core/src/table.rs ``Cells``), so that a column a
    connection costs no Python string a row; in Python it reads as that same text, a
    sequence of str like any column (the layout's first rows, a narrow terminal's lines)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def text(self, i: int) -> str:
        """Row ``i``'s text."""
        raise NotImplementedError

    def cut(self: _Cells, rows: slice) -> _Cells:
        """The cells of ``rows``."""
        raise NotImplementedError

    def core_column(self) -> tuple[object, ...]:
        """The column as ``_core.table_lines`` takes it (crates/py/src/table.rs): the kind's
        name and its numbers."""
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self: _Cells, i: slice) -> _Cells: ...

    def __getitem__(self: _Cells, i: int | slice) -> str | _Cells:
        return self.cut(i) if isinstance(i, slice) else self.text(i)


@dataclass(frozen=True)
class CodedCells(CoreCells):
    """A column whose cells repeat, as its distinct ``texts`` and each row's index into them,
    optionally followed by ``:`` and the row's ``port`` (none where it is negative): the
    endpoint ``10.0.0.1:80`` (an IPv6 address's text carries its brackets). `sockets`: 150,000
    rows of addresses."""

    texts: list[str]
    codes: npt.NDArray[np.int64] | array[int]
    """An int64 array, or an ``array`` of type code q (`sockets`, which needs no NumPy)."""
    port: npt.NDArray[np.int64] | array[int] | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def text(self, i: int) -> str:
        text = self.texts[self.codes[i]]
        return text if self.port is None or self.port[i] < 0 else f"{text}:{self.port[i]}"

    def cut(self, rows: slice) -> CodedCells:
        return CodedCells(self.texts, self.codes[rows],
                          None if self.port is None else self.port[rows])

    def core_column(self) -> tuple[object, ...]:
        return ("coded", self.texts, _core_ints(self.codes),
                None if self.port is None else _core_ints(self.port))

    def __iter__(self) -> Iterator[str]:
        texts = [self.texts[c] for c in self.codes.tolist()]
        if self.port is None:
            return iter(texts)
        return (t if p < 0 else f"{t}:{p}"
                for t, p in zip(texts, self.port.tolist(), strict=True))


@dataclass(frozen=True)
class FixedCells(CoreCells):
    """A column of texts of one ``width``, one after another in ``joined``, each row showing
    the one its code names: `sockets`' uids, each connection's on its two lines, which are
    then never made a str each."""

    joined: str
    width: int
    codes: npt.NDArray[np.int64] | array[int]

    def __len__(self) -> int:
        return len(self.codes)

    def text(self, i: int) -> str:
        start = self.codes[i] * self.width
        return self.joined[start:start + self.width]

    def cut(self, rows: slice) -> FixedCells:
        return FixedCells(self.joined, self.width, self.codes[rows])

    def core_column(self) -> tuple[object, ...]:
        return ("fixed", self.joined, self.width, _core_ints(self.codes))

    def __iter__(self) -> Iterator[str]:
        joined, width = self.joined, self.width
        return (joined[c * width:(c + 1) * width] for c in self.codes.tolist())


def _core_ints(values: npt.NDArray[np.int64] | array[int]) -> object:
    """Numbers as ``_core.table_lines`` takes them: an int64 array, or an ``array``'s bytes."""
    if isinstance(values, array):
        if values.typecode != "q":
            raise TypeError(f"an array of type code {values.typecode!r}, not 'q'")
        return values.tobytes()
    return values


@dataclass(frozen=True)
class DurationCells(CoreCells):
    """Durations in nanoseconds, each shown as ``human.duration`` writes it (the core's:
    crates/core/src/human.rs)."""

    ns: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.ns)

    def text(self, i: int) -> str:
        return human.duration(int(self.ns[i]))

    def cut(self, rows: slice) -> DurationCells:
        return DurationCells(self.ns[rows])

    def core_column(self) -> tuple[object, ...]:
        return ("duration", self.ns)

    def __iter__(self) -> Iterator[str]:
        return map(human.duration, self.ns.tolist())


@dataclass(frozen=True)
class PairCells(CoreCells):
    """The originator's and the responder's figure, ``a/b``: counts, or with ``size`` sizes
    as ``human.size`` writes them (``1.2 kB/300 B``)."""

    a: npt.NDArray[np.int64]
    b: npt.NDArray[np.int64]
    size: bool = False

    def __len__(self) -> int:
        return len(self.a)

    def text(self, i: int) -> str:
        return self._pair(int(self.a[i]), int(self.b[i]))

    def _pair(self, a: int, b: int) -> str:
        return f"{human.size(a)}/{human.size(b)}" if self.size else f"{a}/{b}"

    def cut(self, rows: slice) -> PairCells:
        return PairCells(self.a[rows], self.b[rows], self.size)

    def core_column(self) -> tuple[object, ...]:
        return ("pair", self.a, self.b, self.size)

    def __iter__(self) -> Iterator[str]:
        return map(self._pair, self.a.tolist(), self.b.tolist())


@dataclass(frozen=True)
class StampCells(CoreCells):
    """Times (ns since 1970) as ``clock`` shows them, in a style that depends on no other
    row (clock.py ``STAMPED``: epoch, time of day, date); the core is given the text of each
    second in a chunk, the part the time zone's calendar decides."""

    clock: Clock
    ts_ns: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.ts_ns)

    def text(self, i: int) -> str:
        return self.clock.stamp_text(int(self.ts_ns[i]))

    def cut(self, rows: slice) -> StampCells:
        return StampCells(self.clock, self.ts_ns[rows])

    def core_column(self) -> tuple[object, ...]:
        """With the distinct seconds and their texts (``Clock.calendar``)."""
        import numpy as np

        seconds, texts = self.clock.calendar(lambda: np.unique(self.ts_ns // 10**9))
        return ("stamp", self.clock.style, seconds, texts, self.ts_ns)

    def __iter__(self) -> Iterator[str]:
        return map(self.clock.stamp_text, self.ts_ns.tolist())


class TableWriter:
    """A table written as its rows come: the first rows (on a live capture, those of the first
    half second) decide the layout, every later row is written at once. ``close`` writes what
    is pending and returns the names of the columns left out."""

    def __init__(self, screen: Screen, columns: Sequence[Column], *, title: str | None = None,
                 drop_order: Sequence[str] = (), fold_width: int = FOLD_WIDTH,
                 header: bool = True, first_rows: int = FIRST_ROWS) -> None:
        self.screen = screen
        self.header = header
        self.columns = list(columns)
        self.title = title
        self.drop_order = drop_order
        self.fold_width = fold_width
        self.first_rows = first_rows
        self.first_wait = screen.first_wait
        self.layout: Layout | None = None
        self.pending: list[tuple[list[str], bool]] = []
        self.started = 0.0
        self.rows = 0

    def add(self, cells: Sequence[str], *, total: bool = False) -> None:
        """One row (cells in the order of the columns); ``total``: a totals row, under a rule."""
        self.rows += 1
        if self.layout is not None and not total:
            line = self.layout.line(cells)
            if line is not None:
                self.screen.out.write(line + "\n")
                return
        row = [clean(c) for c in cells]
        if self.layout is not None:
            self.screen.out.write(self._text(row, total))
            return
        if not self.pending:
            self.started = time.monotonic()
        self.pending.append((row, total))
        if len(self.pending) >= self.first_rows or (
                self.first_wait is not None
                and time.monotonic() - self.started >= self.first_wait):
            self._start()

    def add_rows(self, rows: Iterable[Sequence[str]]) -> None:
        """``add`` of many rows (each a cell per column); once the layout is fixed, their lines
        are written a thousand at a time (a table with a row per connection has 150,000)."""
        it = iter(rows)
        for cells in it:
            self.add(cells)
            if self.layout is not None:
                break
        if self.layout is None:
            return
        while chunk := list(islice(it, FIRST_ROWS)):
            self._write_chunk(list(zip(*chunk, strict=True)))

    def add_columns(self, columns: Sequence[Sequence[str]]) -> None:
        """``add_rows`` of rows given as columns (one sequence of cells per column, all as
        long), without a tuple a row on the way. Coded columns go to the core in chunks of
        CODED_ROWS: each chunk hands it every distinct text again."""
        n = len(columns[0]) if columns else 0
        done = 0
        while self.layout is None and done < n:
            self.add([column[done] for column in columns])
            done += 1
        step = (CODED_ROWS if any(isinstance(c, CoreCells) for c in columns)
                else FIRST_ROWS)
        for start in range(done, n, step):
            self._write_chunk([column[start:start + step] for column in columns])

    def _write_chunk(self, columns: Sequence[Sequence[str]]) -> None:
        """Up to a thousand rows (CODED_ROWS of coded columns), as columns, once the layout is
        fixed."""
        self.rows += len(columns[0])
        self.screen.out.write(self._chunk_text(columns))

    def _chunk_text(self, columns: Sequence[Sequence[str]]) -> str:
        """The lines of rows given as columns. Every column shown and none folding, the core
        pads them (crates/core/src/table.rs) when all are printable ASCII (or µ), what
        ``Layout.line`` pads as it is: no Python step a row."""
        layout = self.layout
        assert layout is not None
        if layout.ascii_format is not None and layout.shown == list(range(len(self.columns))):
            import portlens._core as core

            text: str | None = core.table_lines([_core_column(c) for c in columns],
                                                layout.widths,
                                                [c.right for c in self.columns], SEP)
            if text is not None:
                return text
        out = []
        for cells in zip(*columns, strict=True):
            line = layout.line(cells)
            out.append(line + "\n" if line is not None
                       else self._text([clean(c) for c in cells], False))
        return "".join(out)

    def close(self) -> list[str]:
        if self.layout is None and self.pending:
            self._start()
        self.screen.out.flush()
        return self.layout.left_out if self.layout is not None else []

    def _start(self) -> None:
        screen = self.screen
        layout = Layout.fit(self.columns, (row for row, _ in self.pending), screen.width,
                            self.drop_order, self.fold_width)
        self.layout = layout
        head = []
        if self.title is not None:
            head.append(self._styled(clean(self.title)))
        if self.header:
            head.extend(self._styled(line) for line in layout.header_lines())
        # The rows that waited for the layout (a table's first thousand), in runs between
        # totals rows (a rule above them: Python's), padded as later rows are.
        body, run = [], []
        for row, total in self.pending:
            if not total:
                run.append(row)
                continue
            if run:
                body.append(self._chunk_text(list(zip(*run, strict=True))))
                run = []
            body.append(self._text(row, total))
        if run:
            body.append(self._chunk_text(list(zip(*run, strict=True))))
        screen.out.write("".join(line + "\n" for line in head) + "".join(body))
        self.pending = []

    def _styled(self, line: str) -> str:
        return f"{BOLD}{line}{RESET}" if self.screen.style and line else line

    def _text(self, row: list[str], total: bool) -> str:
        assert self.layout is not None
        lines = self.layout.lines(row)
        if total:
            lines = ["-" * self.layout.total_width, *(self._styled(x) for x in lines)]
        return "\n".join(lines) + "\n"


def _core_column(cells: Sequence[str]) -> object:
    """A column as ``_core.table_lines`` takes it (crates/py/src/table.rs): a list of str, or
    a tuple of the kind's name and its numbers (``CoreCells.core_column``)."""
    if isinstance(cells, CoreCells):
        return cells.core_column()
    return cells if isinstance(cells, list) else list(cells)


def render(columns: Sequence[Column], rows: Iterable[Sequence[str]], width: int | None, *,
           drop_order: Sequence[str] = (), fold_width: int = FOLD_WIDTH
           ) -> tuple[list[str], list[str], list[str]]:
    """A whole small table at once (the live view): its header lines, its row lines and the
    names left out."""
    rows = [[clean(c) for c in row] for row in rows]
    layout = Layout.fit(columns, rows, width, drop_order, fold_width)
    return (layout.header_lines(), [line for row in rows for line in layout.lines(row)],
            layout.left_out)


def left_out_text(names: Sequence[str], width: int | None) -> str:
    """The note under a table that lost columns: which, and how to get them back."""
    return (f"{', '.join(names)} left out to fit {width} columns; "
            "--wide shows every column")
