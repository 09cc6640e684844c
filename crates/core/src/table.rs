//! Fixed-width table lines, as `report/tables.py` `Layout.ascii_format` writes them: `sockets`
//! prints a line per connection end (150,000 on the benchmark capture), and padding them one
//! `str.format` at a time was a fifth of that command's Python. Its cells repeat (a protocol,
//! a state, an address in many lines), so a column may come as a few distinct texts and each
//! row's index into them ([`Cells::Coded`]): the rows' text is then made here, not in Python.
//! So are numbers a row, as the tables show them: `conns`' durations, counts and sizes
//! ([`Cells::Duration`], [`Cells::Pair`]) and start times ([`Cells::Stamp`]).

use crate::human::{push_duration, push_size};
use crate::packet_text::Clock;
use crate::text::{decimal, push_int, DECIMAL_MAX};

/// One shown column: its width and whether it is right-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Align {
    pub width: usize,
    pub right: bool,
}

/// Cells the fast path may pad by their number of characters: printable ASCII, and the `µ`
/// of durations (`report/human.py`; half the rows of `conns`' table hold one), each one
/// terminal column. Any other text (wide characters, control bytes) goes through the Python
/// layout, which measures and cleans it.
pub fn printable_narrow(cell: &str) -> bool {
    // Every text of every chunk is checked (150,000 uids and addresses for `sockets`): bytes
    // first, with no early exit, which the compiler can do many at a time.
    let ascii = cell
        .bytes()
        .fold(true, |ok, b| ok & (b' '..=b'~').contains(&b));
    ascii || cell.chars().all(|c| (' '..='~').contains(&c) || c == 'µ')
}

/// Terminal columns of a `printable_narrow` cell.
fn width(cell: &str) -> usize {
    if cell.is_ascii() {
        cell.len()
    } else {
        cell.chars().count()
    }
}

/// Appends one row's line and its newline: each cell padded to its column's width (a longer
/// cell is never cut), the last one as it is when it is left-aligned, `sep` between them, and
/// the line's trailing spaces dropped (Python's `fmt.format(*cells).rstrip()`).
pub fn push_row<S: AsRef<str>>(out: &mut String, cells: &[S], columns: &[Align], sep: &str) {
    let start = out.len();
    let mut scratch = String::new();
    for (k, (cell, column)) in cells.iter().zip(columns).enumerate() {
        let last = k + 1 == cells.len();
        push_cell(out, k, *column, last, sep, &mut scratch, |o| {
            o.push_str(cell.as_ref());
            Some(())
        });
    }
    end_line(out, start);
}

/// Appends the `k`th cell of a line, after `sep` unless it is the first: what `write` appends,
/// padded to the column's width (a longer cell is never cut), as it is when it is the `last`
/// and left-aligned. A left-aligned cell is written in place; a right-aligned one in
/// `scratch` first, since its padding comes before it. `None` when `write` gives it.
fn push_cell(
    out: &mut String,
    k: usize,
    column: Align,
    last: bool,
    sep: &str,
    scratch: &mut String,
    write: impl FnOnce(&mut String) -> Option<()>,
) -> Option<()> {
    if k > 0 {
        out.push_str(sep);
    }
    if column.right {
        scratch.clear();
        write(scratch)?;
        pad(out, column.width.saturating_sub(width(scratch)));
        out.push_str(scratch);
    } else {
        let at = out.len();
        write(out)?;
        if !last {
            let fill = column.width.saturating_sub(width(&out[at..]));
            pad(out, fill);
        }
    }
    Some(())
}

/// Ends the line begun at `start`: its trailing spaces dropped (Python's `rstrip()`), then
/// its newline.
fn end_line(out: &mut String, start: usize) {
    let kept = out[start..].trim_end_matches(' ').len();
    out.truncate(start + kept);
    out.push('\n');
}

fn pad(out: &mut String, mut n: usize) {
    // a slice of spaces at a time, not a push a space: most of a line is padding
    const SPACES: &str = "                                                                ";
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push_str(&SPACES[..k]);
        n -= k;
    }
}

/// One column's cells.
#[derive(Debug, Clone)]
pub enum Cells<'a> {
    /// A text a row.
    Text(Vec<&'a str>),
    /// Row `i` shows `texts[codes[i]]`, followed, with `port`, by `:` and `port[i]`: the
    /// endpoint `10.0.0.1:80`, or `[fe80::1]:80` when the text carries the brackets. A
    /// negative port is none: `10.0.0.2 (echo)`, an ICMP responder, in a column of endpoints.
    Coded {
        texts: Vec<&'a str>,
        codes: &'a [i64],
        port: Option<&'a [i64]>,
    },
    /// Row `i` shows the `codes[i]`th text of `width` bytes of `joined`, texts of one width
    /// one after another: `sockets`' uids, each connection's on its two lines, which Python
    /// then never makes a str each.
    Fixed {
        joined: &'a str,
        width: usize,
        codes: &'a [i64],
    },
    /// Row `i` shows the duration `ns[i]` (`human.duration`: `1.20 s`).
    Duration(&'a [i64]),
    /// Row `i` shows `a[i]/b[i]`: two counts, or with `size` two sizes (`human.size`:
    /// `1.2 kB/300 B`), the originator's and the responder's.
    Pair {
        a: &'a [i64],
        b: &'a [i64],
        size: bool,
    },
    /// Row `i` shows the time `ts[i]` as `clock` writes it (a style that depends on no other
    /// row: epoch, time of day, date).
    Stamp { clock: Clock<'a>, ts: &'a [i64] },
}

impl Cells<'_> {
    pub fn len(&self) -> usize {
        match self {
            Cells::Text(texts) => texts.len(),
            Cells::Coded { codes, .. } | Cells::Fixed { codes, .. } => codes.len(),
            Cells::Duration(ns) => ns.len(),
            Cells::Pair { a, .. } => a.len(),
            Cells::Stamp { ts, .. } => ts.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `row`'s cell, appended to `cell`; `None` when its code names no text (or its
    /// time's second has none).
    fn write(&self, row: usize, cell: &mut String) -> Option<()> {
        match self {
            Cells::Text(texts) => cell.push_str(texts.get(row)?),
            Cells::Coded { texts, codes, port } => {
                let code = usize::try_from(*codes.get(row)?).ok()?;
                cell.push_str(texts.get(code)?);
                match port.map(|p| p.get(row).copied()) {
                    Some(Some(p)) if p >= 0 => {
                        cell.push(':');
                        cell.push_str(decimal(p, &mut [0u8; DECIMAL_MAX]));
                    }
                    Some(None) => return None,
                    _ => {}
                }
            }
            Cells::Fixed {
                joined,
                width,
                codes,
            } => {
                let start = usize::try_from(*codes.get(row)?)
                    .ok()?
                    .checked_mul(*width)?;
                cell.push_str(joined.get(start..start.checked_add(*width)?)?);
            }
            Cells::Duration(ns) => push_duration(cell, *ns.get(row)?),
            Cells::Pair { a, b, size } => {
                let push: fn(&mut String, i64) = if *size {
                    push_size
                } else {
                    |out, v| push_int(out, v)
                };
                push(cell, *a.get(row)?);
                cell.push('/');
                push(cell, *b.get(row)?);
            }
            Cells::Stamp { clock, ts } => {
                if !clock.push_stamp(cell, *ts.get(row)?) {
                    return None;
                }
            }
        }
        Some(())
    }

    /// Whether every text a row can show is `printable_narrow` (ports, numbers, units and
    /// fractions are).
    fn printable(&self) -> bool {
        match self {
            Cells::Text(texts) | Cells::Coded { texts, .. } => {
                texts.iter().all(|t| printable_narrow(t))
            }
            Cells::Fixed { joined, .. } => printable_narrow(joined),
            Cells::Duration(_) | Cells::Pair { .. } => true,
            Cells::Stamp { clock, .. } => clock.second_texts.iter().all(|t| printable_narrow(t)),
        }
    }
}

/// The most [`lines`] reserves before it writes: a chunk's lines are a few MB.
const RESERVE_MAX: usize = 1 << 26;

/// Why [`lines`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// Columns of different lengths, or not one alignment a column.
    Shape,
    /// A row's code is negative or past its column's texts.
    Code { column: usize, row: usize },
}

/// Every row's line (as [`push_row`] writes it, each cell written in place), or `Ok(None)` when a cell may not be `printable_narrow`
/// (the caller lays those rows out itself, cleaning their text).
pub fn lines(
    columns: &[Cells<'_>],
    aligns: &[Align],
    sep: &str,
) -> Result<Option<String>, TableError> {
    let n = columns.first().map_or(0, Cells::len);
    if aligns.len() != columns.len() || columns.iter().any(|c| c.len() != n) {
        return Err(TableError::Shape);
    }
    if !columns.iter().all(Cells::printable) {
        return Ok(None);
    }
    if n < PARALLEL_ROWS {
        return rows_text(columns, aligns, sep, 0..n).map(Some);
    }
    // Two halves at once: the long tables (`sockets`: 150,000 lines on the benchmark
    // capture) are written after the capture is read, when the other threads are done.
    let half = n / 2;
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| rows_text(columns, aligns, sep, half..n));
        let first = rows_text(columns, aligns, sep, 0..half);
        (first, second.join())
    });
    let mut out = first?;
    out.push_str(&second.unwrap_or_else(|e| std::panic::resume_unwind(e))?);
    Ok(Some(out))
}

/// Rows at least this many are written by two threads.
const PARALLEL_ROWS: usize = 8192;

/// The lines of `rows` ([`lines`]' work, once its columns are checked).
fn rows_text(
    columns: &[Cells<'_>],
    aligns: &[Align],
    sep: &str,
    rows: std::ops::Range<usize>,
) -> Result<String, TableError> {
    let mut scratch = String::new();
    // A guess at the text's size, bounded: widths come from the caller.
    let line = aligns.iter().fold(1usize, |sum, a| {
        sum.saturating_add(a.width).saturating_add(sep.len())
    });
    let mut out = String::with_capacity(rows.len().saturating_mul(line).min(RESERVE_MAX));
    for row in rows {
        let start = out.len();
        for (k, (column, align)) in columns.iter().zip(aligns).enumerate() {
            let last = k + 1 == columns.len();
            push_cell(&mut out, k, *align, last, sep, &mut scratch, |o| {
                column.write(row, o)
            })
            .ok_or(TableError::Code { column: k, row })?;
        }
        end_line(&mut out, start);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Align = Align {
        width: 5,
        right: false,
    };
    const R: Align = Align {
        width: 4,
        right: true,
    };

    fn line(cells: &[&str], columns: &[Align]) -> String {
        let mut out = String::from("before\n");
        push_row(&mut out, cells, columns, "  ");
        out.split_off("before\n".len())
    }

    #[test]
    fn pads_as_python_format_then_rstrip() {
        // "{:<5}  {:>4}  {}".format("tcp", "12", "x").rstrip()
        assert_eq!(line(&["tcp", "12", "x"], &[L, R, L]), "tcp      12  x\n");
        // a longer cell is not cut
        assert_eq!(
            line(&["abcdefg", "12345", ""], &[L, R, L]),
            "abcdefg  12345\n"
        );
        // an empty last cell, and a left-aligned cell at the end of a line: no trailing spaces
        assert_eq!(line(&["a", "", ""], &[L, R, L]), "a\n");
        // a right-aligned last column is padded
        assert_eq!(line(&["a", "7"], &[L, R]), "a         7\n");
        // only the new line's spaces are trimmed
        let mut out = String::from("kept  ");
        push_row(&mut out, &["", ""], &[L, L], "  ");
        assert_eq!(out, "kept  \n");
    }

    #[test]
    fn many_rows_are_the_lines_of_each_row_in_order() {
        // Past PARALLEL_ROWS two threads write halves: the text is the rows' lines in order,
        // and a bad code in the second half is found there.
        let n = PARALLEL_ROWS * 2 + 1;
        let codes: Vec<i64> = (0..n).map(|i| i64::try_from(i % 3).unwrap()).collect();
        let ports: Vec<i64> = (0..n).map(|i| i64::try_from(i).unwrap()).collect();
        let columns = [Cells::Coded {
            texts: vec!["a", "bb", "[fe80::1]"],
            codes: &codes,
            port: Some(&ports),
        }];
        let text = lines(&columns, &[L], " ").unwrap().unwrap();
        let mut expected = String::new();
        for i in 0..n {
            let cell = format!("{}:{i}", ["a", "bb", "[fe80::1]"][i % 3]);
            push_row(&mut expected, &[cell], &[L], " ");
        }
        assert_eq!(text, expected);
        let mut bad = codes.clone();
        bad[n - 2] = 7;
        let wrong = [Cells::Coded {
            texts: vec!["a", "bb", "[fe80::1]"],
            codes: &bad,
            port: None,
        }];
        assert_eq!(
            lines(&wrong, &[L], " "),
            Err(TableError::Code {
                column: 0,
                row: n - 2
            })
        );
    }

    #[test]
    fn coded_cells_show_their_text_and_port() {
        let codes = [1, 0, 1];
        let ports = [80, 65535, 0];
        let states = [2, 2, 0];
        let columns = [
            Cells::Coded {
                texts: vec!["10.0.0.1", "[fe80::1]"],
                codes: &codes,
                port: Some(&ports),
            },
            Cells::Coded {
                texts: vec!["ESTAB", "-", "SYN-SENT"],
                codes: &states,
                port: None,
            },
            Cells::Text(vec!["C1", "", "C3"]),
        ];
        let aligns = [
            Align {
                width: 14,
                right: false,
            },
            L,
            L,
        ];
        assert_eq!(
            lines(&columns, &aligns, "  ").unwrap().unwrap(),
            "[fe80::1]:80    SYN-SENT  C1\n10.0.0.1:65535  SYN-SENT\n[fe80::1]:0     ESTAB  C3\n"
        );
        let bad = [-1];
        let wrong = [Cells::Coded {
            texts: vec!["a"],
            codes: &bad,
            port: None,
        }];
        assert_eq!(
            lines(&wrong, &[L], " "),
            Err(TableError::Code { column: 0, row: 0 })
        );
        assert_eq!(lines(&columns, &[L], " "), Err(TableError::Shape));
        // Texts of one width, one after another: a uid on each of a connection's two lines.
        let uids = [0, 0, 1, 1];
        let fixed = [Cells::Fixed {
            joined: "C1C2",
            width: 2,
            codes: &uids,
        }];
        assert_eq!(
            lines(&fixed, &[L], " ").unwrap().unwrap(),
            "C1\nC1\nC2\nC2\n"
        );
        let past = [2];
        let short = [Cells::Fixed {
            joined: "C1C2",
            width: 2,
            codes: &past,
        }];
        assert_eq!(
            lines(&short, &[L], " "),
            Err(TableError::Code { column: 0, row: 0 })
        );
        let odd = [Cells::Text(vec!["é"])];
        assert_eq!(lines(&odd, &[L], " "), Ok(None));
        // µ is one column: padded by characters, not bytes.
        let micro = [
            Cells::Text(vec!["25 µs", "1.20 s"]),
            Cells::Text(vec!["x", "y"]),
        ];
        let right = Align {
            width: 6,
            right: true,
        };
        assert_eq!(
            lines(&micro, &[right, L], "|").unwrap().unwrap(),
            " 25 µs|x\n1.20 s|y\n"
        );
    }

    #[test]
    fn numbers_are_written_as_the_tables_show_them() {
        use crate::packet_text::Style;
        let ns = [999, 1_200_000_000];
        let (a, b) = ([1, 13_700], [0, 999]);
        let ts = [1_700_000_000_000_000_001, 1_700_000_001_250_000_000];
        let texts = ["22:13:20".to_string(), "22:13:21".to_string()];
        let clock = Clock {
            style: Style::Time,
            seconds: &[1_700_000_000, 1_700_000_001],
            second_texts: &texts,
            first_ns: None,
            previous_ns: None,
        };
        let codes = [0, 1];
        let ports = [80, -1];
        let columns = [
            Cells::Stamp { clock, ts: &ts },
            Cells::Coded {
                texts: vec!["10.0.0.1", "10.0.0.2 (echo)"],
                codes: &codes,
                port: Some(&ports),
            },
            Cells::Duration(&ns),
            Cells::Pair {
                a: &a,
                b: &b,
                size: false,
            },
            Cells::Pair {
                a: &a,
                b: &b,
                size: true,
            },
        ];
        let aligns = [L, L, R, R, R];
        assert_eq!(
            lines(&columns, &aligns, " ").unwrap().unwrap(),
            "22:13:20.000000001 10.0.0.1:80 999 ns  1/0 1 B/0 B\n\
             22:13:21.250000 10.0.0.2 (echo) 1.20 s 13700/999 13.7 kB/999 B\n"
        );
        // a time whose second has no text is refused, as a code without one is
        let lost = Clock {
            style: Style::Time,
            seconds: &[1_700_000_000],
            second_texts: &texts[..1],
            first_ns: None,
            previous_ns: None,
        };
        let one = [Cells::Stamp {
            clock: lost,
            ts: &ts,
        }];
        assert_eq!(
            lines(&one, &[L], " "),
            Err(TableError::Code { column: 0, row: 1 })
        );
    }

    #[test]
    fn printable_narrow_is_space_to_tilde_and_micro() {
        assert!(printable_narrow(" az~"));
        assert!(printable_narrow("250 µs"));
        assert!(!printable_narrow("a\tb"));
        assert!(!printable_narrow("\x7f"));
        assert!(!printable_narrow("é"));
        assert!(!printable_narrow("東"));
    }
}
