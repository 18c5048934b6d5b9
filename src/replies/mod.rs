//! The reply queue: how this server answers other servers' requests without a task per
//! reply and without ever making the subscriber task wait.
//!
//! Replies (to fetchSockets, allRooms, sockets, legacy remote join/leave/disconnect),
//! server-side acks and forwarded client acks are produced on the subscriber task (or
//! on the ack-forwarding task). When no earlier reply is still on its way and the
//! transport's publish queue has room, a reply goes straight into the publish queue,
//! where it is pipelined with everything else (no extra hop). Otherwise it goes into
//! one bounded queue of [`REPLY_QUEUE`] messages, drained in order by one worker task
//! that waits for room in the publish queue. A reply that finds the queue full, or that
//! the transport refuses (Redis down, handle closed), is dropped and counted in
//! [`ClusterStats::replies_dropped`](crate::ClusterStats) with the reason logged; the
//! requester then times out on this server, and its error says who is missing.
//!
//! Client acks of a broadcast-with-ack request arrive over time (until the requester's
//! ack timeout). Their streams are handed to one forwarding task per cluster handle,
//! which polls at most [`MAX_FORWARDS`] of them at once (as many more may wait for a
//! slot) and puts each ack on the reply queue. A slot is reserved before the request is
//! answered ([`Replies::reserve_forward`]), so a request that gets none is answered
//! with a client count of 0 instead of making the requester wait for acks that would
//! never be forwarded.
//!
//! On close, the worker stops taking new replies, publishes those already queued, and
//! ends ([`Replies::shutdown`]); the forwarder is stopped.

use crate::stats::Counters;
use crate::transport::{Mode, Transport, TryPublish};
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Capacity of the reply queue, in messages.
pub(crate) const REPLY_QUEUE: usize = 4096;

/// Most broadcast-with-ack requests whose client acks are forwarded at once.
pub(crate) const MAX_FORWARDS: usize = 1024;

/// Most replies the worker takes from the queue at once.
const BATCH: usize = 256;

/// The encoded acks of one broadcast-with-ack request, as they come.
pub(crate) type AckReplies = Pin<Box<dyn Stream<Item = Vec<u8>> + Send>>;

struct Reply {
    channel: String,
    payload: Bytes,
}

struct Forward {
    channel: String,
    acks: AckReplies,
}

/// The queue side shared by every handle and the forwarder.
struct Queue {
    tx: mpsc::Sender<Reply>,
    /// Replies queued or in the worker's hands, not yet in the publish queue: the fast
    /// path is taken only at zero, so replies keep their order.
    on_the_way: Arc<AtomicUsize>,
    /// Set by [`Replies::shutdown`]: new replies are refused at once, even while the
    /// worker is still busy with a batch.
    closed: AtomicBool,
    transport: Arc<dyn Transport>,
    counters: Arc<Counters>,
}

impl Queue {
    fn send(&self, mut channel: String, mut payload: Bytes) {
        if self.closed.load(Ordering::Acquire) {
            return self.counters.reply_dropped(&channel, &"closed");
        }
        if self.on_the_way.load(Ordering::Acquire) == 0 {
            match self.transport.try_publish(channel, payload) {
                TryPublish::Queued => return,
                TryPublish::Failed(e, channel) => {
                    return self.counters.reply_dropped(&channel, &e);
                }
                TryPublish::Full(c, p) => (channel, payload) = (c, p),
            }
        }
        self.on_the_way.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.tx.try_send(Reply { channel, payload }) {
            self.on_the_way.fetch_sub(1, Ordering::AcqRel);
            let (reply, why) = match e {
                mpsc::error::TrySendError::Full(r) => (r, "reply queue full"),
                mpsc::error::TrySendError::Closed(r) => (r, "closed"),
            };
            self.counters.reply_dropped(&reply.channel, &why);
        }
    }
}

/// A cheap-clone handle to the reply queue and the ack forwarder.
#[derive(Clone)]
pub(crate) struct Replies {
    queue: Arc<Queue>,
    forwards: mpsc::Sender<Forward>,
    stop: Arc<watch::Sender<bool>>,
}

/// The background tasks of [`Replies`].
pub(crate) struct ReplyTasks {
    /// Drains the reply queue; ends after [`Replies::shutdown`] once drained.
    pub(crate) worker: JoinHandle<()>,
    /// Polls the forwarded ack streams; aborted on close.
    pub(crate) forwarder: JoinHandle<()>,
}

/// A reserved slot of the ack forwarder (see [`Replies::reserve_forward`]).
pub(crate) struct ForwardSlot<'a>(mpsc::Permit<'a, Forward>);

impl ForwardSlot<'_> {
    /// Forwards each ack of `acks` to `channel` through the reply queue, as they come.
    pub(crate) fn forward(self, channel: String, acks: AckReplies) {
        self.0.send(Forward { channel, acks });
    }
}

impl Replies {
    /// Starts the reply worker and the ack forwarder. Both also end by themselves when
    /// every handle is dropped.
    pub(crate) fn start(
        transport: Arc<dyn Transport>,
        counters: Arc<Counters>,
    ) -> (Self, ReplyTasks) {
        Self::with_capacity(transport, counters, REPLY_QUEUE)
    }

    fn with_capacity(
        transport: Arc<dyn Transport>,
        counters: Arc<Counters>,
        capacity: usize,
    ) -> (Self, ReplyTasks) {
        let (tx, rx) = mpsc::channel::<Reply>(capacity);
        let (stop, stop_rx) = watch::channel(false);
        let on_the_way = Arc::new(AtomicUsize::new(0));
        let worker = tokio::spawn(drain_replies(
            rx,
            stop_rx,
            on_the_way.clone(),
            transport.clone(),
            counters.clone(),
        ));
        let queue = Arc::new(Queue {
            tx,
            on_the_way,
            closed: AtomicBool::new(false),
            transport,
            counters,
        });
        let (forwards, forwards_rx) = mpsc::channel::<Forward>(MAX_FORWARDS);
        let forwarder = tokio::spawn(forward_acks(forwards_rx, Arc::downgrade(&queue)));
        let replies = Self {
            queue,
            forwards,
            stop: Arc::new(stop),
        };
        (replies, ReplyTasks { worker, forwarder })
    }

    /// Queues `payload` for `channel`; never waits. Refused (and counted) when full.
    pub(crate) fn send(&self, channel: String, payload: impl Into<Bytes>) {
        self.queue.send(channel, payload.into());
    }

    /// A slot of the ack forwarder, or `None` (counted) when [`MAX_FORWARDS`] requests
    /// are being forwarded and as many wait already.
    pub(crate) fn reserve_forward(&self, channel: &str) -> Option<ForwardSlot<'_>> {
        match self.forwards.try_reserve() {
            Ok(permit) => Some(ForwardSlot(permit)),
            Err(e) => {
                let why = match e {
                    mpsc::error::TrySendError::Full(()) => "ack forwarder full",
                    mpsc::error::TrySendError::Closed(()) => "closed",
                };
                self.queue.counters.reply_dropped(channel, &why);
                None
            }
        }
    }

    /// Stops taking replies: the worker publishes those already queued, then ends (await
    /// its task). Later replies are refused and counted.
    pub(crate) fn shutdown(&self) {
        self.queue.closed.store(true, Ordering::Release);
        let _ = self.stop.send(true);
    }
}

/// The reply worker: publishes queued replies in order, waiting for room in the publish
/// queue, so backpressure from Redis collects here, in a bounded queue, not in tasks.
async fn drain_replies(
    mut rx: mpsc::Receiver<Reply>,
    mut stop: watch::Receiver<bool>,
    on_the_way: Arc<AtomicUsize>,
    transport: Arc<dyn Transport>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut stopping = false;
    loop {
        let n = if stopping {
            rx.recv_many(&mut batch, BATCH).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => n,
                _ = stop.changed() => {
                    // Stop asked (or every handle gone): refuse new replies, drain the rest.
                    stopping = true;
                    rx.close();
                    continue;
                }
            }
        };
        if n == 0 {
            return;
        }
        for r in batch.drain(..) {
            let result = transport
                .publish(r.channel.clone(), r.payload, Mode::Queued, 0)
                .await;
            on_the_way.fetch_sub(1, Ordering::AcqRel);
            if let Err(e) = result {
                counters.reply_dropped(&r.channel, &e);
            }
        }
    }
}

/// Polls every forwarded ack stream (at most [`MAX_FORWARDS`] at once) and queues each
/// ack as a reply. Holds the queue weakly, so that it never keeps a dropped handle's
/// queue (and transport) alive.
async fn forward_acks(mut rx: mpsc::Receiver<Forward>, queue: std::sync::Weak<Queue>) {
    let mut active: SelectAll<Pin<Box<dyn Stream<Item = Reply> + Send>>> = SelectAll::new();
    let mut open = true;
    loop {
        tokio::select! {
            f = rx.recv(), if open && active.len() < MAX_FORWARDS => match f {
                Some(Forward { channel, acks }) => {
                    let replies = acks.map(move |payload| Reply {
                        channel: channel.clone(),
                        payload: payload.into(),
                    });
                    active.push(Box::pin(replies));
                }
                None => open = false,
            },
            Some(reply) = active.next(), if !active.is_empty() => {
                let Some(queue) = queue.upgrade() else { return };
                queue.send(reply.channel, reply.payload);
            }
            else => return,
        }
    }
}

/// How a namespace's replies go on the wire: the classic bytes as they are, or (sharded
/// protocol) as ClusterAdapter envelopes from this server (`uid`, `nsp`).
#[derive(Clone, Debug)]
pub(crate) struct ReplyEncoder(Option<(Arc<str>, String)>);

impl ReplyEncoder {
    /// Classic bytes (`None`), or envelopes from server `uid` in namespace `nsp`.
    pub(crate) fn new(sharded: Option<(Arc<str>, String)>) -> Self {
        Self(sharded)
    }

    /// `classic` (a reply as our responders write it) in this namespace's format;
    /// `None` when the format has no such reply (logged).
    pub(crate) fn encode(&self, classic: Vec<u8>) -> Option<Vec<u8>> {
        let Some((uid, nsp)) = &self.0 else {
            return Some(classic);
        };
        match crate::wire::cluster_format::ClusterMessage::from_reply(&classic, uid, nsp) {
            Ok(msg) => Some(msg.encode()),
            Err(e) => {
                tracing::warn!(error = %e, "reply not sent: no sharded counterpart");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
