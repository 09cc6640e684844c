//! The uids of tunnel carriers, handed from shard to shard while `Shards`' threads track one
//! batch.
//!
//! Every connection is tracked by the shard of its own host pair: a UDP tunnel's carrier
//! (VXLAN, Geneve, Teredo...) by its outer pair, what it carries by the inner one. The same
//! inner flow may so come through tunnels of different outer pairs and stay one connection,
//! as it is to Zeek. What crosses shards is a carrier's uid: its packet's inner flow, and a
//! carrier inside it, name it in their tunnel parents and compare it with the last packet's
//! (Zeek's encapsulation changes, 'X'). The carrier's shard puts the uid it has at that row in
//! the row's cell; a shard that needs it waits for it there. Every shard tracks the rows in
//! order and a row's carriers outermost first, and waits only for a cell of an earlier row or
//! of an outer carrier of the same row, which its owner fills without waiting for anything
//! later: no two shards wait for each other.
//!
//! A carrier created in the batch is named by its shard's stand-in uid (`provisional_uid`,
//! which holds the shard's number) until `Shards::rename` gives every shard's the run's uid.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread;

use super::ids::Uid;
use super::shards::shard_of;

/// A carrier of a packet, as what it carries names it (`Tracker::carriers`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Made {
    /// Its encapsulation: (kind: 1 UDP carrier, 2 IP tunnel, uid).
    Known(u8, Uid),
    /// An IP tunnel (GRE, IP-in-IP): its uid is made from its host pair and kinds when it is
    /// needed, by any shard.
    Ip {
        src: [u8; 16],
        dst: [u8; 16],
        kinds: u32,
    },
    /// A UDP carrier another shard tracks: the cell where it puts its uid, and the shard.
    Cell(u32, u16),
}

/// What the threads of one batch share: a cell for each carrier of each tunnelled row.
#[derive(Debug, Default)]
pub(crate) struct Carriers {
    /// Per row: the index of its first carrier's cell (rows without tunnel have none).
    first: Vec<u32>,
    cells: Vec<OnceLock<Uid>>,
    /// Per shard: it has tracked the batch, or stopped (a panic), so what it has not put in
    /// its cells will never come.
    done: Vec<AtomicBool>,
    shards: usize,
}

impl Carriers {
    /// The cells of one batch of `depths` (each row's tunnel depth), for `shards` shards.
    /// Empty, and never asked, when no row is tunnelled.
    pub(crate) fn reset(&mut self, depths: &[u8], shards: usize) {
        self.shards = shards;
        self.first.clear();
        self.cells.clear();
        self.done.clear();
        self.done.resize_with(shards, AtomicBool::default);
        if depths.iter().all(|&d| d == 0) {
            return;
        }
        let mut next: u32 = 0;
        self.first.extend(depths.iter().map(|&d| {
            let at = next;
            next = next.saturating_add(u32::from(d));
            at
        }));
        self.cells.resize_with(next as usize, OnceLock::new);
    }

    /// The shard that tracks the connections of a host pair.
    pub(crate) fn owner(&self, src: &[u8; 16], dst: &[u8; 16]) -> u16 {
        u16::try_from(shard_of(src, dst, self.shards)).unwrap_or(u16::MAX)
    }

    /// The cell of row `i`'s carrier at `level` (outermost 0).
    pub(crate) fn cell(&self, i: usize, level: usize) -> u32 {
        self.first[i] + level as u32
    }

    /// A carrier's uid, put by the shard that tracks it.
    pub(crate) fn put(&self, cell: u32, uid: Uid) {
        // Filled once: each carrier of a row has one shard.
        let _ = self.cells[cell as usize].set(uid);
    }

    /// The uid that `owner` puts in `cell`, once it is there.
    pub(crate) fn wait(&self, cell: u32, owner: u16) -> Uid {
        let cell = &self.cells[cell as usize];
        let mut spins = 0u32;
        loop {
            if let Some(uid) = cell.get() {
                return *uid;
            }
            if self.done[usize::from(owner)].load(Ordering::Acquire) {
                // It may have put it just before it was done.
                if let Some(uid) = cell.get() {
                    return *uid;
                }
                panic!("flow shard {owner} stopped without a tunnel carrier's uid");
            }
            if spins < 100 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                thread::yield_now();
            }
        }
    }

    /// Marks shard `k` done with the batch when dropped: a shard that panics wakes the
    /// shards waiting for it.
    pub(crate) fn done_guard(&self, k: usize) -> DoneGuard<'_> {
        DoneGuard { carriers: self, k }
    }
}

pub(crate) struct DoneGuard<'a> {
    carriers: &'a Carriers,
    k: usize,
}

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.carriers.done.get(self.k) {
            d.store(true, Ordering::Release);
        }
    }
}

/// A shard's view of the cells while it tracks a batch (`Tracker::feed_rows`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crossing<'a> {
    pub carriers: &'a Carriers,
    /// The shard's number.
    pub me: u16,
}
