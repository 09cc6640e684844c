//! `portlens._core.Decoder`: FrameBatch columns in, PacketBatch columns out.
//!
//! The frame arrays are borrowed (no copy) and the GIL is released while the engine decodes;
//! the columns come back as NumPy arrays that own the engine's vectors (no copy either). The
//! 2-D columns (addresses, SACK edges, option kinds) are flat, `n * width` long: the Python
//! side reshapes them, a view.

use numpy::{IntoPyArray, PyReadonlyArray1};
use portlens_core::decode::{
    ColumnData, DecodeOptions, Decoder as Engine, FragmentLimits, Reassembler,
};
use portlens_core::frames::Frames;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Decodes successive batches of one source; holds the fragment reassembly state across them.
#[pyclass(module = "portlens._core", name = "Decoder")]
pub struct Decoder {
    engine: Engine,
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (*, fragment_timeout_ns = None, max_datagrams = None, max_bytes = None))]
    fn new(
        fragment_timeout_ns: Option<i64>,
        max_datagrams: Option<usize>,
        max_bytes: Option<usize>,
    ) -> Self {
        let default = FragmentLimits::default();
        let limits = FragmentLimits {
            timeout_ns: fragment_timeout_ns.unwrap_or(default.timeout_ns),
            max_datagrams: max_datagrams.unwrap_or(default.max_datagrams),
            max_bytes: max_bytes.unwrap_or(default.max_bytes),
        };
        Decoder {
            engine: Engine::new(limits),
        }
    }

    /// Decode one FrameBatch (its arrays, contiguous, of the FrameBatch dtypes) into a dict
    /// of PacketBatch columns. `checksums=False` leaves ip_csum and l4_csum at 0 (CSUM_NONE).
    /// The arrays must not be changed by another thread during the call.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (data, offset, caplen, wirelen, ts_ns, linktype, interface, frame, *, checksums))]
    fn decode<'py>(
        &mut self,
        py: Python<'py>,
        data: PyReadonlyArray1<'py, u8>,
        offset: PyReadonlyArray1<'py, i64>,
        caplen: PyReadonlyArray1<'py, u32>,
        wirelen: PyReadonlyArray1<'py, u32>,
        ts_ns: PyReadonlyArray1<'py, i64>,
        linktype: PyReadonlyArray1<'py, u16>,
        interface: PyReadonlyArray1<'py, u16>,
        frame: PyReadonlyArray1<'py, i64>,
        checksums: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let frames = Frames {
            data: data.as_slice()?,
            offset: offset.as_slice()?,
            caplen: caplen.as_slice()?,
            wirelen: wirelen.as_slice()?,
            ts_ns: ts_ns.as_slice()?,
            linktype: linktype.as_slice()?,
            interface: interface.as_slice()?,
            frame: frame.as_slice()?,
        };
        let n = frames.len();
        let lengths = [
            frames.caplen.len(),
            frames.wirelen.len(),
            frames.ts_ns.len(),
            frames.linktype.len(),
            frames.interface.len(),
            frames.frame.len(),
        ];
        if lengths.iter().any(|&len| len != n) {
            return Err(PyValueError::new_err(format!(
                "frame columns differ in length: offset {n}, caplen/wirelen/ts_ns/linktype/\
                 interface/frame {lengths:?}"
            )));
        }
        let engine = &mut self.engine;
        let columns = py.detach(|| engine.decode(frames, DecodeOptions { checksums }));
        let out = PyDict::new(py);
        for (name, _width, column) in columns.into_named() {
            out.set_item(name, column_array(py, column))?;
        }
        Ok(out)
    }

    /// What the fragment reassembler did and holds: completed, expired (timeout), evicted
    /// (datagram cap), evicted_bytes (byte cap), descended (decoded whole into a tunnel),
    /// bytes_dropped (fragment bytes let go past 16 MiB), held_datagrams, held_bytes.
    #[getter]
    fn fragment_counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        fragment_counters(py, &self.engine.reassembler)
    }
}

/// A reassembler's counters and holdings by name (`Decoder.fragment_counters`,
/// `PacketScan.fragment_counters`).
/// A decoded column as a NumPy array owning its vector.
pub(crate) fn column_array(py: Python<'_>, column: ColumnData) -> Bound<'_, PyAny> {
    match column {
        ColumnData::Bool(v) => v.into_pyarray(py).into_any(),
        ColumnData::U8(v) => v.into_pyarray(py).into_any(),
        ColumnData::U16(v) => v.into_pyarray(py).into_any(),
        ColumnData::U32(v) => v.into_pyarray(py).into_any(),
        ColumnData::I16(v) => v.into_pyarray(py).into_any(),
        ColumnData::I32(v) => v.into_pyarray(py).into_any(),
        ColumnData::I64(v) => v.into_pyarray(py).into_any(),
    }
}

pub(crate) fn fragment_counters<'py>(
    py: Python<'py>,
    r: &Reassembler,
) -> PyResult<Bound<'py, PyDict>> {
    let c = r.counters;
    let out = PyDict::new(py);
    out.set_item("completed", c.completed)?;
    out.set_item("expired", c.expired)?;
    out.set_item("evicted", c.evicted)?;
    out.set_item("evicted_bytes", c.evicted_bytes)?;
    out.set_item("descended", c.descended)?;
    out.set_item("bytes_dropped", c.bytes_dropped)?;
    out.set_item("held_datagrams", r.len())?;
    out.set_item("held_bytes", r.held_bytes())?;
    Ok(out)
}
