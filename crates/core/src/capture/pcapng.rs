//! pcapng: sections, interfaces and packet blocks turned into frames.
//!
//! The rules where the format leaves a choice (interface numbering across sections, floored
//! exact timestamps, what a Simple Packet Block gets, which damage stops reading) are those of
//! `portlens.reference.pcapng`, whose module documentation states them. Python checks a run of
//! packet blocks with numpy and then words the first problem with `_check_block`; here every
//! block is checked as it comes, by the same [`PcapngWalker::check_block`] wording.

use std::collections::BTreeMap;

use super::bytes::{end_of, hex, Order};
use super::{Columns, InterfaceInfo, Walk, FRAME_CAP_BYTES, MAX_RECORD_BYTES, NS_PER_S};

pub const SHB: u32 = 0x0A0D_0D0A;
pub const IDB: u32 = 0x0000_0001;
/// Packet Block, obsolete since pcapng 1.0 but still found in old files.
pub const PB: u32 = 0x0000_0002;
pub const SPB: u32 = 0x0000_0003;
pub const EPB: u32 = 0x0000_0006;

/// A Section Header Block's type reads the same in both byte orders.
pub const SHB_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

const MIN_BLOCK_LEN: u32 = 12;
const MAX_INTERFACES: usize = 65536;

/// EPB and PB: total length with no packet data and no options, and where the data starts.
const TIMED_MIN_LEN: u32 = 32;
const TIMED_DATA_AT: usize = 28;
const SPB_MIN_LEN: u32 = 16;
const SPB_DATA_AT: usize = 12;

// Interface Description Block options used (pcapng spec, section 4.2).
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const IF_FCSLEN: u16 = 13;
const IF_TSOFFSET: u16 = 14;
const OPT_ENDOFOPT: u16 = 0;

/// No `if_tsresol` option: microseconds.
const DEFAULT_TSRESOL: u8 = 6;

pub fn block_name(btype: u32) -> String {
    match btype {
        SHB => "section header block".into(),
        IDB => "interface description block".into(),
        PB => "packet block".into(),
        SPB => "simple packet block".into(),
        4 => "name resolution block".into(),
        5 => "interface statistics block".into(),
        EPB => "enhanced packet block".into(),
        10 => "decryption secrets block".into(),
        0x0000_0BAD | 0x4000_0BAD => "custom block".into(),
        _ => format!("block of type 0x{btype:08x}"),
    }
}

fn is_packet(btype: u32) -> bool {
    matches!(btype, EPB | PB | SPB)
}

fn min_len(btype: u32) -> u32 {
    match btype {
        SHB => 28,
        IDB => 20,
        EPB | PB => TIMED_MIN_LEN,
        SPB => SPB_MIN_LEN,
        _ => MIN_BLOCK_LEN,
    }
}

/// Exact ticks -> nanoseconds for one interface: `ticks * num / den + offset_ns`, floored.
///
/// `num / den` is 10**9 / ticks-per-second reduced (`den` saturates: a resolution finer than
/// 2**-128 s makes every timestamp 0 ticks of a nanosecond, as exact arithmetic says). The
/// result saturates at the int64 limits exactly where the Python `Clock` does, up to one
/// second early at the year-2262 edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    num: u128,
    den: u128,
    offset_ns: i64,
}

impl Clock {
    pub fn of(tsresol: u8, tsoffset_s: i64) -> Clock {
        let exp = u32::from(tsresol & 0x7f);
        let tps = if tsresol & 0x80 != 0 {
            1u128.checked_shl(exp)
        } else {
            10u128.checked_pow(u32::from(tsresol))
        };
        let ns = NS_PER_S as u128;
        let (num, den) = match tps {
            Some(tps) => {
                let g = gcd(ns, tps);
                (ns / g, tps / g)
            }
            // 10**39 and finer: a multiple of 10**9.
            None => (1, u128::MAX),
        };
        let offset = i128::from(tsoffset_s) * i128::from(NS_PER_S);
        Clock {
            num,
            den,
            offset_ns: offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        }
    }

    pub fn to_ns(&self, ticks: u64) -> i64 {
        let (num, den) = (self.num, self.den);
        if den >= 1 << 32 {
            // ticks * num < 2**94: exact in u128.
            let ns = (u128::from(ticks) * num / den) as i128 + i128::from(self.offset_ns);
            return ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        }
        // Both below 2**32 here; ticks = q*den + r, so ticks*num/den = q*num + r*num/den.
        let (num, den) = (num as u64, den as u64);
        let (q, r) = (ticks / den, ticks % den);
        if q > (i64::MAX as u64) / num - 1 {
            return i64::MAX;
        }
        let out = (q * num + r * num / den) as i64;
        if self.offset_ns > 0 && out > i64::MAX - self.offset_ns {
            return i64::MAX;
        }
        out + self.offset_ns
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The section being read: its byte order, its interface 0, how many interfaces it declared.
#[derive(Debug, Clone, Copy)]
struct Section {
    order: Order,
    base: usize,
    count: usize,
}

/// Turns chunks of a pcapng file into frames, keeping section and interface state.
#[derive(Debug, Clone)]
pub struct PcapngWalker {
    /// Frames walked so far.
    pub frames: u64,
    /// Sections started so far.
    pub sections: u32,
    pub interfaces: Vec<InterfaceInfo>,
    /// Blocks skipped (neither section, interface nor packet), by block type.
    pub skipped: BTreeMap<u32, u64>,
    /// Frames cut at [`FRAME_CAP_BYTES`].
    pub cut: u64,
    /// The rest of the block of the last frame cut, for the reader to read past.
    skip: u64,
    clocks: Vec<Clock>,
    section: Section,
    /// Timestamp of the section's last timed packet, for Simple Packet Blocks.
    last_ts: i64,
}

impl Default for PcapngWalker {
    fn default() -> Self {
        Self::new()
    }
}

/// (bytes used, need, problem) of one step of the walk.
type Step = (usize, usize, Option<String>);

impl PcapngWalker {
    pub fn new() -> Self {
        PcapngWalker {
            frames: 0,
            sections: 0,
            interfaces: Vec::new(),
            skipped: BTreeMap::new(),
            cut: 0,
            skip: 0,
            clocks: Vec::new(),
            section: Section {
                order: Order::Little,
                base: 0,
                count: 0,
            },
            last_ts: 0,
        }
    }

    /// Every complete block in `buf[pos..]`; `base` is the stream offset of `buf[0]`.
    ///
    /// `headers_only` stops before the first packet block (with `need` 0), so that a reader
    /// learns the interfaces before the first batch.
    pub fn walk(
        &mut self,
        buf: &[u8],
        pos: usize,
        base: u64,
        at_end: bool,
        headers_only: bool,
        out: &mut Columns,
    ) -> Walk {
        let n = buf.len();
        let first = out.len();
        let mut off = pos;
        let mut need = 0;
        let mut problem = None;
        let mut stopped = false;
        while n.saturating_sub(off) >= 8 {
            let btype = self.head(buf, off).0;
            let mut one_by_one = btype == SHB || btype == IDB || self.sections == 0;
            if headers_only && !one_by_one {
                if is_packet(btype) {
                    stopped = true;
                    break;
                }
                one_by_one = true;
            }
            let done = self.frames + (out.len() - first) as u64;
            let (length, nd, pr) = if one_by_one {
                self.single_block(buf, off, base)
            } else {
                self.segment(buf, off, base, done, out)
            };
            off += length;
            (need, problem) = (nd, pr);
            if need != 0 || problem.is_some() || self.skip != 0 {
                break;
            }
        }
        let skip = std::mem::take(&mut self.skip);
        if at_end && problem.is_none() && skip == 0 && off < n && !stopped {
            let record = self.frames + (out.len() - first) as u64 + 1;
            problem = Some(self.cut_off(buf, off, base + off as u64, record));
        }
        self.frames += (out.len() - first) as u64;
        Walk {
            consumed: off,
            need,
            problem,
            skip,
        }
    }

    /// (type, total length) of the block at `off`, in the section's byte order.
    fn head(&self, buf: &[u8], off: usize) -> (u32, u32) {
        let o = self.section.order;
        (
            o.u32(buf, off).unwrap_or(0),
            off.checked_add(4)
                .and_then(|at| o.u32(buf, at))
                .unwrap_or(0),
        )
    }

    /// Blocks from `start` to the next SHB or IDB: frames into `out`, (bytes used, need,
    /// problem). `done` is the number of frames before `start`.
    fn segment(
        &mut self,
        buf: &[u8],
        start: usize,
        base: u64,
        done: u64,
        out: &mut Columns,
    ) -> Step {
        let n = buf.len();
        let o = self.section.order;
        let s_base = self.section.base;
        let first = out.len();
        let mut off = start;
        while n - off >= 8 {
            let (btype, blen) = self.head(buf, off);
            if btype == SHB || btype == IDB {
                break;
            }
            let end = end_of(off, blen).filter(|&e| e <= n);
            let ok = match end {
                Some(end) if blen >= min_len(btype) && blen % 4 == 0 => {
                    self.usable(buf, off, end, btype, blen)
                }
                _ => false,
            };
            let Some(end) = end.filter(|_| ok) else {
                let record = done + (out.len() - first) as u64 + 1;
                if end.is_none() {
                    if let Some((used, need, problem)) = self.cut_block(buf, off, base, record, out)
                    {
                        return (off - start + used, need, problem);
                    }
                }
                let (need, problem) = self.check_block(buf, off, base, record, true);
                return (off - start, need, problem);
            };
            match btype {
                EPB | PB => {
                    let f = |at: usize| o.u32(buf, off + at).unwrap_or(0);
                    let local = if btype == PB {
                        u32::from(o.u16(buf, off + 8).unwrap_or(0))
                    } else {
                        f(8)
                    };
                    // local < count <= 65536 - s_base (checked in usable and add_interface).
                    let id = s_base + local as usize;
                    let ticks = (u64::from(f(12)) << 32) | u64::from(f(16));
                    let ts = self.clocks[id].to_ns(ticks);
                    self.last_ts = ts;
                    let info = &self.interfaces[id];
                    let caplen = f(20);
                    if caplen > FRAME_CAP_BYTES {
                        self.cut += 1;
                    }
                    out.push(
                        off + TIMED_DATA_AT,
                        caplen.min(FRAME_CAP_BYTES),
                        f(24),
                        ts,
                        info.linktype,
                        info.id,
                    );
                }
                SPB => {
                    let wirelen = o.u32(buf, off + 8).unwrap_or(0);
                    let info = &self.interfaces[s_base];
                    let mut caplen = wirelen.min(blen - SPB_MIN_LEN);
                    if info.snaplen != 0 {
                        caplen = caplen.min(info.snaplen);
                    }
                    if caplen > FRAME_CAP_BYTES {
                        self.cut += 1;
                        caplen = FRAME_CAP_BYTES;
                    }
                    out.push(
                        off + SPB_DATA_AT,
                        caplen,
                        wirelen,
                        self.last_ts,
                        info.linktype,
                        info.id,
                    );
                }
                _ => *self.skipped.entry(btype).or_insert(0) += 1,
            }
            off = end;
        }
        (off - start, 0, None)
    }

    /// A packet block that runs past `buf` and captured more than [`FRAME_CAP_BYTES`]: its
    /// frame cut to the cap once the cap's worth is in `buf` (bytes used, need, problem), the
    /// rest of the block left in `self.skip` for the reader to read past, unread. Its trailing
    /// length cannot be compared without reading the whole block; every other check of
    /// `check_block` is made. None: not such a block (the whole block is needed).
    fn cut_block(
        &mut self,
        buf: &[u8],
        off: usize,
        base: u64,
        record: u64,
        out: &mut Columns,
    ) -> Option<Step> {
        let (btype, blen) = self.head(buf, off);
        if !is_packet(btype) || blen < min_len(btype) || blen % 4 != 0 || blen > MAX_RECORD_BYTES {
            return None; // check_block says what is wrong, or reads the block whole
        }
        let o = self.section.order;
        let s_base = self.section.base;
        let count = self.section.count;
        let data_at = if btype == SPB {
            SPB_DATA_AT
        } else {
            TIMED_DATA_AT
        };
        let header = |at: usize| o.u32(buf, off + at);
        let caplen = if btype == SPB {
            let mut caplen = header(8)?.min(blen - SPB_MIN_LEN);
            let snaplen = self.interfaces.get(s_base).map_or(0, |i| i.snaplen);
            if snaplen != 0 {
                caplen = caplen.min(snaplen);
            }
            caplen
        } else {
            header(20)?
        };
        // Only a frame that fits its block and is longer than the cap is cut; anything else
        // is read (or refused) whole, by the rules of `check_block`.
        let fits = btype == SPB || caplen <= blen - TIMED_MIN_LEN;
        if caplen <= FRAME_CAP_BYTES || !fits {
            return None;
        }
        let kept = data_at + FRAME_CAP_BYTES as usize;
        if off + kept > buf.len() {
            return Some((0, kept, None));
        }
        let place = format!(
            "record {record} ({}) at byte {}",
            block_name(btype),
            base + off as u64
        );
        let (local, ticks) = match btype {
            SPB if count == 0 => {
                let what = "no interface is defined in this section";
                return Some((0, 0, Some(format!("corrupt {place}: {what}"))));
            }
            SPB => (0, None),
            _ => {
                let local = if btype == PB {
                    u32::from(o.u16(buf, off + 8)?)
                } else {
                    header(8)?
                };
                if local as usize >= count {
                    let what =
                        format!("interface {local} is not defined (the section has {count})");
                    return Some((0, 0, Some(format!("corrupt {place}: {what}"))));
                }
                let ticks = (u64::from(header(12)?) << 32) | u64::from(header(16)?);
                (local, Some(ticks))
            }
        };
        // local < count <= 65536 - s_base, as in `segment`.
        let id = s_base + local as usize;
        let (ts, wirelen) = match ticks {
            Some(ticks) => {
                self.last_ts = self.clocks[id].to_ns(ticks);
                (self.last_ts, header(24)?)
            }
            None => (self.last_ts, header(8)?),
        };
        let info = &self.interfaces[id];
        out.push(
            off + data_at,
            FRAME_CAP_BYTES,
            wirelen,
            ts,
            info.linktype,
            info.id,
        );
        self.cut += 1;
        self.skip = u64::from(blen) - kept as u64;
        Some((kept, 0, None))
    }

    /// Whether a block that lies inside `buf` with a plausible length can be used: trailer,
    /// and for packets a captured length that fits and a defined interface.
    fn usable(&self, buf: &[u8], off: usize, end: usize, btype: u32, blen: u32) -> bool {
        let o = self.section.order;
        if o.u32(buf, end - 4) != Some(blen) {
            return false;
        }
        let count = self.section.count;
        match btype {
            EPB | PB => {
                let caplen = o.u32(buf, off + 20).unwrap_or(u32::MAX);
                let interface = if btype == PB {
                    o.u16(buf, off + 8).map(u32::from)
                } else {
                    o.u32(buf, off + 8)
                };
                caplen <= blen - TIMED_MIN_LEN && interface.is_some_and(|i| (i as usize) < count)
            }
            SPB => count > 0,
            _ => true,
        }
    }

    /// Why the block at `at` cannot be used: (need, problem), or (0, None) if it can. The one
    /// place that words problems with blocks.
    fn check_block(
        &self,
        buf: &[u8],
        at: usize,
        base: u64,
        record: u64,
        packet_checks: bool,
    ) -> (usize, Option<String>) {
        let (btype, blen) = self.head(buf, at);
        let o = self.section.order;
        let name = block_name(btype);
        let packet = is_packet(btype);
        let mut place = if packet {
            format!("record {record} ({name})")
        } else {
            name
        };
        place += &format!(" at byte {}", base + at as u64);
        if blen < min_len(btype) || blen % 4 != 0 {
            return (0, Some(format!("corrupt {place}: block length {blen}")));
        }
        if blen > MAX_RECORD_BYTES {
            return (
                0,
                Some(format!(
                    "corrupt {place}: block length {blen} is over the limit"
                )),
            );
        }
        let Some(end) = end_of(at, blen).filter(|&e| e <= buf.len()) else {
            return (blen as usize, None);
        };
        let trailer = o.u32(buf, end - 4).unwrap_or(0);
        if trailer != blen {
            let what = format!("block length {blen} at the start, {trailer} at the end");
            return (0, Some(format!("corrupt {place}: {what}")));
        }
        if !packet || !packet_checks {
            return (0, None);
        }
        let count = self.section.count;
        if btype == SPB {
            if count == 0 {
                let what = "no interface is defined in this section";
                return (0, Some(format!("corrupt {place}: {what}")));
            }
            return (0, None);
        }
        let caplen = o.u32(buf, at + 20).unwrap_or(0);
        if caplen > blen - TIMED_MIN_LEN {
            let what = format!("captured length {caplen} does not fit in the block");
            return (0, Some(format!("corrupt {place}: {what}")));
        }
        let interface = if btype == PB {
            u32::from(o.u16(buf, at + 8).unwrap_or(0))
        } else {
            o.u32(buf, at + 8).unwrap_or(0)
        };
        if interface as usize >= count {
            let what = format!("interface {interface} is not defined (the section has {count})");
            return (0, Some(format!("corrupt {place}: {what}")));
        }
        (0, None)
    }

    /// Check and apply one block: a section or interface, or anything while reading headers
    /// only or before the first section.
    fn single_block(&mut self, buf: &[u8], off: usize, base: u64) -> Step {
        let at = base + off as u64;
        let btype = self.head(buf, off).0;
        if btype == SHB {
            // A section sets its own byte order: read it before the block's length.
            let Some(magic) = buf.get(off + 8..off + 12) else {
                return (0, MIN_BLOCK_LEN as usize, None);
            };
            self.section.order = match magic {
                [0x4d, 0x3c, 0x2b, 0x1a] => Order::Little,
                [0x1a, 0x2b, 0x3c, 0x4d] => Order::Big,
                _ => {
                    let what =
                        format!("corrupt section header block at byte {at}: byte-order magic");
                    return (0, 0, Some(format!("{what} {}", hex(magic))));
                }
            };
        } else if self.sections == 0 {
            let what = format!("block at byte {at} comes before any section header block");
            return (0, 0, Some(what));
        }
        let (need, problem) = self.check_block(buf, off, base, self.frames + 1, false);
        if need != 0 || problem.is_some() {
            return (0, need, problem);
        }
        let blen = self.head(buf, off).1;
        let problem = match btype {
            SHB => self.start_section(buf, off, at),
            IDB => self.add_interface(buf, off, blen, at),
            _ => {
                *self.skipped.entry(btype).or_insert(0) += 1;
                None
            }
        };
        (blen as usize, 0, problem)
    }

    fn start_section(&mut self, buf: &[u8], off: usize, at: u64) -> Option<String> {
        let o = self.section.order;
        let major = o.u16(buf, off + 12).unwrap_or(0);
        let minor = o.u16(buf, off + 14).unwrap_or(0);
        if major != 1 {
            return Some(format!(
                "unsupported pcapng version {major}.{minor} at byte {at}"
            ));
        }
        self.sections += 1;
        self.section = Section {
            order: o,
            base: self.interfaces.len(),
            count: 0,
        };
        self.last_ts = 0;
        None
    }

    fn add_interface(&mut self, buf: &[u8], off: usize, blen: u32, at: u64) -> Option<String> {
        let id = self.interfaces.len();
        let Ok(id16) = u16::try_from(id) else {
            return Some(format!(
                "corrupt file: more than {MAX_INTERFACES} interfaces at byte {at}"
            ));
        };
        let o = self.section.order;
        let linktype = o.u16(buf, off + 8).unwrap_or(0);
        let snaplen = o.u32(buf, off + 12).unwrap_or(0);
        let opts = Options::read(buf, off + 16, off + blen as usize - 4, o);
        let tsresol = opts.get(IF_TSRESOL).and_then(|v| v.first().copied());
        let tsresol = tsresol.unwrap_or(DEFAULT_TSRESOL);
        let tsoffset_s = opts
            .get(IF_TSOFFSET)
            .filter(|v| v.len() >= 8)
            .and_then(|v| o.i64(v, 0))
            .unwrap_or(0);
        self.interfaces.push(InterfaceInfo {
            id: id16,
            linktype,
            snaplen,
            name: opts.get(IF_NAME).map(text),
            description: opts.get(IF_DESCRIPTION).map(text),
            tsresol,
            tsoffset_s,
            fcs_len: opts.get(IF_FCSLEN).and_then(|v| v.first().copied()),
            section: self.sections - 1,
        });
        self.clocks.push(Clock::of(tsresol, tsoffset_s));
        self.section.count += 1;
        None
    }

    fn cut_off(&self, buf: &[u8], off: usize, at: u64, record: u64) -> String {
        if buf.len() - off < 8 {
            return format!("cut off inside a block header at byte {at}");
        }
        let btype = self.head(buf, off).0;
        let name = block_name(btype);
        if is_packet(btype) {
            format!("cut off inside record {record} ({name}) at byte {at}")
        } else {
            format!("cut off inside {name} at byte {at}")
        }
    }
}

/// The first value of each IDB option used. Options are (code u16, length u16, value padded to
/// 4 bytes); a damaged option ends the list and only costs the interface what comes after it.
struct Options<'a> {
    found: [(u16, Option<&'a [u8]>); 5],
}

impl<'a> Options<'a> {
    fn read(buf: &'a [u8], start: usize, end: usize, o: Order) -> Self {
        let mut opts = Options {
            found: [IF_NAME, IF_DESCRIPTION, IF_TSRESOL, IF_FCSLEN, IF_TSOFFSET].map(|c| (c, None)),
        };
        let mut p = start;
        while p + 4 <= end {
            let code = o.u16(buf, p).unwrap_or(0);
            let length = usize::from(o.u16(buf, p + 2).unwrap_or(0));
            p += 4;
            if code == OPT_ENDOFOPT || p + length > end {
                break;
            }
            if let Some(slot) = opts
                .found
                .iter_mut()
                .find(|(c, v)| *c == code && v.is_none())
            {
                slot.1 = buf.get(p..p + length);
            }
            p += (length + 3) & !3;
        }
        opts
    }

    fn get(&self, code: u16) -> Option<&'a [u8]> {
        self.found
            .iter()
            .find(|(c, _)| *c == code)
            .and_then(|(_, v)| *v)
    }
}

/// An option's text up to its first NUL, with invalid UTF-8 replaced (as Python's "replace").
fn text(raw: &[u8]) -> String {
    let cut = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..cut]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_resolutions() {
        const T0: u64 = 1_700_000_000;
        let ns = NS_PER_S as u64;
        assert_eq!(
            Clock::of(6, 0).to_ns(T0 * 1_000_000 + 1),
            (T0 * ns + 1000) as i64
        );
        assert_eq!(Clock::of(9, 0).to_ns(T0 * ns + 1), (T0 * ns + 1) as i64);
        // 10**12 ticks per second, floored.
        assert_eq!(
            Clock::of(12, 0).to_ns(1_000_123_456_789_999),
            1000 * ns as i64 + 123_456_789
        );
        assert_eq!(
            Clock::of(0x80 | 20, 0).to_ns((T0 << 20) + (1 << 19)),
            (T0 * ns + ns / 2) as i64
        );
        assert_eq!(
            Clock::of(0x80 | 20, 10).to_ns((T0 << 20) + 3),
            ((T0 + 10) * ns + 2861) as i64
        );
        assert_eq!(
            Clock::of(0x80 | 30, 0).to_ns((T0 << 30) + 1),
            (T0 * ns) as i64
        );
        assert_eq!(Clock::of(0x80, 0).to_ns(T0), (T0 * ns) as i64);
        assert_eq!(Clock::of(127, -5).to_ns(u64::MAX), -5 * ns as i64);
        assert_eq!(Clock::of(9, 0).to_ns(u64::MAX), i64::MAX);
        assert_eq!(Clock::of(9, i64::MIN).to_ns(0), i64::MIN);
        assert_eq!(Clock::of(0x80 | 127, 0).to_ns(u64::MAX), 0);
    }

    #[test]
    fn names() {
        assert_eq!(block_name(0x999), "block of type 0x00000999");
        assert_eq!(block_name(0x4000_0BAD), "custom block");
    }
}
