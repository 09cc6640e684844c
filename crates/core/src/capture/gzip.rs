//! gzip members (RFC 1952) around flate2's raw inflate, framed as Python's `gzip` module does.
//!
//! flate2's own `MultiGzDecoder` reads the same files, but says "corrupt gzip stream does not
//! have a matching checksum" where Python says "CRC check failed 0x… != 0x…", refuses the zero
//! padding Python skips, and checks the trailer before handing over the member's last bytes.
//! The reference reader's messages are what users see today, so this follows `gzip._GzipReader`:
//! a member's data is delivered before its trailer is checked, zero bytes between members are
//! skipped, and the errors read as Python words them.

use std::io::{self, BufRead, ErrorKind, Read};

use flate2::{Crc, Decompress, FlushDecompress, Status};

const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

enum State {
    Header,
    Body,
    Trailer,
    Done,
}

/// Reads the concatenated gzip members of `inner` as one stream.
pub struct Gunzip<R> {
    inner: R,
    inflate: Decompress,
    crc: Crc,
    state: State,
}

fn cut_off() -> io::Error {
    let what = "Compressed file ended before the end-of-stream marker was reached";
    io::Error::new(ErrorKind::UnexpectedEof, what)
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, what)
}

/// Bytes as Python's `repr(bytes)` writes them (for "Not a gzipped file (b'PK')").
fn py_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = format!("b{quote}");
    for &b in bytes {
        match b {
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\\' => out.push_str("\\\\"),
            _ if b == quote as u8 => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

impl<R: BufRead> Gunzip<R> {
    pub fn new(inner: R) -> Self {
        Gunzip {
            inner,
            inflate: Decompress::new(false),
            crc: Crc::new(),
            state: State::Header,
        }
    }

    /// Up to `n` bytes (fewer only at the end of the input), as Python's `fp.read(n)`.
    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let got = self.inner.fill_buf()?;
            if got.is_empty() {
                break;
            }
            let k = got.len().min(n - out.len());
            out.extend_from_slice(&got[..k]);
            self.inner.consume(k);
        }
        Ok(out)
    }

    fn take_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let out = self.take(n)?;
        if out.len() < n {
            return Err(cut_off());
        }
        Ok(out)
    }

    fn skip_string(&mut self) -> io::Result<()> {
        loop {
            match self.take(1)?.first() {
                None | Some(0) => return Ok(()),
                Some(_) => {}
            }
        }
    }

    /// Reads a member header; `false` at the end of the input.
    fn header(&mut self) -> io::Result<bool> {
        let magic = self.take(2)?;
        if magic.is_empty() {
            return Ok(false);
        }
        if magic != [0x1f, 0x8b] {
            return Err(corrupt(format!("Not a gzipped file ({})", py_repr(&magic))));
        }
        let fixed = self.take_exact(8)?;
        if fixed[0] != 8 {
            return Err(corrupt("Unknown compression method".into()));
        }
        let flag = fixed[1];
        if flag & FEXTRA != 0 {
            let len = self.take_exact(2)?;
            self.take_exact(usize::from(u16::from_le_bytes([len[0], len[1]])))?;
        }
        if flag & FNAME != 0 {
            self.skip_string()?;
        }
        if flag & FCOMMENT != 0 {
            self.skip_string()?;
        }
        if flag & FHCRC != 0 {
            self.take_exact(2)?;
        }
        Ok(true)
    }

    /// Checks a member's CRC-32 and size, then skips the zero padding after it.
    fn trailer(&mut self) -> io::Result<()> {
        let t = self.take_exact(8)?;
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if crc != self.crc.sum() {
            let what = format!("CRC check failed {crc:#x} != {:#x}", self.crc.sum());
            return Err(corrupt(what));
        }
        if isize != self.crc.amount() {
            return Err(corrupt("Incorrect length of data produced".into()));
        }
        loop {
            let buf = self.inner.fill_buf()?;
            let zeros = buf.iter().take_while(|&&b| b == 0).count();
            let more = zeros == buf.len() && !buf.is_empty();
            self.inner.consume(zeros);
            if !more {
                return Ok(());
            }
        }
    }

    fn body(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            // At the end of the input the inflater may still hold output: ask for it first.
            let input = self.inner.fill_buf()?;
            let at_end = input.is_empty();
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self.inflate.decompress(input, out, FlushDecompress::None);
            let consumed = (self.inflate.total_in() - in0) as usize;
            let produced = (self.inflate.total_out() - out0) as usize;
            self.inner.consume(consumed);
            if at_end && produced == 0 {
                return Err(cut_off());
            }
            let status = status.map_err(|e| {
                let why = e.message().unwrap_or("invalid data");
                corrupt(format!("Error -3 while decompressing data: {why}"))
            })?;
            self.crc.update(&out[..produced]);
            if status == Status::StreamEnd {
                self.state = State::Trailer;
                return Ok(produced);
            }
            if produced > 0 {
                return Ok(produced);
            }
            if consumed == 0 {
                // No progress with input available and room for output.
                let why = "incomplete or truncated stream";
                return Err(corrupt(format!("Error -5 while decompressing data: {why}")));
            }
        }
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header => {
                    if !self.header()? {
                        self.state = State::Done;
                        return Ok(0);
                    }
                    self.inflate.reset(false);
                    self.crc.reset();
                    self.state = State::Body;
                }
                State::Trailer => {
                    self.trailer()?;
                    self.state = State::Header;
                }
                State::Body => {
                    let got = self.body(out)?;
                    if got > 0 {
                        return Ok(got);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_like_python() {
        assert_eq!(py_repr(b"PK"), "b'PK'");
        assert_eq!(py_repr(b"\x00\xff"), "b'\\x00\\xff'");
        assert_eq!(py_repr(b"'a"), "b\"'a\"");
        assert_eq!(py_repr(b"\n\\"), "b'\\n\\\\'");
    }
}
