//! `packets --stats` counts from decoded columns (the Python twin: `CaptureStats.add`).

use std::collections::BTreeMap;

use crate::decode::columns::{Columns, Row, CSUM_BAD, FRAG_COMPLETE, FRAG_PART, SUB_FRAME};

/// Counts by a 16-bit key (link type, ethertype, `ip_version << 8 | proto`, reason code): one
/// slot per possible key, allocated on first use, so counting is one indexed add whatever
/// the input holds (a hostile capture with every ethertype costs 512 KiB, never a search).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    slots: Vec<u64>,
}

impl Tally {
    #[inline]
    pub fn add(&mut self, key: u16, n: u64) {
        if self.slots.is_empty() {
            self.slots = vec![0; 1 << 16];
        }
        if let Some(slot) = self.slots.get_mut(usize::from(key)) {
            *slot += n;
        }
    }

    /// (key, count) of every key counted, by key.
    pub fn items(&self) -> Vec<(u16, u64)> {
        (0..=u16::MAX)
            .zip(&self.slots)
            .filter(|(_, &n)| n > 0)
            .map(|(k, &n)| (k, n))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|&n| n == 0)
    }
}

/// `not_ip` kinds (the key's upper 16 bits).
pub const NOT_IP_LINKTYPE: u32 = 0;
pub const NOT_IP_PPP: u32 = 1;
pub const NOT_IP_ETHERTYPE: u32 = 2;

/// What one file's frames say of it, as sources.merge counts them into its FileStats: how
/// many, their bytes on the wire, their first and last times, and how often time ran
/// backwards (a frame is counted when its time is before the latest time of the frames
/// before it, by how far it steps back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCounts {
    pub frames: u64,
    pub wire_bytes: u64,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    pub backwards: u64,
    pub largest_step_back_ns: i64,
    pub first_backwards_frame: Option<i64>,
    running_max: i64,
}

impl Default for FileCounts {
    fn default() -> Self {
        FileCounts {
            frames: 0,
            wire_bytes: 0,
            first_ns: None,
            last_ns: None,
            backwards: 0,
            largest_step_back_ns: 0,
            first_backwards_frame: None,
            running_max: i64::MIN,
        }
    }
}

impl FileCounts {
    /// Adds one frame (frames in file order).
    #[inline(always)]
    pub fn add(&mut self, ts_ns: i64, frame: i64, wirelen: u32) {
        let t = ts_ns;
        self.frames += 1;
        self.wire_bytes += u64::from(wirelen);
        if t < self.running_max {
            self.backwards += 1;
            // As numpy's int64 subtraction in sources.merge (wrapping).
            let step = self.running_max.wrapping_sub(t);
            self.largest_step_back_ns = self.largest_step_back_ns.max(step);
            self.first_backwards_frame.get_or_insert(frame);
        } else {
            self.running_max = t;
        }
        self.first_ns = Some(self.first_ns.map_or(t, |f| f.min(t)));
        self.last_ns = Some(self.last_ns.map_or(t, |l| l.max(t)));
    }
}

/// What a stream of decoded packets holds (see the module doc); `add` one batch at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureCounts {
    /// Link types the decoder decodes (others are counted in `not_decoded`), one bit each.
    supported: Vec<u64>,
    /// Frames, wire bytes, first and last times, steps back in time.
    pub file: FileCounts,
    pub captured_bytes: u64,
    pub linktypes: Tally,
    /// IP frames by `ip_version << 8 | proto`.
    pub protocols: Tally,
    /// Frames without IP and not malformed, by `kind << 16 | value`: [`NOT_IP_LINKTYPE`] and
    /// the link type (one not decoded), [`NOT_IP_PPP`] and the PPP protocol, or
    /// [`NOT_IP_ETHERTYPE`] and the ethertype (rare: a map).
    pub not_ip: BTreeMap<u32, u64>,
    /// Tunnelled frames by their packed `tunnel` column.
    pub tunnels: BTreeMap<u32, u64>,
    pub vlan_tagged: u64,
    pub mpls_labelled: u64,
    /// Fragment rows (parts and completing ones).
    pub fragments: u64,
    /// Rows that completed a datagram.
    pub reassembled: u64,
    pub truncated: u64,
    pub bad_ip_checksum: u64,
    pub bad_l4_checksum: u64,
    /// Malformed frames by reason code.
    pub malformed: Tally,
    /// Frames of link types not decoded, by link type.
    pub not_decoded: Tally,
}

impl CaptureCounts {
    /// Counts that take `supported` as the link types the decoder decodes.
    pub fn new(supported: &[u16]) -> Self {
        let mut bits = vec![0u64; 1 << 10];
        for &t in supported {
            if let Some(word) = bits.get_mut(usize::from(t >> 6)) {
                *word |= 1 << (t & 63);
            }
        }
        CaptureCounts {
            supported: bits,
            file: FileCounts::default(),
            captured_bytes: 0,
            linktypes: Tally::default(),
            protocols: Tally::default(),
            not_ip: BTreeMap::new(),
            tunnels: BTreeMap::new(),
            vlan_tagged: 0,
            mpls_labelled: 0,
            fragments: 0,
            reassembled: 0,
            truncated: 0,
            bad_ip_checksum: 0,
            bad_l4_checksum: 0,
            malformed: Tally::default(),
            not_decoded: Tally::default(),
        }
    }

    #[inline]
    fn supports(&self, linktype: u16) -> bool {
        self.supported
            .get(usize::from(linktype >> 6))
            .is_some_and(|w| w & (1 << (linktype & 63)) != 0)
    }

    /// Adds the rows of one decoded batch (in capture order).
    pub fn add(&mut self, c: &Columns) {
        self.add_from(c, 0);
    }

    /// Adds rows `start..` of a decoded batch (in capture order): the rows
    /// [`Decoder::decode_each`](crate::decode::Decoder::decode_each) stored.
    pub fn add_from(&mut self, c: &Columns, start: usize) {
        let n = c.len();
        // One slice per column read, cut to the batch, so the loop indexes without checks.
        let (ts, wire, cap) = (&c.ts_ns[..n], &c.wirelen[..n], &c.caplen[..n]);
        let (lt, ipv, proto) = (&c.linktype[..n], &c.ip_version[..n], &c.proto[..n]);
        let (mal, ppp, eth) = (&c.malformed[..n], &c.ppp_proto[..n], &c.ethertype[..n]);
        let (depth, tunnel) = (&c.tunnel_depth[..n], &c.tunnel[..n]);
        let (vlan, mpls, frag) = (&c.vlan_count[..n], &c.mpls_count[..n], &c.frag[..n]);
        let (cut, ip_csum, l4_csum) = (&c.truncated[..n], &c.ip_csum[..n], &c.l4_csum[..n]);
        let (frame, sub) = (&c.frame[..n], &c.sub[..n]);
        for i in start..n {
            if sub[i] != SUB_FRAME {
                continue; // a frame is counted by its own row (an A-MSDU, nested tunnels)
            }
            self.count(Fields {
                ts_ns: ts[i],
                frame: frame[i],
                wirelen: wire[i],
                caplen: cap[i],
                linktype: lt[i],
                ip_version: ipv[i],
                proto: proto[i],
                malformed: mal[i],
                ppp_proto: ppp[i],
                ethertype: eth[i],
                tunnel_depth: depth[i],
                tunnel: tunnel[i],
                vlan_count: vlan[i],
                mpls_count: mpls[i],
                frag: frag[i],
                truncated: cut[i],
                ip_csum: ip_csum[i],
                l4_csum: l4_csum[i],
            });
        }
    }

    /// Adds one decoded row (rows in capture order): as [`add`](Self::add) of a batch of
    /// that row, without the batch.
    #[inline]
    pub fn add_row(&mut self, r: &Row) {
        self.count(Fields {
            ts_ns: r.ts_ns,
            frame: r.frame,
            wirelen: r.wirelen,
            caplen: r.caplen,
            linktype: r.linktype,
            ip_version: r.ip_version,
            proto: r.proto,
            malformed: r.malformed,
            ppp_proto: r.ppp_proto,
            ethertype: r.ethertype,
            tunnel_depth: r.tunnel_depth,
            tunnel: r.tunnel,
            vlan_count: r.vlan_count,
            mpls_count: r.mpls_count,
            frag: r.frag,
            truncated: r.truncated,
            ip_csum: r.ip_csum,
            l4_csum: r.l4_csum,
        });
    }

    #[inline(always)]
    fn count(&mut self, r: Fields) {
        self.file.add(r.ts_ns, r.frame, r.wirelen);
        self.captured_bytes += u64::from(r.caplen);
        let linktype = r.linktype;
        self.linktypes.add(linktype, 1);
        let supported = self.supports(linktype);
        if !supported {
            self.not_decoded.add(linktype, 1);
        }
        if r.ip_version > 0 {
            self.protocols
                .add(u16::from(r.ip_version) << 8 | u16::from(r.proto), 1);
        } else if r.malformed == 0 {
            let key = if !supported {
                NOT_IP_LINKTYPE << 16 | u32::from(linktype)
            } else if r.ppp_proto != 0 {
                NOT_IP_PPP << 16 | u32::from(r.ppp_proto)
            } else {
                NOT_IP_ETHERTYPE << 16 | u32::from(r.ethertype)
            };
            *self.not_ip.entry(key).or_insert(0) += 1;
        }
        if r.tunnel_depth > 0 {
            *self.tunnels.entry(r.tunnel).or_insert(0) += 1;
        }
        self.vlan_tagged += u64::from(r.vlan_count > 0);
        self.mpls_labelled += u64::from(r.mpls_count > 0);
        self.fragments += u64::from(r.frag == FRAG_PART || r.frag == FRAG_COMPLETE);
        self.reassembled += u64::from(r.frag == FRAG_COMPLETE);
        self.truncated += u64::from(r.truncated);
        self.bad_ip_checksum += u64::from(r.ip_csum == CSUM_BAD);
        self.bad_l4_checksum += u64::from(r.l4_csum == CSUM_BAD);
        if r.malformed > 0 {
            self.malformed.add(u16::from(r.malformed), 1);
        }
    }
}

/// The fields of a row the counts read.
#[derive(Clone, Copy)]
struct Fields {
    ts_ns: i64,
    frame: i64,
    wirelen: u32,
    caplen: u32,
    linktype: u16,
    ip_version: u8,
    proto: u8,
    malformed: u8,
    ppp_proto: u16,
    ethertype: u16,
    tunnel_depth: u8,
    tunnel: u32,
    vlan_count: u8,
    mpls_count: u8,
    frag: u8,
    truncated: bool,
    ip_csum: u8,
    l4_csum: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(rows: &[Row]) -> Columns {
        let mut c = Columns::with_capacity(rows.len());
        for r in rows {
            c.push(r);
        }
        c
    }

    #[test]
    fn counts_by_raw_keys() {
        let tcp4 = Row {
            linktype: 1,
            ip_version: 4,
            proto: 6,
            wirelen: 60,
            caplen: 54,
            truncated: true,
            ts_ns: 10,
            ..Row::default()
        };
        let arp = Row {
            linktype: 1,
            ethertype: 0x0806,
            ts_ns: 5,
            frame: 2,
            ..Row::default()
        };
        let odd = Row {
            linktype: 999,
            ts_ns: 7,
            frame: 3,
            ..Row::default()
        };
        let bad = Row {
            linktype: 1,
            malformed: 15,
            ip_version: 0,
            l4_csum: CSUM_BAD,
            ts_ns: 20,
            frame: 4,
            ..Row::default()
        };
        let mut c = CaptureCounts::new(&[1]);
        c.add(&columns(&[tcp4, arp, odd, bad]));
        assert_eq!(c.file.frames, 4);
        assert_eq!(
            (c.file.wire_bytes, c.captured_bytes, c.truncated),
            (60, 54, 1)
        );
        assert_eq!((c.file.first_ns, c.file.last_ns), (Some(5), Some(20)));
        assert_eq!(c.linktypes.items(), [(1, 3), (999, 1)]);
        assert_eq!(c.protocols.items(), [(0x406, 1)]);
        assert_eq!(
            c.not_ip.into_iter().collect::<Vec<_>>(),
            [(999, 1), (0x2_0806, 1)]
        );
        assert_eq!(c.not_decoded.items(), [(999, 1)]);
        assert_eq!(c.malformed.items(), [(15, 1)]);
        assert_eq!(c.bad_l4_checksum, 1);
        // 5 after 10 steps back 5 (frame 2), 7 after 10 steps back 3.
        assert_eq!(c.file.backwards, 2);
        assert_eq!(c.file.largest_step_back_ns, 5);
        assert_eq!(c.file.first_backwards_frame, Some(2));
    }
}
