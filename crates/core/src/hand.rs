//! A job one thread offers while it does its own share of a step: another thread that has
//! nothing better to do takes it, or else the offering thread does it itself.
//!
//! `--workers 2` on a two-core machine runs three busy threads: the one that reads and
//! decodes the file, the caller's (the first shard, the output) and the second shard's. The
//! reader is the fastest, so it keeps waiting for room to hand over its next batch while the
//! other two share the other core. Offered the second shard's step of a batch through a
//! `Hand`, the reader takes it whenever it would only wait (`hand_over` in decoded.rs);
//! when it is busy reading, the caller's thread tracks that shard itself once done with its
//! own. Two threads then share the work, each as much of it as it has time for, and the
//! shards' rows are the same whoever tracks them.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Work handed to another thread, which owns all it needs (it gives its results back by a
/// channel of its own).
pub type Job = Box<dyn FnOnce() + Send>;

/// One job on offer at a time, and a bell for a helper waiting for something else.
#[derive(Default)]
pub struct Hand {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    job: Option<Job>,
    /// Times the bell rang: a helper remembers the count it has seen.
    rung: u64,
    closed: bool,
}

/// Why a waiting helper woke.
pub enum Wake {
    /// A job it now owns: it runs it.
    Job(Job),
    /// The bell: what it waits for besides a job may be there (room for its batch).
    Rung,
    /// No more jobs or bells: it stops.
    Closed,
}

impl Hand {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in a job runs outside the lock: it cannot poison it mid-change.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers `job` to a helper; take it back with [`withdraw`](Self::withdraw). A job still
    /// on offer is the caller's to have withdrawn first: it is replaced and dropped.
    pub fn offer(&self, job: Job) {
        self.state().job = Some(job);
        self.wake.notify_one();
    }

    /// The job offered, if no helper took it: the caller then runs it itself.
    pub fn withdraw(&self) -> Option<Job> {
        self.state().job.take()
    }

    /// Whether a job is on offer still (tests wait for a helper to take it).
    #[cfg(test)]
    pub fn offered(&self) -> bool {
        self.state().job.is_some()
    }

    /// Wakes a waiting helper without a job.
    pub fn ring(&self) {
        self.state().rung += 1;
        self.wake.notify_one();
    }

    /// Wakes a waiting helper for good: nothing more is offered.
    pub fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.job = None;
        drop(state);
        self.wake.notify_all();
    }

    /// The helper's side: a job on offer, or else the next ring after the `seen`th, or the
    /// close; waits till one comes.
    pub fn wait(&self, seen: &mut u64) -> Wake {
        let mut state = self.state();
        loop {
            if state.closed {
                return Wake::Closed;
            }
            if let Some(job) = state.job.take() {
                return Wake::Job(job);
            }
            if state.rung != *seen {
                *seen = state.rung;
                return Wake::Rung;
            }
            state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn a_job_not_taken_is_withdrawn_and_one_taken_is_run_by_the_helper() {
        let hand = Hand::default();
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        hand.offer(Box::new(move || t.send("caller").unwrap()));
        hand.withdraw().expect("no helper took it")();
        assert_eq!(rx.recv().unwrap(), "caller");
        assert!(hand.withdraw().is_none());

        let hand = Arc::new(hand);
        let helper = {
            let hand = Arc::clone(&hand);
            thread::spawn(move || {
                let mut seen = 0;
                let mut woke = Vec::new();
                loop {
                    match hand.wait(&mut seen) {
                        Wake::Job(job) => {
                            job();
                            woke.push("job");
                        }
                        Wake::Rung => woke.push("rung"),
                        Wake::Closed => return woke,
                    }
                }
            })
        };
        hand.offer(Box::new(move || tx.send("helper").unwrap()));
        assert_eq!(rx.recv().unwrap(), "helper"); // taken while the caller waited
        assert!(hand.withdraw().is_none());
        hand.ring();
        hand.close();
        let woke = helper.join().unwrap();
        assert_eq!(woke[0], "job");
        assert!(woke.len() <= 2, "{woke:?}"); // the ring may come after the close
        assert!(matches!(hand.wait(&mut 0), Wake::Closed));
    }
}
