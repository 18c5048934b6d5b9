//! The socketioxide [`CoreAdapter`] implementation: one per namespace, static or dynamic.
//!
//! * `broadcast`: the broadcast path, both ways;
//! * `respond`: answering other servers' requests;
//! * `local`: operations on this server's own sockets (and Node's socket-id rooms);
//! * `remote`: sockets of other servers as socketioxide's `RemoteSocket`s (stand-ins
//!   for Node sockets, server uids).
//!
//! Operations that reach other servers publish on the namespace's channels through its
//! [`NsCore`]; what other servers publish arrives through the cluster's router
//! ([`NsOps`]). Local delivery always goes through socketioxide's local adapter.

mod broadcast;
mod init_res;
mod local;
mod remote;
mod respond;
mod room_channels;
mod sharded;

use crate::ack_stream::AckStream;
use crate::cluster::Cluster;
use crate::error::Error;
use crate::packet::{self, ParserKind};
use crate::requests::{NsCore, remote_fetch};
use crate::router::{NsOps, Route, RouteKind, Router};
use crate::socket_info::SocketInfo;
use crate::stats::Counters;
use crate::wire::message::NodePacket;
use crate::wire::request::{Request, Selector};
use broadcast::{selector, single_socket, wire_options};
pub use init_res::InitRes;
use rmpv::Value;
use socketioxide_core::{
    Uid,
    adapter::{
        BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter, RemoteSocketData, Room,
        RoomParam, SocketEmitter,
        errors::{AdapterError, BroadcastError},
    },
    packet::Packet,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The cluster adapter. Name it in `SocketIo::builder().with_adapter::<ClusterAdapter<_>>(cluster)`.
pub struct ClusterAdapter<E> {
    core: NsCore,
    local: CoreLocalAdapter<E>,
    parser: ParserKind,
    /// Tells this adapter's routes from those of a later adapter of the same namespace.
    id: u64,
    router: Arc<Router>,
    uid: Uid,
    /// The sharded protocol's room channels (dynamic modes).
    room_channels: room_channels::RoomChannels,
}

impl<E> std::fmt::Debug for ClusterAdapter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAdapter")
            .field("core", &self.core)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<E> DefinedAdapter for ClusterAdapter<E> {}

impl<E: SocketEmitter> ClusterAdapter<E> {
    /// The subscriptions of this namespace: broadcast pattern, request channel, shared and
    /// own response channels (Node subscribes to the same set).
    fn routes(&self) -> Vec<Route> {
        let c = self.core.channels();
        let route = |name: &str, kind| Route {
            name: name.to_owned(),
            kind,
        };
        if let Some((sharded, _)) = self.core.sharded() {
            // Node compat: `createShardedAdapter` subscribes to these two (static mode).
            return vec![
                route(sharded.main(), RouteKind::Cluster),
                route(self.core.own_response(), RouteKind::Response),
            ];
        }
        vec![
            route(c.pattern(), RouteKind::Broadcast),
            route(c.request(), RouteKind::Request),
            route(c.response(), RouteKind::Response),
            route(self.core.own_response(), RouteKind::Response),
        ]
    }

    /// Whether `opts` keep the operation on this server (a `RemoteSocket` of this
    /// server carries socketioxide's server id, not our uid on the wire).
    fn is_local(&self, opts: &BroadcastOptions) -> bool {
        opts.is_local(self.uid) || opts.is_local(self.local.server_id())
    }

    /// Joins or leaves `rooms` on every server: confirmed by Redis first (so any later
    /// request sees it), then applied here.
    async fn join_leave(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
        join: bool,
    ) -> Result<(), Error> {
        let ids = remote::ids(&self.core, &opts).await?;
        if !self.is_local(&opts)
            && let Some(sel) = selector(&opts, &ids)
        {
            let req = Request::JoinLeave {
                uid: Some(self.core.uid().to_owned()),
                join,
                opts: sel,
                rooms: rooms.iter().map(|r| Value::from(r.as_ref())).collect(),
            };
            self.core.send_confirmed(&req).await?;
        }
        local::join_id_rooms_of(&self.local, &opts);
        if join {
            self.local.add_sockets(opts, rooms);
        } else {
            self.local.del_sockets(opts, rooms);
        }
        Ok(())
    }
}

fn adapter_err(e: Error) -> BroadcastError {
    BroadcastError::Adapter(AdapterError::from(e))
}

impl<E: SocketEmitter> CoreAdapter<E> for ClusterAdapter<E> {
    type Error = Error;
    type State = Cluster;
    type AckStream = AckStream<E>;
    type InitRes = InitRes;

    fn new(state: &Cluster, local: CoreLocalAdapter<E>) -> Self {
        Self {
            core: state.namespace_core(local.path()),
            parser: ParserKind::detect(local.parser()),
            local,
            id: state.next_adapter_id(),
            router: state.router(),
            uid: state.uid(),
            room_channels: room_channels::RoomChannels::default(),
        }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) -> InitRes {
        InitRes(Box::pin(async move {
            let routes = self.routes();
            let weak: std::sync::Weak<dyn NsOps> =
                Arc::downgrade(&(self.clone() as Arc<dyn NsOps>));
            let router = &self.router;
            router.register(self.core.nsp(), self.id, weak.clone(), &routes);
            for route in &routes {
                if let Err(e) = self.core.shared().transport.subscribe(route.sub()).await {
                    router.unregister(self.core.nsp(), self.id, &routes);
                    return Err(e);
                }
            }
            room_channels::RoomChannels::start(&self, weak);
            on_success();
            Ok(())
        }))
    }

    fn close(&self) -> impl Future<Output = Result<(), Error>> + Send {
        // Unregister synchronously: `io.delete_ns` polls this future only once. The
        // unsubscribes then run on their own so they happen even then.
        let removed = self
            .router
            .unregister(self.core.nsp(), self.id, &self.routes());
        let rooms: Vec<String> = match self.core.sharded() {
            Some((channels, _)) => self
                .room_channels
                .stop()
                .iter()
                .map(|room| channels.room(room))
                .collect(),
            None => Vec::new(),
        };
        self.router.remove_routes(self.id, &rooms);
        let transport = self.core.shared().transport.clone();
        let task = tokio::spawn(async move {
            for route in &removed {
                transport.unsubscribe(route.sub()).await?;
            }
            for ch in rooms {
                transport
                    .unsubscribe(crate::transport::Sub::Channel(ch))
                    .await?;
            }
            Ok::<(), Error>(())
        });
        async move { task.await.unwrap_or(Ok(())) }
    }

    async fn server_count(&self) -> Result<u16, Error> {
        let n = self.core.server_count().await?;
        Ok(u16::try_from(n).unwrap_or(u16::MAX))
    }

    async fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), BroadcastError> {
        let ids = remote::ids(&self.core, &opts).await.map_err(adapter_err)?;
        let mut remote = Ok(());
        if !self.is_local(&opts) {
            remote =
                broadcast::publish(&self.core, self.local.parser(), &packet, &opts, &ids).await;
        }
        local::join_id_rooms_of(&self.local, &opts);
        let local = self.local.broadcast(packet, opts);
        if let Err(errs) = &local {
            let counters = &self.core.shared().counters;
            Counters::add(&counters.delivery_failed, errs.len() as u64);
        }
        local.map_err(BroadcastError::Socket)?;
        remote.map_err(adapter_err)
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Error> {
        let ids = remote::ids(&self.core, &opts).await?;
        local::join_id_rooms_of(&self.local, &opts);
        if self.is_local(&opts) {
            let single = single_socket(&opts).is_some();
            let (stream, _) = self.local.broadcast_with_ack(packet, opts, timeout);
            return Ok(AckStream::local(stream, single));
        }
        let timeout = timeout.unwrap_or_else(|| self.local.ack_timeout());
        let data = packet::node_data(self.local.parser(), &packet)
            .transpose()?
            .unwrap_or_default();
        let pending = self.core.register();
        // Targets nobody: nothing is sent, no count will come back.
        let mut others = 0;
        if let Some(mut wire) = wire_options(&opts, &ids) {
            // Node compat: the requester tells receivers how long acks are awaited.
            wire.flags.push((
                "timeout".to_owned(),
                Value::from(timeout.as_millis() as u64),
            ));
            let req = Request::Broadcast {
                uid: Some(self.core.uid().to_owned()),
                request_id: pending.id.clone().into(),
                packet: NodePacket::event(data, self.core.nsp()),
                opts: wire,
            };
            // Hung peers (see `liveness`) would never send their count: not waited for.
            (others, _) = self.core.publish_request(&req).await?;
        }
        // Node's acks do not say which socket answered; when one socket is targeted,
        // it is that one.
        let single = single_socket(&opts);
        let (stream, _) = self.local.broadcast_with_ack(packet, opts, Some(timeout));
        Ok(AckStream::cluster(
            stream,
            pending,
            others,
            timeout,
            self.parser,
            single,
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
        let ids = remote::ids(&self.core, &opts).await.map_err(adapter_err)?;
        if !self.is_local(&opts)
            && let Some(sel) = selector(&opts, &ids)
        {
            let req = Request::Disconnect {
                uid: Some(self.core.uid().to_owned()),
                opts: sel,
                close: false,
            };
            self.core.send_confirmed(&req).await.map_err(adapter_err)?;
        }
        local::join_id_rooms_of(&self.local, &opts);
        self.local
            .disconnect_socket(opts)
            .map_err(BroadcastError::Socket)
    }

    /// socketioxide's `rooms()`: the rooms the selected sockets joined, cluster-wide.
    /// A socket's own-id room (every Node socket is in one, and ours join theirs when
    /// addressed by id) is not listed, as socketioxide lists none; the handle's
    /// `all_rooms()` and `client_rooms()` keep Node's view. Node compat: its `allRooms()`
    /// lists socket ids, so the other servers are asked with REMOTE_FETCH, which says
    /// which socket is in which room.
    async fn rooms(&self, opts: BroadcastOptions) -> Result<Vec<Room>, Error> {
        let ids = remote::ids(&self.core, &opts).await?;
        local::join_id_rooms_of(&self.local, &opts);
        let mut rooms = local::joined_rooms(&self.local, opts.clone());
        if !self.is_local(&opts)
            && let Some(sel) = selector(&opts, &ids)
        {
            for s in remote_fetch(&self.core, sel).await? {
                rooms.extend(s.rooms.into_iter().filter(|r| *r != s.id));
            }
        }
        Ok(rooms.into_iter().map(Room::Owned).collect())
    }

    async fn fetch_sockets(&self, opts: BroadcastOptions) -> Result<Vec<RemoteSocketData>, Error> {
        let ids = remote::ids(&self.core, &opts).await?;
        local::join_id_rooms_of(&self.local, &opts);
        let mut out = self.local.fetch_sockets(opts.clone());
        if !self.is_local(&opts)
            && let Some(sel) = selector(&opts, &ids)
        {
            let complete = sel.rooms.is_empty() && sel.except.is_empty();
            let found = remote_fetch(&self.core, sel).await?;
            out.extend(remote::sockets(
                &self.core,
                self.local.path(),
                found,
                complete,
            ));
        }
        Ok(out)
    }

    fn get_local(&self) -> &CoreLocalAdapter<E> {
        &self.local
    }
}

/// What the router and the namespace API call: delegations to the parts above.
impl<E: SocketEmitter> NsOps for ClusterAdapter<E> {
    fn core(&self) -> &NsCore {
        &self.core
    }

    fn on_broadcast(&self, channel: &str, payload: &[u8]) {
        broadcast::receive(&self.core, &self.local, channel, payload);
    }

    fn on_request(&self, payload: &[u8]) {
        respond::on_request(&self.core, &self.local, self.parser, payload);
    }

    fn on_cluster_message(&self, channel: &str, payload: &[u8]) {
        sharded::receive(&self.core, &self.local, self.parser, channel, payload);
    }

    fn local_ids(&self, sel: &Selector) -> Vec<String> {
        local::ids(&self.local, sel)
    }

    fn local_all_rooms(&self) -> Vec<String> {
        local::all_rooms(&self.local)
    }

    fn local_fetch(&self, sel: &Selector) -> Vec<SocketInfo> {
        local::fetch(&self.local, &self.core.shared().callbacks, sel)
    }

    fn apply_join_leave(&self, sel: &Selector, rooms: &[String], join: bool) {
        local::join_leave(&self.local, sel, rooms, join);
    }

    fn apply_disconnect(&self, sel: &Selector) {
        local::disconnect(&self.local, sel);
    }
}
