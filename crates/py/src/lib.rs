//! `portlens._core`: the Rust engine as a Python module.
//!
//! Batches go in and columns come out as NumPy arrays that own the Rust vectors (no copy); the
//! GIL is released while the engine works, and no Python object is made per packet.

mod addr;
mod capture;
mod conn_json;
mod conn_log;
mod decode;
mod decoded;
mod event_text;
mod handshakes;
mod packet_text;
mod ports;
mod ring;
mod scan;
mod sockets;
mod table;
mod track;
mod uid_serials;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(addr::addr_texts, m)?)?;
    m.add_function(wrap_pyfunction!(addr::addr_codes, m)?)?;
    capture::register(m)?;
    m.add_function(wrap_pyfunction!(conn_json::conn_csv_lines, m)?)?;
    m.add_function(wrap_pyfunction!(conn_json::conn_json_lines, m)?)?;
    m.add_function(wrap_pyfunction!(conn_log::conn_log_lines, m)?)?;
    m.add_function(wrap_pyfunction!(event_text::event_lines, m)?)?;
    m.add_function(wrap_pyfunction!(event_text::event_records, m)?)?;
    m.add_class::<decode::Decoder>()?;
    m.add_class::<decoded::DecodedFile>()?;
    m.add_class::<packet_text::PacketNames>()?;
    m.add_function(wrap_pyfunction!(packet_text::packet_lines, m)?)?;
    m.add_function(wrap_pyfunction!(packet_text::packet_records, m)?)?;
    m.add_class::<handshakes::HandshakeFold>()?;
    m.add_class::<ports::PortFold>()?;
    m.add_function(wrap_pyfunction!(ports::port_outcomes, m)?)?;
    ring::register(m)?;
    m.add_class::<scan::PacketScan>()?;
    m.add_class::<sockets::SocketFold>()?;
    m.add_function(wrap_pyfunction!(table::table_lines, m)?)?;
    m.add_function(wrap_pyfunction!(uid_serials::uid_offsets, m)?)?;
    track::register(m)?;
    Ok(())
}
