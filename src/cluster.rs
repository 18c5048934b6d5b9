//! The cluster handle: owns the transport, the server's uid, the options and the router
//! that hands each received message to the namespace it belongs to.
//!
//! One handle serves one `SocketIo` server and all its namespaces, static and dynamic.
//! It is a cheap clone (an `Arc`); keep a copy before passing it to `with_adapter` to
//! read [`stats`](Cluster::stats) or to [`close`](Cluster::close) it.

use crate::SocketInfo;
use crate::error::Error;
use crate::handle::Namespace;
use crate::liveness::Liveness;
use crate::options::{ClusterOptions, TransportKind};
use crate::requester::Requester;
use crate::server_side::ServerSide;
use crate::stats::{ClusterStats, Counters};
use crate::transport::{MessageSink, Transport, memory::MemoryTransport, redis::RedisTransport};
use crate::transport::{Mode, Sub};
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

/// `<key>-heartbeat`: liveness between our servers (see `liveness.rs`).
pub(crate) fn heartbeat_channel(key: &str) -> String {
    format!("{key}-heartbeat")
}

#[derive(Clone)]
struct Route {
    id: u64,
    kind: RouteKind,
    ns: Weak<dyn NsOps>,
}

/// Routes what the subscriber reads, by subscription (pattern or channel name).
pub(crate) struct Router {
    routes: DashMap<String, Route>,
    namespaces: DashMap<String, (u64, Weak<dyn NsOps>)>,
    counters: Arc<Counters>,
    liveness: Arc<Liveness>,
    heartbeat: String,
    uid: String,
}

impl MessageSink for Router {
    fn deliver(&self, channel: &str, pattern: Option<&str>, payload: &[u8]) {
        if pattern.is_none() && channel == self.heartbeat {
            if let Err(e) = self.liveness.on_heartbeat(&self.uid, payload) {
                Counters::add(&self.counters.malformed, 1);
                crate::adapter::log_malformed(channel, &e);
            }
            return;
        }
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

    fn connection_lost(&self) {
        for entry in self.namespaces.iter() {
            if let Some(ns) = entry.1.upgrade() {
                ns.requester().pending.fail_all();
            }
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
    /// Per namespace: how this server describes its sockets to `fetchSockets`.
    pub describers: DashMap<String, crate::handle::Describer>,
    pub liveness: Arc<Liveness>,
    heartbeat_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    closed: std::sync::atomic::AtomicBool,
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

/// Publishes this server's heartbeat until the handle is closed or dropped.
async fn heartbeat_loop(inner: Weak<Inner>, channel: String) {
    let Some(interval) = inner.upgrade().map(|i| i.opts.heartbeat_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let beat = crate::liveness::heartbeat(&inner.uid.to_string());
        // A failure is already counted and logged by the transport; the next tick retries.
        let _ = inner
            .transport
            .publish(channel.clone(), beat.into(), Mode::Volatile)
            .await;
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
        let uid = Uid::new();
        let liveness = Arc::new(Liveness::default());
        let heartbeat = heartbeat_channel(&opts.key);
        let router = Arc::new(Router {
            routes: DashMap::new(),
            namespaces: DashMap::new(),
            counters: counters.clone(),
            liveness: liveness.clone(),
            heartbeat: heartbeat.clone(),
            uid: uid.to_string(),
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
        transport.subscribe(Sub::Channel(heartbeat.clone())).await?;
        let cluster = Self {
            inner: Arc::new(Inner {
                uid,
                opts,
                transport,
                router,
                counters,
                server_side: ServerSide::default(),
                describers: DashMap::new(),
                liveness,
                heartbeat_task: std::sync::Mutex::new(None),
                closed: std::sync::atomic::AtomicBool::new(false),
                next_id: AtomicU64::new(1),
            }),
        };
        let task = tokio::spawn(heartbeat_loop(Arc::downgrade(&cluster.inner), heartbeat));
        *cluster
            .inner
            .heartbeat_task
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(cluster)
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

    /// Other servers of ours (this crate) heard from within the heartbeat timeout, by
    /// uid. Node servers do not heartbeat and are not listed.
    pub fn live_peers(&self) -> Vec<String> {
        self.inner.liveness.live(self.inner.opts.heartbeat_timeout)
    }

    /// Servers of ours that stopped heartbeating (hung, or gone without saying so).
    pub fn stale_peers(&self) -> Vec<String> {
        self.inner.liveness.stale(self.inner.opts.heartbeat_timeout)
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
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let task = self
            .inner
            .heartbeat_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
        }
        // Tell our peers at once rather than letting them find out by silence.
        let leave = crate::liveness::leave(&self.inner.uid.to_string());
        let channel = heartbeat_channel(&self.inner.opts.key);
        let _ = self
            .inner
            .transport
            .publish(channel, leave.into(), Mode::Confirmed)
            .await;
        self.inner.router.connection_lost();
        self.inner.router.routes.clear();
        self.inner.router.namespaces.clear();
        // The application's closures may hold its `SocketIo`, which holds this handle:
        // drop them so that nothing keeps the other alive.
        self.inner.server_side.clear();
        self.inner.describers.clear();
        self.inner.transport.close().await;
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
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
