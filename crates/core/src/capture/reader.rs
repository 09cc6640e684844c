//! Opening a capture file (format by content, never by name) and reading it chunk by chunk.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Cursor, ErrorKind, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::bytes::hex;
use super::gzip::Gunzip;
use super::pcap::{is_pcap, PcapWalker, FILE_HEADER_LEN};
use super::pcapng::{PcapngWalker, SHB_MAGIC};
use super::{Columns, InterfaceInfo, Walk};
use crate::frames::{FrameBatch, Frames};

pub const DEFAULT_CHUNK_BYTES: usize = 8 << 20;
pub const MIN_CHUNK_BYTES: usize = 64;

/// The most memory the xz decoder may use: xz -9 needs 65 MiB; a header asking for more is
/// refused before the decoder allocates it.
const XZ_MEM_LIMIT: u64 = 256 << 20;

/// Compressed bytes read at a time from a gzip file, as Python's gzip module reads them.
const GZIP_READ_BYTES: usize = 128 << 10;

/// The scratch buffer the rest of a frame cut at the cap is read into and dropped from.
const DISCARD_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    Pcapng,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Bzip2,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Bzip2 => "bzip2",
        }
    }

    /// Leading bytes of a compressed file -> its compression.
    fn of(lead: &[u8]) -> Option<Self> {
        if lead.starts_with(b"\x1f\x8b") {
            Some(Compression::Gzip)
        } else if lead.starts_with(b"\xfd7zXZ\x00") {
            Some(Compression::Xz)
        } else if lead.starts_with(b"BZh") {
            Some(Compression::Bzip2)
        } else {
            None
        }
    }
}

/// Compressions recognised only to be refused by name.
const UNSUPPORTED: [(&[u8], &str); 2] =
    [(b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4")];

/// A capture file that cannot be read (any further), in one line: the file name, what was
/// wrong and where, and (when reading stopped part way) how many packets were read before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError(pub String);

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaptureError {}

/// Counts the bytes the stream reader pulled from the file (compressed bytes, read-ahead
/// included), for progress.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.inner.read(buf)?;
        self.count.fetch_add(got as u64, Ordering::Relaxed);
        Ok(got)
    }
}

enum Walker {
    Pcap(PcapWalker),
    Pcapng(PcapngWalker),
}

impl Walker {
    fn walk(&mut self, buf: &[u8], pos: usize, base: u64, at_end: bool, out: &mut Columns) -> Walk {
        match self {
            Walker::Pcap(w) => w.walk(buf, pos, base, at_end, out),
            Walker::Pcapng(w) => w.walk(buf, pos, base, at_end, false, out),
        }
    }
}

enum State {
    /// `buf[pos..]` is ready to walk.
    Walk,
    /// `buf` holds the carried bytes; read a chunk after them first, of at least `need`.
    Fill(usize),
    /// `buf` holds the carried bytes, the first of which (and then the stream's) are the rest
    /// of a frame cut at the cap: drop this many, then fill.
    Skip(u64),
    Fail(String),
    Done,
}

/// An open capture file: iterate it for batches, in file order.
///
/// Frame numbers are 1-based and continue across batches. `bytes_read` counts bytes of the
/// file itself (compressed bytes for a compressed file), so `bytes_read / total_bytes` is a
/// progress fraction either way. Byte offsets in messages are positions in the uncompressed
/// capture stream.
pub struct CaptureReader {
    name: String,
    pub format: Format,
    pub compression: Option<Compression>,
    pub total_bytes: u64,
    pub frames_read: u64,
    pub bytes_read: u64,
    chunk: usize,
    stream: Box<dyn Read + Send>,
    pulled: Arc<AtomicU64>,
    uncompressed: u64,
    error: Option<String>,
    walker: Walker,
    buf: Vec<u8>,
    pos: usize,
    base: u64,
    eof: bool,
    state: State,
    last_batch: usize,
    /// The frames of the chunk being walked (moved out by `next_batch`, reused by
    /// `next_frames`).
    columns: Columns,
    /// `next_frames`' frame numbers.
    numbers: Vec<i64>,
    /// `next_frames` handed out `buf`: the bytes before this go before the next walk.
    carry_from: usize,
}

impl CaptureReader {
    /// Opens a pcap or pcapng file, plain or compressed. `name` is how messages call the file
    /// (the caller's spelling of the path).
    pub fn open(path: &Path, name: &str, chunk_bytes: usize) -> Result<Self, CaptureError> {
        let cannot = |e: io::Error| CaptureError(format!("{name}: cannot open: {}", strerror(&e)));
        let file = File::open(path).map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        if meta.is_dir() {
            return Err(cannot(io::Error::from_raw_os_error(21)));
        }
        let total = if meta.is_file() { meta.len() } else { 0 };
        Self::from_reader(Box::new(file), name, total, chunk_bytes)
    }

    /// As [`open`](Self::open), over any byte source (fuzzing, tests); `total_bytes` is its
    /// size when known, else 0.
    pub fn from_reader(
        mut file: Box<dyn Read + Send>,
        name: &str,
        total_bytes: u64,
        chunk_bytes: usize,
    ) -> Result<Self, CaptureError> {
        let mut lead = Vec::with_capacity(8);
        if let Err(e) = read_up_to(&mut file, &mut lead, 8) {
            return Err(CaptureError(format!(
                "{name}: read error at byte 0: {}",
                detail(&e)
            )));
        }
        let pulled = Arc::new(AtomicU64::new(0));
        let compression = Compression::of(&lead);
        let whole = Cursor::new(lead.clone()).chain(file);
        // A plain file is read straight into the chunk (File and Chain read into uninitialised
        // memory; a wrapper of ours could not, on stable Rust, and would cost a memset of every
        // chunk). Its progress is what was delivered; a compressed file's is what the
        // decompressor pulled, counted under it.
        let raw = Counted {
            inner: whole,
            count: Arc::clone(&pulled),
        };
        let stream: Box<dyn Read + Send> = match compression {
            None => Box::new(raw.inner),
            Some(Compression::Gzip) => {
                Box::new(Gunzip::new(BufReader::with_capacity(GZIP_READ_BYTES, raw)))
            }
            Some(Compression::Xz) => {
                let flags = liblzma::stream::CONCATENATED;
                match liblzma::stream::Stream::new_stream_decoder(XZ_MEM_LIMIT, flags) {
                    Ok(s) => Box::new(liblzma::read::XzDecoder::new_stream(raw, s)),
                    Err(e) => {
                        let what = format!("corrupt xz stream after 0 uncompressed bytes: {e}");
                        return Err(CaptureError(format!("{name}: {what}")));
                    }
                }
            }
            Some(Compression::Bzip2) => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
        };
        let mut r = CaptureReader {
            name: name.to_string(),
            format: Format::Pcap,
            compression,
            total_bytes,
            frames_read: 0,
            bytes_read: 0,
            chunk: chunk_bytes.max(MIN_CHUNK_BYTES),
            stream,
            pulled,
            uncompressed: 0,
            error: None,
            walker: Walker::Pcapng(PcapngWalker::new()),
            buf: Vec::new(),
            pos: 0,
            base: 0,
            eof: false,
            state: State::Walk,
            last_batch: 0,
            columns: Columns::default(),
            numbers: Vec::new(),
            carry_from: 0,
        };
        r.start(&lead)?;
        Ok(r)
    }

    /// Known interfaces; a pcapng file may declare more as reading goes on.
    pub fn interfaces(&self) -> &[InterfaceInfo] {
        match &self.walker {
            Walker::Pcap(w) => std::slice::from_ref(&w.interface),
            Walker::Pcapng(w) => &w.interfaces,
        }
    }

    /// Frames cut at [`FRAME_CAP_BYTES`](super::FRAME_CAP_BYTES) so far.
    pub fn frames_cut(&self) -> u64 {
        match &self.walker {
            Walker::Pcap(w) => w.cut,
            Walker::Pcapng(w) => w.cut,
        }
    }

    /// pcapng blocks skipped (neither section, interface nor packet), by block type.
    pub fn skipped_blocks(&self) -> BTreeMap<u32, u64> {
        match &self.walker {
            Walker::Pcap(_) => BTreeMap::new(),
            Walker::Pcapng(w) => w.skipped.clone(),
        }
    }

    /// Stops reading: later calls of `next_batch` give nothing, and the file is closed.
    pub fn close(&mut self) {
        self.state = State::Done;
        self.stream = Box::new(io::empty());
        self.buf = Vec::new();
        self.carry_from = 0;
    }

    fn fail(&self, what: &str) -> CaptureError {
        CaptureError(format!("{}: {what}", self.name))
    }

    // -- opening ---------------------------------------------------------------------------------

    fn start(&mut self, lead: &[u8]) -> Result<(), CaptureError> {
        let (buf, eof) = self.fill(Vec::new(), 0);
        if let (Some(error), true) = (&self.error, buf.is_empty()) {
            return Err(self.fail(error));
        }
        let head = &buf[..buf.len().min(4)];
        if head == SHB_MAGIC {
            self.format = Format::Pcapng;
            self.prime_pcapng(buf, eof)
        } else if is_pcap(head) {
            self.format = Format::Pcap;
            self.open_pcap(buf, eof)
        } else {
            Err(self.fail(&self.not_a_capture(head, lead)))
        }
    }

    fn open_pcap(&mut self, buf: Vec<u8>, eof: bool) -> Result<(), CaptureError> {
        if buf.len() < FILE_HEADER_LEN {
            if let Some(error) = &self.error {
                return Err(self.fail(error));
            }
            let have = buf.len();
            let what =
                format!("cut off inside the pcap file header ({have} of {FILE_HEADER_LEN} bytes)");
            return Err(self.fail(&what));
        }
        self.walker = Walker::Pcap(PcapWalker::new(&buf).map_err(|e| self.fail(&e))?);
        (self.buf, self.pos, self.base, self.eof) = (buf, FILE_HEADER_LEN, 0, eof);
        Ok(())
    }

    /// Reads blocks up to the first packet, so that the interfaces are known before iterating.
    /// Problems found here (a damaged section header, say) are returned by `open`.
    fn prime_pcapng(&mut self, mut buf: Vec<u8>, mut eof: bool) -> Result<(), CaptureError> {
        let mut walker = PcapngWalker::new();
        let mut columns = Columns::default();
        let (mut pos, mut base) = (0, 0u64);
        let w = loop {
            let at_end = eof && self.error.is_none();
            let w = walker.walk(&buf, pos, base, at_end, true, &mut columns);
            if let Some(problem) = &w.problem {
                return Err(self.fail(problem));
            }
            let at_packet = w.need == 0 && w.consumed < buf.len();
            if at_packet || eof {
                break w;
            }
            base += w.consumed as u64;
            buf.drain(..w.consumed);
            (buf, eof) = self.fill(buf, w.need);
            pos = 0;
        };
        if walker.sections == 0 {
            if let Some(error) = &self.error {
                return Err(self.fail(error));
            }
            return Err(self.fail("cut off inside the pcapng section header block"));
        }
        self.walker = Walker::Pcapng(walker);
        (self.buf, self.pos, self.base, self.eof) = (buf, w.consumed, base, eof);
        Ok(())
    }

    fn not_a_capture(&self, head: &[u8], lead: &[u8]) -> String {
        if lead.is_empty() {
            return "empty file, not a pcap or pcapng file".into();
        }
        for (magic, name) in UNSUPPORTED {
            if lead.starts_with(magic) {
                return format!(
                    "{name}-compressed; decompress it first (starts with {})",
                    hex(magic)
                );
            }
        }
        if let Some(c) = self.compression {
            let starts = if head.is_empty() {
                "nothing".into()
            } else {
                hex(head)
            };
            return format!(
                "not a pcap or pcapng file ({}-compressed, uncompressed data starts with {starts})",
                c.name()
            );
        }
        format!("not a pcap or pcapng file (starts with {})", hex(head))
    }

    // -- reading ---------------------------------------------------------------------------------

    /// The next batch, or the problem that ended reading (after every frame before it), or
    /// `None` at the end. The batch owns its chunk (the bytes carried over go to a new one).
    pub fn next_batch(&mut self) -> Option<Result<FrameBatch, CaptureError>> {
        self.next_batch_reusing(None)
    }

    /// As [`next_batch`](Self::next_batch), with the memory of `spare` (a batch the caller is
    /// done with) reused for the next chunk and columns: a caller that hands every batch back
    /// (the read-ahead thread of [`crate::scan::PacketScan`]) allocates, and faults in, no
    /// fresh memory per batch once a few are in circulation.
    pub fn next_batch_reusing(
        &mut self,
        spare: Option<FrameBatch>,
    ) -> Option<Result<FrameBatch, CaptureError>> {
        let reusing = spare.is_some();
        let mut spare = spare.unwrap_or_default();
        if self.columns.offset.capacity() == 0 {
            // The last batch took the columns: the walk fills the spare's.
            self.columns = Columns {
                offset: std::mem::take(&mut spare.offset),
                caplen: std::mem::take(&mut spare.caplen),
                wirelen: std::mem::take(&mut spare.wirelen),
                ts_ns: std::mem::take(&mut spare.ts_ns),
                linktype: std::mem::take(&mut spare.linktype),
                interface: std::mem::take(&mut spare.interface),
            };
            self.columns.clear();
        }
        let consumed = match self.walk_next()? {
            Ok(consumed) => consumed,
            Err(e) => return Some(Err(e)),
        };
        // The chunk becomes the batch's buffer; what it carries over goes to the next one.
        let mut next = std::mem::take(&mut spare.data);
        next.clear();
        if matches!(self.state, State::Fill(_) | State::Skip(_)) {
            let rest = self.buf.get(consumed..).unwrap_or_default();
            let need = rest.len().saturating_add(self.chunk);
            // A reused buffer gets room for two chunks, so that the carried bytes of later
            // batches do not make it grow again.
            let room = if reusing {
                need.max(self.chunk.saturating_mul(2))
            } else {
                need
            };
            next.reserve_exact(room);
            next.extend_from_slice(rest);
        }
        let data = std::mem::replace(&mut self.buf, next);
        let columns = std::mem::take(&mut self.columns);
        let n = columns.len() as i64;
        let first = self.frames_read as i64 - n + 1;
        let mut frame = std::mem::take(&mut spare.frame);
        frame.clear();
        frame.extend(first..first + n);
        Some(Ok(FrameBatch {
            data,
            offset: columns.offset,
            caplen: columns.caplen,
            wirelen: columns.wirelen,
            ts_ns: columns.ts_ns,
            linktype: columns.linktype,
            interface: columns.interface,
            frame,
        }))
    }

    /// The next batch as a view of the reader's own buffers, which the following call reuses:
    /// no chunk, column or page is allocated per batch once the first few are read, so a
    /// caller that is done with each batch before asking for the next (a scan, a count) pays
    /// no page faults for fresh memory. Otherwise as [`next_batch`](Self::next_batch).
    pub fn next_frames(&mut self) -> Option<Result<Frames<'_>, CaptureError>> {
        // Room for a chunk after the bytes carried over, so the buffer is not reallocated
        // while reading (unless one record is longer than a chunk).
        let room = self.chunk.saturating_mul(2);
        if self.buf.capacity() < room {
            self.buf.reserve_exact(room - self.buf.len());
        }
        let consumed = match self.walk_next()? {
            Ok(consumed) => consumed,
            Err(e) => return Some(Err(e)),
        };
        if matches!(self.state, State::Fill(_) | State::Skip(_)) {
            self.carry_from = consumed;
        }
        let n = self.columns.len() as i64;
        let first = self.frames_read as i64 - n + 1;
        self.numbers.clear();
        self.numbers.extend(first..first + n);
        let c = &self.columns;
        Some(Ok(Frames {
            data: &self.buf,
            offset: &c.offset,
            caplen: &c.caplen,
            wirelen: &c.wirelen,
            ts_ns: &c.ts_ns,
            linktype: &c.linktype,
            interface: &c.interface,
            frame: &self.numbers,
        }))
    }

    /// Walks on to the next chunk holding frames, leaving them in `self.columns` over
    /// `self.buf`; returns how many bytes of the buffer the walk consumed (what follows is
    /// carried into the next chunk when the state is `Fill`).
    fn walk_next(&mut self) -> Option<Result<usize, CaptureError>> {
        if self.carry_from > 0 {
            // next_frames' batch is done with: only its carried bytes stay.
            self.buf.drain(..self.carry_from.min(self.buf.len()));
            self.carry_from = 0;
        }
        loop {
            match std::mem::replace(&mut self.state, State::Walk) {
                State::Done => {
                    self.state = State::Done;
                    return None;
                }
                State::Fail(message) => {
                    self.state = State::Done;
                    return Some(Err(CaptureError(message)));
                }
                State::Fill(need) => {
                    let carried = std::mem::take(&mut self.buf);
                    (self.buf, self.eof) = self.fill(carried, need);
                    self.pos = 0;
                }
                State::Skip(n) => {
                    if let Err(message) = self.skip(n) {
                        self.state = State::Fail(message);
                    } else {
                        self.state = State::Fill(0);
                    }
                    continue;
                }
                State::Walk => {}
            }
            // Chunks of one file hold about as many frames as the last one did.
            self.columns.clear();
            self.columns.reserve(self.last_batch + self.last_batch / 8);
            let at_end = self.eof && self.error.is_none();
            let w = self
                .walker
                .walk(&self.buf, self.pos, self.base, at_end, &mut self.columns);
            self.frames_read += self.columns.len() as u64;
            self.state = if let Some(problem) = w.problem {
                State::Fail(self.stopped(&problem))
            } else if w.skip > 0 {
                self.base += w.consumed as u64;
                State::Skip(w.skip)
            } else if self.eof {
                match &self.error {
                    Some(error) => State::Fail(self.stopped(error)),
                    None => State::Done,
                }
            } else {
                self.base += w.consumed as u64;
                State::Fill(w.need)
            };
            let carries = matches!(self.state, State::Fill(_) | State::Skip(_));
            if self.columns.is_empty() {
                if carries {
                    self.buf.drain(..w.consumed.min(self.buf.len()));
                }
                continue;
            }
            self.last_batch = self.columns.len();
            return Some(Ok(w.consumed));
        }
    }

    /// Drops the first `n` bytes of the carried `buf` and of the stream after it: the rest of
    /// a frame cut at the cap, read in bounded steps and never kept. The stream ending first
    /// is a record cut off, as anywhere else.
    fn skip(&mut self, n: u64) -> Result<(), String> {
        let in_buf = usize::try_from(n).unwrap_or(usize::MAX).min(self.buf.len());
        self.buf.drain(..in_buf);
        self.base += in_buf as u64;
        let mut left = n - in_buf as u64;
        if left > 0 {
            let mut scratch = Vec::with_capacity(DISCARD_BYTES.min(left as usize));
            while left > 0 {
                let step = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(DISCARD_BYTES);
                scratch.clear();
                let got = self.read_into(&mut scratch, step);
                self.base += got as u64;
                left -= got as u64;
                if got < step {
                    break;
                }
            }
        }
        if left == 0 {
            return Ok(());
        }
        self.eof = true;
        let what = match &self.error {
            Some(error) => error.clone(),
            None => format!(
                "cut off inside record {} at byte {}",
                self.frames_read, self.base
            ),
        };
        Err(self.stopped(&what))
    }

    fn stopped(&self, what: &str) -> String {
        let n = self.frames_read;
        let s = if n == 1 { "" } else { "s" };
        format!("{}: {what} ({n} packet{s} read)", self.name)
    }

    /// `rest`, then as much of the stream as a chunk holds, or `need` bytes in all.
    ///
    /// Returns the chunk and whether the stream ended. A `need` larger than a chunk is read in
    /// doubling steps, so a damaged length field costs only as much memory as the file has.
    fn fill(&mut self, mut buf: Vec<u8>, need: usize) -> (Vec<u8>, bool) {
        let have = buf.len();
        let want = need.max(have.saturating_add(self.chunk));
        let got = self.read_into(&mut buf, self.chunk);
        let mut eof = got < self.chunk;
        let mut size = have + got;
        while !eof && size < want {
            let step = (want - size).min(size);
            let got = self.read_into(&mut buf, step);
            eof = got < step;
            size += got;
        }
        self.bytes_read = self.pulled.load(Ordering::Relaxed);
        if self.compression.is_none() {
            // The lead bytes were read ahead; plain files count what was delivered.
            self.bytes_read = self.uncompressed;
        }
        (buf, eof)
    }

    /// Appends up to `n` bytes of the stream to `buf`; on a read error keeps what came before
    /// it and remembers the error, which ends reading after the frames before it.
    fn read_into(&mut self, buf: &mut Vec<u8>, n: usize) -> usize {
        let start = buf.len();
        let result = read_up_to(&mut self.stream, buf, n);
        let got = buf.len() - start;
        match result {
            Err(e) if self.trailing_garbage(&e, got) => {}
            Err(e) => self.error = Some(self.read_error(&e, self.uncompressed + got as u64)),
            Ok(()) => {}
        }
        self.uncompressed += got as u64;
        got
    }

    /// Bytes after the last bzip2 stream that do not start another: Python's bz2 module
    /// ignores them (it reads "trailing data" as the end), and so does this reader.
    fn trailing_garbage(&self, e: &io::Error, got: usize) -> bool {
        let after_data = self.uncompressed + got as u64 > 0;
        let magic = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<bzip2::Error>())
            .is_some_and(|b| matches!(b, bzip2::Error::DataMagic));
        self.compression == Some(Compression::Bzip2) && after_data && magic
    }

    fn read_error(&self, e: &io::Error, at: u64) -> String {
        match self.compression {
            None => format!("read error at byte {at}: {}", detail(e)),
            Some(c) if e.kind() == ErrorKind::UnexpectedEof => {
                format!("{} stream cut off after {at} uncompressed bytes", c.name())
            }
            Some(c) => format!(
                "corrupt {} stream after {at} uncompressed bytes: {}",
                c.name(),
                decompressor_detail(e)
            ),
        }
    }
}

impl Iterator for CaptureReader {
    type Item = Result<FrameBatch, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch()
    }
}

/// Appends up to `n` bytes from `r` to `buf`, stopping early only at the end of the stream or
/// on an error (the bytes before it stay appended).
fn read_up_to<R: Read + ?Sized>(r: &mut R, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    // Room for exactly `n` more: read_to_end then fills it without growing the Vec, retries
    // on EINTR, and keeps what it read before an error. Through `Take` it reads no further.
    buf.reserve_exact(n);
    r.take(n as u64).read_to_end(buf).map(|_| ())
}

/// What a decompressor said, in the words of the Python module that reads the same format
/// (`_lzma` and `_bz2` name liblzma's and libbzip2's error codes; gzip.rs words its own).
fn decompressor_detail(e: &io::Error) -> String {
    if let Some(inner) = e.get_ref() {
        if let Some(x) = inner.downcast_ref::<liblzma::stream::Error>() {
            use liblzma::stream::Error as X;
            return match x {
                X::Data => "Corrupt input data",
                X::Format => "Input format not supported by decoder",
                X::Options => "Invalid or unsupported options",
                X::MemLimit => "Memory usage limit was exceeded",
                X::UnsupportedCheck => "Unsupported integrity check",
                X::Mem => "Memory allocation failed",
                X::Program | X::NoCheck => "Internal error",
            }
            .into();
        }
        if let Some(b) = inner.downcast_ref::<bzip2::Error>() {
            if matches!(b, bzip2::Error::Data | bzip2::Error::DataMagic) {
                return "Invalid data stream".into();
            }
        }
    }
    detail(e)
}

/// An OS error as Python's `strerror`: "No such file or directory".
fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    }
}

/// An error as Python's `str(OSError)`: "[Errno 5] Input/output error"; others as written.
fn detail(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("[Errno {code}] {}", strerror(e)),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::NS_PER_S;

    /// A little-endian µs pcap of `n` records of 10..(10+n) bytes, and each record's offset.
    fn pcap(n: u8) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut offsets = Vec::new();
        for i in 0..n {
            offsets.push(out.len());
            let len = 10 + u32::from(i);
            for v in [1_700_000_000 + u32::from(i), 5, len, len + 1] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend(std::iter::repeat_n(i, len as usize));
        }
        (out, offsets)
    }

    fn read(data: Vec<u8>, chunk: usize) -> (Vec<FrameBatch>, Option<String>) {
        let size = data.len() as u64;
        let r = CaptureReader::from_reader(Box::new(Cursor::new(data)), "f", size, chunk);
        let mut r = match r {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Some(e.0)),
        };
        let mut out = Vec::new();
        for b in r.by_ref() {
            match b {
                Ok(b) => out.push(b),
                Err(e) => return (out, Some(e.0)),
            }
        }
        assert_eq!(r.bytes_read, size);
        (out, None)
    }

    #[test]
    fn small_chunks_carry_records_over() {
        let (data, _) = pcap(40);
        let (batches, error) = read(data, 64);
        assert_eq!(error, None);
        assert!(batches.len() > 10);
        let frames: Vec<i64> = batches.iter().flat_map(|b| b.frame.clone()).collect();
        assert_eq!(frames, (1..=40).collect::<Vec<_>>());
        for b in &batches {
            for i in 0..b.len() {
                let bytes = b.as_ref().bytes(i).unwrap();
                let k = (b.frame[i] - 1) as u8;
                assert_eq!(bytes, vec![k; 10 + k as usize].as_slice());
                assert_eq!(b.wirelen[i], 11 + u32::from(k));
                assert_eq!(b.ts_ns[i], (1_700_000_000 + i64::from(k)) * NS_PER_S + 5000);
            }
        }
    }

    #[test]
    fn frames_read_in_place_are_the_batches() {
        let (data, offsets) = pcap(40);
        for (cut, chunk) in [
            (data.len(), 64),
            (data.len(), 1 << 20),
            (offsets[30] + 9, 100),
        ] {
            let bytes = data[..cut].to_vec();
            let (batches, error) = read(bytes.clone(), chunk);
            let r = CaptureReader::from_reader(Box::new(Cursor::new(bytes)), "f", 0, chunk);
            let mut r = r.unwrap();
            let mut frames = Vec::new();
            let mut in_place_error = None;
            while let Some(next) = r.next_frames() {
                match next {
                    Ok(f) => {
                        for i in 0..f.len() {
                            frames.push((f.frame[i], f.ts_ns[i], f.bytes(i).unwrap().to_vec()));
                        }
                    }
                    Err(e) => in_place_error = Some(e.0),
                }
            }
            let want: Vec<_> = batches
                .iter()
                .flat_map(|b| {
                    (0..b.len()).map(|i| {
                        (
                            b.frame[i],
                            b.ts_ns[i],
                            b.as_ref().bytes(i).unwrap().to_vec(),
                        )
                    })
                })
                .collect();
            assert_eq!(frames, want, "chunk {chunk}, cut {cut}");
            assert_eq!(in_place_error, error);
        }
    }

    #[test]
    fn a_cut_file_gives_its_frames_then_one_line() {
        let (data, offsets) = pcap(6);
        let cut = offsets[4] + 20;
        let (batches, error) = read(data[..cut].to_vec(), 64);
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 4);
        let at = offsets[4];
        assert_eq!(
            error.as_deref(),
            Some(format!("f: cut off inside record 5 at byte {at} (4 packets read)").as_str())
        );
    }

    #[test]
    fn refusals_at_open() {
        assert_eq!(
            read(Vec::new(), 64).1.as_deref(),
            Some("f: empty file, not a pcap or pcapng file")
        );
        let zstd = vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
        let want = "f: zstd-compressed; decompress it first (starts with 28 b5 2f fd)";
        assert_eq!(read(zstd, 64).1.as_deref(), Some(want));
        let (data, _) = pcap(0);
        let want = "f: cut off inside the pcap file header (10 of 24 bytes)";
        assert_eq!(read(data[..10].to_vec(), 64).1.as_deref(), Some(want));
    }

    /// A pcap (snaplen 4 MiB) of 10, `big` and 10-byte frames whose bytes are 0, 1 and 2.
    fn pcap_with_big_frame(big: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 4 << 20, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (k, len) in [10u32, big, 10].into_iter().enumerate() {
            for v in [1_700_000_000 + k as u32, 0, len, len] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend(std::iter::repeat_n(k as u8, len as usize));
        }
        out
    }

    /// The same frames in pcapng: an EPB, then the big one as an EPB or (`simple`) an SPB,
    /// then an EPB.
    fn pcapng_with_big_frame(big: u32, simple: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut block = |btype: u32, body: &[u8]| {
            let len = 12 + body.len() as u32;
            out.extend_from_slice(&btype.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(&len.to_le_bytes());
        };
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        block(0x0a0d_0d0a, &shb);
        block(1, &[1, 0, 0, 0, 0, 0, 0, 0]); // Ethernet, snaplen 0
        for (k, len) in [10u32, big, 10].into_iter().enumerate() {
            let mut body = Vec::new();
            if simple && k == 1 {
                body.extend_from_slice(&len.to_le_bytes());
            } else {
                let ts = (1_700_000_000 + k as u64) * 1_000_000;
                for v in [0, (ts >> 32) as u32, ts as u32, len, len] {
                    body.extend_from_slice(&v.to_le_bytes());
                }
            }
            body.extend(std::iter::repeat_n(k as u8, len as usize));
            body.resize(body.len().next_multiple_of(4), 0);
            block(if simple && k == 1 { 3 } else { 6 }, &body);
        }
        out
    }

    #[test]
    fn frames_past_the_cap_are_cut_counted_and_never_held() {
        let cap = crate::capture::FRAME_CAP_BYTES;
        for big in [cap, cap + 1, 1 << 20, 3 << 20] {
            let files = [
                pcap_with_big_frame(big),
                pcapng_with_big_frame(big, false),
                pcapng_with_big_frame(big, true),
            ];
            for data in files {
                for chunk in [64, 4096, 300_000, DEFAULT_CHUNK_BYTES] {
                    let size = data.len() as u64;
                    let source = Box::new(Cursor::new(data.clone()));
                    let mut r = CaptureReader::from_reader(source, "f", size, chunk).unwrap();
                    let batches: Vec<FrameBatch> = r.by_ref().map(|b| b.unwrap()).collect();
                    let col = |f: fn(&FrameBatch) -> &Vec<u32>| -> Vec<u32> {
                        batches.iter().flat_map(|b| f(b).clone()).collect()
                    };
                    assert_eq!(col(|b| &b.caplen), [10, big.min(cap), 10], "{big} {chunk}");
                    assert_eq!(col(|b| &b.wirelen), [10, big, 10]);
                    assert_eq!(r.frames_cut(), u64::from(big > cap));
                    for b in &batches {
                        // No buffer holds more than a chunk and one cut frame, whatever `big`.
                        assert!(b.data.len() <= 2 * chunk.max(cap as usize + 64));
                        for i in 0..b.len() {
                            let k = (b.frame[i] - 1) as u8;
                            let bytes = b.as_ref().bytes(i).unwrap();
                            assert!(bytes.iter().all(|&x| x == k));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn only_packet_blocks_are_cut() {
        // A 300 KB name-resolution block whose bytes where an EPB has its captured length
        // read as 0xffffffff: read whole and skipped, at any chunk size, never cut.
        let mut data = pcapng_with_big_frame(10, false);
        let len = 300_000u32;
        let mut nrb = Vec::new();
        nrb.extend_from_slice(&4u32.to_le_bytes());
        nrb.extend_from_slice(&len.to_le_bytes());
        nrb.resize(len as usize - 4, 0xff);
        nrb.extend_from_slice(&len.to_le_bytes());
        data.extend_from_slice(&nrb);
        for chunk in [64, 4096, DEFAULT_CHUNK_BYTES] {
            let size = data.len() as u64;
            let source = Box::new(Cursor::new(data.clone()));
            let mut r = CaptureReader::from_reader(source, "f", size, chunk).unwrap();
            let frames: usize = r.by_ref().map(|b| b.unwrap().len()).sum();
            assert_eq!((frames, r.frames_cut()), (3, 0));
            assert_eq!(r.skipped_blocks(), BTreeMap::from([(4, 1)]));
        }
    }

    #[test]
    fn a_file_that_ends_inside_a_cut_frame_gives_one_line() {
        let data = pcap_with_big_frame(1 << 20);
        let end = 24 + 26 + 16 + 500_000;
        let (batches, error) = read(data[..end].to_vec(), 4096);
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 2);
        assert_eq!(
            error.as_deref(),
            Some(format!("f: cut off inside record 2 at byte {end} (2 packets read)").as_str())
        );
    }
}
