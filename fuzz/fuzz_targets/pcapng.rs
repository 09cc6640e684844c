//! The pcapng reader on arbitrary bytes: no panic, no hang, memory bounded by the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::read_capture(data, &[0x0a, 0x0d, 0x0d, 0x0a]);
});
