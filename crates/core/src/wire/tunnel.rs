//! Tunnel headers (GRE, ERSPAN, Geneve, GTP-U, AYIYA) and the tunnel kinds of the `tunnel`
//! column.

use super::be16;

/// Tunnel kinds, 4 bits each in the `tunnel` column, outermost first (portlens.decode.tunnels).
pub mod kind {
    pub const GRE: u32 = 1;
    /// IPv4 in IPv4 (protocol 4).
    pub const IPIP: u32 = 2;
    /// IPv6 in IPv4 (protocol 41).
    pub const SIX_IN_FOUR: u32 = 3;
    pub const FOUR_IN_SIX: u32 = 4;
    pub const SIX_IN_SIX: u32 = 5;
    pub const VXLAN: u32 = 6;
    pub const GENEVE: u32 = 7;
    pub const TEREDO: u32 = 8;
    pub const GTPU: u32 = 9;
    /// ERSPAN type I, II or III (in GRE): a mirrored frame.
    pub const ERSPAN: u32 = 10;
    /// AYIYA (UDP): IPv4 or IPv6 inside.
    pub const AYIYA: u32 = 11;
    /// GRE in UDP (RFC 8086, UDP 4754).
    pub const GRE_UDP: u32 = 12;
    /// Aruba's GRE (protocols 0x8200-0x8370, 0x9000): an 802.11 frame inside.
    pub const ARUBA: u32 = 13;
}

/// Encapsulations crossed at most; one more is `tunnel-too-deep`.
pub const MAX_TUNNEL_DEPTH: u8 = 7;

pub const VXLAN_PORT: u16 = 4789;
pub const GENEVE_PORT: u16 = 6081;
pub const TEREDO_PORT: u16 = 3544;
pub const GTPU_PORT: u16 = 2152;
/// GTP-C's port, where Zeek's GTPv1 analyzer (gtpv1_ports) also opens G-PDUs.
pub const GTPC_PORT: u16 = 2123;
pub const AYIYA_PORT: u16 = 5072;
pub const GRE_UDP_PORT: u16 = 4754;

/// The tunnel a UDP datagram carries, by destination port (Teredo, AYIYA: either port), as
/// Zeek does; GRE in UDP by destination port, as tshark does.
pub fn udp_tunnel(src_port: u16, dst_port: u16) -> Option<u32> {
    match dst_port {
        VXLAN_PORT => Some(kind::VXLAN),
        GENEVE_PORT => Some(kind::GENEVE),
        TEREDO_PORT => Some(kind::TEREDO),
        GTPU_PORT | GTPC_PORT => Some(kind::GTPU),
        AYIYA_PORT => Some(kind::AYIYA),
        GRE_UDP_PORT => Some(kind::GRE_UDP),
        _ if src_port == TEREDO_PORT => Some(kind::TEREDO),
        _ if src_port == AYIYA_PORT => Some(kind::AYIYA),
        _ => None,
    }
}

/// Aruba's GRE protocols (Wireshark's GRE_ARUBA_* list, which Zeek's GRE analyzer also
/// accepts): 0x8200 to 0x8370 in steps of 0x10, and 0x9000.
pub fn is_aruba(protocol: u16) -> bool {
    (0x8200..=0x8370).contains(&protocol) && protocol & 0x000F == 0 || protocol == 0x9000
}

/// ERSPAN type II's header (after a GRE header with a sequence number): 8 bytes.
pub const ERSPAN2_LEN: usize = 8;
/// ERSPAN type III's header: 12 bytes, +8 when its O flag (last byte, bit 0) announces the
/// platform-specific subheader.
pub const ERSPAN3_LEN: usize = 12;
pub const ERSPAN3_PLATFORM_LEN: usize = 8;

/// ERSPAN type III's frame type, from the header's last 16 bits (P, FT, HW ID, D, Gra, O):
/// 0 is an Ethernet frame.
pub fn erspan3_frame_type(last16: u16) -> u8 {
    u8::try_from((last16 >> 10) & 0x1F).unwrap_or(0)
}

view!(
    /// The fixed 8 bytes of an AYIYA header (identity and signature follow).
    Ayiya,
    8
);

impl Ayiya<'_> {
    /// 8 + the identity (2^idlen bytes) + the signature (siglen * 4 bytes), as Zeek's AYIYA
    /// analyzer measures it.
    pub fn header_len(&self) -> usize {
        8 + (1usize << (self.0[0] >> 4)) + usize::from(self.0[1] >> 4) * 4
    }

    /// Operation code 1 (forward): only these carry a packet.
    pub fn is_forward(&self) -> bool {
        self.0[2] & 0x0F == 1
    }

    pub fn next_header(&self) -> u8 {
        self.0[3]
    }

    /// Zeek's AYIYA DetectProtocol: signature length 5 with SHA-1 (0x52) and
    /// authentication method 1 with forward (0x11), on any port.
    pub fn looks_like(&self) -> bool {
        self.0[1] == 0x52 && self.0[2] == 0x11
    }
}

/// VXLAN's header (RFC 7348) is 8 bytes; an Ethernet frame follows.
pub const VXLAN_LEN: usize = 8;

view!(
    /// The first 4 bytes of a GRE header (RFC 2784/2890; version 1 is PPTP's, RFC 2637).
    Gre,
    4
);

impl Gre<'_> {
    pub fn version(&self) -> u8 {
        self.0[1] & 0x07
    }

    /// The routing bit (RFC 1701), which portlens does not follow.
    pub fn routing_present(&self) -> bool {
        self.0[0] & 0x40 != 0
    }

    pub fn protocol(&self) -> u16 {
        be16(self.0, 2)
    }

    /// S: a sequence number is present (it tells ERSPAN type II from type I).
    pub fn sequence_present(&self) -> bool {
        self.0[0] & 0x10 != 0
    }

    /// The header length the flags announce: 4, plus 4 for each of C, K, S (version 0) or
    /// K, S, A (version 1).
    pub fn header_len(&self) -> usize {
        let (flags, second) = (self.0[0], self.0[1]);
        let present = if self.version() == 0 {
            [flags & 0x80, flags & 0x20, flags & 0x10]
        } else {
            [flags & 0x20, flags & 0x10, second & 0x80]
        };
        4 + 4 * present.iter().filter(|bit| **bit != 0).count()
    }
}

view!(
    /// The fixed 8 bytes of a Geneve header (RFC 8926); options follow.
    Geneve,
    8
);

impl Geneve<'_> {
    /// The header length with its options: 8 + opt len * 4.
    pub fn header_len(&self) -> usize {
        8 + usize::from(self.0[0] & 0x3F) * 4
    }

    pub fn protocol(&self) -> u16 {
        be16(self.0, 2)
    }
}

view!(
    /// The mandatory 8 bytes of a GTPv1-U header (3GPP TS 29.281).
    Gtpu,
    8
);

impl Gtpu<'_> {
    /// Version 1, protocol type 1 (GTP, not GTP'), message type 0xff (G-PDU): user data.
    pub fn is_g_pdu(&self) -> bool {
        let flags = self.0[0];
        flags >> 5 == 1 && flags & 0x10 != 0 && self.0[1] == 0xFF
    }

    /// E, S or PN set: the sequence number, N-PDU number and next extension type follow.
    pub fn has_optional_fields(&self) -> bool {
        self.0[0] & 0x07 != 0
    }

    /// E set: extension headers follow the optional fields.
    pub fn has_extensions(&self) -> bool {
        self.0[0] & 0x04 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_header_lengths() {
        assert_eq!(Gre::at(&[0, 0, 0x08, 0], 0).unwrap().header_len(), 4);
        assert_eq!(Gre::at(&[0xB0, 0, 0x08, 0], 0).unwrap().header_len(), 16);
        // PPTP: K and A set, version 1
        let pptp = Gre::at(&[0x20, 0x81, 0x88, 0x0B], 0).unwrap();
        assert_eq!((pptp.version(), pptp.header_len()), (1, 12));
        assert!(Gre::at(&[0x40, 0, 0, 0], 0).unwrap().routing_present());
    }

    #[test]
    fn aruba_and_ayiya() {
        assert!(is_aruba(0x8200) && is_aruba(0x8370) && is_aruba(0x9000));
        assert!(!is_aruba(0x8380) && !is_aruba(0x8201) && !is_aruba(0x88BE));
        let a = Ayiya::at(&[0x41, 0x52, 0x11, 41, 0, 0, 0, 0], 0).unwrap();
        assert_eq!((a.header_len(), a.next_header()), (8 + 16 + 20, 41));
        assert!(a.is_forward() && a.looks_like());
    }

    #[test]
    fn udp_tunnel_ports() {
        assert_eq!(udp_tunnel(5072, 9), Some(kind::AYIYA));
        assert_eq!(udp_tunnel(9, 2123), Some(kind::GTPU));
        assert_eq!(udp_tunnel(1, 4789), Some(kind::VXLAN));
        assert_eq!(udp_tunnel(3544, 53), Some(kind::TEREDO));
        assert_eq!(udp_tunnel(4789, 53), None);
    }

    #[test]
    fn geneve_and_gtpu() {
        let g = Geneve::at(&[0x02, 0, 0x65, 0x58, 0, 0, 0, 0], 0).unwrap();
        assert_eq!((g.header_len(), g.protocol()), (16, 0x6558));
        let t = Gtpu::at(&[0x34, 0xFF, 0, 0, 0, 0, 0, 1], 0).unwrap();
        assert!(t.is_g_pdu() && t.has_optional_fields() && t.has_extensions());
        assert!(!Gtpu::at(&[0x30, 0x01, 0, 0, 0, 0, 0, 1], 0)
            .unwrap()
            .is_g_pdu());
    }
}
