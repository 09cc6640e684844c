//! The tracking of one file in the core alone: what `conns`, `ports`, `handshakes` and
//! `sockets` run on one capture (`DecodedFile` ahead, the tracker on the caller's thread),
//! without the interpreter, the ended connections' columns for Python, or any output.
//!
//! ```sh
//! cargo run --release -p portlens-core --example track_bench -- FILE [THREADS [CHUNK_BYTES]]
//! ```
//!
//! THREADS: flow shards (`--workers`), default 1; CHUNK_BYTES: the pipeline's 1 MiB by default.
//! It prints packets, connections and seconds; `/usr/bin/time` gives CPU seconds beside it.

use std::path::PathBuf;
use std::time::Instant;

use portlens_core::decode::DecodeOptions;
use portlens_core::decoded::DecodedFile;
use portlens_core::track::shards::Shards;
use portlens_core::track::{Config, Packets};

/// portlens.sources.linktypes.SUPPORTED.
const SUPPORTED: [u16; 12] = [0, 1, 9, 10, 12, 14, 101, 108, 113, 228, 229, 276];

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: track_bench FILE [THREADS [CHUNK]]")?,
    );
    let number = |a: Option<String>, default: usize| -> Result<usize, String> {
        a.map_or(Ok(default), |s| s.parse().map_err(|e| format!("{s}: {e}")))
    };
    let threads = number(args.next(), 1)?;
    let chunk = number(args.next(), 1 << 20)?;
    let config = Config {
        keep_transitions: false, // as `conns --format zeek`, `ports`, `handshakes`, `sockets`
        ..Config::default()
    };
    let mut shards = Shards::new(config, threads);
    let started = Instant::now();
    let options = DecodeOptions { checksums: false };
    let mut file = DecodedFile::open(&path, "FILE", chunk, options, &SUPPORTED).map_err(|e| e.0)?;
    let (mut packets, mut conns) = (0, 0);
    while let Some(batch) = file.next_batch() {
        let batch = batch.map_err(|e| e.0)?;
        packets += batch.columns.len();
        shards.feed(&Packets::of(&batch.columns)).map_err(|e| e.0)?;
        conns += shards.take_ended().len();
        file.give_back(batch);
    }
    shards.finish();
    conns += shards.take_ended().len();
    println!(
        "{packets} packets, {conns} connections, {threads} thread(s): {:.3} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
