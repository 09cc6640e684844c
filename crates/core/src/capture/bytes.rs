//! Bounds-checked reads of fixed-width fields in either byte order.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Little,
    Big,
}

impl Order {
    fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
        buf.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    pub fn u16(self, buf: &[u8], at: usize) -> Option<u16> {
        let a = Self::array(buf, at)?;
        Some(match self {
            Order::Little => u16::from_le_bytes(a),
            Order::Big => u16::from_be_bytes(a),
        })
    }

    pub fn u32(self, buf: &[u8], at: usize) -> Option<u32> {
        let a = Self::array(buf, at)?;
        Some(match self {
            Order::Little => u32::from_le_bytes(a),
            Order::Big => u32::from_be_bytes(a),
        })
    }

    pub fn i64(self, buf: &[u8], at: usize) -> Option<i64> {
        let a = Self::array(buf, at)?;
        Some(match self {
            Order::Little => i64::from_le_bytes(a),
            Order::Big => i64::from_be_bytes(a),
        })
    }
}

/// `at + len` as an index, `None` past the address space (never on real buffers).
pub fn end_of(at: usize, len: u32) -> Option<usize> {
    at.checked_add(usize::try_from(len).ok()?)
}

/// Bytes as Python's `bytes.hex(' ')` writes them: "3c 68 74 6d".
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
