//! Link-layer headers: Ethernet II, 802.1Q/802.1ad tags, MPLS labels, Linux cooked capture
//! (SLL, SLL2), PPPoE sessions.

use super::be16;

view!(
    /// Ethernet II: destination (6), source (6), ethertype (2).
    Ethernet,
    14
);

impl Ethernet<'_> {
    pub fn ethertype(&self) -> u16 {
        be16(self.0, 12)
    }
}

view!(
    /// FDDI (LINKTYPE_FDDI): frame control (1), destination (6), source (6); 802.2 LLC follows.
    Fddi,
    13
);

impl Fddi<'_> {
    pub fn frame_control(&self) -> u8 {
        self.0[0]
    }
}

view!(
    /// 802.2 LLC with SNAP: DSAP AA, SSAP AA, control 03, OUI (3), ethertype (2).
    LlcSnap,
    8
);

impl LlcSnap<'_> {
    pub fn ethertype(&self) -> u16 {
        be16(self.0, 6)
    }
}

/// Whether the 802.2 LLC header at `pos` is SNAP (AA AA 03): the only one with an ethertype.
pub fn is_llc_snap(bytes: &[u8], pos: usize) -> bool {
    bytes
        .get(pos..)
        .is_some_and(|rest| rest.starts_with(&[0xAA, 0xAA, 0x03]))
}

view!(
    /// An 802.1Q / 802.1ad tag after its TPID: TCI (2), then the next ethertype (2).
    VlanTag,
    4
);

impl VlanTag<'_> {
    /// The VLAN identifier: the TCI's low 12 bits.
    pub fn vid(&self) -> u16 {
        be16(self.0, 0) & 0x0FFF
    }

    pub fn ethertype(&self) -> u16 {
        be16(self.0, 2)
    }
}

view!(
    /// An MPLS label stack entry (RFC 3032): label (20 bits), TC (3), S (1), TTL (8).
    MplsLabel,
    4
);

impl MplsLabel<'_> {
    pub fn bottom_of_stack(&self) -> bool {
        self.0[2] & 0x01 != 0
    }
}

view!(
    /// Linux cooked capture v1 (LINKTYPE_LINUX_SLL): the protocol is at offset 14.
    Sll,
    16
);

impl Sll<'_> {
    pub fn protocol(&self) -> u16 {
        be16(self.0, 14)
    }
}

view!(
    /// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2): the protocol comes first.
    Sll2,
    20
);

impl Sll2<'_> {
    pub fn protocol(&self) -> u16 {
        be16(self.0, 0)
    }
}

view!(
    /// PPPoE session header (RFC 2516): version/type, code, session id, length; the PPP
    /// protocol follows it.
    Pppoe,
    6
);

impl Pppoe<'_> {
    pub fn session_id(&self) -> u16 {
        be16(self.0, 2)
    }
}

view!(
    /// The BSD loopback header (LINKTYPE_NULL / LINKTYPE_LOOP): a 4-byte address family.
    Null,
    4
);

impl Null<'_> {
    /// The address family in the writer's byte order (NULL): read little-endian, and if the
    /// value cannot be a family (> 0xffff) read it big-endian.
    pub fn family_any_order(&self) -> u32 {
        let little = u32::from_le_bytes(*self.0);
        if little <= 0xFFFF {
            little
        } else {
            u32::from_be_bytes(*self.0)
        }
    }

    /// The address family in network byte order (LOOP).
    pub fn family_big_endian(&self) -> u32 {
        u32::from_be_bytes(*self.0)
    }
}

/// BSD address families that mean IPv6 (Linux 10, the BSDs 24, 28, 30: a capture file may come
/// from any of them).
pub fn is_af_inet6(family: u32) -> bool {
    matches!(family, 10 | 24 | 28 | 30)
}

pub const AF_INET: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_and_tags() {
        let frame = [
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0x20, 0x07, 0x08, 0x00,
        ];
        let eth = Ethernet::at(&frame, 0).unwrap();
        assert_eq!(eth.ethertype(), 0x8100);
        let tag = VlanTag::at(&frame, 14).unwrap();
        assert_eq!(tag.vid(), 7);
        assert_eq!(tag.ethertype(), 0x0800);
        assert!(VlanTag::at(&frame, 15).is_none());
        assert!(Ethernet::at(&frame[..13], 0).is_none());
    }

    #[test]
    fn null_family_in_either_order() {
        assert_eq!(Null::at(&[2, 0, 0, 0], 0).unwrap().family_any_order(), 2);
        assert_eq!(Null::at(&[0, 0, 0, 24], 0).unwrap().family_any_order(), 24);
        assert_eq!(Null::at(&[0, 0, 0, 2], 0).unwrap().family_big_endian(), 2);
    }

    #[test]
    fn mpls_bottom_of_stack() {
        assert!(MplsLabel::at(&[0, 0, 0x01, 64], 0)
            .unwrap()
            .bottom_of_stack());
        assert!(!MplsLabel::at(&[0, 0, 0x00, 64], 0)
            .unwrap()
            .bottom_of_stack());
    }
}
