//! Numbers for people, as `report/human.py` writes them in the tables: `conns`' default table
//! shows a duration and two sizes a connection (75,000 rows on the benchmark capture), and
//! making those texts in Python, a string a cell, cost more than half as much as all the
//! tracking did.
//!
//! The arithmetic is Python's: the same IEEE divisions in the same order, and `{:.N}`, which
//! rounds the exact binary value half to even as Python's `f"{x:.Nf}"` does
//! (tests/test_output.py compares them on random and tie values).

use std::fmt::Write;

use crate::text::push_int;

/// `human.DURATION_UNITS` past nanoseconds: each unit's size in nanoseconds.
const DURATION_UNITS: [(&str, f64); 5] = [
    ("µs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("min", 60e9),
    ("h", 3600e9),
];

/// `human.duration`: three significant digits, `250 µs`, `10.3 ms`, `1.20 s`, `16.7 min`.
pub fn push_duration(out: &mut String, ns: i64) {
    if ns < 1000 {
        push_int(out, ns);
        out.push_str(" ns");
        return;
    }
    let last = DURATION_UNITS.len() - 1;
    for (k, (unit, scale)) in DURATION_UNITS.into_iter().enumerate() {
        // Python's int / float: the int made a float (rounded to nearest), then divided
        let value = ns as f64 / scale;
        if value < 999.5 || k == last {
            let digits = if value >= 99.95 {
                0
            } else if value >= 9.995 {
                1
            } else {
                2
            };
            let _ = write!(out, "{value:.digits$} {unit}");
            return;
        }
    }
}

/// `human.size`: bytes in decimal units, `100 B`, `1.2 kB`, `3.4 MB` (as ss and tshark).
pub fn push_size(out: &mut String, n: i64) {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    for (k, unit) in UNITS.into_iter().enumerate() {
        if value < 1000.0 || k == UNITS.len() - 1 {
            let digits = if k == 0 { 0 } else { 1 };
            let _ = write!(out, "{value:.digits$} {unit}");
            return;
        }
        value /= 1000.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(ns: i64) -> String {
        let mut s = String::new();
        push_duration(&mut s, ns);
        s
    }

    fn size(n: i64) -> String {
        let mut s = String::new();
        push_size(&mut s, n);
        s
    }

    #[test]
    fn durations_as_human_py_writes_them() {
        // python -c "from portlens.report.human import duration; print(duration(N))"
        assert_eq!(duration(0), "0 ns");
        assert_eq!(duration(999), "999 ns");
        assert_eq!(duration(1000), "1.00 µs");
        assert_eq!(duration(1125), "1.12 µs"); // a tie: half to even
        assert_eq!(duration(1375), "1.38 µs");
        assert_eq!(duration(9_995), "10.0 µs"); // 9.995 itself: one decimal, rounded up
        assert_eq!(duration(9_991), "9.99 µs");
        assert_eq!(duration(99_949), "99.9 µs");
        assert_eq!(duration(99_950), "100 µs");
        assert_eq!(duration(59_999_999_999), "60.0 s");
        assert_eq!(duration(3_599_999_999_999), "60.0 min");
        assert_eq!(duration(45_500_000), "45.5 ms");
        assert_eq!(duration(999_499), "999 µs");
        assert_eq!(duration(999_500), "1.00 ms");
        assert_eq!(duration(1_000_000_000), "1.00 s");
        assert_eq!(duration(1_000_000_000_000), "16.7 min");
        assert_eq!(duration(9_000_000_000_000_000_000), "2500000 h");
        assert_eq!(duration(-5), "-5 ns");
    }

    #[test]
    fn sizes_as_human_py_writes_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1000), "1.0 kB");
        assert_eq!(size(1250), "1.2 kB"); // a tie: half to even
        assert_eq!(size(13_700), "13.7 kB");
        assert_eq!(size(999_950), "1000.0 kB");
        assert_eq!(size(1_000_000), "1.0 MB");
        assert_eq!(size(999_949_999), "999.9 MB");
        assert_eq!(size(i64::MAX), "9223372.0 TB");
        assert_eq!(size(-3), "-3 B");
    }
}
