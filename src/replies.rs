//! The reply queue: how this server answers other servers' requests without a task per
//! reply and without ever making the subscriber task wait.
//!
//! Replies (to fetchSockets, allRooms, sockets, legacy remote join/leave/disconnect),
//! server-side acks and forwarded client acks are produced on the subscriber task (or
//! on an ack-forwarding task). They go into one bounded queue of [`REPLY_QUEUE`]
//! messages, drained by one worker task into the transport's publish queue, where they
//! are pipelined with everything else. When Redis is slow and the queue is full, a new
//! reply is refused and counted in [`ClusterStats::replies_dropped`](crate::ClusterStats)
//! (the requester then times out on this server, and its error names what is missing);
//! the same when the transport refuses it (Redis down).

use crate::stats::Counters;
use crate::transport::{Mode, Transport};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Capacity of the reply queue, in messages.
pub(crate) const REPLY_QUEUE: usize = 4096;

/// Most replies the worker takes from the queue at once.
const BATCH: usize = 256;

struct Reply {
    channel: String,
    payload: Bytes,
}

/// A cheap-clone handle to the reply queue.
#[derive(Clone)]
pub(crate) struct Replies {
    tx: mpsc::Sender<Reply>,
    counters: Arc<Counters>,
}

impl Replies {
    /// Starts the worker. It ends when every handle is dropped, or when the returned
    /// task is aborted (on close).
    pub(crate) fn start(
        transport: Arc<dyn Transport>,
        counters: Arc<Counters>,
    ) -> (Self, JoinHandle<()>) {
        Self::with_capacity(transport, counters, REPLY_QUEUE)
    }

    fn with_capacity(
        transport: Arc<dyn Transport>,
        counters: Arc<Counters>,
        capacity: usize,
    ) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Reply>(capacity);
        let worker_counters = counters.clone();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                for r in batch.drain(..) {
                    // Queued: waits for room in the publish queue, so backpressure from
                    // Redis collects here, in a bounded queue, not in tasks.
                    if let Err(e) = transport
                        .publish(r.channel.clone(), r.payload, Mode::Queued)
                        .await
                    {
                        tracing::debug!(error = %e, "cluster adapter: reply not sent");
                        worker_counters.reply_dropped(&r.channel);
                    }
                }
            }
        });
        (Self { tx, counters }, task)
    }

    /// Queues `payload` for `channel`; never waits. Refused (and counted) when full.
    pub(crate) fn send(&self, channel: String, payload: impl Into<Bytes>) {
        let reply = Reply {
            channel,
            payload: payload.into(),
        };
        if let Err(e) = self.tx.try_send(reply) {
            let reply = match e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            self.counters.reply_dropped(&reply.channel);
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
