//! Stream entries held while Redis is unreachable (the Streams transport over one Redis
//! or the Sentinel master; `StreamsOptions::offline_queue`).
//!
//! Pub/sub has no use for a late message (whoever is subscribed when it is published
//! gets it), so while the publishing connection is known down a PUBLISH fails at once.
//! A stream entry is different: every server reads it from its offset whenever it
//! comes, so a broadcast appended a second late still reaches everyone. Entries queued
//! without confirmation (broadcasts) while Redis is down are kept here instead — never
//! more than `cap`, never older than `max_age` when sent (both counted when exceeded) —
//! and sent, in order, before anything else once Redis answers again. Only entries that
//! were never sent are held: an `XADD` whose pipeline broke after it was sent is not
//! sent again (a reader would get it twice).

use super::queue::Outgoing;
use crate::error::Error;
use crate::stats::Counters;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The held entries and their bounds (`cap` 0: nothing is held).
#[derive(Default)]
pub(super) struct Held {
    cap: usize,
    max_age: Duration,
    entries: VecDeque<(Instant, Outgoing)>,
}

/// What [`Held::keep`] did with an entry.
pub(super) enum Kept {
    Yes,
    /// Publishing is up again: queue it as usual.
    Up(Outgoing),
    /// Not holdable (full, or nothing is held): refuse it.
    No(Outgoing),
}

impl Held {
    pub(super) fn set_bounds(&mut self, cap: usize, max_age: Duration) {
        self.cap = cap;
        self.max_age = max_age;
    }

    /// Whether `msg` is an entry this holds: an XADD nobody waits on.
    pub(super) fn holds(&self, msg: &Outgoing) -> bool {
        self.cap > 0 && msg.xadd.is_some() && msg.done.is_none()
    }

    /// Keeps `msg` if publishing is still down (read under the lock, so that an entry
    /// is never kept after the publisher took the held ones) and there is room.
    pub(super) fn keep(&mut self, msg: Outgoing, publishing: &AtomicBool) -> Kept {
        if publishing.load(Ordering::Acquire) {
            return Kept::Up(msg);
        }
        if !self.holds(&msg) || self.entries.len() >= self.cap {
            return Kept::No(msg);
        }
        self.entries.push_back((Instant::now(), msg));
        Kept::Yes
    }

    /// Takes what is held and marks publishing up, both under the lock; entries older
    /// than `max_age` are failed (counted) instead.
    pub(super) fn resume(&mut self, publishing: &AtomicBool, counters: &Counters) -> Vec<Outgoing> {
        publishing.store(true, Ordering::Release);
        let mut stale = 0;
        let fresh = self
            .entries
            .drain(..)
            .filter_map(|(at, m)| {
                if at.elapsed() <= self.max_age {
                    Some(m)
                } else {
                    stale += 1;
                    None
                }
            })
            .collect();
        if stale > 0 {
            Counters::add(&counters.publish_failed, stale);
            tracing::warn!(
                stale,
                "stream entries held longer than offline_max_age: lost"
            );
        }
        fresh
    }

    /// Fails everything held (closing), counted.
    pub(super) fn fail_all(&mut self, counters: &Counters) {
        let n = self.entries.len() as u64;
        for (_, m) in self.entries.drain(..) {
            if let Some(done) = m.done {
                let _ = done.send(Err(Error::Closed));
            }
        }
        Counters::add(&counters.publish_failed, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Mode;
    use crate::transport::redis::Xadd;
    use bytes::Bytes;

    fn entry(i: u8) -> Outgoing {
        let mut m = Outgoing::new(format!("s{i}"), Bytes::new(), 0, Mode::Queued);
        m.xadd = Some(Xadd {
            max_len: 10,
            fields: vec![("uid", vec![i])],
        });
        m
    }

    #[test]
    fn keeps_entries_in_order_within_bounds_and_only_while_down() {
        let (counters, publishing) = (Counters::default(), AtomicBool::new(false));
        let mut held = Held::default();
        // Nothing is held until bounds are set.
        assert!(matches!(held.keep(entry(0), &publishing), Kept::No(_)));
        held.set_bounds(2, Duration::from_secs(60));
        assert!(matches!(held.keep(entry(1), &publishing), Kept::Yes));
        assert!(matches!(held.keep(entry(2), &publishing), Kept::Yes));
        assert!(
            matches!(held.keep(entry(3), &publishing), Kept::No(_)),
            "full"
        );
        // A plain PUBLISH is never held.
        let publish = Outgoing::new("c".into(), Bytes::new(), 0, Mode::Queued);
        assert!(matches!(held.keep(publish, &publishing), Kept::No(_)));
        let sent = held.resume(&publishing, &counters);
        assert!(publishing.load(Ordering::Acquire), "publishing is up again");
        let order: Vec<&str> = sent.iter().map(|m| m.channel.as_str()).collect();
        assert_eq!(order, ["s1", "s2"]);
        // Up: the entry goes back to the queue.
        assert!(matches!(held.keep(entry(4), &publishing), Kept::Up(_)));
    }

    #[test]
    fn entries_held_too_long_are_dropped_and_counted() {
        let (counters, publishing) = (Counters::default(), AtomicBool::new(false));
        let mut held = Held::default();
        held.set_bounds(10, Duration::ZERO);
        assert!(matches!(held.keep(entry(1), &publishing), Kept::Yes));
        std::thread::sleep(Duration::from_millis(2));
        assert!(held.resume(&publishing, &counters).is_empty());
        assert_eq!(counters.snapshot().publish_failed, 1);
    }
}
