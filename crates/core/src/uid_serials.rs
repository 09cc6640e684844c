//! Which serial made each connection's uid, for the HTML report: the page stores a uid as the
//! offset of its serial from the connection's rank by start time and makes the uid again
//! (report/html/pack.py `pack_uids`, page.js). Finding the offset hashes one candidate serial
//! a connection, or a few around it: in Python, a tenth of the benchmark capture's report.
//!
//! A uid is [`flow_uid`] of (serial, first time, 5-tuple) for TCP and UDP; the serial counts
//! connections in the order they were made, which is their order by start time give or take
//! a few (a connection made before another may start later in a reordered capture). Rows are
//! tried in rank order, each first at the offset the row before had (`guess`).

use crate::track::ids::{flow_uid, Uid};

/// What makes a TCP or UDP connection's uid besides its serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidKey {
    pub ts: i64,
    pub proto: u8,
    pub orig: ([u8; 16], u16),
    pub resp: ([u8; 16], u16),
}

impl UidKey {
    /// The uid of `serial`: [`flow_uid`] of the key with its ends in the table's order (the
    /// smaller (address, port) first).
    fn uid(&self, scratch: &mut Vec<u8>, serial: u64) -> Uid {
        let (a, b) = if self.orig <= self.resp {
            (self.orig, self.resp)
        } else {
            (self.resp, self.orig)
        };
        flow_uid(
            scratch,
            serial,
            self.ts,
            self.proto,
            None,
            (&a.0, a.1),
            (&b.0, b.1),
        )
    }
}

/// One connection: its rank by (start time, row), its uid's text, and its key (None for a
/// connection no serial makes again: not TCP or UDP, or an address or port missing).
#[derive(Debug, Clone, Copy)]
pub struct UidRow<'a> {
    pub rank: i64,
    pub uid: &'a str,
    pub key: Option<UidKey>,
}

/// Each row's offset (serial = rank + 1 + offset; 0 where none was found), and the rows whose
/// uid is stored as text, in rank order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Serials {
    pub offsets: Vec<i64>,
    pub explicit: Vec<usize>,
}

/// The ranks are not each row's place in one order of them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRanks;

/// The 17 digits of a uid's text ("C" and 17 base-62 characters), or None: what `pack_uids`
/// reads of it (the first character is not compared).
fn digits(uid: &str) -> Option<&[u8]> {
    let b = uid.as_bytes();
    (b.len() == 18 && b[1..].iter().all(|c| c.is_ascii_alphanumeric())).then(|| &b[1..])
}

/// `pack_uids`' search: each row's offset, looked for within `window` of the one before
/// (while the rows not found stay few: with `--workers`, each worker counted its own
/// serials, and none would be found).
pub fn serial_offsets(rows: &[UidRow<'_>], window: i64) -> Result<Serials, NotRanks> {
    let n = rows.len();
    let mut order = vec![usize::MAX; n];
    for (i, r) in rows.iter().enumerate() {
        let k = usize::try_from(r.rank).map_err(|_| NotRanks)?;
        match order.get_mut(k) {
            Some(slot) if *slot == usize::MAX => *slot = i,
            _ => return Err(NotRanks),
        }
    }
    let mut out = Serials {
        offsets: vec![0; n],
        explicit: Vec::new(),
    };
    let mut scratch = Vec::with_capacity(160);
    let (mut guess, mut misses) = (0i64, 0usize);
    for (seen, &i) in order.iter().enumerate() {
        let row = &rows[i];
        let found = match (row.key, digits(row.uid)) {
            (Some(key), Some(want)) => {
                let mut made = |offset: i64| {
                    let serial = row.rank.saturating_add(1).saturating_add(offset);
                    serial > 0 && key.uid(&mut scratch, serial as u64)[..] == *want
                };
                if made(guess) {
                    Some(guess)
                } else if misses <= 64 + seen / 16 {
                    let near = (1..=window)
                        .flat_map(|k| [guess.saturating_add(k), guess.saturating_sub(k)])
                        .find(|&d| made(d));
                    misses += usize::from(near.is_none());
                    near
                } else {
                    None
                }
            }
            _ => None,
        };
        match found {
            Some(d) => {
                out.offsets[i] = d;
                guess = d;
            }
            None => out.explicit.push(i),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The uid's text: "C" and [`flow_uid`]'s digits.
    fn uid_text(serial: u64, key: &UidKey) -> String {
        std::iter::once('C')
            .chain(
                key.uid(&mut Vec::new(), serial)
                    .iter()
                    .map(|&c| char::from(c)),
            )
            .collect()
    }

    fn key(last: u8, port: u16) -> UidKey {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[15] = last;
        let mut b = a;
        b[15] = last.wrapping_add(1);
        UidKey {
            ts: 1_700_000_000_000_000_000 + i64::from(last),
            proto: 6,
            orig: (b, port),
            resp: (a, 80),
        }
    }

    #[test]
    fn offsets_follow_the_serials_and_keep_the_rest_as_text() {
        // Five connections; the tracker numbered them 1, 3, 2, 4, 6 (a reordered start, and
        // a serial that went to a connection the page does not hold).
        let keys: Vec<UidKey> = (1..=5)
            .map(|k| key(k * 10, 40_000 + u16::from(k)))
            .collect();
        let serials = [1u64, 3, 2, 4, 6];
        let uids: Vec<String> = keys
            .iter()
            .zip(serials)
            .map(|(k, s)| uid_text(s, k))
            .collect();
        let mut rows: Vec<UidRow<'_>> = (0..5)
            .map(|i| UidRow {
                rank: i as i64,
                uid: &uids[i],
                key: Some(keys[i]),
            })
            .collect();
        let icmp = "CxxxxxxxxxxxxxxxxX".to_string();
        rows.push(UidRow {
            rank: 5,
            uid: &icmp,
            key: None,
        });
        let got = serial_offsets(&rows, 8).unwrap();
        assert_eq!(got.offsets, vec![0, 1, -1, 0, 1, 0]);
        assert_eq!(got.explicit, vec![5]);
        // beyond the window: stored as text
        let far = uid_text(40, &keys[0]);
        rows[0].uid = &far;
        let got = serial_offsets(&rows, 8).unwrap();
        assert_eq!(got.explicit, vec![0, 5]);
        // a uid of another length is never made again
        rows[0].uid = "C123";
        assert_eq!(serial_offsets(&rows, 8).unwrap().explicit, vec![0, 5]);
        // ranks that are not a permutation
        rows[1].rank = 0;
        assert_eq!(serial_offsets(&rows, 8), Err(NotRanks));
        rows[1].rank = -1;
        assert_eq!(serial_offsets(&rows, 8), Err(NotRanks));
    }
}
