//! Header views over captured bytes, in the manner of smoltcp's `wire` and dpkt's field tables.
//!
//! Each view wraps a fixed-size array reference (`&[u8; LEN]`) obtained with
//! [`slice::first_chunk`], so a view exists only when its whole fixed header was captured and
//! every accessor is a constant-offset read the compiler checks: no accessor can panic. The
//! variable parts (options, extension headers, tunnel headers' tails) are the decoder's business:
//! it measures them with checked arithmetic before it makes the next view.

/// A view type over a fixed-size header: `$name::at(bytes, pos)` and `$name::LEN`.
macro_rules! view {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name<'a>(&'a [u8; $len]);

        impl<'a> $name<'a> {
            pub const LEN: usize = $len;

            /// The header at `pos`, if all of its fixed part was captured.
            pub fn at(bytes: &'a [u8], pos: usize) -> Option<Self> {
                $crate::wire::chunk::<$len>(bytes, pos).map(Self)
            }
        }

        impl<'a> $crate::wire::Header<'a> for $name<'a> {
            const LEN: usize = $len;

            fn at(bytes: &'a [u8], pos: usize) -> Option<Self> {
                Self::at(bytes, pos)
            }
        }
    };
}

pub mod checksum;
pub mod ethernet;
pub mod ip;
pub mod transport;
pub mod tunnel;
pub mod wlan;

/// LINKTYPE_* numbers (tcpdump.org/linktypes.html) the decoder reads.
pub mod linktype {
    pub const NULL: u16 = 0;
    pub const ETHERNET: u16 = 1;
    pub const PPP: u16 = 9;
    /// FDDI: frame control, destination and source MAC, then 802.2 LLC.
    pub const FDDI: u16 = 10;
    /// DLT_RAW as most systems number it in pcap files.
    pub const RAW_12: u16 = 12;
    /// DLT_RAW as OpenBSD numbers it.
    pub const RAW_14: u16 = 14;
    pub const PPP_SERIAL: u16 = 50;
    pub const RAW: u16 = 101;
    pub const LOOP: u16 = 108;
    pub const LINUX_SLL: u16 = 113;
    pub const IPV4: u16 = 228;
    pub const IPV6: u16 = 229;
    pub const LINUX_SLL2: u16 = 276;
    /// PPPoE session frames with no link header (LINKTYPE_PPP_ETHER).
    pub const PPP_ETHER: u16 = 51;
    /// Cisco HDLC: address, control, then an ethertype.
    pub const C_HDLC: u16 = 104;
    /// IEEE 802.11 frames without a radio header.
    pub const IEEE802_11: u16 = 105;
    /// 802.11 behind a Prism monitor-mode header (or an AVS one, which tshark also accepts).
    pub const PRISM: u16 = 119;
    /// 802.11 behind a radiotap header.
    pub const RADIOTAP: u16 = 127;
    /// 802.11 behind an AVS monitor-mode header.
    pub const AVS: u16 = 163;
    /// Per-Packet Information header, then the link type it names.
    pub const PPI: u16 = 192;
    /// Solaris ipnet: a 24-byte header naming the address family.
    pub const IPNET: u16 = 226;
    /// Linux netfilter log messages: a header and TLVs, one of which holds the packet.
    pub const NFLOG: u16 = 239;
    /// RFC 1483 LLC/SNAP-encapsulated ATM: an 802.2 LLC header first.
    pub const ATM_RFC1483: u16 = 11;
    /// OpenBSD enc(4): address family, SPI, flags (12 bytes), then IP.
    pub const ENC: u16 = 109;
    /// OpenBSD pflog: a header whose first byte is its length (padded to 4), then IP.
    pub const PFLOG: u16 = 117;
    /// Apple PKTAP: a header giving its length and the link type of the frame after it.
    pub const PKTAP: u16 = 258;
}

/// Ethertypes (and the PPP protocols that play their part after PPP framing).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86DD;
    pub const VLAN_8021Q: u16 = 0x8100;
    pub const VLAN_8021AD: u16 = 0x88A8;
    pub const VLAN_9100: u16 = 0x9100;
    pub const VLAN_9200: u16 = 0x9200;
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// Transparent Ethernet bridging: GRE's and Geneve's protocol for an Ethernet frame inside.
    pub const TEB: u16 = 0x6558;
    pub const PPP: u16 = 0x880B;
    pub const PPP_IPV4: u16 = 0x0021;
    pub const PPP_IPV6: u16 = 0x0057;
    /// IEEE 802.1ah provider backbone bridging (MAC-in-MAC): an I-TAG, then a customer frame.
    pub const PBB: u16 = 0x88E7;
    /// Cisco VN-Tag (802.1Qbh): a 4-byte tag, then the next ethertype.
    pub const VN_TAG: u16 = 0x8926;
    /// Cisco FabricPath (Wireshark's ETHERTYPE_DCE): a 16-byte outer header, then a frame.
    pub const FABRICPATH: u16 = 0x8903;
    /// GRE protocol of ERSPAN types I and II.
    pub const ERSPAN_1_2: u16 = 0x88BE;
    /// GRE protocol of ERSPAN type III.
    pub const ERSPAN_3: u16 = 0x22EB;

    /// The tag protocol identifiers of 802.1Q, 802.1ad and the pre-standard QinQ values.
    pub fn is_vlan(value: u16) -> bool {
        matches!(value, VLAN_8021Q | VLAN_8021AD | VLAN_9100 | VLAN_9200)
    }

    pub fn is_mpls(value: u16) -> bool {
        matches!(value, MPLS_UNICAST | MPLS_MULTICAST)
    }
}

/// IP protocol numbers (IANA).
pub mod ipproto {
    pub const HOPOPTS: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NONE: u8 = 59;
    pub const DSTOPTS: u8 = 60;

    /// The IPv6 extension headers the decoder walks (RFC 8200 §4).
    pub fn is_ipv6_extension(value: u8) -> bool {
        matches!(value, HOPOPTS | ROUTING | FRAGMENT | AH | DSTOPTS)
    }
}

/// A header view: made only when its fixed part lies inside the bytes.
pub trait Header<'a>: Sized {
    /// The length of the fixed part.
    const LEN: usize;
    /// The header at `pos`, if `bytes` holds all of its fixed part.
    fn at(bytes: &'a [u8], pos: usize) -> Option<Self>;
}

/// The fixed header of type `N` at `pos`, if all of it lies inside `bytes`.
pub fn chunk<const N: usize>(bytes: &[u8], pos: usize) -> Option<&[u8; N]> {
    bytes.get(pos..)?.first_chunk::<N>()
}

pub(crate) fn be16<const N: usize>(b: &[u8; N], at: usize) -> u16 {
    match b.get(at..).and_then(<[u8]>::first_chunk::<2>) {
        Some(w) => u16::from_be_bytes(*w),
        None => 0,
    }
}

pub(crate) fn be32<const N: usize>(b: &[u8; N], at: usize) -> u32 {
    match b.get(at..).and_then(<[u8]>::first_chunk::<4>) {
        Some(w) => u32::from_be_bytes(*w),
        None => 0,
    }
}

/// The 16-byte column form of an IPv4 address: the IPv4-mapped IPv6 address `::ffff:a.b.c.d`.
pub fn v4_mapped(addr: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[10] = 0xFF;
    out[11] = 0xFF;
    let [a, b, c, d] = addr;
    out[12] = a;
    out[13] = b;
    out[14] = c;
    out[15] = d;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_is_none_past_the_end() {
        let b = [1u8, 2, 3, 4];
        assert_eq!(chunk::<4>(&b, 0), Some(&[1, 2, 3, 4]));
        assert_eq!(chunk::<2>(&b, 2), Some(&[3, 4]));
        assert_eq!(chunk::<2>(&b, 3), None);
        assert_eq!(chunk::<1>(&b, usize::MAX), None);
    }

    #[test]
    fn v4_mapped_form() {
        let m = v4_mapped([10, 0, 0, 1]);
        assert_eq!(&m[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]);
        assert_eq!(&m[12..], &[10, 0, 0, 1]);
    }
}
