//! Crafted frames through the whole decoder.
