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
//! later: no two shards wait for each other. A shard waits for a carrier once, and then again
//! only when the carrier may have become another connection (`Foreign`): waiting for every
//! row made two shards walk in step, slower than one.
//!
//! A carrier created in the batch is named by its shard's stand-in uid (`provisional_uid`,
//! which holds the shard's number) until `Shards::rename` gives every shard's the run's uid.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread;

use super::ids::Uid;
use super::shards::{shard_of, Names};
use super::{is_provisional, FlowHasher, Key, DNS_PORTS};

/// A carrier of a packet, as what it carries names it (`Tracker::carriers`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Made {
    /// Its encapsulation: (kind: 1 UDP carrier, 2 IP tunnel, uid).
    Known(u8, Uid),
    /// A UDP carrier another shard tracks: the cell where it puts its uid, the shard, and
    /// where `Foreign` keeps its key and time at that row till then. Small: a row's carriers
    /// are copied in every tunnelled packet.
    Cell { cell: u32, owner: u16, pending: u32 },
}

/// The other shards' UDP carriers a shard has named, by key: the uid and the Zeek time of
/// its last packet the shard saw, so that it waits for a carrier's cell only when the carrier
/// may have become another connection since.
///
/// A UDP carrier ends only when idle for its inactivity timeout (Flow::timer), or evicted by
/// the flow cap: while the clock is less than that past its last packet, it is the same
/// connection, with the same uid. Every shard walks every tunnelled row's carriers, so it
/// sees each of a carrier's packets; a packet of its 5-tuple outside a tunnel, or as what a
/// tunnel carries, is another shard's row, and forgets the carrier (`forget`), so that the
/// next row waits. A carrier on a DNS port may also end by Zeek's DNS session timer: it is
/// never taken as the same. At the flow cap, a carrier evicted by its own shard can be named
/// by its old uid (the cap makes no promise of one tracker's rows, docs/scale.md).
#[derive(Debug)]
pub(crate) struct Foreign {
    known: HashMap<Key, (Uid, i64), FlowHasher>,
    /// The batch's carriers named by a cell (`Made::Cell`): key and Zeek time.
    pending: Vec<(Key, i64)>,
    /// The ports of the known carriers, a bit each: a packet on none of them is none of
    /// theirs, without hashing its key.
    ports: Box<[u64; 1024]>,
}

impl Default for Foreign {
    fn default() -> Self {
        Foreign {
            known: HashMap::default(),
            pending: Vec::new(),
            ports: Box::new([0; 1024]),
        }
    }
}

impl Foreign {
    /// How a shard names another shard's carrier `key` (its `cell` and `owner`) at a row whose
    /// clock is `now` and Zeek time `zts`: by the uid it knows while the carrier is still the
    /// connection it was, else by its cell (the carrier forgotten till `learn`).
    pub(crate) fn name(
        &mut self,
        key: Key,
        (cell, owner): (u32, u16),
        (now, zts): (i64, i64),
        inactivity: i64,
    ) -> Made {
        if let Some((uid, last)) = self.known.get_mut(&key) {
            if inactivity == 0 || now.saturating_sub(*last) < inactivity {
                *last = zts; // what the carrier's shard keeps as its last packet's time
                return Made::Known(1, *uid);
            }
            self.known.remove(&key);
        }
        self.pending.push((key, zts));
        let pending = u32::try_from(self.pending.len() - 1).unwrap_or(u32::MAX);
        Made::Cell {
            cell,
            owner,
            pending,
        }
    }

    /// The uid `pending`'s carrier has in its cell.
    pub(crate) fn learn(&mut self, pending: u32, uid: Uid) {
        let Some(&(key, zts)) = self.pending.get(pending as usize) else {
            return;
        };
        if DNS_PORTS.contains(&key.pa) || DNS_PORTS.contains(&key.pb) {
            return; // it may end by the DNS session timer too
        }
        for port in [key.pa, key.pb] {
            self.ports[usize::from(port / 64)] |= 1 << (port % 64);
        }
        self.known.insert(key, (uid, zts));
    }

    /// Whether any carrier is known (a capture without tunnels has none).
    pub(crate) fn any(&self) -> bool {
        !self.known.is_empty()
    }

    /// A packet of `key` that is not one of its carriers' rows.
    pub(crate) fn forget(&mut self, key: &Key) {
        let known = |port: u16| self.ports[usize::from(port / 64)] & (1 << (port % 64)) != 0;
        if known(key.pa) || known(key.pb) {
            self.known.remove(key);
        }
    }

    /// After a batch: the run's uids for the stand-ins of carriers created in it, and the
    /// carriers idle past their timeout left out.
    pub(crate) fn rename(&mut self, names: &Names, now: i64, inactivity: i64) {
        self.pending.clear();
        if self.known.is_empty() {
            return;
        }
        self.known.retain(|_, (uid, last)| {
            if let Some(n) = names.get(uid) {
                *uid = *n;
            }
            !is_provisional(uid) && (inactivity == 0 || now.saturating_sub(*last) < inactivity)
        });
        if self.known.is_empty() {
            self.ports.fill(0);
        }
    }
}

/// What the threads of one batch share: a cell for each carrier of each tunnelled row.
#[derive(Debug, Default)]
pub(crate) struct Carriers {
    /// Per row: the index of its first carrier's cell (rows without tunnel have none).
    first: Vec<u32>,
    /// Per shard, the cells it fills: shards filling cells of neighbouring rows in one
    /// array wrote to the same cache lines at every row.
    cells: Vec<Vec<OnceLock<Uid>>>,
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
        self.cells.resize_with(shards, Vec::new);
        for cells in &mut self.cells {
            cells.clear();
        }
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
        for cells in &mut self.cells {
            cells.resize_with(next as usize, OnceLock::new);
        }
    }

    /// Whether a row of the batch is tunnelled: its shards may then wait for each other.
    pub(crate) fn crossing(&self) -> bool {
        !self.first.is_empty()
    }

    /// The shard that tracks the connections of a host pair.
    pub(crate) fn owner(&self, src: &[u8; 16], dst: &[u8; 16]) -> u16 {
        u16::try_from(shard_of(src, dst, self.shards)).unwrap_or(u16::MAX)
    }

    /// The cell of row `i`'s carrier at `level` (outermost 0).
    pub(crate) fn cell(&self, i: usize, level: usize) -> u32 {
        self.first[i] + level as u32
    }

    /// A carrier's uid, put by the shard that tracks it (`me`).
    pub(crate) fn put(&self, me: u16, cell: u32, uid: Uid) {
        // Filled once: each carrier of a row has one shard.
        let _ = self.cells[usize::from(me)][cell as usize].set(uid);
    }

    /// The uid that `owner` puts in `cell`, once it is there.
    pub(crate) fn wait(&self, cell: u32, owner: u16) -> Uid {
        let cell = &self.cells[usize::from(owner)][cell as usize];
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
