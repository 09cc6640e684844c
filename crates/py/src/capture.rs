//! `portlens._core.CaptureReader`: the Rust capture readers as a Python iterator of batches.
//!
//! Each batch is the FrameBatch columns as NumPy arrays that own the Rust vectors (no copy);
//! the GIL is released while a chunk is read and walked (so a Python thread may read ahead:
//! portlens.pipeline.ahead). Problems come out as
//! `portlens._core.CaptureError` with the reader's one-line message, which
//! `portlens.sources.files` re-raises as its own CaptureError.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use numpy::{IntoPyArray, PyArray1};
use portlens_core::capture::ahead::{Progress, Source};
use portlens_core::capture::{self, Compression, Format, InterfaceInfo};
use portlens_core::frames::FrameBatch;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(
    _core,
    CaptureError,
    PyException,
    "A capture file that cannot be read (any further)."
);

/// The columns of one batch: data, offset, caplen, wirelen, ts_ns, linktype, interface, frame.
type Batch<'py> = (
    Bound<'py, PyArray1<u8>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<u16>>,
    Bound<'py, PyArray1<u16>>,
    Bound<'py, PyArray1<i64>>,
);

/// One interface: (id, linktype, snaplen, name, description, tsresol, tsoffset_s, fcs_len,
/// section); `tsresol` is the pcapng byte (pcap: 6 or 9).
pub(crate) type Interface = (
    u16,
    u16,
    u32,
    Option<String>,
    Option<String>,
    u8,
    i64,
    Option<u8>,
    u32,
);

/// An open capture file (pcap or pcapng, plain, gzip, xz or bzip2), iterated for batches.
#[pyclass(module = "portlens._core", frozen)]
pub struct CaptureReader {
    format: Format,
    compression: Option<Compression>,
    total_bytes: u64,
    source: Mutex<Source>,
}

impl CaptureReader {
    fn source(&self) -> MutexGuard<'_, Source> {
        // A panic while reading would have to poison the lock; the reader's state is still
        // consistent between calls, so carry on with it.
        self.source.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn progress<T>(&self, f: impl FnOnce(&Progress) -> T) -> T {
        f(self.source().progress())
    }
}

#[pymethods]
impl CaptureReader {
    /// Opens `path`; `name` is how messages call the file (default: the path as given).
    #[new]
    #[pyo3(signature = (path, chunk_bytes = capture::DEFAULT_CHUNK_BYTES, name = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        chunk_bytes: usize,
        name: Option<String>,
    ) -> PyResult<Self> {
        let name = name.unwrap_or_else(|| path.display().to_string());
        let reader = py.detach(|| capture::CaptureReader::open(&path, &name, chunk_bytes));
        match reader {
            Ok(r) => {
                let (format, compression, total_bytes) = (r.format, r.compression, r.total_bytes);
                Ok(CaptureReader {
                    format,
                    compression,
                    total_bytes,
                    source: Mutex::new(Source::new(r)),
                })
            }
            Err(e) => Err(CaptureError::new_err(e.0)),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Batch<'py>>> {
        let next = py.detach(|| self.source().next_batch(None));
        match next {
            None => Ok(None),
            Some(Err(e)) => Err(CaptureError::new_err(e.0)),
            Some(Ok(b)) => Ok(Some(columns(py, *b))),
        }
    }

    /// Stops reading and closes the file; iterating afterwards gives nothing.
    fn close(&self, py: Python<'_>) {
        // Another Python thread may hold the lock while it reads a chunk: wait without the GIL.
        py.detach(|| self.source().close());
    }

    /// "pcap" or "pcapng".
    #[getter]
    fn format(&self) -> &'static str {
        self.format.name()
    }

    /// "gzip", "xz", "bzip2" or None.
    #[getter]
    fn compression(&self) -> Option<&'static str> {
        self.compression.map(|c| c.name())
    }

    #[getter]
    fn frames_read(&self) -> u64 {
        self.progress(|p| p.frames_read)
    }

    /// Frames cut at the frame cap (`FRAME_CAP_BYTES`, 256 KiB) so far.
    #[getter]
    fn frames_cut(&self) -> u64 {
        self.progress(|p| p.frames_cut)
    }

    /// Bytes of the file read so far (compressed bytes for a compressed file).
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.progress(|p| p.bytes_read)
    }

    /// Size of the file (0 when it is not a regular file).
    #[getter]
    fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// How many interfaces are known so far (pcapng files may declare more as reading goes on).
    #[getter]
    fn interface_count(&self) -> usize {
        self.progress(|p| p.interfaces.len())
    }

    /// Interfaces from number `start` on, as tuples (see the `Interface` type).
    #[pyo3(signature = (start = 0))]
    fn interfaces(&self, start: usize) -> Vec<Interface> {
        self.progress(|p| {
            p.interfaces
                .get(start..)
                .unwrap_or_default()
                .iter()
                .map(interface)
                .collect()
        })
    }

    /// pcapng blocks skipped (neither section, interface nor packet): {block type: count}.
    fn skipped_blocks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (btype, count) in self.progress(|p| p.skipped_blocks.clone()) {
            d.set_item(btype, count)?;
        }
        Ok(d)
    }
}

pub(crate) fn interface(i: &InterfaceInfo) -> Interface {
    (
        i.id,
        i.linktype,
        i.snaplen,
        i.name.clone(),
        i.description.clone(),
        i.tsresol,
        i.tsoffset_s,
        i.fcs_len,
        i.section,
    )
}

fn columns(py: Python<'_>, b: FrameBatch) -> Batch<'_> {
    (
        b.data.into_pyarray(py),
        b.offset.into_pyarray(py),
        b.caplen.into_pyarray(py),
        b.wirelen.into_pyarray(py),
        b.ts_ns.into_pyarray(py),
        b.linktype.into_pyarray(py),
        b.interface.into_pyarray(py),
        b.frame.into_pyarray(py),
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CaptureReader>()?;
    m.add("CaptureError", m.py().get_type::<CaptureError>())?;
    Ok(())
}
