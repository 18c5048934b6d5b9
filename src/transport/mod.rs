//! The Redis seam: publish, subscribe, count subscribers.
//!
//! The Redis subscriber connection reads through two layers opened in `connect`: the
//! `screen` (skips unusable messages as their bytes arrive, before the redis crate
//! buffers and parses them) inside the `gate` (bounded read-ahead of what passed).
//!
//! Implementations: `redis` (a standalone Redis server, RESP2 or RESP3, through a
//! dedicated pub/sub connection plus a pipelined publishing connection),
//! `cluster_classic` (the same over a Redis Cluster node, counting subscribers over every
//! node), `sentinel` (the standalone transport following the master that Redis
//! Sentinel names), `sharded` (sharded pub/sub on the master owning each channel, over a Redis
//! Cluster or one Redis 7) and `memory` (an in-process bus with the same semantics, for
//! demos and unit tests).
//!
//! A transport hands every received message to a [`MessageSink`] (the cluster's router)
//! from the one task that owns the subscriber connection.

pub(crate) mod cluster_classic;
mod connect;
mod gate;
pub(crate) mod memory;
pub(crate) mod redis;
mod screen;
pub(crate) mod sentinel;
pub(crate) mod sharded;
pub(crate) mod streams;

pub(crate) use connect::{RedisEndpoint, root_certs};
pub use memory::InProcessBus;
pub(crate) use sentinel::SentinelSpec;
pub use streams::StreamsOptions;

use crate::error::Error;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, to keep the transport object-safe.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Sub {
    /// `SUBSCRIBE channel`.
    Channel(String),
    /// `PSUBSCRIBE pattern`.
    Pattern(String),
}

/// How hard [`Transport::publish`] tries, and when it resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Never waits: when the queue is full the message is dropped and counted.
    Volatile,
    /// Resolves once queued (waiting for room when the queue is full). The hot path:
    /// broadcasts and replies are pipelined without waiting for Redis.
    Queued,
    /// Resolves once Redis accepted the PUBLISH, or with the error that lost it
    /// (`NotPublished`; `Unconfirmed` when Redis did not answer in time). For
    /// fire-and-forget commands (join, leave, disconnect, server-side emit): a failure
    /// reaches the caller, and any message published after the call returned — from any
    /// server — is delivered after this one on every subscriber.
    Confirmed,
    /// As [`Confirmed`](Self::Confirmed), and resolves with the channel's subscriber count
    /// as `PUBSUB NUMSUB` tells it (asked in the same pipeline, just before the PUBLISH):
    /// Node's server count for requests, without a round trip of its own.
    Counted,
}

/// A confirmed message's outcome: how its pipeline ended, and the count it resolves with.
pub(crate) type Done = tokio::sync::oneshot::Sender<Result<Option<usize>, Error>>;

/// Puts `msg` on a publisher's bounded `queue` as `mode` says (see [`Mode`]): volatile
/// ones never wait (dropped and counted in `volatile_dropped` when full), queued ones
/// wait for room, confirmed ones get a [`Done`] (through `done`) and wait for it.
pub(crate) async fn queue_as<T>(
    queue: &tokio::sync::mpsc::Sender<T>,
    mut msg: T,
    mode: Mode,
    volatile_dropped: &std::sync::atomic::AtomicU64,
    done: impl FnOnce(&mut T) -> &mut Option<Done>,
) -> Result<Option<usize>, Error> {
    use tokio::sync::mpsc::error::TrySendError;
    match mode {
        Mode::Volatile => match queue.try_send(msg) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(_)) => {
                crate::stats::Counters::add(volatile_dropped, 1);
                Ok(None)
            }
            Err(TrySendError::Closed(_)) => Err(Error::Closed),
        },
        Mode::Queued => {
            queue.send(msg).await.map_err(|_| Error::Closed)?;
            Ok(None)
        }
        Mode::Confirmed | Mode::Counted => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            *done(&mut msg) = Some(tx);
            queue.send(msg).await.map_err(|_| Error::Closed)?;
            // The publisher drops the sender without a word only when it stops.
            rx.await.map_err(|_| Error::Closed)?
        }
    }
}

/// What [`Transport::try_publish`] did.
#[derive(Debug)]
pub(crate) enum TryPublish {
    /// Queued, as [`Mode::Queued`] would have.
    Queued,
    /// The queue is full (or this transport has no non-waiting path): the message back.
    Full(String, Bytes),
    /// Refused: closed, or the connection is known down (with the channel, for logs).
    Failed(Error, String),
}

/// Receives what the subscriber connection reads. Called from the subscriber task: it
/// must not block (hand long work to a task of its own).
pub(crate) trait MessageSink: Send + Sync + 'static {
    /// A message about to be read, from its channel, `pattern`, declared length `len`
    /// and first bytes (`head`: at most `wire::screen::HEAD`, all of it when shorter):
    /// `false` skips it unread (the sink counted it as malformed). Called by the Redis
    /// subscriber's [`screen`] as the bytes arrive, before they are queued; the sink
    /// screens again on [`deliver`](Self::deliver) for transports without one.
    fn screen(&self, channel: &[u8], pattern: Option<&[u8]>, head: &[u8], len: usize) -> bool;
    /// One message; `pattern` is set for messages matched by a `PSUBSCRIBE`.
    fn deliver(&self, channel: &str, pattern: Option<&str>, payload: &[u8]);
    /// The subscriber connection dropped (or the transport closed): replies to requests
    /// in flight can no longer arrive.
    fn connection_lost(&self);
}

/// Publish/subscribe operations the adapter needs from its message bus.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Publishes `payload` on `channel`; when it resolves depends on `mode`. Fails fast
    /// with [`Error::Disconnected`] when the publishing connection is known down.
    ///
    /// `expect` is how many subscriber connections the message should reach (this
    /// server's own included; 0: not checked): a PUBLISH that reached fewer is counted in
    /// `under_delivered`. [`Mode::Confirmed`] resolves with the number reached,
    /// [`Mode::Counted`] with the channel's subscriber count.
    fn publish(
        &self,
        channel: String,
        payload: Bytes,
        mode: Mode,
        expect: usize,
    ) -> BoxFuture<'_, Result<Option<usize>, Error>>;
    /// Queues like [`Mode::Queued`] when there is room right now, without waiting: the
    /// replies' fast path (see `replies.rs`).
    fn try_publish(&self, channel: String, payload: Bytes) -> TryPublish;
    /// Adds a subscription; resolves once the server confirmed it.
    fn subscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>>;
    /// Removes a subscription.
    fn unsubscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>>;
    /// `PUBSUB NUMSUB c1 c2 …`: how many connections subscribe to each channel, in order.
    fn num_sub(&self, channels: Vec<String>) -> BoxFuture<'_, Result<Vec<usize>, Error>>;
    /// Whether the subscriber connection is currently up (replies can arrive).
    fn is_connected(&self) -> bool;
    /// Whether the publishing connection is not known down.
    fn is_publishing(&self) -> bool {
        self.is_connected()
    }
    /// Stops the background tasks and drops the connections.
    fn close(&self) -> BoxFuture<'_, ()>;
}
