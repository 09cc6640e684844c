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
