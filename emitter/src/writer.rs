//! The writer task: the one sender of an emitter's messages (shared by its clones and
//! namespaces), fed by a bounded queue.
//!
//! Why a queue: a loop of `emit(..).await` that waited for each `PUBLISH` reply would pay
//! one Redis round trip per call (about 40 µs on loopback, 25,000 messages/s). The
//! writer takes whatever is queued (up to [`MAX_BATCH`] messages) and sends it as one
//! pipeline, so a burst costs one round trip per batch, and the caller of a broadcast
//! only waits for room in the queue.
//!
//! * **Order**: one queue, one task, pipelines in queue order: what one task queued is
//!   sent in that order, and a confirmed operation (join, leave, …) queued after a
//!   broadcast is executed after it.
//! * **Bounded**: at most `queue_capacity` messages wait (default [`DEFAULT_QUEUE`]); a
//!   caller finding it full waits for room (never drops).
//! * **Nothing lost silently**: every message is counted as published or failed
//!   ([`EmitterStats`]); a confirmed caller gets its own outcome; [`flush`] reports the
//!   failures since the previous flush.
//!
//! [`flush`]: crate::Emitter::flush

use crate::Error;
use crate::publish::Publish;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most messages sent in one pipeline.
pub(crate) const MAX_BATCH: usize = 512;
/// Messages that may wait in the queue, by default.
pub const DEFAULT_QUEUE: usize = 65_536;

/// What the writer did since the emitter was made (see [`Emitter::stats`]).
///
/// [`Emitter::stats`]: crate::Emitter::stats
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmitterStats {
    /// Messages Redis accepted.
    pub published: u64,
    /// Messages that failed (Redis error, lost connection, publish timeout): not
    /// delivered, or not known to be.
    pub failed: u64,
}

enum Item {
    Message {
        channel: String,
        payload: Vec<u8>,
        /// A confirmed caller: told the outcome and the count Redis answered.
        done: Option<oneshot::Sender<Result<usize, Error>>>,
    },
    /// Answered once everything queued before it is settled: the failures since the
    /// previous flush.
    Flush(oneshot::Sender<Result<(), Error>>),
}

#[derive(Default)]
struct Counters {
    /// Messages queued and not yet settled.
    pending: AtomicU64,
    published: AtomicU64,
    failed: AtomicU64,
    /// Failures of queued messages since the last flush, and the last one's error.
    unflushed: Mutex<(u64, Option<String>)>,
}

/// The queue's sending end; the task ends when every clone is dropped (after sending
/// what was queued).
pub(crate) struct Writer {
    tx: mpsc::Sender<Item>,
    counters: Arc<Counters>,
    publisher: Arc<dyn Publish>,
    publish_timeout: Duration,
}

impl Counters {
    /// Counts one message's outcome; `queued`: nobody waits for it, so a failure is
    /// for the next flush to report (a confirmed caller got its own error).
    fn settle(&self, res: &Result<usize, Error>, queued: bool) {
        match res {
            Ok(_) => {
                self.published.fetch_add(1, Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Relaxed);
                if queued {
                    let mut u = lock(&self.unflushed);
                    u.0 += 1;
                    u.1 = Some(e.to_string());
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Writer {
    /// Starts the task (in the current tokio runtime).
    pub(crate) fn start(
        publisher: Arc<dyn Publish>,
        capacity: usize,
        publish_timeout: Duration,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(
            publisher.clone(),
            rx,
            counters.clone(),
            publish_timeout,
        ));
        Writer {
            tx,
            counters,
            publisher,
            publish_timeout,
        }
    }

    /// Publishes one message and waits for Redis: at once on the connection when
    /// nothing is queued or in flight (a task hop less: nothing sent before it can be
    /// overtaken), else behind what is queued.
    pub(crate) async fn confirmed(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<usize, Error> {
        if self.counters.pending.load(Relaxed) == 0 {
            let res = tokio::time::timeout(
                self.publish_timeout,
                self.publisher.publish(channel, payload),
            )
            .await
            .map_err(|_| Error::Timeout(self.publish_timeout))
            .and_then(|r| r.map_err(Error::Redis));
            self.counters.settle(&res, false);
            return res;
        }
        match self.queue(channel, payload, true).await? {
            Some(rx) => rx.await.map_err(|_| Error::Closed)?,
            None => Err(Error::Closed),
        }
    }

    /// Queues a message; `confirm`: also returns a receiver of its outcome.
    pub(crate) async fn queue(
        &self,
        channel: String,
        payload: Vec<u8>,
        confirm: bool,
    ) -> Result<Option<oneshot::Receiver<Result<usize, Error>>>, Error> {
        let (done, rx) = if confirm {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let item = Item::Message {
            channel,
            payload,
            done,
        };
        self.counters.pending.fetch_add(1, Relaxed);
        if self.tx.send(item).await.is_err() {
            self.counters.pending.fetch_sub(1, Relaxed);
            return Err(Error::Closed);
        }
        Ok(rx)
    }

    /// Waits until everything queued so far is settled; the failures since the last
    /// flush, if any.
    pub(crate) async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Item::Flush(tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    pub(crate) fn stats(&self) -> EmitterStats {
        EmitterStats {
            published: self.counters.published.load(Relaxed),
            failed: self.counters.failed.load(Relaxed),
        }
    }
}

async fn run(
    publisher: Arc<dyn Publish>,
    mut rx: mpsc::Receiver<Item>,
    counters: Arc<Counters>,
    publish_timeout: Duration,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut msgs = Vec::with_capacity(MAX_BATCH);
    let mut dones = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for item in batch.drain(..) {
            match item {
                Item::Message {
                    channel,
                    payload,
                    done,
                } => {
                    msgs.push((channel, payload));
                    dones.push(done);
                }
                Item::Flush(tx) => {
                    send(
                        &*publisher,
                        &mut msgs,
                        &mut dones,
                        &counters,
                        publish_timeout,
                    )
                    .await;
                    let (n, last) = std::mem::take(&mut *lock(&counters.unflushed));
                    let _ = tx.send(match n {
                        0 => Ok(()),
                        failed => Err(Error::NotPublished {
                            failed,
                            last: last.unwrap_or_default(),
                        }),
                    });
                }
            }
        }
        send(
            &*publisher,
            &mut msgs,
            &mut dones,
            &counters,
            publish_timeout,
        )
        .await;
    }
}

/// Sends `msgs` as one pipeline and settles each (counted; confirmed callers told).
async fn send(
    publisher: &dyn Publish,
    msgs: &mut Vec<(String, Vec<u8>)>,
    dones: &mut Vec<Option<oneshot::Sender<Result<usize, Error>>>>,
    counters: &Counters,
    publish_timeout: Duration,
) {
    if msgs.is_empty() {
        return;
    }

    let results = tokio::time::timeout(
        publish_timeout,
        publisher.publish_batch(std::mem::take(msgs)),
    )
    .await
    .map_err(|_| Error::Timeout(publish_timeout));
    for (i, done) in dones.drain(..).enumerate() {
        let res = match &results {
            Ok(r) => match r.get(i) {
                Some(Ok(count)) => Ok(*count),
                Some(Err(e)) => Err(Error::Redis(e.clone())),
                None => Err(Error::Timeout(publish_timeout)),
            },
            Err(_) => Err(Error::Timeout(publish_timeout)),
        };
        counters.settle(&res, done.is_none());
        counters.pending.fetch_sub(1, Relaxed);
        if let Some(done) = done {
            let _ = done.send(res);
        }
    }
}
