//! ClusterAdapter messages ⇄ the classic protocol's types ([`BroadcastMessage`],
//! [`Request`], [`Response`]), so that one implementation of every operation serves
//! both protocols: what arrives in the ClusterAdapter format is read into the classic
//! types (with Node's reading of each field), and what the classic types say goes out in
//! the ClusterAdapter format.
//!
//! | ClusterAdapter type | classic |
//! | --- | --- |
//! | 3 BROADCAST (no `requestId`) | broadcast message |
//! | 3 BROADCAST with `requestId` | 7 BROADCAST request |
//! | 4 / 5 SOCKETS_JOIN / LEAVE | 2 / 3 REMOTE_JOIN / LEAVE |
//! | 6 DISCONNECT_SOCKETS | 4 REMOTE_DISCONNECT |
//! | 7 FETCH_SOCKETS | 5 REMOTE_FETCH |
//! | 8 FETCH_SOCKETS_RESPONSE | its reply `{requestId, sockets}` |
//! | 9 SERVER_SIDE_EMIT (`packet`) | 6 SERVER_SIDE_EMIT (`data`) |
//! | 10 SERVER_SIDE_EMIT_RESPONSE (`packet`) | its ack `{type: 6, data}` |
//! | 11 BROADCAST_CLIENT_COUNT | `{type: 8, clientCount}` |
//! | 12 BROADCAST_ACK | `{type: 9, packet}` |

use super::{ClusterMessage, kind};
use crate::codec::{self, DecodeError};
use crate::message::{BroadcastMessage, WireOptions, decode_opts};
use crate::packet::decode_packet;
use crate::request::{Request, RequestId, Response, Selector, kind as classic};
use rmpv::Value;

/// What a ClusterAdapter message is, in the classic protocol's types.
#[derive(Debug)]
pub enum Incoming {
    /// A broadcast to deliver.
    Broadcast(BroadcastMessage),
    /// A request to act on or answer.
    Request(Request),
    /// A reply to one of our requests.
    Response(Response),
    /// A type with nothing to do (heartbeats, ADAPTER_CLOSE, unknown types).
    Ignored(u64),
}

fn key(k: &str) -> Value {
    Value::from(k)
}

/// Removes field `k` (the last of repeated keys, as JavaScript keeps it).
fn take(d: &mut Vec<(Value, Value)>, k: &str) -> Option<Value> {
    let i = d.iter().rposition(|(key, _)| codec::key_is(key, k))?;
    Some(d.swap_remove(i).1)
}

impl ClusterMessage {
    /// Reads the message as the classic protocol's types (moving its data, not copying).
    pub fn into_incoming(self) -> Result<Incoming, DecodeError> {
        let mut d = match (self.kind, self.data) {
            (kind::INITIAL_HEARTBEAT | kind::HEARTBEAT | kind::ADAPTER_CLOSE, _) => {
                return Ok(Incoming::Ignored(self.kind));
            }
            (k, _) if k > kind::ADAPTER_CLOSE => return Ok(Incoming::Ignored(k)),
            (_, Some(Value::Map(m))) => m,
            // Node reads properties of `message.data`: undefined or null throws.
            (k, _) => {
                return Err(DecodeError(format!(
                    "cluster message of type {k} without data"
                )));
            }
        };
        let get = |d: &[(Value, Value)], k: &str| codec::map_get(d, k).cloned();
        let has_id = get(&d, "requestId").is_some();
        // A classic request: the data fields plus `uid` and the classic `type`.
        let request = |mut d: Vec<(Value, Value)>, t: u8, uid: &str| {
            d.push((key("uid"), Value::from(uid)));
            d.push((key("type"), Value::from(t)));
            Request::from_map(d).map(Incoming::Request)
        };
        match self.kind {
            kind::BROADCAST if !has_id => {
                let packet = take(&mut d, "packet")
                    .ok_or_else(|| DecodeError("broadcast without packet".into()))?;
                let opts = match take(&mut d, "opts") {
                    Some(o @ Value::Map(_)) => decode_opts(o)?,
                    // Node: `opts.rooms` of undefined or null throws.
                    None | Some(Value::Nil) => {
                        return Err(DecodeError("broadcast without opts".into()));
                    }
                    // Node compat: `decodeOptions` reads `rooms`, `except` and `flags` of
                    // any other value: of a string, number, boolean or array all are
                    // undefined, so the broadcast goes to every socket.
                    Some(_) => decode_opts(Value::Map(Vec::new()))?,
                };
                // Node compat: the receiving adapter overwrites the packet's nsp with its
                // own, so whatever the sender put there (a number, nil...) is no error.
                let packet = match packet {
                    Value::Map(mut p) => {
                        p.retain(|(k, _)| !codec::key_is(k, "nsp"));
                        Value::Map(p)
                    }
                    other => other,
                };
                let mut packet = decode_packet(packet)?;
                // Node compat: the receiving adapter sets the packet's nsp to its own.
                packet.nsp = Some(self.nsp.clone());
                Ok(Incoming::Broadcast(BroadcastMessage {
                    uid: self.uid,
                    packet,
                    opts,
                }))
            }
            kind::BROADCAST => request(d, classic::BROADCAST, &self.uid),
            kind::SOCKETS_JOIN => request(d, classic::REMOTE_JOIN, &self.uid),
            kind::SOCKETS_LEAVE => request(d, classic::REMOTE_LEAVE, &self.uid),
            kind::DISCONNECT_SOCKETS => request(d, classic::REMOTE_DISCONNECT, &self.uid),
            kind::FETCH_SOCKETS => request(d, classic::REMOTE_FETCH, &self.uid),
            kind::SERVER_SIDE_EMIT => {
                rename(&mut d, "packet", "data");
                request(d, classic::SERVER_SIDE_EMIT, &self.uid)
            }
            k => {
                let request_id = match get(&d, "requestId") {
                    Some(Value::String(s)) => s.into_str().unwrap_or_default(),
                    _ => return Err(DecodeError("response without a string requestId".into())),
                };
                let kind = match k {
                    kind::FETCH_SOCKETS_RESPONSE => None,
                    kind::SERVER_SIDE_EMIT_RESPONSE => {
                        rename(&mut d, "packet", "data");
                        Some(classic::SERVER_SIDE_EMIT)
                    }
                    kind::BROADCAST_CLIENT_COUNT => Some(classic::BROADCAST_CLIENT_COUNT),
                    _ => Some(classic::BROADCAST_ACK),
                };
                Ok(Incoming::Response(Response {
                    request_id,
                    kind,
                    fields: d,
                }))
            }
        }
    }

    /// A broadcast of `[event, ...args]` to `opts` (with `request_id`: with acks).
    pub fn broadcast(
        uid: &str,
        nsp: &str,
        data: Vec<Value>,
        opts: &WireOptions,
        request_id: Option<&str>,
    ) -> Self {
        let packet = Value::Map(vec![
            (key("type"), Value::from(2u8)),
            (key("data"), Value::Array(data)),
        ]);
        let mut d = vec![(key("packet"), packet)];
        if let Some(id) = request_id {
            d.push((key("requestId"), Value::from(id)));
        }
        d.push((key("opts"), wire_opts(opts)));
        ClusterMessage {
            uid: uid.to_owned(),
            nsp: nsp.to_owned(),
            kind: kind::BROADCAST,
            data: Some(Value::Map(d)),
        }
    }

    /// A classic request in the ClusterAdapter format; `None` for the requests it has no
    /// type for (SOCKETS, ALL_ROOMS, the legacy single-socket forms).
    pub fn from_request(req: &Request, uid: &str, nsp: &str) -> Option<Self> {
        let id = |r: &RequestId| r.value().cloned().unwrap_or(Value::Nil);
        let (k, d) = match req {
            Request::Broadcast {
                request_id,
                packet,
                opts,
                ..
            } => {
                let mut m = Self::broadcast(uid, nsp, packet.data.clone(), opts, None);
                if let Some(Value::Map(d)) = &mut m.data {
                    d.insert(1, (key("requestId"), id(request_id)));
                }
                return Some(m);
            }
            Request::JoinLeave {
                join, opts, rooms, ..
            } => (
                if *join {
                    kind::SOCKETS_JOIN
                } else {
                    kind::SOCKETS_LEAVE
                },
                vec![
                    (key("opts"), selector_opts(opts)),
                    (key("rooms"), Value::Array(rooms.clone())),
                ],
            ),
            Request::Disconnect { opts, close, .. } => (
                kind::DISCONNECT_SOCKETS,
                vec![
                    (key("opts"), selector_opts(opts)),
                    (key("close"), Value::Boolean(*close)),
                ],
            ),
            Request::Fetch {
                request_id, opts, ..
            } => (
                kind::FETCH_SOCKETS,
                vec![
                    (key("opts"), selector_opts(opts)),
                    (key("requestId"), id(request_id)),
                ],
            ),
            Request::ServerSideEmit {
                request_id, data, ..
            } => {
                let mut d = Vec::new();
                if let Some(r) = request_id {
                    d.push((key("requestId"), id(r)));
                }
                d.push((key("packet"), Value::Array(data.clone())));
                (kind::SERVER_SIDE_EMIT, d)
            }
            Request::Sockets { .. } | Request::AllRooms { .. } | Request::Legacy { .. } => {
                return None;
            }
        };
        Some(ClusterMessage {
            uid: uid.to_owned(),
            nsp: nsp.to_owned(),
            kind: k,
            data: Some(Value::Map(d)),
        })
    }

    /// A classic reply (the bytes our responders produce) in the ClusterAdapter format.
    pub fn from_reply(bytes: &[u8], uid: &str, nsp: &str) -> Result<Self, DecodeError> {
        // Not `Response::decode`: a reply to a request without a string `requestId` has
        // none either (Node compat: Node answers such requests, its reply saying
        // `requestId: null` or nothing).
        let Value::Map(mut d) = crate::request::decode_any(bytes)? else {
            return Err(DecodeError("reply is not an object".into()));
        };
        let res_kind = codec::map_get(&d, "type")
            .and_then(Value::as_u64)
            .and_then(|k| u8::try_from(k).ok());
        // `requestId` first, as Node writes it.
        if let Some(i) = d.iter().position(|(k, _)| codec::key_is(k, "requestId")) {
            let id = d.remove(i);
            d.insert(0, id);
        }
        d.retain(|(k, _)| !codec::key_is(k, "type"));
        let k = match res_kind {
            None if codec::map_get(&d, "sockets").is_some() => kind::FETCH_SOCKETS_RESPONSE,
            Some(classic::SERVER_SIDE_EMIT) => {
                rename(&mut d, "data", "packet");
                kind::SERVER_SIDE_EMIT_RESPONSE
            }
            Some(classic::BROADCAST_CLIENT_COUNT) => kind::BROADCAST_CLIENT_COUNT,
            Some(classic::BROADCAST_ACK) => kind::BROADCAST_ACK,
            _ => {
                return Err(DecodeError(
                    "a reply the ClusterAdapter format has no type for".into(),
                ));
            }
        };
        Ok(ClusterMessage {
            uid: uid.to_owned(),
            nsp: nsp.to_owned(),
            kind: k,
            data: Some(Value::Map(d)),
        })
    }
}

fn rename(d: &mut [(Value, Value)], from: &str, to: &str) {
    for (k, _) in d.iter_mut() {
        if codec::key_is(k, from) {
            *k = key(to);
        }
    }
}

/// `{rooms, except, flags}`, as the ClusterAdapter always writes them.
fn wire_opts(o: &WireOptions) -> Value {
    let flags = o.flags.iter().map(|(k, v)| (key(k), v.clone())).collect();
    Value::Map(vec![
        (key("rooms"), Value::Array(o.rooms.clone())),
        (
            key("except"),
            Value::Array(o.except.clone().unwrap_or_default()),
        ),
        (key("flags"), Value::Map(flags)),
    ])
}

fn selector_opts(s: &Selector) -> Value {
    Value::Map(vec![
        (key("rooms"), Value::Array(s.rooms.clone())),
        (key("except"), Value::Array(s.except.clone())),
        (key("flags"), Value::Map(Vec::new())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::fixtures_dir;

    fn fixture(name: &str) -> ClusterMessage {
        let bytes = std::fs::read(fixtures_dir().join("sharded-adapter-8.3.0").join(name)).unwrap();
        ClusterMessage::decode(&bytes).unwrap()
    }

    #[test]
    fn node_messages_read_as_classic_types() {
        let Incoming::Broadcast(b) = fixture("broadcast-room.bin").into_incoming().unwrap() else {
            panic!("a broadcast");
        };
        assert_eq!(b.opts.room_names(), vec!["room2".to_owned()]);
        assert_eq!(b.packet.data[0], Value::from("hello-room"));
        assert_eq!(b.packet.nsp.as_deref(), Some("/"));
        let Incoming::Broadcast(b) = fixture("broadcast-volatile.bin").into_incoming().unwrap()
        else {
            panic!()
        };
        assert!(b.opts.is_volatile());
        assert!(matches!(
            fixture("broadcast-with-ack.message.bin")
                .into_incoming()
                .unwrap(),
            Incoming::Request(Request::Broadcast { .. })
        ));
        for (file, join) in [("sockets-join.bin", true), ("sockets-leave.bin", false)] {
            let Incoming::Request(Request::JoinLeave {
                join: j,
                opts,
                rooms,
                uid,
            }) = fixture(file).into_incoming().unwrap()
            else {
                panic!("{file}")
            };
            assert_eq!(j, join);
            assert_eq!(opts.room_names(), vec!["room1".to_owned()]);
            assert_eq!(rooms, vec![Value::from("room1b")]);
            assert_eq!(uid.as_deref(), Some("3d894094ca1a9237"));
        }
        assert!(matches!(
            fixture("disconnect-sockets.bin").into_incoming().unwrap(),
            Incoming::Request(Request::Disconnect { close: true, .. })
        ));
        assert!(matches!(
            fixture("fetch-sockets.message.bin")
                .into_incoming()
                .unwrap(),
            Incoming::Request(Request::Fetch { .. })
        ));
        let Incoming::Request(Request::ServerSideEmit {
            data, request_id, ..
        }) = fixture("server-side-emit-ack.message.bin")
            .into_incoming()
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(data[0], Value::from("sse-ack"));
        assert!(request_id.is_some());
        let Incoming::Response(r) = fixture("fetch-sockets.response.bin")
            .into_incoming()
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(r.kind, None);
        assert!(r.get("sockets").is_some());
        let Incoming::Response(r) = fixture("server-side-emit-ack.response.bin")
            .into_incoming()
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(r.kind, Some(classic::SERVER_SIDE_EMIT));
        assert!(r.get("data").is_some());
        for (file, k) in [
            (
                "broadcast-with-ack.response.1.bin",
                classic::BROADCAST_CLIENT_COUNT,
            ),
            ("broadcast-with-ack.response.2.bin", classic::BROADCAST_ACK),
        ] {
            let Incoming::Response(r) = fixture(file).into_incoming().unwrap() else {
                panic!()
            };
            assert_eq!(r.kind, Some(k), "{file}");
        }
    }

    #[test]
    fn classic_types_write_nodes_bytes() {
        // Each fixture read as classic types and written back is byte for byte Node's.
        let node = |name: &str| {
            std::fs::read(fixtures_dir().join("sharded-adapter-8.3.0").join(name)).unwrap()
        };
        for file in [
            "broadcast-with-ack.message.bin",
            "sockets-join.bin",
            "sockets-leave.bin",
            "disconnect-sockets.bin",
            "fetch-sockets.message.bin",
            "server-side-emit.bin",
            "server-side-emit-ack.message.bin",
        ] {
            let m = fixture(file);
            let (uid, nsp) = (m.uid.clone(), m.nsp.clone());
            let Incoming::Request(req) = m.into_incoming().unwrap() else {
                panic!("{file}")
            };
            let again = ClusterMessage::from_request(&req, &uid, &nsp).unwrap();
            assert_eq!(again.encode(), node(file), "{file}");
        }
        for file in [
            "broadcast-all.bin",
            "broadcast-room.bin",
            "broadcast-binary.bin",
            "broadcast-volatile.bin",
        ] {
            let m = fixture(file);
            let (uid, nsp) = (m.uid.clone(), m.nsp.clone());
            let Incoming::Broadcast(b) = m.into_incoming().unwrap() else {
                panic!("{file}")
            };
            let again = ClusterMessage::broadcast(&uid, &nsp, b.packet.data, &b.opts, None);
            assert_eq!(again.encode(), node(file), "{file}");
        }
    }

    #[test]
    fn classic_replies_become_cluster_responses() {
        let id = RequestId::new("r1");
        let count = Response::encode_client_count(&id, 3);
        let m = ClusterMessage::from_reply(&count, "me", "/").unwrap();
        assert_eq!(
            String::from_utf8(m.encode()).unwrap(),
            r#"{"type":11,"data":{"requestId":"r1","clientCount":3},"uid":"me","nsp":"/"}"#
        );
        let ack = Response::encode_server_side_ack(&id, &Value::from("pong"));
        let m = ClusterMessage::from_reply(&ack, "me", "/").unwrap();
        assert_eq!(
            String::from_utf8(m.encode()).unwrap(),
            r#"{"type":10,"data":{"requestId":"r1","packet":"pong"},"uid":"me","nsp":"/"}"#
        );
        let bin = Response::encode_broadcast_ack(&id, &Value::Binary(vec![1]), None);
        let m = ClusterMessage::from_reply(&bin, "me", "/").unwrap();
        assert_eq!(m.kind, kind::BROADCAST_ACK);
        assert_eq!(m.encode()[0], 0x84, "binary: msgpack");
        let rooms = Response::encode_json(&id, vec![("rooms", serde_json::json!([]))]);
        assert!(ClusterMessage::from_reply(&rooms, "me", "/").is_err());
    }
}
