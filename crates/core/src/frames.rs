//! The contract between capture sources and the decoder: frames as columns over one buffer.

/// Frames as columns over one buffer, as `portlens.sources.frames.FrameBatch` in Python.
///
/// Frame `i` is `data[offset[i] .. offset[i] + caplen[i]]`. Frames are in capture order but need
/// not be adjacent in `data` (record headers may sit between them). Timestamps are integer
/// nanoseconds since the Unix epoch, converted exactly from the source's resolution.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FrameBatch {
    pub data: Vec<u8>,
    pub offset: Vec<i64>,
    pub caplen: Vec<u32>,
    pub wirelen: Vec<u32>,
    pub ts_ns: Vec<i64>,
    pub linktype: Vec<u16>,
    pub interface: Vec<u16>,
    /// 1-based frame number within its source.
    pub frame: Vec<i64>,
}

impl FrameBatch {
    pub fn len(&self) -> usize {
        self.offset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }

    /// Appends frame `i` of `src` (its bytes copied to the end of `data`); nothing when `src`
    /// has no frame `i`.
    pub fn push_frame(&mut self, src: &FrameBatch, i: usize) {
        let Some(bytes) = src.as_ref().bytes(i) else {
            return;
        };
        let offset = i64::try_from(self.data.len()).unwrap_or(i64::MAX);
        self.data.extend_from_slice(bytes);
        self.offset.push(offset);
        self.caplen.push(src.caplen[i]);
        self.wirelen.push(src.wirelen[i]);
        self.ts_ns.push(src.ts_ns[i]);
        self.linktype.push(src.linktype[i]);
        self.interface.push(src.interface[i]);
        self.frame.push(src.frame[i]);
    }

    /// Frames `range` of this batch, their bytes copied into a buffer of their own.
    pub fn clone_frames(&self, range: std::ops::Range<usize>) -> FrameBatch {
        let mut out = FrameBatch::default();
        for i in range {
            out.push_frame(self, i);
        }
        out
    }

    /// Borrowed view of the whole batch, the form the decoder reads.
    pub fn as_ref(&self) -> Frames<'_> {
        Frames {
            data: &self.data,
            offset: &self.offset,
            caplen: &self.caplen,
            wirelen: &self.wirelen,
            ts_ns: &self.ts_ns,
            linktype: &self.linktype,
            interface: &self.interface,
            frame: &self.frame,
        }
    }
}

/// A borrowed FrameBatch: what the decoder takes, so that frames held by Python (numpy arrays
/// of a live capture) are decoded without a copy.
#[derive(Debug, Clone, Copy)]
pub struct Frames<'a> {
    pub data: &'a [u8],
    pub offset: &'a [i64],
    pub caplen: &'a [u32],
    pub wirelen: &'a [u32],
    pub ts_ns: &'a [i64],
    pub linktype: &'a [u16],
    pub interface: &'a [u16],
    pub frame: &'a [i64],
}

impl<'a> Frames<'a> {
    pub fn len(&self) -> usize {
        self.offset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offset.is_empty()
    }

    /// Frames `range` of the batch (over the same `data`), clipped to the batch.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Frames<'a> {
        fn cut<'b, T>(column: &'b [T], r: &std::ops::Range<usize>) -> &'b [T] {
            let end = r.end.min(column.len());
            column.get(r.start.min(end)..end).unwrap_or_default()
        }
        Frames {
            data: self.data,
            offset: cut(self.offset, &range),
            caplen: cut(self.caplen, &range),
            wirelen: cut(self.wirelen, &range),
            ts_ns: cut(self.ts_ns, &range),
            linktype: cut(self.linktype, &range),
            interface: cut(self.interface, &range),
            frame: cut(self.frame, &range),
        }
    }

    /// The captured bytes of frame `i`, or `None` when its offset and length do not lie inside
    /// `data` (a caller handing inconsistent columns must not make the decoder read past it).
    pub fn bytes(&self, i: usize) -> Option<&'a [u8]> {
        let start = usize::try_from(*self.offset.get(i)?).ok()?;
        let len = usize::try_from(*self.caplen.get(i)?).ok()?;
        self.data.get(start..start.checked_add(len)?)
    }
}
