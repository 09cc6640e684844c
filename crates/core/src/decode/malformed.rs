//! Why a frame could not be decoded to the end (portlens.decode.malformed): counted, never
//! raised. A frame cut by snaplen is not malformed, only `truncated`.

pub const NONE: u8 = 0;
pub const LINK_HEADER_SHORT: u8 = 1;
pub const VLAN_TAG_SHORT: u8 = 2;
pub const MPLS_LABEL_SHORT: u8 = 3;
pub const MPLS_PAYLOAD_UNKNOWN: u8 = 4;
pub const PPPOE_HEADER_SHORT: u8 = 5;
pub const PPP_HEADER_SHORT: u8 = 6;
pub const IPV4_HEADER_SHORT: u8 = 7;
pub const IPV4_VERSION_MISMATCH: u8 = 8;
pub const IPV4_IHL_INVALID: u8 = 9;
pub const IPV4_TOTAL_LENGTH_INVALID: u8 = 10;
pub const IPV6_HEADER_SHORT: u8 = 11;
pub const IPV6_VERSION_MISMATCH: u8 = 12;
pub const IPV6_EXT_HEADER_INVALID: u8 = 13;
pub const IPV6_PAYLOAD_LENGTH_INVALID: u8 = 14;
pub const TCP_HEADER_SHORT: u8 = 15;
pub const TCP_OFFSET_INVALID: u8 = 16;
pub const TCP_OPTION_INVALID: u8 = 17;
pub const UDP_HEADER_SHORT: u8 = 18;
pub const UDP_LENGTH_INVALID: u8 = 19;
pub const ICMP_HEADER_SHORT: u8 = 20;
pub const GRE_HEADER_INVALID: u8 = 21;
pub const TUNNEL_HEADER_INVALID: u8 = 22;
pub const TUNNEL_TOO_DEEP: u8 = 23;
pub const FRAGMENT_INVALID: u8 = 24;
