//! Classic pcap (the libpcap savefile): its file header and the record walk.
//!
//! The rules (magic variants, version 2.x only, unsigned `ts_sec`, link type in the low 16 bits
//! of its field, caplen up to `max(snaplen, 262144)`) are those of `portlens.reference.pcap`.

use super::bytes::{end_of, Order};
use super::{
    Columns, InterfaceInfo, Walk, FRAME_CAP_BYTES, MAX_RECORD_BYTES, NS_PER_S, USUAL_MAX_CAPLEN,
};

pub const FILE_HEADER_LEN: usize = 24;

/// Offset of `caplen` in a record header; `ts_sec`, `ts_frac` and `wirelen` are at 0, 4, 12.
const CAPLEN_AT: usize = 8;

/// Link type field: bit 26 says an FCS length is given, bits 28-31 give it in 16-bit words.
const FCS_PRESENT: u32 = 0x0400_0000;

/// How one magic number says to read the file.
struct Variant {
    order: Order,
    /// `if_tsresol`-style resolution: 6 (µs) or 9 (ns).
    tsresol: u8,
    record_header_len: usize,
}

/// The first four bytes of the file -> how to read the rest.
fn variant(magic: &[u8]) -> Option<Variant> {
    let (order, tsresol, record_header_len) = match magic.get(..4)? {
        [0xd4, 0xc3, 0xb2, 0xa1] => (Order::Little, 6, 16),
        [0xa1, 0xb2, 0xc3, 0xd4] => (Order::Big, 6, 16),
        [0x4d, 0x3c, 0xb2, 0xa1] => (Order::Little, 9, 16),
        [0xa1, 0xb2, 0x3c, 0x4d] => (Order::Big, 9, 16),
        // Alexey Kuznetzov's patched libpcap: 8 more bytes per record.
        [0x34, 0xcd, 0xb2, 0xa1] => (Order::Little, 6, 24),
        [0xa1, 0xb2, 0xcd, 0x34] => (Order::Big, 6, 24),
        _ => return None,
    };
    Some(Variant {
        order,
        tsresol,
        record_header_len,
    })
}

pub fn is_pcap(magic: &[u8]) -> bool {
    variant(magic).is_some()
}

/// Turns chunks of a classic pcap file (after its 24-byte header) into frames.
#[derive(Debug, Clone)]
pub struct PcapWalker {
    order: Order,
    linktype: u16,
    max_caplen: u32,
    frac_ns: i64,
    header_len: usize,
    /// Frames walked so far.
    pub frames: u64,
    /// Of them, frames cut at [`FRAME_CAP_BYTES`].
    pub cut: u64,
    pub interface: InterfaceInfo,
}

impl PcapWalker {
    /// Reads the file header; the error is the message (without the file name).
    pub fn new(header: &[u8]) -> Result<Self, String> {
        let bad = || "not a pcap file header".to_string();
        let v = variant(header).ok_or_else(bad)?;
        let o = v.order;
        let (major, minor) = (
            o.u16(header, 4).ok_or_else(bad)?,
            o.u16(header, 6).ok_or_else(bad)?,
        );
        let snaplen = o.u32(header, 16).ok_or_else(bad)?;
        let field = o.u32(header, 20).ok_or_else(bad)?;
        if major != 2 {
            return Err(format!("unsupported pcap version {major}.{minor}"));
        }
        let linktype = (field & 0xffff) as u16;
        let fcs_len = (field & FCS_PRESENT != 0).then_some(((field >> 28) * 2) as u8);
        Ok(PcapWalker {
            order: o,
            linktype,
            max_caplen: snaplen.clamp(USUAL_MAX_CAPLEN, MAX_RECORD_BYTES),
            frac_ns: if v.tsresol == 9 { 1 } else { 1000 },
            header_len: v.record_header_len,
            frames: 0,
            cut: 0,
            interface: InterfaceInfo {
                id: 0,
                linktype,
                snaplen,
                name: None,
                description: None,
                tsresol: v.tsresol,
                tsoffset_s: 0,
                fcs_len,
                section: 0,
            },
        })
    }

    /// Every complete record in `buf[pos..]`, appended to `out`; `base` is the stream offset
    /// of `buf[0]`, `at_end` says no more bytes will follow `buf`.
    pub fn walk(
        &mut self,
        buf: &[u8],
        pos: usize,
        base: u64,
        at_end: bool,
        out: &mut Columns,
    ) -> Walk {
        let n = buf.len();
        let o = self.order;
        let hl = self.header_len;
        let first = out.len();
        let mut off = pos;
        let mut need = 0;
        let mut problem = None;
        let mut skip = 0;
        // A record whose header cannot be read (yet) ends the walk; so does one that runs past
        // the chunk, after saying how much it needs, and one cut at the frame cap.
        while let Some(caplen) = off.checked_add(CAPLEN_AT).and_then(|at| o.u32(buf, at)) {
            let record = self.frames + (out.len() - first) as u64 + 1;
            if caplen > self.max_caplen {
                problem = Some(format!(
                    "corrupt record {record} at byte {}: captured length {caplen} is over the \
                     limit of {} bytes",
                    base + off as u64,
                    self.max_caplen
                ));
                break;
            }
            let data = off + hl;
            let kept = caplen.min(FRAME_CAP_BYTES);
            let Some(end) = end_of(data, kept).filter(|&end| end <= n) else {
                need = hl + kept as usize;
                break;
            };
            // The kept part is inside `buf`, so the whole header is.
            let field = |at: usize| o.u32(buf, off + at).unwrap_or(0);
            let ts_ns = i64::from(field(0)) * NS_PER_S + i64::from(field(4)) * self.frac_ns;
            out.push(data, kept, field(12), ts_ns, self.linktype, 0);
            off = end;
            if kept < caplen {
                self.cut += 1;
                skip = u64::from(caplen - kept);
                break;
            }
        }
        if problem.is_none() && skip == 0 && off < n {
            if need == 0 {
                need = hl;
            }
            if at_end {
                let record = self.frames + (out.len() - first) as u64 + 1;
                problem = Some(format!(
                    "cut off inside record {record} at byte {}",
                    base + off as u64
                ));
            }
        }
        self.frames += (out.len() - first) as u64;
        Walk {
            consumed: off,
            need,
            problem,
            skip,
        }
    }
}
