//! The router: hands each message the subscriber connection reads to the namespace (and
//! the part of it) that subscribed to it, and heartbeats to the liveness table.
//!
//! It is the transport's [`MessageSink`], called on the subscriber task: nothing here
//! may block.

use crate::liveness::Liveness;
use crate::requests::NsCore;
use crate::socket_info::SocketInfo;
use crate::stats::Counters;
use crate::transport::{MessageSink, Sub};
use crate::wire::request::Selector;
use crate::wire::screen::{self, Refusal};
use dashmap::DashMap;
use std::sync::{Arc, Weak};

/// What the router and the namespace API need from a namespace's adapter. Implemented by
/// the adapter and type-erased, so neither carries the socketioxide emitter type.
pub(crate) trait NsOps: Send + Sync + 'static {
    /// The non-generic core of the namespace.
    fn core(&self) -> &NsCore;
    /// A message on the namespace's broadcast pattern.
    fn on_broadcast(&self, channel: &str, payload: &[u8]);
    /// A message on the namespace's request channel.
    fn on_request(&self, payload: &[u8]);
    /// A ClusterAdapter message on the sharded protocol's main channel.
    fn on_cluster_message(&self, channel: &str, payload: &[u8]);
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
    /// `SUBSCRIBE <key>-response#<nsp>#` and `<key>-response#<nsp>#<uid>#` (sharded:
    /// `SSUBSCRIBE <key>#<nsp>#<uid>#`).
    Response,
    /// Sharded protocol: `SSUBSCRIBE <key>#<nsp>#` (and room channels).
    Cluster,
}

/// One subscription of a namespace, and what it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) kind: RouteKind,
}

impl Route {
    /// The transport subscription: a pattern for broadcasts, channels otherwise.
    pub(crate) fn sub(&self) -> Sub {
        match self.kind {
            RouteKind::Broadcast => Sub::Pattern(self.name.clone()),
            _ => Sub::Channel(self.name.clone()),
        }
    }
}

/// `<key>-heartbeat`: liveness between our servers (see `liveness.rs`).
pub(crate) fn heartbeat_channel(key: &str) -> String {
    format!("{key}-heartbeat")
}

#[derive(Clone)]
struct Target {
    /// Which adapter of the namespace (a namespace deleted and created again gets a
    /// new adapter; the old one's late unregistering must not remove the new routes).
    adapter: u64,
    kind: RouteKind,
    ns: Weak<dyn NsOps>,
}

/// Routes what the subscriber reads, by subscription (pattern or channel name).
pub(crate) struct Router {
    routes: DashMap<String, Target>,
    namespaces: DashMap<String, (u64, Weak<dyn NsOps>)>,
    counters: Arc<Counters>,
    liveness: Arc<Liveness>,
    heartbeat: String,
    uid: Arc<str>,
    /// Woken when a namespace is added, so our peers learn it from a heartbeat at once.
    namespaces_changed: tokio::sync::Notify,
    /// `ClusterOptions::max_message_size`.
    max_message_size: usize,
    /// This server's named channel (`<key>-named#<uid>#`) and what handles it.
    named_channel: String,
    named: std::sync::OnceLock<Arc<crate::named::Named>>,
}

impl Router {
    pub(crate) fn new(
        heartbeat: String,
        named_channel: String,
        uid: Arc<str>,
        counters: Arc<Counters>,
        liveness: Arc<Liveness>,
        max_message_size: usize,
    ) -> Self {
        Self {
            routes: DashMap::new(),
            namespaces: DashMap::new(),
            counters,
            liveness,
            heartbeat,
            uid,
            namespaces_changed: tokio::sync::Notify::new(),
            max_message_size,
            named_channel,
            named: std::sync::OnceLock::new(),
        }
    }

    /// Hands this server's named channel to `named` (once, at connect).
    pub(crate) fn set_named(&self, named: Arc<crate::named::Named>) {
        let _ = self.named.set(named);
    }

    /// The named-servers machinery.
    pub(crate) fn named(&self) -> Option<Arc<crate::named::Named>> {
        self.named.get().cloned()
    }

    /// Resolves when a namespace was added since the last call.
    pub(crate) async fn namespaces_changed(&self) {
        self.namespaces_changed.notified().await;
    }

    /// Why a message on `channel` (matched by `pattern`) that starts with `head` and is
    /// `len` bytes long cannot be used (see `wire::screen`); `Ok` when it may be (or is
    /// not on one of our routes: [`deliver`](MessageSink::deliver) ignores it).
    fn refusal(
        &self,
        channel: &str,
        pattern: Option<&str>,
        head: &[u8],
        len: usize,
    ) -> Result<(), Refusal> {
        let check = if pattern.is_none() && channel == self.heartbeat {
            screen::heartbeat
        } else if pattern.is_none() && channel == self.named_channel {
            screen::named
        } else {
            match self.routes.get(pattern.unwrap_or(channel)).map(|r| r.kind) {
                Some(RouteKind::Broadcast) => screen::broadcast,
                Some(RouteKind::Request | RouteKind::Response | RouteKind::Cluster) => {
                    screen::request
                }
                None => return Ok(()),
            }
        };
        if len > self.max_message_size {
            return Err("larger than max_message_size");
        }
        check(head, len)
    }

    /// Routes `routes` to adapter `adapter` of namespace `nsp`.
    pub(crate) fn register(&self, nsp: &str, adapter: u64, ns: Weak<dyn NsOps>, routes: &[Route]) {
        self.add_routes(adapter, &ns, routes);
        if self
            .namespaces
            .insert(nsp.to_owned(), (adapter, ns))
            .is_none()
        {
            self.namespaces_changed.notify_one();
        }
    }

    /// Removes the routes of adapter `adapter` (a newer adapter for the same namespace
    /// keeps its own). Returns the routes that were removed.
    pub(crate) fn unregister(&self, nsp: &str, adapter: u64, routes: &[Route]) -> Vec<Route> {
        self.namespaces.remove_if(nsp, |_, (a, _)| *a == adapter);
        routes
            .iter()
            .filter(|r| {
                self.routes
                    .remove_if(&r.name, |_, t| t.adapter == adapter)
                    .is_some()
            })
            .cloned()
            .collect()
    }

    /// Adds routes of adapter `adapter` of a namespace already registered (the sharded
    /// protocol's room channels).
    pub(crate) fn add_routes(&self, adapter: u64, ns: &Weak<dyn NsOps>, routes: &[Route]) {
        for r in routes {
            self.routes.insert(
                r.name.clone(),
                Target {
                    adapter,
                    kind: r.kind,
                    ns: ns.clone(),
                },
            );
        }
    }

    /// Removes routes of adapter `adapter`, leaving its namespace registered.
    pub(crate) fn remove_routes(&self, adapter: u64, names: &[String]) {
        for name in names {
            self.routes.remove_if(name, |_, t| t.adapter == adapter);
        }
    }

    /// The live adapter of namespace `nsp`.
    pub(crate) fn namespace(&self, nsp: &str) -> Option<Arc<dyn NsOps>> {
        self.namespaces.get(nsp).and_then(|e| e.1.upgrade())
    }

    /// The namespaces served (for the heartbeat).
    pub(crate) fn namespace_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.namespaces.iter().map(|e| e.key().clone()).collect();
        names.sort();
        names
    }

    /// Requests in flight over every namespace.
    pub(crate) fn pending_requests(&self) -> usize {
        self.live_namespaces()
            .iter()
            .map(|ns| ns.core().pending().len())
            .sum()
    }

    /// Forgets every route (on close).
    pub(crate) fn clear(&self) {
        self.routes.clear();
        self.namespaces.clear();
    }

    fn live_namespaces(&self) -> Vec<Arc<dyn NsOps>> {
        self.namespaces
            .iter()
            .filter_map(|e| e.1.upgrade())
            .collect()
    }
}

impl MessageSink for Router {
    fn screen(&self, channel: &[u8], pattern: Option<&[u8]>, head: &[u8], len: usize) -> bool {
        // Names that are not UTF-8 are none of ours: let `deliver` ignore them.
        let Ok(channel) = std::str::from_utf8(channel) else {
            return true;
        };
        let pattern = match pattern.map(std::str::from_utf8) {
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => return true,
            None => None,
        };
        match self.refusal(channel, pattern, head, len) {
            Ok(()) => true,
            Err(reason) => {
                self.counters.malformed(channel, &reason);
                false
            }
        }
    }

    fn deliver(&self, channel: &str, pattern: Option<&str>, payload: &[u8]) {
        // Transports without a screen of their own (the in-process bus) get the same
        // fast refusals here; for the Redis subscriber this repeats a passed check.
        let head = &payload[..payload.len().min(screen::HEAD)];
        if !self.screen(
            channel.as_bytes(),
            pattern.map(str::as_bytes),
            head,
            payload.len(),
        ) {
            return;
        }
        if pattern.is_none() && channel == self.heartbeat {
            match self.liveness.on_heartbeat(&self.uid, payload) {
                // An emitter's probe: heartbeat now (coalesced with other wake-ups).
                Ok(true) => self.namespaces_changed.notify_one(),
                Ok(false) => {}
                Err(e) => self.counters.malformed(channel, &e),
            }
            return;
        }
        if pattern.is_none() && channel == self.named_channel {
            if let Some(named) = self.named.get() {
                named.on_message(payload);
            }
            return;
        }
        let key = pattern.unwrap_or(channel);
        // Clone the target out so no map lock is held while the adapter works.
        let Some(target) = self.routes.get(key).map(|r| r.clone()) else {
            return;
        };
        let Some(ns) = target.ns.upgrade() else {
            return;
        };
        match target.kind {
            RouteKind::Broadcast => {
                Counters::add(&self.counters.received, 1);
                ns.on_broadcast(channel, payload);
            }
            RouteKind::Request => ns.on_request(payload),
            RouteKind::Cluster => ns.on_cluster_message(channel, payload),
            RouteKind::Response => ns.core().on_response(payload),
        }
    }

    fn connection_lost(&self) {
        for ns in self.live_namespaces() {
            ns.core().fail_pending();
        }
    }
}
