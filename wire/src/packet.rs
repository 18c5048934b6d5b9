//! How a receiver reads the `packet` of a broadcast: what Node's server forwards and its
//! clients accept as an event, emulated so that a Rust server delivers exactly the
//! events a Node server's sockets receive, and skips (counted) what Node would turn into
//! a packet its clients reject.
//!
//! Node compat: Node does not validate the packet. It sets `packet.nsp` and hands the
//! packet to socket.io-parser's encoder, which writes
//! `String(type) [+ nsp + ","] [+ String(id)] + JSON.stringify(data)`. The client then
//! reads the first character as the packet type, an optional `/nsp,`, a run of digits as
//! the ack id, and the rest as a JSON array whose first item must be a string (not a
//! reserved name) or a number. So `type: "2"`, `2.0` or `[2]` deliver an event, `type: 25`
//! delivers an event with ack id 5, and `data: []` or a reserved event name make every
//! client drop its connection ("parse error"); ours skips those.

use crate::codec::{DecodeError, js_string, key_is, map_get};
use crate::message::{BINARY_EVENT, EVENT, NodePacket};
use rmpv::Value;

/// Event names socket.io clients refuse to receive (socket.io-parser `RESERVED_EVENTS`).
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

fn bad(m: impl Into<String>) -> DecodeError {
    DecodeError(m.into())
}

/// A JS number's value, for `===` comparisons with packet types.
fn js_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => i.as_f64(),
        Value::F64(f) => Some(*f),
        Value::F32(f) => Some(f64::from(*f)),
        _ => None,
    }
}

/// The packet type and ack id a socket.io client reads from the header Node writes for
/// `type`, `nsp` and `id` (see the module docs). Only an event is accepted.
fn header(kind: &Value, nsp: &str, id: Option<&Value>) -> Result<Option<i64>, DecodeError> {
    // The common case, as every Node server and emitter writes it: no text to build.
    let id = id.filter(|v| !v.is_nil());
    if js_number(kind) == Some(f64::from(EVENT)) {
        match id {
            None => return Ok(None),
            Some(Value::Integer(i)) if i.as_i64().is_some_and(|i| i >= 0) => {
                return Ok(i.as_i64());
            }
            _ => {}
        }
    }
    let mut text = js_string(kind);
    if nsp != "/" {
        text.push_str(nsp);
        text.push(',');
    }
    if let Some(id) = id {
        text.push_str(&js_string(id));
    }
    let rest = text
        .strip_prefix('2')
        .ok_or_else(|| bad(format!("packet type text {text:?} is not an event")))?;
    // The client reads `/nsp,` only when the next character is `/`; anything but the
    // packet's own namespace sends it to another socket (or none).
    let rest = match rest.strip_prefix('/') {
        Some(after) => {
            let (read, rest) = after.split_once(',').unwrap_or((after, ""));
            if read != &nsp[1.min(nsp.len())..] {
                return Err(bad(format!(
                    "packet header {text:?} names another namespace"
                )));
            }
            rest
        }
        None if nsp != "/" => {
            return Err(bad(format!("packet header {text:?} loses the namespace")));
        }
        None => rest,
    };
    if rest.is_empty() {
        return Ok(None);
    }
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "packet header {text:?} is not followed by JSON"
        )));
    }
    rest.parse()
        .map(Some)
        .map_err(|_| bad(format!("ack id {rest:?} out of range")))
}

/// `JSON.stringify` of a Buffer, which is what Node sends for binary data when the
/// packet type is not the number 2 (its encoder then skips the binary attachments).
fn buffers_as_json(v: &mut Value) {
    match v {
        Value::Binary(b) => {
            let bytes = std::mem::take(b);
            *v = Value::Map(vec![
                (Value::from("type"), Value::from("Buffer")),
                (
                    Value::from("data"),
                    Value::Array(bytes.into_iter().map(Value::from).collect()),
                ),
            ]);
        }
        // An ArrayBuffer (ext) stringifies as `{}`.
        Value::Ext(..) => *v = Value::Map(Vec::new()),
        Value::Array(items) => items.iter_mut().for_each(buffers_as_json),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| buffers_as_json(v)),
        _ => {}
    }
}

/// Whether a socket.io client accepts `data[0]` as an event name
/// (socket.io-parser `isPayloadValid`): a string that is not reserved, or a number
/// (a non-finite one becomes `null` in JSON).
fn check_event_name(data: &[Value]) -> Result<(), DecodeError> {
    match data.first() {
        None => Err(bad("packet.data is empty (no event name)")),
        Some(Value::String(s)) => match s.as_str() {
            Some(name) if RESERVED_EVENTS.contains(&name) => {
                Err(bad(format!("reserved event name {name:?}")))
            }
            _ => Ok(()),
        },
        Some(v @ (Value::Integer(_) | Value::F64(_) | Value::F32(_)))
            if js_number(v).is_some_and(f64::is_finite) =>
        {
            Ok(())
        }
        Some(other) => Err(bad(format!("event name {other} is not a string"))),
    }
}

/// Reads a Node packet map as a socket.io client would receive it (see the module docs).
pub fn decode_packet(v: Value) -> Result<NodePacket, DecodeError> {
    let Value::Map(entries) = v else {
        return Err(bad("packet is not a map"));
    };
    // Node compat: only a missing nsp means "/" (`packet.nsp === undefined`); nil, a
    // bin or a number never equals a namespace name.
    let nsp = match map_get(&entries, "nsp") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str().ok_or_else(|| bad("bad nsp"))?.to_owned()),
        Some(other) => return Err(bad(format!("packet.nsp {other} is not a string"))),
    };
    let kind = map_get(&entries, "type").ok_or_else(|| bad("packet.type missing"))?;
    let number = js_number(kind);
    let (kind, id, strict) = if number == Some(f64::from(BINARY_EVENT)) {
        // socket.io 2-era producers send binary events as type 5; Node 4 re-encodes them
        // as `5undefined-[..]`, which its clients reject. Deliberately delivered here.
        let id = map_get(&entries, "id").and_then(Value::as_i64);
        (BINARY_EVENT, id, true)
    } else {
        let id = header(kind, nsp.as_deref().unwrap_or("/"), map_get(&entries, "id"))?;
        (EVENT, id, number == Some(f64::from(EVENT)))
    };
    let data = entries
        .into_iter()
        .rev()
        .find(|(k, _)| key_is(k, "data"))
        .map(|(_, v)| v);
    let Some(Value::Array(mut data)) = data else {
        return Err(bad("packet.data is not an array"));
    };
    if !strict {
        data.iter_mut().for_each(buffers_as_json);
    }
    check_event_name(&data)?;
    Ok(NodePacket {
        kind,
        data,
        nsp,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        )
    }

    fn event() -> Value {
        Value::Array(vec![Value::from("ev"), Value::Binary(vec![1])])
    }

    fn read(kind: Value, nsp: Option<&str>, id: Option<Value>) -> Result<NodePacket, DecodeError> {
        let mut e = vec![("type", kind), ("data", event())];
        e.extend(nsp.map(|n| ("nsp", Value::from(n))));
        e.extend(id.map(|i| ("id", i)));
        decode_packet(packet(e))
    }

    #[test]
    fn types_a_client_reads_as_an_event() {
        for kind in [
            Value::from(2),
            Value::F64(2.0),
            Value::F32(2.0),
            Value::from("2"),
            Value::Binary(b"2".to_vec()),
            Value::Array(vec![Value::from(2)]),
        ] {
            let p = read(kind.clone(), Some("/"), None).unwrap();
            assert_eq!((p.kind, p.id), (EVENT, None), "{kind:?}");
        }
        // The digits after the type are the ack id.
        assert_eq!(read(Value::from(25), None, None).unwrap().id, Some(5));
        assert_eq!(
            read(Value::from(2), None, Some(Value::from(7))).unwrap().id,
            Some(7)
        );
        assert_eq!(
            read(Value::from(2), None, Some(Value::from("7")))
                .unwrap()
                .id,
            Some(7)
        );
        assert_eq!(
            read(Value::from(2), None, Some(Value::from("")))
                .unwrap()
                .id,
            None
        );
        assert_eq!(
            read(Value::from(2), Some("/admin"), Some(Value::from(3)))
                .unwrap()
                .id,
            Some(3)
        );
    }

    #[test]
    fn types_a_client_rejects_or_reads_as_something_else() {
        for kind in [0, 1, 3, 4, 6, 7, -1, 258] {
            if kind == 258 {
                // "258" is an event with ack id 58 on `/`, but loses `/admin`.
                assert!(read(Value::from(kind), Some("/admin"), None).is_err());
                continue;
            }
            assert!(read(Value::from(kind), None, None).is_err(), "{kind}");
        }
        for kind in [
            Value::F64(2.5),
            Value::Nil,
            Value::from("x"),
            Value::Map(vec![]),
        ] {
            assert!(read(kind.clone(), None, None).is_err(), "{kind:?}");
        }
        for id in [
            Value::F64(7.5),
            Value::from(-1),
            Value::Boolean(true),
            Value::Map(vec![]),
        ] {
            assert!(
                read(Value::from(2), None, Some(id.clone())).is_err(),
                "{id:?}"
            );
        }
    }

    #[test]
    fn legacy_binary_events_are_events() {
        let p = read(Value::from(5), None, Some(Value::from(3))).unwrap();
        assert_eq!((p.kind, p.id), (BINARY_EVENT, Some(3)));
    }

    #[test]
    fn binaries_are_stringified_unless_the_type_is_the_number_2() {
        assert_eq!(
            read(Value::from(2), None, None).unwrap().data,
            match event() {
                Value::Array(d) => d,
                _ => unreachable!(),
            }
        );
        let p = read(Value::from("2"), None, None).unwrap();
        assert_eq!(
            p.data[1],
            Value::Map(vec![
                (Value::from("type"), Value::from("Buffer")),
                (Value::from("data"), Value::Array(vec![Value::from(1)])),
            ])
        );
    }

    #[test]
    fn event_names_a_client_accepts() {
        let with = |data: Vec<Value>| {
            decode_packet(packet(vec![
                ("type", Value::from(2)),
                ("data", Value::Array(data)),
            ]))
        };
        assert!(with(vec![Value::from("ev")]).is_ok());
        assert!(with(vec![Value::from(5)]).is_ok());
        assert!(with(vec![Value::F64(5.5)]).is_ok());
        for name in RESERVED_EVENTS {
            assert!(with(vec![Value::from(name)]).is_err(), "{name}");
        }
        for v in [
            Value::Nil,
            Value::Boolean(true),
            Value::Binary(b"ev".to_vec()),
            Value::Array(vec![]),
            Value::F64(f64::NAN),
        ] {
            assert!(with(vec![v.clone()]).is_err(), "{v:?}");
        }
        assert!(with(vec![]).is_err());
    }

    #[test]
    fn keys_and_nsp_as_node_reads_them() {
        let bin_keys = Value::Map(vec![
            (Value::Binary(b"type".to_vec()), Value::from(2)),
            (Value::Binary(b"data".to_vec()), event()),
            (Value::Binary(b"nsp".to_vec()), Value::from("/")),
        ]);
        assert!(decode_packet(bin_keys).is_ok());
        // A nil nsp is not "/" (only a missing one is).
        let nil_nsp = packet(vec![
            ("type", Value::from(2)),
            ("data", event()),
            ("nsp", Value::Nil),
        ]);
        assert!(decode_packet(nil_nsp).is_err());
    }
}
