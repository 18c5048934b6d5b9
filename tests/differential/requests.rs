//! Requests as Node 8.x servers, `@socket.io/redis-emitter` 5.x and third parties write
//! them, in JSON and msgpack, with missing, extra and mistyped fields: both servers must
//! answer exactly the same way (replies and what the sockets receive).

use crate::cases::TARGET;
use serde_json::{Value, json};

/// Replaced by each server's own uid.
pub(crate) const TARGET_UID: &str = "TARGETUID";

/// One request input: a name, the channel after the key, and the bytes.
pub(crate) struct RequestCase {
    pub(crate) name: String,
    pub(crate) channel: &'static str,
    pub(crate) bytes: Vec<u8>,
}

/// The well-formed request of each type.
fn bases() -> Vec<(&'static str, Value)> {
    vec![
        (
            "sockets",
            json!({"type": 0, "requestId": "r0", "rooms": ["a"]}),
        ),
        ("allRooms", json!({"type": 1, "requestId": "r1"})),
        (
            "remoteJoin by sid",
            json!({"type": 2, "requestId": "r2", "sid": TARGET, "room": "j1"}),
        ),
        (
            "remoteLeave by sid",
            json!({"type": 3, "requestId": "r3", "sid": TARGET, "room": "j1"}),
        ),
        (
            "socketsJoin",
            json!({"type": 2, "opts": {"rooms": ["b"], "except": []}, "rooms": ["j2"]}),
        ),
        (
            "socketsLeave",
            json!({"type": 3, "opts": {"rooms": ["b"], "except": []}, "rooms": ["j2"]}),
        ),
        (
            "disconnectSockets of nobody",
            json!({"type": 4, "opts": {"rooms": ["nobody"], "except": []}, "close": false}),
        ),
        (
            "remoteDisconnect of an unknown sid",
            json!({"type": 4, "requestId": "r4", "sid": "nobody", "close": false}),
        ),
        (
            "fetchSockets",
            json!({"type": 5, "requestId": "r5", "opts": {"rooms": ["a"], "except": ["b"]}}),
        ),
        (
            "serverSideEmit with ack",
            json!({"type": 6, "requestId": "r6", "uid": "producer", "data": ["ping-ss", 1]}),
        ),
        (
            "serverSideEmit",
            json!({"type": 6, "uid": "producer", "data": ["ping-ss", 2]}),
        ),
        (
            "broadcastWithAck",
            json!({"type": 7, "requestId": "r7",
                   "packet": {"type": 2, "data": ["bwa", 1], "nsp": "/"},
                   "opts": {"rooms": ["a"], "except": []}}),
        ),
    ]
}

/// Edits of a request object; `None` when the edit does not apply to it.
type Edit = fn(&Value) -> Option<Value>;

fn with(v: &Value, key: &str, x: Value) -> Option<Value> {
    let mut v = v.clone();
    v[key] = x;
    Some(v)
}

fn without(v: &Value, key: &str) -> Option<Value> {
    let mut v = v.clone();
    v.as_object_mut()?.remove(key)?;
    Some(v)
}

fn opts_rooms(v: &Value, x: Value) -> Option<Value> {
    let mut v = v.clone();
    v.get_mut("opts")?["rooms"] = x;
    Some(v)
}

fn edits() -> Vec<(&'static str, Edit)> {
    vec![
        ("as sent", |v| Some(v.clone())),
        ("without requestId", |v| without(v, "requestId")),
        ("requestId a number", |v| {
            v.get("requestId").and(with(v, "requestId", json!(5)))
        }),
        ("requestId null", |v| {
            v.get("requestId").and(with(v, "requestId", Value::Null))
        }),
        ("type as a string", |v| {
            with(v, "type", json!(v["type"].to_string()))
        }),
        ("type as a float", |v| {
            with(v, "type", json!(v["type"].as_f64()? + 0.5 - 0.5))
        }),
        ("without type", |v| without(v, "type")),
        ("type unknown", |v| with(v, "type", json!(99))),
        ("uid of the server itself", |v| {
            with(v, "uid", json!(TARGET_UID))
        }),
        ("extra field", |v| with(v, "extra", json!({"x": [1]}))),
        ("without opts", |v| without(v, "opts")),
        ("opts null", |v| {
            v.get("opts").and(with(v, "opts", Value::Null))
        }),
        ("opts.rooms a string", |v| opts_rooms(v, json!("a"))),
        ("opts.rooms a number", |v| opts_rooms(v, json!(5))),
        ("rooms a string", |v| {
            v.get("rooms").and(with(v, "rooms", json!("ab")))
        }),
        ("rooms a number", |v| {
            v.get("rooms").and(with(v, "rooms", json!(5)))
        }),
        ("data not an array", |v| {
            v.get("data").and(with(v, "data", json!("ping-ss")))
        }),
        ("packet without nsp", |v| {
            let mut v = v.clone();
            v.get_mut("packet")?.as_object_mut()?.remove("nsp");
            Some(v)
        }),
    ]
}

fn to_msgpack(v: &Value) -> rmpv::Value {
    match v {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => rmpv::Value::from(u),
            (_, Some(i)) => rmpv::Value::from(i),
            _ => rmpv::Value::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => rmpv::Value::from(s.as_str()),
        Value::Array(a) => rmpv::Value::Array(a.iter().map(to_msgpack).collect()),
        Value::Object(o) => rmpv::Value::Map(
            o.iter()
                .map(|(k, v)| (rmpv::Value::from(k.as_str()), to_msgpack(v)))
                .collect(),
        ),
    }
}

/// `v` as JSON and as msgpack: `[("JSON", bytes), ("msgpack", bytes)]`.
pub(crate) fn json_and_msgpack(v: &Value) -> [(&'static str, Vec<u8>); 2] {
    let mut msgpack = Vec::new();
    socketioxide_cluster::wire::codec::write(&mut msgpack, &to_msgpack(v));
    [("JSON", v.to_string().into_bytes()), ("msgpack", msgpack)]
}

/// Every base request under every edit that applies, in JSON and in msgpack, then a few
/// inputs that are not requests at all.
pub(crate) fn all() -> Vec<RequestCase> {
    let mut out = Vec::new();
    for (base, v) in bases() {
        for (edit, f) in edits() {
            let Some(v) = f(&v) else { continue };
            for (encoding, bytes) in json_and_msgpack(&v) {
                out.push(RequestCase {
                    name: format!("{base}, {edit}, {encoding}"),
                    channel: REQUESTS,
                    bytes,
                });
            }
        }
    }
    for (name, bytes) in [
        (
            "JSON after a space",
            b" {\"type\":1,\"requestId\":\"s\"}".to_vec(),
        ),
        ("JSON truncated", b"{\"type\":1,\"requestId\"".to_vec()),
        ("JSON array", b"[1,\"x\"]".to_vec()),
        ("JSON string", b"\"x\"".to_vec()),
        ("empty", Vec::new()),
        (
            "msgpack truncated",
            vec![0x82, 0xa4, b't', b'y', b'p', b'e'],
        ),
    ] {
        out.push(RequestCase {
            name: name.to_owned(),
            channel: REQUESTS,
            bytes,
        });
    }
    // Replies nobody asked for, on both response channels: ignored by both (and the
    // next cases show both still answer).
    let specific = "-response#/#TARGETUID#";
    for (name, channel, bytes) in [
        (
            "reply to an unknown id",
            "-response#/#",
            br#"{"requestId":"nope","rooms":["x"]}"#.to_vec(),
        ),
        (
            "reply without id",
            "-response#/#",
            br#"{"rooms":["x"]}"#.to_vec(),
        ),
        (
            "client count for an unknown id",
            "-response#/#",
            br#"{"type":8,"requestId":"nope","clientCount":3}"#.to_vec(),
        ),
        (
            "ack for an unknown id (msgpack)",
            "-response#/#",
            vec![
                0x83, 0xa4, b't', b'y', b'p', b'e', 0x09, 0xa9, b'r', b'e', b'q', b'u', b'e', b's',
                b't', b'I', b'd', 0xa4, b'n', b'o', b'p', b'e', 0xa6, b'p', b'a', b'c', b'k', b'e',
                b't', 0x01,
            ],
        ),
        ("garbage reply", "-response#/#", vec![0xc1, 0xff]),
        (
            "reply to an unknown id, specific channel",
            specific,
            br#"{"requestId":"nope","sockets":[]}"#.to_vec(),
        ),
        (
            "garbage reply, specific channel",
            specific,
            b"{oops".to_vec(),
        ),
    ] {
        out.push(RequestCase {
            name: name.to_owned(),
            channel,
            bytes,
        });
    }
    out
}

/// The request channel of `/`, after the key.
const REQUESTS: &str = "-request#/#";

/// Requests on which ours deliberately differs (PROTOCOL.md §4 says why): only the
/// resulting room state is compared.
const DELIBERATE: &[&str] = &[
    "broadcastWithAck, uid of the server itself, JSON",
    "broadcastWithAck, uid of the server itself, msgpack",
];

/// The differences between what the two servers did with one request.
pub(crate) fn judge(case: &RequestCase, reply: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let compared: &[&str] = if DELIBERATE.contains(&case.name.as_str()) {
        &["state"]
    } else {
        &["responses", "sockets", "state"]
    };
    for what in compared.iter().copied() {
        let (n, r) = (&reply["node"][what], &reply["rust"][what]);
        if n != r {
            out.push(format!("{what}: Node {n}, Rust {r}"));
        }
    }
    out
}
