//! The ClusterAdapter format of socket.io-adapter 2.5.8: the messages of Node's
//! `createShardedAdapter` (redis-adapter 8.3.0) and of `@socket.io/redis-streams-adapter`
//! 0.3.1, and the sharded adapter's channels.
//!
//! A message is an envelope `{type, data, uid, nsp}` (in that key order on the wire;
//! `data` absent for the types without one). The sharded adapter writes it as JSON, or
//! as notepack msgpack when its type may carry binary and its `data` does
//! ([`ClusterMessage::encode`]); receivers tell the two apart by the first byte (`{` is
//! JSON), as for the classic protocol.

mod convert;

pub use convert::Incoming;

use crate::codec::{self, DecodeError};
use crate::request::{decode_any, value_to_json};
use rmpv::Value;

/// `MessageType` of socket.io-adapter 2.5.8.
pub mod kind {
    /// Sent by `ClusterAdapterWithHeartbeat` when it starts (not by the Redis packages).
    pub const INITIAL_HEARTBEAT: u64 = 1;
    /// Answer to INITIAL_HEARTBEAT, and after 5 s without publishing.
    pub const HEARTBEAT: u64 = 2;
    /// A broadcast; with `requestId`, a broadcast with acknowledgements.
    pub const BROADCAST: u64 = 3;
    /// `socketsJoin`.
    pub const SOCKETS_JOIN: u64 = 4;
    /// `socketsLeave`.
    pub const SOCKETS_LEAVE: u64 = 5;
    /// `disconnectSockets`.
    pub const DISCONNECT_SOCKETS: u64 = 6;
    /// `fetchSockets`.
    pub const FETCH_SOCKETS: u64 = 7;
    /// The reply to FETCH_SOCKETS.
    pub const FETCH_SOCKETS_RESPONSE: u64 = 8;
    /// `serverSideEmit`; with `requestId`, with an ack.
    pub const SERVER_SIDE_EMIT: u64 = 9;
    /// One server's ack to SERVER_SIDE_EMIT.
    pub const SERVER_SIDE_EMIT_RESPONSE: u64 = 10;
    /// How many clients a broadcast with acks reached on one server.
    pub const BROADCAST_CLIENT_COUNT: u64 = 11;
    /// One client's ack (its first argument).
    pub const BROADCAST_ACK: u64 = 12;
    /// Sent by `ClusterAdapterWithHeartbeat` when it closes.
    pub const ADAPTER_CLOSE: u64 = 13;
}

/// The uid socket.io-adapter reserves for emitters (`EMITTER_UID`): never counted as a
/// server.
pub const EMITTER_UID: &str = "emitter";

/// One ClusterAdapter message.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterMessage {
    /// The sender's uid (`randomBytes(8).toString("hex")` for Node servers).
    pub uid: String,
    /// The namespace (no default: a message without one is for nobody).
    pub nsp: String,
    /// One of [`kind`].
    pub kind: u64,
    /// The type's fields, in Node's key order; `None` for the types without data.
    pub data: Option<Value>,
}

/// Whether Node would write a message of this type with this `data` as msgpack: only
/// the types that may carry binary, and only when they do (`hasBinary(message.data)`).
pub fn is_msgpack(kind: u64, data: Option<&Value>) -> bool {
    matches!(
        kind,
        kind::BROADCAST
            | kind::BROADCAST_ACK
            | kind::FETCH_SOCKETS_RESPONSE
            | kind::SERVER_SIDE_EMIT
            | kind::SERVER_SIDE_EMIT_RESPONSE
    ) && data.is_some_and(has_binary)
}

/// socket.io's `hasBinary`: a binary anywhere inside.
pub fn has_binary(v: &Value) -> bool {
    match v {
        Value::Binary(_) => true,
        Value::Array(a) => a.iter().any(has_binary),
        Value::Map(m) => m.iter().any(|(k, v)| has_binary(k) || has_binary(v)),
        _ => false,
    }
}

impl ClusterMessage {
    /// The bytes the sharded adapter publishes: JSON (`JSON.stringify`), or notepack
    /// msgpack when [`is_msgpack`]. Keys in Node's order: `type, data, uid, nsp`.
    pub fn encode(&self) -> Vec<u8> {
        if is_msgpack(self.kind, self.data.as_ref()) {
            return self.encode_msgpack();
        }
        let mut o = serde_json::Map::new();
        o.insert("type".into(), self.kind.into());
        if let Some(data) = &self.data {
            o.insert("data".into(), value_to_json(data));
        }
        o.insert("uid".into(), self.uid.as_str().into());
        o.insert("nsp".into(), self.nsp.as_str().into());
        serde_json::to_vec(&serde_json::Value::Object(o)).unwrap_or_default()
    }

    /// The envelope as msgpack whatever it holds (the streams adapter publishes its
    /// ephemeral messages and responses so), written from borrowed parts.
    pub fn encode_msgpack(&self) -> Vec<u8> {
        let fields = 3 + u8::from(self.data.is_some());
        // A fixmap of 3 or 4 entries, as notepack writes it.
        let mut buf = vec![0x80 | fields];
        codec::write(&mut buf, &Value::from("type"));
        codec::write(&mut buf, &Value::from(self.kind));
        if let Some(data) = &self.data {
            codec::write(&mut buf, &Value::from("data"));
            codec::write(&mut buf, data);
        }
        codec::write(&mut buf, &Value::from("uid"));
        codec::write(&mut buf, &Value::from(self.uid.as_str()));
        codec::write(&mut buf, &Value::from("nsp"));
        codec::write(&mut buf, &Value::from(self.nsp.as_str()));
        buf
    }

    /// Reads a message (JSON or msgpack, by the first byte). Node compat: a message
    /// whose `type` is not a number, or without a string `uid` and `nsp`, is for no
    /// adapter (Node compares them with `===`).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let Value::Map(fields) = decode_any(bytes)? else {
            return Err(DecodeError("cluster message is not an object".into()));
        };
        let (mut kind, mut data, mut uid, mut nsp) = (None, None, None, None);
        // Node compat: JSON.parse and notepack keep the last of repeated keys.
        for (k, v) in fields {
            match codec::key_text(&k).as_ref() {
                "type" => kind = Some(v),
                "data" => data = Some(v),
                "uid" => uid = Some(v),
                "nsp" => nsp = Some(v),
                _ => {}
            }
        }
        let kind = kind
            .as_ref()
            .and_then(Value::as_u64)
            .ok_or_else(|| DecodeError("cluster message without a numeric type".into()))?;
        let text = |v: Option<Value>, what: &str| match v {
            Some(Value::String(s)) => s
                .into_str()
                .ok_or_else(|| DecodeError(format!("{what} is not UTF-8"))),
            _ => Err(DecodeError(format!(
                "cluster message without a string {what}"
            ))),
        };
        Ok(ClusterMessage {
            // Node compat: the uid is only compared with the receiver's own (`===`) and
            // written into the reply channel (`${channel}${uid}#`), so any value works:
            // a missing uid is answered on `<channel>undefined#`.
            uid: uid
                .as_ref()
                .map_or_else(|| "undefined".into(), codec::js_string),
            nsp: text(nsp, "nsp")?,
            kind,
            data,
        })
    }

    /// A field of `data`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.data {
            Some(Value::Map(m)) => codec::map_get(m, key),
            _ => None,
        }
    }
}

/// `subscriptionMode` of `createShardedAdapter`: which broadcasts get a channel of their
/// own (and so which room channels each server subscribes to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// Only the namespace channel and the servers' response channels.
    Static,
    /// Also a channel per room that is not socket-id-like (Node's default).
    #[default]
    Dynamic,
    /// Also a channel per room, socket-id rooms included.
    DynamicPrivate,
}

impl SubscriptionMode {
    /// Node's name of the mode (`"static"`, `"dynamic"`, `"dynamic-private"`).
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionMode::Static => "static",
            SubscriptionMode::Dynamic => "dynamic",
            SubscriptionMode::DynamicPrivate => "dynamic-private",
        }
    }

    /// Whether `room` gets a channel of its own in this mode. Node compat: in `dynamic`
    /// mode a room "looks like a socket id" when its length (in UTF-16 code units, as
    /// JavaScript counts) is 20.
    pub fn room_has_channel(self, room: &str) -> bool {
        match self {
            SubscriptionMode::Static => false,
            SubscriptionMode::Dynamic => room.encode_utf16().count() != 20,
            SubscriptionMode::DynamicPrivate => true,
        }
    }
}

/// The sharded adapter's channels of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedChannels {
    /// `<key>#<nsp>#`.
    main: String,
}

impl ShardedChannels {
    /// The channels of namespace `nsp` under `key` (Node's `channelPrefix`).
    pub fn new(key: &str, nsp: &str) -> Self {
        ShardedChannels {
            main: format!("{key}#{nsp}#"),
        }
    }

    /// `<key>#<nsp>#`: every message but responses and room broadcasts.
    pub fn main(&self) -> &str {
        &self.main
    }

    /// `<key>#<nsp>#<uid>#`: the responses to server `uid`'s requests.
    pub fn response_for(&self, uid: &str) -> String {
        format!("{}{uid}#", self.main)
    }

    /// `<key>#<nsp>#<room>#`: the channel of one room.
    pub fn room(&self, room: &str) -> String {
        format!("{}{room}#", self.main)
    }

    /// Where Node publishes `msg`: a BROADCAST without `requestId` to exactly one room
    /// that has a channel in `mode` goes to that room's channel, everything else to the
    /// main channel (responses excepted: see [`response_for`](Self::response_for)).
    pub fn for_message(&self, msg: &ClusterMessage, mode: SubscriptionMode) -> String {
        if msg.kind == kind::BROADCAST && msg.get("requestId").is_none() {
            let rooms = msg
                .get("opts")
                .and_then(|o| match o {
                    Value::Map(m) => codec::map_get(m, "rooms"),
                    _ => None,
                })
                .and_then(Value::as_array);
            if let Some([Value::String(room)]) = rooms.map(Vec::as_slice)
                && let Some(room) = room.as_str()
                && mode.room_has_channel(room)
            {
                return self.room(room);
            }
        }
        self.main.clone()
    }
}

#[cfg(test)]
mod fixture_tests {
    //! Every message captured from Node's sharded adapter (three subscription modes)
    //! decodes, re-encodes to the same bytes, and goes to the channel Node used.
    use super::*;
    use crate::test_fixtures::fixtures_dir;
    use serde_json::Value as Json;

    fn check_set(set: &str, mode: SubscriptionMode) -> usize {
        let dir = fixtures_dir().join(set);
        let manifest: Json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        let mut checked = 0;
        for e in manifest["entries"].as_array().unwrap() {
            let Some(file) = e["file"].as_str() else {
                continue;
            };
            let bytes = std::fs::read(fixtures_dir().join(file)).unwrap();
            let msg = ClusterMessage::decode(&bytes).unwrap_or_else(|err| panic!("{file}: {err}"));
            assert_eq!(msg.encode(), bytes, "{file}: re-encoded bytes differ");
            let expected = e["encoding"].as_str().unwrap() == "msgpack";
            assert_eq!(is_msgpack(msg.kind, msg.data.as_ref()), expected, "{file}");
            let channel = e["channel"].as_str().unwrap();
            let key = channel.split('#').next().unwrap();
            let chans = ShardedChannels::new(key, &msg.nsp);
            let response = [
                kind::FETCH_SOCKETS_RESPONSE,
                kind::SERVER_SIDE_EMIT_RESPONSE,
                kind::BROADCAST_CLIENT_COUNT,
                kind::BROADCAST_ACK,
            ]
            .contains(&msg.kind);
            if !response {
                assert_eq!(chans.for_message(&msg, mode), channel, "{file}");
            } else {
                assert!(channel.starts_with(chans.main()) && channel.ends_with('#'));
            }
            checked += 1;
        }
        checked
    }

    #[test]
    fn dynamic_mode_fixtures() {
        assert!(check_set("sharded-adapter-8.3.0", SubscriptionMode::Dynamic) >= 15);
    }

    #[test]
    fn static_mode_fixtures() {
        assert!(check_set("sharded-adapter-8.3.0-static", SubscriptionMode::Static) > 0);
    }

    #[test]
    fn dynamic_private_mode_fixtures() {
        let n = check_set(
            "sharded-adapter-8.3.0-dynamic-private",
            SubscriptionMode::DynamicPrivate,
        );
        assert!(n > 0);
    }

    #[test]
    fn room_channels_follow_nodes_socket_id_rule() {
        let m = SubscriptionMode::Dynamic;
        assert!(m.room_has_channel("room1"));
        assert!(
            !m.room_has_channel("J3rA42Td_2baqQIcAAAB"),
            "20 characters: an id"
        );
        assert!(m.room_has_channel("NjvvwbIvlPw_JU3Z"), "ours have 16");
        // JavaScript counts UTF-16 code units: 20 × "é" is 20 (40 bytes), 10 × "😀" is
        // 20 too (two units each).
        assert!(!m.room_has_channel(&"é".repeat(20)));
        assert!(!m.room_has_channel(&"😀".repeat(10)));
        assert!(m.room_has_channel(&"😀".repeat(20)));
        assert!(SubscriptionMode::DynamicPrivate.room_has_channel("J3rA42Td_2baqQIcAAAB"));
        assert!(!SubscriptionMode::Static.room_has_channel("room1"));
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        for bad in [
            &b"{}"[..],
            br#"{"type":"3","uid":"a","nsp":"/"}"#,
            br#"{"type":3,"uid":"a"}"#,
            br#"{"type":3,"uid":"a","nsp":5}"#,
            b"[1]",
            b"{",
            &[0xc1],
        ] {
            assert!(
                ClusterMessage::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let ok = ClusterMessage::decode(br#"{"type":2,"uid":"a","nsp":"/","type":13}"#).unwrap();
        assert_eq!(ok.kind, kind::ADAPTER_CLOSE, "the last key wins");
        // Node compat: any uid, or none, is a sender's uid (its replies' channel).
        for (body, uid) in [
            (&br#"{"type":3,"nsp":"/"}"#[..], "undefined"),
            (br#"{"type":3,"uid":null,"nsp":"/"}"#, "null"),
            (br#"{"type":3,"uid":5,"nsp":"/"}"#, "5"),
            (br#"{"type":3,"uid":[1,2],"nsp":"/"}"#, "1,2"),
        ] {
            assert_eq!(ClusterMessage::decode(body).unwrap().uid, uid);
        }
    }
}
