//! Identifiers the tracker gives a flow: Zeek-style uids (the same generation as the Python
//! reference, so rows match) and Community ID v1 (github.com/corelight/community-id-spec).

use crate::text::{decimal_bytes, DECIMAL_MAX};
use sha1::{Digest, Sha1};

const B62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A uid without its leading 'C': 17 base-62 characters.
pub type Uid = [u8; 17];

/// A uid as Zeek writes it: `C` and its 17 characters, into `out` (cleared first), so that a
/// writer of many reuses one buffer.
pub fn write_uid(out: &mut String, u: &Uid) {
    out.clear();
    out.push('C');
    out.extend(u.iter().map(|&b| char::from(b)));
}

/// Python's `repr()` text of each byte inside `b'...'`, four bytes a byte (the text, then
/// padding), and its length.
const REPR: [([u8; 4], u8); 256] = repr_table();

const fn repr_table() -> [([u8; 4], u8); 256] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [([0u8; 4], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b'\\' => ([b'\\', b'\\', 0, 0], 2),
            b'\t' => ([b'\\', b't', 0, 0], 2),
            b'\n' => ([b'\\', b'n', 0, 0], 2),
            b'\r' => ([b'\\', b'r', 0, 0], 2),
            b'\'' => ([b'\\', b'\'', 0, 0], 2),
            32..=126 => ([c, 0, 0, 0], 1),
            _ => (
                [b'\\', b'x', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]],
                4,
            ),
        };
        i += 1;
    }
    t
}

/// Appends Python's `repr()` of a bytes object, which the Python tracker hashes into uids
/// (twice an address for every uid): each byte's text from a table into a local buffer, four
/// bytes at once, the buffer into `out` in one copy.
pub fn push_bytes_repr(out: &mut Vec<u8>, b: &[u8]) {
    // Python quotes with " when the bytes hold a ' and no ": then ' is left as it is.
    let double = b.contains(&b'\'') && !b.contains(&b'"');
    let quote = if double { b'"' } else { b'\'' };
    out.push(b'b');
    out.push(quote);
    let mut buf = [0u8; 68];
    let mut n = 0;
    for &c in b {
        let (text, len) = if double && c == b'\'' {
            ([c, 0, 0, 0], 1)
        } else {
            REPR[usize::from(c)]
        };
        buf[n..n + 4].copy_from_slice(&text);
        n += usize::from(len);
        if n > 64 {
            out.extend_from_slice(&buf[..n]);
            n = 0;
        }
    }
    out.extend_from_slice(&buf[..n]);
    out.push(quote);
}

/// Appends the decimal text of an integer (Python's `repr(int)`).
pub fn push_int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(decimal_bytes(v, &mut [0u8; DECIMAL_MAX]));
}

/// The uid of a text whose BLAKE2b-104 digest names it, as `_uid` in track/tracker.py:
/// the digest read as a big-endian number, written in base 62, least significant digit first.
pub fn uid_of_repr(text: &[u8]) -> Uid {
    let digest = blake2b_simd::Params::new().hash_length(13).hash(text);
    let mut bytes = [0u8; 13];
    bytes.copy_from_slice(digest.as_bytes());
    base62_digits(&bytes)
}

/// 62^5, the most base-62 digits a u32 holds.
const B62_POW5: u64 = 916_132_832;

/// The 17 lowest base-62 digits of a 104-bit big-endian number, least significant first.
/// The number is held in 32-bit limbs and divided by 62^5 with u64 arithmetic, five digits
/// at a time: a u128 division is a library call, and this made two per digit.
fn base62_digits(digest: &[u8; 13]) -> Uid {
    let limb =
        |i: usize| u32::from_be_bytes([digest[i], digest[i + 1], digest[i + 2], digest[i + 3]]);
    let mut limbs = [u32::from(digest[0]), limb(1), limb(5), limb(9)];
    let mut out = [0u8; 17];
    let mut k = 0;
    while k < out.len() {
        let mut rem: u64 = 0;
        for l in &mut limbs {
            let cur = (rem << 32) | u64::from(*l);
            *l = (cur / B62_POW5) as u32;
            rem = cur % B62_POW5;
        }
        let mut r = rem as u32;
        for _ in 0..5 {
            if k == out.len() {
                break;
            }
            out[k] = B62[(r % 62) as usize];
            r /= 62;
            k += 1;
        }
    }
    out
}

/// A flow's uid: repr((serial, ts, key)) hashed, where key is the Python tracker's table key
/// `(proto, vlan, addr_a, port_a, addr_b, port_b)`.
pub fn flow_uid(
    scratch: &mut Vec<u8>,
    serial: u64,
    ts: i64,
    proto: u8,
    vlan: Option<i32>,
    a: (&[u8; 16], u16),
    b: (&[u8; 16], u16),
) -> Uid {
    scratch.clear();
    scratch.push(b'(');
    push_int(scratch, serial as i64);
    scratch.extend_from_slice(b", ");
    push_int(scratch, ts);
    scratch.extend_from_slice(b", (");
    push_int(scratch, i64::from(proto));
    scratch.extend_from_slice(b", ");
    match vlan {
        Some(v) => push_int(scratch, i64::from(v)),
        None => scratch.extend_from_slice(b"None"),
    }
    scratch.extend_from_slice(b", ");
    push_bytes_repr(scratch, a.0);
    scratch.extend_from_slice(b", ");
    push_int(scratch, i64::from(a.1));
    scratch.extend_from_slice(b", ");
    push_bytes_repr(scratch, b.0);
    scratch.extend_from_slice(b", ");
    push_int(scratch, i64::from(b.1));
    scratch.extend_from_slice(b"))");
    uid_of_repr(scratch)
}

/// The id of an IP tunnel (IP-in-IP, GRE...), one for both directions: `_tunnel_uid`.
pub fn tunnel_uid(
    scratch: &mut Vec<u8>,
    out_src: &[u8; 16],
    out_dst: &[u8; 16],
    kinds: u32,
) -> Uid {
    let (a, b) = if out_src <= out_dst {
        (out_src, out_dst)
    } else {
        (out_dst, out_src)
    };
    scratch.clear();
    scratch.extend_from_slice(b"(0, ");
    push_int(scratch, i64::from(kinds));
    scratch.extend_from_slice(b", ('tunnel', ");
    push_bytes_repr(scratch, a);
    scratch.extend_from_slice(b", ");
    push_bytes_repr(scratch, b);
    scratch.extend_from_slice(b"))");
    uid_of_repr(scratch)
}

const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

fn packed(addr: &[u8; 16]) -> &[u8] {
    if addr[..12] == V4_MAPPED {
        &addr[12..]
    } else {
        &addr[..]
    }
}

/// Community ID v1 with seed 0: `1:` + base64(SHA1(seed, addresses, proto, 0, ports)), the
/// smaller address:port first unless the flow is one-way (ICMP messages without a reply type).
pub fn community_id(
    src: &[u8; 16],
    dst: &[u8; 16],
    proto: u8,
    sport: u16,
    dport: u16,
    one_way: bool,
) -> String {
    let (mut a, mut b) = (packed(src), packed(dst));
    let (mut p1, mut p2) = (sport, dport);
    if !one_way && (a > b || (a == b && p1 > p2)) {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut p1, &mut p2);
    }
    let mut h = Sha1::new();
    Digest::update(&mut h, [0u8, 0u8]);
    Digest::update(&mut h, a);
    Digest::update(&mut h, b);
    Digest::update(&mut h, [proto, 0]);
    // The spec hashes ports only for the protocols that have them (an SCTP flow's are Zeek's
    // 0 and 0).
    if matches!(proto, 1 | 6 | 17 | 58 | 132) {
        Digest::update(&mut h, p1.to_be_bytes());
        Digest::update(&mut h, p2.to_be_bytes());
    }
    let mut digest = [0u8; 20];
    digest.copy_from_slice(&h.finalize());
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64(&digest, &mut out);
    out
}

/// Appends the base64 text of a SHA-1 digest (28 characters), built in a local buffer and
/// appended at once.
fn base64(data: &[u8; 20], out: &mut String) {
    let mut text = [b'='; 28];
    for (k, chunk) in data.chunks(3).enumerate() {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            text[4 * k + i] = B64[((n >> (18 - 6 * i)) & 63) as usize];
        }
    }
    // Only B64's characters and '=': ASCII.
    out.push_str(std::str::from_utf8(&text).unwrap_or(""));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::v4;

    #[test]
    fn community_id_matches_the_spec_example() {
        // From the community-id-spec baseline: 128.232.110.120:34855 -> 66.35.250.204:80 TCP.
        let id = community_id(
            &v4([128, 232, 110, 120]),
            &v4([66, 35, 250, 204]),
            6,
            34855,
            80,
            false,
        );
        assert_eq!(id, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    }

    /// The digits as `_uid` in track/tracker.py computes them (the code before limbs).
    fn base62_by_u128(digest: &[u8; 13]) -> Uid {
        let mut n: u128 = 0;
        for &b in digest {
            n = (n << 8) | u128::from(b);
        }
        let mut out = [0u8; 17];
        for slot in &mut out {
            *slot = B62[(n % 62) as usize];
            n /= 62;
        }
        out
    }

    #[test]
    fn base62_digits_are_those_of_the_whole_number() {
        let mut cases = vec![[0u8; 13], [0xff; 13]];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut d = [0u8; 13];
            for b in &mut d {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            cases.push(d);
        }
        for d in cases {
            assert_eq!(base62_digits(&d), base62_by_u128(&d));
        }
    }

    #[test]
    fn ints_are_written_as_python_writes_them() {
        for v in [
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            -1,
            -10,
            -100,
            i64::MIN,
            i64::MAX,
            1_700_000_000_123_456_789,
            -987_654_321,
        ] {
            let mut out = Vec::new();
            push_int(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
    }

    #[test]
    fn bytes_repr_is_pythons() {
        let mut out = Vec::new();
        push_bytes_repr(&mut out, b"a'\\\x00\x7f\n\"");
        assert_eq!(out, b"b'a\\'\\\\\\x00\\x7f\\n\"'".to_vec());
        out.clear();
        push_bytes_repr(&mut out, b"'");
        assert_eq!(out, b"b\"'\"".to_vec());
        out.clear();
        push_bytes_repr(&mut out, b"it's\x00\\\t");
        assert_eq!(out, b"b\"it's\\x00\\\\\\t\"".to_vec());
        // Longer than the local buffer, every kind of byte.
        out.clear();
        let all: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        push_bytes_repr(&mut out, &all);
        let mut expect = b"b'".to_vec();
        for &c in &all {
            match c {
                b'\\' => expect.extend_from_slice(b"\\\\"),
                b'\t' => expect.extend_from_slice(b"\\t"),
                b'\n' => expect.extend_from_slice(b"\\n"),
                b'\r' => expect.extend_from_slice(b"\\r"),
                b'\'' => expect.extend_from_slice(b"\\'"),
                32..=126 => expect.push(c),
                _ => expect.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
            }
        }
        expect.push(b'\'');
        assert_eq!(out, expect);
    }
}
