//! Reads, decodes and counts a capture file as `portlens packets --stats` does (the core's
//! `scan::PacketScan`), outside Python: the fixed workload of the read + decode callgrind
//! figure in docs/benchmarks.md.
//!
//! ```sh
//! cargo build --release -p portlens-core --example scan_capture
//! valgrind --tool=callgrind --toggle-collect='*scan_all*' \
//!     target/release/examples/scan_capture FILE [--no-checksums] [--chunk=BYTES] [--read-ahead]
//! ```
//!
//! Only `scan_all` is counted (opening the file and printing are not). With `--read-ahead`
//! the reading runs in a second thread, as `portlens packets --stats` runs it (callgrind then
//! counts both threads' instructions only with `--separate-threads=no`, its default).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use portlens_core::capture::DEFAULT_CHUNK_BYTES;
use portlens_core::decode::DecodeOptions;
use portlens_core::scan::PacketScan;

/// portlens.sources.linktypes.SUPPORTED.
const SUPPORTED: [u16; 12] = [0, 1, 9, 10, 12, 14, 101, 108, 113, 228, 229, 276];

/// Every batch of the file read, decoded and counted; the only function callgrind counts.
#[inline(never)]
fn scan_all(scan: &mut PacketScan) -> Result<(), String> {
    while let Some(step) = scan.step() {
        step.map_err(|e| e.0)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: scan_capture FILE [--no-checksums] [--chunk=BYTES] [--read-ahead]");
        return ExitCode::from(2);
    };
    let checksums = !args.iter().any(|a| a == "--no-checksums");
    let options = DecodeOptions { checksums };
    let chunk = args
        .iter()
        .find_map(|a| a.strip_prefix("--chunk="))
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_CHUNK_BYTES);
    let opened = PacketScan::open(Path::new(path), path, chunk, options, &SUPPORTED);
    let mut scan = match opened {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    if args.iter().any(|a| a == "--read-ahead") {
        scan.read_ahead();
    }
    let result = scan_all(&mut scan);
    let seconds = start.elapsed().as_secs_f64();
    let c = &scan.counts;
    println!(
        "{} frames, {} bytes on wire, {} bad TCP/UDP/ICMP checksums, {} malformed: {seconds:.3} s",
        c.file.frames,
        c.file.wire_bytes,
        c.bad_l4_checksum,
        c.malformed.items().iter().map(|(_, n)| n).sum::<u64>()
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
