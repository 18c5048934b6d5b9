//! The cluster handle: owns the transport, the server's uid, the options and the router
//! that hands each received message to the namespace it belongs to.
//!
//! One handle serves one `SocketIo` server and all its namespaces, static and dynamic.
//! It is a cheap clone (an `Arc`); keep a copy before passing it to `with_adapter` to
//! read [`stats`](Cluster::stats) or to [`close`](Cluster::close) it.

use crate::SocketInfo;
use crate::error::Error;
use crate::handle::Namespace;
use crate::options::{ClusterOptions, TransportKind};
use crate::requester::Requester;
use crate::server_side::ServerSide;
use crate::stats::{ClusterStats, Counters};
use crate::transport::{MessageSink, Transport, memory::MemoryTransport, redis::RedisTransport};
use crate::wire::request::Selector;
use dashmap::DashMap;
use socketioxide_core::Uid;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// What the router and the namespace handle need from a namespace's adapter.
/// Implemented by the adapter and type-erased, so the handle does not carry the
/// socketioxide emitter type.
pub(crate) trait NsOps: Send + Sync + 'static {
    /// The non-generic request machinery of the namespace.
    fn requester(&self) -> &Requester;
    /// A message on the namespace's broadcast pattern.
    fn on_broadcast(&self, channel: &str, payload: &[u8]);
    /// A message on the namespace's request channel.
    fn on_request(&self, payload: &[u8]);
    /// Ids of the local sockets `sel` selects.
    fn local_ids(&self, sel: &Selector) -> Vec<String>;
    /// Every local room, socket-id rooms included (Node compat).
    fn local_all_rooms(&self) -> Vec<String>;
    /// The local sockets `sel` selects, with their rooms.
    fn local_fetch(&self, sel: &Selector) -> Vec<SocketInfo>;
    /// Local sockets `sel` selects join (`join`) or leave `rooms`.
    fn apply_join_leave(&self, sel: &Selector, rooms: &[String], join: bool);
    /// Disconnect the local sockets `sel` selects.
    fn apply_disconnect(&self, sel: &Selector);
}

/// Which kind of subscription a route serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteKind {
    /// `PSUBSCRIBE <key>#<nsp>#*`.
    Broadcast,
    /// `SUBSCRIBE <key>-request#<nsp>#`.
    Request,
    /// `SUBSCRIBE <key>-response#<nsp>#` and `<key>-response#<nsp>#<uid>#`.
    Response,
}

#[derive(Clone)]
struct Route {
    id: u64,
    kind: RouteKind,
    ns: Weak<dyn NsOps>,
}

/// Routes what the subscriber reads, by subscription (pattern or channel name).
#[derive(Default)]
pub(crate) struct Router {
    routes: DashMap<String, Route>,
    namespaces: DashMap<String, (u64, Weak<dyn NsOps>)>,
    counters: Arc<Counters>,
}

impl MessageSink for Router {
    fn deliver(&self, channel: &str, pattern: Option<&str>, payload: &[u8]) {
        let key = pattern.unwrap_or(channel);
        // Clone the route out so no map lock is held while the adapter works.
        let Some(route) = self.routes.get(key).map(|r| r.clone()) else {
            return;
        };
        let Some(ns) = route.ns.upgrade() else { return };
        match route.kind {
            RouteKind::Broadcast => {
                Counters::add(&self.counters.received, 1);
                ns.on_broadcast(channel, payload);
            }
            RouteKind::Request => ns.on_request(payload),
            RouteKind::Response => ns.requester().on_response(payload),
        }
    }
}

pub(crate) struct Inner {
    pub uid: Uid,
    pub opts: ClusterOptions,
    pub transport: Box<dyn Transport>,
    pub router: Arc<Router>,
    pub counters: Arc<Counters>,
    pub server_side: ServerSide,
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
            routes: DashMap::new(),
            namespaces: DashMap::new(),
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
                server_side: ServerSide::default(),
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

    /// Requests of this server still waiting for replies, over all namespaces, plus
    /// pending [`wait_server_side`](Namespace::wait_server_side) calls. Zero when idle:
    /// entries never outlive their call.
    pub fn pending_requests(&self) -> usize {
        let router = &self.inner.router;
        let requests: usize = router
            .namespaces
            .iter()
            .filter_map(|e| e.1.upgrade())
            .map(|ns| ns.requester().pending.len())
            .sum();
        requests + self.inner.server_side.waiter_count()
    }

    /// The classic adapter API of one namespace (`"/"`, `"/admin"`, a dynamic one once
    /// created): cluster-wide socket ids, rooms, remote join/leave/disconnect, custom
    /// requests and server-side events.
    pub fn of(&self, nsp: &str) -> Namespace {
        Namespace::new(self.clone(), nsp)
    }

    /// Stops the background tasks, after flushing broadcasts already queued, and closes
    /// the Redis connections. Requests in flight fail; broadcasts after this fail with
    /// [`Error::Closed`].
    pub async fn close(&self) {
        self.inner.router.routes.clear();
        self.inner.router.namespaces.clear();
        self.inner.transport.close().await;
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn transport(&self) -> &dyn Transport {
        &*self.inner.transport
    }

    /// Routes `subs` to adapter `id` of namespace `nsp`.
    pub(crate) fn register(
        &self,
        nsp: &str,
        id: u64,
        ns: Weak<dyn NsOps>,
        subs: &[(String, RouteKind)],
    ) {
        for (sub, kind) in subs {
            self.inner.router.routes.insert(
                sub.clone(),
                Route {
                    id,
                    kind: *kind,
                    ns: ns.clone(),
                },
            );
        }
        self.inner
            .router
            .namespaces
            .insert(nsp.to_owned(), (id, ns));
    }

    /// Removes the routes of adapter `id` (a newer adapter for the same namespace keeps
    /// its own). Returns the subscriptions that were removed.
    pub(crate) fn unregister(
        &self,
        nsp: &str,
        id: u64,
        subs: &[(String, RouteKind)],
    ) -> Vec<String> {
        self.inner
            .router
            .namespaces
            .remove_if(nsp, |_, (i, _)| *i == id);
        subs.iter()
            .filter(|(sub, _)| {
                self.inner
                    .router
                    .routes
                    .remove_if(sub, |_, r| r.id == id)
                    .is_some()
            })
            .map(|(sub, _)| sub.clone())
            .collect()
    }

    /// The live adapter of namespace `nsp`.
    pub(crate) fn namespace(&self, nsp: &str) -> Option<Arc<dyn NsOps>> {
        self.inner
            .router
            .namespaces
            .get(nsp)
            .and_then(|e| e.1.upgrade())
    }
}
