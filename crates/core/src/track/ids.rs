//! Identifiers the tracker gives a flow: Zeek-style uids (the same generation as the Python
//! reference, so rows match) and Community ID v1 (github.com/corelight/community-id-spec).

use blake2::digest::consts::U13;
use blake2::Blake2b;
use sha1::{Digest, Sha1};

const B62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A uid without its leading 'C': 17 base-62 characters.
pub type Uid = [u8; 17];

/// Appends Python's `repr()` of a bytes object, which the Python tracker hashes into uids.
pub fn push_bytes_repr(out: &mut Vec<u8>, b: &[u8]) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push(b'b');
    out.push(quote);
    for &c in b {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            c if c == quote => {
                out.push(b'\\');
                out.push(c);
            }
            32..=126 => out.push(c),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\x");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 15)]);
            }
        }
    }
    out.push(quote);
}

/// Appends the decimal text of an integer (Python's `repr(int)`).
pub fn push_int(out: &mut Vec<u8>, v: i64) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{v}");
}

/// The uid of a text whose BLAKE2b-104 digest names it, as `_uid` in track/tracker.py:
/// the digest read as a big-endian number, written in base 62, least significant digit first.
pub fn uid_of_repr(text: &[u8]) -> Uid {
    let digest = Blake2b::<U13>::digest(text);
    let mut n: u128 = 0;
    for &b in &digest {
        n = (n << 8) | u128::from(b);
    }
    let mut out = [0u8; 17];
    for slot in &mut out {
        *slot = B62[(n % 62) as usize];
        n /= 62;
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
    let digest = h.finalize();
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64(&digest, &mut out);
    out
}

fn base64(data: &[u8], out: &mut String) {
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[10] = 0xff;
        out[11] = 0xff;
        out[12..].copy_from_slice(&a);
        out
    }

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

    #[test]
    fn bytes_repr_is_pythons() {
        let mut out = Vec::new();
        push_bytes_repr(&mut out, b"a'\\\x00\x7f\n\"");
        assert_eq!(out, b"b'a\\'\\\\\\x00\\x7f\\n\"'".to_vec());
        out.clear();
        push_bytes_repr(&mut out, b"'");
        assert_eq!(out, b"b\"'\"".to_vec());
    }
}
