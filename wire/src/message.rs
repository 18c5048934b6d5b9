//! The broadcast message: msgpack `[uid, packet, opts]`.
//!
//! ```text
//! packet = { type: 2, data: [event, ...args], nsp }      key order: type, data, nsp
//! opts   = { rooms: [...], except: [...], flags: {...} } key order: rooms, except, flags
//! ```
//!
//! Decoding accepts every producer seen in the wild (adapter 8.x, redis-emitter 5.x whose
//! opts order is `rooms, flags, except`, socket.io-emitter 3.x and socket.io-redis 5.x
//! which send no `except`, packet type 5 from socket.io 2) and keeps the key order it
//! saw, so that re-encoding a decoded message gives back the same bytes.

use crate::codec::{self, DecodeError, room_name};
use rmpv::Value;

/// `packet.type` for an event (socket.io-parser `EVENT`). Node sends 2 even when the
/// arguments carry binary.
pub const EVENT: u8 = 2;
/// `packet.type` for a binary event, sent by socket.io 2 and emitters ≤ 2.0.
pub const BINARY_EVENT: u8 = 5;

/// The socket.io packet inside a broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePacket {
    /// socket.io-parser packet type (2 = event; 5 from legacy producers).
    pub kind: u8,
    /// `[event, ...args]`.
    pub data: Vec<Value>,
    /// Namespace; Node receivers treat a missing one as `/`.
    pub nsp: Option<String>,
    /// Ack id (only in broadcast-with-ack requests).
    pub id: Option<i64>,
}

impl NodePacket {
    /// An event packet (`type: 2`) of namespace `nsp`, as the adapter sends it.
    pub fn event(data: Vec<Value>, nsp: &str) -> Self {
        Self {
            kind: EVENT,
            data,
            nsp: Some(nsp.to_owned()),
            id: None,
        }
    }
}

/// Which key of `opts` came where, to re-encode foreign messages byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptKey {
    Rooms,
    Except,
    Flags,
}

/// Broadcast options as Node puts them on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct WireOptions {
    /// Target rooms, as sent (strings, or numbers from JS apps that joined a number).
    pub rooms: Vec<Value>,
    /// Excluded rooms; `None` when the producer sent no `except` key (legacy emitters).
    pub except: Option<Vec<Value>>,
    /// socket.io `BroadcastFlags`, in the producer's key order.
    pub flags: Vec<(String, Value)>,
    order: Vec<OptKey>,
}

impl Default for WireOptions {
    fn default() -> Self {
        Self {
            rooms: Vec::new(),
            except: Some(Vec::new()),
            flags: Vec::new(),
            order: vec![OptKey::Rooms, OptKey::Except, OptKey::Flags],
        }
    }
}

impl WireOptions {
    /// Options in the adapter's own layout (`rooms, except, flags`).
    pub fn new(rooms: Vec<String>, except: Vec<String>, flags: Vec<(String, Value)>) -> Self {
        Self {
            rooms: rooms.into_iter().map(Value::from).collect(),
            except: Some(except.into_iter().map(Value::from).collect()),
            flags,
            ..Self::default()
        }
    }

    /// Options in `@socket.io/redis-emitter` 5.x's layout (`rooms, flags, except`).
    pub fn emitter(rooms: Vec<String>, except: Vec<String>, flags: Vec<(String, Value)>) -> Self {
        Self {
            order: vec![OptKey::Rooms, OptKey::Flags, OptKey::Except],
            ..Self::new(rooms, except, flags)
        }
    }

    /// The rooms a Rust socket can be in (see [`codec::room_name`]).
    pub fn room_names(&self) -> Vec<String> {
        self.rooms.iter().filter_map(room_name).collect()
    }

    /// The excluded rooms a Rust socket can be in (see [`room_names`](Self::room_names)).
    pub fn except_names(&self) -> Vec<String> {
        self.except.iter().flatten().filter_map(room_name).collect()
    }

    /// A flag's value.
    pub fn flag(&self, name: &str) -> Option<&Value> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Whether `flags.volatile` is set. Node compat: Node passes `flags.volatile` on as
    /// is and tests it for truthiness, so `1` or `"true"` mean volatile too.
    pub fn is_volatile(&self) -> bool {
        self.flag("volatile").is_some_and(codec::js_truthy)
    }
}

/// A whole broadcast message.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastMessage {
    /// The sending server's uid (`"emitter"` for emitters).
    pub uid: String,
    /// The packet.
    pub packet: NodePacket,
    /// Rooms, except and flags.
    pub opts: WireOptions,
}

impl BroadcastMessage {
    /// Decodes a message; any deviation from the layout is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let bad = |m: &str| DecodeError(m.to_owned());
        let Value::Array(mut parts) = codec::decode(bytes)? else {
            return Err(bad("broadcast is not an array"));
        };
        if parts.len() < 3 {
            return Err(bad("broadcast array has fewer than 3 items"));
        }
        parts.truncate(3);
        let opts = parts.pop().unwrap_or(Value::Nil);
        // Node compat: Node's receiver sets `opts.rooms` and throws on a nil `opts`,
        // delivering nothing; skipped (and counted) here too.
        if opts.is_nil() {
            return Err(bad("broadcast opts is nil"));
        }
        let packet = parts.pop().unwrap_or(Value::Nil);
        let uid = match parts.pop() {
            Some(Value::String(s)) => s.into_str().unwrap_or_default(),
            Some(other) => room_name(&other).unwrap_or_default(),
            None => String::new(),
        };
        Ok(Self {
            uid,
            packet: decode_packet(packet)?,
            opts: decode_opts(opts)?,
        })
    }

    /// Encodes the message as the Node adapter does.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(128);
        self.encode_into(&mut buf);
        buf
    }

    /// Encodes into `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        use rmp::encode as enc;
        let _ = enc::write_array_len(buf, 3);
        codec::write(buf, &Value::from(self.uid.as_str()));
        encode_packet(buf, &self.packet);
        encode_opts(buf, &self.opts);
    }
}

/// Writes `{rooms, except, flags}` in the order the options were decoded with (the
/// adapter's `rooms, except, flags` for options built here).
pub(crate) fn encode_opts(buf: &mut Vec<u8>, o: &WireOptions) {
    use rmp::encode as enc;
    let except = o.except.as_ref();
    let len = o
        .order
        .iter()
        .filter(|k| **k != OptKey::Except || except.is_some())
        .count();
    let _ = enc::write_map_len(buf, len as u32);
    for key in &o.order {
        match key {
            OptKey::Rooms => {
                codec::write(buf, &Value::from("rooms"));
                write_array(buf, &o.rooms);
            }
            OptKey::Except => {
                if let Some(except) = except {
                    codec::write(buf, &Value::from("except"));
                    write_array(buf, except);
                }
            }
            OptKey::Flags => {
                codec::write(buf, &Value::from("flags"));
                let _ = enc::write_map_len(buf, o.flags.len() as u32);
                for (k, v) in &o.flags {
                    codec::write(buf, &Value::from(k.as_str()));
                    codec::write(buf, v);
                }
            }
        }
    }
}

fn write_array(buf: &mut Vec<u8>, items: &[Value]) {
    let _ = rmp::encode::write_array_len(buf, items.len() as u32);
    for item in items {
        codec::write(buf, item);
    }
}

/// Writes `{type, data, nsp[, id]}` in Node's key order.
pub fn encode_packet(buf: &mut Vec<u8>, p: &NodePacket) {
    let len = 2 + usize::from(p.nsp.is_some()) + usize::from(p.id.is_some());
    let _ = rmp::encode::write_map_len(buf, len as u32);
    codec::write(buf, &Value::from("type"));
    codec::write(buf, &Value::from(p.kind));
    codec::write(buf, &Value::from("data"));
    write_array(buf, &p.data);
    if let Some(nsp) = &p.nsp {
        codec::write(buf, &Value::from("nsp"));
        codec::write(buf, &Value::from(nsp.as_str()));
    }
    if let Some(id) = p.id {
        codec::write(buf, &Value::from("id"));
        codec::write(buf, &Value::from(id));
    }
}

pub use crate::packet::decode_packet;

/// `opts.rooms` / `opts.except` as Node's receiver reads them, `new Set(value)`: an
/// array gives its items; a string (as some third-party emitters send, often `""`) is
/// iterated by JS, so each of its characters is a room. Node compat: `new Set(5)`,
/// `new Set({})`, `new Set(true)` throw in Node's receiver, which then delivers nothing:
/// refused here (the message is skipped and counted).
pub(crate) fn room_list(field: &str, v: Value) -> Result<Vec<Value>, DecodeError> {
    match v {
        Value::Array(items) => Ok(items),
        Value::String(text) => {
            let text = text
                .as_str()
                .ok_or_else(|| DecodeError(format!("{field} is not valid UTF-8")))?;
            Ok(text.chars().map(|c| Value::from(c.to_string())).collect())
        }
        other => Err(DecodeError(format!("{field} {other} is not iterable"))),
    }
}

/// A repeated key keeps its first position (its last value wins, as in JS).
fn push_once(order: &mut Vec<OptKey>, key: OptKey) {
    if !order.contains(&key) {
        order.push(key);
    }
}

pub(crate) fn decode_opts(v: Value) -> Result<WireOptions, DecodeError> {
    let bad = |m: &str| DecodeError(m.to_owned());
    let entries = match v {
        Value::Map(entries) => entries,
        // Node compat: a receiver tolerates missing opts as "no rooms, no except"; any
        // other JS object (an array, a Buffer) is opts without keys.
        Value::Nil | Value::Array(_) | Value::Binary(_) | Value::Ext(..) => Vec::new(),
        _ => return Err(bad("opts is not a map")),
    };
    let mut opts = WireOptions {
        except: None,
        order: Vec::with_capacity(3),
        ..WireOptions::default()
    };
    for (k, v) in entries {
        match (codec::key_text(&k).as_ref(), v) {
            ("rooms" | "except", Value::Nil) => {}
            ("rooms", v) => {
                opts.rooms = room_list("opts.rooms", v)?;
                push_once(&mut opts.order, OptKey::Rooms);
            }
            ("except", v) => {
                opts.except = Some(room_list("opts.except", v)?);
                push_once(&mut opts.order, OptKey::Except);
            }
            ("flags", Value::Map(flags)) => {
                opts.flags = flags
                    .into_iter()
                    .map(|(k, v)| (codec::key_text(&k).into_owned(), v))
                    .collect();
                push_once(&mut opts.order, OptKey::Flags);
            }
            // Node compat: the receiver reads `opts.flags || {}` and then only
            // `.volatile` / `.compress`, so flags of any other type mean "no flags".
            ("flags", _) => {}
            _ => {}
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod fixture_tests {
    //! Golden vectors: every broadcast captured from the real Node packages
    //! (`../shared/wire-fixtures/`) decodes, matches the manifest, and re-encodes to the
    //! same bytes.
    use super::*;
    use crate::test_fixtures::fixtures_dir;
    use serde_json::Value as Json;
    use std::path::PathBuf;

    /// The manifest's JSON-safe markers → the msgpack value we decode to.
    fn expected(j: &Json) -> Value {
        match j {
            Json::Null => Value::Nil,
            Json::Bool(b) => Value::Boolean(*b),
            Json::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Value::from(u),
                (_, Some(i)) => Value::from(i),
                _ => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => Value::from(s.as_str()),
            Json::Array(a) => Value::Array(a.iter().map(expected).collect()),
            Json::Object(o) => {
                let hex = |s: &Json| {
                    let s = s.as_str().unwrap();
                    (0..s.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                        .collect::<Vec<u8>>()
                };
                if let Some(h) = o.get("$bin").or(o.get("$arraybuffer")) {
                    Value::Binary(hex(h))
                } else if o.contains_key("$undefined") {
                    Value::Nil
                } else if let Some(f) = o.get("$float") {
                    Value::F64(f.as_f64().unwrap())
                } else {
                    Value::Map(
                        o.iter()
                            .map(|(k, v)| (Value::from(k.as_str()), expected(v)))
                            .collect(),
                    )
                }
            }
        }
    }

    fn broadcast_entries() -> Vec<(PathBuf, Json)> {
        let mut out = Vec::new();
        for set in std::fs::read_dir(fixtures_dir()).unwrap() {
            let set = set.unwrap().path();
            let Ok(text) = std::fs::read_to_string(set.join("manifest.json")) else {
                continue;
            };
            let manifest: Json = serde_json::from_str(&text).unwrap();
            let name = set.file_name().unwrap().to_string_lossy().to_string();
            // Classic-format sets only (the sharded and streams adapters use another format).
            if name.starts_with("sharded") || name.starts_with("redis-streams") {
                continue;
            }
            for e in manifest["entries"].as_array().unwrap() {
                let (Some(file), Some(channel)) = (e["file"].as_str(), e["channel"].as_str())
                else {
                    continue;
                };
                if e["encoding"] == "msgpack"
                    && !channel.contains("-request#")
                    && !channel.contains("-response#")
                {
                    out.push((set.join("..").join(file), e.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_broadcast_fixture_decodes_and_reencodes_to_the_same_bytes() {
        let entries = broadcast_entries();
        assert!(
            entries.len() >= 40,
            "only {} broadcast fixtures found",
            entries.len()
        );
        for (path, entry) in entries {
            let bytes = std::fs::read(&path).unwrap();
            let msg = BroadcastMessage::decode(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let decoded = &entry["decoded"];
            assert_eq!(msg.uid, decoded[0].as_str().unwrap(), "{}", path.display());
            let packet = &decoded[1];
            assert_eq!(u64::from(msg.packet.kind), packet["type"].as_u64().unwrap());
            assert_eq!(msg.packet.nsp.as_deref(), packet["nsp"].as_str());
            assert_eq!(
                Value::Array(msg.packet.data.clone()),
                expected(&packet["data"]),
                "{}",
                path.display()
            );
            let opts = &decoded[2];
            assert_eq!(
                Value::Array(msg.opts.rooms.clone()),
                expected(&opts["rooms"])
            );
            match opts.get("except") {
                Some(e) => assert_eq!(msg.opts.except.clone().map(Value::Array), Some(expected(e))),
                None => assert!(msg.opts.except.is_none()),
            }
            let flags = Value::Map(
                msg.opts
                    .flags
                    .iter()
                    .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
                    .collect(),
            );
            assert_eq!(flags, expected(&opts["flags"]), "{}", path.display());
            // notepack 2 ext/undefined encodings are read, not written: re-encode only
            // what notepack 3 (adapter 8.x, emitter 5.x) and plain values produced.
            let legacy_ext = bytes.windows(3).any(|w| w == [0xd4, 0, 0])
                || bytes.windows(3).any(|w| w[0] == 0xc7 && w[2] == 0);
            if !legacy_ext {
                assert_eq!(msg.encode(), bytes, "re-encoding {}", path.display());
            }
        }
    }

    #[test]
    fn adapter_layout_matches_node_bytes() {
        let bytes =
            std::fs::read(fixtures_dir().join("redis-adapter-8.3.0/broadcast-all.bin")).unwrap();
        let msg = BroadcastMessage {
            uid: "zvx_1S".into(),
            packet: NodePacket {
                kind: EVENT,
                data: vec![Value::from("hello"), Value::from("world")],
                nsp: Some("/".into()),
                id: None,
            },
            opts: WireOptions::new(vec![], vec![], vec![]),
        };
        assert_eq!(msg.encode(), bytes);
    }

    #[test]
    fn numeric_room_fixture_matches_by_decimal_text() {
        let bytes =
            std::fs::read(fixtures_dir().join("redis-adapter-8.3.0/broadcast-numeric-room.bin"))
                .unwrap();
        let msg = BroadcastMessage::decode(&bytes).unwrap();
        assert_eq!(msg.opts.room_names(), vec!["42".to_owned()]);
    }
}

#[cfg(test)]
mod node_tolerance_tests {
    //! What Node's receiver accepts in `opts` (see PROTOCOL.md, and
    //! `tests/differential.rs`, which checks each shape against a real Node server).
    use super::*;

    fn with_opts(opts: Value) -> Vec<u8> {
        let packet = Value::Map(vec![
            (Value::from("type"), Value::from(2)),
            (Value::from("data"), Value::Array(vec![Value::from("e")])),
        ]);
        let mut buf = Vec::new();
        codec::write(
            &mut buf,
            &Value::Array(vec![Value::from("u"), packet, opts]),
        );
        buf
    }

    fn opts(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        )
    }

    #[test]
    fn strings_are_iterated_as_js_does_and_odd_flags_mean_none() {
        let m = BroadcastMessage::decode(&with_opts(opts(vec![
            ("flags", Value::from("")),
            ("rooms", Value::from("")),
        ])))
        .unwrap();
        assert!(m.opts.room_names().is_empty() && m.opts.flags.is_empty());
        let m = BroadcastMessage::decode(&with_opts(opts(vec![
            ("rooms", Value::from("ab")),
            ("except", Value::from("é")),
            ("flags", Value::from(true)),
        ])))
        .unwrap();
        assert_eq!(m.opts.room_names(), ["a", "b"]);
        assert_eq!(m.opts.except_names(), ["é"]);
        assert!(m.opts.flags.is_empty());
    }

    #[test]
    fn volatile_is_read_for_truthiness_as_node_does() {
        let volatile = |v: Value| {
            let o = opts(vec![("flags", opts(vec![("volatile", v)]))]);
            BroadcastMessage::decode(&with_opts(o))
                .unwrap()
                .opts
                .is_volatile()
        };
        for yes in [
            Value::from(true),
            Value::from(1),
            Value::from("true"),
            Value::from(-1.5),
        ] {
            assert!(volatile(yes.clone()), "{yes}");
        }
        for no in [
            Value::from(false),
            Value::from(0),
            Value::from(""),
            Value::Nil,
            Value::from(0.0),
        ] {
            assert!(!volatile(no.clone()), "{no}");
        }
    }

    #[test]
    fn what_node_throws_on_is_refused() {
        for bad in [
            opts(vec![("rooms", Value::from(5))]),
            opts(vec![("rooms", Value::Map(vec![]))]),
            opts(vec![("except", Value::from(false))]),
            Value::Nil,
        ] {
            assert!(
                BroadcastMessage::decode(&with_opts(bad.clone())).is_err(),
                "{bad}"
            );
        }
    }
}
