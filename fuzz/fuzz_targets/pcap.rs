//! The classic pcap reader (and, with the top bit of the first byte set, format recognition
//! and the decompressors) on arbitrary bytes: no panic, no hang, memory bounded by the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    // Little-endian µs magic; the fuzzer reaches the other variants by the flag byte.
    common::read_capture(data, &[0xd4, 0xc3, 0xb2, 0xa1]);
});
