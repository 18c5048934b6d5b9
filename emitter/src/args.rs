//! Event arguments: any `serde::Serialize` → the msgpack values Node would send.

use crate::Error;
use rmpv::Value;
use serde::Serialize;
use serde::ser::{self, Impossible, SerializeTuple};
use std::fmt;

/// A list of arguments whose length is only known at run time: each item is one
/// argument, as if it were a tuple.
///
/// ```
/// # use socketioxide_cluster_emitter::Args;
/// # use serde_json::json;
/// let args = Args(vec![json!("a"), json!(1)]); // same as &("a", 1)
/// # let _ = args;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Args<T>(pub Vec<T>);

impl<T: Serialize> Serialize for Args<T> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for item in &self.0 {
            t.serialize_element(item)?;
        }
        t.end()
    }
}

/// The arguments of `args`, socketioxide's convention:
///
/// * a tuple, array `[T; N]`, tuple struct or newtype struct is spread into several
///   arguments (`&("a", 1)` → `"a", 1`; `&("a",)` → `"a"`);
/// * `()` is no argument at all (Node's `emit("ev")`);
/// * anything else (a string, a number, a `Vec`, a map, a struct…) is one argument.
///
/// Values are written as socketioxide's msgpack parser writes them (`rmp_serde` with
/// structs as maps): byte buffers that serialize as bytes (`bytes::Bytes`,
/// `serde_bytes::ByteBuf`, `#[serde(with = "serde_bytes")]`) become msgpack `bin`,
/// which Node receives as a `Buffer`; a plain `Vec<u8>` is an array of numbers.
pub(crate) fn to_args<T: ?Sized + Serialize>(args: &T) -> Result<Vec<Value>, Error> {
    let shape = args.serialize(ShapeProbe).unwrap_or_else(|e| e.0);
    if shape == Shape::Unit {
        return Ok(Vec::new());
    }
    let v = to_value(args)?;
    Ok(match v {
        Value::Array(items) if shape == Shape::Tuple => items,
        other => vec![other],
    })
}

/// One serializable value → msgpack value (structs as maps, enums as socketioxide writes them).
pub(crate) fn to_value<T: ?Sized + Serialize>(v: &T) -> Result<Value, Error> {
    let mut buf = Vec::with_capacity(64);
    v.serialize(&mut rmp_serde::Serializer::new(&mut buf).with_struct_map())
        .map_err(|e| Error::Encode(e.to_string()))?;
    rmpv::decode::read_value(&mut buf.as_slice()).map_err(|e| Error::Encode(e.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Tuple,
    Unit,
    Other,
}

/// A serializer that only looks at the outermost shape of a value.
struct ShapeProbe;

#[derive(Debug)]
struct ShapeErr(Shape);

impl fmt::Display for ShapeErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl std::error::Error for ShapeErr {}
impl ser::Error for ShapeErr {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        ShapeErr(Shape::Other)
    }
}

macro_rules! other {
    ($($name:ident($($t:ty),*);)*) => {$(
        fn $name(self, $(_: $t),*) -> Result<Shape, ShapeErr> {
            Ok(Shape::Other)
        }
    )*};
}

impl ser::Serializer for ShapeProbe {
    type Ok = Shape;
    type Error = ShapeErr;
    type SerializeSeq = Impossible<Shape, ShapeErr>;
    type SerializeTuple = Impossible<Shape, ShapeErr>;
    type SerializeTupleStruct = Impossible<Shape, ShapeErr>;
    type SerializeTupleVariant = Impossible<Shape, ShapeErr>;
    type SerializeMap = Impossible<Shape, ShapeErr>;
    type SerializeStruct = Impossible<Shape, ShapeErr>;
    type SerializeStructVariant = Impossible<Shape, ShapeErr>;

    other! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_unit(self) -> Result<Shape, ShapeErr> {
        Ok(Shape::Unit)
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Shape, ShapeErr> {
        Ok(Shape::Other)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Shape, ShapeErr> {
        // socketioxide treats a newtype struct as a tuple: its content is spread when it
        // is itself a sequence of arguments.
        Ok(match value.serialize(ShapeProbe).unwrap_or_else(|e| e.0) {
            Shape::Unit => Shape::Unit,
            _ => Shape::Tuple,
        })
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Shape, ShapeErr> {
        Ok(Shape::Other)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, ShapeErr> {
        Err(ShapeErr(Shape::Other))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, ShapeErr> {
        Err(ShapeErr(Shape::Tuple))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, ShapeErr> {
        Err(ShapeErr(Shape::Tuple))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, ShapeErr> {
        Err(ShapeErr(Shape::Other))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, ShapeErr> {
        Err(ShapeErr(Shape::Other))
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, ShapeErr> {
        Err(ShapeErr(Shape::Other))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, ShapeErr> {
        Err(ShapeErr(Shape::Other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use serde_json::json;

    fn args<T: ?Sized + Serialize>(v: &T) -> Vec<Value> {
        to_args(v).unwrap()
    }

    #[test]
    fn tuples_spread_other_values_are_one_argument() {
        assert_eq!(args(&("a", 1)), vec![Value::from("a"), Value::from(1)]);
        assert_eq!(args(&("a",)), vec![Value::from("a")]);
        assert_eq!(args(&[1, 2]), vec![Value::from(1), Value::from(2)]);
        assert_eq!(args("a"), vec![Value::from("a")]);
        assert_eq!(args(&42), vec![Value::from(42)]);
        assert_eq!(
            args(&vec![1, 2]),
            vec![Value::Array(vec![Value::from(1), Value::from(2)])]
        );
        assert_eq!(args(&()), Vec::<Value>::new());
        assert_eq!(args(&None::<i32>), vec![Value::Nil]);
        assert_eq!(args(&(None::<i32>,)), vec![Value::Nil]);
        assert_eq!(
            args(&Args(vec![json!(1), json!("x")])),
            vec![Value::from(1), Value::from("x")]
        );
        assert_eq!(args(&Args(Vec::<i32>::new())), Vec::<Value>::new());
    }

    #[test]
    fn structs_are_maps_and_bytes_are_binary() {
        #[derive(Serialize)]
        struct Job {
            id: u32,
            name: &'static str,
        }
        #[derive(Serialize)]
        struct Pair(u8, u8);
        #[derive(Serialize)]
        struct Wrapper(&'static str);
        assert_eq!(
            args(&Job { id: 7, name: "x" }),
            vec![Value::Map(vec![
                (Value::from("id"), Value::from(7)),
                (Value::from("name"), Value::from("x")),
            ])]
        );
        assert_eq!(args(&Pair(1, 2)), vec![Value::from(1), Value::from(2)]);
        assert_eq!(args(&Wrapper("w")), vec![Value::from("w")]);
        assert_eq!(
            args(&(bytes::Bytes::from_static(&[1, 2, 3]),)),
            vec![Value::Binary(vec![1, 2, 3])]
        );
        assert_eq!(
            args(&bytes::Bytes::from_static(&[1])),
            vec![Value::Binary(vec![1])]
        );
        assert_eq!(
            args(&vec![1u8, 2]),
            vec![Value::Array(vec![Value::from(1), Value::from(2)])]
        );
        assert_eq!(
            args(&json!({"b": 1, "a": [true, null]})),
            vec![Value::Map(vec![
                (Value::from("b"), Value::from(1)),
                (
                    Value::from("a"),
                    Value::Array(vec![Value::Boolean(true), Value::Nil])
                ),
            ])]
        );
    }
}
