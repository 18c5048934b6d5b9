//! The broadcast path: socketioxide options ⇄ Node's `{rooms, except, flags}`, publishing
//! a broadcast once encoded, and delivering received broadcasts locally.

use crate::adapter::ClusterAdapter;
use crate::error::Error;
use crate::message::{BINARY_EVENT, BroadcastMessage, EVENT, NodePacket, WireOptions};
use crate::packet;
use crate::stats::Counters;
use crate::transport::Mode;
use crate::wire::request::Selector;
use bytes::Bytes;
use rmpv::Value;
use socketioxide_core::{
    Sid,
    adapter::{BroadcastFlags, BroadcastOptions, Room, SocketEmitter},
    packet::Packet,
};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

impl<E: SocketEmitter> ClusterAdapter<E> {
    /// Translates, encodes once and queues a broadcast for the other servers.
    pub(crate) async fn publish_broadcast(
        &self,
        packet: &Packet,
        opts: &BroadcastOptions,
    ) -> Result<(), Error> {
        let Some(data) = packet::node_data(self.local.parser(), packet) else {
            return Ok(()); // not an event: nothing Node could deliver
        };
        let data = data?;
        let Some(wire) = wire_options(opts) else {
            return Ok(()); // targets nobody
        };
        let channel = self.req.channels.for_rooms(&wire.room_names());
        let mode = if wire.is_volatile() {
            Mode::Volatile
        } else {
            Mode::Queued
        };
        let msg = BroadcastMessage {
            uid: self.req.uid(),
            packet: NodePacket::event(data, &self.req.nsp),
            opts: wire,
        };
        let bytes = Bytes::from(msg.encode());
        self.req
            .cluster
            .transport()
            .publish(channel, bytes, mode)
            .await
    }

    /// Node sockets are in a room named by their id; socketioxide sockets are not. When a
    /// room names a socket of this server, join the socket to it (lazily, once), so
    /// `to(<id>)` / `except(<id>)` from anywhere in the cluster behave as in Node. The
    /// room disappears with the socket.
    pub(crate) fn resolve_socket_rooms(&self, opts: &BroadcastOptions) {
        self.resolve_rooms(&opts.rooms);
        self.resolve_rooms(&opts.except);
    }

    fn resolve_rooms<R: AsRef<str>>(&self, rooms: &[R]) {
        for room in rooms {
            self.ensure_socket_room(room.as_ref());
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

    /// Local options for a Node selector, socket-id rooms resolved.
    pub(crate) fn selector_options(&self, sel: &Selector) -> BroadcastOptions {
        let rooms = sel.room_names();
        let except = sel.except_names();
        self.resolve_rooms(&rooms);
        self.resolve_rooms(&except);
        let mut opts = BroadcastOptions::default();
        opts.add_flag(BroadcastFlags::Broadcast);
        opts.rooms = rooms.into_iter().map(Cow::Owned).collect();
        opts.except = except.into_iter().map(Cow::Owned).collect();
        opts
    }

    /// A message from `<key>#<nsp>#*`.
    pub(crate) fn receive_broadcast(&self, channel: &str, payload: &[u8]) {
        let counters = &self.req.cluster.inner.counters;
        let Some(room) = self.req.channels.parse_broadcast(channel) else {
            return;
        };
        // Node compat: a single-room message is dropped before decoding when no local
        // socket is in the room.
        if let Some(room) = room
            && !self.has_local_room(room)
        {
            return;
        }
        // Our own messages come back from Redis: skip them before decoding the whole
        // payload (`93` + the uid string in first position).
        if is_from(payload, self.req.uid_str().as_bytes()) {
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
        if msg.uid == self.req.uid_str() {
            return;
        }
        // Node compat: a missing nsp means "/".
        if msg.packet.nsp.as_deref().unwrap_or("/") != self.req.nsp {
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
        let sel = Selector {
            rooms: msg.opts.rooms.clone(),
            except: msg.opts.except.clone().unwrap_or_default(),
        };
        let mut opts = self.selector_options(&sel);
        if msg.opts.is_volatile() {
            opts.add_flag(BroadcastFlags::Volatile);
        }
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

/// Whether a broadcast message starts with `[uid, …` for this `uid` (fixstr or str8).
fn is_from(payload: &[u8], uid: &[u8]) -> bool {
    match payload {
        [0x93, m, rest @ ..] if (0xa0..=0xbf).contains(m) => {
            let len = (*m & 0x1f) as usize;
            len == uid.len() && rest.get(..len) == Some(uid)
        }
        [0x93, 0xd9, len, rest @ ..] => {
            *len as usize == uid.len() && rest.get(..uid.len()) == Some(uid)
        }
        _ => false,
    }
}

/// socketioxide options → Node's `{rooms, except, flags}`; `None` when nobody is targeted.
pub(crate) fn wire_options(opts: &BroadcastOptions) -> Option<WireOptions> {
    let sel = selector(opts)?;
    let mut flags = Vec::new();
    if opts.has_flag(BroadcastFlags::Volatile) {
        flags.push(("volatile".to_owned(), Value::Boolean(true)));
    }
    Some(WireOptions::new(
        sel.room_names(),
        sel.except_names(),
        flags,
    ))
}

/// socketioxide options → Node's socket selector `{rooms, except}`; `None` when nobody
/// is targeted.
pub(crate) fn selector(opts: &BroadcastOptions) -> Option<Selector> {
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
    Some(Selector::new(rooms, except))
}

/// Logs a malformed message at most about once per second, with the count skipped.
pub(crate) fn log_malformed(channel: &str, reason: &str) {
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
    fn own_messages_are_recognised_before_decoding() {
        let msg = BroadcastMessage {
            uid: "abcdefghijklmnop".into(),
            packet: NodePacket {
                kind: EVENT,
                data: vec![],
                nsp: Some("/".into()),
                id: None,
            },
            opts: WireOptions::default(),
        }
        .encode();
        assert!(is_from(&msg, b"abcdefghijklmnop"));
        assert!(!is_from(&msg, b"abcdefghijklmnoq"));
        assert!(!is_from(&msg, b"emitter"));
        assert!(!is_from(&[0x93], b"x"));
    }

    #[test]
    fn nothing_targeted_publishes_nothing() {
        assert!(wire_options(&BroadcastOptions::default()).is_none());
    }

    #[test]
    fn volatile_and_except_dedup() {
        let mut opts = BroadcastOptions::default();
        opts.add_flag(BroadcastFlags::Broadcast);
        opts.add_flag(BroadcastFlags::Volatile);
        opts.except.push(Cow::Borrowed("x"));
        opts.except.push(Cow::Borrowed("x"));
        let wire = wire_options(&opts).unwrap();
        assert!(wire.is_volatile());
        assert_eq!(wire.except_names(), vec!["x".to_owned()]);
    }
}
