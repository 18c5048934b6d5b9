//! Counters that make every loss visible, and the bounded-rate log of what was skipped.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Every counter of one cluster handle. Shared (`Arc`) by the transport, the router and
/// every namespace; [`Counters::snapshot`] is what [`Cluster::stats`](crate::Cluster::stats)
/// returns.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) publish_failed: AtomicU64,
    pub(crate) volatile_dropped: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) delivery_failed: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) replies_dropped: AtomicU64,
    pub(crate) under_delivered: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) master_switches: AtomicU64,
    pub(crate) stream_missed: AtomicU64,
    pub(crate) stream_held: AtomicU64,
    pub(crate) named_expired: AtomicU64,
    pub(crate) named_dropped: AtomicU64,
    malformed_log: RateLimit,
    replies_log: RateLimit,
    under_log: RateLimit,
}

impl Counters {
    /// Adds `n` to one counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// A message on one of our channels that could not be used: counted, and logged at
    /// most about once per second (a flood of bad input must not flood the log).
    pub(crate) fn malformed(&self, channel: &str, reason: &dyn Display) {
        Self::add(&self.malformed, 1);
        if let Some(skipped) = self.malformed_log.allow() {
            tracing::warn!(
                channel,
                reason = %reason,
                also_skipped_since_last_log = skipped,
                "cluster adapter: malformed message skipped"
            );
        }
    }

    /// A reply (to a request, a server-side ack, a forwarded client ack) that could not
    /// be sent (`reason`: reply queue full, ack forwarder full, Redis down, closed):
    /// counted, logged at a bounded rate.
    pub(crate) fn reply_dropped(&self, channel: &str, reason: &dyn Display) {
        Self::add(&self.replies_dropped, 1);
        if let Some(skipped) = self.replies_log.allow() {
            tracing::warn!(
                channel,
                reason = %reason,
                also_dropped_since_last_log = skipped,
                "cluster adapter: reply dropped (the requester will miss it)"
            );
        }
    }

    /// A PUBLISH that reached `reached` subscriber connections where `expected` were
    /// live: counted, logged at a bounded rate.
    pub(crate) fn under_delivered(&self, channel: &str, expected: usize, reached: usize) {
        Self::add(&self.under_delivered, 1);
        if let Some(skipped) = self.under_log.allow() {
            tracing::warn!(
                channel,
                expected,
                reached,
                also_under_delivered_since_last_log = skipped,
                "cluster adapter: a message reached fewer servers than are alive"
            );
        }
    }

    /// The values now.
    pub(crate) fn snapshot(&self) -> ClusterStats {
        ClusterStats {
            published: self.published.load(Relaxed),
            publish_failed: self.publish_failed.load(Relaxed),
            volatile_dropped: self.volatile_dropped.load(Relaxed),
            received: self.received.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            delivery_failed: self.delivery_failed.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            replies_dropped: self.replies_dropped.load(Relaxed),
            under_delivered: self.under_delivered.load(Relaxed),
            refused: self.refused.load(Relaxed),
            master_switches: self.master_switches.load(Relaxed),
            stream_missed: self.stream_missed.load(Relaxed),
            stream_held: self.stream_held.load(Relaxed),
            named_expired: self.named_expired.load(Relaxed),
            named_dropped: self.named_dropped.load(Relaxed),
            // Filled in by the cluster handle, which holds the table.
            node_stand_ins: 0,
        }
    }
}

/// Lets one event through per wall-clock second and counts the others.
#[derive(Debug, Default)]
struct RateLimit {
    last_second: AtomicU64,
    skipped: AtomicU64,
}

impl RateLimit {
    /// `Some(events skipped since the last one let through)`, or `None` to stay quiet.
    fn allow(&self) -> Option<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            // A clock before 1970 only makes every event share one second.
            .unwrap_or(0)
            .max(1);
        if self.last_second.swap(now, Relaxed) != now {
            Some(self.skipped.swap(0, Relaxed))
        } else {
            self.skipped.fetch_add(1, Relaxed);
            None
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
    /// Volatile broadcasts dropped by design: publish queue full or connection down, or,
    /// for one received, a local socket's buffer full (counted per socket).
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
    /// Replies to other servers' requests (and server-side or client acks) that could
    /// not be sent: the reply queue or the ack forwarder was full (see `PROTOCOL.md`,
    /// "Buffers"), Redis was down, or the handle closed. The requester then misses this
    /// server's answer.
    pub replies_dropped: u64,
    /// Broadcasts and requests that Redis accepted but that reached fewer servers than
    /// are alive (PUBLISH tells how many subscribers got a message; heartbeats tell which
    /// of our servers are alive and which namespaces they serve): a server whose
    /// subscriber was reconnecting missed them. Node servers send no heartbeats, so a
    /// Node server missing a message is not seen here. See
    /// [`ClusterOptions::strict_delivery`](crate::ClusterOptions::strict_delivery).
    pub under_delivered: u64,
    /// Publishes refused at once (the caller got [`Error::Disconnected`](crate::Error))
    /// because the publishing connection was known down: Redis restarting, a failover
    /// in progress. Volatile ones are in `volatile_dropped` as well.
    pub refused: u64,
    /// Times the connections moved to another master because the sentinels named one
    /// (Sentinel only; see README "High availability with Sentinel").
    pub master_switches: u64,
    /// Stream entries (Streams transport) that Redis trimmed (`maxLen`) before this
    /// server read them: lost for its sockets, and logged. Node's reader skips them
    /// without a word.
    pub stream_missed: u64,
    /// Stream entries (Streams transport, one Redis or Sentinel) emitted while Redis was
    /// unreachable, kept and appended once it answered again instead of refused (see
    /// [`StreamsOptions::offline_queue`](crate::StreamsOptions::offline_queue)); those
    /// that were not (full, held too long) are in `refused` or `publish_failed`.
    pub stream_held: u64,
    /// Named requests and events dropped unread because they arrived after their
    /// deadline ([`Ask::ttl`](crate::Ask::ttl)).
    pub named_expired: u64,
    /// Named requests and events refused because [`MAX_RUNNING`](crate::named::MAX_RUNNING)
    /// handlers were running (requests are answered "busy").
    pub named_dropped: u64,
    /// Stand-in `Sid`s held for sockets of Node servers (what `io.fetch_sockets()`
    /// returned for them; at most 65,536, see README "Mixed clusters"). A gauge, not a
    /// counter.
    pub node_stand_ins: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_is_counted_every_time_and_logged_once_per_second() {
        let c = Counters::default();
        for _ in 0..5 {
            c.malformed("ch", &"bad");
        }
        assert_eq!(c.snapshot().malformed, 5);
        // Within one second, at most two let through (the second may tick over).
        let r = RateLimit::default();
        let allowed = (0..100).filter(|_| r.allow().is_some()).count();
        assert!((1..=2).contains(&allowed), "{allowed}");
    }
}
