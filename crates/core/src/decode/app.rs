//! The two facts of a UDP payload that decide a Zeek role flip (docs/zeek-rules.md §3.4),
//! read as Zeek's DNS and NTP analyzers would (src/portlens/decode/app.py is the reference).
//! Whether a flip happens is the tracker's business: it knows the ports and the direction.

/// Where Zeek's DNS analyzer is attached (base/protocols/dns): a DNS header is read only on a
/// datagram with one of these as either port (the roles are the tracker's).
pub const DNS_PORTS: [u16; 4] = [53, 137, 5353, 5355];
/// Where Zeek's NTP analyzer is attached (base/protocols/ntp).
pub const NTP_PORT: u16 = 123;
/// RFC 1035 4.1.1; Zeek's DNS_RawMsgHdr: a shorter payload is no DNS message.
pub const DNS_HEADER: usize = 12;
/// RFC 5905 7.3: a standard message's header, up to the transmit timestamp.
pub const NTP_HEADER: usize = 48;
/// ntp-protocol.pac Extension_Field: the fixed part before the value.
const NTP_EXTENSION_FIXED: usize = 18;

/// The QR bit of a DNS header (1: a response), -1 if the payload is shorter than one.
pub fn dns_qr(payload: &[u8]) -> i16 {
    match payload.get(2) {
        Some(&flags) if payload.len() >= DNS_HEADER => i16::from(flags >> 7),
        _ => -1,
    }
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    let w = b.get(at..)?.first_chunk::<2>()?;
    Some(usize::from(u16::from_be_bytes(*w)))
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    let w = b.get(at..)?.first_chunk::<4>()?;
    usize::try_from(u32::from_be_bytes(*w)).ok()
}

/// The mode of a standard NTP message (1-5) that Zeek's NTP analyzer parses whole, -1
/// otherwise: after the 48-byte header, extension fields are read while more than 24 bytes
/// remain, each padded to its own length field; what then remains is a MAC or ignored.
pub fn ntp_mode(payload: &[u8]) -> i16 {
    let n = payload.len();
    if n < NTP_HEADER {
        return -1;
    }
    let mode = payload[0] & 7;
    if !(1..=5).contains(&mode) {
        return -1;
    }
    let mut pos = NTP_HEADER;
    if n - pos > 24 {
        loop {
            let field = || -> Option<usize> {
                if n - pos < NTP_EXTENSION_FIXED {
                    return None;
                }
                let length = be16(payload, pos + 2)?;
                let value_len = be32(payload, pos + 14)?;
                let sig_at = pos
                    .checked_add(NTP_EXTENSION_FIXED)?
                    .checked_add(value_len)?;
                let sig_len = be32(payload, sig_at)?;
                let end = sig_at.checked_add(4)?.checked_add(sig_len)?;
                let padded = pos.checked_add(length)?;
                (end <= n && padded <= n).then_some(end.max(padded))
            };
            match field() {
                Some(next) => pos = next,
                None => return -1,
            }
            if n - pos <= 24 {
                break;
            }
        }
    }
    i16::from(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_header_and_ntp_messages() {
        assert_eq!(dns_qr(&[0; 11]), -1);
        assert_eq!(dns_qr(&[0, 0, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]), 1);
        let mut ntp = [0u8; 48];
        ntp[0] = 0x24;
        assert_eq!(ntp_mode(&ntp), 4);
        assert_eq!(ntp_mode(&ntp[..47]), -1);
        // A 20-byte MAC after the header parses; 25 bytes whose value length runs past the
        // end are no extension field.
        assert_eq!(ntp_mode(&[&ntp[..], &[0; 20]].concat()), 4);
        let mut long = [0u8; 25];
        long[17] = 100;
        assert_eq!(ntp_mode(&[&ntp[..], &long[..]].concat()), -1);
        // One extension field of 28 bytes (no value, no signature, padded), then nothing.
        let mut ext = [0u8; 28];
        ext[3] = 28;
        assert_eq!(ntp_mode(&[&ntp[..], &ext[..]].concat()), 4);
        ntp[0] = 0x26; // mode 6: a control message, another record
        assert_eq!(ntp_mode(&ntp), -1);
    }
}
