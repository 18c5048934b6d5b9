//! The replies the reader reads: `XINFO STREAM` and `XREAD`, in RESP2 or RESP3 shape.

use crate::error::Error;
use redis::Value;

pub(super) struct Info {
    pub(super) last_id: String,
    pub(super) length: u64,
    pub(super) entries_added: Option<u64>,
}

/// `XINFO STREAM`; `None` for a stream that does not exist.
pub(super) async fn info(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Result<Option<Info>, Error> {
    let reply: Result<Value, _> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await;
    let v = match reply {
        Ok(v) => v,
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
            return Ok(None); // ERR no such key
        }
        Err(e) => return Err(e.into()),
    };
    let pairs = pairs(v);
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let int = |name: &str| match get(name) {
        Some(Value::Int(n)) => Some(*n as u64),
        _ => None,
    };
    Ok(Some(Info {
        last_id: get("last-generated-id")
            .and_then(text)
            .unwrap_or_else(|| "0-0".into()),
        length: int("length").unwrap_or(0),
        entries_added: int("entries-added"),
    }))
}

/// A RESP2 flat array or RESP3 map as `(name, value)` pairs.
fn pairs(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(m) => m
            .into_iter()
            .filter_map(|(k, v)| Some((text(&k)?, v)))
            .collect(),
        Value::Array(a) => {
            let mut out = Vec::new();
            let mut it = a.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let Some(k) = text(&k) {
                    out.push((k, v));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

pub(super) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// An `XREAD` reply (RESP2 arrays or a RESP3 map; nil when the block timed out) as
/// `(stream, [(id, fields)])`.
pub(super) fn stream_entries(reply: Value) -> Vec<(String, Vec<(String, Fields)>)> {
    let streams: Vec<(Value, Value)> = match reply {
        Value::Map(m) => m,
        Value::Array(a) => a
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let entries = kv.pop()?;
                    Some((kv.pop()?, entries))
                }
                _ => None,
            })
            .collect(),
        _ => return Vec::new(),
    };
    streams
        .into_iter()
        .filter_map(|(name, entries)| {
            let name = text(&name)?;
            let Value::Array(entries) = entries else {
                return None;
            };
            let entries = entries
                .into_iter()
                .filter_map(|e| match e {
                    Value::Array(mut e) if e.len() == 2 => {
                        let fields = e.pop()?;
                        let id = text(&e.pop()?)?;
                        let fields = match fields {
                            Value::Array(f) => f
                                .chunks(2)
                                .filter_map(|kv| match kv {
                                    [Value::BulkString(k), Value::BulkString(v)] => {
                                        Some((k.clone(), v.clone()))
                                    }
                                    _ => None,
                                })
                                .collect(),
                            // A deleted entry still listed (XDEL) has no fields.
                            _ => Vec::new(),
                        };
                        Some((id, fields))
                    }
                    _ => None,
                })
                .collect();
            Some((name, entries))
        })
        .collect()
}
