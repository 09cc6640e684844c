//! Capture files in, [`FrameBatch`](crate::frames::FrameBatch)es out: pcap, pcapng, and either
//! of them compressed with gzip, xz or bzip2.
//!
//! This is the Rust twin of `portlens.reference.files` / `pcap` / `pcapng`, and must agree with
//! them column for column and error for error (tests/test_rust_readers.py): the same chunking,
//! the same frames before a problem, the same one-line messages. The rules where readers differ
//! are documented once, in the Python modules; the walkers here follow them block by block
//! where Python does it with numpy over a run of blocks.
//!
//! Reading is chunked: each chunk is a fresh buffer that becomes the batch's `data` (no frame is
//! copied), and the partial record at its end is carried into the next chunk. A record longer
//! than a chunk makes that one read longer, in doubling steps, so that a lying length field
//! costs only as much memory as the file actually has. Lengths past [`MAX_RECORD_BYTES`] are
//! damage; frames past [`FRAME_CAP_BYTES`] are cut to it, and the rest of their record is read
//! past in bounded steps, never held.

pub mod ahead;
mod bytes;
mod gzip;
pub mod merge;
pub mod pcap;
pub mod pcapng;
mod reader;

pub use reader::{
    CaptureError, CaptureReader, Compression, Format, DEFAULT_CHUNK_BYTES, MIN_CHUNK_BYTES,
};

/// The largest record (pcap) or block (pcapng) believed; past it a length field is damage.
pub const MAX_RECORD_BYTES: u32 = 256 << 20;

/// libpcap's and Wireshark's largest packet for ordinary link types; a pcap record may capture
/// up to `max(this, snaplen)`.
pub const USUAL_MAX_CAPLEN: u32 = 262_144;

/// The most bytes of one frame kept: a record (or packet block) that captured more is cut to
/// this, as if captured with this snaplen, its rest read past and never held in memory, and
/// counted ([`CaptureReader::frames_cut`]). 256 KiB is libpcap's `MAXIMUM_SNAPLEN` (tcpdump
/// and Wireshark capture no more of any link type portlens decodes, nor does `sniff -s 0`),
/// four times the largest IP datagram with a length field and half Linux's largest BIG TCP
/// GSO packet (512 KiB): a larger frame was crafted or written by another tool, and its first
/// 256 KiB hold every header portlens decodes. Only the checksum of such a frame is lost
/// (unverified, as for any frame cut by snaplen). A crafted 256 MiB frame then costs its
/// decompression, not 256 MiB of memory per frame.
pub const FRAME_CAP_BYTES: u32 = 262_144;

pub const NS_PER_S: i64 = 1_000_000_000;

/// One capture interface: the whole file for classic pcap, one IDB for pcapng.
///
/// `id` is the value of `FrameBatch::interface` for the interface's frames; pcapng interfaces
/// are numbered across the file (a later section's continue after an earlier one's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub id: u16,
    pub linktype: u16,
    pub snaplen: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    /// pcapng `if_tsresol` as written: `10**v`, or `2**(v & 0x7f)` ticks per second when the
    /// top bit is set; pcap-µs is 6 and pcap-ns 9. Kept as the byte because `10**127` ticks
    /// per second is legal and fits no integer type.
    pub tsresol: u8,
    /// pcapng `if_tsoffset`, seconds added to every timestamp of the interface.
    pub tsoffset_s: i64,
    /// Bytes of frame check sequence at the end of each frame, when the file says so.
    pub fcs_len: Option<u8>,
    /// pcapng section (0-based) the interface belongs to.
    pub section: u32,
}

/// What one pass of a walker over a chunk found (frames go to the caller's [`Columns`]).
///
/// The caller keeps `buf[consumed..]` for the next chunk, which must hold at least `need` bytes
/// from there (0: not known yet), after dropping its first `skip` bytes; `problem` is raised
/// after the frames found before it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub consumed: usize,
    pub need: usize,
    pub problem: Option<String>,
    /// Bytes after `consumed` to read past: the rest of a frame cut at [`FRAME_CAP_BYTES`]
    /// (the walk stops after it).
    pub skip: u64,
}

/// The per-frame columns of a batch being built, before its buffer and frame numbers join.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Columns {
    pub offset: Vec<i64>,
    pub caplen: Vec<u32>,
    pub wirelen: Vec<u32>,
    pub ts_ns: Vec<i64>,
    pub linktype: Vec<u16>,
    pub interface: Vec<u16>,
}

impl Columns {
    pub fn len(&self) -> usize {
        self.offset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }

    /// Empties every column, keeping its memory.
    pub fn clear(&mut self) {
        self.offset.clear();
        self.caplen.clear();
        self.wirelen.clear();
        self.ts_ns.clear();
        self.linktype.clear();
        self.interface.clear();
    }

    /// Room for `n` more frames in every column.
    pub fn reserve(&mut self, n: usize) {
        self.offset.reserve(n);
        self.caplen.reserve(n);
        self.wirelen.reserve(n);
        self.ts_ns.reserve(n);
        self.linktype.reserve(n);
        self.interface.reserve(n);
    }

    /// Room for `n` frames in every column.
    pub fn with_capacity(n: usize) -> Self {
        Columns {
            offset: Vec::with_capacity(n),
            caplen: Vec::with_capacity(n),
            wirelen: Vec::with_capacity(n),
            ts_ns: Vec::with_capacity(n),
            linktype: Vec::with_capacity(n),
            interface: Vec::with_capacity(n),
        }
    }

    #[inline]
    fn push(&mut self, offset: usize, caplen: u32, wirelen: u32, ts_ns: i64, lt: u16, ifc: u16) {
        // A chunk is a Vec, so its offsets are below isize::MAX and fit an i64.
        self.offset.push(i64::try_from(offset).unwrap_or(i64::MAX));
        self.caplen.push(caplen);
        self.wirelen.push(wirelen);
        self.ts_ns.push(ts_ns);
        self.linktype.push(lt);
        self.interface.push(ifc);
    }
}
