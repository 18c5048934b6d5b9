//! In-process transport: every cluster handle connected to one [`InProcessBus`] is one
//! cluster, with Redis pub/sub semantics (patterns, per-publisher ordering, subscriber
//! counts) and no Redis. Each member has a bounded inbox (1024 messages); a publisher
//! waits for room rather than dropping.

use super::{BoxFuture, MessageSink, Mode, Sub, Transport, TryPublish};
use crate::error::Error;
use crate::stats::Counters;
use crate::wire::channel::pattern_matches;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Capacity of each member's inbox.
const INBOX: usize = 1024;

/// An in-process message bus. Clone it to share it; [`Default`] makes a new one.
#[derive(Clone, Default)]
pub struct InProcessBus {
    members: Arc<Mutex<Vec<Member>>>,
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBus").finish_non_exhaustive()
    }
}

impl InProcessBus {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::default()
    }
}

struct Member {
    id: u64,
    subs: Arc<Mutex<HashSet<Sub>>>,
    inbox: mpsc::Sender<Delivery>,
}

struct Delivery {
    channel: Arc<str>,
    pattern: Option<String>,
    payload: Bytes,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) struct MemoryTransport {
    bus: InProcessBus,
    id: u64,
    subs: Arc<Mutex<HashSet<Sub>>>,
    counters: Arc<Counters>,
    open: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl MemoryTransport {
    pub(crate) fn connect(
        bus: &InProcessBus,
        sink: Arc<dyn MessageSink>,
        counters: Arc<Counters>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Delivery>(INBOX);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let subs = Arc::new(Mutex::new(HashSet::new()));
        lock(&bus.members).push(Member {
            id,
            subs: subs.clone(),
            inbox: tx,
        });
        // The member's "subscriber connection": one task delivers in order.
        let task = tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                sink.deliver(&d.channel, d.pattern.as_deref(), &d.payload);
            }
        });
        Self {
            bus: bus.clone(),
            id,
            subs,
            counters,
            open: AtomicBool::new(true),
            task: Mutex::new(Some(task)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Transport for MemoryTransport {
    fn publish(
        &self,
        channel: String,
        payload: Bytes,
        mode: Mode,
        expect: usize,
    ) -> BoxFuture<'_, Result<Option<usize>, Error>> {
        Box::pin(async move {
            if !self.open.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let channel: Arc<str> = channel.into();
            let targets: Vec<(mpsc::Sender<Delivery>, Vec<Option<String>>)> =
                lock(&self.bus.members)
                    .iter()
                    .filter_map(|m| {
                        let subs = lock(&m.subs);
                        let hits: Vec<Option<String>> = subs
                            .iter()
                            .filter_map(|s| match s {
                                Sub::Channel(c) if **c == *channel => Some(None),
                                Sub::Pattern(p) if pattern_matches(p, &channel) => {
                                    Some(Some(p.clone()))
                                }
                                _ => None,
                            })
                            .collect();
                        (!hits.is_empty()).then(|| (m.inbox.clone(), hits))
                    })
                    .collect();
            // Like Redis' PUBLISH answer: one per matching subscription; NUMSUB counts
            // channel subscriptions only.
            let reached: usize = targets.iter().map(|(_, hits)| hits.len()).sum();
            let subscribers = targets
                .iter()
                .filter(|(_, hits)| hits.iter().any(Option::is_none))
                .count();
            if reached < expect {
                self.counters.under_delivered(&channel, expect, reached);
            }
            for (inbox, hits) in targets {
                for pattern in hits {
                    let d = Delivery {
                        channel: channel.clone(),
                        pattern,
                        payload: payload.clone(),
                    };
                    if mode == Mode::Volatile {
                        if inbox.try_send(d).is_err() {
                            Counters::add(&self.counters.volatile_dropped, 1);
                        }
                    } else if inbox.send(d).await.is_err() {
                        // The member closed meanwhile: like a Redis subscriber that left.
                    }
                }
            }
            Counters::add(&self.counters.published, 1);
            Ok(match mode {
                Mode::Confirmed => Some(reached),
                Mode::Counted => Some(subscribers),
                _ => None,
            })
        })
    }

    fn try_publish(&self, channel: String, payload: Bytes) -> TryPublish {
        // A publish here may wait on several inboxes: no cheap non-waiting path, so the
        // reply queue's worker publishes (in order) instead.
        TryPublish::Full(channel, payload)
    }

    fn subscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        lock(&self.subs).insert(sub);
        Box::pin(async { Ok(()) })
    }

    fn unsubscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        lock(&self.subs).remove(&sub);
        Box::pin(async { Ok(()) })
    }

    fn num_sub(&self, channels: Vec<String>) -> BoxFuture<'_, Result<Vec<usize>, Error>> {
        let members = lock(&self.bus.members);
        let counts = channels
            .into_iter()
            .map(|c| {
                let sub = Sub::Channel(c);
                members
                    .iter()
                    .filter(|m| lock(&m.subs).contains(&sub))
                    .count()
            })
            .collect();
        Box::pin(async move { Ok(counts) })
    }

    fn is_connected(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.open.store(false, Ordering::Release);
        lock(&self.bus.members).retain(|m| m.id != self.id);
        let task = lock(&self.task).take();
        Box::pin(async move {
            if let Some(task) = task {
                task.abort();
                let _ = task.await;
            }
        })
    }
}
