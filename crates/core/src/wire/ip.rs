//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers and the IPv6 extension headers.

use super::{be16, be32, ipproto};

view!(
    /// The fixed 20 bytes of an IPv4 header (options follow up to IHL * 4).
    Ipv4,
    20
);

impl Ipv4<'_> {
    pub fn version(&self) -> u8 {
        self.0[0] >> 4
    }

    /// IHL * 4: the header length with options, in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.0[0] & 0x0F) * 4
    }

    pub fn total_len(&self) -> u16 {
        be16(self.0, 2)
    }

    pub fn ident(&self) -> u16 {
        be16(self.0, 4)
    }

    /// MF: more fragments follow.
    pub fn more_fragments(&self) -> bool {
        self.0[6] & 0x20 != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u32 {
        u32::from(be16(self.0, 6) & 0x1FFF) * 8
    }

    pub fn ttl(&self) -> u8 {
        self.0[8]
    }

    pub fn protocol(&self) -> u8 {
        self.0[9]
    }

    pub fn src(&self) -> [u8; 4] {
        [self.0[12], self.0[13], self.0[14], self.0[15]]
    }

    pub fn dst(&self) -> [u8; 4] {
        [self.0[16], self.0[17], self.0[18], self.0[19]]
    }
}

view!(
    /// The fixed 40-byte IPv6 header.
    Ipv6,
    40
);

impl Ipv6<'_> {
    pub fn version(&self) -> u8 {
        self.0[0] >> 4
    }

    pub fn payload_len(&self) -> u16 {
        be16(self.0, 4)
    }

    pub fn next_header(&self) -> u8 {
        self.0[6]
    }

    pub fn hop_limit(&self) -> u8 {
        self.0[7]
    }

    pub fn src(&self) -> [u8; 16] {
        addr16(self.0, 8)
    }

    pub fn dst(&self) -> [u8; 16] {
        addr16(self.0, 24)
    }
}

fn addr16<const N: usize>(b: &[u8; N], at: usize) -> [u8; 16] {
    match b.get(at..).and_then(<[u8]>::first_chunk::<16>) {
        Some(a) => *a,
        None => [0; 16],
    }
}

view!(
    /// The first 8 bytes of an IPv6 extension header: next header, length, and (by type) the
    /// fragment header's fields or the routing header's type and segments left.
    Ipv6Ext,
    8
);

impl Ipv6Ext<'_> {
    pub fn next_header(&self) -> u8 {
        self.0[0]
    }

    /// The header's whole length in bytes, by its type: AH counts 4-byte units less 2
    /// (RFC 4302), the fragment header is 8, the others count 8-byte units less 1.
    pub fn header_len(&self, kind: u8) -> usize {
        match kind {
            ipproto::FRAGMENT => 8,
            ipproto::AH => (usize::from(self.0[1]) + 2) * 4,
            _ => (usize::from(self.0[1]) + 1) * 8,
        }
    }

    /// Fragment header: the offset of this fragment's data in bytes (13 bits of 8-byte units).
    pub fn frag_offset(&self) -> u32 {
        u32::from(be16(self.0, 2) & 0xFFF8)
    }

    /// Fragment header: M, more fragments follow.
    pub fn more_fragments(&self) -> bool {
        self.0[3] & 0x01 != 0
    }

    /// Fragment header: the identification.
    pub fn frag_ident(&self) -> u32 {
        be32(self.0, 4)
    }

    /// Routing header: the routing type.
    pub fn routing_type(&self) -> u8 {
        self.0[2]
    }

    /// Routing header: segments left.
    pub fn segments_left(&self) -> u8 {
        self.0[3]
    }
}

/// The 16-byte address at `pos` of `bytes`, if captured.
pub fn addr_at(bytes: &[u8], pos: usize) -> Option<[u8; 16]> {
    super::chunk::<16>(bytes, pos).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: [u8; 20] = [
        0x46, 0, 0, 60, 0x12, 0x34, 0x20, 0x01, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    #[test]
    fn ipv4_fields() {
        let h = Ipv4::at(&V4, 0).unwrap();
        assert_eq!(h.version(), 4);
        assert_eq!(h.header_len(), 24);
        assert_eq!(h.total_len(), 60);
        assert_eq!(h.ident(), 0x1234);
        assert!(h.more_fragments());
        assert_eq!(h.frag_offset(), 8);
        assert_eq!((h.ttl(), h.protocol()), (64, 6));
        assert_eq!((h.src(), h.dst()), ([10, 0, 0, 1], [10, 0, 0, 2]));
        assert!(Ipv4::at(&V4[..19], 0).is_none());
    }

    #[test]
    fn ipv6_extension_lengths() {
        let e = Ipv6Ext::at(&[6, 2, 0x01, 0x09, 0, 0, 0, 7], 0).unwrap();
        assert_eq!(e.header_len(ipproto::HOPOPTS), 24);
        assert_eq!(e.header_len(ipproto::AH), 16);
        assert_eq!(e.header_len(ipproto::FRAGMENT), 8);
        assert_eq!(e.frag_offset(), 0x0108);
        assert!(e.more_fragments());
        assert_eq!(e.frag_ident(), 7);
    }
}
