//! What the unit tests share: the project's own captures, the link types the Python side
//! says the decoder decodes, and IPv4 addresses in the 16-byte columns' form.

use std::path::PathBuf;

/// portlens.sources.linktypes.SUPPORTED.
pub const SUPPORTED: [u16; 12] = [0, 1, 9, 10, 12, 14, 101, 108, 113, 228, 229, 276];

/// A capture of the repository's captures/ folder.
pub fn capture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../captures")
        .join(name)
}

/// An IPv4 address as the 16-byte address columns hold it (IPv4-mapped, ::ffff:a.b.c.d).
pub fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[10] = 0xFF;
    out[11] = 0xFF;
    out[12..].copy_from_slice(&a);
    out
}
