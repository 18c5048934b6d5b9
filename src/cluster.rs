//! The cluster handle: owns the transport, the server's uid, the options and the router
//! that hands each received message to the namespace it belongs to.
//!
//! One handle serves one `SocketIo` server and all its namespaces, static and dynamic.
//! It is a cheap clone (an `Arc`); keep a copy before passing it to `with_adapter` to
//! read [`stats`](Cluster::stats) or to [`close`](Cluster::close) it.

use crate::error::Error;
use crate::options::{ClusterOptions, TransportKind};
use crate::stats::{ClusterStats, Counters};
use crate::transport::{MessageSink, Transport, memory::MemoryTransport, redis::RedisTransport};
use dashmap::DashMap;
use socketioxide_core::Uid;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the router calls for a namespace. Implemented by the adapter, type-erased so
/// the handle does not carry the socketioxide emitter type.
pub(crate) trait NsHandler: Send + Sync + 'static {
    /// A message on the namespace's broadcast pattern.
    fn on_broadcast(&self, channel: &str, payload: &[u8]);
}

/// A registered namespace: `id` tells apart two adapters created for the same path
/// (socketioxide may build a dynamic namespace twice when connects race).
#[derive(Clone)]
pub(crate) struct Route {
    pub id: u64,
    pub handler: Arc<dyn NsHandler>,
}

/// Routes by subscription pattern / channel name.
#[derive(Default)]
pub(crate) struct Router {
    patterns: DashMap<String, Route>,
    counters: Arc<Counters>,
}

impl MessageSink for Router {
    fn deliver(&self, channel: &str, pattern: Option<&str>, payload: &[u8]) {
        let Some(pattern) = pattern else { return };
        // Clone the route out so no map lock is held while the adapter works.
        let route = self.patterns.get(pattern).map(|r| r.handler.clone());
        if let Some(handler) = route {
            Counters::add(&self.counters.received, 1);
            handler.on_broadcast(channel, payload);
        }
    }
}

pub(crate) struct Inner {
    pub uid: Uid,
    pub opts: ClusterOptions,
    pub transport: Box<dyn Transport>,
    pub router: Arc<Router>,
    pub counters: Arc<Counters>,
    next_id: AtomicU64,
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
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("uid", &self.inner.uid.to_string())
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to Redis (or the in-process bus) with `opts`.
    ///
    /// Fails with [`Error::Config`] for invalid options or a malformed URL, and with a
    /// Redis or [`Error::ConnectTimeout`] error when Redis cannot be reached within
    /// [`connect_timeout`](ClusterOptions::connect_timeout).
    pub async fn connect(opts: ClusterOptions) -> Result<Self, Error> {
        opts.validate()?;
        let counters = Arc::new(Counters::default());
        let router = Arc::new(Router {
            patterns: DashMap::new(),
            counters: counters.clone(),
        });
        let transport: Box<dyn Transport> = match &opts.transport {
            TransportKind::Redis { url } => Box::new(
                RedisTransport::connect(
                    url,
                    opts.connect_timeout,
                    opts.publish_queue,
                    router.clone(),
                    counters.clone(),
                )
                .await?,
            ),
            TransportKind::InProcess(bus) => Box::new(MemoryTransport::connect(
                bus,
                router.clone(),
                counters.clone(),
            )),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                uid: Uid::new(),
                opts,
                transport,
                router,
                counters,
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// This server's uid: the first element of every message it publishes.
    pub fn uid(&self) -> Uid {
        self.inner.uid
    }

    /// The options this handle was built with.
    pub fn options(&self) -> &ClusterOptions {
        &self.inner.opts
    }

    /// Counters of published, received, dropped and malformed messages.
    pub fn stats(&self) -> ClusterStats {
        self.inner.counters.snapshot()
    }

    /// Whether the subscriber connection is up. While it is down, broadcasts fail fast
    /// with [`Error::Disconnected`] and the connection is re-established in the background.
    pub fn is_connected(&self) -> bool {
        self.inner.transport.is_connected()
    }

    /// Stops the background tasks, after flushing broadcasts already queued, and closes
    /// the Redis connections. Broadcasts after this fail with [`Error::Closed`].
    pub async fn close(&self) {
        self.inner.router.patterns.clear();
        self.inner.transport.close().await;
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn transport(&self) -> &dyn Transport {
        &*self.inner.transport
    }

    pub(crate) fn register_pattern(&self, pattern: &str, route: Route) {
        self.inner.router.patterns.insert(pattern.to_owned(), route);
    }

    /// Removes the route if it still belongs to adapter `id`; true when removed.
    pub(crate) fn unregister_pattern(&self, pattern: &str, id: u64) -> bool {
        self.inner
            .router
            .patterns
            .remove_if(pattern, |_, r| r.id == id)
            .is_some()
    }
}
