//! The open connections as they stand, for live views (`sniff`, `-i` on every report): the
//! same columns as ended connections, read without ending or changing anything.

use super::columns::{ConnBatch, EndAt, END_CAPTURE};
use super::tcp::Cause;
use super::{Entry, SynOnly, Timers, Tracker, UidMaker, NIL};

impl Tracker {
    /// Up to `limit` open connections, the most recently active first (the Python tracker's
    /// `open_connections`), with the end reason they would have if the capture ended now.
    pub fn open_connections(&self, limit: Option<usize>) -> ConnBatch {
        let mut out = ConnBatch::default();
        let end = EndAt {
            frame: self.last_frame,
            phase: END_CAPTURE,
        };
        let mut slot = self.lru_tail;
        while slot != NIL && limit.is_none_or(|n| out.len() < n) {
            let Some(Some(entry)) = self.slots.get(slot as usize) else {
                break;
            };
            match entry {
                Entry::Tcp(conn) => out.push_tcp(conn, Cause::End),
                Entry::Flow(flow) => out.push_flow(flow, Cause::End),
                // The compact form is expanded on a copy, with timers nobody runs.
                Entry::Syn(syn) => {
                    let conn = SynOnly::clone(syn).expand(
                        &self.config,
                        &mut Timers::default(),
                        &mut UidMaker::default(),
                        slot,
                        false,
                    );
                    out.push_tcp(&conn, Cause::End);
                }
            }
            out.push_end(end);
            slot = self.lru[slot as usize].0;
        }
        out
    }
}
