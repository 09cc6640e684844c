//! Frames out of Linux TPACKET_V3 ring blocks: the per-packet half of a live capture.
//!
//! The Python side (`portlens.sources.live`) owns the socket, the mapping and the block
//! hand-over (it reads each block's status word, and gives the block back to the kernel after
//! this module is done with it); this module gets only the blocks user space owns, as byte
//! slices, so nothing here ever looks at memory the kernel may be writing. It walks each
//! block's packet chain, checks every header against its block, and lays the frames out back
//! to back in a caller's buffer, building what the kernel left out on the way: the LINUX_SLL
//! header of a cooked capture and the 802.1Q tag the NIC or the kernel stripped. The rules are
//! documented once, in `portlens/sources/live.py`; `portlens.reference.ring` is the numpy
//! implementation this one must agree with, column for column and error for error
//! (tests/test_ring.py).
//!
//! Two steps, [`plan`] then [`Plan::write`], so that the caller learns the exact size of the
//! frames before it picks the buffer they go to (a reused one, when it is large enough). A
//! plan's packet list goes on to the next plan ([`plan_in`], [`Scratch`]), so that a capture
//! does not allocate it, and fault its pages in, batch after batch.

use std::fmt;

// struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1.
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
const BLOCK_LEN: usize = 20;
const BLOCK_HEADER_END: usize = 24;
// struct tpacket3_hdr (48 bytes), then struct sockaddr_ll at TPACKET_ALIGN(48) = 48.
const TP3_SEC: usize = 4;
const TP3_NSEC: usize = 8;
const TP3_SNAPLEN: usize = 12;
const TP3_LEN: usize = 16;
const TP3_STATUS: usize = 20;
const TP3_MAC: usize = 24;
const TP3_VLAN_TCI: usize = 32;
const TP3_VLAN_TPID: usize = 36;
const SLL_PROTOCOL: usize = 48 + 2;
const SLL_IFINDEX: usize = 48 + 4;
const SLL_HATYPE: usize = 48 + 8;
const SLL_PKTTYPE: usize = 48 + 10;
const SLL_HALEN: usize = 48 + 11;
const SLL_ADDR: usize = 48 + 12;
/// Where the kernel's own header area ends: every packet's headers must fit before its block
/// ends, and a cooked frame's built SLL header must start at or after it.
pub const TP3_SLL_END: usize = 48 + 20;

const TP_STATUS_VLAN_VALID: u32 = 0x10;
const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;
const PACKET_OUTGOING: u8 = 4;
const ETH_P_8021Q: u16 = 0x8100;
/// Bytes of a LINUX_SLL header.
pub const SLL_HDR_LEN: usize = 16;
const VLAN_TAG_LEN: usize = 4;

/// How the frames of a capture are to be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingOptions {
    /// Frames are cut to this many bytes (after the SLL header and the VLAN tag are added).
    pub snaplen: u32,
    /// A SOCK_DGRAM socket: the kernel removed the link header and a LINUX_SLL one is built.
    pub cooked: bool,
    /// The loopback device's ifindex when it is captured: its outgoing copies are dropped.
    pub lo_ifindex: Option<i32>,
}

/// A block or packet the kernel cannot have written: the capture cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingError(pub String);

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RingError {}

/// What one frame is made of: the packet's bytes in its block, and what goes around them.
#[derive(Debug, Clone, Copy)]
struct Parts {
    /// Start of the packet's data in its block.
    data: usize,
    snap: usize,
    sll: Option<[u8; SLL_HDR_LEN]>,
    tag: Option<[u8; VLAN_TAG_LEN]>,
}

impl Parts {
    /// The frame's length before the snaplen cut.
    fn len(&self) -> usize {
        self.snap + self.sll.map_or(0, |_| SLL_HDR_LEN) + self.tag.map_or(0, |_| VLAN_TAG_LEN)
    }
}

/// The parts of the packet whose tpacket3_hdr is at `h` (checked by [`plan`] to lie in the
/// block). Read again by [`Plan::write`] rather than kept: a plan holds 16 bytes a frame.
fn parts(block: &[u8], h: usize, cooked: bool) -> Parts {
    let mac = usize::from(u16_at(block, h + TP3_MAC));
    let snap = usize::try_from(u32_at(block, h + TP3_SNAPLEN)).unwrap_or(usize::MAX);
    let sll = cooked.then(|| sll_header(block, h));
    let tag_at = if cooked { SLL_HDR_LEN - 2 } else { 12 };
    let status = u32_at(block, h + TP3_STATUS);
    let tci = u32_at(block, h + TP3_VLAN_TCI);
    let before_tag = snap.saturating_add(sll.map_or(0, |_| SLL_HDR_LEN));
    let tag =
        ((tci != 0 || status & TP_STATUS_VLAN_VALID != 0) && before_tag >= tag_at).then(|| {
            let mut tpid = u16_at(block, h + TP3_VLAN_TPID);
            if tpid == 0 && status & TP_STATUS_VLAN_TPID_VALID == 0 {
                tpid = ETH_P_8021Q;
            }
            let mut t = [0u8; VLAN_TAG_LEN];
            t[..2].copy_from_slice(&tpid.to_be_bytes());
            // The TCI is 16 bits; the kernel's field is 32 wide.
            t[2..].copy_from_slice(&tci.to_be_bytes()[2..]);
            t
        });
    Parts {
        data: h + mac,
        snap,
        sll,
        tag,
    }
}

/// The frames of a run of blocks, checked and measured but not yet copied.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    frames: Vec<Header>,
    /// Start of each frame in the output buffer (frames are back to back).
    pub offset: Vec<i64>,
    pub caplen: Vec<u32>,
    pub wirelen: Vec<u32>,
    pub ts_ns: Vec<i64>,
    /// Outgoing loopback copies left out.
    pub duplicates: u64,
    /// Bytes [`Plan::write`] needs.
    pub data_len: usize,
    cooked: bool,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut w = [0u8; 2];
    if let Some(s) = at.checked_add(2).and_then(|end| b.get(at..end)) {
        w.copy_from_slice(s);
    }
    u16::from_le_bytes(w)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = at.checked_add(4).and_then(|end| b.get(at..end)) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// A packet found by the chain walk: its block and where its tpacket3_hdr starts.
#[derive(Debug, Clone, Copy)]
struct Header {
    block: usize,
    at: usize,
}

/// The valid length of a block: `blk_len`, never past the block itself.
fn block_len(block: &[u8]) -> usize {
    usize::try_from(u32_at(block, BLOCK_LEN)).map_or(block.len(), |n| n.min(block.len()))
}

/// Every packet header of every block, in order. Each must end (with its sockaddr_ll) inside
/// its block; a count of packets that cannot fit is damage too (it would otherwise make the
/// walk as long as the count says, whatever the block holds).
fn walk(blocks: &[&[u8]], headers: &mut Vec<Header>) -> Result<(), RingError> {
    headers.clear();
    for (index, block) in blocks.iter().enumerate() {
        let len = block_len(block);
        let npkts = u32_at(block, BLOCK_NUM_PKTS);
        if block.len() < BLOCK_HEADER_END
            || usize::try_from(npkts).map_or(true, |n| n > len / TP3_SLL_END)
        {
            return Err(RingError(format!(
                "corrupt TPACKET_V3 block: {npkts} packets cannot fit in its {len} bytes"
            )));
        }
        let mut at = usize::try_from(u32_at(block, BLOCK_FIRST_PKT)).unwrap_or(usize::MAX);
        for _ in 0..npkts {
            if at.checked_add(TP3_SLL_END).is_none_or(|end| end > len) {
                return Err(RingError(format!(
                    "corrupt TPACKET_V3 block: packet header at {at} past its end {len}"
                )));
            }
            headers.push(Header { block: index, at });
            let next = usize::try_from(u32_at(block, at)).unwrap_or(usize::MAX);
            at = at.saturating_add(next);
        }
    }
    Ok(())
}

fn sll_header(block: &[u8], h: usize) -> [u8; SLL_HDR_LEN] {
    let mut sll = [0u8; SLL_HDR_LEN];
    sll[1] = u8_at(block, h + SLL_PKTTYPE);
    // sll_hatype is host order (little endian) in the ring, network order in the header.
    sll[2] = u8_at(block, h + SLL_HATYPE + 1);
    sll[3] = u8_at(block, h + SLL_HATYPE);
    let halen = u8_at(block, h + SLL_HALEN).min(8);
    sll[5] = halen;
    for i in 0..usize::from(halen) {
        sll[6 + i] = u8_at(block, h + SLL_ADDR + i);
    }
    // sll_protocol is already in network order.
    sll[14] = u8_at(block, h + SLL_PROTOCOL);
    sll[15] = u8_at(block, h + SLL_PROTOCOL + 1);
    sll
}

/// Walks, checks and measures the frames of `blocks` (each a whole ring block that user space
/// owns, in ring order). Errors are those of the reference, in its order: a header past its
/// block (any block) first, then data past its block, then (cooked) no room for the SLL header.
pub fn plan(blocks: &[&[u8]], opts: &RingOptions) -> Result<Plan, RingError> {
    plan_in(blocks, opts, Scratch::default())
}

/// Room for the packet list of a plan, handed from one plan to the next
/// ([`Plan::into_scratch`]) so that a live capture does not allocate it per batch.
#[derive(Debug, Default)]
pub struct Scratch(Vec<Header>);

/// [`plan`], with the packet list in `scratch`.
pub fn plan_in(blocks: &[&[u8]], opts: &RingOptions, scratch: Scratch) -> Result<Plan, RingError> {
    let mut headers = scratch.0;
    walk(blocks, &mut headers)?;
    let mut data_past = false;
    let mut no_room = false;
    for hd in &headers {
        let block = blocks[hd.block];
        let mac = usize::from(u16_at(block, hd.at + TP3_MAC));
        let snap = usize::try_from(u32_at(block, hd.at + TP3_SNAPLEN)).unwrap_or(usize::MAX);
        data_past |= (hd.at + mac)
            .checked_add(snap)
            .is_none_or(|end| end > block_len(block));
        no_room |= opts.cooked && mac < TP3_SLL_END + SLL_HDR_LEN;
    }
    if data_past {
        return Err(RingError(
            "corrupt TPACKET_V3 packet: data past the end of its block".into(),
        ));
    }
    if no_room {
        return Err(RingError(
            "kernel left no room for the SLL header in the ring".into(),
        ));
    }
    let n = headers.len();
    let mut p = Plan {
        offset: Vec::with_capacity(n),
        caplen: Vec::with_capacity(n),
        wirelen: Vec::with_capacity(n),
        ts_ns: Vec::with_capacity(n),
        cooked: opts.cooked,
        ..Plan::default()
    };
    let snaplen = usize::try_from(opts.snaplen).unwrap_or(usize::MAX);
    headers.retain(|hd| {
        let (block, h) = (blocks[hd.block], hd.at);
        if let Some(lo) = opts.lo_ifindex {
            let ifindex = i32::from_le_bytes(u32_at(block, h + SLL_IFINDEX).to_le_bytes());
            if u8_at(block, h + SLL_PKTTYPE) == PACKET_OUTGOING && ifindex == lo {
                p.duplicates += 1;
                return false;
            }
        }
        let parts = parts(block, h, opts.cooked);
        let grown = parts.len() - parts.snap;
        let wire = u32_at(block, h + TP3_LEN).saturating_add(u32::try_from(grown).unwrap_or(0));
        let caplen = parts.len().min(snaplen);
        let sec = i64::from(u32_at(block, h + TP3_SEC));
        let nsec = i64::from(u32_at(block, h + TP3_NSEC));
        p.offset.push(i64::try_from(p.data_len).unwrap_or(i64::MAX));
        p.caplen.push(u32::try_from(caplen).unwrap_or(u32::MAX));
        p.wirelen.push(wire);
        p.ts_ns.push(sec * 1_000_000_000 + nsec);
        p.data_len += caplen;
        true
    });
    p.frames = headers;
    Ok(p)
}

/// Copies `part` to `out[*pos..]`, at most `*left` bytes of it.
fn put(out: &mut [u8], pos: &mut usize, left: &mut usize, part: &[u8]) {
    let n = part.len().min(*left);
    if let Some(dst) = out.get_mut(*pos..*pos + n) {
        dst.copy_from_slice(&part[..n]);
    }
    *pos += n;
    *left -= n;
}

impl Plan {
    pub fn len(&self) -> usize {
        self.offset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }

    /// Copies the frames into `out[..self.data_len]`, back to back; `blocks` must be those
    /// given to [`plan`], unchanged. Returns false (and writes nothing) when `out` is too small.
    pub fn write(&self, blocks: &[&[u8]], out: &mut [u8]) -> bool {
        if out.len() < self.data_len {
            return false;
        }
        let mut pos = 0;
        for (hd, &caplen) in self.frames.iter().zip(&self.caplen) {
            let mut left = usize::try_from(caplen).unwrap_or(usize::MAX);
            let block = blocks.get(hd.block).copied().unwrap_or_default();
            let piece = parts(block, hd.at, self.cooked);
            let body = block
                .get(piece.data..piece.data.saturating_add(piece.snap))
                .unwrap_or_default();
            let prefix: &[u8] = piece.sll.as_ref().map_or(&[], |s| &s[..]);
            match &piece.tag {
                None => {
                    put(out, &mut pos, &mut left, prefix);
                    put(out, &mut pos, &mut left, body);
                }
                Some(tag) => {
                    // The tag goes at byte 12 of an Ethernet frame, 14 of a cooked one: inside
                    // the built SLL header, or inside the packet's own bytes.
                    let at = if prefix.is_empty() {
                        12
                    } else {
                        SLL_HDR_LEN - 2
                    };
                    if at <= prefix.len() {
                        put(out, &mut pos, &mut left, &prefix[..at]);
                        put(out, &mut pos, &mut left, tag);
                        put(out, &mut pos, &mut left, &prefix[at..]);
                        put(out, &mut pos, &mut left, body);
                    } else {
                        let cut = (at - prefix.len()).min(body.len());
                        put(out, &mut pos, &mut left, prefix);
                        put(out, &mut pos, &mut left, &body[..cut]);
                        put(out, &mut pos, &mut left, tag);
                        put(out, &mut pos, &mut left, &body[cut..]);
                    }
                }
            }
        }
        true
    }

    /// The plan's packet list, for the next plan ([`plan_in`]).
    pub fn into_scratch(self) -> Scratch {
        Scratch(self.frames)
    }

    /// The frames in a buffer of their own (tests, and callers without a buffer to reuse).
    pub fn to_vec(&self, blocks: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0u8; self.data_len];
        self.write(blocks, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: i32 = 1;

    /// One packet to put in a crafted block.
    #[derive(Clone)]
    struct Pkt {
        data: Vec<u8>,
        wire: u32,
        sec: u32,
        nsec: u32,
        status: u32,
        tci: u32,
        tpid: u16,
        ifindex: i32,
        pkttype: u8,
        hatype: u16,
        halen: u8,
        addr: [u8; 8],
        protocol: [u8; 2],
        /// Room left before the data (cooked: the kernel leaves 16 for the SLL header).
        gap: usize,
    }

    fn pkt(data: &[u8]) -> Pkt {
        Pkt {
            data: data.to_vec(),
            wire: u32::try_from(data.len()).unwrap(),
            sec: 1_700_000_000,
            nsec: 123_456_789,
            status: 1,
            tci: 0,
            tpid: 0,
            ifindex: 2,
            pkttype: 0,
            hatype: 1,
            halen: 6,
            addr: [1, 2, 3, 4, 5, 6, 0xee, 0xff],
            protocol: [0x08, 0x00],
            gap: 16,
        }
    }

    fn put_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// A block as the kernel lays it out: 48-byte block header, then each packet at a
    /// 16-byte boundary: tpacket3_hdr, sockaddr_ll, the gap, the data.
    fn block(pkts: &[Pkt], size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        put_u32(&mut b, 8, 1);
        put_u32(&mut b, BLOCK_NUM_PKTS, u32::try_from(pkts.len()).unwrap());
        put_u32(&mut b, BLOCK_FIRST_PKT, 48);
        let mut at = 48;
        for (i, p) in pkts.iter().enumerate() {
            let mac = TP3_SLL_END + p.gap;
            let next = (mac + p.data.len() + 15) & !15;
            if i + 1 < pkts.len() {
                put_u32(&mut b, at, u32::try_from(next).unwrap());
            }
            put_u32(&mut b, at + TP3_SEC, p.sec);
            put_u32(&mut b, at + TP3_NSEC, p.nsec);
            put_u32(
                &mut b,
                at + TP3_SNAPLEN,
                u32::try_from(p.data.len()).unwrap(),
            );
            put_u32(&mut b, at + TP3_LEN, p.wire);
            put_u32(&mut b, at + TP3_STATUS, p.status);
            b[at + TP3_MAC..at + TP3_MAC + 2]
                .copy_from_slice(&u16::try_from(mac).unwrap().to_le_bytes());
            put_u32(&mut b, at + TP3_VLAN_TCI, p.tci);
            b[at + TP3_VLAN_TPID..at + TP3_VLAN_TPID + 2].copy_from_slice(&p.tpid.to_le_bytes());
            b[at + SLL_PROTOCOL..at + SLL_PROTOCOL + 2].copy_from_slice(&p.protocol);
            put_u32(
                &mut b,
                at + SLL_IFINDEX,
                u32::from_le_bytes(p.ifindex.to_le_bytes()),
            );
            b[at + SLL_HATYPE..at + SLL_HATYPE + 2].copy_from_slice(&p.hatype.to_le_bytes());
            b[at + SLL_PKTTYPE] = p.pkttype;
            b[at + SLL_HALEN] = p.halen;
            b[at + SLL_ADDR..at + SLL_ADDR + 8].copy_from_slice(&p.addr);
            b[at + mac..at + mac + p.data.len()].copy_from_slice(&p.data);
            at += next;
        }
        put_u32(&mut b, BLOCK_LEN, u32::try_from(at).unwrap());
        b
    }

    fn frames(blocks: &[Vec<u8>], opts: &RingOptions) -> Result<(Plan, Vec<Vec<u8>>), RingError> {
        let views: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        let p = plan(&views, opts)?;
        let data = p.to_vec(&views);
        let out = (0..p.len())
            .map(|i| {
                let s = usize::try_from(p.offset[i]).unwrap();
                data[s..s + usize::try_from(p.caplen[i]).unwrap()].to_vec()
            })
            .collect();
        Ok((p, out))
    }

    fn eth() -> RingOptions {
        RingOptions {
            snaplen: 262_144,
            cooked: false,
            lo_ifindex: None,
        }
    }

    fn eth_frame(n: usize) -> Vec<u8> {
        (0..n).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    #[test]
    fn frames_of_two_blocks_in_order_with_their_times() {
        let mut a = pkt(&eth_frame(60));
        a.wire = 60;
        let mut b = pkt(&eth_frame(1514));
        b.sec = 5;
        b.nsec = 7;
        let c = pkt(&eth_frame(99));
        let blocks = [block(&[a, b], 4096), block(&[c], 4096)];
        let (p, out) = frames(&blocks, &eth()).unwrap();
        assert_eq!(out, vec![eth_frame(60), eth_frame(1514), eth_frame(99)]);
        assert_eq!(p.caplen, vec![60, 1514, 99]);
        assert_eq!(p.wirelen, vec![60, 1514, 99]);
        assert_eq!(p.offset, vec![0, 60, 1574]);
        assert_eq!(p.ts_ns[1], 5_000_000_007);
        assert_eq!(p.ts_ns[0], 1_700_000_000_123_456_789);
        assert_eq!(p.data_len, 60 + 1514 + 99);
    }

    #[test]
    fn snaplen_cuts_and_wire_length_stays() {
        let mut a = pkt(&eth_frame(100));
        a.wire = 1500;
        let opts = RingOptions {
            snaplen: 64,
            ..eth()
        };
        let (p, out) = frames(&[block(&[a], 1024)], &opts).unwrap();
        assert_eq!(out[0], eth_frame(64));
        assert_eq!((p.caplen[0], p.wirelen[0]), (64, 1500));
    }

    #[test]
    fn cooked_frames_get_an_sll_header() {
        let mut a = pkt(b"\x45payload");
        a.halen = 4;
        a.pkttype = 3;
        a.hatype = 0x0304;
        let opts = RingOptions {
            cooked: true,
            ..eth()
        };
        let (p, out) = frames(&[block(&[a], 1024)], &opts).unwrap();
        let mut want = vec![0, 3, 0x03, 0x04, 0, 4, 1, 2, 3, 4, 0, 0, 0, 0, 0x08, 0x00];
        want.extend_from_slice(b"\x45payload");
        assert_eq!(out[0], want);
        assert_eq!(p.wirelen[0], 8 + 16);
    }

    #[test]
    fn halen_past_eight_is_cut_to_eight() {
        let mut a = pkt(b"x");
        a.halen = 200;
        let opts = RingOptions {
            cooked: true,
            ..eth()
        };
        let (_, out) = frames(&[block(&[a], 1024)], &opts).unwrap();
        assert_eq!(out[0][5], 8);
        assert_eq!(out[0][6..14], [1, 2, 3, 4, 5, 6, 0xee, 0xff]);
    }

    #[test]
    fn stripped_vlan_tags_go_back_at_12_or_14() {
        let mut a = pkt(&eth_frame(60));
        a.status = 1 | TP_STATUS_VLAN_VALID;
        a.tci = 0x0123;
        let mut b = pkt(&eth_frame(60));
        b.tci = 0x0005;
        b.tpid = 0x88a8;
        b.status = 1 | TP_STATUS_VLAN_TPID_VALID;
        let (p, out) = frames(&[block(&[a, b], 2048)], &eth()).unwrap();
        let f = eth_frame(60);
        let want_a = [&f[..12], &[0x81, 0x00, 0x01, 0x23], &f[12..]].concat();
        let want_b = [&f[..12], &[0x88, 0xa8, 0x00, 0x05], &f[12..]].concat();
        assert_eq!(out, vec![want_a, want_b]);
        assert_eq!(p.wirelen, vec![64, 64]);
        assert_eq!(p.caplen, vec![64, 64]);

        let mut c = pkt(b"\x45abc");
        c.tci = 7;
        let opts = RingOptions {
            cooked: true,
            ..eth()
        };
        let (p, out) = frames(&[block(&[c], 1024)], &opts).unwrap();
        assert_eq!(out[0][12..20], [0, 0, 0x81, 0x00, 0x00, 0x07, 0x08, 0x00]);
        assert_eq!(&out[0][20..], b"\x45abc");
        assert_eq!(p.wirelen[0], 4 + 16 + 4);
    }

    #[test]
    fn vlan_tpid_valid_with_zero_tpid_keeps_zero_and_short_frames_keep_no_tag() {
        let mut a = pkt(&eth_frame(20));
        a.tci = 9;
        a.status = 1 | TP_STATUS_VLAN_TPID_VALID;
        let mut short = pkt(&eth_frame(11));
        short.tci = 9;
        let (p, out) = frames(&[block(&[a, short], 1024)], &eth()).unwrap();
        assert_eq!(out[0][12..16], [0, 0, 0, 9]);
        assert_eq!(out[1], eth_frame(11));
        assert_eq!(p.wirelen, vec![24, 11]);
    }

    #[test]
    fn tagged_frame_cut_at_snaplen_inside_the_tag() {
        let mut a = pkt(&eth_frame(60));
        a.tci = 1;
        let opts = RingOptions {
            snaplen: 14,
            ..eth()
        };
        let (p, out) = frames(&[block(&[a], 1024)], &opts).unwrap();
        assert_eq!(out[0], [&eth_frame(12)[..], &[0x81, 0x00]].concat());
        assert_eq!((p.caplen[0], p.wirelen[0]), (14, 64));
    }

    #[test]
    fn outgoing_loopback_copies_are_dropped_and_counted() {
        let mut out_lo = pkt(&eth_frame(60));
        out_lo.pkttype = PACKET_OUTGOING;
        out_lo.ifindex = LO;
        let mut in_lo = out_lo.clone();
        in_lo.pkttype = 0;
        let mut out_other = out_lo.clone();
        out_other.ifindex = 3;
        let opts = RingOptions {
            lo_ifindex: Some(LO),
            ..eth()
        };
        let blocks = [block(
            &[out_lo.clone(), in_lo.clone(), out_other.clone()],
            4096,
        )];
        let (p, _) = frames(&blocks, &opts).unwrap();
        assert_eq!((p.len(), p.duplicates), (2, 1));
        let (p, _) = frames(&blocks, &eth()).unwrap();
        assert_eq!((p.len(), p.duplicates), (3, 0));
    }

    #[test]
    fn empty_blocks_give_no_frames() {
        let (p, out) = frames(&[block(&[], 256)], &eth()).unwrap();
        assert!(p.is_empty() && out.is_empty() && p.data_len == 0);
    }

    #[test]
    fn header_past_the_block_is_corrupt_with_its_offset() {
        let mut b = block(&[pkt(&eth_frame(60)), pkt(&eth_frame(60))], 1024);
        put_u32(&mut b, 48, 2000);
        let err = frames(&[b], &eth()).unwrap_err();
        assert_eq!(
            err.0,
            "corrupt TPACKET_V3 block: packet header at 2048 past its end 336"
        );
    }

    #[test]
    fn header_errors_come_before_data_errors_of_earlier_blocks() {
        let mut a = block(&[pkt(&eth_frame(60))], 1024);
        put_u32(&mut a, 48 + TP3_SNAPLEN, 5000);
        let mut b = block(&[pkt(&eth_frame(60))], 1024);
        put_u32(&mut b, BLOCK_FIRST_PKT, 1000);
        let err = frames(&[a.clone(), b], &eth()).unwrap_err();
        assert!(
            err.0
                .starts_with("corrupt TPACKET_V3 block: packet header at 1000"),
            "{err}"
        );
        let err = frames(&[a], &eth()).unwrap_err();
        assert_eq!(
            err.0,
            "corrupt TPACKET_V3 packet: data past the end of its block"
        );
    }

    #[test]
    fn blk_len_past_the_block_is_cut_to_the_block() {
        let mut b = block(&[pkt(&eth_frame(60))], 256);
        put_u32(&mut b, BLOCK_LEN, u32::MAX);
        assert!(frames(&[b.clone()], &eth()).is_ok());
        put_u32(&mut b, 48 + TP3_SNAPLEN, 200);
        assert!(frames(&[b], &eth()).is_err());
    }

    #[test]
    fn more_packets_than_can_fit_is_corrupt_not_a_long_walk() {
        let mut b = block(&[pkt(&eth_frame(60))], 1024);
        put_u32(&mut b, BLOCK_NUM_PKTS, u32::MAX);
        let err = frames(&[b], &eth()).unwrap_err();
        assert!(err.0.contains("4294967295 packets cannot fit"), "{err}");
    }

    #[test]
    fn cooked_without_room_for_the_sll_header() {
        let mut a = pkt(b"abc");
        a.gap = 8;
        let opts = RingOptions {
            cooked: true,
            ..eth()
        };
        let err = frames(&[block(&[a], 1024)], &opts).unwrap_err();
        assert_eq!(err.0, "kernel left no room for the SLL header in the ring");
    }

    #[test]
    fn a_short_block_or_buffer_is_refused_not_read_past() {
        assert!(frames(&[vec![0u8; 10]], &eth()).is_err());
        let blocks = [block(&[pkt(&eth_frame(60))], 1024)];
        let views: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        let p = plan(&views, &eth()).unwrap();
        let mut small = vec![0u8; 59];
        assert!(!p.write(&views, &mut small));
        assert!(small.iter().all(|&b| b == 0));
    }
}
