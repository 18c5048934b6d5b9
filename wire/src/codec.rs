//! msgpack as Node's `notepack.io` writes and reads it.
//!
//! Values travel as [`rmpv::Value`] trees. The writer copies notepack.io 3.0.1 byte for
//! byte (integral numbers as the smallest int, non-negative ones from the uint family,
//! every other number as float64). The reader accepts what notepack 2 and 3 write
//! (ext type 0 buffers, `d4 00 00` for `undefined`, both Date encodings) and is
//! hardened for untrusted input: bounded depth, no allocation larger than the bytes
//! that could back it, and an error (never a panic) on anything malformed.

use rmpv::Value;
use std::borrow::Cow;
use std::io::Write;

/// Deepest nesting the reader accepts. Real socket.io payloads stay far below it;
/// the bound keeps a hostile message from exhausting the stack.
pub const MAX_DEPTH: usize = 64;

/// Most items reserved up front for one array or map.
const PREALLOC_MAX: usize = 1024;

/// Why a msgpack payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

/// Reads exactly one msgpack value that must span the whole input.
pub fn decode(buf: &[u8]) -> Result<Value, DecodeError> {
    let mut rd = Reader { buf, pos: 0 };
    let v = rd.value(0)?;
    if rd.pos != buf.len() {
        return err(format!("{} trailing bytes", buf.len() - rd.pos));
    }
    Ok(v)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => err(format!(
                "truncated: wanted {n} bytes at offset {}",
                self.pos
            )),
        }
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn len(&mut self, bytes: usize) -> Result<usize, DecodeError> {
        Ok(match bytes {
            1 => self.u8()? as usize,
            2 => u16::from_be_bytes(self.be()?) as usize,
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return err(format!("nested deeper than {MAX_DEPTH}"));
        }
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Value::from(m),
            0x80..=0x8f => self.map((m & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.array((m & 0x0f) as usize, depth)?,
            0xa0..=0xbf => self.str((m & 0x1f) as usize)?,
            0xc0 => Value::Nil,
            0xc1 => return err("reserved marker 0xc1"),
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (m - 0xc4))?;
                Value::Binary(self.take(n)?.to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (m - 0xc7))?;
                self.ext(n, false)?
            }
            0xca => Value::F32(f32::from_be_bytes(self.be()?)),
            0xcb => Value::F64(f64::from_be_bytes(self.be()?)),
            0xcc => Value::from(self.u8()?),
            0xcd => Value::from(u16::from_be_bytes(self.be()?)),
            0xce => Value::from(u32::from_be_bytes(self.be()?)),
            0xcf => Value::from(u64::from_be_bytes(self.be()?)),
            0xd0 => Value::from(i8::from_be_bytes(self.be()?)),
            0xd1 => Value::from(i16::from_be_bytes(self.be()?)),
            0xd2 => Value::from(i32::from_be_bytes(self.be()?)),
            0xd3 => Value::from(i64::from_be_bytes(self.be()?)),
            0xd4..=0xd8 => self.ext(1 << (m - 0xd4), true)?,
            0xd9..=0xdb => {
                let n = self.len(1 << (m - 0xd9))?;
                self.str(n)?
            }
            0xdc | 0xdd => {
                let n = self.len(if m == 0xdc { 2 } else { 4 })?;
                self.array(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.len(if m == 0xde { 2 } else { 4 })?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::from(m as i8),
        })
    }

    fn str(&mut self, n: usize) -> Result<Value, DecodeError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::from(s)),
            Err(e) => err(format!("invalid UTF-8 in string: {e}")),
        }
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        // Every element takes at least one byte: a length header larger than the rest of
        // the message is a lie, and must not drive the allocation.
        if n > self.remaining() {
            return err(format!("array of {n} items in {} bytes", self.remaining()));
        }
        // Each nesting level could claim "all the bytes left": cap what is reserved up
        // front so nested headers cannot multiply the input size; the Vec grows as items
        // actually decode.
        let mut items = Vec::with_capacity(n.min(PREALLOC_MAX));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        if n.saturating_mul(2) > self.remaining() {
            return err(format!("map of {n} entries in {} bytes", self.remaining()));
        }
        let mut entries = Vec::with_capacity(n.min(PREALLOC_MAX));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }

    /// An extension of `n` data bytes; `fixed` for the fixext forms (`d4`..`d8`), whose
    /// type 0 means something else than in the ext 8/16/32 forms (`c7`..`c9`), as in
    /// notepack 2 and 3 alike.
    fn ext(&mut self, n: usize, fixed: bool) -> Result<Value, DecodeError> {
        let ty = self.u8()? as i8;
        let data = self.take(n)?;
        Ok(match (fixed, ty, n) {
            // Node compat: notepack 2 writes `undefined` as fixext1 type 0 (`d4 00 00`); it
            // reads as undefined, which every JSON encoder then turns into null.
            (true, 0, 1) => Value::Nil,
            // Node compat: notepack 2 Date: fixext8 type 0 holding the epoch ms as a
            // big-endian int32 (high part) and uint32 (low part).
            (true, 0, 8) => {
                let hi = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let lo = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                date_value(f64::from(hi) * 4_294_967_296.0 + f64::from(lo))
            }
            // Node compat: notepack 2 sends ArrayBuffer / typed arrays as ext 8/16/32
            // type 0, whatever their length (1 and 8 bytes included).
            (false, 0, _) => Value::Binary(data.to_vec()),
            (_, -1, 4 | 8 | 12) => timestamp(data),
            // notepack 3 decodes any other ext as `[type, Buffer]`.
            _ => Value::Array(vec![Value::from(ty), Value::Binary(data.to_vec())]),
        })
    }
}

/// msgpack timestamp extension (type -1) → the ISO string a JS `Date` becomes in JSON.
fn timestamp(data: &[u8]) -> Value {
    let (secs, nanos): (i64, u32) = match data.len() {
        4 => (
            u32::from_be_bytes(data.try_into().unwrap_or([0; 4])) as i64,
            0,
        ),
        8 => {
            let v = u64::from_be_bytes(data.try_into().unwrap_or([0; 8]));
            ((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32)
        }
        _ => {
            let nanos = u32::from_be_bytes(data[..4].try_into().unwrap_or([0; 4]));
            let secs = i64::from_be_bytes(data[4..].try_into().unwrap_or([0; 8]));
            (secs, nanos)
        }
    };
    date_value(secs as f64 * 1000.0 + (nanos / 1_000_000) as f64)
}

/// Epoch milliseconds → `Date.prototype.toJSON()` text (`1970-01-01T00:00:00.000Z`).
fn date_value(ms: f64) -> Value {
    if !ms.is_finite() || ms.abs() > 8.64e15 {
        return Value::Nil; // JS: an invalid Date serializes as null
    }
    let ms = ms.floor() as i64;
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Value::from(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    ))
}

/// Writes `v` exactly as notepack.io 3.0.1 would write the equivalent JS value.
pub fn write(buf: &mut Vec<u8>, v: &Value) {
    // Writing into a Vec cannot fail; the `let _` keeps the signature infallible.
    let _ = write_inner(buf, v);
}

fn write_inner(buf: &mut Vec<u8>, v: &Value) -> Option<()> {
    use rmp::encode as enc;
    match v {
        Value::Nil => enc::write_nil(buf).ok()?,
        Value::Boolean(b) => enc::write_bool(buf, *b).ok()?,
        Value::Integer(i) => {
            if let Some(u) = i.as_u64() {
                enc::write_uint(buf, u).ok()?;
            } else if let Some(s) = i.as_i64() {
                enc::write_sint(buf, s).ok()?;
            }
        }
        // Node compat: JS has one number type; notepack writes integral values as ints.
        Value::F32(f) => write_number(buf, f64::from(*f))?,
        Value::F64(f) => write_number(buf, *f)?,
        Value::String(s) => {
            let bytes = s.as_bytes();
            enc::write_str_len(buf, bytes.len() as u32).ok()?;
            buf.write_all(bytes).ok()?;
        }
        Value::Binary(b) => enc::write_bin(buf, b).ok()?,
        Value::Array(items) => {
            enc::write_array_len(buf, items.len() as u32).ok()?;
            for item in items {
                write_inner(buf, item)?;
            }
        }
        Value::Map(entries) => {
            enc::write_map_len(buf, entries.len() as u32).ok()?;
            for (k, v) in entries {
                write_inner(buf, k)?;
                write_inner(buf, v)?;
            }
        }
        Value::Ext(ty, data) => {
            enc::write_ext_meta(buf, data.len() as u32, *ty).ok()?;
            buf.write_all(data).ok()?;
        }
    }
    Some(())
}

fn write_number(buf: &mut Vec<u8>, f: f64) -> Option<()> {
    use rmp::encode as enc;
    if f.is_finite() && f.floor() == f {
        if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
            enc::write_uint(buf, f as u64).ok()?;
            return Some(());
        }
        if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
            enc::write_sint(buf, f as i64).ok()?;
            return Some(());
        }
    }
    enc::write_f64(buf, f).ok()?;
    Some(())
}

/// Encodes one value into a fresh buffer.
pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    write(&mut buf, v);
    buf
}

/// Looks a key up in a decoded msgpack map. Node compat: notepack turns a map into a JS
/// object, whose property names are `String(key)`: a `bin` key is its UTF-8 text, `1` is
/// `"1"`, and of repeated keys the last one wins.
pub fn map_get<'v>(map: &'v [(Value, Value)], key: &str) -> Option<&'v Value> {
    map.iter()
        .rev()
        .find(|(k, _)| key_is(k, key))
        .map(|(_, v)| v)
}

/// The JS property name of map key `k` (borrowed for the usual string key).
pub fn key_text(k: &Value) -> Cow<'_, str> {
    match k {
        Value::String(s) => String::from_utf8_lossy(s.as_bytes()),
        Value::Binary(b) => String::from_utf8_lossy(b),
        other => Cow::Owned(js_string(other)),
    }
}

/// Whether the JS property name of map key `k` is `key`.
pub fn key_is(k: &Value, key: &str) -> bool {
    match k {
        Value::String(s) => s.as_bytes() == key.as_bytes(),
        Value::Binary(b) => b.as_slice() == key.as_bytes(),
        // Without writing the text when it cannot match: a number's text starts with a
        // digit, `-`, `N` (NaN) or `I` (Infinity); nil and booleans have one text each.
        // (A map of many number keys used to cost one allocation per key and lookup.)
        Value::Nil => key == "null",
        Value::Boolean(b) => key == if *b { "true" } else { "false" },
        Value::Integer(_) | Value::F32(_) | Value::F64(_)
            if !key
                .bytes()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'N' | b'I')) =>
        {
            false
        }
        other => js_string(other) == key,
    }
}

/// JavaScript's truthiness of a decoded value: `false`, `0`, `NaN`, `""` and nil are
/// falsy; everything else (objects, arrays, buffers included) is truthy.
pub fn js_truthy(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Boolean(b) => *b,
        Value::Integer(i) => i.as_i64() != Some(0) && i.as_u64() != Some(0),
        Value::F32(f) => *f != 0.0 && !f.is_nan(),
        Value::F64(f) => *f != 0.0 && !f.is_nan(),
        Value::String(s) => !s.as_bytes().is_empty(),
        _ => true,
    }
}

/// JavaScript's `String(v)` of the value notepack decodes `v` to: what Node does with a
/// value used as a property name, concatenated into a packet, or joined.
pub fn js_string(v: &Value) -> String {
    match v {
        Value::Nil => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::F64(f) => js_number_text(*f),
        Value::F32(f) => js_number_text(f64::from(*f)),
        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Value::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        // Array.prototype.join: null items are empty.
        Value::Array(items) => items
            .iter()
            .map(|i| {
                if i.is_nil() {
                    String::new()
                } else {
                    js_string(i)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Map(_) => "[object Object]".into(),
        Value::Ext(_, _) => "[object ArrayBuffer]".into(),
    }
}

/// A room as a Rust server can hold it: a string, or a number, matched by its decimal
/// text (`42` ⇔ `"42"`: a Rust socket can only join names). A boolean, nil, `bin`, array
/// or map is no room at all. Node compat: Node's `Set` never matches those either;
/// deliberate difference: Node matches a number only to a socket that joined the number.
pub fn room_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => s.as_str().map(str::to_owned),
        Value::Integer(_) | Value::F64(_) | Value::F32(_) => Some(js_string(v)),
        _ => None,
    }
}

/// JavaScript's text of a number (`2.0` is `"2"`, `1e21` is `"1e+21"`).
fn js_number_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if f.floor() == f && f.abs() < 1e21 {
        format!("{f:.0}")
    } else if f.abs() >= 1e21 || f.abs() < 1e-6 {
        let t = format!("{f:e}");
        match t.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => t,
        }
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn numbers_follow_notepack() {
        let cases: &[(Value, &str)] = &[
            (Value::from(0), "00"),
            (Value::from(127), "7f"),
            (Value::from(128), "cc80"),
            (Value::from(1000), "cd03e8"),
            (Value::from(-1), "ff"),
            (Value::from(-33), "d0df"),
            (Value::F64(2.0), "02"),
            (Value::F64(-2.0), "fe"),
            (Value::F64(1.5), "cb3ff8000000000000"),
            (Value::F32(1.0), "01"),
            (Value::F64(f64::NAN), "cb7ff8000000000000"),
        ];
        for (v, want) in cases {
            assert_eq!(hex(&to_vec(v)), *want, "{v:?}");
        }
    }

    #[test]
    fn strings_and_binary() {
        assert_eq!(hex(&to_vec(&Value::from("é"))), "a2c3a9");
        let long = "x".repeat(40);
        assert_eq!(&hex(&to_vec(&Value::from(long.as_str())))[..4], "d928");
        assert_eq!(hex(&to_vec(&Value::Binary(vec![1, 2, 3]))), "c403010203");
    }

    #[test]
    fn reads_notepack2_extensions() {
        // ext8 type 0 (ArrayBuffer), fixext1 type 0 (undefined)
        assert_eq!(
            decode(&[0xc7, 3, 0, 4, 5, 6]).unwrap(),
            Value::Binary(vec![4, 5, 6])
        );
        assert_eq!(decode(&[0xd4, 0, 0]).unwrap(), Value::Nil);
        // timestamp32 for 2020-01-01T00:00:00Z
        let mut ts = vec![0xd6, 0xff];
        ts.extend_from_slice(&1_577_836_800u32.to_be_bytes());
        assert_eq!(
            decode(&ts).unwrap(),
            Value::from("2020-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn notepack2_ext_type_0_by_form_not_by_length() {
        // What socket.io-redis 5/6 and socket.io-emitter 3 (notepack 2.x) write, read as
        // notepack 2 and 3 read it (checked against socket.io-redis 6.1.1 in
        // tests/interop_legacy.rs): an ArrayBuffer or typed array is ext 8 type 0 at any
        // length, so 1 and 8 bytes are binary too (they were read as undefined / a Date).
        let ab8 = [0xc7, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            decode(&ab8).unwrap(),
            Value::Binary(vec![1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(decode(&[0xc7, 1, 0, 0]).unwrap(), Value::Binary(vec![0]));
        assert_eq!(decode(&[0xc8, 0, 1, 0, 9]).unwrap(), Value::Binary(vec![9]));
        // fixext1 type 0 is undefined whatever its data byte.
        assert_eq!(decode(&[0xd4, 0, 7]).unwrap(), Value::Nil);
        // A Date: fixext8 type 0, epoch ms as int32 high and uint32 low words
        // (new Date(1577836800123) and new Date(-1000)).
        let ms: i64 = 1_577_836_800_123;
        let mut date = vec![0xd7, 0];
        date.extend_from_slice(&((ms >> 32) as i32).to_be_bytes());
        date.extend_from_slice(&(ms as u32).to_be_bytes());
        assert_eq!(
            decode(&date).unwrap(),
            Value::from("2020-01-01T00:00:00.123Z")
        );
        let before_1970 = [0xd7, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc, 0x18];
        assert_eq!(
            decode(&before_1970).unwrap(),
            Value::from("1969-12-31T23:59:59.000Z")
        );
        // Other fixext sizes of type 0 are `[0, Buffer]`, as any unknown extension.
        assert_eq!(
            decode(&[0xd5, 0, 1, 2]).unwrap(),
            Value::Array(vec![Value::from(0), Value::Binary(vec![1, 2])])
        );
    }

    #[test]
    fn rejects_malformed_without_panicking() {
        let bad: &[&[u8]] = &[
            &[],
            &[0xc1],
            &[0x92, 0x01],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &[0xdf, 0xff, 0xff, 0xff, 0xff],
            &[0xa2, 0xff, 0xfe],
            &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00],
            &[0x01, 0x02],
        ];
        for b in bad {
            assert!(decode(b).is_err(), "{b:?}");
        }
        let deep = vec![0x91u8; 10_000];
        assert!(decode(&deep).is_err());
    }

    #[test]
    fn numeric_rooms_match_their_decimal_text() {
        assert_eq!(room_name(&Value::from(42)).as_deref(), Some("42"));
        assert_eq!(room_name(&Value::F64(42.0)).as_deref(), Some("42"));
        assert_eq!(room_name(&Value::F64(1.5)).as_deref(), Some("1.5"));
        assert_eq!(room_name(&Value::from("r")).as_deref(), Some("r"));
        assert_eq!(room_name(&Value::Nil), None);
    }

    #[test]
    fn other_types_are_no_room() {
        for v in [
            Value::Nil,
            Value::Boolean(true),
            Value::Binary(b"r".to_vec()),
            Value::Array(vec![Value::from("r")]),
        ] {
            assert_eq!(room_name(&v), None, "{v:?}");
        }
    }

    #[test]
    fn js_string_is_javascripts() {
        let cases = [
            (Value::from(42), "42"),
            (Value::F64(2.0), "2"),
            (Value::F32(2.0), "2"),
            (Value::F64(2.5), "2.5"),
            (Value::F64(1e21), "1e+21"),
            (Value::F64(f64::NAN), "NaN"),
            (Value::F64(f64::NEG_INFINITY), "-Infinity"),
            (Value::Nil, "null"),
            (Value::Boolean(false), "false"),
            (Value::Binary(b"type".to_vec()), "type"),
            (
                Value::Array(vec![Value::from(1), Value::Nil, Value::from("x")]),
                "1,,x",
            ),
            (Value::Map(vec![]), "[object Object]"),
        ];
        for (v, text) in cases {
            assert_eq!(js_string(&v), text, "{v:?}");
        }
    }

    #[test]
    fn map_keys_are_js_property_names() {
        let m = vec![
            (Value::Binary(b"type".to_vec()), Value::from(1)),
            (Value::from(7), Value::from(2)),
            (Value::from("type"), Value::from(3)),
        ];
        // The last of repeated keys wins, whatever their msgpack type.
        assert_eq!(map_get(&m, "type"), Some(&Value::from(3)));
        // The fast paths of key_is agree with js_string.
        for k in [
            Value::Nil,
            Value::Boolean(true),
            Value::Boolean(false),
            Value::from(7),
            Value::from(-7),
            Value::F64(f64::NAN),
            Value::F64(f64::INFINITY),
            Value::F64(1.5),
        ] {
            for key in [
                "null", "true", "false", "7", "-7", "NaN", "Infinity", "1.5", "type", "",
            ] {
                assert_eq!(key_is(&k, key), js_string(&k) == key, "{k:?} {key:?}");
            }
        }
        assert_eq!(map_get(&m, "7"), Some(&Value::from(2)));
        assert_eq!(map_get(&m[..1], "type"), Some(&Value::from(1)));
    }
}
