//! UDP and ICMP flows (track/flows.py): connectionless, so a flow is a tuple seen within an
//! inactivity timeout. Bytes are the UDP length field - 8 (ICMP: IP payload - 8); history is
//! D/d (UDP) and C/c for bad checksums; conn_state from which sides were active.

use super::history::Scaled;
use super::tcp::Cause;
use super::{Common, TimerCtx, TimerKind};

/// What the decoder read in a UDP payload for Zeek's DNS and NTP analyzers (decode/app.rs):
/// a DNS header's QR bit and a standard NTP message's mode, -1 for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    pub dns_qr: i16,
    pub ntp_mode: i16,
}

impl Default for Hints {
    fn default() -> Self {
        Hints {
            dns_qr: -1,
            ntp_mode: -1,
        }
    }
}

/// A DNS message was delivered (DNS_Interpreter's first_message is over).
pub const APP_DNS_SEEN: u8 = 1;
/// Zeek's NTP analyzer is attached (the responder port is 123).
pub const APP_NTP: u8 = 2;
/// The NTP analyzer flipped on a message delivered as the originator's (its upflow); the
/// next bit up, as the responder's (its downflow).
pub const APP_NTP_FLIPPED: u8 = 4;

#[derive(Debug)]
pub struct Flow {
    pub c: Common,
    /// UDP payload bytes by host.
    pub bytes: [u64; 2],
    pub active: [bool; 2],
    pub csum: [Scaled; 2],
    /// Zeek's DNS analyzer is attached (the responder port is a DNS port).
    pub dns: bool,
    /// The DNS and NTP analyzers' state as APP_* bits, one byte so that a flow keeps its size.
    pub app: u8,
    /// ICMP: the code of the originator's first message (its type is orig's port).
    pub icmp_code: i16,
}

impl Flow {
    pub fn new(c: Common) -> Self {
        Flow {
            c,
            bytes: [0; 2],
            active: [false; 2],
            csum: [Scaled::default(); 2],
            dns: false,
            app: 0,
            icmp_code: -1,
        }
    }

    /// Connection::FlipRoles. Packet and IP-byte counts are kept by host, so ConnSize's swap
    /// is the role change itself; the UDP session adapter has no FlipRoles, so its byte
    /// counts, the sides' activity and the checksum counters stay with the role: swapped
    /// here to stay put (docs/zeek-rules.md §3.5).
    pub fn flip(&mut self) {
        self.bytes.swap(0, 1);
        self.active.swap(0, 1);
        self.csum.swap(0, 1);
        self.c.orig ^= 1;
        self.c.history.push(b'^');
        self.c.flips = self.c.flips.saturating_add(1);
    }

    /// One packet from host `h`.
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        h: usize,
        ts: i64,
        zts: i64,
        frame: i64,
        payload: i64,
        ip_len: u32,
        csum_bad: bool,
        check_csum: bool,
        counted: bool,
        hints: Hints,
    ) {
        let is_orig = h == usize::from(self.c.orig);
        let udp = self.c.proto == 17;
        if check_csum && csum_bad {
            if udp && self.csum[h].hit() {
                self.c.history.push(if is_orig { b'C' } else { b'c' });
            }
            return;
        }
        self.c.last_ts = ts;
        self.c.last_zts = zts;
        self.c.last_frame = frame;
        self.active[h] = true;
        if udp {
            let mask = if is_orig { 1 } else { 2 };
            if self.c.hist_seen & mask == 0 {
                self.c.hist_seen |= mask;
                self.c.history.push(if is_orig { b'D' } else { b'd' });
            }
        }
        self.bytes[h] = self.bytes[h].wrapping_add(payload.max(0) as u64);
        // The protocol analyzers see the packet before ConnSize, which counts it for the
        // role it was handed as: the sender's role before any flip (UDPAnalyzer::
        // DeliverPacket; track/flows.py).
        let role = usize::from(!is_orig);
        if self.dns && hints.dns_qr >= 0 {
            // DNS_Interpreter::ParseMessage: the first message, a response sent by the
            // originator, flips, unless the responder address is multicast.
            let resp = &self.c.addr[1 - usize::from(self.c.orig)];
            let first = self.app & APP_DNS_SEEN == 0;
            if first && hints.dns_qr == 1 && is_orig && !multicast(resp) {
                self.flip();
            }
            self.app |= APP_DNS_SEEN;
        }
        // proc_ntp_message (ntp-analyzer.pac): a server message from the originator or a
        // client message from the responder flips, once per direction of delivery.
        let flipped = APP_NTP_FLIPPED << role;
        if self.app & APP_NTP != 0
            && matches!(hints.ntp_mode, 3 | 4)
            && self.app & flipped == 0
            && (hints.ntp_mode == 4) == is_orig
        {
            self.flip();
            self.app |= flipped;
        }
        if counted {
            let host = if role == 0 {
                usize::from(self.c.orig)
            } else {
                1 - usize::from(self.c.orig)
            };
            self.c.pkts[host] += 1;
            self.c.ip_bytes[host] += u64::from(ip_len);
        }
    }

    /// A timer fired at `now`: the removal cause, or None after re-arming it.
    pub fn timer(&mut self, now: i64, kind: TimerKind, t: &mut TimerCtx) -> Option<Cause> {
        match kind {
            TimerKind::Inactivity => {
                if self.c.inactivity == 0 {
                    return None; // off: not re-armed
                }
                let deadline = self.c.last_zts.saturating_add(self.c.inactivity);
                if deadline <= now {
                    return Some(Cause::Idle);
                }
                t.add(&self.c, deadline, kind);
            }
            TimerKind::Dns => {
                // Zeek's DNS analyzer: idle for its session timeout less one second.
                let session = t.timeouts.dns_session_timeout;
                if now.saturating_sub(self.c.last_zts) >= session.saturating_sub(1_000_000_000) {
                    return Some(Cause::Idle);
                }
                t.add(&self.c, now.saturating_add(session), kind);
            }
            _ => {}
        }
        None
    }
}

/// IPAddr::IsMulticast of a 16-byte address: 224.0.0.0/4, or ff00::/8.
fn multicast(addr: &[u8; 16]) -> bool {
    if addr[..12] == super::V4_PREFIX {
        addr[12] >> 4 == 0xE
    } else {
        addr[0] == 0xFF
    }
}
