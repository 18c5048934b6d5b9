//! The reply queue, its fast path, its shutdown and the ack forwarder, on a transport
//! that stalls on demand.

use super::*;
use crate::error::Error;
use crate::transport::{BoxFuture, Sub};
use std::sync::Mutex;
use tokio::sync::Notify;

/// A transport whose waiting publishes wait until released, and that records what
/// it sent; its non-waiting path has room only while `room` is set.
#[derive(Default)]
struct Stalled {
    sent: Mutex<Vec<String>>,
    release: Notify,
    room: AtomicBool,
}

impl Stalled {
    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }

    /// Releases one waiting publish and waits until it was recorded.
    async fn release_one(&self) {
        let before = self.sent().len();
        self.release.notify_one();
        while self.sent().len() == before {
            tokio::task::yield_now().await;
        }
    }
}

impl Transport for Stalled {
    fn publish(
        &self,
        channel: String,
        _: Bytes,
        _: Mode,
        _: usize,
    ) -> BoxFuture<'_, Result<Option<usize>, Error>> {
        Box::pin(async move {
            self.release.notified().await;
            self.sent.lock().unwrap().push(channel);
            Ok(None)
        })
    }
    fn try_publish(&self, channel: String, payload: Bytes) -> TryPublish {
        if self.room.load(Ordering::Acquire) {
            self.sent.lock().unwrap().push(channel);
            TryPublish::Queued
        } else {
            TryPublish::Full(channel, payload)
        }
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

fn setup(capacity: usize) -> (Arc<Stalled>, Arc<Counters>, Replies, ReplyTasks) {
    let transport = Arc::new(Stalled::default());
    let counters = Arc::new(Counters::default());
    let (replies, tasks) = Replies::with_capacity(transport.clone(), counters.clone(), capacity);
    (transport, counters, replies, tasks)
}

#[tokio::test]
async fn a_full_queue_refuses_and_counts_instead_of_spawning() {
    let (transport, counters, replies, _tasks) = setup(4);
    // The worker takes the first reply and stalls on it; 4 more fill the queue.
    replies.send("r0".into(), &b"x"[..]);
    tokio::task::yield_now().await;
    for i in 1..=14 {
        replies.send(format!("r{i}"), &b"x"[..]);
    }
    // r0 is in the worker's hands, r1..r4 fill the queue, r5..r14 are refused.
    assert_eq!(counters.snapshot().replies_dropped, 10);
    for _ in 0..5 {
        transport.release_one().await;
    }
    assert_eq!(transport.sent(), ["r0", "r1", "r2", "r3", "r4"]);
}

#[tokio::test]
async fn the_fast_path_never_overtakes_a_reply_on_its_way() {
    let (transport, counters, replies, _tasks) = setup(16);
    // No room: "a" takes the queue, and the worker stalls on it.
    replies.send("a".into(), &b"x"[..]);
    tokio::task::yield_now().await;
    // Room now, but "a" is still on its way: "b" queues behind it.
    transport.room.store(true, Ordering::Release);
    replies.send("b".into(), &b"x"[..]);
    assert!(transport.sent().is_empty());
    transport.release_one().await;
    transport.release_one().await;
    assert_eq!(transport.sent(), ["a", "b"]);
    // Nothing on its way: "c" goes straight into the publish queue.
    while replies.queue.on_the_way.load(Ordering::Acquire) > 0 {
        tokio::task::yield_now().await;
    }
    replies.send("c".into(), &b"x"[..]);
    assert_eq!(transport.sent(), ["a", "b", "c"]);
    assert_eq!(counters.snapshot().replies_dropped, 0);
}

#[tokio::test]
async fn shutdown_publishes_what_is_queued_then_refuses() {
    let (transport, counters, replies, tasks) = setup(16);
    for r in ["r0", "r1", "r2"] {
        replies.send(r.into(), &b"x"[..]);
        tokio::task::yield_now().await;
    }
    replies.shutdown();
    tokio::task::yield_now().await;
    replies.send("late".into(), &b"x"[..]);
    assert_eq!(counters.snapshot().replies_dropped, 1);
    for _ in 0..3 {
        transport.release_one().await;
    }
    assert_eq!(transport.sent(), ["r0", "r1", "r2"]);
    // The worker ends by itself once drained.
    tasks.worker.await.unwrap();
    tasks.forwarder.abort();
}

#[tokio::test]
async fn acks_are_forwarded_as_they_come_and_excess_requests_are_counted() {
    let (transport, counters, replies, tasks) = setup(16);
    // One request whose two acks arrive later.
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let acks =
        futures_util::stream::unfold(
            ack_rx,
            |mut rx| async move { rx.recv().await.map(|a| (a, rx)) },
        );
    replies
        .reserve_forward("acks")
        .unwrap()
        .forward("acks".into(), Box::pin(acks));
    // Requests whose acks never come fill the forwarder: polled, then waiting.
    for _ in 0..(2 * MAX_FORWARDS - 1) {
        let slot = replies.reserve_forward("silent").expect("a free slot");
        slot.forward("silent".into(), Box::pin(futures_util::stream::pending()));
        // The forwarder takes what it can (up to its limit) as they come.
        tokio::task::yield_now().await;
    }
    assert_eq!(counters.snapshot().replies_dropped, 0);
    assert!(replies.reserve_forward("refused").is_none());
    assert_eq!(counters.snapshot().replies_dropped, 1);
    for ack in [b"a1", b"a2"] {
        ack_tx.send(ack.to_vec()).unwrap();
        transport.release_one().await;
    }
    assert_eq!(transport.sent(), ["acks", "acks"]);
    tasks.forwarder.abort();
}
