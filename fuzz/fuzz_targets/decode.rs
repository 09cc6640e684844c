//! The decoder on arbitrary bytes: frames of any link type, cut, with any wire length, over
//! two batches with one reassembler (small caps, so that eviction paths run too).
//!
//! Input: a link-type selector, a flags byte, then frames. Flags: bit 0 checksums; bit 1 the
//! rest is several frames, each prefixed by a 2-byte length; bit 2 wire lengths above the
//! captured ones, bit 3 below; bits 4-7 seconds between frames (fragment timeouts).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portlens_core::decode::{DecodeOptions, Decoder, FragmentLimits, SUB_FRAME};
use portlens_core::frames::FrameBatch;

const LINKTYPES: [u16; 27] = [
    1, 113, 276, 0, 108, 12, 14, 101, 228, 229, 9, 50, 147, 10, 105, 127, 192, 119, 163, 239, 226,
    104, 51, 11, 109, 117, 258,
];

fuzz_target!(|data: &[u8]| {
    let Some((&[select, flags], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let linktype = LINKTYPES[usize::from(select) % LINKTYPES.len()];
    let mut frames: Vec<&[u8]> = Vec::new();
    if flags & 0x02 != 0 {
        let mut rest = rest;
        while let Some((len, tail)) = rest.split_first_chunk::<2>() {
            let n = usize::from(u16::from_be_bytes(*len)).min(tail.len());
            let (frame, after) = tail.split_at(n);
            frames.push(frame);
            rest = after;
        }
    } else {
        frames.push(rest);
    }
    let mut batch = FrameBatch::default();
    for (i, frame) in frames.iter().enumerate() {
        let caplen = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let wirelen = match flags & 0x0C {
            0x04 => caplen.saturating_add(u32::from(select)),
            0x08 => caplen / 2,
            _ => caplen,
        };
        batch
            .offset
            .push(i64::try_from(batch.data.len()).unwrap_or(i64::MAX));
        batch.data.extend_from_slice(frame);
        batch.caplen.push(caplen);
        batch.wirelen.push(wirelen);
        let step = i64::from(flags >> 4) * 1_000_000_000;
        batch.ts_ns.push(step * i64::try_from(i).unwrap_or(0));
        batch.linktype.push(if i % 3 == 2 { 1 } else { linktype });
        batch.interface.push(0);
        batch.frame.push(i64::try_from(i).unwrap_or(0) + 1);
    }
    let limits = FragmentLimits {
        timeout_ns: 5_000_000_000,
        max_datagrams: 4,
        max_bytes: 2048,
    };
    let mut decoder = Decoder::new(limits);
    let options = DecodeOptions {
        checksums: flags & 0x01 != 0,
    };
    // Two batches over the same frames: the second sees the first's fragment state.
    for _ in 0..2 {
        let cols = decoder.decode(batch.as_ref(), options);
        // one row of its own per frame, in order, each followed by any more it gives
        let own: Vec<i64> = (cols.sub.iter().zip(&cols.frame))
            .filter(|(sub, _)| **sub == SUB_FRAME)
            .map(|(_, frame)| *frame)
            .collect();
        assert_eq!(own, batch.frame);
        assert_eq!(cols.sub.first().copied().unwrap_or(SUB_FRAME), SUB_FRAME);
        assert_eq!(cols.src.len(), 16 * cols.len());
        assert_eq!(cols.opt_kinds.len(), 40 * cols.len());
        assert!(decoder.reassembler.len() <= limits.max_datagrams);
    }
});
