//! What the unit tests of whole files share: the project's own captures, and the link types
//! the Python side says the decoder decodes.

use std::path::PathBuf;

/// portlens.sources.linktypes.SUPPORTED.
pub const SUPPORTED: [u16; 12] = [0, 1, 9, 10, 12, 14, 101, 108, 113, 228, 229, 276];

/// A capture of the repository's captures/ folder.
pub fn capture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../captures")
        .join(name)
}
