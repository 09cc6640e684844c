//! Decoder throughput and instruction counts on a classic pcap file, outside Python.
//!
//! ```sh
//! cargo run --release -p portlens-core --example decode_bench -- FILE [--no-checksums] \
//!     [--batch FRAMES] [--rounds N]
//! valgrind --tool=callgrind --toggle-collect='*decode_all*' \
//!     target/release/examples/decode_bench FILE
//! ```
//!
//! The file is read whole and cut into batches of 65,536 frames first (`--batch`: the
//! pipeline's 2 MiB chunks hold about 3,300 of the benchmark capture's; a minimal pcap walk,
//! not the project's reader); only `decode_all` decodes, into columns reused from batch to
//! batch as the pipeline's reader thread does, so callgrind's toggle counts the decoder's
//! instructions and nothing else. It prints packets, decode seconds and packets/s, the fastest
//! of `--rounds` (1) runs: on a shared machine the fastest is the one least disturbed.

use std::time::Instant;

use portlens_core::decode::{Columns, DecodeOptions, Decoder};
use portlens_core::frames::FrameBatch;

const BATCH: usize = 65_536;

fn read_pcap(bytes: &[u8], frames: usize) -> Result<Vec<FrameBatch>, String> {
    let header = bytes
        .get(..24)
        .ok_or("not a pcap file: shorter than its header")?;
    let magic = [header[0], header[1], header[2], header[3]];
    let (little, nanos) = match magic {
        [0xD4, 0xC3, 0xB2, 0xA1] => (true, false),
        [0x4D, 0x3C, 0xB2, 0xA1] => (true, true),
        [0xA1, 0xB2, 0xC3, 0xD4] => (false, false),
        [0xA1, 0xB2, 0x3C, 0x4D] => (false, true),
        _ => return Err("not a classic pcap file (pcapng is not read here)".into()),
    };
    let u32_at = |b: &[u8], at: usize| -> u32 {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if little {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let linktype = u16::try_from(u32_at(header, 20) & 0xFFFF).unwrap_or(0);
    let mut batches = Vec::new();
    let mut batch = FrameBatch::default();
    let mut pos = 24;
    let mut number = 0i64;
    while let Some(record) = bytes.get(pos..pos + 16) {
        let caplen = u32_at(record, 8);
        let len = usize::try_from(caplen).map_err(|_| "caplen")?;
        let data = bytes
            .get(pos + 16..pos + 16 + len)
            .ok_or("file cut mid-record")?;
        let frac = i64::from(u32_at(record, 4));
        number += 1;
        batch
            .offset
            .push(i64::try_from(batch.data.len()).unwrap_or(i64::MAX));
        batch.data.extend_from_slice(data);
        batch.caplen.push(caplen);
        batch.wirelen.push(u32_at(record, 12));
        batch.ts_ns.push(
            i64::from(u32_at(record, 0)) * 1_000_000_000 + if nanos { frac } else { frac * 1000 },
        );
        batch.linktype.push(linktype);
        batch.interface.push(0);
        batch.frame.push(number);
        if batch.len() == frames {
            batches.push(std::mem::take(&mut batch));
        }
        pos += 16 + len;
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    Ok(batches)
}

/// Every batch through one decoder; the only function callgrind counts.
#[inline(never)]
fn decode_all(batches: &[FrameBatch], options: DecodeOptions) -> (usize, usize) {
    let mut decoder = Decoder::default();
    let mut cols = Columns::default();
    let (mut rows, mut tcp) = (0, 0);
    for batch in batches {
        decoder.decode_into(batch.as_ref(), options, &mut cols);
        rows += cols.len();
        tcp += cols.l4.iter().filter(|&&l4| l4 == 6).count();
    }
    (rows, tcp)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: decode_bench FILE.pcap [--no-checksums] [--batch FRAMES] [--rounds N]");
        std::process::exit(2);
    };
    let number = |name: &str, default: usize| -> usize {
        match args.iter().position(|a| a == name) {
            None => default,
            Some(i) => match args.get(i + 1).and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => n,
                _ => usage(),
            },
        }
    };
    let (frames, rounds) = (number("--batch", BATCH), number("--rounds", 1));
    let mut rest = args.iter().enumerate().filter(|&(i, a)| {
        !a.starts_with("--") && (i == 0 || !matches!(args[i - 1].as_str(), "--batch" | "--rounds"))
    });
    let Some((_, path)) = rest.next() else {
        usage()
    };
    let checksums = !args.iter().any(|a| a == "--no-checksums");
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("decode_bench: {path}: {e}");
            std::process::exit(2);
        }
    };
    let batches = match read_pcap(&bytes, frames) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("decode_bench: {path}: {e}");
            std::process::exit(2);
        }
    };
    drop(bytes);
    let mut seconds = f64::INFINITY;
    let (mut rows, mut tcp) = (0, 0);
    for _ in 0..rounds {
        let start = Instant::now();
        (rows, tcp) = decode_all(&batches, DecodeOptions { checksums });
        seconds = seconds.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{rows} packets ({tcp} TCP), checksums {}: decode {seconds:.3} s, {:.2} M packets/s",
        if checksums { "on" } else { "off" },
        rows as f64 / seconds / 1e6
    );
}
