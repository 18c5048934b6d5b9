//! The socketioxide [`CoreAdapter`] implementation.
//!
//! Sending: a broadcast that is not local-only is translated to Node's message, encoded
//! once, queued for Redis, then delivered to this server's own sockets.
//! Receiving: the router hands over messages from `<key>#<nsp>#*`; the adapter filters
//! them as Node does and delivers them through the local adapter.

use crate::channel::Channels;
use crate::cluster::{Cluster, NsHandler, Route};
use crate::error::Error;
use crate::message::{BINARY_EVENT, BroadcastMessage, EVENT, NodePacket, WireOptions};
use crate::packet;
use crate::stats::Counters;
use crate::transport::Sub;
use bytes::Bytes;
use rmpv::Value;
use socketioxide_core::{
    Sid,
    adapter::{
        BroadcastFlags, BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter, Room,
        SocketEmitter, Spawnable,
        errors::{AdapterError, BroadcastError},
    },
    packet::Packet,
};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The cluster adapter. Name it in `SocketIo::builder().with_adapter::<ClusterAdapter<_>>(cluster)`.
pub struct ClusterAdapter<E> {
    cluster: Cluster,
    local: CoreLocalAdapter<E>,
    channels: Channels,
    nsp: String,
    id: u64,
}

impl<E> DefinedAdapter for ClusterAdapter<E> {}

/// Returned by `io.ns(..)`: await it (or let socketioxide spawn it for dynamic
/// namespaces). The namespace exists once its Redis subscription is confirmed.
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

impl<E: SocketEmitter> CoreAdapter<E> for ClusterAdapter<E> {
    type Error = Error;
    type State = Cluster;
    type AckStream = E::AckStream;
    type InitRes = InitRes;

    fn new(state: &Cluster, local: CoreLocalAdapter<E>) -> Self {
        let nsp = local.path().to_string();
        Self {
            channels: Channels::new(state.options().get_key(), &nsp),
            cluster: state.clone(),
            local,
            nsp,
            id: state.next_id(),
        }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) -> InitRes {
        InitRes(Box::pin(async move {
            let pattern = self.channels.pattern().to_owned();
            let handler: Arc<dyn NsHandler> = Arc::new(Handler(Arc::downgrade(&self)));
            self.cluster.register_pattern(
                &pattern,
                Route {
                    id: self.id,
                    handler,
                },
            );
            if let Err(e) = self
                .cluster
                .transport()
                .subscribe(Sub::Pattern(pattern.clone()))
                .await
            {
                self.cluster.unregister_pattern(&pattern, self.id);
                return Err(e);
            }
            on_success();
            Ok(())
        }))
    }

    fn close(&self) -> impl Future<Output = Result<(), Error>> + Send {
        // Unregister synchronously: `io.delete_ns` polls this future only once.
        let pattern = self.channels.pattern().to_owned();
        let removed = self.cluster.unregister_pattern(&pattern, self.id);
        let cluster = self.cluster.clone();
        async move {
            if removed {
                cluster
                    .transport()
                    .unsubscribe(Sub::Pattern(pattern))
                    .await?;
            }
            Ok(())
        }
    }

    async fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), BroadcastError> {
        let mut remote = Ok(());
        if !opts.is_local(self.cluster.uid()) {
            remote = self.publish(&packet, &opts).await;
        }
        self.resolve_socket_rooms(&opts.rooms);
        self.resolve_socket_rooms(&opts.except);
        let local = self.local.broadcast(packet, opts);
        if let Err(errs) = &local {
            Counters::add(
                &self.cluster.inner.counters.delivery_failed,
                errs.len() as u64,
            );
        }
        local.map_err(BroadcastError::Socket)?;
        remote.map_err(|e| BroadcastError::Adapter(AdapterError::from(e)))
    }

    fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Self::AckStream, Self::Error>> + Send {
        self.resolve_socket_rooms(&opts.rooms);
        self.resolve_socket_rooms(&opts.except);
        let (stream, _) = self.local.broadcast_with_ack(packet, opts, timeout);
        async move { Ok(stream) }
    }

    fn get_local(&self) -> &CoreLocalAdapter<E> {
        &self.local
    }
}

impl<E: SocketEmitter> ClusterAdapter<E> {
    /// Translates, encodes once and queues a broadcast for the other servers.
    async fn publish(&self, packet: &Packet, opts: &BroadcastOptions) -> Result<(), Error> {
        let Some(data) = packet::node_data(self.local.parser(), packet) else {
            return Ok(()); // not an event: nothing Node could deliver
        };
        let data = data?;
        let Some(wire) = wire_options(opts) else {
            return Ok(()); // targets nobody
        };
        let channel = self.channels.for_rooms(&wire.room_names());
        let volatile = wire.is_volatile();
        let msg = BroadcastMessage {
            uid: self.cluster.uid().to_string(),
            packet: NodePacket {
                kind: EVENT,
                data,
                nsp: Some(self.nsp.clone()),
                id: None,
            },
            opts: wire,
        };
        let bytes = Bytes::from(msg.encode());
        self.cluster
            .transport()
            .publish(channel, bytes, volatile)
            .await
    }

    /// Node sockets are in a room named by their id; socketioxide sockets are not. When a
    /// room names a socket of this server, join the socket to it (lazily, once), so
    /// `to(<id>)` / `except(<id>)` from anywhere in the cluster behave as in Node. The
    /// room disappears with the socket.
    fn resolve_socket_rooms(&self, rooms: &[Room]) {
        for room in rooms {
            self.ensure_socket_room(room);
        }
    }

    fn ensure_socket_room(&self, room: &str) -> bool {
        let Ok(sid) = Sid::from_str(room) else {
            return false;
        };
        if self
            .local
            .fetch_sockets(BroadcastOptions::new(sid))
            .is_empty()
        {
            return false;
        }
        if !self.local.socket_rooms(sid).iter().any(|r| r == room) {
            self.local.add_all(sid, Room::Owned(room.to_owned()));
        }
        true
    }

    fn has_local_room(&self, room: &str) -> bool {
        if self.ensure_socket_room(room) {
            return true;
        }
        let mut opts = BroadcastOptions::default();
        opts.rooms.push(Room::Owned(room.to_owned()));
        !self.local.sockets(opts).is_empty()
    }

    fn receive(&self, channel: &str, payload: &[u8]) {
        let counters = &self.cluster.inner.counters;
        let Some(room) = self.channels.parse_broadcast(channel) else {
            return;
        };
        // Node compat: a single-room message is dropped before decoding when no local
        // socket is in the room.
        if let Some(room) = room
            && !self.has_local_room(room)
        {
            return;
        }
        let msg = match BroadcastMessage::decode(payload) {
            Ok(msg) => msg,
            Err(e) => {
                Counters::add(&counters.malformed, 1);
                log_malformed(channel, &e.0);
                return;
            }
        };
        if msg.uid == self.cluster.uid().as_str() {
            return;
        }
        // Node compat: a missing nsp means "/".
        if msg.packet.nsp.as_deref().unwrap_or("/") != self.nsp {
            return;
        }
        if msg.packet.kind != EVENT && msg.packet.kind != BINARY_EVENT {
            Counters::add(&counters.malformed, 1);
            log_malformed(
                channel,
                &format!("packet type {} is not an event", msg.packet.kind),
            );
            return;
        }
        let opts = local_options(&msg.opts);
        self.resolve_socket_rooms(&opts.rooms);
        self.resolve_socket_rooms(&opts.except);
        let packet = match packet::sio_event(
            self.local.parser(),
            self.local.path().clone(),
            &msg.packet.data,
        ) {
            Ok(p) => p,
            Err(e) => {
                Counters::add(&counters.malformed, 1);
                log_malformed(channel, &e.to_string());
                return;
            }
        };
        if let Err(errs) = self.local.broadcast(packet, opts) {
            Counters::add(&counters.delivery_failed, errs.len() as u64);
            tracing::debug!(
                failed = errs.len(),
                "cluster adapter: local delivery refused by some sockets"
            );
        }
    }
}

/// socketioxide options → Node's `{rooms, except, flags}`; `None` when nobody is targeted.
fn wire_options(opts: &BroadcastOptions) -> Option<WireOptions> {
    let broadcast = opts.has_flag(BroadcastFlags::Broadcast);
    let mut rooms: Vec<String> = opts.rooms.iter().map(|r| r.to_string()).collect();
    let mut except: Vec<String> = Vec::with_capacity(opts.except.len() + 1);
    for r in &opts.except {
        if !except.iter().any(|e| e == r) {
            except.push(r.to_string());
        }
    }
    match opts.sid {
        // `socket.broadcast()` / `socket.to(..)`: everyone but the sender.
        Some(sid) if broadcast => {
            let sid = sid.to_string();
            if !except.contains(&sid) {
                except.push(sid);
            }
        }
        // A single socket (remote socket operations): its id is its room.
        Some(sid) if rooms.is_empty() => rooms.push(sid.to_string()),
        None if rooms.is_empty() && !broadcast => return None,
        _ => {}
    }
    let mut flags = Vec::new();
    if opts.has_flag(BroadcastFlags::Volatile) {
        flags.push(("volatile".to_owned(), Value::Boolean(true)));
    }
    Some(WireOptions::new(rooms, except, flags))
}

/// Node's `{rooms, except, flags}` → options for the local adapter.
fn local_options(wire: &WireOptions) -> BroadcastOptions {
    let mut opts = BroadcastOptions::default();
    opts.add_flag(BroadcastFlags::Broadcast);
    if wire.is_volatile() {
        opts.add_flag(BroadcastFlags::Volatile);
    }
    opts.rooms = wire.room_names().into_iter().map(Cow::Owned).collect();
    opts.except = wire.except_names().into_iter().map(Cow::Owned).collect();
    opts
}

/// Logs a malformed message at most about once per second, with the count skipped.
fn log_malformed(channel: &str, reason: &str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    static SKIPPED: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if LAST.swap(now, Ordering::Relaxed) != now {
        let skipped = SKIPPED.swap(0, Ordering::Relaxed);
        tracing::warn!(
            channel,
            reason,
            also_skipped_since_last_log = skipped,
            "cluster adapter: malformed message skipped"
        );
    } else {
        SKIPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The router's view of an adapter. Weak, so a namespace that went away is not kept alive.
struct Handler<E>(Weak<ClusterAdapter<E>>);

impl<E: SocketEmitter> NsHandler for Handler<E> {
    fn on_broadcast(&self, channel: &str, payload: &[u8]) {
        if let Some(adapter) = self.0.upgrade() {
            adapter.receive(channel, payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_broadcast_excludes_sender() {
        let sid = Sid::new();
        let mut opts = BroadcastOptions::new(sid);
        opts.add_flag(BroadcastFlags::Broadcast);
        let wire = wire_options(&opts).unwrap();
        assert!(wire.room_names().is_empty());
        assert_eq!(wire.except_names(), vec![sid.to_string()]);
    }

    #[test]
    fn remote_socket_targets_its_id_room() {
        let sid = Sid::new();
        let wire = wire_options(&BroadcastOptions::new(sid)).unwrap();
        assert_eq!(wire.room_names(), vec![sid.to_string()]);
    }

    #[test]
    fn nothing_targeted_publishes_nothing() {
        assert!(wire_options(&BroadcastOptions::default()).is_none());
    }

    #[test]
    fn received_options_keep_rooms_except_and_volatile() {
        let wire = WireOptions::new(
            vec!["a".into(), "b".into()],
            vec!["c".into()],
            vec![("volatile".into(), Value::Boolean(true))],
        );
        let opts = local_options(&wire);
        assert!(opts.has_flag(BroadcastFlags::Broadcast));
        assert!(opts.has_flag(BroadcastFlags::Volatile));
        assert_eq!(opts.rooms.len(), 2);
        assert_eq!(opts.except.len(), 1);
    }
}
