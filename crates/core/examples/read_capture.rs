//! Reads a capture file to the end with the Rust readers and prints what it found: the fixed
//! workload of the reader's callgrind figure (docs/benchmarks.md), and a quick check by hand.
//!
//! `cargo run --release -p portlens-core --example read_capture -- FILE [CHUNK_BYTES]`

use std::path::Path;
use std::process::ExitCode;

use portlens_core::capture::{CaptureReader, DEFAULT_CHUNK_BYTES};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: read_capture FILE [CHUNK_BYTES]");
        return ExitCode::from(2);
    };
    let chunk = match args.get(2).map(|c| c.parse::<usize>()) {
        None => DEFAULT_CHUNK_BYTES,
        Some(Ok(c)) => c,
        Some(Err(_)) => {
            eprintln!("read_capture: CHUNK_BYTES must be a number");
            return ExitCode::from(2);
        }
    };
    let mut reader = match CaptureReader::open(Path::new(path), path, chunk) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (frames, captured, error) = read_all(&mut reader);
    if let Some(e) = &error {
        eprintln!("{e}");
    }
    println!("{frames} frames, {captured} captured bytes");
    if error.is_some() {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

/// Every batch to the end (frames, captured bytes, the problem that ended reading): the only
/// function the callgrind figure counts (`--toggle-collect='*read_all*'`).
#[inline(never)]
fn read_all(reader: &mut CaptureReader) -> (u64, u64, Option<String>) {
    let (mut frames, mut captured) = (0u64, 0u64);
    for batch in reader.by_ref() {
        match batch {
            Ok(b) => {
                frames += b.len() as u64;
                captured += b.caplen.iter().map(|&c| u64::from(c)).sum::<u64>();
            }
            Err(e) => return (frames, captured, Some(e.0)),
        }
    }
    (frames, captured, None)
}
