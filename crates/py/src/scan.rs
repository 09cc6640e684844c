//! `portlens._core.PacketScan`: read, decode and count a capture file, one call per batch.
//!
//! What `portlens packets --stats` needs of a file is counts, not columns: each `step` reads
//! the next chunk, decodes it and adds it to the counts with the GIL released, into buffers
//! reused from batch to batch (the reader's chunk, its frame columns, the decoder's packet
//! columns), so no memory is allocated or faulted in per batch and nothing crosses into
//! Python but the counts at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use portlens_core::decode::DecodeOptions;
use portlens_core::scan;
use portlens_core::summary::{CaptureCounts, FileCounts, Tally};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::capture::{interface, CaptureError, Interface};

/// One capture file read, decoded and counted batch by batch (`step`), in file order.
#[pyclass(module = "portlens._core", name = "PacketScan", frozen)]
pub struct PacketScan {
    // A Mutex because a pyclass must be Sync and the reader's stream is not.
    inner: Mutex<scan::PacketScan>,
}

impl PacketScan {
    fn scan(&self) -> MutexGuard<'_, scan::PacketScan> {
        // A panic mid-batch would poison the lock; the state between batches is consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl PacketScan {
    /// Opens `path` as `CaptureReader` does (`name`: how messages call it); `supported` are
    /// the link types the decoder decodes (the others are counted as not decoded).
    #[new]
    ///
    /// `read_ahead`: a thread of the core reads the file while each `step` decodes and counts
    /// the batch before (the same batches in the same order, so the same counts).
    #[pyo3(signature = (path, chunk_bytes = scan::SCAN_CHUNK_BYTES, name = None, *,
                        checksums, supported, read_ahead = false))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        chunk_bytes: usize,
        name: Option<String>,
        checksums: bool,
        supported: Vec<u16>,
        read_ahead: bool,
    ) -> PyResult<Self> {
        let name = name.unwrap_or_else(|| path.display().to_string());
        let options = DecodeOptions { checksums };
        let opened = py.detach(|| {
            let mut scan = scan::PacketScan::open(&path, &name, chunk_bytes, options, &supported)?;
            if read_ahead {
                scan.read_ahead();
            }
            Ok::<_, portlens_core::capture::CaptureError>(scan)
        });
        Ok(PacketScan {
            inner: Mutex::new(opened.map_err(|e| CaptureError::new_err(e.0))?),
        })
    }

    /// Reads, decodes and counts the next batch: False at the end of the file; a problem
    /// with the file raises CaptureError after the frames before it were counted.
    fn step(&self, py: Python<'_>) -> PyResult<bool> {
        let mut guard = self.scan();
        let scan: &mut scan::PacketScan = &mut guard;
        match py.detach(|| scan.step()) {
            None => Ok(false),
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(CaptureError::new_err(e.0)),
        }
    }

    /// Stops reading and closes the file.
    fn close(&self, py: Python<'_>) {
        let mut guard = self.scan();
        let scan: &mut scan::PacketScan = &mut guard;
        py.detach(|| scan.close());
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.scan().format.name()
    }

    #[getter]
    fn compression(&self) -> Option<&'static str> {
        self.scan().compression.map(|c| c.name())
    }

    #[getter]
    fn bytes_read(&self) -> u64 {
        self.scan().bytes_read()
    }

    #[getter]
    fn total_bytes(&self) -> u64 {
        self.scan().total_bytes
    }

    /// Frames cut at the frame cap (`FRAME_CAP_BYTES`, 256 KiB) so far.
    #[getter]
    fn frames_cut(&self) -> u64 {
        self.scan().frames_cut()
    }

    /// Interfaces known so far, as `CaptureReader.interfaces` gives them.
    fn interfaces(&self) -> Vec<Interface> {
        self.scan().interfaces().iter().map(interface).collect()
    }

    /// The counts so far: scalars by name, tallies as {raw key: count}
    /// (`portlens.analysis.capture_stats.CaptureStats.from_counts` names the keys).
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        counts_dict(py, &self.scan().counts)
    }

    /// What the fragment reassembler did and holds, as `Decoder.fragment_counters`.
    #[getter]
    fn fragment_counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::decode::fragment_counters(py, &self.scan().decoder.reassembler)
    }
}

fn tally<'py>(py: Python<'py>, t: &Tally) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, n) in t.items() {
        d.set_item(k, n)?;
    }
    Ok(d)
}

fn map32<'py>(py: Python<'py>, m: &BTreeMap<u32, u64>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, n) in m {
        d.set_item(k, n)?;
    }
    Ok(d)
}

pub(crate) fn counts_dict<'py>(py: Python<'py>, c: &CaptureCounts) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    file_counts_into(&d, &c.file)?;
    d.set_item("captured_bytes", c.captured_bytes)?;
    d.set_item("linktypes", tally(py, &c.linktypes)?)?;
    d.set_item("protocols", tally(py, &c.protocols)?)?;
    d.set_item("not_ip", map32(py, &c.not_ip)?)?;
    d.set_item("tunnels", map32(py, &c.tunnels)?)?;
    d.set_item("vlan_tagged", c.vlan_tagged)?;
    d.set_item("mpls_labelled", c.mpls_labelled)?;
    d.set_item("fragments", c.fragments)?;
    d.set_item("reassembled", c.reassembled)?;
    d.set_item("truncated", c.truncated)?;
    d.set_item("bad_ip_checksum", c.bad_ip_checksum)?;
    d.set_item("bad_l4_checksum", c.bad_l4_checksum)?;
    d.set_item("malformed", tally(py, &c.malformed)?)?;
    d.set_item("not_decoded", tally(py, &c.not_decoded)?)?;
    Ok(d)
}

/// A file's counts under FileStats' names (frames, wire_bytes, first_ns, last_ns,
/// backwards, largest_step_back_ns, first_backwards_frame).
pub(crate) fn file_counts_into(d: &Bound<'_, PyDict>, c: &FileCounts) -> PyResult<()> {
    d.set_item("frames", c.frames)?;
    d.set_item("wire_bytes", c.wire_bytes)?;
    d.set_item("first_ns", c.first_ns)?;
    d.set_item("last_ns", c.last_ns)?;
    d.set_item("backwards", c.backwards)?;
    d.set_item("largest_step_back_ns", c.largest_step_back_ns)?;
    d.set_item("first_backwards_frame", c.first_backwards_frame)?;
    Ok(())
}
