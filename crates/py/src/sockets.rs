//! `portlens._core.SocketFold`: `sockets`' listeners and connection ends folded in the core
//! (`portlens_core::analysis::sockets`) from the tracker's own rows
//! (`Tracker.ended_into_sockets`). `SocketTable` reads its listeners as `ListenerRows` and
//! its ends as `ConnectionEnds` blocks; numbers come as the bytes of int64s in the machine's
//! order, for Python's `array.array('q')`, so that no NumPy is needed for them, and the
//! sockets table interleaves a connection's two ends without a conversion.

use portlens_core::analysis::sockets::{self, SS_NAMES};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

#[pyclass(module = "portlens._core", name = "SocketFold")]
pub struct SocketFold {
    /// Folded into by the tracker's binding (`Tracker.ended_into_sockets`).
    pub(crate) inner: sockets::SocketFold,
}

/// The numbers as the bytes of an `array.array('q')`, in the machine's order.
fn int64_bytes<'py, T: Copy + Into<i64>>(py: Python<'py>, values: &[T]) -> Bound<'py, PyBytes> {
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|&v| v.into().to_ne_bytes())
        .collect();
    PyBytes::new(py, &bytes)
}

#[pymethods]
impl SocketFold {
    /// `ends` False: the listeners only (`sockets --listening`).
    #[new]
    #[pyo3(signature = (ends=true))]
    fn new(ends: bool) -> Self {
        SocketFold {
            inner: sockets::SocketFold::new(ends),
        }
    }

    fn listener_count(&self) -> usize {
        self.inner.listener_count()
    }

    /// Connections whose ends are kept.
    fn end_count(&self) -> usize {
        self.inner.end_count()
    }

    /// The listeners in the table's order: `ListenerRows`' fields, the protocols as 'tcp'
    /// or 'udp'. An address's text is one str wherever it stands.
    fn listener_rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let r = py.detach(|| self.inner.listener_rows());
        let texts: Vec<Bound<'py, PyString>> =
            r.texts.iter().map(|t| PyString::new(py, t)).collect();
        let text = |codes: &[u32]| -> Vec<Bound<'py, PyString>> {
            codes.iter().map(|&c| texts[c as usize].clone()).collect()
        };
        let (tcp, udp) = (PyString::new(py, "tcp"), PyString::new(py, "udp"));
        let proto: Vec<Bound<'py, PyString>> = r
            .tcp
            .iter()
            .map(|&t| if t { tcp.clone() } else { udp.clone() })
            .collect();
        (
            proto,
            text(&r.addr),
            r.port,
            r.conns,
            r.first_ns,
            r.last_ns,
            r.peer_start,
            text(&r.peer_addr),
            r.peer_conns,
        )
            .into_pyobject(py)
    }

    /// The ends of connections `start..stop`: `ConnectionEnds`' fields. The block's distinct
    /// addresses as text and each state's (`ss` spelling, '' for UDP), then as bytes of
    /// int64s: TCP (1 for TCP, 0 for UDP), the originator's and the responder's state codes,
    /// the originator's address code and port, the responder's address code and port; and
    /// the uids, 18 characters each, as one str.
    fn end_rows<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        stop: usize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let r = py.detach(|| self.inner.end_rows(start, stop));
        (
            r.addrs,
            SS_NAMES,
            int64_bytes(py, &r.tcp),
            int64_bytes(py, &r.orig_state),
            int64_bytes(py, &r.resp_state),
            int64_bytes(py, &r.orig_h),
            int64_bytes(py, &r.orig_p),
            int64_bytes(py, &r.resp_h),
            int64_bytes(py, &r.resp_p),
            r.uids,
        )
            .into_pyobject(py)
    }

    /// Forget the listeners (`SocketTable` made them Listeners).
    fn clear_listeners(&mut self) {
        self.inner.clear_listeners();
    }

    /// Forget the connections' ends (`SocketTable` took them as blocks).
    fn clear_ends(&mut self) {
        self.inner.clear_ends();
    }
}
