//! TCP (RFC 9293), UDP (RFC 768) and ICMP / ICMPv6 (RFC 792, RFC 4443) headers.

use super::{be16, be32};

view!(
    /// The fixed 20 bytes of a TCP header (options follow up to the data offset).
    Tcp,
    20
);

impl Tcp<'_> {
    pub fn src_port(&self) -> u16 {
        be16(self.0, 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.0, 2)
    }

    pub fn seq(&self) -> u32 {
        be32(self.0, 4)
    }

    pub fn ack(&self) -> u32 {
        be32(self.0, 8)
    }

    /// The data offset in bytes (the field counts 4-byte words).
    pub fn header_len(&self) -> usize {
        usize::from(self.0[12] >> 4) * 4
    }

    /// The 12 flag bits as tshark's `tcp.flags`: FIN 0x1 ... CWR 0x80, AE 0x100, reserved.
    pub fn flags(&self) -> u16 {
        be16(self.0, 12) & 0x0FFF
    }

    pub fn window(&self) -> u16 {
        be16(self.0, 14)
    }

    pub fn urgent(&self) -> u16 {
        be16(self.0, 18)
    }
}

/// TCP option kinds (IANA "TCP Parameters").
pub mod tcpopt {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WSCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMP: u8 = 8;
}

view!(
    /// The UDP header.
    Udp,
    8
);

impl Udp<'_> {
    pub fn src_port(&self) -> u16 {
        be16(self.0, 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.0, 2)
    }

    /// The length field: header and data.
    pub fn length(&self) -> u16 {
        be16(self.0, 4)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.0, 6)
    }
}

view!(
    /// The first 8 bytes of an ICMP or ICMPv6 message: type, code, checksum, and the
    /// identifier / sequence of echo messages (unused by errors).
    Icmp,
    8
);

impl Icmp<'_> {
    pub fn kind(&self) -> u8 {
        self.0[0]
    }

    pub fn code(&self) -> u8 {
        self.0[1]
    }

    /// The echo request / reply identifier.
    pub fn ident(&self) -> u16 {
        be16(self.0, 4)
    }
}

/// ICMP (v4) types of echo messages and of errors that quote the offending datagram.
pub fn icmp4_is_echo(kind: u8) -> bool {
    matches!(kind, 0 | 8)
}

pub fn icmp4_is_error(kind: u8) -> bool {
    matches!(kind, 3 | 4 | 5 | 11 | 12)
}

/// ICMPv6 types of echo messages and of errors.
pub fn icmp6_is_echo(kind: u8) -> bool {
    matches!(kind, 128 | 129)
}

pub fn icmp6_is_error(kind: u8) -> bool {
    matches!(kind, 1..=4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_fields() {
        let h = [
            0x01, 0xBB, 0xC0, 0x00, 0, 0, 0, 1, 0, 0, 0, 2, 0x81, 0x12, 0xFF, 0xFF, 0, 0, 0, 9,
        ];
        let t = Tcp::at(&h, 0).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (443, 0xC000));
        assert_eq!((t.seq(), t.ack()), (1, 2));
        assert_eq!(t.header_len(), 32);
        assert_eq!(t.flags(), 0x112);
        assert_eq!((t.window(), t.urgent()), (0xFFFF, 9));
    }

    #[test]
    fn udp_and_icmp_fields() {
        let u = Udp::at(&[0, 53, 0x12, 0x34, 0, 8, 0xAB, 0xCD], 0).unwrap();
        assert_eq!(
            (u.src_port(), u.dst_port(), u.length(), u.checksum()),
            (53, 0x1234, 8, 0xABCD)
        );
        let i = Icmp::at(&[8, 0, 0, 0, 0x01, 0x02, 0, 1], 0).unwrap();
        assert_eq!((i.kind(), i.code(), i.ident()), (8, 0, 0x0102));
        assert!(icmp4_is_echo(8) && icmp4_is_error(11) && !icmp4_is_error(8));
        assert!(icmp6_is_echo(129) && icmp6_is_error(4) && !icmp6_is_error(5));
    }
}
