//! What both reader targets do: read a file through the whole `CaptureReader` (chunking,
//! carry-over, decompression, walkers) and check every batch it gives.

use std::io::Cursor;

use portlens_core::capture::CaptureReader;

/// The first input byte picks the chunk size (64 bytes to 16 KiB, so that records and blocks
/// straddle chunks), the rest is the file after `magic` replaced its first bytes (so that the
/// fuzzer spends its time in the walker the target is for).
pub fn read_capture(input: &[u8], magic: &[u8]) {
    let Some((&pick, body)) = input.split_first() else {
        return;
    };
    let chunk = 64usize << (pick % 9);
    let mut file = body.to_vec();
    if pick & 0x80 == 0 {
        for (i, b) in magic.iter().enumerate() {
            match file.get_mut(i) {
                Some(slot) => *slot = *b,
                None => file.push(*b),
            }
        }
    }
    let size = file.len() as u64;
    let Ok(reader) = CaptureReader::from_reader(Box::new(Cursor::new(file)), "fuzz", size, chunk)
    else {
        return;
    };
    let mut frames = 0u64;
    for batch in reader {
        let Ok(b) = batch else { break };
        let n = b.len();
        assert!(n > 0);
        assert!(
            b.caplen.len() == n && b.wirelen.len() == n && b.ts_ns.len() == n,
            "ragged columns"
        );
        assert!(b.linktype.len() == n && b.interface.len() == n && b.frame.len() == n);
        let frames_view = b.as_ref();
        for i in 0..n {
            assert!(
                frames_view.bytes(i).is_some(),
                "frame {i} outside its buffer"
            );
            frames += 1;
            assert_eq!(b.frame[i], frames as i64);
        }
    }
}
