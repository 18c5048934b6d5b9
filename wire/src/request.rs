//! Requests and responses of `@socket.io/redis-adapter` 8.x.
//!
//! Requests go to `<key>-request#<nsp>#`, responses to `<key>-response#<nsp>#` or
//! `<key>-response#<nsp>#<uid>#`. Both are JSON objects, except the BROADCAST request
//! (type 7) and BROADCAST_ACK responses (type 9), which are msgpack maps because they
//! may carry binary. Receivers tell them apart by the first byte (`{` = JSON), as Node.
//!
//! Decoding produces one representation for both encodings: an [`rmpv::Value`] tree
//! (JSON numbers become integers or floats, binaries stay binary). Encoding writes the
//! exact key orders of Node's object literals, so our bytes equal Node's.

use crate::codec::{self, DecodeError, map_get};
use crate::message::{
    NodePacket, WireOptions, decode_opts, decode_packet, encode_opts, encode_packet, room_list,
};
use rmpv::Value;
use serde_json::{Map, Value as Json, json};

/// Node's `RequestType` numbers (8.3.0).
pub mod kind {
    /// `sockets()` of 6.x/7.x servers (receive only in 8.x).
    pub const SOCKETS: u8 = 0;
    /// `allRooms()`.
    pub const ALL_ROOMS: u8 = 1;
    /// `socketsJoin`, `remoteSocket.join`.
    pub const REMOTE_JOIN: u8 = 2;
    /// `socketsLeave`, `remoteSocket.leave`.
    pub const REMOTE_LEAVE: u8 = 3;
    /// `disconnectSockets`, `remoteSocket.disconnect`.
    pub const REMOTE_DISCONNECT: u8 = 4;
    /// `fetchSockets()`.
    pub const REMOTE_FETCH: u8 = 5;
    /// `serverSideEmit`.
    pub const SERVER_SIDE_EMIT: u8 = 6;
    /// Broadcast with acknowledgements.
    pub const BROADCAST: u8 = 7;
    /// Response: how many clients a server sent a broadcast-with-ack to.
    pub const BROADCAST_CLIENT_COUNT: u8 = 8;
    /// Response: one client's acknowledgement.
    pub const BROADCAST_ACK: u8 = 9;
}

/// `opts: {rooms, except}` of requests that select sockets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    /// Sockets in any of these rooms (all sockets when empty).
    pub rooms: Vec<Value>,
    /// Minus the sockets in any of these rooms.
    pub except: Vec<Value>,
}

impl Selector {
    /// A selector from room names.
    pub fn new(rooms: Vec<String>, except: Vec<String>) -> Self {
        Self {
            rooms: rooms.into_iter().map(Value::from).collect(),
            except: except.into_iter().map(Value::from).collect(),
        }
    }

    /// The rooms a Rust socket can be in (see [`codec::room_name`]).
    pub fn room_names(&self) -> Vec<String> {
        self.rooms.iter().filter_map(codec::room_name).collect()
    }

    /// The excluded rooms a Rust socket can be in.
    pub fn except_names(&self) -> Vec<String> {
        self.except.iter().filter_map(codec::room_name).collect()
    }

    /// Whether rooms were given but none of them can hold a Rust socket (`[true]`, `[["a"]]`):
    /// such a selector selects nobody here, where an empty one selects everyone.
    pub fn selects_nobody(&self) -> bool {
        !self.rooms.is_empty() && self.room_names().is_empty()
    }

    fn to_json(&self) -> Json {
        json!({"rooms": values_json(&self.rooms), "except": values_json(&self.except)})
    }
}

/// A request's `requestId` as its sender wrote it. Node compat: Node echoes it in its
/// replies as it came: a number stays a number, `null` stays `null`, and a missing one
/// is left out of the reply (which is still sent).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestId(Option<Value>);

impl RequestId {
    /// A string id (every id this crate generates).
    pub fn new(id: impl Into<String>) -> Self {
        Self(Some(Value::from(id.into())))
    }

    fn read(v: Option<&Value>) -> Self {
        Self(v.cloned())
    }

    /// The id when it is a string: only those can match a request of ours.
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Some(Value::String(s)) => s.as_str(),
            _ => None,
        }
    }

    /// The JSON to echo; `None` when the request had no `requestId`.
    pub fn to_json(&self) -> Option<Json> {
        self.0.as_ref().map(value_to_json)
    }

    pub(crate) fn value(&self) -> Option<&Value> {
        self.0.as_ref()
    }
}

impl From<&str> for RequestId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for RequestId {
    fn from(id: String) -> Self {
        Self::new(id)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_json() {
            Some(Json::String(s)) => f.write_str(&s),
            Some(other) => write!(f, "{other}"),
            None => f.write_str("(none)"),
        }
    }
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// `{requestId, type: 0, rooms}`: ids of the sockets in `rooms`.
    Sockets {
        /// Correlation id.
        request_id: RequestId,
        /// Rooms (all sockets when empty).
        rooms: Vec<Value>,
    },
    /// `{uid, requestId, type: 1}`.
    AllRooms {
        /// Requester.
        uid: Option<String>,
        /// Correlation id.
        request_id: RequestId,
    },
    /// `{uid, type: 2|3, opts, rooms}`: matching sockets join / leave `rooms`. No reply.
    JoinLeave {
        /// Requester (absent for emitters).
        uid: Option<String>,
        /// True for REMOTE_JOIN, false for REMOTE_LEAVE.
        join: bool,
        /// Which sockets.
        opts: Selector,
        /// Rooms to join or leave.
        rooms: Vec<Value>,
    },
    /// `{uid, type: 4, opts, close}`: disconnect matching sockets. No reply.
    Disconnect {
        /// Requester (absent for emitters).
        uid: Option<String>,
        /// Which sockets.
        opts: Selector,
        /// Close the underlying connection.
        close: bool,
    },
    /// Legacy single-socket forms `{requestId, type: 2|3, sid, room}` and
    /// `{requestId, type: 4, sid, close}`, answered `{requestId}` by the server that has
    /// the socket.
    Legacy {
        /// Correlation id.
        request_id: RequestId,
        /// 2, 3 or 4.
        kind: u8,
        /// The socket.
        sid: String,
        /// Room to join/leave (types 2, 3).
        room: Option<Value>,
        /// Close flag (type 4).
        close: bool,
    },
    /// `{uid, requestId, type: 5, opts}`.
    Fetch {
        /// Requester.
        uid: Option<String>,
        /// Correlation id.
        request_id: RequestId,
        /// Which sockets.
        opts: Selector,
    },
    /// `{uid, [requestId,] type: 6, data: [event, ...args]}`.
    ServerSideEmit {
        /// Sender.
        uid: Option<String>,
        /// Present when the sender waits for acknowledgements.
        request_id: Option<RequestId>,
        /// `[event, ...args]`.
        data: Vec<Value>,
    },
    /// msgpack `{uid, requestId, type: 7, packet, opts}`: broadcast with acks.
    Broadcast {
        /// Requester.
        uid: Option<String>,
        /// Correlation id.
        request_id: RequestId,
        /// The event.
        packet: NodePacket,
        /// Rooms, except, flags (`flags.timeout` in ms).
        opts: WireOptions,
    },
}

/// A decoded response: the correlation id, Node's `type` when present (6, 8, 9), and
/// the other fields, interpreted by the request that waits for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Correlation id.
    pub request_id: String,
    /// `type` (only SERVER_SIDE_EMIT acks, BROADCAST_CLIENT_COUNT and BROADCAST_ACK have one).
    pub kind: Option<u8>,
    /// Every field.
    pub fields: Vec<(Value, Value)>,
}

impl Response {
    /// A field by name.
    pub fn get(&self, key: &str) -> Option<&Value> {
        map_get(&self.fields, key)
    }

    /// Takes a field out.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        let i = self
            .fields
            .iter()
            .position(|(k, _)| k.as_str() == Some(key))?;
        Some(self.fields.swap_remove(i).1)
    }
}

/// JSON or msgpack (Node compat: `{` as first byte means JSON).
pub fn decode_any(bytes: &[u8]) -> Result<Value, DecodeError> {
    if bytes.first() == Some(&b'{') {
        let json: Json =
            serde_json::from_slice(bytes).map_err(|e| DecodeError(format!("invalid JSON: {e}")))?;
        json_to_value(&json, 0)
    } else {
        codec::decode(bytes)
    }
}

/// The value of top-level key `key` of the JSON object `bytes` (the last one, as
/// `serde_json`'s map and Node's `JSON.parse` keep it), checking the whole document
/// without building it: invalid JSON is an error, as for [`decode_any`].
fn json_peek(bytes: &[u8], key: &str) -> Result<Option<Json>, DecodeError> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Peek<'k>(&'k str);
    impl<'de> Visitor<'de> for Peek<'_> {
        type Value = Option<Json>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if k == self.0 {
                    found = Some(map.next_value::<Json>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let found = (&mut de)
        .deserialize_map(Peek(key))
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| DecodeError(format!("invalid JSON: {e}")))?;
    Ok(found)
}

fn json_to_value(j: &Json, depth: usize) -> Result<Value, DecodeError> {
    if depth > codec::MAX_DEPTH {
        return Err(DecodeError("JSON nested too deep".into()));
    }
    Ok(match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (_, Some(i)) => Value::from(i),
            _ => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| json_to_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| Ok((Value::from(k.as_str()), json_to_value(v, depth + 1)?)))
                .collect::<Result<_, DecodeError>>()?,
        ),
    })
}

/// A msgpack value as `JSON.stringify` would write the JS value: binaries become
/// `{"type":"Buffer","data":[...]}` (Node compat: binary does not survive JSON requests).
pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => i
            .as_u64()
            .map(Json::from)
            .or_else(|| i.as_i64().map(Json::from))
            .unwrap_or(Json::Null),
        Value::F32(f) => float_json(f64::from(*f)),
        Value::F64(f) => float_json(*f),
        Value::String(s) => Json::String(s.as_str().unwrap_or_default().to_owned()),
        Value::Binary(b) => json!({"type": "Buffer", "data": b}),
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (k, v) in entries {
                let key = codec::js_string(k);
                map.insert(key, value_to_json(v));
            }
            Json::Object(map)
        }
        Value::Ext(_, _) => Json::Null,
    }
}

fn float_json(f: f64) -> Json {
    // JSON.stringify: integral numbers print without a fraction; NaN/Infinity as null.
    if f.is_finite() && f.floor() == f && f.abs() < 9.007_199_254_740_992e15 {
        Json::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
    }
}

fn values_json(vs: &[Value]) -> Json {
    Json::Array(vs.iter().map(value_to_json).collect())
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(codec::room_name)
}

/// `new Set(v)`, as Node's responder reads `rooms` and `except`: an array's items, a
/// string's characters, nothing for missing or nil; anything else throws in Node, which
/// then neither answers nor acts (an error here, counted as malformed).
fn node_set(field: &str, v: Option<&Value>) -> Result<Vec<Value>, DecodeError> {
    match v {
        None | Some(Value::Nil) => Ok(Vec::new()),
        // The same reading as a broadcast's `opts.rooms`.
        Some(v) => room_list(field, v.clone()),
    }
}

/// `request.opts` read as Node's responder does: `{rooms: new Set(opts.rooms), except:
/// new Set(opts.except)}`. Reading a property of a missing or nil `opts` throws (no
/// answer); any other non-object has no such properties (every socket).
fn node_selector(v: Option<&Value>) -> Result<Selector, DecodeError> {
    match v {
        None | Some(Value::Nil) => Err(DecodeError("request without opts".into())),
        Some(Value::Map(m)) => Ok(Selector {
            rooms: node_set("opts.rooms", map_get(m, "rooms"))?,
            except: node_set("opts.except", map_get(m, "except"))?,
        }),
        Some(_) => Ok(Selector::default()),
    }
}

/// The rooms of `socket.join(rooms)`: an array's items, any other value one room.
fn join_rooms(v: Option<&Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// `request.type` for Node's `switch`: strict equality with a number, so `1.0` is 1 and
/// `"1"` is no type.
fn request_type(v: Option<&Value>) -> Option<u8> {
    match v? {
        Value::Integer(i) => i.as_u64().and_then(|k| u8::try_from(k).ok()),
        Value::F64(f) if f.fract() == 0.0 && (0.0..=255.0).contains(f) => Some(*f as u8),
        Value::F32(f) if f.fract() == 0.0 && (0.0..=255.0).contains(f) => Some(*f as u8),
        _ => None,
    }
}

impl Request {
    /// Decodes a request (JSON or msgpack). Unknown types are an error the caller skips.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        // A JSON request whose `type` is none we know is refused without building the
        // whole document (a flood of large JSON objects costs a scan, not a tree).
        if bytes.first() == Some(&b'{') {
            let kind = json_peek(bytes, "type")?
                .map(|t| json_to_value(&t, 0))
                .transpose()?;
            if request_type(kind.as_ref()).is_none_or(|k| k > kind::BROADCAST) {
                return Err(DecodeError("request.type missing or unknown".into()));
            }
        }
        let Value::Map(m) = decode_any(bytes)? else {
            return Err(DecodeError("request is not an object".into()));
        };
        Self::from_map(m)
    }

    /// A request from the fields of a decoded object (see [`decode`](Self::decode)).
    pub fn from_map(m: Vec<(Value, Value)>) -> Result<Self, DecodeError> {
        let kind = request_type(map_get(&m, "type"))
            .ok_or_else(|| DecodeError("request.type missing or not a number".into()))?;
        let uid = string(map_get(&m, "uid"));
        // Node compat: Node answers a request without requestId too (its reply has none).
        let request_id = RequestId::read(map_get(&m, "requestId"));
        // Node compat: join/leave/disconnect take the single-socket form unless `opts` is
        // truthy (`if (request.opts)`).
        let by_sid = !map_get(&m, "opts").is_some_and(codec::js_truthy);
        Ok(match kind {
            kind::SOCKETS => Request::Sockets {
                request_id,
                rooms: node_set("rooms", map_get(&m, "rooms"))?,
            },
            kind::ALL_ROOMS => Request::AllRooms { uid, request_id },
            k @ (kind::REMOTE_JOIN | kind::REMOTE_LEAVE | kind::REMOTE_DISCONNECT) if by_sid => {
                Request::Legacy {
                    request_id,
                    kind: k,
                    sid: match map_get(&m, "sid") {
                        Some(Value::String(s)) => s.as_str().unwrap_or_default().to_owned(),
                        _ => return Err(DecodeError("single-socket request without sid".into())),
                    },
                    room: map_get(&m, "room").cloned(),
                    close: map_get(&m, "close").is_some_and(codec::js_truthy),
                }
            }
            k @ (kind::REMOTE_JOIN | kind::REMOTE_LEAVE) => Request::JoinLeave {
                uid,
                join: k == kind::REMOTE_JOIN,
                opts: node_selector(map_get(&m, "opts"))?,
                rooms: match (k, map_get(&m, "rooms")) {
                    (kind::REMOTE_JOIN, rooms) => join_rooms(rooms),
                    (_, Some(Value::Array(rooms))) => rooms.clone(),
                    // Node compat: `rooms.forEach(..)` throws on anything but an array.
                    _ => return Err(DecodeError("socketsLeave rooms is not an array".into())),
                },
            },
            kind::REMOTE_DISCONNECT => Request::Disconnect {
                uid,
                opts: node_selector(map_get(&m, "opts"))?,
                close: map_get(&m, "close").is_some_and(codec::js_truthy),
            },
            kind::REMOTE_FETCH => Request::Fetch {
                uid,
                request_id,
                opts: node_selector(map_get(&m, "opts"))?,
            },
            kind::SERVER_SIDE_EMIT => Request::ServerSideEmit {
                uid,
                // Node compat: `withAck = request.requestId !== undefined` (null acks).
                request_id: map_get(&m, "requestId").map(|_| request_id),
                data: match map_get(&m, "data") {
                    None | Some(Value::Nil) => Vec::new(),
                    Some(Value::Array(items)) => items.clone(),
                    Some(_) => {
                        return Err(DecodeError("serverSideEmit data is not an array".into()));
                    }
                },
            },
            kind::BROADCAST => {
                let mut m = m;
                let take = |m: &mut Vec<(Value, Value)>, key: &str| {
                    m.iter()
                        .rposition(|(k, _)| codec::key_is(k, key))
                        .map(|i| m.swap_remove(i).1)
                };
                let packet = take(&mut m, "packet")
                    .ok_or_else(|| DecodeError("broadcast request without packet".into()))?;
                let opts = match take(&mut m, "opts") {
                    None | Some(Value::Nil) => {
                        return Err(DecodeError("broadcast request without opts".into()));
                    }
                    Some(o @ Value::Map(_)) => decode_opts(o)?,
                    // Node reads `.rooms` of another value: undefined, every socket.
                    Some(_) => decode_opts(Value::Map(Vec::new()))?,
                };
                Request::Broadcast {
                    uid,
                    request_id,
                    packet: decode_packet(packet)?,
                    opts,
                }
            }
            other => return Err(DecodeError(format!("unknown request type {other}"))),
        })
    }

    /// Encodes the request exactly as the Node adapter 8.x does (emitters: `uid` absent).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Map::new();
        let uid = |o: &mut Map<String, Json>, uid: &Option<String>| {
            if let Some(uid) = uid {
                o.insert("uid".into(), Json::from(uid.as_str()));
            }
        };
        match self {
            Request::Sockets { request_id, rooms } => {
                put_id(&mut o, request_id);
                o.insert("type".into(), kind::SOCKETS.into());
                o.insert("rooms".into(), values_json(rooms));
            }
            Request::AllRooms { uid: u, request_id } => {
                uid(&mut o, u);
                put_id(&mut o, request_id);
                o.insert("type".into(), kind::ALL_ROOMS.into());
            }
            Request::JoinLeave {
                uid: u,
                join,
                opts,
                rooms,
            } => {
                uid(&mut o, u);
                let k = if *join {
                    kind::REMOTE_JOIN
                } else {
                    kind::REMOTE_LEAVE
                };
                o.insert("type".into(), k.into());
                o.insert("opts".into(), opts.to_json());
                o.insert("rooms".into(), values_json(rooms));
            }
            Request::Disconnect {
                uid: u,
                opts,
                close,
            } => {
                uid(&mut o, u);
                o.insert("type".into(), kind::REMOTE_DISCONNECT.into());
                o.insert("opts".into(), opts.to_json());
                o.insert("close".into(), (*close).into());
            }
            Request::Legacy {
                request_id,
                kind: k,
                sid,
                room,
                close,
            } => {
                put_id(&mut o, request_id);
                o.insert("type".into(), (*k).into());
                o.insert("sid".into(), sid.as_str().into());
                match room {
                    Some(room) => o.insert("room".into(), value_to_json(room)),
                    None => o.insert("close".into(), (*close).into()),
                };
            }
            Request::Fetch {
                uid: u,
                request_id,
                opts,
            } => {
                uid(&mut o, u);
                put_id(&mut o, request_id);
                o.insert("type".into(), kind::REMOTE_FETCH.into());
                o.insert("opts".into(), opts.to_json());
            }
            Request::ServerSideEmit {
                uid: u,
                request_id,
                data,
            } => {
                uid(&mut o, u);
                if let Some(id) = request_id {
                    put_id(&mut o, id);
                }
                o.insert("type".into(), kind::SERVER_SIDE_EMIT.into());
                o.insert("data".into(), values_json(data));
            }
            Request::Broadcast {
                uid: u,
                request_id,
                packet,
                opts,
            } => return encode_broadcast_request(u.as_deref(), request_id, packet, opts),
        }
        serde_json::to_vec(&Json::Object(o)).unwrap_or_default()
    }
}

/// `requestId` as the request had it (left out when it had none).
fn put_id(o: &mut Map<String, Json>, id: &RequestId) {
    if let Some(id) = id.to_json() {
        o.insert("requestId".into(), id);
    }
}

fn encode_broadcast_request(
    uid: Option<&str>,
    request_id: &RequestId,
    packet: &NodePacket,
    opts: &WireOptions,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    let n = 3 + usize::from(uid.is_some()) + usize::from(request_id.value().is_some());
    let _ = rmp::encode::write_map_len(&mut buf, n as u32);
    if let Some(uid) = uid {
        codec::write(&mut buf, &Value::from("uid"));
        codec::write(&mut buf, &Value::from(uid));
    }
    if let Some(id) = request_id.value() {
        codec::write(&mut buf, &Value::from("requestId"));
        codec::write(&mut buf, id);
    }
    codec::write(&mut buf, &Value::from("type"));
    codec::write(&mut buf, &Value::from(kind::BROADCAST));
    codec::write(&mut buf, &Value::from("packet"));
    encode_packet(&mut buf, packet);
    codec::write(&mut buf, &Value::from("opts"));
    encode_opts(&mut buf, opts);
    buf
}

impl Response {
    /// The `requestId` of a JSON response when it is a plain string among its first
    /// fields (as every Node and Rust server writes it: `{"requestId":"…"` or
    /// `{"type":8,"requestId":"…"`), without decoding the rest: replies to other servers'
    /// requests, which every server reads on the shared channel, are skipped at that
    /// cost. `None` when it cannot tell (then decode).
    pub fn peek_request_id(bytes: &[u8]) -> Option<&str> {
        const KEY: &[u8] = b"\"requestId\":\"";
        if bytes.first() != Some(&b'{') {
            return None;
        }
        let head = &bytes[..bytes.len().min(48)];
        let at = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
        // Only `{`, `"type":<digits>,` may come before the key.
        if !bytes[1..at - KEY.len()]
            .iter()
            .all(|b| b"\"type:,0123456789".contains(b))
        {
            return None;
        }
        let rest = &bytes[at..];
        let end = rest.iter().take(64).position(|&b| b == b'"')?;
        let id = &rest[..end];
        if id.contains(&b'\\') {
            return None;
        }
        std::str::from_utf8(id).ok()
    }

    /// Decodes a response (JSON or msgpack).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        // As for requests: a JSON reply without a usable requestId is refused from a scan.
        if bytes.first() == Some(&b'{') {
            let id = json_peek(bytes, "requestId")?
                .map(|t| json_to_value(&t, 0))
                .transpose()?;
            if string(id.as_ref()).is_none() {
                return Err(DecodeError("response without requestId".into()));
            }
        }
        let Value::Map(fields) = decode_any(bytes)? else {
            return Err(DecodeError("response is not an object".into()));
        };
        let request_id = string(map_get(&fields, "requestId"))
            .ok_or_else(|| DecodeError("response without requestId".into()))?;
        let kind = map_get(&fields, "type")
            .and_then(Value::as_u64)
            .and_then(|k| u8::try_from(k).ok());
        Ok(Self {
            request_id,
            kind,
            fields,
        })
    }

    /// JSON `{requestId, <field>: value, ...}` in the given order (SOCKETS, ALL_ROOMS,
    /// REMOTE_FETCH and legacy responses).
    pub fn encode_json(request_id: &RequestId, fields: Vec<(&str, Json)>) -> Vec<u8> {
        let mut o = Map::new();
        put_id(&mut o, request_id);
        for (k, v) in fields {
            o.insert(k.into(), v);
        }
        serde_json::to_vec(&Json::Object(o)).unwrap_or_default()
    }

    /// JSON `{type: 6, requestId, data}`: one server-side-emit acknowledgement.
    pub fn encode_server_side_ack(request_id: &RequestId, data: &Value) -> Vec<u8> {
        let mut o = Map::new();
        o.insert("type".into(), kind::SERVER_SIDE_EMIT.into());
        put_id(&mut o, request_id);
        o.insert("data".into(), value_to_json(data));
        serde_json::to_vec(&Json::Object(o)).unwrap_or_default()
    }

    /// JSON `{type: 8, requestId, clientCount}`.
    pub fn encode_client_count(request_id: &RequestId, count: u64) -> Vec<u8> {
        let mut o = Map::new();
        o.insert("type".into(), kind::BROADCAST_CLIENT_COUNT.into());
        put_id(&mut o, request_id);
        o.insert("clientCount".into(), count.into());
        serde_json::to_vec(&Json::Object(o)).unwrap_or_default()
    }

    /// msgpack `{type: 9, requestId, packet}`: one client's acknowledgement (its first
    /// argument; binary kept). `sid`, when given, names the socket that answered, in a
    /// field Node ignores (our servers send it, see PROTOCOL.md).
    pub fn encode_broadcast_ack(
        request_id: &RequestId,
        packet: &Value,
        sid: Option<&str>,
    ) -> Vec<u8> {
        let mut m = vec![(Value::from("type"), Value::from(kind::BROADCAST_ACK))];
        if let Some(id) = request_id.value() {
            m.push((Value::from("requestId"), id.clone()));
        }
        m.push((Value::from("packet"), packet.clone()));
        if let Some(sid) = sid {
            m.push((Value::from("sid"), Value::from(sid)));
        }
        codec::to_vec(&Value::Map(m))
    }
}

#[cfg(test)]
mod fixture_tests {
    //! Every request and response captured from the real Node packages decodes, and the
    //! ones a 8.x adapter or 5.x emitter produced re-encode to the same bytes.
    use super::*;
    use crate::test_fixtures::fixtures_dir;

    fn entries(set: &str) -> Vec<(String, String, Vec<u8>)> {
        let dir = fixtures_dir();
        let manifest: Json = serde_json::from_str(
            &std::fs::read_to_string(dir.join(set).join("manifest.json")).unwrap(),
        )
        .unwrap();
        manifest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                let file = e["file"].as_str()?;
                let channel = e["channel"].as_str()?.to_owned();
                Some((
                    file.to_owned(),
                    channel,
                    std::fs::read(dir.join(file)).unwrap(),
                ))
            })
            .collect()
    }

    const MODERN: [&str; 4] = [
        "redis-adapter-8.3.0",
        "redis-adapter-8.3.0-specific-response",
        "redis-adapter-8.3.0-ioredis",
        "redis-emitter-5.1.0",
    ];

    #[test]
    fn requests_decode_and_reencode_byte_for_byte() {
        let mut n = 0;
        for set in MODERN {
            for (file, channel, bytes) in entries(set) {
                if !channel.contains("-request#") {
                    continue;
                }
                let req = Request::decode(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(req.encode(), bytes, "{file}: re-encoded {req:?}");
                n += 1;
            }
        }
        assert!(n >= 20, "only {n} request fixtures");
    }

    #[test]
    fn responses_decode_and_reencode_byte_for_byte() {
        let mut n = 0;
        for set in MODERN {
            for (file, channel, bytes) in entries(set) {
                if !channel.contains("-response#") {
                    continue;
                }
                let mut res = Response::decode(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
                let again = match res.kind {
                    Some(kind::SERVER_SIDE_EMIT) => Response::encode_server_side_ack(
                        &RequestId::new(res.request_id.clone()),
                        res.get("data").unwrap(),
                    ),
                    Some(kind::BROADCAST_CLIENT_COUNT) => Response::encode_client_count(
                        &RequestId::new(res.request_id.clone()),
                        res.get("clientCount").and_then(Value::as_u64).unwrap(),
                    ),
                    Some(kind::BROADCAST_ACK) => Response::encode_broadcast_ack(
                        &RequestId::new(res.request_id.clone()),
                        res.get("packet").unwrap(),
                        None,
                    ),
                    _ => {
                        res.take("requestId");
                        let id = res.request_id.clone();
                        let fields: Vec<(String, Json)> = res
                            .fields
                            .iter()
                            .map(|(k, v)| (k.as_str().unwrap().to_owned(), value_to_json(v)))
                            .collect();
                        Response::encode_json(
                            &RequestId::new(id.clone()),
                            fields
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.clone()))
                                .collect(),
                        )
                    }
                };
                assert_eq!(
                    String::from_utf8_lossy(&again),
                    String::from_utf8_lossy(&bytes),
                    "{file}"
                );
                assert_eq!(again, bytes, "{file}");
                n += 1;
            }
        }
        assert!(n >= 15, "only {n} response fixtures");
    }

    #[test]
    fn legacy_sets_decode_or_fail_cleanly() {
        for set in ["socket.io-redis-5.4.0", "socket.io-redis-6.1.1"] {
            for (_, channel, bytes) in entries(set) {
                if channel.contains("-request#") {
                    let _ = Request::decode(&bytes);
                } else if channel.contains("-response#") {
                    let _ = Response::decode(&bytes);
                }
            }
        }
        // 6.x single-socket forms are understood.
        let req = Request::decode(br#"{"requestId":"a","type":2,"sid":"s1","room":"r"}"#).unwrap();
        assert!(matches!(req, Request::Legacy { kind: 2, .. }));
    }

    #[test]
    fn buffers_become_node_json_buffers() {
        let j = value_to_json(&Value::Binary(vec![1, 2]));
        assert_eq!(j.to_string(), r#"{"type":"Buffer","data":[1,2]}"#);
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [
            &b"{"[..],
            b"{}",
            b"[]",
            b"{\"type\":99}",
            b"{\"type\":\"1\"}",
            &[0x81, 0xa4, b't', b'y', b'p', b'e', 0x07],
        ] {
            assert!(Request::decode(bytes).is_err());
        }
        assert!(Response::decode(b"{\"rooms\":[]}").is_err());
    }

    #[test]
    fn request_ids_are_peeked_from_the_first_bytes() {
        let peek = Response::peek_request_id;
        assert_eq!(peek(br#"{"requestId":"ab12","sockets":[]}"#), Some("ab12"));
        assert_eq!(
            peek(br#"{"type":8,"requestId":"x","clientCount":1}"#),
            Some("x")
        );
        // Escapes, other leading keys, numbers, msgpack: decode instead.
        assert_eq!(peek(br#"{"requestId":"a\"b"}"#), None);
        assert_eq!(peek(br#"{"rooms":[],"requestId":"x"}"#), None);
        assert_eq!(peek(br#"{"requestId":5}"#), None);
        assert_eq!(peek(&[0x83, 0xa4]), None);
        assert_eq!(peek(b""), None);
    }

    /// Node answers what its `switch` and `new Set` accept, and echoes the id as it came.
    #[test]
    fn requests_as_node_reads_them() {
        let all_rooms = |b: &[u8]| match Request::decode(b) {
            Ok(Request::AllRooms { request_id, .. }) => request_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(all_rooms(b"{\"type\":1}").to_json(), None);
        assert_eq!(
            all_rooms(b"{\"type\":1.0,\"requestId\":5}").to_json(),
            Some(json!(5))
        );
        assert_eq!(
            all_rooms(b"{\"type\":1,\"requestId\":null}").to_json(),
            Some(Json::Null)
        );
        assert_eq!(
            Response::encode_json(&all_rooms(b"{\"type\":1,\"requestId\":5}"), vec![]),
            b"{\"requestId\":5}"
        );
        assert_eq!(Response::encode_json(&RequestId::default(), vec![]), b"{}");
        // `new Set("ab")` is two rooms; `new Set(5)` throws (no answer).
        match Request::decode(b"{\"type\":0,\"requestId\":\"r\",\"rooms\":\"ab\"}") {
            Ok(Request::Sockets { rooms, .. }) => {
                assert_eq!(rooms, [Value::from("a"), Value::from("b")])
            }
            other => panic!("{other:?}"),
        }
        assert!(Request::decode(b"{\"type\":0,\"rooms\":5}").is_err());
        // fetchSockets without opts throws in Node; disconnect with a falsy opts is the
        // single-socket form.
        assert!(Request::decode(b"{\"type\":5,\"requestId\":\"r\"}").is_err());
        assert!(matches!(
            Request::decode(b"{\"type\":4,\"opts\":null,\"sid\":\"x\"}"),
            Ok(Request::Legacy { .. })
        ));
    }
}

#[cfg(test)]
mod extension_tests {
    use super::*;

    #[test]
    fn our_broadcast_ack_names_the_socket_after_nodes_fields() {
        let bytes = Response::encode_broadcast_ack(
            &RequestId::new("52H2RM"),
            &Value::from("ok"),
            Some("NjvvwbIvlPw_JU3Z"),
        );
        let mut want = vec![0x84, 0xa4];
        want.extend(b"type");
        want.extend([0x09, 0xa9]);
        want.extend(b"requestId");
        want.push(0xa6);
        want.extend(b"52H2RM");
        want.push(0xa6);
        want.extend(b"packet");
        want.push(0xa2);
        want.extend(b"ok");
        want.push(0xa3);
        want.extend(b"sid");
        want.push(0xb0);
        want.extend(b"NjvvwbIvlPw_JU3Z");
        assert_eq!(bytes, want);
        // Node's reading: the same requestId and packet.
        let r = Response::decode(&bytes).unwrap();
        assert_eq!(r.kind, Some(kind::BROADCAST_ACK));
        assert_eq!(r.get("packet"), Some(&Value::from("ok")));
    }
}
