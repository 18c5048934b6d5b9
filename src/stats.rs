//! Counters that make every loss visible.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub publish_failed: AtomicU64,
    pub volatile_dropped: AtomicU64,
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub delivery_failed: AtomicU64,
    pub reconnects: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> ClusterStats {
        ClusterStats {
            published: self.published.load(Relaxed),
            publish_failed: self.publish_failed.load(Relaxed),
            volatile_dropped: self.volatile_dropped.load(Relaxed),
            received: self.received.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            delivery_failed: self.delivery_failed.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
        }
    }
}

/// A snapshot of the cluster handle's counters (see [`Cluster::stats`](crate::Cluster::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Messages Redis accepted (PUBLISH answered).
    pub published: u64,
    /// Messages queued for Redis that were lost because the connection failed while
    /// they were queued or in flight.
    pub publish_failed: u64,
    /// Volatile broadcasts dropped by design (publish queue full or connection down).
    pub volatile_dropped: u64,
    /// Broadcast messages received from other servers and emitters.
    pub received: u64,
    /// Messages on our channels that could not be decoded (logged and skipped).
    pub malformed: u64,
    /// Local deliveries socketioxide refused (a socket's buffer was full or it closed);
    /// raise `max_buffer_size` if this grows.
    pub delivery_failed: u64,
    /// Times the subscriber connection was lost and re-established (Redis restarts,
    /// killed connections, a slow subscriber cut off by Redis' output-buffer limit).
    pub reconnects: u64,
}
