//! What reports fold ended connections into, in the core: the tracker's columns go in a block
//! at a time, and only the folded figures come out. The rules are those of the Python package
//! of the same name (`portlens.analysis`), which stays their definition: tests/test_columns.py
//! holds every figure to it on every capture.

pub mod handshakes;
pub mod ports;
pub mod sockets;
