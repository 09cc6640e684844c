//! Fixed-width table lines, as `report/tables.py` `Layout.ascii_format` writes them: `sockets`
//! prints a line per connection end (150,000 on the benchmark capture), and padding them one
//! `str.format` at a time was a fifth of that command's Python.

/// One shown column: its width and whether it is right-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Align {
    pub width: usize,
    pub right: bool,
}

/// Cells the fast path may pad by their length: printable ASCII is one column a byte. Any other
/// text (wide characters, control bytes) goes through the Python layout, which cleans it.
pub fn printable_ascii(cell: &str) -> bool {
    cell.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Appends one row's line and its newline: each cell padded to its column's width (a longer
/// cell is never cut), the last one as it is when it is left-aligned, `sep` between them, and
/// the line's trailing spaces dropped (Python's `fmt.format(*cells).rstrip()`).
pub fn push_row(out: &mut String, cells: &[&str], columns: &[Align], sep: &str) {
    let start = out.len();
    let last = cells.len().saturating_sub(1);
    for (k, (cell, column)) in cells.iter().zip(columns).enumerate() {
        if k > 0 {
            out.push_str(sep);
        }
        let fill = column.width.saturating_sub(cell.len());
        if k == last && !column.right {
            out.push_str(cell);
        } else if column.right {
            pad(out, fill);
            out.push_str(cell);
        } else {
            out.push_str(cell);
            pad(out, fill);
        }
    }
    let kept = out[start..].trim_end_matches(' ').len();
    out.truncate(start + kept);
    out.push('\n');
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
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
    fn printable_ascii_is_space_to_tilde() {
        assert!(printable_ascii(" az~"));
        assert!(!printable_ascii("a\tb"));
        assert!(!printable_ascii("\x7f"));
        assert!(!printable_ascii("é"));
    }
}
