//! The reply queue: how this server answers other servers' requests without a task per
//! reply and without ever making the subscriber task wait.
//!
//! Replies (to fetchSockets, allRooms, sockets, legacy remote join/leave/disconnect),
//! server-side acks and forwarded client acks are produced on the subscriber task (or
//! on the ack-forwarding task). When nothing waits in the reply queue and the
//! transport's publish queue has room, a reply goes straight into the publish queue,
//! where it is pipelined with everything else (no extra hop). Otherwise it goes into
//! one bounded queue of [`REPLY_QUEUE`] messages, drained in order by one worker task
//! that waits for room in the publish queue. When Redis is slow and the queue is full, a new
//! reply is refused and counted in [`ClusterStats::replies_dropped`](crate::ClusterStats)
//! (the requester then times out on this server, and its error names what is missing);
//! the same when the transport refuses it (Redis down).
//!
//! Client acks of a broadcast-with-ack request arrive over time (until the requester's
//! ack timeout). Their streams are handed to one forwarding task per cluster handle
//! ([`Replies::forward`]), which polls at most [`MAX_FORWARDS`] of them at once and puts
//! each ack on the reply queue; a request beyond that is refused and counted like a
//! reply (its acks are not forwarded), so no task is spawned per request either.

use crate::stats::Counters;
use crate::transport::{Mode, Transport, TryPublish};
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Capacity of the reply queue, in messages.
pub(crate) const REPLY_QUEUE: usize = 4096;

/// Most broadcast-with-ack requests whose client acks are forwarded at once.
pub(crate) const MAX_FORWARDS: usize = 1024;

/// The encoded acks of one broadcast-with-ack request, as they come.
pub(crate) type AckReplies = Pin<Box<dyn Stream<Item = Vec<u8>> + Send>>;

struct Forward {
    channel: String,
    acks: AckReplies,
}

/// Most replies the worker takes from the queue at once.
const BATCH: usize = 256;

struct Reply {
    channel: String,
    payload: Bytes,
}

/// A cheap-clone handle to the reply queue and the ack forwarder.
#[derive(Clone)]
pub(crate) struct Replies {
    tx: mpsc::Sender<Reply>,
    forwards: mpsc::Sender<Forward>,
    transport: Arc<dyn Transport>,
    counters: Arc<Counters>,
}

impl Replies {
    /// Starts the reply worker and the ack forwarder. Both end when every handle is
    /// dropped, or when the returned tasks are aborted (on close).
    pub(crate) fn start(
        transport: Arc<dyn Transport>,
        counters: Arc<Counters>,
    ) -> (Self, [JoinHandle<()>; 2]) {
        let (mut replies, worker) = Self::with_capacity(transport, counters, REPLY_QUEUE);
        let (forwards, rx) = mpsc::channel::<Forward>(MAX_FORWARDS);
        replies.forwards = forwards;
        let forwarder = tokio::spawn(forward_acks(rx, replies.downgrade()));
        (replies, [worker, forwarder])
    }

    fn with_capacity(
        transport: Arc<dyn Transport>,
        counters: Arc<Counters>,
        capacity: usize,
    ) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Reply>(capacity);
        let worker_counters = counters.clone();
        let worker_transport = transport.clone();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                for r in batch.drain(..) {
                    // Queued: waits for room in the publish queue, so backpressure from
                    // Redis collects here, in a bounded queue, not in tasks.
                    if let Err(e) = worker_transport
                        .publish(r.channel.clone(), r.payload, Mode::Queued)
                        .await
                    {
                        tracing::debug!(error = %e, "cluster adapter: reply not sent");
                        worker_counters.reply_dropped(&r.channel);
                    }
                }
            }
        });
        // No forwarder until `start` installs one: forwards are refused and counted.
        let (forwards, _) = mpsc::channel(1);
        (
            Self {
                tx,
                forwards,
                transport,
                counters,
            },
            task,
        )
    }

    /// A handle that does not keep the forwarder's own input open (else the forwarder
    /// would hold its channel and never see that every real handle is gone).
    fn downgrade(&self) -> WeakReplies {
        WeakReplies {
            tx: self.tx.downgrade(),
            counters: self.counters.clone(),
        }
    }

    /// Forwards each ack of `acks` to `channel` through the reply queue, as they come;
    /// never waits. Refused (and counted once) when [`MAX_FORWARDS`] requests are being
    /// forwarded already.
    pub(crate) fn forward(&self, channel: String, acks: AckReplies) {
        if let Err(e) = self.forwards.try_send(Forward { channel, acks }) {
            let f = match e {
                mpsc::error::TrySendError::Full(f) | mpsc::error::TrySendError::Closed(f) => f,
            };
            self.counters.reply_dropped(&f.channel);
        }
    }

    /// Queues `payload` for `channel`; never waits. Refused (and counted) when full.
    pub(crate) fn send(&self, channel: String, payload: impl Into<Bytes>) {
        let (mut channel, mut payload) = (channel, payload.into());
        // Fast path, only when no earlier reply waits (they stay in order).
        if self.tx.capacity() == self.tx.max_capacity() {
            match self.transport.try_publish(channel, payload) {
                TryPublish::Queued => return,
                TryPublish::Failed(e, channel) => {
                    tracing::debug!(error = %e, "cluster adapter: reply not sent");
                    return self.counters.reply_dropped(&channel);
                }
                TryPublish::Full(c, p) => (channel, payload) = (c, p),
            }
        }
        let reply = Reply { channel, payload };
        if let Err(e) = self.tx.try_send(reply) {
            let reply = match e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            self.counters.reply_dropped(&reply.channel);
        }
    }
}

/// What the forwarder needs of the reply queue.
struct WeakReplies {
    tx: mpsc::WeakSender<Reply>,
    counters: Arc<Counters>,
}

/// Polls every forwarded ack stream (at most [`MAX_FORWARDS`] at once) and queues each
/// ack as a reply.
async fn forward_acks(mut rx: mpsc::Receiver<Forward>, replies: WeakReplies) {
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
                let Some(tx) = replies.tx.upgrade() else { return };
                if let Err(e) = tx.try_send(reply) {
                    let r = match e {
                        mpsc::error::TrySendError::Full(r)
                        | mpsc::error::TrySendError::Closed(r) => r,
                    };
                    replies.counters.reply_dropped(&r.channel);
                }
            }
            else => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::transport::{BoxFuture, Sub};
    use std::sync::Mutex;
    use tokio::sync::Notify;

    /// A transport whose publishes wait until released, and record what they sent.
    #[derive(Default)]
    struct Stalled {
        sent: Mutex<Vec<String>>,
        release: Notify,
    }

    impl Transport for Stalled {
        fn publish(&self, channel: String, _: Bytes, _: Mode) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async move {
                self.release.notified().await;
                self.sent.lock().unwrap().push(channel);
                Ok(())
            })
        }
        fn try_publish(&self, channel: String, payload: Bytes) -> TryPublish {
            // Never room right now: every reply takes the queue.
            TryPublish::Full(channel, payload)
        }
        fn subscribe(&self, _: Sub) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn unsubscribe(&self, _: Sub) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn num_sub(&self, _: Vec<String>) -> BoxFuture<'_, Result<Vec<usize>, Error>> {
            Box::pin(async { Ok(vec![]) })
        }
        fn is_connected(&self) -> bool {
            true
        }
        fn close(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn acks_are_forwarded_as_they_come_and_excess_requests_are_counted() {
        let transport = Arc::new(Stalled::default());
        let counters = Arc::new(Counters::default());
        let (replies, tasks) = Replies::start(transport.clone(), counters.clone());
        // One request whose two acks arrive later.
        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let acks = futures_util::stream::unfold(ack_rx, |mut rx| async move {
            rx.recv().await.map(|a| (a, rx))
        });
        replies.forward("acks".into(), Box::pin(acks));
        // Requests whose acks never come fill the forwarder: polled, then queued.
        for _ in 0..(2 * MAX_FORWARDS - 1) {
            replies.forward("silent".into(), Box::pin(futures_util::stream::pending()));
            // The forwarder takes what it can (up to its limit) as they come.
            tokio::task::yield_now().await;
        }
        assert_eq!(counters.snapshot().replies_dropped, 0);
        replies.forward("refused".into(), Box::pin(futures_util::stream::pending()));
        assert_eq!(counters.snapshot().replies_dropped, 1);
        for (i, ack) in [b"a1", b"a2"].into_iter().enumerate() {
            ack_tx.send(ack.to_vec()).unwrap();
            transport.release.notify_one();
            while transport.sent.lock().unwrap().len() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(*transport.sent.lock().unwrap(), ["acks", "acks"]);
        for t in tasks {
            t.abort();
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_counts_instead_of_spawning() {
        let transport = Arc::new(Stalled::default());
        let counters = Arc::new(Counters::default());
        let (replies, task) = Replies::with_capacity(transport.clone(), counters.clone(), 4);
        // The worker takes the first reply and stalls on it; 4 more fill the queue.
        replies.send("r0".into(), &b"x"[..]);
        tokio::task::yield_now().await;
        for i in 1..=14 {
            replies.send(format!("r{i}"), &b"x"[..]);
        }
        // r0 is in the worker's hands, r1..r4 fill the queue, r5..r14 are refused.
        assert_eq!(counters.snapshot().replies_dropped, 10);
        // Released one by one, the kept ones are sent in order.
        for i in 1..=5 {
            transport.release.notify_one();
            while transport.sent.lock().unwrap().len() < i {
                tokio::task::yield_now().await;
            }
        }
        let sent = transport.sent.lock().unwrap().clone();
        assert_eq!(sent, ["r0", "r1", "r2", "r3", "r4"]);
        // Stopped (as `Cluster::close` does), the queue refuses and counts: no reply
        // waits forever in a queue nobody drains.
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        replies.send("late".into(), &b"x"[..]);
        assert_eq!(counters.snapshot().replies_dropped, 11);
    }
}
