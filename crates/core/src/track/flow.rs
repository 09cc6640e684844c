//! UDP and ICMP flows (track/flows.py): connectionless, so a flow is a tuple seen within an
//! inactivity timeout. Bytes are the UDP length field - 8 (ICMP: IP payload - 8); history is
//! D/d (UDP) and C/c for bad checksums; conn_state from which sides were active.

use super::history::Scaled;
use super::tcp::Cause;
use super::{Common, TimerCtx, TimerKind};

#[derive(Debug)]
pub struct Flow {
    pub c: Common,
    pub bytes: [u64; 2],
    pub active: [bool; 2],
    pub csum: [Scaled; 2],
    pub dns: bool,
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
            icmp_code: -1,
        }
    }

    pub fn flip(&mut self) {
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
        if counted {
            self.c.pkts[h] += 1;
            self.c.ip_bytes[h] += u64::from(ip_len);
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
