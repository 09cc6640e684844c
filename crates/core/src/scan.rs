//! A capture file read, decoded and counted in one pass: what `portlens packets --stats` runs.
//!
//! Every buffer is reused from batch to batch: the reader's chunk and frame columns
//! ([`CaptureReader::next_frames`]) and the decoder's packet columns
//! ([`Decoder::decode_into`]), so that after the first batches nothing is allocated, and no
//! fresh page faulted in, per batch. A chunk's frames are decoded [`SLICE_ROWS`] at a time,
//! so the packet columns the counts read back stay in the CPU's cache.

use std::path::Path;

use crate::capture::{CaptureError, CaptureReader};
use crate::decode::{Columns, DecodeOptions, Decoder};
use crate::summary::CaptureCounts;

/// Frames decoded into the columns at a time: about 0.5 MB of columns.
pub const SLICE_ROWS: usize = 1024;

/// The scan's chunk: small enough that the chunk the kernel just copied is still in the
/// cache while its records are walked and decoded. On the 2 M benchmark capture, 1 MiB
/// chunks cost 0.48 CPU s where 8 MiB ones (the pipeline's, sized for Python's per-batch
/// overhead) cost 0.87 (docs/benchmarks.md); the scan has no per-batch Python to amortise.
pub const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// One capture file, read, decoded and counted batch by batch.
pub struct PacketScan {
    pub reader: CaptureReader,
    pub decoder: Decoder,
    pub counts: CaptureCounts,
    options: DecodeOptions,
    columns: Columns,
}

impl PacketScan {
    /// Opens `path` (see [`CaptureReader::open`]); `supported`: the link types decoded.
    pub fn open(
        path: &Path,
        name: &str,
        chunk_bytes: usize,
        options: DecodeOptions,
        supported: &[u16],
    ) -> Result<Self, CaptureError> {
        Ok(PacketScan {
            reader: CaptureReader::open(path, name, chunk_bytes)?,
            decoder: Decoder::default(),
            counts: CaptureCounts::new(supported),
            options,
            columns: Columns::default(),
        })
    }

    /// Reads, decodes and counts the next chunk's frames: `None` at the end of the file, the
    /// problem that ended reading after the frames before it were counted.
    pub fn step(&mut self) -> Option<Result<(), CaptureError>> {
        let frames = match self.reader.next_frames()? {
            Ok(frames) => frames,
            Err(e) => return Some(Err(e)),
        };
        let mut start = 0;
        while start < frames.len() {
            let end = frames.len().min(start + SLICE_ROWS);
            self.decoder
                .decode_into(frames.slice(start..end), self.options, &mut self.columns);
            self.counts.add(&self.columns);
            start = end;
        }
        Some(Ok(()))
    }
}
