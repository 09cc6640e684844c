//! `portlens._core.DecodedFile`: a capture file read and decoded ahead in a thread of the core,
//! for `Tracker.feed_held` (crates/core/src/decoded.rs says why).
//!
//! Nothing of a batch crosses into Python: the tracker takes each batch's columns where the
//! core decoded them. Python reads only what it reports of the file: its format, progress,
//! counts (FileStats' names), frames not decoded and the fragment reassembler's counters.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use portlens_core::decode::{Columns, DecodeOptions};
use portlens_core::decoded::{self, DecodedBatch};
use portlens_core::track::Packets;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::capture::{interface, CaptureError, Interface};
use crate::packet_text::{lines, records, ClockState, PacketNames};
use crate::track::slice;

/// One capture file, read and decoded by a thread of the core from the moment it is opened.
#[pyclass(module = "portlens._core", name = "DecodedFile", frozen)]
pub struct DecodedFile {
    // Mutexes because a pyclass must be Sync; only the caller's thread takes them.
    inner: Mutex<decoded::DecodedFile>,
    /// The batch `hold` took, until `Tracker.feed_held` tracks it; a selection (-f,
    /// --start, --end) reads the few columns it needs from it first (`column`).
    held: Mutex<Option<Box<DecodedBatch>>>,
}

impl DecodedFile {
    fn of(file: decoded::DecodedFile) -> Self {
        DecodedFile {
            inner: Mutex::new(file),
            held: Mutex::new(None),
        }
    }

    pub(crate) fn file(&self) -> MutexGuard<'_, decoded::DecodedFile> {
        // A panic mid-batch would poison the lock; the state between batches is consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn held(&self) -> MutexGuard<'_, Option<Box<DecodedBatch>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `f` of the held batch's packets (none without a held batch) and of `rows`, the row
    /// numbers a selection keeps (None: every row): the listing's writers.
    fn with_held<R>(
        &self,
        rows: Option<&PyReadonlyArray1<'_, i64>>,
        f: impl FnOnce(&Packets<'_>, Option<&[i64]>) -> PyResult<R>,
    ) -> PyResult<R> {
        let held = self.held();
        let empty = Columns::default();
        let columns = held.as_ref().map_or(&empty, |b| &b.columns);
        let picked = rows.map(|r| slice(r, "rows")).transpose()?;
        f(&Packets::of(columns), picked)
    }

    /// The batch `hold` took, for the tracker; hand it back with `give_back`.
    pub(crate) fn take_held(&self) -> Option<Box<DecodedBatch>> {
        self.held().take()
    }

    pub(crate) fn give_back(&self, batch: Box<DecodedBatch>) {
        self.file().give_back(batch);
    }
}

/// The next batch of `file` (`None` at the end; a problem with the file as its message,
/// after every batch before it); hand it back with `give_back`. Called with the GIL
/// released.
fn next(file: &mut decoded::DecodedFile) -> Option<Result<Box<DecodedBatch>, String>> {
    file.next_batch().map(|r| r.map_err(|e| e.0))
}

#[pymethods]
impl DecodedFile {
    /// Opens `path` as `CaptureReader` does (`name`: how messages call it) and starts reading
    /// and decoding it; `supported`: the link types the decoder decodes.
    #[new]
    #[pyo3(signature = (path, chunk_bytes, name = None, *, checksums, supported))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        chunk_bytes: usize,
        name: Option<String>,
        checksums: bool,
        supported: Vec<u16>,
    ) -> PyResult<Self> {
        let name = name.unwrap_or_else(|| path.display().to_string());
        let options = DecodeOptions { checksums };
        let opened = py
            .detach(|| decoded::DecodedFile::open(&path, &name, chunk_bytes, options, &supported));
        Ok(DecodedFile::of(
            opened.map_err(|e| CaptureError::new_err(e.0))?,
        ))
    }

    /// Several files (`paths`, messages calling each as given) read as one capture, merged
    /// in time order as `portlens.sources.merge` merges them; a file that cannot be read is a
    /// problem (`take_problems`), and the others are read all the same.
    ///
    /// `count`: every row is also counted as `packets --stats` counts it (`step` reads the
    /// batches, `capture_counts` gives the counts), for `Pipeline.count_stats`.
    #[staticmethod]
    #[pyo3(signature = (paths, chunk_bytes, *, checksums, supported, count = false))]
    fn merged(
        py: Python<'_>,
        paths: Vec<PathBuf>,
        chunk_bytes: usize,
        checksums: bool,
        supported: Vec<u16>,
        count: bool,
    ) -> Self {
        let named = paths
            .into_iter()
            .map(|p| {
                let name = p.display().to_string();
                (p, name)
            })
            .collect();
        let options = DecodeOptions { checksums };
        let file = py.detach(|| {
            decoded::DecodedFile::open_many(named, chunk_bytes, options, &supported, count)
        });
        DecodedFile::of(file)
    }

    /// Takes the next batch and holds it for `column` and `Tracker.feed_held`: its number of
    /// rows, or None at the end. A problem with the file raises CaptureError, after every
    /// batch before it.
    fn hold(&self, py: Python<'_>) -> PyResult<Option<usize>> {
        if let Some(unused) = self.take_held() {
            self.give_back(unused);
        }
        let mut guard = self.file();
        let file: &mut decoded::DecodedFile = &mut guard;
        match py.detach(|| next(file)) {
            None => Ok(None),
            Some(Err(problem)) => Err(CaptureError::new_err(problem)),
            Some(Ok(batch)) => {
                let rows = batch.columns.len();
                *self.held() = Some(batch);
                Ok(Some(rows))
            }
        }
    }

    /// A column of the held batch by its PacketBatch name, copied: (width, array), width
    /// the bytes a row of a 2-D column (flat here) and 0 for the others; None without such
    /// a column or a held batch.
    fn column<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<Option<(usize, Bound<'py, PyAny>)>> {
        let held = self.held();
        let Some((width, column)) = held.as_ref().and_then(|b| b.columns.named(name)) else {
            return Ok(None);
        };
        Ok(Some((width, crate::decode::column_array(py, column))))
    }

    /// The distinct seconds of the held batch's times, ascending: the seconds whose text
    /// `held_lines` is given (report/packets.py `lines`); empty without a held batch.
    fn held_seconds<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let held = self.held();
        let mut seconds: Vec<i64> = held.as_ref().map_or_else(Vec::new, |b| {
            b.columns
                .ts_ns
                .iter()
                .map(|t| t.div_euclid(1_000_000_000))
                .collect()
        });
        seconds.sort_unstable();
        seconds.dedup();
        seconds.into_pyarray(py)
    }

    /// `packet_lines` of the held batch, where the core decoded it (nothing of it is made a
    /// NumPy array), or of its `rows` (a selection's row numbers, int64); an empty text
    /// without a held batch.
    #[pyo3(signature = (names, style, seconds, second_texts, first_ns, previous_ns, rows=None))]
    #[allow(clippy::too_many_arguments)] // as packet_lines
    fn held_lines(
        &self,
        py: Python<'_>,
        names: &PacketNames,
        style: &str,
        seconds: PyReadonlyArray1<'_, i64>,
        second_texts: Vec<String>,
        first_ns: Option<i64>,
        previous_ns: Option<i64>,
        rows: Option<PyReadonlyArray1<'_, i64>>,
    ) -> PyResult<(String, Option<i64>, Option<i64>)> {
        let clock = ClockState {
            style,
            seconds: slice(&seconds, "seconds")?,
            second_texts: &second_texts,
            first_ns,
            previous_ns,
        };
        self.with_held(rows.as_ref(), |packets, picked| {
            lines(py, packets, picked, names, clock)
        })
    }

    /// `packet_records` of the held batch or of its `rows` (as `held_lines`).
    #[pyo3(signature = (names, rows=None))]
    fn held_records(
        &self,
        py: Python<'_>,
        names: &PacketNames,
        rows: Option<PyReadonlyArray1<'_, i64>>,
    ) -> PyResult<String> {
        self.with_held(rows.as_ref(), |packets, picked| {
            records(py, packets, picked, names)
        })
    }

    /// Takes the next batch, counts it (`merged(count=True)`) and hands it back: False at
    /// the end.
    fn step(&self, py: Python<'_>) -> PyResult<bool> {
        let mut guard = self.file();
        let file: &mut decoded::DecodedFile = &mut guard;
        let step = py.detach(|| {
            next(file).map(|b| {
                b.map(|batch| {
                    file.count(&batch);
                    file.give_back(batch);
                })
            })
        });
        match step {
            None => Ok(false),
            Some(Ok(())) => Ok(true),
            Some(Err(problem)) => Err(CaptureError::new_err(problem)),
        }
    }

    /// Several files opened with `count`: `PacketScan.counts()` of the rows of the batches
    /// stepped through; None without `count`.
    fn capture_counts<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        match self.file().capture_counts() {
            Some(c) => crate::scan::counts_dict(py, c).map(Some),
            None => Ok(None),
        }
    }

    /// Several files: the problems met since the last call (one line each), in order.
    fn take_problems(&self) -> Vec<String> {
        self.file().take_problems()
    }

    /// Several files, once reading ended (closed, or read to its end): for each file in the
    /// order given, its FileStats fields by name; None before.
    fn reports<'py>(&self, py: Python<'py>) -> PyResult<Option<Vec<Bound<'py, PyDict>>>> {
        let file = self.file();
        let Some(reports) = file.reports() else {
            return Ok(None);
        };
        reports
            .iter()
            .map(|r| {
                let d = PyDict::new(py);
                crate::scan::file_counts_into(&d, &r.counts)?;
                d.set_item("format", r.format.map(|f| f.name()))?;
                d.set_item("compression", r.compression.map(|c| c.name()))?;
                d.set_item("linktype", r.linktype)?;
                d.set_item("frames_cut", r.frames_cut)?;
                d.set_item("error", r.error.as_deref())?;
                Ok(d)
            })
            .collect::<PyResult<Vec<_>>>()
            .map(Some)
    }

    /// Stops reading and closes the file.
    fn close(&self, py: Python<'_>) {
        let mut guard = self.file();
        let file: &mut decoded::DecodedFile = &mut guard;
        py.detach(|| file.close());
    }

    #[getter]
    fn format(&self) -> &'static str {
        self.file().format.name()
    }

    #[getter]
    fn compression(&self) -> Option<&'static str> {
        self.file().compression.map(|c| c.name())
    }

    #[getter]
    fn total_bytes(&self) -> u64 {
        self.file().total_bytes
    }

    /// Bytes of the file read as of the last batch given (compressed bytes when compressed).
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.file().progress().bytes_read
    }

    /// Frames cut at the frame cap (256 KiB) as of the last batch given.
    #[getter]
    fn frames_cut(&self) -> u64 {
        self.file().progress().frames_cut
    }

    /// Interfaces known as of the last batch given, as `CaptureReader.interfaces` gives them.
    fn interfaces(&self) -> Vec<Interface> {
        self.file()
            .progress()
            .interfaces
            .iter()
            .map(interface)
            .collect()
    }

    /// The file's counts as of the last batch given, under FileStats' names, and
    /// `not_decoded`: {link type: frames} of the link types not decoded.
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let file = self.file();
        let d = PyDict::new(py);
        crate::scan::file_counts_into(&d, file.counts())?;
        let not_decoded: &BTreeMap<u16, u64> = file.not_decoded();
        d.set_item("not_decoded", not_decoded.clone())?;
        Ok(d)
    }

    /// What the fragment reassembler did and holds, as `Decoder.fragment_counters`, once
    /// reading ended (closed, or read to its end); empty before.
    #[getter]
    fn fragment_counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        match self.file().decoder() {
            Some(d) => crate::decode::fragment_counters(py, &d.reassembler),
            None => Ok(PyDict::new(py)),
        }
    }
}
