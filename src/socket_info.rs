//! What a `fetchSockets` reply says about a socket, in both directions: [`SocketInfo`]
//! (a socket anywhere in the cluster, read from Node's `{id, handshake, rooms, data}`),
//! [`SocketDetails`] (what the application tells the cluster about its own sockets) and
//! their wire conversions.

use crate::wire::codec;
use crate::wire::request::value_to_json;
use serde::Serialize;
use serde_json::json;
use std::sync::{Arc, LazyLock};

/// A socket anywhere in the cluster, as `fetchSockets` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketInfo {
    /// Socket id (16 characters for socketioxide sockets, 20 for Node ones).
    pub id: String,
    /// socketioxide's id of the server the socket is connected to (its
    /// `io.config().server_id`, as in the `RemoteSocket`s of `io.fetch_sockets()`), when
    /// that server is one of ours: their `fetchSockets` replies say it (PROTOCOL.md §4).
    /// `None` for a socket of a Node server, whose replies do not say who sent them.
    pub server_id: Option<socketioxide_core::Uid>,
    /// Its rooms, its own id included (as in Node).
    pub rooms: Vec<String>,
    /// `socket.data` (for socketioxide sockets what their server's
    /// [`describe_sockets`](crate::Namespace::describe_sockets) says, `{}` by default).
    pub data: serde_json::Value,
    /// The socket.io handshake (for socketioxide sockets what their server's
    /// [`describe_sockets`](crate::Namespace::describe_sockets) says, a placeholder by default).
    pub handshake: serde_json::Value,
}

/// What this server tells the cluster about one of its sockets when a `fetchSockets`
/// (from any server, Node or Rust) selects it: Node's `socket.data` and
/// `socket.handshake`. The adapter cannot see either on a socketioxide socket; the
/// application provides them with [`Namespace::describe_sockets`](crate::Namespace::describe_sockets).
#[derive(Debug, Clone, PartialEq)]
pub struct SocketDetails {
    data: serde_json::Value,
    handshake: Option<serde_json::Value>,
}

impl Default for SocketDetails {
    /// `data` `{}` (Node's default `socket.data`), the placeholder handshake.
    fn default() -> Self {
        SocketDetails {
            data: serde_json::json!({}),
            handshake: None,
        }
    }
}

impl SocketDetails {
    /// `data` `{}` and the placeholder handshake (see PROTOCOL.md).
    pub fn new() -> Self {
        Self::default()
    }

    /// `socket.data` as the other servers see it.
    pub fn data(mut self, data: impl Into<serde_json::Value>) -> Self {
        self.data = data.into();
        self
    }

    /// `socket.handshake` as the other servers see it (Node's fields: `headers`, `time`,
    /// `address`, `xdomain`, `secure`, `issued`, `url`, `query`, `auth`).
    pub fn handshake(mut self, handshake: impl Into<serde_json::Value>) -> Self {
        self.handshake = Some(handshake.into());
        self
    }
}

/// Provides the [`SocketDetails`] of a local socket, by id.
pub(crate) type Describer = Arc<dyn Fn(&str) -> SocketDetails + Send + Sync>;

impl SocketInfo {
    pub(crate) fn from_node(v: &rmpv::Value) -> Option<Self> {
        let rmpv::Value::Map(m) = v else { return None };
        let get = |k| codec::map_get(m, k);
        Some(SocketInfo {
            id: get("id").and_then(codec::room_name)?,
            server_id: None,
            rooms: match get("rooms") {
                Some(rmpv::Value::Array(r)) => r.iter().filter_map(codec::room_name).collect(),
                _ => Vec::new(),
            },
            data: get("data")
                .map(value_to_json)
                .unwrap_or(serde_json::Value::Null),
            handshake: get("handshake")
                .map(value_to_json)
                .unwrap_or(serde_json::Value::Null),
        })
    }
}

/// Node's fetchSockets entry `{id, handshake, rooms, data}`, borrowed: what a reply
/// serializes, without building a JSON tree per socket (a reply for a socket the
/// application does not describe borrows the shared placeholder).
#[derive(Serialize)]
pub(crate) struct NodeSocket<'a> {
    pub(crate) id: &'a str,
    pub(crate) handshake: &'a serde_json::Value,
    pub(crate) rooms: &'a [String],
    pub(crate) data: &'a serde_json::Value,
}

/// The placeholder handshake and `{}` data of an undescribed socket, built once.
pub(crate) static PLACEHOLDER: LazyLock<(serde_json::Value, serde_json::Value)> =
    LazyLock::new(|| (handshake_placeholder(), json!({})));

impl SocketDetails {
    /// The handshake to send: the application's fields over the placeholder's.
    pub(crate) fn completed(self) -> (serde_json::Value, serde_json::Value) {
        (complete_handshake(self.handshake), self.data)
    }

    /// Node's fetchSockets entry for socket `id` with `rooms` of this server (socketioxide
    /// server id `server_id`): the
    /// application's data, and its handshake fields over the placeholder's.
    pub(crate) fn into_info(
        self,
        id: String,
        rooms: Vec<String>,
        server_id: socketioxide_core::Uid,
    ) -> SocketInfo {
        SocketInfo {
            id,
            server_id: Some(server_id),
            rooms,
            data: self.data,
            handshake: complete_handshake(self.handshake),
        }
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
