//! IEEE 802.11 data frames and the monitor-mode headers in front of them (radiotap, PPI,
//! Prism, AVS), as Wireshark's `wlan`, `radiotap`, `ppi`, `prism` dissectors read them.

use super::be16;

fn le16(b: &[u8], at: usize) -> Option<u16> {
    let w = b.get(at..)?.first_chunk::<2>()?;
    Some(u16::from_le_bytes(*w))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..)?.first_chunk::<4>()?;
    Some(u32::from_le_bytes(*w))
}

view!(
    /// The fixed 8 bytes of a radiotap header: version, pad, length (LE), first present word.
    Radiotap,
    8
);

/// Radiotap flags (field 1): the frame ends with a 4-byte FCS.
pub const RADIOTAP_FLAG_FCS: u8 = 0x10;
/// Radiotap flags: padding between the 802.11 header and its payload (to 4 bytes).
pub const RADIOTAP_FLAG_DATA_PAD: u8 = 0x20;

impl Radiotap<'_> {
    pub fn version(&self) -> u8 {
        self.0[0]
    }

    /// The whole radiotap header's length: the 802.11 frame starts there.
    pub fn length(&self) -> usize {
        usize::from(u16::from_le_bytes([self.0[2], self.0[3]]))
    }
}

/// The radiotap flags field of the header in `b[..len]` (0 when absent): fields follow the
/// chain of present words (bit 31: another word), TSFT (bit 0) first, 8 bytes aligned to 8,
/// then flags (bit 1), one byte.
pub fn radiotap_flags(b: &[u8], len: usize) -> u8 {
    let Some(header) = b.get(..len) else {
        return 0;
    };
    let Some(first) = le32(header, 4) else {
        return 0;
    };
    let mut pos = 4usize;
    loop {
        let Some(word) = le32(header, pos) else {
            return 0;
        };
        pos += 4;
        if word & 0x8000_0000 == 0 {
            break;
        }
    }
    if first & 0x02 == 0 {
        return 0;
    }
    if first & 0x01 != 0 {
        pos = pos.next_multiple_of(8) + 8;
    }
    header.get(pos).copied().unwrap_or(0)
}

view!(
    /// The PPI packet header: version, flags, length (LE), the link type that follows (LE).
    Ppi,
    8
);

impl Ppi<'_> {
    pub fn version(&self) -> u8 {
        self.0[0]
    }

    pub fn length(&self) -> usize {
        usize::from(u16::from_le_bytes([self.0[2], self.0[3]]))
    }

    pub fn dlt(&self) -> u32 {
        u32::from_le_bytes([self.0[4], self.0[5], self.0[6], self.0[7]])
    }
}

/// The length of a Prism or AVS monitor header at the start of `b`, if it is one. AVS starts
/// with the magic 0x8021100x (big-endian) and gives its length at offset 4 (big-endian); a
/// Prism header (message code 0x41 or 0x44, little-endian) gives its length at offset 4
/// (little-endian), 144 in practice.
pub fn monitor_header_len(b: &[u8]) -> Option<usize> {
    let magic = u32::from_be_bytes(*b.first_chunk::<4>()?);
    if magic & 0xFFFF_FFF0 == 0x8021_1000 {
        let length = u32::from_be_bytes(*b.get(4..)?.first_chunk::<4>()?);
        return usize::try_from(length).ok();
    }
    let code = le32(b, 0)?;
    if matches!(code, 0x41 | 0x44) {
        return usize::try_from(le32(b, 4)?).ok();
    }
    None
}

view!(
    /// The first 24 bytes of an 802.11 MAC header: frame control, duration, three addresses,
    /// sequence control.
    Dot11,
    24
);

impl Dot11<'_> {
    pub fn protocol_version(&self) -> u8 {
        self.0[0] & 0x03
    }

    /// Frame type: 0 management, 1 control, 2 data, 3 extension.
    pub fn frame_type(&self) -> u8 {
        (self.0[0] >> 2) & 0x03
    }

    pub fn subtype(&self) -> u8 {
        self.0[0] >> 4
    }

    /// Data subtypes with bit 2 set (null, CF-ACK/poll without data) carry no payload.
    pub fn has_no_data(&self) -> bool {
        self.subtype() & 0x04 != 0
    }

    /// QoS data subtypes (bit 3): a 2-byte QoS control field follows the addresses.
    pub fn is_qos(&self) -> bool {
        self.subtype() & 0x08 != 0
    }

    /// Both To-DS and From-DS: a fourth address (WDS / mesh).
    pub fn has_addr4(&self) -> bool {
        self.0[1] & 0x03 == 0x03
    }

    pub fn more_fragments(&self) -> bool {
        self.0[1] & 0x04 != 0
    }

    pub fn protected(&self) -> bool {
        self.0[1] & 0x40 != 0
    }

    /// The order bit: on a QoS data frame, a 4-byte HT control field follows QoS control.
    pub fn order(&self) -> bool {
        self.0[1] & 0x80 != 0
    }

    pub fn fragment_number(&self) -> u16 {
        u16::from_le_bytes([self.0[22], self.0[23]]) & 0x000F
    }

    /// The MAC header's length: 24, +6 for the fourth address, +2 QoS control, +4 HT control.
    pub fn header_len(&self) -> usize {
        let mut len = Self::LEN;
        if self.has_addr4() {
            len += 6;
        }
        if self.is_qos() {
            len += 2;
            if self.order() {
                len += 4;
            }
        }
        len
    }

    /// Where QoS control lies, relative to the header's start.
    pub fn qos_offset(&self) -> usize {
        if self.has_addr4() {
            30
        } else {
            24
        }
    }
}

/// QoS control's first byte: bit 7 says the body is an A-MSDU (a series of subframes).
pub const QOS_AMSDU_PRESENT: u8 = 0x80;

/// An A-MSDU subframe header: destination (6), source (6), length of the MSDU (2, BE).
pub const AMSDU_SUBFRAME_LEN: usize = 14;

/// The frame check sequence radiotap's flags (0x10) say ends the frame.
pub const FCS_LEN: usize = 4;

/// The MSDU length of the A-MSDU subframe at `pos`, if its header was captured.
pub fn amsdu_msdu_len(b: &[u8], pos: usize) -> Option<usize> {
    let header = super::chunk::<AMSDU_SUBFRAME_LEN>(b, pos)?;
    Some(usize::from(be16(header, 12)))
}

/// A NFLOG message's TLV at `pos`: (length, type) in the capturing host's byte order, read
/// little-endian as Wireshark does by default on the hosts that write them.
pub fn nflog_tlv(b: &[u8], pos: usize) -> Option<(usize, u16)> {
    Some((
        usize::from(le16(b, pos)?),
        le16(b, pos.checked_add(2)?)? & 0x7FFF,
    ))
}

/// NFLOG's TLV type that holds the logged packet (NFULA_PAYLOAD).
pub const NFULA_PAYLOAD: u16 = 9;
/// NFLOG's header: family, version, resource id.
pub const NFLOG_HEADER_LEN: usize = 4;
/// Solaris ipnet's header length and its IPv6 family (the Solaris AF_INET6).
pub const IPNET_HEADER_LEN: usize = 24;
pub const IPNET_AF_INET6: u8 = 26;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radiotap_flags_after_tsft() {
        // present: TSFT | flags | (no extension); TSFT aligned at 8, flags at 16
        let mut h = vec![0, 0, 18, 0, 0x03, 0, 0, 0];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&[RADIOTAP_FLAG_FCS, 0]);
        assert_eq!(Radiotap::at(&h, 0).unwrap().length(), 18);
        assert_eq!(radiotap_flags(&h, 18), RADIOTAP_FLAG_FCS);
        // an extended present word moves the fields by 4
        let h2 = [
            0,
            0,
            13,
            0,
            0x02,
            0,
            0,
            0x80,
            0,
            0,
            0,
            0,
            RADIOTAP_FLAG_DATA_PAD,
        ];
        assert_eq!(radiotap_flags(&h2, 13), RADIOTAP_FLAG_DATA_PAD);
        assert_eq!(radiotap_flags(&h2, 12), 0);
    }

    #[test]
    fn dot11_header_lengths() {
        let mut h = [0u8; 24];
        h[0] = 0x88; // QoS data
        h[1] = 0x03; // to and from DS
        let d = Dot11::at(&h, 0).unwrap();
        assert_eq!((d.frame_type(), d.is_qos(), d.header_len()), (2, true, 32));
        h[1] = 0x81;
        assert_eq!(Dot11::at(&h, 0).unwrap().header_len(), 30);
        h[0] = 0x48; // null function
        assert!(Dot11::at(&h, 0).unwrap().has_no_data());
    }

    #[test]
    fn monitor_headers() {
        assert_eq!(
            monitor_header_len(&[0x80, 0x21, 0x10, 0x01, 0, 0, 0, 64]),
            Some(64)
        );
        assert_eq!(
            monitor_header_len(&[0x44, 0, 0, 0, 144, 0, 0, 0]),
            Some(144)
        );
        assert_eq!(monitor_header_len(&[1, 2, 3, 4, 5, 6, 7, 8]), None);
    }
}
