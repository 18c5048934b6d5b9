//! Translation between socketioxide packets and Node's `data` arrays.
//!
//! socketioxide stores event data already encoded for the namespace's parser: JSON text
//! plus binary attachments (common parser) or msgpack bytes (msgpack parser). Node puts
//! the plain `[event, ...args]` array on Redis, with binaries as msgpack `bin`. Both
//! directions go through the namespace's own parser, so the translation works the same
//! for either parser, and binaries, numbers, nested objects and unicode survive.

use crate::error::Error;
use rmpv::Value;
use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeTuple, Serializer};
use socketioxide_core::{
    Str, Value as SioValue,
    packet::{Packet, PacketData},
    parser::{Parse, ParserError},
};

/// `[event, ...args]` read back from a socketioxide value. Deserializes through
/// `deserialize_tuple`, which tells the socketioxide parsers to hand over the whole array
/// (a plain `Vec` would only get its first element).
struct Args(Vec<Value>);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an event array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(2).min(64));
                while let Some(v) = seq.next_element::<Value>()? {
                    out.push(v);
                }
                Ok(Args(out))
            }
        }
        d.deserialize_tuple(usize::MAX, V)
    }
}

/// Serializes values as a tuple, which the socketioxide parsers spread into the array.
struct TupleArgs<'a>(&'a [Value]);

impl Serialize for TupleArgs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for v in self.0 {
            t.serialize_element(&JsValue(v))?;
        }
        t.end()
    }
}

/// An rmpv value serialized as Node would send it to its clients: a `float32` is the
/// double notepack decodes it to (`0.1f32` is `0.10000000149011612`), and map keys are
/// JS property names (`1` is `"1"`, a `bin` key its UTF-8 text, nil `"null"`).
struct JsValue<'a>(&'a Value);

impl Serialize for JsValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&JsValue(item))?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(&crate::wire::codec::key_text(k), &JsValue(v))?;
                }
                map.end()
            }
            Value::Binary(b) => s.serialize_bytes(b),
            Value::F32(f) => s.serialize_f64(f64::from(*f)),
            other => other.serialize(s),
        }
    }
}

/// Reads `[event, ...args]` out of a socketioxide event packet.
///
/// Returns `None` for packets that are not events (nothing else is ever broadcast).
pub(crate) fn node_data(
    parser: impl Parse,
    packet: &Packet,
) -> Option<Result<Vec<Value>, ParserError>> {
    let value = match &packet.inner {
        PacketData::Event(v, _) | PacketData::BinaryEvent(v, _) => v,
        _ => return None,
    };
    // decode_value consumes the attachments of a common-parser value: work on a copy
    // (cheap: the payload is reference counted).
    let mut value = value.clone();
    Some(parser.decode_value::<Args>(&mut value, false).map(|a| a.0))
}

/// Builds the value the namespace's parser expects from Node's `[event, ...args]`.
pub(crate) fn sio_value(parser: impl Parse, data: &[Value]) -> Result<SioValue, ParserError> {
    parser.encode_value(&TupleArgs(data), None)
}

/// Builds a socketioxide event packet for namespace `nsp` from Node's data array.
pub(crate) fn sio_event(
    parser: impl Parse,
    nsp: Str,
    data: &[Value],
) -> Result<Packet, ParserError> {
    Ok(Packet::event(nsp, sio_value(parser, data)?))
}

/// Which of socketioxide's two parsers a namespace uses, as a `'static` value (the
/// adapter only gets the parser borrowed; ack streams outlive that borrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParserKind {
    Common,
    MsgPack,
}

impl ParserKind {
    /// Tells the parsers apart by what they produce: text for the common parser, bytes
    /// for msgpack.
    pub(crate) fn detect(parser: impl Parse) -> Self {
        match parser.encode_value(&(), None) {
            Ok(SioValue::Bytes(_)) => ParserKind::MsgPack,
            _ => ParserKind::Common,
        }
    }

    /// The first argument of a client's acknowledgement.
    pub(crate) fn first_arg(self, v: &mut SioValue) -> Option<Value> {
        let args = match self {
            ParserKind::Common => {
                socketioxide_parser_common::CommonParser.decode_value::<Args>(v, false)
            }
            ParserKind::MsgPack => {
                socketioxide_parser_msgpack::MsgPackParser.decode_value::<Args>(v, false)
            }
        };
        args.ok()?.0.into_iter().next()
    }

    /// An acknowledgement argument as the value socketioxide's ack stream decodes.
    pub(crate) fn ack_value(self, arg: Value) -> Result<SioValue, ParserError> {
        let args = [arg];
        match self {
            ParserKind::Common => sio_value(socketioxide_parser_common::CommonParser, &args),
            ParserKind::MsgPack => sio_value(socketioxide_parser_msgpack::MsgPackParser, &args),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socketioxide_parser_common::CommonParser;
    use socketioxide_parser_msgpack::MsgPackParser;

    fn sample() -> Vec<Value> {
        vec![
            Value::from("ev"),
            Value::from("héllo ✓"),
            Value::from(42),
            Value::from(-7),
            Value::F64(1.5),
            Value::Binary(vec![0, 1, 255]),
            Value::Map(vec![(
                Value::from("nested"),
                Value::Array(vec![
                    Value::Nil,
                    Value::Boolean(true),
                    Value::Binary(vec![9]),
                ]),
            )]),
        ]
    }

    fn roundtrip(parser: impl Parse) {
        let data = sample();
        let packet = sio_event(parser, Str::from("/"), &data).unwrap();
        let back = node_data(parser, &packet).unwrap().unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn common_parser_roundtrip_keeps_binary_numbers_unicode() {
        roundtrip(CommonParser);
    }

    #[test]
    fn msgpack_parser_roundtrip_keeps_binary_numbers_unicode() {
        roundtrip(MsgPackParser);
    }

    #[test]
    fn common_parser_marks_binary_events() {
        let packet = sio_event(CommonParser, Str::from("/"), &sample()).unwrap();
        assert!(matches!(packet.inner, PacketData::BinaryEvent(..)));
    }
}

/// A serializable value as a msgpack tree, structs as maps (as JS objects), so Node
/// servers receive objects rather than arrays.
pub(crate) fn to_value(v: &impl Serialize) -> Result<Value, Error> {
    let bytes = rmp_serde::to_vec_named(v).map_err(|e| Error::Encode(Box::new(e)))?;
    crate::wire::codec::decode(&bytes).map_err(|e| Error::Encode(Box::new(e)))
}

/// Spreads a tuple into arguments, as socketioxide's `emit` does; any other value is one
/// argument.
pub(crate) fn args_of(args: &impl Serialize) -> Result<Vec<Value>, Error> {
    let v = to_value(args)?;
    Ok(match v {
        Value::Array(items) if socketioxide_core::parser::is_ser_tuple(args) => items,
        Value::Nil if socketioxide_core::parser::is_ser_tuple(args) => Vec::new(),
        other => vec![other],
    })
}

#[cfg(test)]
mod value_tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Job {
        id: u32,
        name: &'static str,
    }

    #[test]
    fn tuples_spread_and_structs_stay_objects() {
        assert_eq!(
            args_of(&("a", 1)).unwrap(),
            vec![Value::from("a"), Value::from(1)]
        );
        // As socketioxide's emit: `()` is one null argument.
        assert_eq!(args_of(&()).unwrap(), vec![Value::Nil]);
        assert_eq!(
            args_of(&vec![1, 2]).unwrap(),
            vec![Value::Array(vec![Value::from(1), Value::from(2)])]
        );
        let job = args_of(&Job { id: 7, name: "x" }).unwrap();
        assert_eq!(
            job,
            vec![Value::Map(vec![
                (Value::from("id"), Value::from(7)),
                (Value::from("name"), Value::from("x")),
            ])]
        );
    }
}
