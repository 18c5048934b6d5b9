//! The cluster handle: connects the transport, owns this server's uid, the parts every
//! namespace shares (`shared.rs`), the router and the background tasks (heartbeat,
//! reply worker, ack forwarder), and shuts them down on [`Cluster::close`].
//!
//! One handle serves one `SocketIo` server and all its namespaces, static and dynamic.
//! It is a cheap clone (an `Arc`); keep a copy before passing it to `with_adapter` to
//! read [`stats`](Cluster::stats) or to [`close`](Cluster::close) it.

#[cfg(feature = "metrics")]
mod metrics;
mod open;

use crate::error::Error;
use crate::liveness::{self, Liveness};
use crate::namespace::Namespace;
use crate::options::{ClusterConfig, ClusterOptions};
use crate::replies::{Replies, ReplyTasks};
use crate::requests::NsCore;
use crate::router::{Router, heartbeat_channel};
use crate::shared::Shared;
use crate::stats::{ClusterStats, Counters};
use crate::transport::{MessageSink, Mode, Sub};
use socketioxide_core::Uid;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::task::JoinHandle;

struct Inner {
    uid: Uid,
    shared: Shared,
    router: Arc<Router>,
    /// The heartbeat loop and the ack forwarder, stopped on close.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The reply worker, drained on close.
    reply_worker: Mutex<Option<JoinHandle<()>>>,
    next_adapter_id: AtomicU64,
}

/// A connection to the cluster, shared by every namespace of one socketioxide server.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use socketioxide::{SocketIo, extract::SocketRef};
/// use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions};
///
/// let cluster = Cluster::connect(ClusterOptions::new("redis://127.0.0.1:6379")).await?;
/// let (_layer, io) = SocketIo::builder()
///     .with_adapter::<ClusterAdapter<_>>(cluster.clone())
///     .build_layer();
/// io.ns("/", async |s: SocketRef<ClusterAdapter<_>>| { s.join("lobby"); }).await?;
/// io.to("lobby").emit("hello", "everyone, on every server").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("uid", &self.inner.shared.uid)
            .field("config", &self.inner.shared.config)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Publishes this server's heartbeat until the handle is closed or dropped.
async fn heartbeat_loop(inner: Weak<Inner>, channel: String) {
    let Some(interval) = inner
        .upgrade()
        .map(|i| i.shared.config.heartbeat_interval())
    else {
        return;
    };
    let Some(router) = inner.upgrade().map(|i| i.router.clone()) else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Also at once when a namespace is added: peers count on our namespace list.
        tokio::select! {
            _ = tick.tick() => {}
            _ = router.namespaces_changed() => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let beat = liveness::heartbeat(
            &inner.shared.uid,
            &inner.router.namespace_names(),
            inner.shared.config.names(),
        );
        // A failure is already counted and logged by the transport; the next tick retries.
        let _ = inner
            .shared
            .transport
            .publish(channel.clone(), beat.into(), Mode::Volatile, 0)
            .await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    /// Connects to Redis (or the in-process bus) with `opts`.
    ///
    /// Fails with [`Error::Config`] for invalid options or a malformed URL (see
    /// [`ClusterOptions::build`]), and with a Redis or [`Error::ConnectTimeout`] error
    /// when Redis cannot be reached within
    /// [`connect_timeout`](ClusterOptions::connect_timeout).
    pub async fn connect(opts: ClusterOptions) -> Result<Self, Error> {
        let config = Arc::new(opts.build()?);
        let counters = Arc::new(Counters::default());
        let uid = Uid::new();
        let uid_text: Arc<str> = uid.to_string().into();
        let liveness = Arc::new(Liveness::default());
        let heartbeat = heartbeat_channel(config.key());
        let named_channel = crate::wire::named::channel(config.key(), &uid_text);
        let router = Arc::new(Router::new(
            heartbeat.clone(),
            named_channel.clone(),
            uid_text.clone(),
            counters.clone(),
            liveness.clone(),
            config.max_message_size(),
        ));
        let transport = open::transport(&config, router.clone(), counters.clone()).await?;
        transport.subscribe(Sub::Channel(heartbeat.clone())).await?;
        router.set_named(Arc::new(crate::named::Named::new(
            config.key(),
            &uid_text,
            config.names(),
            transport.clone(),
            liveness.clone(),
            counters.clone(),
            config.heartbeat_timeout(),
            config.requests_timeout(),
        )));
        transport.subscribe(Sub::Channel(named_channel)).await?;
        let (replies, ReplyTasks { worker, forwarder }) =
            Replies::start(transport.clone(), counters.clone());
        let shared = Shared::new(&uid_text, config, transport, replies, counters, liveness);
        let cluster = Self {
            inner: Arc::new(Inner {
                uid,
                shared,
                router,
                tasks: Mutex::new(vec![forwarder]),
                reply_worker: Mutex::new(Some(worker)),
                next_adapter_id: AtomicU64::new(1),
            }),
        };
        let beat = tokio::spawn(heartbeat_loop(Arc::downgrade(&cluster.inner), heartbeat));
        lock(&cluster.inner.tasks).push(beat);
        #[cfg(feature = "metrics")]
        {
            let weak = Arc::downgrade(&cluster.inner);
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(metrics::EVERY);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    let cluster = Cluster { inner };
                    metrics::record(&cluster);
                    metrics::record_namespaces(&cluster).await;
                }
            });
            lock(&cluster.inner.tasks).push(task);
        }
        Ok(cluster)
    }

    /// This server's uid: the first element of every message it publishes.
    pub fn uid(&self) -> Uid {
        self.inner.uid
    }

    /// The validated options this handle was built with.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.shared.config
    }

    /// Counters of published, received, dropped and malformed messages.
    pub fn stats(&self) -> ClusterStats {
        let shared = &self.inner.shared;
        ClusterStats {
            node_stand_ins: shared.stand_ins.len() as u64,
            ..shared.counters.snapshot()
        }
    }

    /// Whether both connections to Redis are up. While the publishing one is down,
    /// broadcasts and requests fail fast with [`Error::Disconnected`]; while only the
    /// subscriber is down, broadcasts still go out and requests (which need replies)
    /// fail fast. Both are re-established in the background.
    pub fn is_connected(&self) -> bool {
        let t = &self.inner.shared.transport;
        t.is_connected() && t.is_publishing()
    }

    /// Requests of this server still waiting for replies, over all namespaces, plus
    /// pending [`wait_server_side`](Namespace::wait_server_side) calls. Zero when idle:
    /// entries never outlive their call.
    pub fn pending_requests(&self) -> usize {
        self.inner.router.pending_requests() + self.inner.shared.callbacks.waiter_count()
    }

    /// Other servers of ours (this crate) heard from within the heartbeat timeout, by
    /// uid. Node servers do not heartbeat and are not listed.
    pub fn live_peers(&self) -> Vec<String> {
        let timeout = self.config().heartbeat_timeout();
        self.inner.shared.liveness.live(timeout)
    }

    /// Servers of ours that stopped heartbeating (hung, or gone without saying so).
    pub fn stale_peers(&self) -> Vec<String> {
        let timeout = self.config().heartbeat_timeout();
        self.inner.shared.liveness.stale(timeout)
    }

    /// The classic adapter API of one namespace (`"/"`, `"/admin"`, a dynamic one once
    /// created): cluster-wide socket ids, rooms, remote join/leave/disconnect, custom
    /// requests and server-side events.
    pub fn of(&self, nsp: &str) -> Namespace {
        let callbacks = self.inner.shared.callbacks.clone();
        Namespace::new(self.inner.router.clone(), callbacks, nsp)
    }

    /// Stops the background tasks, after flushing broadcasts already queued, and closes
    /// the Redis connections. Requests in flight fail; broadcasts after this fail with
    /// [`Error::Closed`]. Calling it again does nothing.
    pub async fn close(&self) {
        let shared = &self.inner.shared;
        if shared.set_closed() {
            return;
        }
        let tasks: Vec<_> = lock(&self.inner.tasks).drain(..).collect();
        for task in tasks {
            task.abort();
        }
        // Replies already queued still go out (before the transport flushes and closes);
        // bounded, as each waits at most for room in the publish queue.
        shared.replies.shutdown();
        let worker = lock(&self.inner.reply_worker).take();
        if let Some(mut worker) = worker {
            let timeout = shared.config.connect_timeout();
            if tokio::time::timeout(timeout, &mut worker).await.is_err() {
                worker.abort();
                tracing::warn!("cluster adapter: replies still queued at close were dropped");
            }
        }
        // Tell our peers at once rather than letting them find out by silence.
        let leave = liveness::leave(&shared.uid);
        let channel = heartbeat_channel(shared.config.key());
        let _ = shared
            .transport
            .publish(channel, leave.into(), Mode::Confirmed, 0)
            .await;
        self.inner.router.connection_lost();
        self.inner.router.clear();
        // The application's closures may hold its `SocketIo`, which holds this handle:
        // drop them all so that nothing keeps the other alive.
        shared.callbacks.clear();
        shared.transport.close().await;
        // The last figures (disconnected, the final counts).
        #[cfg(feature = "metrics")]
        metrics::record(self);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// A new adapter's id (see `Router::register`).
    pub(crate) fn next_adapter_id(&self) -> u64 {
        self.inner.next_adapter_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The router, for adapters to register their routes with.
    pub(crate) fn router(&self) -> Arc<Router> {
        self.inner.router.clone()
    }

    /// The core of a new adapter for namespace `nsp`.
    pub(crate) fn namespace_core(&self, nsp: &str) -> NsCore {
        NsCore::new(self.inner.shared.clone(), nsp)
    }
}
