//! Operations on this server's own sockets, through socketioxide's local adapter: the
//! answers to other servers' requests, and Node's socket-id rooms.
//!
//! Node compat: every Node socket is in a room named by its id; socketioxide sockets
//! are not. When a room named in a selector is the id of a local socket, that socket is
//! joined to it first (lazily, once; the room goes away with the socket), so `to(<id>)`
//! / `except(<id>)` from anywhere in the cluster behave as in Node.

use crate::callbacks::{Callbacks, describe};
use crate::wire::request::{RequestId, Selector};
use socketioxide_core::{
    Sid,
    adapter::{BroadcastFlags, BroadcastOptions, CoreLocalAdapter, Room, SocketEmitter},
};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;

/// Joins every local socket named by one of `rooms` to the room of its own id.
pub(super) fn join_id_rooms<E: SocketEmitter, R: AsRef<str>>(
    local: &CoreLocalAdapter<E>,
    rooms: &[R],
) {
    for room in rooms {
        join_id_room(local, room.as_ref());
    }
}

/// [`join_id_rooms`] for the rooms and excepts of socketioxide options.
pub(super) fn join_id_rooms_of<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    opts: &BroadcastOptions,
) {
    join_id_rooms(local, &opts.rooms);
    join_id_rooms(local, &opts.except);
}

/// If `room` is the id of a local socket, joins that socket to it.
fn join_id_room<E: SocketEmitter>(local: &CoreLocalAdapter<E>, room: &str) {
    let Ok(sid) = Sid::from_str(room) else {
        return;
    };
    if local.fetch_sockets(BroadcastOptions::new(sid)).is_empty() {
        return;
    }
    if !local.socket_rooms(sid).iter().any(|r| r == room) {
        local.add_all(sid, Room::Owned(room.to_owned()));
    }
}

/// Whether any local socket is in `room` (call [`join_id_rooms`] first for socket ids
/// to count).
pub(super) fn any_socket_in<E: SocketEmitter>(local: &CoreLocalAdapter<E>, room: &str) -> bool {
    let mut opts = BroadcastOptions::default();
    opts.rooms.push(Room::Owned(room.to_owned()));
    !local.sockets(opts).is_empty()
}

/// Local options for a Node selector, socket-id rooms joined; `None` when it selects
/// nobody here (rooms given, none a string).
pub(super) fn selector_options<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    sel: &Selector,
) -> Option<BroadcastOptions> {
    if sel.selects_nobody() {
        return None;
    }
    let rooms = sel.room_names();
    let except = sel.except_names();
    join_id_rooms(local, &rooms);
    join_id_rooms(local, &except);
    let mut opts = BroadcastOptions::default();
    opts.add_flag(BroadcastFlags::Broadcast);
    opts.rooms = rooms.into_iter().map(Cow::Owned).collect();
    opts.except = except.into_iter().map(Cow::Owned).collect();
    Some(opts)
}

/// Ids of the local sockets `sel` selects.
pub(super) fn ids<E: SocketEmitter>(local: &CoreLocalAdapter<E>, sel: &Selector) -> Vec<String> {
    let Some(opts) = selector_options(local, sel) else {
        return Vec::new();
    };
    local.sockets(opts).iter().map(|s| s.to_string()).collect()
}

/// Every local room, socket-id rooms included (Node compat).
pub(super) fn all_rooms<E: SocketEmitter>(local: &CoreLocalAdapter<E>) -> Vec<String> {
    let mut all = BroadcastOptions::default();
    all.add_flag(BroadcastFlags::Broadcast);
    let sids = local.sockets(all.clone());
    let mut rooms: BTreeSet<String> = local
        .rooms(all)
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    // Node compat: every socket is in the room named by its id.
    rooms.extend(sids.iter().map(|s| s.to_string()));
    rooms.into_iter().collect()
}

/// The rooms the local sockets `opts` select have joined, without their own-id rooms
/// (joined lazily for Node's socket-id addressing, see above).
pub(super) fn joined_rooms<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    opts: BroadcastOptions,
) -> BTreeSet<String> {
    let sids: BTreeSet<String> = local
        .sockets(opts.clone())
        .iter()
        .map(|s| s.to_string())
        .collect();
    local
        .rooms(opts)
        .into_iter()
        .map(|r| r.to_string())
        .filter(|r| !sids.contains(r))
        .collect()
}

/// The local sockets `sel` selects: each id and its rooms, its own id included (as in
/// Node), sorted.
fn selected<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    sel: &Selector,
) -> Vec<(String, Vec<String>)> {
    let Some(opts) = selector_options(local, sel) else {
        return Vec::new();
    };
    local
        .sockets(opts)
        .into_iter()
        .map(|sid| {
            let id = sid.to_string();
            let mut rooms: BTreeSet<String> = local
                .socket_rooms(sid)
                .into_iter()
                .map(|r| r.to_string())
                .collect();
            rooms.insert(id.clone());
            (id, rooms.into_iter().collect())
        })
        .collect()
}

/// The local sockets `sel` selects as Node's fetchSockets describes them: rooms (its
/// own id included), and what the application's describer says.
pub(super) fn fetch<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    callbacks: &Callbacks,
    sel: &Selector,
) -> Vec<crate::socket_info::SocketInfo> {
    let describer = callbacks.describer(local.path());
    let server_id = local.server_id();
    selected(local, sel)
        .into_iter()
        .map(|(id, rooms)| describe(describer.as_ref(), &id).into_info(id, rooms, server_id))
        .collect()
}

/// The REMOTE_FETCH reply for the local sockets `sel` selects, serialized straight from
/// borrowed parts (the JSON `fetch` + `to_node_json` would build, byte for byte).
pub(super) fn fetch_reply<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    callbacks: &Callbacks,
    sel: &Selector,
    request_id: &RequestId,
) -> Vec<u8> {
    use crate::socket_info::{NodeSocket, PLACEHOLDER};
    #[derive(serde::Serialize)]
    struct Reply<'a> {
        #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
        request_id: Option<serde_json::Value>,
        sockets: Vec<NodeSocket<'a>>,
        /// Ours only (Node ignores it): socketioxide's id of the server the sockets are
        /// on, for the `RemoteSocket`s of the requester's `io.fetch_sockets()`.
        #[serde(rename = "serverId")]
        server_id: &'a str,
    }
    let describer = callbacks.describer(local.path());
    let sockets = selected(local, sel);
    // The application's (handshake, data) of each socket, when it describes them.
    let described: Vec<Option<(serde_json::Value, serde_json::Value)>> = sockets
        .iter()
        .map(|(id, _)| {
            describer
                .as_ref()
                .map(|d| describe(Some(d), id).completed())
        })
        .collect();
    let (placeholder, empty) = &*PLACEHOLDER;
    let server_id = local.server_id();
    let reply = Reply {
        request_id: request_id.to_json(),
        sockets: sockets
            .iter()
            .zip(&described)
            .map(|((id, rooms), described)| {
                let (handshake, data) = described
                    .as_ref()
                    .map_or((placeholder, empty), |(h, d)| (h, d));
                NodeSocket {
                    id,
                    handshake,
                    rooms,
                    data,
                }
            })
            .collect(),
        server_id: server_id.as_str(),
    };
    serde_json::to_vec(&reply).unwrap_or_default()
}

/// Local sockets `sel` selects join (`join`) or leave `rooms`.
pub(super) fn join_leave<E: SocketEmitter>(
    local: &CoreLocalAdapter<E>,
    sel: &Selector,
    rooms: &[String],
    join: bool,
) {
    let Some(opts) = selector_options(local, sel) else {
        return;
    };
    let rooms: Vec<Room> = rooms.iter().cloned().map(Room::Owned).collect();
    if join {
        local.add_sockets(opts, rooms);
    } else {
        local.del_sockets(opts, rooms);
    }
}

/// Disconnects the local sockets `sel` selects.
pub(super) fn disconnect<E: SocketEmitter>(local: &CoreLocalAdapter<E>, sel: &Selector) {
    let Some(opts) = selector_options(local, sel) else {
        return;
    };
    if let Err(errs) = local.disconnect_socket(opts) {
        tracing::debug!(
            failed = errs.len(),
            "cluster adapter: some sockets could not be disconnected"
        );
    }
}
