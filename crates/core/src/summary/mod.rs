//! Mergeable summaries of decoded packets, counted in one pass over the columns.
//!
//! [`CaptureCounts`] is what `portlens packets --stats` prints (`CaptureStats` in
//! portlens.analysis.capture_stats): frames, bytes, time span, link types, protocols, what is
//! not IP, tunnels, fragments, checksums and malformed reasons. The counts are keyed by the
//! raw column values; Python names them (link type names, protocol names, reason labels), so
//! the names live in one place.

mod capture;

pub use capture::{
    CaptureCounts, FileCounts, Tally, NOT_IP_ETHERTYPE, NOT_IP_LINKTYPE, NOT_IP_PPP,
};
