//! A capture file read, decoded and counted in one pass: what `portlens packets --stats` runs.
//!
//! Every buffer is reused from batch to batch: the reader's chunk and frame columns
//! ([`CaptureReader::next_frames`], or the batches a read-ahead thread hands back and forth)
//! and the decoder's packet columns ([`Decoder::decode_into`]), so that after the first
//! batches nothing is allocated, and no fresh page faulted in, per batch. A chunk's frames are
//! decoded [`SLICE_ROWS`] at a time, so the packet columns the counts read back stay in the
//! CPU's cache.
//!
//! With [`PacketScan::read_ahead`], a second thread ([`crate::capture::ahead`]) reads and walks
//! the file (the copy out of the page cache, or the decompression) while the caller's thread decodes and counts the
//! batch before: the batches still reach the decoder one at a time in file order, so the
//! decoder's state (fragment reassembly) and the counts are exactly those of the single
//! thread.

use std::path::Path;

use crate::capture::ahead::Source;
use crate::capture::{CaptureError, CaptureReader, Compression, Format, InterfaceInfo};
use crate::decode::{Columns, DecodeOptions, Decoded, Decoder};
use crate::frames::{FrameBatch, Frames};
use crate::summary::CaptureCounts;

/// Frames decoded into the columns at a time: about 0.5 MB of columns.
pub const SLICE_ROWS: usize = 1024;

/// The scan's chunk: small enough that the chunk the kernel just copied is still in the
/// cache while its records are walked and decoded. On the 2 M benchmark capture, 1 MiB
/// chunks cost 0.48 CPU s where 8 MiB ones (the pipeline's, sized for Python's per-batch
/// overhead) cost 0.87 (docs/benchmarks.md); the scan has no per-batch Python to amortise.
/// On the Intel host of 3 December 256 KiB cost 0.50-0.53 CPU s where 1 MiB cost 0.57-0.58
/// (three interleaved rounds of seven runs).
pub const SCAN_CHUNK_BYTES: usize = 256 << 10;

/// One capture file, read, decoded and counted batch by batch.
pub struct PacketScan {
    source: Source,
    /// The file's format and compression, known from the open.
    pub format: Format,
    pub compression: Option<Compression>,
    pub total_bytes: u64,
    /// The batch last counted, handed back to the reader for its memory.
    spare: Option<Box<FrameBatch>>,
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
        let reader = CaptureReader::open(path, name, chunk_bytes)?;
        Ok(PacketScan {
            format: reader.format,
            compression: reader.compression,
            total_bytes: reader.total_bytes,
            source: Source::new(reader),
            spare: None,
            decoder: Decoder::default(),
            counts: CaptureCounts::new(supported),
            options,
            columns: Columns::default(),
        })
    }

    /// Reads the rest of the file in a thread of its own, ahead of the steps that decode and
    /// count it (a no-op once reading ended or was moved already).
    pub fn read_ahead(&mut self) {
        self.source.read_ahead();
    }

    /// Reads, decodes and counts the next chunk's frames: `None` at the end of the file, the
    /// problem that ended reading after the frames before it were counted.
    pub fn step(&mut self) -> Option<Result<(), CaptureError>> {
        if let Some(reader) = self.source.here() {
            // On one thread the chunk is walked where the reader keeps it, not moved out.
            let frames = match reader.next_frames()? {
                Ok(frames) => frames,
                Err(e) => {
                    self.source.sync_progress();
                    return Some(Err(e));
                }
            };
            count(
                &mut self.decoder,
                &mut self.counts,
                &mut self.columns,
                self.options,
                frames,
            );
            self.source.sync_progress();
            return Some(Ok(()));
        }
        let batch = match self.source.next_batch(self.spare.take())? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(e)),
        };
        count(
            &mut self.decoder,
            &mut self.counts,
            &mut self.columns,
            self.options,
            FrameBatch::as_ref(&batch),
        );
        self.spare = Some(batch);
        Some(Ok(()))
    }

    /// Stops reading and closes the file (and ends the read-ahead thread).
    pub fn close(&mut self) {
        self.source.close();
    }

    /// Bytes of the file read so far (compressed bytes for a compressed file).
    pub fn bytes_read(&self) -> u64 {
        self.source.progress().bytes_read
    }

    /// Frames cut at the frame cap so far.
    pub fn frames_cut(&self) -> u64 {
        self.source.progress().frames_cut
    }

    /// Interfaces known so far.
    pub fn interfaces(&self) -> &[InterfaceInfo] {
        &self.source.progress().interfaces
    }
}

/// Decodes `frames` [`SLICE_ROWS`] at a time and adds them to `counts`.
pub(crate) fn count(
    decoder: &mut Decoder,
    counts: &mut CaptureCounts,
    columns: &mut Columns,
    options: DecodeOptions,
    frames: Frames<'_>,
) {
    let mut start = 0;
    while start < frames.len() {
        let end = frames.len().min(start + SLICE_ROWS);
        let slice = frames.slice(start..end);
        // Each row counted as it is decoded; only fragment rows (and those after them) are
        // stored, for the reassembler, and counted from the columns once it is done.
        decoder.decode_each(slice, options, columns, |rows| match rows {
            Decoded::Row(row) => counts.add_row(row),
            Decoded::Stored(cols, first) => counts.add_from(cols, first),
        });
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{capture, SUPPORTED};

    /// The counts of every row stored by `decode_into` and added batch by batch, in slices
    /// of `rows`: what the scan counted before `decode_each`.
    fn stored_counts(path: &Path, rows: usize) -> CaptureCounts {
        let mut reader = CaptureReader::open(path, "x", 4096).expect("opens");
        let mut decoder = Decoder::default();
        let mut counts = CaptureCounts::new(&SUPPORTED);
        let mut columns = Columns::default();
        while let Some(Ok(batch)) = reader.next_batch() {
            let frames = batch.as_ref();
            let mut start = 0;
            while start < frames.len() {
                let end = frames.len().min(start + rows);
                let options = DecodeOptions { checksums: true };
                decoder.decode_into(frames.slice(start..end), options, &mut columns);
                counts.add(&columns);
                start = end;
            }
        }
        counts
    }

    #[test]
    fn rows_counted_as_decoded_equal_rows_stored() {
        // Fragments first, after other frames, completing datagrams, tunnelled in fragments.
        for name in [
            "fragments.pcap",
            "encap/encap-gtp-fragmented.pcap",
            "encap/encap-gtp-fragmented-v6.pcap",
            "tcp-session.pcap",
            "malformed.pcap",
        ] {
            let path = capture(name);
            let mut scan = PacketScan::open(
                &path,
                "x",
                4096,
                DecodeOptions { checksums: true },
                &SUPPORTED,
            )
            .expect("opens");
            while let Some(step) = scan.step() {
                step.expect("reads");
            }
            assert!(scan.counts.file.frames > 0, "{name}");
            assert_eq!(scan.counts, stored_counts(&path, SLICE_ROWS), "{name}");
            if name.contains("frag") {
                assert!(scan.counts.reassembled > 0, "{name}");
            }
        }
    }
}
