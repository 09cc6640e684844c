//! One frame on its way down the layers (the rules of docs/decoding.md, in the order of
//! portlens.reference.decode, which this follows function by function).
//!
//! Each layer reads its header through a `wire` view and writes its columns into the frame's
//! [`Row`]. A layer that cannot go on returns [`Stop`] with the malformed reason, or 0 when
//! snaplen merely cut the frame; what was written before stays in the row.

use super::app;
use super::columns::{
    Row, CSUM_BAD, CSUM_GOOD, CSUM_UNVERIFIED, FRAG_NONE, FRAG_PART, OPT_KINDS_MAX, SUB_CARRIER,
    SUB_MSDU,
};
use super::malformed as m;
use crate::wire::checksum::{is_good, ones_sum};
use crate::wire::ethernet::{
    self, Ethernet, Fddi, LlcSnap, MplsLabel, Null, Pppoe, Sll, Sll2, VlanTag,
};
use crate::wire::ip::{Ipv4, Ipv6, Ipv6Ext};
use crate::wire::transport::{self as tr, tcpopt, Icmp, Tcp, Udp};
use crate::wire::tunnel::{self as tn, kind, Ayiya, Geneve, Gre, Gtpu};
use crate::wire::wlan::{self, Dot11, Ppi, Radiotap};
use crate::wire::{ethertype as et, ipproto, linktype as lt, v4_mapped, Header};

/// Decoding of this frame ends here: a malformed reason, or 0 (cut by snaplen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop(pub u8);

type Step = Result<(), Stop>;

/// A datagram's identity for reassembly: version, source and destination (16-byte forms),
/// protocol, identification (4 bytes, big-endian).
pub type FragKey = [u8; 38];

/// One fragment as the decoder saw it (portlens.reference.fragments.FragmentRecord).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragRecord {
    pub row: usize,
    pub key: FragKey,
    /// Offset of this fragment's data in the datagram's fragmentable part.
    pub offset: u64,
    /// Fragment data bytes, from the header lengths.
    pub length: u64,
    pub more: bool,
    /// IPv4: IHL * 4; IPv6: 40 + the extension headers before the fragment header.
    pub unfrag_len: u64,
    /// An outer IPv4 fragment (no tunnel crossed) whose bytes were all captured: where its
    /// header and data lie in the frame, so that the reassembled datagram can be decoded
    /// (and descended into a tunnel) once complete.
    pub bytes: Option<FragBytes>,
}

/// Byte ranges of a fragment in its frame: the IPv4 header (IPv6: the fixed header and the
/// extension headers before the fragment header), the fragment's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragBytes {
    pub header: (usize, usize),
    pub data: (usize, usize),
    /// IPv6: where in the header the next header naming the fragment header (44) lies, and
    /// the fragment header's own next header, which replaces it in the reassembled datagram.
    pub next_header: Option<(usize, u8)>,
}

fn frag_key(version: u8, src: &[u8; 16], dst: &[u8; 16], proto: u8, ident: u32) -> FragKey {
    let mut key = [0u8; 38];
    key[0] = version;
    for (k, byte) in src
        .iter()
        .chain(dst)
        .chain(&[proto])
        .chain(&ident.to_be_bytes())
        .enumerate()
    {
        if let Some(slot) = key.get_mut(k + 1) {
            *slot = *byte;
        }
    }
    key
}

/// A tunnel entered whose inside has not shown an IP header yet.
#[derive(Clone, Copy)]
struct Pending {
    kind: u32,
    /// The carrier's UDP ports, for a tunnel over UDP.
    ports: Option<(u16, u16)>,
    /// The row as it was at the carrier, restored if no IP header follows.
    saved: Row,
}

fn clamp_u32(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

fn clamp_i32(x: usize) -> i32 {
    i32::try_from(x).unwrap_or(i32::MAX)
}

fn checksum_status(sum: u16) -> u8 {
    if is_good(sum) {
        CSUM_GOOD
    } else {
        CSUM_BAD
    }
}

#[derive(Clone)]
pub(crate) struct Walker<'a> {
    b: &'a [u8],
    cap: usize,
    /// Lengths are judged against the wire length; a record claiming fewer bytes on the wire
    /// than it captured is taken at its captured length, as tshark does.
    wire: usize,
    cut: bool,
    checksums: bool,
    pub row: Row,
    pub record: Option<FragRecord>,
    row_index: usize,
    depth: u8,
    tunnels: u32,
    pending: Option<Pending>,
    vlan_count: usize,
    mpls_count: usize,
    /// Frames found inside frames without a tunnel (FabricPath), bounded like tunnels.
    nested_frames: u8,
    // The innermost IP layer, for pseudo-headers.
    ip_version: u8,
    addr_len: usize,
    ip_src: [u8; 16],
    /// Destination for transport pseudo-headers: a routing header's final one if any.
    pseudo_dst: [u8; 16],
    /// The carrier row of every tunnel crossed after the first (levels 1, 2, ...): the last
    /// is `car_*`'s, those before it the middle carriers the frame gives rows for.
    carriers: Vec<Row>,
    /// The rows of the A-MSDU subframes after the first (each followed by its own carriers).
    more: Vec<Row>,
}

impl<'a> Walker<'a> {
    /// Starts the next frame in this walker: the loops over a batch reuse one walker (some
    /// 1,000 bytes with its row) and its carrier lists, where a new one per frame was built
    /// on the stack and copied twice (a tenth of `packets --stats`'s instructions).
    pub fn reset(&mut self, b: &'a [u8], wirelen: u32, row: Row, row_index: usize) {
        let mut carriers = std::mem::take(&mut self.carriers);
        let mut more = std::mem::take(&mut self.more);
        carriers.clear();
        more.clear();
        *self = Walker {
            carriers,
            more,
            ..Walker::new(b, wirelen, row, row_index, self.checksums)
        };
    }

    pub fn new(b: &'a [u8], wirelen: u32, row: Row, row_index: usize, checksums: bool) -> Self {
        let cap = b.len();
        let wire = usize::try_from(wirelen).unwrap_or(usize::MAX);
        Walker {
            b,
            cap,
            wire: wire.max(cap),
            cut: cap < wire,
            checksums,
            row,
            record: None,
            row_index,
            depth: 0,
            tunnels: 0,
            pending: None,
            vlan_count: 0,
            mpls_count: 0,
            nested_frames: 0,
            ip_version: 0,
            addr_len: 4,
            ip_src: [0; 16],
            pseudo_dst: [0; 16],
            carriers: Vec::new(),
            more: Vec::new(),
        }
    }

    /// Decodes the frame from its link layer; the row and the fragment record are left in
    /// `self.row` / `self.record`.
    pub fn decode(&mut self, linktype: u16) {
        let result = self.link(linktype);
        self.finish(result);
    }

    /// The rows the frame gives after its own, in order: the middle carriers of its own row
    /// (three or more tunnels), then the other A-MSDU subframes' rows (none for most frames).
    pub fn extra_rows(&self) -> impl Iterator<Item = Row> + '_ {
        let middle = self.carriers.len().saturating_sub(1);
        self.carriers
            .iter()
            .take(middle)
            .map(|carrier| Row {
                sub: SUB_CARRIER,
                ..*carrier
            })
            .chain(self.more.iter().copied())
    }

    /// Ends decoding with the outcome of the layers: a pending tunnel rolled back, the reason.
    fn finish(&mut self, result: Step) {
        let reason = match result {
            Ok(()) => 0,
            Err(Stop(reason)) => reason,
        };
        if let Some(pending) = self.pending.take() {
            // No IP layer inside the last tunnel (ARP in VXLAN, a broken inner header): the row
            // stays the carrier's packet, as for a GRE protocol that is not descended.
            self.row = pending.saved;
        }
        if reason != 0 {
            self.row.malformed = reason;
        }
    }

    // --- plumbing ---------------------------------------------------------------------------

    /// Bytes `[pos, pos + len)` must be captured; if not, stop (malformed unless snaplen cut).
    fn need(&self, pos: usize, len: usize, reason: u8) -> Step {
        match pos.checked_add(len) {
            Some(end) if end <= self.cap => Ok(()),
            _ => Err(Stop(if self.cut { 0 } else { reason })),
        }
    }

    /// A header inside an enclosing length (IP payload, UDP payload) must end within it: past
    /// the enclosing header's own length it is malformed whatever snaplen kept.
    fn need_within(&self, pos: usize, len: usize, limit: usize, reason: u8) -> Step {
        match pos.checked_add(len) {
            Some(end) if end <= limit => self.need(pos, len, reason),
            _ => Err(Stop(reason)),
        }
    }

    /// The header at `pos`, which must be captured (`need`).
    fn header<H: Header<'a>>(&self, pos: usize, reason: u8) -> Result<H, Stop> {
        self.need(pos, H::LEN, reason)?;
        H::at(self.b, pos).ok_or(Stop(reason))
    }

    /// The header at `pos`, which must end within `limit` (`need_within`).
    fn header_within<H: Header<'a>>(
        &self,
        pos: usize,
        limit: usize,
        reason: u8,
    ) -> Result<H, Stop> {
        self.need_within(pos, H::LEN, limit, reason)?;
        H::at(self.b, pos).ok_or(Stop(reason))
    }

    fn u8_at(&self, pos: usize) -> u8 {
        self.b.get(pos).copied().unwrap_or(0)
    }

    fn u16_at(&self, pos: usize) -> u16 {
        match self.b.get(pos..).and_then(<[u8]>::first_chunk::<2>) {
            Some(w) => u16::from_be_bytes(*w),
            None => 0,
        }
    }

    fn u32_at(&self, pos: usize) -> u32 {
        match self.b.get(pos..).and_then(<[u8]>::first_chunk::<4>) {
            Some(w) => u32::from_be_bytes(*w),
            None => 0,
        }
    }

    fn starts_with(&self, pos: usize, prefix: &[u8]) -> bool {
        self.b
            .get(pos..)
            .is_some_and(|rest| rest.starts_with(prefix))
    }

    // --- link layer -----------------------------------------------------------------------

    fn link(&mut self, linktype: u16) -> Step {
        match linktype {
            lt::ETHERNET => self.ethernet(0),
            lt::LINUX_SLL => {
                let h: Sll = self.header(0, m::LINK_HEADER_SHORT)?;
                self.ethertype_chain(Sll::LEN, h.protocol())
            }
            lt::LINUX_SLL2 => {
                let h: Sll2 = self.header(0, m::LINK_HEADER_SHORT)?;
                self.ethertype_chain(Sll2::LEN, h.protocol())
            }
            lt::NULL | lt::LOOP => {
                let h: Null = self.header(0, m::LINK_HEADER_SHORT)?;
                let family = if linktype == lt::NULL {
                    h.family_any_order()
                } else {
                    h.family_big_endian()
                };
                if family == ethernet::AF_INET {
                    self.ipv4(Null::LEN)
                } else if ethernet::is_af_inet6(family) {
                    self.ipv6(Null::LEN)
                } else {
                    Ok(())
                }
            }
            lt::RAW_12 | lt::RAW_14 | lt::RAW => {
                self.need(0, 1, m::LINK_HEADER_SHORT)?;
                self.ip_by_nibble(0, None)
            }
            lt::IPV4 => self.ipv4(0),
            lt::IPV6 => self.ipv6(0),
            lt::PPP | lt::PPP_SERIAL => self.ppp(0),
            lt::FDDI => {
                let _: Fddi = self.header(0, m::LINK_HEADER_SHORT)?;
                self.llc(Fddi::LEN)
            }
            lt::IEEE802_11 => self.dot11(0, false, false),
            lt::RADIOTAP => {
                let h: Radiotap = self.header(0, m::LINK_HEADER_SHORT)?;
                if h.version() != 0 {
                    return Ok(()); // not a radiotap header tshark reads
                }
                let len = h.length();
                if len < Radiotap::LEN {
                    return Err(Stop(m::LINK_HEADER_SHORT));
                }
                self.need(0, len, m::LINK_HEADER_SHORT)?;
                let flags = wlan::radiotap_flags(self.b, len);
                self.dot11(
                    len,
                    flags & wlan::RADIOTAP_FLAG_DATA_PAD != 0,
                    flags & wlan::RADIOTAP_FLAG_FCS != 0,
                )
            }
            lt::PPI => {
                let h: Ppi = self.header(0, m::LINK_HEADER_SHORT)?;
                let len = h.length();
                if h.version() != 0 {
                    return Ok(());
                }
                if len < Ppi::LEN {
                    return Err(Stop(m::LINK_HEADER_SHORT));
                }
                self.need(0, len, m::LINK_HEADER_SHORT)?;
                match h.dlt() {
                    105 => self.dot11(len, false, false),
                    1 => self.ethernet(len),
                    _ => Ok(()),
                }
            }
            lt::PRISM | lt::AVS => {
                self.need(0, 8, m::LINK_HEADER_SHORT)?;
                match wlan::monitor_header_len(self.b) {
                    Some(len) if len >= 8 => {
                        self.need(0, len, m::LINK_HEADER_SHORT)?;
                        self.dot11(len, false, false)
                    }
                    Some(_) => Err(Stop(m::LINK_HEADER_SHORT)),
                    None => Ok(()),
                }
            }
            lt::NFLOG => self.nflog(),
            lt::IPNET => {
                self.need(0, wlan::IPNET_HEADER_LEN, m::LINK_HEADER_SHORT)?;
                match self.u8_at(1) {
                    2 => self.ipv4(wlan::IPNET_HEADER_LEN),
                    wlan::IPNET_AF_INET6 => self.ipv6(wlan::IPNET_HEADER_LEN),
                    _ => Ok(()),
                }
            }
            lt::C_HDLC => {
                self.need(0, 4, m::LINK_HEADER_SHORT)?;
                self.ethertype_chain(4, self.u16_at(2))
            }
            lt::PPP_ETHER => {
                let _: Pppoe = self.header(0, m::PPPOE_HEADER_SHORT)?;
                self.ppp_protocol(Pppoe::LEN)
            }
            lt::ATM_RFC1483 => self.llc(0),
            lt::ENC => {
                // the address family in the writer's byte order, as NULL's
                let h: Null = self.header(0, m::LINK_HEADER_SHORT)?;
                self.need(0, 12, m::LINK_HEADER_SHORT)?;
                self.ip_by_family(h.family_any_order(), 12)
            }
            lt::PFLOG => {
                self.need(0, 2, m::LINK_HEADER_SHORT)?;
                let len = usize::from(self.u8_at(0)).next_multiple_of(4);
                if len < 4 {
                    return Err(Stop(m::LINK_HEADER_SHORT));
                }
                self.need(0, len, m::LINK_HEADER_SHORT)?;
                self.ip_by_family(u32::from(self.u8_at(1)), len)
            }
            lt::PKTAP => {
                // pth_length (LE) and pth_dlt (LE, offset 8): the frame after the header
                self.need(0, 12, m::LINK_HEADER_SHORT)?;
                let len = usize::try_from(u32::from_le_bytes([
                    self.u8_at(0),
                    self.u8_at(1),
                    self.u8_at(2),
                    self.u8_at(3),
                ]))
                .unwrap_or(usize::MAX);
                let dlt = u32::from_le_bytes([
                    self.u8_at(8),
                    self.u8_at(9),
                    self.u8_at(10),
                    self.u8_at(11),
                ]);
                if len < 12 {
                    return Err(Stop(m::LINK_HEADER_SHORT));
                }
                self.need(0, len, m::LINK_HEADER_SHORT)?;
                match u16::try_from(dlt) {
                    Ok(lt::ETHERNET) => self.ethernet(len),
                    Ok(lt::RAW_12 | lt::RAW_14 | lt::RAW) => self.ip_by_nibble(len, None),
                    Ok(lt::NULL) => {
                        let h: Null = self.header(len, m::LINK_HEADER_SHORT)?;
                        self.ip_by_family(h.family_any_order(), len + Null::LEN)
                    }
                    _ => Ok(()),
                }
            }
            // Any other link type is not decoded: no IP, not malformed.
            _ => Ok(()),
        }
    }

    /// NFLOG: family, version, resource id, then TLVs (length, type; padded to 4 bytes) until
    /// NFULA_PAYLOAD, which holds the packet of the header's family.
    fn nflog(&mut self) -> Step {
        self.need(0, wlan::NFLOG_HEADER_LEN, m::LINK_HEADER_SHORT)?;
        let family = self.u8_at(0);
        let mut pos = wlan::NFLOG_HEADER_LEN;
        while pos < self.cap {
            self.need(pos, 4, m::LINK_HEADER_SHORT)?;
            let Some((len, kind)) = wlan::nflog_tlv(self.b, pos) else {
                return Err(Stop(m::LINK_HEADER_SHORT));
            };
            if len < 4 {
                return Err(Stop(m::LINK_HEADER_SHORT));
            }
            if kind == wlan::NFULA_PAYLOAD {
                let inner = pos + 4;
                return match u32::from(family) {
                    ethernet::AF_INET => self.ipv4(inner),
                    10 => self.ipv6(inner),
                    _ => Ok(()),
                };
            }
            pos = pos.saturating_add(len.next_multiple_of(4));
        }
        Ok(())
    }

    /// An 802.11 frame at `pos`: only data frames with a body, neither protected (encrypted)
    /// nor fragmented, are decoded, through their 802.2 LLC/SNAP header; of an A-MSDU the
    /// first subframe. `data_pad`: radiotap says the body starts on a 4-byte boundary.
    fn dot11(&mut self, pos: usize, data_pad: bool, fcs: bool) -> Step {
        self.need(pos, 2, m::LINK_HEADER_SHORT)?;
        let fc = self.u8_at(pos);
        if fc & 0x03 != 0 || (fc >> 2) & 0x03 != 2 {
            return Ok(()); // another protocol version, or management / control frames
        }
        let h: Dot11 = self.header(pos, m::LINK_HEADER_SHORT)?;
        if h.has_no_data() {
            return Ok(());
        }
        let hlen = h.header_len();
        self.need(pos, hlen, m::LINK_HEADER_SHORT)?;
        if h.protected() || h.more_fragments() || h.fragment_number() != 0 {
            return Ok(()); // encrypted, or one piece of an 802.11 fragment: no IP to read
        }
        let body = pos.saturating_add(if data_pad {
            hlen.next_multiple_of(4)
        } else {
            hlen
        });
        if h.is_qos()
            && self.u8_at(pos.saturating_add(h.qos_offset())) & wlan::QOS_AMSDU_PRESENT != 0
        {
            let end = if fcs {
                self.wire.saturating_sub(wlan::FCS_LEN)
            } else {
                self.wire
            };
            return self.amsdu(body, end);
        }
        if body >= self.cap && !self.cut {
            return Ok(()); // a data frame with no body
        }
        self.llc(body)
    }

    /// An A-MSDU in [body, end): subframes (destination, source, MSDU length, an LLC MSDU,
    /// padded to 4 bytes from the A-MSDU's start but the last), each packet a row, as tshark
    /// lists and Zeek's IEEE802_11Analyzer::AnalyzePacket forwards every one. The first
    /// subframe's packet is the frame's own row; each later one decodes from the state at the
    /// 802.11 header (the same carriers: Zeek pops the encapsulation stack back to it) into a
    /// row of its own. Each MSDU is decoded as if its frame ended with it. tshark goes on
    /// while more than a subframe header's bytes remain.
    fn amsdu(&mut self, body: usize, end: usize) -> Step {
        self.need(body, wlan::AMSDU_SUBFRAME_LEN, m::LINK_HEADER_SHORT)?;
        let base = self.clone();
        let shared = base.depth.saturating_add(u8::from(base.pending.is_some()));
        let mut first: Option<(Walker<'a>, Step)> = None;
        let mut more = Vec::new();
        let mut pos = body;
        loop {
            if first.is_some()
                && (end.saturating_sub(pos) <= wlan::AMSDU_SUBFRAME_LEN
                    || pos.saturating_add(wlan::AMSDU_SUBFRAME_LEN) > self.cap)
            {
                break;
            }
            let len = wlan::amsdu_msdu_len(self.b, pos).unwrap_or(0);
            let start = pos.saturating_add(wlan::AMSDU_SUBFRAME_LEN);
            let sub_end = start.saturating_add(len);
            let mut w = base.clone();
            w.wire = sub_end;
            w.cap = self.cap.min(sub_end);
            w.cut = self.cut && self.cap < sub_end;
            let result = w.llc(start);
            if first.is_none() {
                first = Some((w, result));
            } else {
                w.finish(result);
                let mut row = w.row;
                row.sub = SUB_MSDU.saturating_add(shared);
                if w.record.is_some() {
                    // not reassembled (docs/decoding.md, 802.11): a part, counted nowhere
                    row.frag = FRAG_PART;
                    row.l4 = 0;
                    row.payload = -1;
                }
                more.push(row);
                more.extend(w.extra_rows());
            }
            let used = sub_end.saturating_sub(body);
            pos = body.saturating_add(used.next_multiple_of(4));
            if pos >= end {
                break;
            }
        }
        let Some((w, result)) = first else {
            return Ok(());
        };
        *self = w;
        self.more = more;
        result
    }

    /// IP by a BSD address family (2 IPv4; 10, 24, 28, 30 IPv6), else not IP.
    fn ip_by_family(&mut self, family: u32, pos: usize) -> Step {
        if family == ethernet::AF_INET {
            self.ipv4(pos)
        } else if ethernet::is_af_inet6(family) {
            self.ipv6(pos)
        } else {
            Ok(())
        }
    }

    /// 802.2 LLC: only SNAP (AA AA 03, OUI, ethertype) carries an ethertype; any other SAP
    /// (STP, NetBIOS, IPX...) is not IP.
    fn llc(&mut self, pos: usize) -> Step {
        self.need(pos, 3, m::LINK_HEADER_SHORT)?;
        if !ethernet::is_llc_snap(self.b, pos) {
            return Ok(());
        }
        let snap: LlcSnap = self.header(pos, m::LINK_HEADER_SHORT)?;
        self.ethertype_chain(pos.saturating_add(LlcSnap::LEN), snap.ethertype())
    }

    /// IP whose version only its first nibble tells (raw links, after MPLS, in GTP-U).
    fn ip_by_nibble(&mut self, pos: usize, otherwise: Option<u8>) -> Step {
        match self.u8_at(pos) >> 4 {
            4 => self.ipv4(pos),
            6 => self.ipv6(pos),
            _ => match otherwise {
                Some(reason) => Err(Stop(reason)),
                None => Ok(()),
            },
        }
    }

    fn ethernet(&mut self, pos: usize) -> Step {
        let h: Ethernet = self.header(pos, m::LINK_HEADER_SHORT)?;
        let ethertype = h.ethertype();
        // Cisco FabricPath, as Wireshark's cfp heuristic finds it: its ethertype where the
        // frame's is (a 16-byte outer header), or after an 802.1ad / 802.1Q tag (20 bytes);
        // a whole Ethernet frame follows.
        let fabricpath = if ethertype == et::FABRICPATH {
            Some(16)
        } else if matches!(ethertype, et::VLAN_8021AD | et::VLAN_8021Q)
            && self.u16_at(pos.saturating_add(16)) == et::FABRICPATH
            && self.need(pos, 18, 0).is_ok()
        {
            Some(20)
        } else {
            None
        };
        if let Some(outer) = fabricpath {
            if self.nested_frames >= tn::MAX_TUNNEL_DEPTH {
                return Err(Stop(m::TUNNEL_TOO_DEEP));
            }
            self.nested_frames += 1;
            self.row.ethertype = et::FABRICPATH;
            self.need(pos, outer, m::LINK_HEADER_SHORT)?;
            return self.ethernet(pos.saturating_add(outer));
        }
        self.ethertype_chain(pos.saturating_add(Ethernet::LEN), ethertype)
    }

    fn ethertype_chain(&mut self, mut pos: usize, mut ethertype: u16) -> Step {
        self.row.ethertype = ethertype;
        loop {
            if et::is_vlan(ethertype) {
                let tag: VlanTag = self.header(pos, m::VLAN_TAG_SHORT)?;
                if self.row.vlan < 0 {
                    self.row.vlan = i32::from(tag.vid());
                }
                self.vlan_count = self.vlan_count.saturating_add(1);
                self.row.vlan_count = u8::try_from(self.vlan_count).unwrap_or(u8::MAX);
                ethertype = tag.ethertype();
                pos = pos.saturating_add(VlanTag::LEN);
            } else if ethertype == et::PBB {
                // 802.1ah I-TAG (4), customer destination and source (12), ethertype (2)
                self.need(pos, 18, m::LINK_HEADER_SHORT)?;
                ethertype = self.u16_at(pos + 16);
                pos = pos.saturating_add(18);
            } else if ethertype == et::VN_TAG {
                // VN-Tag (4), then the ethertype (2)
                self.need(pos, 6, m::LINK_HEADER_SHORT)?;
                ethertype = self.u16_at(pos + 4);
                pos = pos.saturating_add(6);
            } else {
                break;
            }
            self.row.ethertype = ethertype;
        }
        if et::is_mpls(ethertype) {
            return self.mpls(pos);
        }
        match ethertype {
            et::PPPOE_SESSION => {
                let _: Pppoe = self.header(pos, m::PPPOE_HEADER_SHORT)?;
                self.ppp_protocol(pos.saturating_add(Pppoe::LEN))
            }
            et::IPV4 => self.ipv4(pos),
            et::IPV6 => self.ipv6(pos),
            // ARP, PPPoE discovery, LLDP, an 802.3 length...: not IP.
            _ => Ok(()),
        }
    }

    /// An MPLS label stack, then IP by its first nibble.
    fn mpls(&mut self, mut pos: usize) -> Step {
        loop {
            let label: MplsLabel = self.header(pos, m::MPLS_LABEL_SHORT)?;
            self.mpls_count = self.mpls_count.saturating_add(1);
            self.row.mpls_count = u8::try_from(self.mpls_count).unwrap_or(u8::MAX);
            pos = pos.saturating_add(MplsLabel::LEN);
            if label.bottom_of_stack() {
                break;
            }
        }
        self.need(pos, 1, m::MPLS_PAYLOAD_UNKNOWN)?;
        self.ip_by_nibble(pos, Some(m::MPLS_PAYLOAD_UNKNOWN))
    }

    /// PPP framing (DLT_PPP, PPP-HDLC, GRE 0x880b): optional ff 03, then the protocol.
    fn ppp(&mut self, mut pos: usize) -> Step {
        if self.starts_with(pos, &[0xFF, 0x03]) {
            pos = pos.saturating_add(2);
        }
        self.ppp_protocol(pos)
    }

    fn ppp_protocol(&mut self, pos: usize) -> Step {
        self.need(pos, 2, m::PPP_HEADER_SHORT)?;
        let protocol = self.u16_at(pos);
        self.row.ppp_proto = protocol;
        let inner = pos.saturating_add(2);
        match protocol {
            et::PPP_IPV4 => self.ipv4(inner),
            et::PPP_IPV6 => self.ipv6(inner),
            _ => Ok(()),
        }
    }

    // --- IP -------------------------------------------------------------------------------

    /// An IP header (the first, or one inside a tunnel) takes over the IP columns.
    fn new_ip_layer(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.cross_tunnel(pending);
        }
        let r = &mut self.row;
        r.ip_version = 0;
        r.src = [0; 16];
        r.dst = [0; 16];
        r.proto = 0;
        r.ip_len = 0;
        r.ip_len_zero = false;
        r.ip_hlen = 0;
        r.ttl = 0;
        r.ip_id = 0;
        r.ip_csum = 0;
    }

    fn ipv4(&mut self, pos: usize) -> Step {
        let h: Ipv4 = self.header(pos, m::IPV4_HEADER_SHORT)?;
        if h.version() != 4 {
            return Err(Stop(m::IPV4_VERSION_MISMATCH));
        }
        let hlen = h.header_len();
        if hlen < Ipv4::LEN {
            return Err(Stop(m::IPV4_IHL_INVALID));
        }
        let on_wire = self.wire.saturating_sub(pos);
        // Total length 0 is TSO: the capturing host handed the NIC a datagram with no length.
        let ip_len_zero = h.total_len() == 0;
        let ip_len = match h.total_len() {
            0 => on_wire,
            total => usize::from(total),
        };
        let (src, dst) = (v4_mapped(h.src()), v4_mapped(h.dst()));
        let proto = h.protocol();
        let ip_csum = if !self.checksums {
            0
        } else {
            // Options are skipped, so only the checksum needs them captured.
            match pos.checked_add(hlen).and_then(|end| self.b.get(pos..end)) {
                Some(header) => checksum_status(ones_sum(header, 0)),
                None => CSUM_UNVERIFIED,
            }
        };
        // The fixed header is decoded (and its checksum checked, as tshark does); a length that
        // contradicts the frame leaves these fields in the row and stops there.
        self.new_ip_layer();
        let r = &mut self.row;
        r.ip_version = 4;
        r.src = src;
        r.dst = dst;
        r.proto = proto;
        r.ip_len = clamp_u32(ip_len);
        r.ip_len_zero = ip_len_zero;
        r.ip_hlen = u16::try_from(hlen).unwrap_or(u16::MAX);
        r.ttl = h.ttl();
        r.ip_id = u32::from(h.ident());
        r.ip_csum = ip_csum;
        if ip_len < hlen || ip_len > on_wire {
            return Err(Stop(m::IPV4_TOTAL_LENGTH_INVALID));
        }
        self.ip_version = 4;
        self.addr_len = 4;
        self.ip_src = [0; 16];
        self.ip_src[..4].copy_from_slice(&h.src());
        self.pseudo_dst = [0; 16];
        self.pseudo_dst[..4].copy_from_slice(&h.dst());
        let (more, frag_offset) = (h.more_fragments(), h.frag_offset());
        let fragment = more || frag_offset != 0;
        if fragment {
            self.record = Some(FragRecord {
                row: self.row_index,
                key: frag_key(4, &src, &dst, proto, u32::from(h.ident())),
                offset: u64::from(frag_offset),
                length: (ip_len - hlen) as u64,
                more,
                unfrag_len: hlen as u64,
                bytes: (self.depth == 0 && self.pending.is_none())
                    .then(|| {
                        let (data, end) = (pos.checked_add(hlen)?, pos.checked_add(ip_len)?);
                        (end <= self.cap).then_some(FragBytes {
                            header: (pos, data),
                            data: (data, end),
                            next_header: None,
                        })
                    })
                    .flatten(),
            });
            if frag_offset != 0 {
                return Ok(()); // no transport header in a non-first fragment
            }
        }
        self.transport(pos, hlen, ip_len, proto, fragment)
    }

    fn ipv6(&mut self, pos: usize) -> Step {
        let h: Ipv6 = self.header(pos, m::IPV6_HEADER_SHORT)?;
        if h.version() != 6 {
            return Err(Stop(m::IPV6_VERSION_MISMATCH));
        }
        let mut nh = h.next_header();
        let on_wire = self.wire.saturating_sub(pos);
        // Payload length 0 (but for No Next Header) is a jumbogram or TSO: the frame's length.
        let ip_len = match h.payload_len() {
            0 if nh != ipproto::NONE => on_wire,
            len => Ipv6::LEN + usize::from(len),
        };
        let (src, dst) = (h.src(), h.dst());
        self.new_ip_layer();
        let r = &mut self.row;
        r.ip_version = 6;
        r.src = src;
        r.dst = dst;
        r.ttl = h.hop_limit();
        r.ip_len = clamp_u32(ip_len);
        if ip_len < Ipv6::LEN || ip_len > on_wire {
            return Err(Stop(m::IPV6_PAYLOAD_LENGTH_INVALID));
        }
        self.ip_version = 6;
        self.addr_len = 16;
        self.ip_src = src;
        self.pseudo_dst = dst;
        let ip_end = pos.saturating_add(ip_len);

        let mut off = Ipv6::LEN; // relative to the IPv6 header
        let mut count = 0;
        let mut fragment = false;
        // Where the next header naming the current extension header lies (relative).
        let mut nh_at = 6usize;
        while ipproto::is_ipv6_extension(nh) {
            // proto / ip_hlen say where the chain stopped should it stop here.
            self.row.proto = nh;
            self.row.ip_hlen = u16::try_from(off).unwrap_or(u16::MAX);
            count += 1;
            if count > IPV6_EXT_MAX {
                return Err(Stop(m::IPV6_EXT_HEADER_INVALID));
            }
            let start = pos.saturating_add(off);
            let ext: Ipv6Ext = self.header_within(start, ip_end, m::IPV6_EXT_HEADER_INVALID)?;
            let length = ext.header_len(nh);
            self.need_within(start, length, ip_end, m::IPV6_EXT_HEADER_INVALID)?;
            if nh == ipproto::ROUTING {
                self.routing_final_destination(start, length, &ext);
            } else if nh == ipproto::FRAGMENT && !fragment {
                let ident = ext.frag_ident();
                self.row.ip_id = ident;
                let (frag_offset, more) = (ext.frag_offset(), ext.more_fragments());
                if more || frag_offset != 0 {
                    fragment = true;
                    let after = off.saturating_add(8);
                    self.record = Some(FragRecord {
                        row: self.row_index,
                        key: frag_key(6, &src, &dst, ext.next_header(), ident),
                        offset: u64::from(frag_offset),
                        length: ip_len.saturating_sub(after) as u64,
                        more,
                        unfrag_len: off as u64,
                        bytes: (self.depth == 0 && self.pending.is_none())
                            .then(|| {
                                let data = pos.checked_add(after)?;
                                let end = pos.checked_add(ip_len)?;
                                (end <= self.cap && data <= end).then_some(FragBytes {
                                    header: (pos, pos.checked_add(off)?),
                                    data: (data, end),
                                    next_header: Some((nh_at, ext.next_header())),
                                })
                            })
                            .flatten(),
                    });
                    if frag_offset != 0 {
                        self.row.proto = ext.next_header();
                        self.row.ip_hlen = u16::try_from(after).unwrap_or(u16::MAX);
                        return Ok(());
                    }
                }
            }
            nh = ext.next_header();
            nh_at = off;
            off = off.saturating_add(length);
        }
        self.row.proto = nh;
        self.row.ip_hlen = u16::try_from(off).unwrap_or(u16::MAX);
        if nh == ipproto::ESP || nh == ipproto::NONE {
            return Ok(());
        }
        self.transport(pos, off, ip_len, nh, fragment)
    }

    /// RFC 8200 §8.1: while segments are left, the pseudo-header carries the final
    /// destination, which the routing header holds (tshark 4.0 validates with it too).
    fn routing_final_destination(&mut self, start: usize, length: usize, ext: &Ipv6Ext<'_>) {
        if ext.segments_left() == 0 || length < 24 {
            return;
        }
        let at = match ext.routing_type() {
            0 | 2 => start.saturating_add(length - 16),
            4 => start.saturating_add(8), // segment list [0]
            _ => return,
        };
        if let Some(addr) = crate::wire::ip::addr_at(self.b, at) {
            self.pseudo_dst = addr;
        }
    }

    // --- transport --------------------------------------------------------------------------

    fn transport(
        &mut self,
        pos: usize,
        hlen: usize,
        ip_len: usize,
        proto: u8,
        fragment: bool,
    ) -> Step {
        let (start, end) = (pos.saturating_add(hlen), pos.saturating_add(ip_len));
        match proto {
            ipproto::TCP => self.tcp(start, end, fragment),
            ipproto::UDP => self.udp(start, end, fragment),
            ipproto::ICMP | ipproto::ICMPV6 => self.icmp(start, end, proto, fragment),
            // A tunnel's inner packet is incomplete in a fragment: not descended.
            _ if fragment => Ok(()),
            ipproto::IPIP | ipproto::IPV6 => {
                let inner4 = proto == ipproto::IPIP;
                let tunnel = match (self.ip_version == 4, inner4) {
                    (true, true) => kind::IPIP,
                    (true, false) => kind::SIX_IN_FOUR,
                    (false, true) => kind::FOUR_IN_SIX,
                    (false, false) => kind::SIX_IN_SIX,
                };
                self.enter_tunnel(tunnel, None)?;
                if inner4 {
                    self.ipv4(start)
                } else {
                    self.ipv6(start)
                }
            }
            ipproto::GRE => self.gre(start, end, None),
            _ => Ok(()),
        }
    }

    /// The transport pseudo-header's one's-complement sum (RFC 9293 §3.1, RFC 8200 §8.1).
    fn pseudo_header_sum(&self, proto: u8, length: usize) -> u16 {
        let mut buf = [0u8; 40];
        let n = self.addr_len;
        let parts = [
            self.ip_src.get(..n).unwrap_or(&[]),
            self.pseudo_dst.get(..n).unwrap_or(&[]),
            &clamp_u32(length).to_be_bytes(),
            &[0, 0, 0, proto],
        ];
        let mut used = 0;
        for part in parts {
            if let Some(dst) = buf.get_mut(used..used + part.len()) {
                dst.copy_from_slice(part);
                used += part.len();
            }
        }
        ones_sum(buf.get(..used).unwrap_or(&[]), 0)
    }

    /// Status of a checksum covering bytes [start, end) (+ pseudo-header unless ICMP).
    fn transport_checksum(&self, start: usize, end: usize, proto: u8, fragment: bool) -> u8 {
        let Some(data) = self.b.get(start..end).filter(|_| !fragment) else {
            return CSUM_UNVERIFIED;
        };
        let initial = if proto == ipproto::ICMP {
            0
        } else {
            self.pseudo_header_sum(proto, end - start)
        };
        checksum_status(ones_sum(data, u32::from(initial)))
    }

    fn tcp(&mut self, start: usize, end: usize, fragment: bool) -> Step {
        let t: Tcp = self.header_within(start, end, m::TCP_HEADER_SHORT)?;
        let doff = t.header_len();
        let r = &mut self.row;
        r.l4 = ipproto::TCP;
        r.sport = t.src_port();
        r.dport = t.dst_port();
        r.seq = t.seq();
        r.ack = t.ack();
        r.tcp_hlen = u8::try_from(doff).unwrap_or(u8::MAX);
        r.tcp_flags = t.flags();
        r.win = t.window();
        r.urp = t.urgent();
        if self.checksums {
            // what the checksum covers comes from the IP header, whatever the data offset says
            self.row.l4_csum = self.transport_checksum(start, end, ipproto::TCP, fragment);
        }
        let segment = end.saturating_sub(start);
        if doff < Tcp::LEN || doff > segment {
            return Err(Stop(m::TCP_OFFSET_INVALID));
        }
        self.row.payload = clamp_i32(segment - doff);
        let mut kinds = [0u8; OPT_KINDS_MAX];
        let mut count = 0usize;
        let result = self.tcp_options(start + Tcp::LEN, start + doff, &mut kinds, &mut count);
        self.row.opt_count = u8::try_from(count).unwrap_or(u8::MAX);
        self.row.opt_kinds = kinds;
        result
    }

    /// Options in [pos, end) as far as captured; see docs/decoding.md (*TCP*).
    fn tcp_options(
        &mut self,
        mut pos: usize,
        end: usize,
        kinds: &mut [u8; OPT_KINDS_MAX],
        count: &mut usize,
    ) -> Step {
        let limit = end.min(self.cap);
        let mut push = |kind: u8| {
            if let Some(slot) = kinds.get_mut(*count) {
                *slot = kind;
            }
            *count += 1;
        };
        while pos < limit {
            let kind = self.u8_at(pos);
            push(kind);
            if kind == tcpopt::EOL {
                // tshark 4.0 lists each zero byte after EOL as another EOL, up to the first
                // non-zero (non-zero padding it flags and does not list).
                pos += 1;
                while pos < limit && self.u8_at(pos) == 0 {
                    push(tcpopt::EOL);
                    pos += 1;
                }
                break;
            }
            if kind == tcpopt::NOP {
                pos += 1;
                continue;
            }
            if pos + 1 >= end {
                return Err(Stop(m::TCP_OPTION_INVALID)); // no room for the length byte
            }
            if pos + 1 >= self.cap {
                break; // the length byte was cut by snaplen
            }
            let length = usize::from(self.u8_at(pos + 1));
            if length < 2 || pos + length > end {
                return Err(Stop(m::TCP_OPTION_INVALID));
            }
            if pos + length > self.cap {
                break; // the value was cut by snaplen: kind listed, value not taken
            }
            self.tcp_option_value(kind, pos, length);
            pos += length;
        }
        Ok(())
    }

    fn tcp_option_value(&mut self, kind: u8, pos: usize, length: usize) {
        match (kind, length) {
            (tcpopt::MSS, 4) => self.row.mss = i32::from(self.u16_at(pos + 2)),
            (tcpopt::WSCALE, 3) => self.row.wscale = i16::from(self.u8_at(pos + 2)),
            (tcpopt::SACK_PERMITTED, 2) => self.row.sack_perm = true,
            (tcpopt::TIMESTAMP, 10) => {
                self.row.has_ts = true;
                self.row.tsval = self.u32_at(pos + 2);
                self.row.tsecr = self.u32_at(pos + 6);
            }
            (tcpopt::SACK, 10 | 18 | 26 | 34) => {
                let blocks = (length - 2) / 8;
                let mut edges = [0u32; 8];
                for (k, edge) in edges.iter_mut().take(2 * blocks).enumerate() {
                    *edge = self.u32_at(pos + 2 + 4 * k);
                }
                self.row.sack_count = u8::try_from(blocks).unwrap_or(u8::MAX);
                self.row.sack = edges;
            }
            _ => {}
        }
    }

    fn udp(&mut self, start: usize, end: usize, fragment: bool) -> Step {
        let u: Udp = self.header_within(start, end, m::UDP_HEADER_SHORT)?;
        let (sport, dport) = (u.src_port(), u.dst_port());
        let udp_len = usize::from(u.length());
        let ip_payload = end.saturating_sub(start);
        // A first fragment's UDP length counts the whole datagram, past this fragment's end.
        let valid_length = udp_len >= Udp::LEN && (fragment || udp_len <= ip_payload);
        if self.checksums {
            self.row.l4_csum = if fragment || udp_len < Udp::LEN {
                CSUM_UNVERIFIED // a length below 8: tshark stops before the checksum
            } else if u.checksum() == 0 {
                // None sent (IPv4); forbidden over IPv6 (RFC 8200 §8.1), whatever the length.
                if self.ip_version == 4 {
                    CSUM_UNVERIFIED
                } else {
                    CSUM_BAD
                }
            } else if !valid_length {
                CSUM_UNVERIFIED // what the checksum covers is unknown
            } else {
                self.transport_checksum(start, start + udp_len, ipproto::UDP, false)
            };
        }
        let r = &mut self.row;
        r.l4 = ipproto::UDP;
        r.sport = sport;
        r.dport = dport;
        r.udp_len = u.length();
        r.payload = clamp_i32(if valid_length { udp_len } else { ip_payload } - Udp::LEN);
        if !valid_length {
            return Err(Stop(m::UDP_LENGTH_INVALID));
        }
        if fragment {
            return Ok(());
        }
        // Captured whole, on a DNS or NTP port: what Zeek's DNS and NTP analyzers would read
        // (decode/app.rs). An IPv4 total length of 0 (TSO) hands them a negative length.
        if let Some(body) = self
            .b
            .get(start + Udp::LEN..end)
            .filter(|_| !self.row.ip_len_zero)
        {
            if app::DNS_PORTS.contains(&sport) || app::DNS_PORTS.contains(&dport) {
                self.row.dns_qr = app::dns_qr(body);
            }
            if sport == app::NTP_PORT || dport == app::NTP_PORT {
                self.row.ntp_mode = app::ntp_mode(body);
            }
        }
        self.udp_tunnel(start + Udp::LEN, start + udp_len, sport, dport)
    }

    fn icmp(&mut self, start: usize, end: usize, proto: u8, fragment: bool) -> Step {
        let h: Icmp = self.header_within(start, end, m::ICMP_HEADER_SHORT)?;
        let kind = h.kind();
        let r = &mut self.row;
        r.l4 = proto;
        r.icmp_type = i16::from(kind);
        r.icmp_code = i16::from(h.code());
        r.payload = clamp_i32(end.saturating_sub(start) - Icmp::LEN);
        if self.checksums {
            self.row.l4_csum = self.transport_checksum(start, end, proto, fragment);
        }
        let v4 = proto == ipproto::ICMP;
        let (echo, error) = if v4 {
            (tr::icmp4_is_echo(kind), tr::icmp4_is_error(kind))
        } else {
            (tr::icmp6_is_echo(kind), tr::icmp6_is_error(kind))
        };
        if echo {
            self.row.icmp_id = i32::from(h.ident());
        } else if error {
            self.quoted(start + Icmp::LEN, end.min(self.cap), v4);
        }
        Ok(())
    }

    /// The IP header an ICMP error quotes: all q_* columns, or none (q_valid false). Not a
    /// layer of the row: a quote that stops short is not malformed, just not valid.
    fn quoted(&mut self, pos: usize, limit: usize, v4: bool) {
        let b = self.b.get(..limit).unwrap_or(&[]);
        let (src, dst, mut proto, first, ports_at);
        if v4 {
            let Some(h) = Ipv4::at(b, pos) else { return };
            if h.version() != 4 || h.header_len() < Ipv4::LEN {
                return;
            }
            src = v4_mapped(h.src());
            dst = v4_mapped(h.dst());
            proto = h.protocol();
            first = h.frag_offset() == 0;
            ports_at = pos.saturating_add(h.header_len());
        } else {
            let Some(h) = Ipv6::at(b, pos) else { return };
            if h.version() != 6 {
                return;
            }
            src = h.src();
            dst = h.dst();
            proto = h.next_header();
            let mut off = pos.saturating_add(Ipv6::LEN);
            let mut is_first = true;
            let mut walked = 0;
            while ipproto::is_ipv6_extension(proto) {
                if walked == IPV6_EXT_MAX {
                    return; // more extension headers than followed
                }
                walked += 1;
                let Some(ext) = Ipv6Ext::at(b, off) else {
                    return;
                };
                if proto == ipproto::FRAGMENT {
                    is_first = is_first && ext.frag_offset() == 0;
                }
                let length = ext.header_len(proto);
                proto = ext.next_header();
                off = off.saturating_add(length);
            }
            first = is_first;
            ports_at = off;
        }
        let (mut sport, mut dport) = (0, 0);
        if proto == ipproto::TCP || proto == ipproto::UDP {
            let Some(ports) = crate::wire::chunk::<4>(b, ports_at).filter(|_| first) else {
                return; // the quoted transport ports are not there: cannot attribute
            };
            sport = u16::from_be_bytes([ports[0], ports[1]]);
            dport = u16::from_be_bytes([ports[2], ports[3]]);
        }
        let r = &mut self.row;
        r.q_valid = true;
        r.q_src = src;
        r.q_dst = dst;
        r.q_proto = proto;
        r.q_sport = sport;
        r.q_dport = dport;
    }

    // --- tunnels --------------------------------------------------------------------------

    /// Start decoding a tunnel's inside; it counts once an IP header is found there
    /// (tunnel_depth counts the encapsulations crossed to reach the innermost IP layer).
    fn enter_tunnel(&mut self, kind: u32, ports: Option<(u16, u16)>) -> Step {
        if self.depth >= tn::MAX_TUNNEL_DEPTH {
            return Err(Stop(m::TUNNEL_TOO_DEEP));
        }
        self.pending = Some(Pending {
            kind,
            ports,
            saved: self.row,
        });
        Ok(())
    }

    /// The pending tunnel holds an IP header: the carrier moves to out_* (first tunnel) or
    /// car_* (any later one) and the inner layers take the IP and transport columns.
    fn cross_tunnel(&mut self, pending: Pending) {
        if self.depth > 0 {
            self.carriers.push(pending.saved);
        }
        let r = &mut self.row;
        let (sport, dport) = pending.ports.unwrap_or((0, 0));
        if self.depth == 0 {
            r.out_src = r.src;
            r.out_dst = r.dst;
            r.out_proto = r.proto;
            r.out_ip_len = r.ip_len;
            if pending.ports.is_some() {
                r.out_sport = sport;
                r.out_dport = dport;
            }
        } else {
            // The innermost carrier so far: a deeper tunnel overwrites it.
            r.car_src = r.src;
            r.car_dst = r.dst;
            r.car_proto = r.proto;
            r.car_ip_len = r.ip_len;
            r.car_sport = sport;
            r.car_dport = dport;
        }
        self.tunnels |= pending
            .kind
            .checked_shl(4 * u32::from(self.depth))
            .unwrap_or(0);
        self.depth += 1;
        r.tunnel = self.tunnels;
        r.tunnel_depth = self.depth;
        // The carrier's transport columns belong to no packet the row now describes.
        r.l4 = 0;
        r.sport = 0;
        r.dport = 0;
        r.payload = -1;
        r.udp_len = 0;
        r.dns_qr = -1;
        r.ntp_mode = -1;
        r.l4_csum = 0;
    }

    /// A GRE header at [start, end): in IP, or in UDP (RFC 8086, `ports` its carrier's).
    fn gre(&mut self, start: usize, end: usize, ports: Option<(u16, u16)>) -> Step {
        let g: Gre = self.header_within(start, end, m::GRE_HEADER_INVALID)?;
        if g.routing_present() || g.version() > 1 {
            // routing present, or neither GRE's nor PPTP's version
            return Err(Stop(m::GRE_HEADER_INVALID));
        }
        let hlen = g.header_len();
        self.need_within(start, hlen, end, m::GRE_HEADER_INVALID)?;
        let protocol = g.protocol();
        let inner = start + hlen;
        let plain = if ports.is_some() {
            kind::GRE_UDP
        } else {
            kind::GRE
        };
        match protocol {
            et::IPV4 | et::IPV6 | et::TEB | et::PPP => {
                self.enter_tunnel(plain, ports)?;
                match protocol {
                    et::IPV4 => self.ipv4(inner),
                    et::IPV6 => self.ipv6(inner),
                    et::TEB => self.ethernet(inner),
                    _ => self.ppp(inner),
                }
            }
            _ if g.version() != 0 => Ok(()),
            et::ERSPAN_1_2 => {
                // Type II when GRE carries a sequence number (an 8-byte ERSPAN header), type I
                // (the mirrored frame right away) when not: Wireshark's and Zeek's rule.
                let skip = if g.sequence_present() {
                    tn::ERSPAN2_LEN
                } else {
                    0
                };
                self.need_within(inner, skip, end, m::TUNNEL_HEADER_INVALID)?;
                self.enter_tunnel(kind::ERSPAN, ports)?;
                self.ethernet(inner + skip)
            }
            et::ERSPAN_3 => {
                self.need_within(inner, tn::ERSPAN3_LEN, end, m::TUNNEL_HEADER_INVALID)?;
                let last16 = self.u16_at(inner + tn::ERSPAN3_LEN - 2);
                let mut skip = tn::ERSPAN3_LEN;
                if last16 & 0x0001 != 0 {
                    skip += tn::ERSPAN3_PLATFORM_LEN;
                    self.need_within(inner, skip, end, m::TUNNEL_HEADER_INVALID)?;
                }
                if tn::erspan3_frame_type(last16) != 0 {
                    return Ok(()); // not an Ethernet frame: not descended
                }
                self.enter_tunnel(kind::ERSPAN, ports)?;
                self.ethernet(inner + skip)
            }
            p if tn::is_aruba(p) => {
                self.enter_tunnel(kind::ARUBA, ports)?;
                self.dot11(inner, false, false)
            }
            _ => Ok(()), // not descended: the row stays at the GRE packet
        }
    }

    /// UDP payload [start, end) of a datagram whose ports may name a tunnel.
    fn udp_tunnel(&mut self, start: usize, end: usize, sport: u16, dport: u16) -> Step {
        let Some(tunnel) =
            tn::udp_tunnel(sport, dport).or_else(|| self.udp_tunnel_by_content(start, end))
        else {
            return Ok(());
        };
        let ports = Some((sport, dport));
        match tunnel {
            kind::VXLAN => {
                // tshark descends whatever the flags; the I flag is not required.
                self.need_within(start, tn::VXLAN_LEN, end, m::TUNNEL_HEADER_INVALID)?;
                self.enter_tunnel(tunnel, ports)?;
                self.ethernet(start + tn::VXLAN_LEN)
            }
            kind::GENEVE => {
                let g: Geneve = self.header_within(start, end, m::TUNNEL_HEADER_INVALID)?;
                let hlen = g.header_len();
                self.need_within(start, hlen, end, m::TUNNEL_HEADER_INVALID)?;
                let protocol = g.protocol();
                if !matches!(protocol, et::TEB | et::IPV4 | et::IPV6) {
                    return Ok(()); // not descended, like GRE
                }
                self.enter_tunnel(tunnel, ports)?;
                let inner = start + hlen;
                match protocol {
                    et::TEB => self.ethernet(inner),
                    et::IPV4 => self.ipv4(inner),
                    _ => self.ipv6(inner),
                }
            }
            kind::TEREDO => match self.teredo_ipv6(start, end.min(self.cap), end) {
                Some(inner) => {
                    self.enter_tunnel(tunnel, ports)?;
                    self.ipv6(inner)
                }
                None => Ok(()),
            },
            kind::AYIYA => match self.ayiya_payload(start, end.min(self.cap)) {
                Some((inner, next_header)) => {
                    self.enter_tunnel(tunnel, ports)?;
                    if next_header == ipproto::IPIP {
                        self.ipv4(inner)
                    } else {
                        self.ipv6(inner)
                    }
                }
                None => Ok(()),
            },
            kind::GRE_UDP => self.gre(start, end, ports),
            _ => match self.gtpu_payload(start, end.min(self.cap)) {
                Some(inner) => {
                    self.enter_tunnel(tunnel, ports)?;
                    self.ip_by_nibble(inner, None)
                }
                None => Ok(()),
            },
        }
    }

    /// A tunnel on a UDP port of no tunnel, by its content, as Zeek's DetectProtocol finds
    /// Teredo and AYIYA (Teredo: an IPv6 header with a 2001:0::/32 address, or an
    /// authentication and/or origin indication header then IPv6; AYIYA: bytes 0x52 0x11).
    fn udp_tunnel_by_content(&self, start: usize, end: usize) -> Option<u32> {
        let limit = end.min(self.cap);
        if self.teredo_detect(start, limit) {
            return Some(kind::TEREDO);
        }
        let within = self.b.get(..limit)?;
        Ayiya::at(within, start)
            .filter(Ayiya::looks_like)
            .map(|_| kind::AYIYA)
    }

    /// Zeek's TeredoAnalyzer::DetectProtocol over the UDP payload [pos, limit).
    fn teredo_detect(&self, pos: usize, limit: usize) -> bool {
        let mut len = limit.saturating_sub(pos);
        let (d0, d1) = (self.u8_at(pos), self.u8_at(pos.saturating_add(1)));
        if len < 40 || (d0 >> 4 != 6 && (d0 != 0 || (d1 != 0 && d1 != 1))) {
            return false;
        }
        const TEREDO_PREFIX: [u8; 4] = [0x20, 0x01, 0x00, 0x00];
        if d0 >> 4 == 6
            && (self.starts_with(pos + 8, &TEREDO_PREFIX)
                || self.starts_with(pos + 24, &TEREDO_PREFIX))
        {
            return true;
        }
        let mut at = pos;
        let mut val = u16::from(d1);
        if val == 1 {
            let skip = 13 + usize::from(self.u8_at(at + 2)) + usize::from(self.u8_at(at + 3));
            if len < skip {
                return false;
            }
            at += skip;
            len -= skip;
            if len < 40 {
                return false;
            }
            val = self.u16_at(at);
        }
        if val == 0 {
            at += 8;
            len -= 8;
            return len >= 40 && self.u8_at(at) >> 4 == 6;
        }
        false
    }

    /// Where AYIYA's inner packet starts and its next header (4 or 41), or None: a forward
    /// operation whose header fits, as Zeek's AYIYA analyzer decapsulates.
    fn ayiya_payload(&self, pos: usize, limit: usize) -> Option<(usize, u8)> {
        let h = Ayiya::at(self.b.get(..limit)?, pos)?;
        let inner = pos.checked_add(h.header_len())?;
        if !h.is_forward() || inner >= limit {
            return None;
        }
        matches!(h.next_header(), ipproto::IPIP | ipproto::IPV6).then_some((inner, h.next_header()))
    }

    /// Where a plausible IPv6 header starts after Teredo's optional headers (RFC 4380 §5.1.1),
    /// or None.
    fn teredo_ipv6(&self, mut pos: usize, limit: usize, end: usize) -> Option<usize> {
        if pos.checked_add(4)? <= limit && self.starts_with(pos, &[0x00, 0x01]) {
            // authentication: id length, auth length, id, auth, 8-byte nonce, confirmation
            let lengths = usize::from(self.u8_at(pos + 2)) + usize::from(self.u8_at(pos + 3));
            pos = pos.checked_add(4 + lengths + 8 + 1)?;
        }
        if pos.checked_add(2)? <= limit && self.starts_with(pos, &[0x00, 0x00]) {
            pos = pos.checked_add(8)?; // origin indication
        }
        if pos.checked_add(6)? > limit || pos.checked_add(40)? > end || self.u8_at(pos) >> 4 != 6 {
            return None;
        }
        if pos.checked_add(40 + usize::from(self.u16_at(pos + 4)))? > end {
            return None;
        }
        Some(pos)
    }

    /// Where the IP packet of a GTP-U G-PDU starts, or None (then it is plain UDP).
    fn gtpu_payload(&self, pos: usize, limit: usize) -> Option<usize> {
        let within = self.b.get(..limit)?;
        let h = Gtpu::at(within, pos)?;
        if !h.is_g_pdu() {
            return None;
        }
        let mut hlen = Gtpu::LEN;
        if h.has_optional_fields() {
            hlen = 12; // sequence number, N-PDU number, next extension header type
            if pos.checked_add(hlen)? > limit {
                return None;
            }
            let mut next_type = if h.has_extensions() {
                self.u8_at(pos + 11)
            } else {
                0
            };
            while next_type != 0 {
                let at = pos.checked_add(hlen)?;
                if at + 1 > limit {
                    return None;
                }
                let length = usize::from(self.u8_at(at)) * 4;
                if length == 0 || at + length > limit {
                    return None;
                }
                next_type = self.u8_at(at + length - 1);
                hlen += length;
            }
        }
        let inner = pos.checked_add(hlen)?;
        if inner + 1 > limit || !matches!(self.u8_at(inner) >> 4, 4 | 6) {
            return None;
        }
        Some(inner)
    }
}

/// Decodes a reassembled datagram (IPv4: its first fragment's header, total length set,
/// fragment fields cleared; IPv6: the unfragmentable part, the fragment header taken out and
/// the payload length set; then all the data) over `row`, the completing fragment's: the
/// row it gives if the datagram holds a tunnel (then the inner packet takes the IP and
/// transport columns, the datagram goes to the out_* columns), and the rows it gives after
/// it (middle carriers, A-MSDU subframes: no fragments of their own), else None.
pub(crate) fn decode_reassembled(
    datagram: &[u8],
    row: Row,
    checksums: bool,
) -> Option<(Row, Vec<Row>)> {
    let wirelen = u32::try_from(datagram.len()).ok()?;
    let mut walker = Walker::new(datagram, wirelen, row, 0, checksums);
    walker.decode(lt::RAW);
    if walker.row.tunnel_depth == 0 || walker.record.is_some() {
        return None;
    }
    let more = walker
        .extra_rows()
        .map(|extra| {
            if extra.frag == FRAG_PART {
                return extra; // a fragment inside an A-MSDU subframe
            }
            Row {
                frag: FRAG_NONE,
                frag_count: 0,
                ..extra
            }
        })
        .collect();
    Some((walker.row, more))
}

/// IPv6 extension headers followed at most (then `ipv6-ext-header-invalid`).
const IPV6_EXT_MAX: usize = 8;
