//! The broadcast path: socketioxide options ⇄ Node's `{rooms, except, flags}`, publishing
//! a broadcast once encoded, and delivering received broadcasts to local sockets.

use super::local;
use crate::error::Error;
use crate::packet;
use crate::requests::NsCore;
use crate::stand_in::{NODE_SERVER, StandIns};
use crate::stats::Counters;
use crate::transport::Mode;
use crate::wire::cluster_format::ClusterMessage;
use crate::wire::message::{BINARY_EVENT, BroadcastMessage, EVENT, NodePacket, WireOptions};
use crate::wire::request::Selector;
use bytes::Bytes;
use rmpv::Value;
use socketioxide_core::{
    Sid, Uid,
    adapter::{BroadcastFlags, BroadcastOptions, CoreLocalAdapter, SocketEmitter},
    packet::Packet,
    parser::Parse,
};
use std::future::Future;

/// Translates, encodes once and queues a broadcast for the other servers. The
/// translation happens before the returned future is first polled (the parser is not
/// `Send`); only the queueing is awaited.
pub(super) fn publish<'a>(
    core: &'a NsCore,
    parser: impl Parse,
    packet: &Packet,
    opts: &BroadcastOptions,
    ids: &Ids<'_>,
) -> impl Future<Output = Result<(), Error>> + Send + 'a {
    let encoded = encode(core, parser, packet, opts, ids);
    async move {
        let Some((channel, bytes, mut mode)) = encoded? else {
            return Ok(());
        };
        let shared = core.shared();
        // A room channel (sharded, dynamic modes) reaches only the servers that have
        // the room: nothing to compare with.
        let live = match core.sharded() {
            Some((c, _)) if channel != c.main() => 0,
            _ => core.live_receivers(),
        };
        // Strict delivery waits for Redis' answer to tell the caller how many got it.
        let strict = shared.config.strict_delivery() && mode == Mode::Queued;
        if strict {
            mode = Mode::Confirmed;
        }
        let reached = shared
            .transport
            .publish(channel.clone(), bytes, mode, live)
            .await?;
        match reached {
            Some(reached) if strict && reached < live => Err(Error::UnderDelivered {
                channel,
                live,
                reached,
            }),
            _ => Ok(()),
        }
    }
}

/// The channel, bytes and publish mode of a broadcast; `None` when nothing is to be sent.
fn encode(
    core: &NsCore,
    parser: impl Parse,
    packet: &Packet,
    opts: &BroadcastOptions,
    ids: &Ids<'_>,
) -> Result<Option<(String, Bytes, Mode)>, Error> {
    let Some(data) = packet::node_data(parser, packet) else {
        return Ok(None); // not an event: nothing Node could deliver
    };
    let data = data?;
    let Some(wire) = wire_options(opts, ids) else {
        return Ok(None); // targets nobody
    };
    let mode = if wire.is_volatile() {
        Mode::Volatile
    } else {
        Mode::Queued
    };
    if let Some((channels, sub_mode)) = core.sharded() {
        let msg = ClusterMessage::broadcast(core.uid(), core.nsp(), data, &wire, None);
        let channel = channels.for_message(&msg, *sub_mode);
        return Ok(Some((channel, Bytes::from(msg.encode()), mode)));
    }
    let channel = core.channels().for_rooms(&wire.room_names());
    let msg = BroadcastMessage {
        uid: core.uid().to_owned(),
        packet: NodePacket::event(data, core.nsp()),
        opts: wire,
    };
    Ok(Some((channel, Bytes::from(msg.encode()), mode)))
}

/// A message from `<key>#<nsp>#*`: checked, decoded and delivered to the local sockets
/// it selects. Anything unusable is counted as malformed and skipped.
pub(super) fn receive<E: SocketEmitter>(
    core: &NsCore,
    local: &CoreLocalAdapter<E>,
    channel: &str,
    payload: &[u8],
) {
    let counters = &core.shared().counters;
    let Some(room) = core.channels().parse_broadcast(channel) else {
        return;
    };
    // Node compat: a single-room message is dropped before decoding when no local
    // socket is in the room.
    if let Some(room) = room {
        local::join_id_rooms(local, &[room]);
        if !local::any_socket_in(local, room) {
            return;
        }
    }
    // Our own messages come back from Redis: skip them before decoding the whole
    // payload (`93` + the uid string in first position).
    if is_from(payload, core.uid().as_bytes()) {
        return;
    }
    let msg = match BroadcastMessage::decode(payload) {
        Ok(msg) => msg,
        Err(e) => return counters.malformed(channel, &e.0),
    };
    deliver(core, local, channel, msg);
}

/// Delivers a decoded broadcast (classic, or read from the sharded protocol's format) to
/// the local sockets it selects.
pub(super) fn deliver<E: SocketEmitter>(
    core: &NsCore,
    local: &CoreLocalAdapter<E>,
    channel: &str,
    msg: BroadcastMessage,
) {
    let counters = &core.shared().counters;
    if msg.uid == core.uid() {
        return;
    }
    // Node compat: a missing nsp means "/".
    if msg.packet.nsp.as_deref().unwrap_or("/") != core.nsp() {
        return;
    }
    if msg.packet.kind != EVENT && msg.packet.kind != BINARY_EVENT {
        let reason = format!("packet type {} is not an event", msg.packet.kind);
        return counters.malformed(channel, &reason);
    }
    let sel = Selector {
        rooms: msg.opts.rooms.clone(),
        except: msg.opts.except.clone().unwrap_or_default(),
    };
    let Some(opts) = local::selector_options(local, &sel) else {
        return;
    };
    // Node compat: Node writes a volatile packet in order with the others, or drops it for
    // a socket whose transport cannot take it now. socketioxide's volatile path keeps only
    // a socket's latest volatile packet and sends it ahead of the queued ones, so it is
    // not used here: a volatile broadcast is queued in order, or dropped (and counted)
    // where a socket's buffer is full.
    let volatile = msg.opts.is_volatile();
    let mut packet = match packet::sio_event(local.parser(), local.path().clone(), &msg.packet.data)
    {
        Ok(p) => p,
        Err(e) => return counters.malformed(channel, &e),
    };
    // Node compat: an ack id in the packet reaches the clients (nobody answers the acks).
    if let Some(id) = msg.packet.id {
        packet.inner.set_ack_id(id);
    }
    if let Err(errs) = local.broadcast(packet, opts) {
        let counter = if volatile {
            &counters.volatile_dropped
        } else {
            &counters.delivery_failed
        };
        Counters::add(counter, errs.len() as u64);
        tracing::debug!(
            failed = errs.len(),
            "cluster adapter: local delivery refused by some sockets"
        );
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

/// How the socket ids in socketioxide options become the ids Node servers know: a
/// stand-in `Sid` of a Node socket (see `stand_in`) is sent as that socket's real id.
#[derive(Clone)]
pub(super) struct Ids<'a> {
    nsp: &'a str,
    stand_ins: Option<&'a StandIns>,
    /// The real id of the one socket targeted, looked up beforehand (see
    /// `remote::ids`), so that it cannot be evicted from the table in between.
    pinned: Option<(Sid, String)>,
}

impl<'a> Ids<'a> {
    /// The ids of `core`'s namespace.
    pub(super) fn of(core: &'a NsCore) -> Self {
        Ids {
            nsp: core.nsp(),
            stand_ins: Some(&core.shared().stand_ins),
            pinned: None,
        }
    }

    /// These ids, with `sid` known to stand for `id`.
    pub(super) fn pin(mut self, sid: Sid, id: String) -> Self {
        self.pinned = Some((sid, id));
        self
    }

    /// Pushes `room`, and the real id of the Node socket when `room` is its stand-in
    /// (both: should the stand-in also be a real socketioxide id, that socket is
    /// targeted too, as asked).
    fn push_room(&self, out: &mut Vec<String>, room: &str) {
        for name in std::iter::once(room.to_owned()).chain(
            self.stand_ins
                .and_then(|t| t.real_id_of_room(self.nsp, room)),
        ) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }

    /// The id to send for the one socket a remote-socket operation targets.
    fn single(&self, sid: Sid, server: Option<Uid>) -> String {
        // Only sockets of Node servers have stand-ins: a socket of one of ours is
        // addressed by its real id even if it happens to equal a stand-in.
        let on_node = server.is_none_or(|s| s == NODE_SERVER);
        if !on_node {
            return sid.to_string();
        }
        match &self.pinned {
            Some((pinned, id)) if *pinned == sid => id.clone(),
            _ => self
                .stand_ins
                .and_then(|t| t.real_id(self.nsp, sid))
                .unwrap_or_else(|| sid.to_string()),
        }
    }
}

/// socketioxide options → Node's `{rooms, except, flags}`; `None` when nobody is targeted.
pub(super) fn wire_options(opts: &BroadcastOptions, ids: &Ids<'_>) -> Option<WireOptions> {
    let sel = selector(opts, ids)?;
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

/// Whether `opts` target one socket by its id (socketioxide's remote-socket operations).
pub(super) fn single_socket(opts: &BroadcastOptions) -> Option<Sid> {
    let broadcast = opts.has_flag(BroadcastFlags::Broadcast);
    opts.sid.filter(|_| !broadcast && opts.rooms.is_empty())
}

/// socketioxide options → Node's socket selector `{rooms, except}`; `None` when nobody
/// is targeted.
pub(super) fn selector(opts: &BroadcastOptions, ids: &Ids<'_>) -> Option<Selector> {
    let broadcast = opts.has_flag(BroadcastFlags::Broadcast);
    let mut rooms: Vec<String> = Vec::with_capacity(opts.rooms.len());
    for r in &opts.rooms {
        ids.push_room(&mut rooms, r);
    }
    let mut except: Vec<String> = Vec::with_capacity(opts.except.len() + 1);
    for r in &opts.except {
        ids.push_room(&mut except, r);
    }
    match opts.sid {
        // `socket.broadcast()` / `socket.to(..)`: everyone but the sender (one of ours).
        Some(sid) if broadcast => {
            let sid = sid.to_string();
            if !except.contains(&sid) {
                except.push(sid);
            }
        }
        // A single socket (remote socket operations): its id is its room.
        Some(sid) if rooms.is_empty() => rooms.push(ids.single(sid, opts.server_id)),
        None if rooms.is_empty() && !broadcast => return None,
        _ => {}
    }
    Some(Selector::new(rooms, except))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    const NO_IDS: &Ids<'static> = &Ids {
        nsp: "/",
        stand_ins: None,
        pinned: None,
    };

    #[test]
    fn socket_broadcast_excludes_sender() {
        let sid = Sid::new();
        let mut opts = BroadcastOptions::new(sid);
        opts.add_flag(BroadcastFlags::Broadcast);
        let wire = wire_options(&opts, NO_IDS).unwrap();
        assert!(wire.room_names().is_empty());
        assert_eq!(wire.except_names(), vec![sid.to_string()]);
    }

    #[test]
    fn remote_socket_targets_its_id_room() {
        let sid = Sid::new();
        let wire = wire_options(&BroadcastOptions::new(sid), NO_IDS).unwrap();
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
    fn stand_ins_are_sent_as_the_node_socket_ids() {
        let table = StandIns::new(16);
        let node_id = "Yx2_lW1zL-2kGn4kAAAB";
        let sid = table.record("/", node_id);
        let ids = &Ids {
            nsp: "/",
            stand_ins: Some(&table),
            pinned: None,
        };
        // A RemoteSocket of a Node server: its real id.
        let mut opts = BroadcastOptions::new(sid);
        opts.server_id = Some(NODE_SERVER);
        let wire = wire_options(&opts, ids).unwrap();
        assert_eq!(wire.room_names(), vec![node_id.to_owned()]);
        // A RemoteSocket of one of our servers is addressed by its own id, always.
        opts.server_id = Some(Uid::new());
        let wire = wire_options(&opts, ids).unwrap();
        assert_eq!(wire.room_names(), vec![sid.to_string()]);
        // As a room (`io.to(sid)`, `except(sid)`): both names.
        let mut opts = BroadcastOptions::default();
        opts.rooms.push(Cow::Owned(sid.to_string()));
        opts.except.push(Cow::Owned(sid.to_string()));
        let wire = wire_options(&opts, ids).unwrap();
        let both = vec![sid.to_string(), node_id.to_owned()];
        assert_eq!(wire.room_names(), both);
        assert_eq!(wire.except_names(), both);
        // Another namespace does not know it.
        let other = &Ids {
            nsp: "/admin",
            stand_ins: Some(&table),
            pinned: None,
        };
        assert_eq!(
            wire_options(&opts, other).unwrap().room_names(),
            vec![sid.to_string()]
        );
    }

    #[test]
    fn nothing_targeted_publishes_nothing() {
        assert!(wire_options(&BroadcastOptions::default(), NO_IDS).is_none());
    }

    #[test]
    fn volatile_and_except_dedup() {
        let mut opts = BroadcastOptions::default();
        opts.add_flag(BroadcastFlags::Broadcast);
        opts.add_flag(BroadcastFlags::Volatile);
        opts.except.push(Cow::Borrowed("x"));
        opts.except.push(Cow::Borrowed("x"));
        let wire = wire_options(&opts, NO_IDS).unwrap();
        assert!(wire.is_volatile());
        assert_eq!(wire.except_names(), vec!["x".to_owned()]);
    }
}
