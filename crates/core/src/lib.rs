//! The portlens engine: everything on the per-packet path, with no Python in it.
//!
//! Layers only look down: `capture` turns files into [`frames::FrameBatch`]es (`ring`, the
//! blocks of a live capture's TPACKET_V3 ring), `decode` turns
//! frames into packet columns, `summary` counts them, `track` follows connections. `scan` and
//! `decoded` wire the first ones for one whole file: read, decode and count it (`packets
//! --stats`), or read and decode it ahead of the tracker. The `portlens-py` crate binds them to
//! Python; the pure-Python reference implementation (`portlens.reference`) is the oracle every
//! column is tested against.

pub mod addr_codes;
pub mod analysis;
pub mod capture;
pub mod conn_csv;
pub mod conn_json;
pub mod conn_log;
pub mod decode;
pub mod decoded;
pub mod event_text;
pub mod frames;
pub mod hand;
pub mod human;
pub mod packet_text;
pub mod ring;
pub mod scan;
pub mod summary;
pub mod table;
#[cfg(test)]
mod testing;
pub mod text;
pub mod track;
pub mod uid_serials;
pub mod wire;
