//! Numbers as text, written by hand for every writer of lines: conn.log, CSV and JSON rows,
//! the packet listing, tables and uids. `write!` goes through `core::fmt` (a formatter, its
//! padding rules, a call per piece) and cost several times more: a fifth of the packet
//! listing's time, and most of a conn.log line's.

/// The longest decimal text of an i64 (a sign and 19 digits) or a u64 (20 digits).
pub const DECIMAL_MAX: usize = 20;

/// Two digits at a time: half the divisions of one at a time.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// `n`'s digits written at the end of `buf`; the index of the first.
fn digits(mut n: u64, buf: &mut [u8; DECIMAL_MAX]) -> usize {
    let mut i = buf.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    i
}

/// The decimal text of an integer (Python's `repr(int)`) as ASCII bytes, written at the end
/// of `buf`.
pub fn decimal_bytes(v: i64, buf: &mut [u8; DECIMAL_MAX]) -> &[u8] {
    let mut i = digits(v.unsigned_abs(), buf);
    if v < 0 {
        // 19 digits at most for an i64: room for the sign
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// [`decimal_bytes`] as a str.
pub fn decimal(v: i64, buf: &mut [u8; DECIMAL_MAX]) -> &str {
    // digits and a sign only: always UTF-8
    std::str::from_utf8(decimal_bytes(v, buf)).unwrap_or_default()
}

/// Appends an integer's decimal text.
pub fn push_int(out: &mut String, v: impl Into<i64>) {
    let mut buf = [0; DECIMAL_MAX];
    push_ascii(out, decimal_bytes(v.into(), &mut buf));
}

/// Appends an unsigned integer's decimal text (byte and packet counts: u64).
pub fn push_uint(out: &mut String, v: u64) {
    let mut buf = [0; DECIMAL_MAX];
    let i = digits(v, &mut buf);
    push_ascii(out, &buf[i..]);
}

/// Appends `v` (0 <= v < 10^width) in `width` digits, zeros first (fractions of a second).
pub fn push_padded(out: &mut String, v: i64, width: usize) {
    let mut buf = [0; DECIMAL_MAX];
    let digits = decimal_bytes(v, &mut buf);
    for _ in digits.len()..width {
        out.push('0');
    }
    push_ascii(out, digits);
}

/// Appends `v` in lower-case hexadecimal without leading zeros (an IPv6 group).
pub fn push_hex(out: &mut String, v: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12u32, 8, 4, 0] {
        let d = usize::from((v >> shift) & 0xF);
        if d != 0 || started || shift == 0 {
            started = true;
            out.push(char::from(HEX[d]));
        }
    }
}

/// ASCII bytes pushed one by one (no UTF-8 check of a few digits).
pub fn push_ascii(out: &mut String, ascii: &[u8]) {
    for &b in ascii {
        out.push(char::from(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl Fn(&mut String)) -> String {
        let mut s = String::new();
        f(&mut s);
        s
    }

    #[test]
    fn integers_as_write_writes_them() {
        for v in [
            0,
            7,
            9,
            10,
            99,
            100,
            101,
            65_535,
            -1,
            -10,
            -100,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(text(|s| push_int(s, v)), v.to_string());
        }
        for v in [0, 9, 10, 1_000_000, u64::MAX, u64::from(u32::MAX) + 1] {
            assert_eq!(text(|s| push_uint(s, v)), v.to_string());
        }
        assert_eq!(decimal(-42, &mut [0; DECIMAL_MAX]), "-42");
    }

    #[test]
    fn padded_and_hex_as_write_writes_them() {
        for (v, w) in [(0, 6), (5, 6), (123_456, 6), (999_999_999, 9), (1, 9)] {
            assert_eq!(text(|s| push_padded(s, v, w)), format!("{v:0w$}"));
        }
        for v in [
            0u16, 1, 0xf, 0x10, 0xab, 0x100, 0xfff, 0x1000, 0xffff, 0x0db8,
        ] {
            assert_eq!(text(|s| push_hex(s, v)), format!("{v:x}"));
        }
    }
}
