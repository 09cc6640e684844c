//! `portlens._core.RingWalker`: the frames of TPACKET_V3 ring blocks, for the live capture.
//!
//! The blocks come as NumPy views of the mapped ring, one per block user space owns (never a
//! view of the whole ring: the kernel writes the other blocks meanwhile); they are read in
//! place, with the GIL released. The frames go into the caller's buffer when it is large
//! enough (the capture reuses its batch buffers, so that no fresh page is faulted in per
//! batch), else into a new one that comes back with the columns.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadwriteArray1};
use portlens_core::ring::{self, RingOptions};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

create_exception!(
    _core,
    RingError,
    PyException,
    "A TPACKET_V3 block or packet the kernel cannot have written."
);

/// (data or None when written into `out`, bytes used, offset, caplen, wirelen, ts_ns,
/// outgoing loopback copies dropped).
type RingFrames<'py> = (
    Option<Bound<'py, PyArray1<u8>>>,
    usize,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<i64>>,
    u64,
);

/// The ring walk of one live capture: keeps the packet list from one call to the next.
#[pyclass(module = "portlens._core", name = "RingWalker")]
#[derive(Default)]
pub struct RingWalker {
    scratch: ring::Scratch,
}

#[pymethods]
impl RingWalker {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// The frames of `blocks` (whole ring blocks, in ring order), back to back in `out` when
    /// it holds them, else in a new buffer. Raises `RingError` with a one-line message for a
    /// block or packet that cannot be.
    #[pyo3(signature = (blocks, snaplen, cooked, lo_ifindex, out = None))]
    fn frames<'py>(
        &mut self,
        py: Python<'py>,
        blocks: Vec<PyReadonlyArray1<'py, u8>>,
        snaplen: u32,
        cooked: bool,
        lo_ifindex: Option<i32>,
        out: Option<PyReadwriteArray1<'py, u8>>,
    ) -> PyResult<RingFrames<'py>> {
        let views = blocks
            .iter()
            .map(|b| {
                b.as_slice()
                    .map_err(|_| PyValueError::new_err("ring block is not contiguous"))
            })
            .collect::<PyResult<Vec<&[u8]>>>()?;
        let opts = RingOptions {
            snaplen,
            cooked,
            lo_ifindex,
        };
        let mut out = out;
        let dest = match out.as_mut() {
            Some(o) => Some(
                o.as_slice_mut()
                    .map_err(|_| PyValueError::new_err("out is not contiguous"))?,
            ),
            None => None,
        };
        let scratch = std::mem::take(&mut self.scratch);
        let (mut plan, fresh) = py
            .detach(|| {
                let plan = ring::plan_in(&views, &opts, scratch)?;
                let written = dest.is_some_and(|d| plan.write(&views, d));
                let fresh = (!written).then(|| plan.to_vec(&views));
                Ok::<_, ring::RingError>((plan, fresh))
            })
            .map_err(|e| RingError::new_err(e.0))?;
        let used = plan.data_len;
        let duplicates = plan.duplicates;
        let offset = std::mem::take(&mut plan.offset).into_pyarray(py);
        let caplen = std::mem::take(&mut plan.caplen).into_pyarray(py);
        let wirelen = std::mem::take(&mut plan.wirelen).into_pyarray(py);
        let ts_ns = std::mem::take(&mut plan.ts_ns).into_pyarray(py);
        self.scratch = plan.into_scratch();
        Ok((
            fresh.map(|v| v.into_pyarray(py)),
            used,
            offset,
            caplen,
            wirelen,
            ts_ns,
            duplicates,
        ))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RingWalker>()?;
    m.add("RingError", m.py().get_type::<RingError>())?;
    Ok(())
}
