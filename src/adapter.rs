//! The socketioxide [`CoreAdapter`] implementation: one per namespace, static or dynamic.
//!
//! Operations that reach other servers publish on the namespace's channels (see
//! `broadcast.rs` for broadcasts, `requester.rs` for requests); what other servers
//! publish arrives through the cluster's router (`on_broadcast`, `on_request`, responses
//! to the requester). Local delivery always goes through socketioxide's local adapter.

use crate::SocketInfo;
use crate::ack_stream::AckStream;
use crate::broadcast::selector;
use crate::cluster::{Cluster, NsOps, RouteKind};
use crate::error::{Error, Partial};
use crate::message::NodePacket;
use crate::packet::{self, ParserKind};
use crate::requester::Requester;
use crate::transport::Sub;
use crate::wire::request::{Request, Response, Selector};
use rmpv::Value;
use socketioxide_core::{
    Sid, Uid,
    adapter::{
        BroadcastFlags, BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter,
        RemoteSocketData, Room, RoomParam, SocketEmitter, Spawnable,
        errors::{AdapterError, BroadcastError},
    },
    packet::Packet,
};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use crate::broadcast::log_malformed;

/// The cluster adapter. Name it in `SocketIo::builder().with_adapter::<ClusterAdapter<_>>(cluster)`.
pub struct ClusterAdapter<E> {
    pub(crate) req: Requester,
    pub(crate) local: CoreLocalAdapter<E>,
    pub(crate) parser_kind: ParserKind,
    id: u64,
}

impl<E> DefinedAdapter for ClusterAdapter<E> {}

/// Returned by `io.ns(..)`: await it (or let socketioxide spawn it for dynamic
/// namespaces). The namespace exists once its Redis subscriptions are confirmed.
#[must_use = "the namespace is only registered once this future completes"]
pub struct InitRes(Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>);

impl Future for InitRes {
    type Output = Result<(), Error>;
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl Spawnable for InitRes {
    fn spawn(self) {
        tokio::spawn(async move {
            if let Err(e) = self.await {
                tracing::error!(error = %e, "cluster adapter: namespace initialisation failed");
            }
        });
    }
}

impl<E: SocketEmitter> ClusterAdapter<E> {
    /// The subscriptions of this namespace: broadcast pattern, request channel, shared and
    /// own response channels (Node subscribes to the same set).
    fn subscriptions(&self) -> Vec<(String, RouteKind)> {
        let c = &self.req.channels;
        vec![
            (c.pattern().to_owned(), RouteKind::Broadcast),
            (c.request().to_owned(), RouteKind::Request),
            (c.response().to_owned(), RouteKind::Response),
            (self.req.own_response.clone(), RouteKind::Response),
        ]
    }

    fn cluster(&self) -> &Cluster {
        &self.req.cluster
    }

    fn adapter_err(e: Error) -> BroadcastError {
        BroadcastError::Adapter(AdapterError::from(e))
    }
}

fn sub_of((s, kind): &(String, RouteKind)) -> Sub {
    match kind {
        RouteKind::Broadcast => Sub::Pattern(s.clone()),
        _ => Sub::Channel(s.clone()),
    }
}

impl<E: SocketEmitter> CoreAdapter<E> for ClusterAdapter<E> {
    type Error = Error;
    type State = Cluster;
    type AckStream = AckStream<E>;
    type InitRes = InitRes;

    fn new(state: &Cluster, local: CoreLocalAdapter<E>) -> Self {
        let nsp = local.path().to_string();
        Self {
            req: Requester::new(state.clone(), &nsp),
            parser_kind: ParserKind::detect(local.parser()),
            local,
            id: state.next_id(),
        }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) -> InitRes {
        InitRes(Box::pin(async move {
            let subs = self.subscriptions();
            let weak: std::sync::Weak<dyn NsOps> =
                Arc::downgrade(&(self.clone() as Arc<dyn NsOps>));
            self.cluster().register(&self.req.nsp, self.id, weak, &subs);
            for sub in &subs {
                if let Err(e) = self.cluster().transport().subscribe(sub_of(sub)).await {
                    self.cluster().unregister(&self.req.nsp, self.id, &subs);
                    return Err(e);
                }
            }
            on_success();
            Ok(())
        }))
    }

    fn close(&self) -> impl Future<Output = Result<(), Error>> + Send {
        // Unregister synchronously: `io.delete_ns` polls this future only once. The
        // unsubscribes then run on their own so they happen even then.
        let subs = self.subscriptions();
        let removed = self.cluster().unregister(&self.req.nsp, self.id, &subs);
        let cluster = self.cluster().clone();
        let task = tokio::spawn(async move {
            for sub in subs.iter().filter(|(s, _)| removed.contains(s)) {
                cluster.transport().unsubscribe(sub_of(sub)).await?;
            }
            Ok::<(), Error>(())
        });
        async move { task.await.unwrap_or(Ok(())) }
    }

    async fn server_count(&self) -> Result<u16, Error> {
        let n = self.req.server_count().await?;
        Ok(u16::try_from(n).unwrap_or(u16::MAX))
    }

    async fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), BroadcastError> {
        let mut remote = Ok(());
        if !opts.is_local(self.cluster().uid()) {
            remote = self.publish_broadcast(&packet, &opts).await;
        }
        self.resolve_socket_rooms(&opts);
        let local = self.local.broadcast(packet, opts);
        if let Err(errs) = &local {
            crate::stats::Counters::add(
                &self.cluster().inner.counters.delivery_failed,
                errs.len() as u64,
            );
        }
        local.map_err(BroadcastError::Socket)?;
        remote.map_err(Self::adapter_err)
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Error> {
        self.resolve_socket_rooms(&opts);
        if opts.is_local(self.cluster().uid()) {
            let (stream, _) = self.local.broadcast_with_ack(packet, opts, timeout);
            return Ok(AckStream::local(stream));
        }
        let timeout = timeout.unwrap_or_else(|| self.local.ack_timeout());
        let data = packet::node_data(self.local.parser(), &packet)
            .transpose()?
            .unwrap_or_default();
        // Hung peers (see `liveness`) would never send their count: not waited for.
        let (mut others, _hung) = self.req.others().await?;
        let pending = self.req.register();
        let wire = crate::broadcast::wire_options(&opts);
        if wire.is_none() {
            others = 0; // targets nobody: nothing is sent, no count will come back
        }
        if others > 0
            && let Some(mut wire) = wire
        {
            // Node compat: the requester tells receivers how long acks are awaited.
            wire.flags.push((
                "timeout".to_owned(),
                Value::from(timeout.as_millis() as u64),
            ));
            let req = Request::Broadcast {
                uid: Some(self.req.uid()),
                request_id: pending.id.clone(),
                packet: NodePacket::event(data, &self.req.nsp),
                opts: wire,
            };
            self.req.send(&req).await?;
        }
        let (stream, _) = self.local.broadcast_with_ack(packet, opts, Some(timeout));
        Ok(AckStream::cluster(
            stream,
            pending,
            others,
            timeout,
            self.parser_kind,
        ))
    }

    async fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), Error> {
        let rooms: Vec<Room> = rooms.into_room_iter().collect();
        self.join_leave(opts, rooms, true).await
    }

    async fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), Error> {
        let rooms: Vec<Room> = rooms.into_room_iter().collect();
        self.join_leave(opts, rooms, false).await
    }

    async fn disconnect_socket(&self, opts: BroadcastOptions) -> Result<(), BroadcastError> {
        if !opts.is_local(self.cluster().uid())
            && let Some(sel) = selector(&opts)
        {
            let req = Request::Disconnect {
                uid: Some(self.req.uid()),
                opts: sel,
                close: false,
            };
            self.req
                .send_confirmed(&req)
                .await
                .map_err(Self::adapter_err)?;
        }
        self.resolve_socket_rooms(&opts);
        self.local
            .disconnect_socket(opts)
            .map_err(BroadcastError::Socket)
    }

    async fn rooms(&self, opts: BroadcastOptions) -> Result<Vec<Room>, Error> {
        self.resolve_socket_rooms(&opts);
        let mut rooms: BTreeSet<String> = self
            .local
            .rooms(opts.clone())
            .into_iter()
            .map(|r| r.to_string())
            .collect();
        if !opts.is_local(self.cluster().uid())
            && let Some(sel) = selector(&opts)
        {
            let everyone = sel.rooms.is_empty() && sel.except.is_empty();
            if everyone {
                // io.rooms(): every room of the cluster (ALL_ROOMS).
                rooms.extend(self.remote_all_rooms().await?);
            } else {
                for s in self.remote_fetch(sel).await? {
                    rooms.extend(s.rooms);
                }
            }
        }
        Ok(rooms.into_iter().map(Room::Owned).collect())
    }

    async fn fetch_sockets(&self, opts: BroadcastOptions) -> Result<Vec<RemoteSocketData>, Error> {
        self.resolve_socket_rooms(&opts);
        let mut out = self.local.fetch_sockets(opts.clone());
        if !opts.is_local(self.cluster().uid())
            && let Some(sel) = selector(&opts)
        {
            let ns = self.local.path().clone();
            // socketioxide ids are 16 characters; Node socket ids (20) cannot be
            // represented as `RemoteSocketData` and are left out here (the handle's
            // string-id calls include them).
            out.extend(self.remote_fetch(sel).await?.into_iter().filter_map(|s| {
                Some(RemoteSocketData {
                    id: Sid::from_str(&s.id).ok()?,
                    server_id: Uid::ZERO,
                    ns: ns.clone(),
                })
            }));
        }
        Ok(out)
    }

    fn get_local(&self) -> &CoreLocalAdapter<E> {
        &self.local
    }
}

impl<E: SocketEmitter> ClusterAdapter<E> {
    async fn join_leave(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
        join: bool,
    ) -> Result<(), Error> {
        if !opts.is_local(self.cluster().uid())
            && let Some(sel) = selector(&opts)
        {
            let req = Request::JoinLeave {
                uid: Some(self.req.uid()),
                join,
                opts: sel,
                rooms: rooms.iter().map(|r| Value::from(r.as_ref())).collect(),
            };
            self.req.send_confirmed(&req).await?;
        }
        self.resolve_socket_rooms(&opts);
        if join {
            self.local.add_sockets(opts, rooms);
        } else {
            self.local.del_sockets(opts, rooms);
        }
        Ok(())
    }

    /// REMOTE_FETCH on the other servers.
    pub(crate) async fn remote_fetch(&self, sel: Selector) -> Result<Vec<SocketInfo>, Error> {
        remote_fetch(&self.req, sel).await
    }

    /// ALL_ROOMS on the other servers.
    pub(crate) async fn remote_all_rooms(&self) -> Result<Vec<String>, Error> {
        remote_all_rooms(&self.req).await
    }
}

/// REMOTE_FETCH: the matching sockets of every other server.
pub(crate) async fn remote_fetch(req: &Requester, sel: Selector) -> Result<Vec<SocketInfo>, Error> {
    let uid = req.uid();
    let g = req
        .ask(
            |request_id| Request::Fetch {
                uid: Some(uid),
                request_id,
                opts: sel,
            },
            |r| r.get("sockets").is_some(),
        )
        .await?;
    g.into_result(
        "fetchSockets",
        req,
        |replies| {
            replies
                .iter()
                .filter_map(|r| match r.get("sockets") {
                    Some(Value::Array(s)) => Some(
                        s.iter()
                            .filter_map(SocketInfo::from_node)
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                })
                .flatten()
                .collect()
        },
        |s: &Vec<SocketInfo>| Partial::Sockets(s.clone()),
    )
}

/// ALL_ROOMS: every room of every other server.
pub(crate) async fn remote_all_rooms(req: &Requester) -> Result<Vec<String>, Error> {
    let uid = req.uid();
    let g = req
        .ask(
            |request_id| Request::AllRooms {
                uid: Some(uid),
                request_id,
            },
            |r| r.get("rooms").is_some(),
        )
        .await?;
    g.into_result("allRooms", req, names_of("rooms"), |n: &Vec<String>| {
        Partial::Names(n.clone())
    })
}

/// Collects the names in field `field` of every reply.
pub(crate) fn names_of(field: &'static str) -> impl FnOnce(Vec<Response>) -> Vec<String> {
    move |replies| {
        replies
            .iter()
            .filter_map(|r| match r.get(field) {
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .filter_map(crate::codec::room_name)
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// The application's handshake fields for a socket, over the placeholder's, so that
/// Node code reading any of them finds a value of the usual type. Anything but a JSON
/// object is ignored (Node code expects an object).
fn complete_handshake(given: Option<serde_json::Value>) -> serde_json::Value {
    let mut base = handshake_placeholder();
    match (&mut base, given) {
        (serde_json::Value::Object(base), Some(serde_json::Value::Object(fields))) => {
            base.extend(fields);
        }
        (_, None) => {}
        (_, Some(other)) => {
            tracing::debug!(handshake = %other, "describe_sockets: handshake is not an object; ignored");
        }
    }
    base
}

/// A minimal socket.io handshake for our sockets in fetchSockets replies: socketioxide
/// does not expose a socket's handshake to the adapter, and Node code may read fields.
fn handshake_placeholder() -> serde_json::Value {
    serde_json::json!({
        "headers": {}, "time": "", "address": "", "xdomain": false, "secure": false,
        "issued": 0, "url": "", "query": {}, "auth": {}
    })
}

impl<E: SocketEmitter> NsOps for ClusterAdapter<E> {
    fn requester(&self) -> &Requester {
        &self.req
    }

    fn on_broadcast(&self, channel: &str, payload: &[u8]) {
        self.receive_broadcast(channel, payload);
    }

    fn on_request(&self, payload: &[u8]) {
        self.receive_request(payload);
    }

    fn local_ids(&self, sel: &Selector) -> Vec<String> {
        let opts = self.selector_options(sel);
        self.local
            .sockets(opts)
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn local_all_rooms(&self) -> Vec<String> {
        let mut all = BroadcastOptions::default();
        all.add_flag(BroadcastFlags::Broadcast);
        let sids = self.local.sockets(all.clone());
        let mut rooms: BTreeSet<String> = self
            .local
            .rooms(all)
            .into_iter()
            .map(|r| r.to_string())
            .collect();
        // Node compat: every socket is in the room named by its id.
        rooms.extend(sids.iter().map(|s| s.to_string()));
        rooms.into_iter().collect()
    }

    fn local_fetch(&self, sel: &Selector) -> Vec<SocketInfo> {
        let opts = self.selector_options(sel);
        let describe = self
            .cluster()
            .inner
            .describers
            .get(&self.req.nsp)
            .map(|d| d.clone());
        self.local
            .sockets(opts)
            .into_iter()
            .map(|sid| {
                let id = sid.to_string();
                let (data, handshake) = describe
                    .as_ref()
                    .and_then(|d| crate::server_side::guarded("describe_sockets", || d(&id)))
                    .unwrap_or_default()
                    .into_parts();
                let mut rooms: BTreeSet<String> = self
                    .local
                    .socket_rooms(sid)
                    .into_iter()
                    .map(|r| r.to_string())
                    .collect();
                rooms.insert(id.clone());
                SocketInfo {
                    id,
                    rooms: rooms.into_iter().collect(),
                    data,
                    handshake: complete_handshake(handshake),
                }
            })
            .collect()
    }

    fn apply_join_leave(&self, sel: &Selector, rooms: &[String], join: bool) {
        let opts = self.selector_options(sel);
        let rooms: Vec<Room> = rooms.iter().cloned().map(Room::Owned).collect();
        if join {
            self.local.add_sockets(opts, rooms);
        } else {
            self.local.del_sockets(opts, rooms);
        }
    }

    fn apply_disconnect(&self, sel: &Selector) {
        let opts = self.selector_options(sel);
        if let Err(errs) = self.local.disconnect_socket(opts) {
            tracing::debug!(
                failed = errs.len(),
                "cluster adapter: some sockets could not be disconnected"
            );
        }
    }
}
