//! One capture tracked by several flow shards at once, one thread each, with the rows of one
//! tracker of every flow (`--workers N`, issue 11).
//!
//! Every connection belongs to one shard: a symmetric hash of its host pair, so both
//! directions of a flow meet in one tracker. Each shard's tracker takes every row of a batch:
//! its own are tracked, the others only move its clock (`Tracker::feed_rows`), so its timers
//! fire where one tracker's would and its connections end at the same places (`EndAt`). Which
//! rows are counted, and so what the clock is after each row, is the same for every shard
//! and is worked out once a batch with the split (`SplitPlan`), by the thread that decoded
//! the batch when it can: a shard then moves its clock over the others' rows at once, and
//! looks at one only where a timer falls due (`Tracker::pass`). A
//! tunnelled packet's inner flow is its inner pair's, and each of its UDP carriers is its own
//! pair's, so one inner flow that comes through tunnels of different outer pairs is one
//! connection, as in one tracker; the carriers' uids cross shards (carriers.rs). An ICMP
//! error is the shard's of its own host pair, and the flow it quotes, which may be another's
//! (a router's error about two other hosts' flow), gets the error in its own shard.
//!
//! What one tracker numbers in capture order (serials, and the uids made from them) is put
//! right once every shard has tracked a batch: one tracker creates connections in row
//! order, so the shards' births of the batch, merged by row, are one tracker's; each shard
//! then renames what it holds of them (its open entries, the rows that ended, the
//! transitions, tunnel parents), and goes on numbering from one run's count. The rows that
//! ended come out in one tracker's order: (where they ended, serial).
//!
//! Read from a file in the core (`DecodedFile`), the second shard's rows of a batch are
//! offered to the reading thread (`feed_helped`, hand.rs), which tracks them when it would
//! only wait for room for its next batch; else the caller's thread tracks them after the
//! first shard's. The rayon threads then track only batches with tunnelled rows, whose
//! shards may wait for each other's carriers.
//!
//! The flow cap is shared out: each shard keeps `--max-flows` / n open flows at most, and
//! evicts its own least recently active (docs/tracking.md); only a run that reaches the cap
//! can differ from one tracker's, which evicts the least recently active of all.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::thread;

use super::carriers::{Carriers, Crossing};
use super::columns::{ConnBatch, TransitionBatch};
use super::ids::Uid;
use super::{
    flow_uid_of, provisional_uid, zeek_time, Birth, ColumnError, Config, Counting, Entry,
    FlowHasher, NotCounted, Packets, Passing, ShardRows, Tracker, NONE_COUNTED, SUB_CARRIER,
    SUB_FRAME,
};
use crate::hand::Hand;

/// The trackers of `n` flow shards, fed the same batches.
pub struct Shards {
    trackers: Vec<Box<Tracker>>,
    /// What stands in for the second shard's tracker while another thread tracks it
    /// (`feed_helped`): a tracker that never sees a row.
    stand_in: Option<Box<Tracker>>,
    /// Connections created so far by every shard: one tracker's serial.
    serial: u64,
    /// What a batch's split is made for, and the split of a batch that came without one.
    spec: SplitSpec,
    plan: SplitPlan,
    /// The tunnel carriers' uids of the batch being tracked, shared with a shard tracked by a
    /// helping thread.
    carriers: Arc<Carriers>,
    /// The threads of the shards after the first (which the caller's thread tracks), kept
    /// for the run: starting one a batch cost its stack and a wait for a core each time.
    pool: Option<rayon_core::ThreadPool>,
    /// Tests: how long a job offered waits to be taken before this thread takes it back, so
    /// that a helping thread surely tracks the shard.
    #[cfg(test)]
    wait_for_help: Option<std::time::Duration>,
}

impl Shards {
    /// `n` shards (at least 1); one is a plain tracker, with nothing to merge. The flow cap
    /// is shared: each shard keeps `max_flows / n` (rounded up) open flows at most, so that
    /// memory stays what the cap allows.
    pub fn new(mut config: Config, n: usize) -> Self {
        let n = n.clamp(1, usize::from(u16::MAX)); // a shard is named by a u16 (carriers.rs)
        config.max_flows = config.max_flows.div_ceil(n);
        let trackers = (0..n)
            .map(|k| {
                let mut t = Tracker::new(config.clone());
                if n > 1 {
                    t.births = Some(Vec::new());
                    t.uids.shard = u16::try_from(k).unwrap_or(u16::MAX);
                }
                Box::new(t)
            })
            .collect();
        let stand_in = (n > 1).then(|| Box::new(Tracker::new(config.clone())));
        // Without its threads (the system would not start them) the shards are tracked in
        // threads started for each batch, as scoped threads.
        let pool = (n > 1)
            .then(|| {
                rayon_core::ThreadPoolBuilder::new()
                    .num_threads(n - 1)
                    .thread_name(|k| format!("portlens shard {}", k + 1))
                    .build()
                    .ok()
            })
            .flatten();
        Shards {
            trackers,
            stand_in,
            serial: 0,
            spec: SplitSpec {
                shards: n,
                counting: Counting::of(&config),
            },
            plan: SplitPlan::default(),
            carriers: Arc::default(),
            pool,
            #[cfg(test)]
            wait_for_help: None,
        }
    }

    /// Threads started for each batch, as where the system would not start the kept ones.
    #[cfg(test)]
    pub(crate) fn start_threads_each_batch(&mut self) {
        self.pool = None;
    }

    /// A job offered waits up to `limit` for a helping thread before this one takes it back.
    #[cfg(test)]
    pub(crate) fn wait_for_help(&mut self, limit: std::time::Duration) {
        self.wait_for_help = Some(limit);
    }

    /// The one tracker of an unsharded run (process workers and Dask tasks shard outside).
    pub fn single(&mut self) -> Option<&mut Tracker> {
        match self.trackers.as_mut_slice() {
            [one] => Some(&mut **one),
            _ => None,
        }
    }

    /// Tracks one batch in every shard, each in its own thread; the connections that ended
    /// wait in `take_ended`.
    pub fn feed(&mut self, p: &Packets<'_>) -> Result<(), ColumnError> {
        self.feed_split(p, None)
    }

    /// What a batch's split must be made for (`SplitPlan::make`); `None` for one shard, which
    /// splits nothing.
    pub fn split_spec(&self) -> Option<&SplitSpec> {
        (self.trackers.len() > 1).then_some(&self.spec)
    }

    /// `feed`, with the batch's split when the reading thread made it already
    /// (`DecodedFile`): one made for another spec or batch is made again here.
    pub fn feed_split(
        &mut self,
        p: &Packets<'_>,
        made: Option<&SplitPlan>,
    ) -> Result<(), ColumnError> {
        self.feed_with(p, made, None)
    }

    /// `feed_split` of a batch shared with a thread that may track the second shard while
    /// this one tracks the first: the reading thread, offered that on `hand` when it would
    /// only wait for room (hand.rs). Whoever tracks a shard, its rows are the same. The
    /// batch's split must be made for these shards, and no row tunnelled (the shards may
    /// then wait for each other's carriers, and each needs a thread of its own); else it is
    /// tracked as `feed_split` tracks it.
    pub fn feed_helped<B: SharedBatch>(
        &mut self,
        batch: &Arc<B>,
        hand: &Hand,
    ) -> Result<(), ColumnError> {
        let shared: Arc<dyn SharedBatch> = Arc::<B>::clone(batch);
        self.feed_with(&batch.packets(), Some(batch.split()), Some((shared, hand)))
    }

    fn feed_with(
        &mut self,
        p: &Packets<'_>,
        made: Option<&SplitPlan>,
        help: Option<(Arc<dyn SharedBatch>, &Hand)>,
    ) -> Result<(), ColumnError> {
        if let Some(one) = self.single() {
            return one.feed(p);
        }
        let n = p.check()?;
        let made = made.filter(|m| m.made_for() == Some((n, &self.spec)));
        let help = help.filter(|_| made.is_some()); // the helper tracks by the batch's split
        let mut own = std::mem::take(&mut self.plan);
        let plan = match made {
            Some(plan) => plan,
            None => {
                own.make(p, &self.spec)?;
                &own
            }
        };
        let fed = self.feed_plan(p, n, plan, help);
        self.plan = own; // its allocations, for the next batch
        fed
    }

    fn feed_plan(
        &mut self,
        p: &Packets<'_>,
        n: usize,
        plan: &SplitPlan,
        help: Option<(Arc<dyn SharedBatch>, &Hand)>,
    ) -> Result<(), ColumnError> {
        Arc::get_mut(&mut self.carriers)
            .ok_or_else(|| ColumnError("a shard of the batch before is still tracked".into()))?
            .reset(&p.tunnel_depth[..n], self.trackers.len());
        let base = self.serial;
        for t in &mut self.trackers {
            t.serial = base;
            t.uids.provisional_after = Some(base);
            if let Some(b) = &mut t.births {
                b.clear();
            }
            t.reparented.clear();
        }
        let lent = match help {
            Some((batch, hand)) if !self.carriers.crossing() => {
                Some((hand, self.lend(batch, hand)))
            }
            _ => None,
        };
        #[cfg(test)]
        if let (Some((hand, _)), Some(limit)) = (&lent, self.wait_for_help) {
            let since = std::time::Instant::now();
            while hand.offered() && since.elapsed() < limit {
                thread::yield_now();
            }
        }
        let carriers = &*self.carriers;
        let track = move |k: usize, t: &mut Tracker| track_shard(t, k, p, plan, carriers);
        let (first, rest) = self.trackers.split_first_mut().expect("at least one shard");
        let mut results: Vec<Result<(), ColumnError>> = Vec::new();
        results.resize_with(rest.len() + 1, || Ok(()));
        let (mine, theirs) = results.split_first_mut().expect("at least one shard");
        // A lent shard's place holds its stand-in, which tracks nothing.
        let others = rest
            .iter_mut()
            .enumerate()
            .zip(theirs)
            .skip(usize::from(lent.is_some()));
        // Each of the others' is started in a thread before the first is tracked in this one:
        // every shard runs at once, as a shard may wait for another's tunnel carriers.
        match &self.pool {
            Some(pool) => pool.in_place_scope(|s| {
                for ((k, t), out) in others {
                    s.spawn(move |_| *out = track(k + 1, t));
                }
                *mine = track(0, first);
            }),
            None => thread::scope(|s| {
                for ((k, t), out) in others {
                    s.spawn(move || *out = track(k + 1, t));
                }
                *mine = track(0, first);
            }),
        }
        if let Some((hand, back)) = lent {
            if let Some(job) = hand.withdraw() {
                job(); // no one took it: tracked here, after the first
            }
            let (t, fed) = back
                .recv()
                .map_err(|_| ColumnError("the thread that tracked shard 1 stopped".into()))?;
            self.stand_in = Some(std::mem::replace(&mut self.trackers[1], t));
            results[1] = fed;
        }
        for r in results {
            r?;
        }
        self.rename(base);
        Ok(())
    }

    /// Offers the second shard's rows of `batch` on `hand`, its tracker lent to the job: the
    /// job gives it back, with how the rows went, by the channel returned.
    fn lend(&mut self, batch: Arc<dyn SharedBatch>, hand: &Hand) -> mpsc::Receiver<Lent> {
        let stand_in = self
            .stand_in
            .take()
            .unwrap_or_else(|| Box::new(Tracker::new(self.trackers[0].config.clone())));
        let mut t = std::mem::replace(&mut self.trackers[1], stand_in);
        let carriers = Arc::clone(&self.carriers);
        let (back, from_job) = mpsc::sync_channel(1);
        hand.offer(Box::new(move || {
            let fed = track_shard(&mut t, 1, &batch.packets(), batch.split(), &carriers);
            drop((batch, carriers)); // the caller's again once it has the shard back
            let _ = back.send((t, fed));
        }));
        from_job
    }

    /// One run's serials for the connections the shards created in the batch just tracked:
    /// one tracker creates them in row order, a packet's carriers outermost first, then what
    /// they carry. Each shard then renames what it holds of them.
    fn rename(&mut self, base: u64) {
        let births: Vec<Vec<Birth>> = self
            .trackers
            .iter_mut()
            .map(|t| t.births.as_mut().map(std::mem::take).unwrap_or_default())
            .collect();
        let mut serials: Vec<Vec<u64>> =
            births.iter().map(|b| Vec::with_capacity(b.len())).collect();
        let lens: Vec<usize> = births.iter().map(Vec::len).collect();
        let mut serial = base;
        for (k, _) in merge_runs(&lens, |k, i| (births[k][i].row, births[k][i].level)) {
            serial += 1;
            serials[k].push(serial);
        }
        self.serial = serial;
        let names = self.parent_names(&births, &serials);
        for ((t, mut b), s) in self.trackers.iter_mut().zip(births).zip(&serials) {
            t.rename(base, &b, s, &names);
            t.serial = serial;
            t.uids.provisional_after = Some(serial); // every serial so far is the run's
            b.clear();
            t.births = Some(b); // its allocation, for the next batch
        }
    }

    /// The run's uid of each connection created in the batch, by its stand-in, when a tunnel
    /// parent may name one: a shard's parents may be another shard's carriers.
    fn parent_names(&self, births: &[Vec<Birth>], serials: &[Vec<u64>]) -> Names {
        let mut names = Names::default();
        let parents = self.trackers.iter().any(|t| {
            !t.reparented.is_empty() || t.ended.tunnel_parents.iter().any(|p| !p.is_empty())
        });
        if !parents {
            return names;
        }
        let mut scratch = Vec::new();
        for ((t, b), s) in self.trackers.iter().zip(births).zip(serials) {
            for (birth, &serial) in b.iter().zip(s) {
                names.insert(
                    provisional_uid(t.uids.shard, birth.serial),
                    flow_uid_of(&mut scratch, serial, birth.ts, &birth.key),
                );
            }
        }
        names
    }

    /// Moves every shard's clock to `ts_ns` (a live capture's idle time).
    pub fn advance(&mut self, ts_ns: i64) {
        for t in &mut self.trackers {
            t.advance(ts_ns);
        }
    }

    /// End of capture in every shard.
    pub fn finish(&mut self) {
        for t in &mut self.trackers {
            t.finish();
        }
    }

    /// The end of the capture, a part at a time (`Tracker::finish_through`): ends the `limit`
    /// oldest open connections of all shards (at least one), so that the rows `take_ended`
    /// merges from the shards are one tracker's next rows. Done when `open_flows` is 0.
    pub fn finish_part(&mut self, limit: usize) {
        let limit = limit.max(1);
        let mut next: Vec<u64> = Vec::new();
        for t in &mut self.trackers {
            // one more than `limit`: whether any is left after this part
            next.extend(t.finishing_serials(limit.saturating_add(1)));
        }
        let last = if next.len() > limit {
            *next.select_nth_unstable(limit - 1).1
        } else {
            u64::MAX
        };
        for t in &mut self.trackers {
            t.finish_through(last);
        }
    }

    /// The connections ended since the last call, in one tracker's order: where they ended,
    /// then creation.
    pub fn take_ended(&mut self) -> ConnBatch {
        self.take_ended_parts().merged()
    }

    /// `take_ended` as the shards hold the rows, with their order: what writes them out
    /// row by row (conn.log lines) needs no copy of them in that order.
    pub fn take_ended_parts(&mut self) -> Ended {
        Ended::of(self.trackers.iter_mut().map(|t| t.ended.take()).collect())
    }

    /// The transitions since the last call: each connection's in the order they happened
    /// (the shards' one after the other).
    pub fn take_transitions(&mut self) -> TransitionBatch {
        let mut parts = self.trackers.iter_mut().map(|t| t.transitions.take());
        let mut out = parts.next().unwrap_or_default();
        for part in parts {
            out.append(part);
        }
        out
    }

    /// Up to `limit` open connections, the most recently active first (the latest packet;
    /// of one packet's, the one created last).
    pub fn open_connections(&self, limit: Option<usize>) -> ConnBatch {
        if let [one] = self.trackers.as_slice() {
            return one.open_connections(limit);
        }
        let mut all = ConnBatch::default();
        for t in &self.trackers {
            all.append(t.open_connections(limit));
        }
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse((all.last_frame[i], all.serial[i])));
        if let Some(n) = limit {
            order.truncate(n);
        }
        all.select(&order)
    }

    /// The first frames of the connections created since the last call (a process worker's
    /// shard: `Tracker::feed_shard`).
    pub fn take_created(&mut self) -> Vec<i64> {
        self.trackers
            .iter_mut()
            .flat_map(|t| t.take_created())
            .collect()
    }

    pub fn packets_tracked(&self) -> u64 {
        self.trackers.iter().map(|t| t.packets_tracked).sum()
    }

    pub fn packets_skipped(&self) -> u64 {
        self.trackers.iter().map(|t| t.packets_skipped).sum()
    }

    pub fn evicted(&self) -> u64 {
        self.trackers.iter().map(|t| t.evicted).sum()
    }

    pub fn open_flows(&self) -> usize {
        self.trackers.iter().map(|t| t.open_flows()).sum()
    }

    pub fn not_counted(&self) -> NotCounted {
        let mut out = NotCounted::default();
        for t in &self.trackers {
            out.add(&t.not_counted);
        }
        out
    }
}

/// A shard's tracker lent to a job, back with how its rows went.
type Lent = (Box<Tracker>, Result<(), ColumnError>);

/// Shard `k`'s rows of a batch split by `plan`, in whichever thread tracks them.
fn track_shard(
    t: &mut Tracker,
    k: usize,
    p: &Packets<'_>,
    plan: &SplitPlan,
    carriers: &Carriers,
) -> Result<(), ColumnError> {
    let _done = carriers.done_guard(k);
    let (mine, quoted, visit) = &plan.shards[k];
    let crossing = Crossing {
        carriers,
        me: u16::try_from(k).unwrap_or(u16::MAX),
    };
    let passing = Passing {
        visit,
        clock: &plan.clock,
        last: &plan.last,
    };
    let shard = ShardRows { mine, quoted };
    t.feed_rows(p, Some(shard), Some(crossing), Some(&passing))
}

/// A batch another thread may track a shard of (`Shards::feed_helped`): its rows, and the
/// split the reading thread made of them.
pub trait SharedBatch: Send + Sync + 'static {
    fn packets(&self) -> Packets<'_>;
    fn split(&self) -> &SplitPlan;
}

impl<B: SharedBatch> SharedBatch for Box<B> {
    fn packets(&self) -> Packets<'_> {
        (**self).packets()
    }

    fn split(&self) -> &SplitPlan {
        (**self).split()
    }
}

/// What a split is made for: the number of shards, and which rows are counted.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSpec {
    pub shards: usize,
    pub counting: Counting,
}

/// A batch's rows shared out among the shards, and what moves their clocks: made once a
/// batch, by the thread that read and decoded it when it can (`DecodedFile`), which has time
/// to spare while the shards track the batch before (two shards on two cores share one core
/// with the caller's thread), else by `Shards` itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitPlan {
    /// What it was made for.
    spec: Option<SplitSpec>,
    /// The batch's rows (`usize::MAX` until it is made).
    rows: usize,
    /// Per shard: which rows are its own, whose quoted flow is its own, and which it looks
    /// at one by one (`Passing::visit`).
    shards: Vec<(Vec<bool>, Vec<bool>, Vec<u32>)>,
    /// Per row, for every shard: the clock after it, and the last counted row up to it
    /// (`Passing`).
    clock: Vec<i64>,
    last: Vec<u32>,
}

impl SplitPlan {
    /// What it was made for, once made: its batch's rows and spec.
    pub fn made_for(&self) -> Option<(usize, &SplitSpec)> {
        self.spec
            .as_ref()
            .filter(|_| self.rows != usize::MAX)
            .map(|spec| (self.rows, spec))
    }

    /// Which shard each row is: its host pair's (the inner pair when tunnelled; its
    /// carriers are their own pairs', carriers.rs); an ICMP error's quoted flow, by the
    /// quoted host pair. And what every shard's clock is after each row: which rows are
    /// counted is the same for all.
    pub fn make(&mut self, p: &Packets<'_>, spec: &SplitSpec) -> Result<(), ColumnError> {
        self.rows = usize::MAX; // no batch's, until it is made
        let n = p.check()?;
        let shards = spec.shards.max(1);
        self.shards.resize_with(shards, Default::default);
        for (mine, quoted, visit) in &mut self.shards {
            mine.clear();
            mine.resize(n, false);
            quoted.clear();
            quoted.resize(n, false);
            visit.clear();
        }
        self.clock.resize(n, i64::MIN);
        self.last.resize(n, NONE_COUNTED);
        let (mut clock, mut last) = (i64::MIN, NONE_COUNTED);
        let after = self.clock.iter_mut().zip(self.last.iter_mut());
        for (i, (row_clock, row_last)) in after.enumerate() {
            if p.sub[i] != SUB_CARRIER && spec.counting.used(p, i, n) {
                clock = clock.max(zeek_time(p.ts_ns[i]));
                last = i as u32;
            }
            (*row_clock, *row_last) = (clock, last);
        }
        let pairs = p.src[..16 * n]
            .chunks_exact(16)
            .zip(p.dst[..16 * n].chunks_exact(16));
        for (i, (a, b)) in pairs.enumerate() {
            let addr = |x: &[u8]| <[u8; 16]>::try_from(x).unwrap_or_default();
            let k = shard_of(&addr(a), &addr(b), shards);
            self.shards[k].0[i] = true;
            let q = if p.q_valid[i] {
                shard_of(&p.addr(p.q_src, i), &p.addr(p.q_dst, i), shards)
            } else {
                k
            };
            self.shards[q].1[i] = true;
            // A tunnelled row names carriers in every shard; a subframe or middle carrier
            // shares its frame's chain of them.
            if p.sub[i] != SUB_FRAME || p.tunnel_depth[i] > 0 {
                for (_, _, visit) in &mut self.shards {
                    visit.push(i as u32);
                }
            } else {
                self.shards[k].2.push(i as u32);
                if q != k {
                    self.shards[q].2.push(i as u32);
                }
            }
        }
        if self.spec.as_ref() != Some(spec) {
            self.spec = Some(spec.clone());
        }
        self.rows = n;
        Ok(())
    }
}

/// The connections that ended in the shards, in one tracker's order (`take_ended_parts`).
#[derive(Debug, Default)]
pub struct Ended {
    parts: Vec<ConnBatch>,
    /// (part, row), in order; empty when there is one part, whose rows are in order.
    order: Vec<(usize, usize)>,
}

impl From<ConnBatch> for Ended {
    /// One tracker's rows, in its order.
    fn from(rows: ConnBatch) -> Self {
        Ended::of(vec![rows])
    }
}

impl Ended {
    /// The shards' rows in one tracker's order: each shard's are in that order already
    /// (where they ended, then serial, now one run's), so the parts are merged, not sorted.
    fn of(mut parts: Vec<ConnBatch>) -> Self {
        parts.retain(|p| !p.is_empty());
        let mut order = Vec::new();
        if parts.len() > 1 {
            let key = |k: usize, i: usize| {
                let b = &parts[k];
                (b.end_frame[i], b.end_phase[i], b.serial[i])
            };
            let lens: Vec<usize> = parts.iter().map(ConnBatch::len).collect();
            order = merge_runs(&lens, key);
            debug_assert!(
                order
                    .windows(2)
                    .all(|w| key(w[0].0, w[0].1) <= key(w[1].0, w[1].1)),
                "a shard's rows out of one tracker's order"
            );
        }
        Ended { parts, order }
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(ConnBatch::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each row, as its part and its index there, in order.
    pub fn rows(&self) -> impl Iterator<Item = (&ConnBatch, usize)> + '_ {
        let one = match self.parts.as_slice() {
            [one] => Some(one),
            _ => None,
        };
        let single = one
            .into_iter()
            .flat_map(|b| (0..b.len()).map(move |i| (b, i)));
        let merged = self.order.iter().map(|&(k, i)| (&self.parts[k], i));
        single.chain(merged)
    }

    /// The rows as one batch, in order.
    pub fn merged(mut self) -> ConnBatch {
        if self.parts.len() <= 1 {
            return self.parts.pop().unwrap_or_default();
        }
        let mut start = Vec::with_capacity(self.parts.len());
        let mut all = ConnBatch::default();
        for p in self.parts {
            start.push(all.len());
            all.append(p);
        }
        let order: Vec<usize> = self.order.iter().map(|&(k, i)| start[k] + i).collect();
        all.select(&order)
    }
}

/// The rows of several runs, each in order by `key` (run, row), as one run in that order:
/// (run, row) each, the lower run first of equal keys. The shards' births are numbered, and
/// their ended rows written, in this order: one tracker's.
fn merge_runs<K: Ord>(lens: &[usize], key: impl Fn(usize, usize) -> K) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(lens.iter().sum());
    let mut next = vec![0usize; lens.len()];
    loop {
        let mut pick: Option<(usize, K)> = None;
        for (k, &len) in lens.iter().enumerate() {
            if next[k] < len {
                let at = key(k, next[k]);
                if pick.as_ref().is_none_or(|(_, first)| at < *first) {
                    pick = Some((k, at));
                }
            }
        }
        let Some((k, _)) = pick else { break };
        out.push((k, next[k]));
        next[k] += 1;
    }
    out
}

/// The run's uids of the connections a batch created, by the stand-ins their shards gave them.
pub(crate) type Names = HashMap<Uid, Uid, FlowHasher>;

/// The shard of a host pair, the same both ways: `n` shards, a fixed hash (the split does
/// not change the rows, only how the work is shared).
pub fn shard_of(a: &[u8; 16], b: &[u8; 16], n: usize) -> usize {
    // Each address mixed on its own and the two added: the same both ways without ordering
    // them (every row of a batch is split, in the reading thread).
    let mix = |x: &[u8; 16]| {
        let x = u128::from_le_bytes(*x);
        let mut h =
            (x as u64 ^ ((x >> 64) as u64).rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 32;
        h.wrapping_mul(0xBF58_476D_1CE4_E5B9)
    };
    let mut h = mix(a).wrapping_add(mix(b));
    // MurmurHash3's finalizer, then the high bits pick the shard (Lemire's reduction): every
    // address bit moves the choice, for any n.
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    ((u128::from(h) * n as u128) >> 64) as usize
}

impl Tracker {
    /// One run's serials (`serials`, one per birth) for the connections this shard created in
    /// the batch (`births`, serials `base`+1...), wherever it holds them, with the uids they
    /// give (made only where a uid is held: a SynOnly makes its own when it expands).
    /// `names`: every shard's stand-ins for the batch's connections, by their uids (empty
    /// when no tunnel parent names one).
    fn rename(&mut self, base: u64, births: &[Birth], serials: &[u64], names: &Names) {
        let inactivity = self.config.timeouts.udp_inactivity;
        self.foreign.rename(names, self.now, inactivity);
        if births.is_empty() && names.is_empty() {
            self.reparented.clear();
            return;
        }
        let scratch = &mut self.uids.scratch;
        let shard = self.uids.shard;
        // each birth's uid made once, whichever of its rows asks first (`names` has them all
        // when a tunnel parent may name one)
        let mut made: Vec<Option<Uid>> = vec![None; births.len()];
        let mut uid = |j: usize| {
            *made[j].get_or_insert_with(|| {
                match names.get(&provisional_uid(shard, births[j].serial)) {
                    Some(&named) => named,
                    None => flow_uid_of(scratch, serials[j], births[j].ts, &births[j].key),
                }
            })
        };
        for (j, b) in births.iter().enumerate() {
            if let Some(Some(e)) = self.slots.get_mut(b.slot as usize) {
                if e.serial() == b.serial {
                    match e {
                        Entry::Syn(s) => s.serial = serials[j],
                        Entry::Tcp(t) => (t.c.serial, t.c.uid) = (serials[j], uid(j)),
                        Entry::Flow(f) => (f.c.serial, f.c.uid) = (serials[j], uid(j)),
                    }
                }
            }
        }
        let index = |s: u64| {
            s.checked_sub(base + 1)
                .map(|j| j as usize)
                .filter(|&j| j < births.len())
        };
        // Tunnel parents name carriers by uid, any shard's of those created in the batch.
        let ended = &mut self.ended;
        for r in 0..ended.len() {
            if let Some(j) = index(ended.serial[r]) {
                ended.serial[r] = serials[j];
                ended.uid[r] = uid(j);
            }
            let p = &mut ended.tunnel_parents[r];
            if !p.is_empty() {
                for u in p.iter_mut() {
                    if let Some(n) = names.get(u) {
                        *u = *n;
                    }
                }
                p.sort_unstable();
            }
        }
        for slot in std::mem::take(&mut self.reparented) {
            let Some(Some(e)) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            let Some(x) = e.ident_mut().and_then(|c| c.extra.as_mut()) else {
                continue;
            };
            for u in &mut x.parents {
                if let Some(n) = names.get(u) {
                    *u = *n;
                }
            }
            if let Some((_, u)) = &mut x.encap {
                if let Some(n) = names.get(u) {
                    *u = *n;
                }
            }
        }
        let t = &mut self.transitions;
        for r in 0..t.len() {
            if let Some(j) = index(t.serial[r]) {
                t.serial[r] = serials[j];
                t.uid[r] = uid(j);
            }
        }
    }
}
