//! The Redis Streams side of Node's `@socket.io/redis-streams-adapter` 0.3.1: which
//! stream a namespace writes to, and how a [`ClusterMessage`] becomes a stream entry
//! and back. The other messages (broadcasts with an ack, server-side emits, fetchSockets
//! and every response) go over pub/sub as the whole envelope in msgpack
//! ([`ClusterMessage::encode_msgpack`]) on `<prefix>#<nsp>#` and `<prefix>#<nsp>#<uid>#`.
//!
//! An entry is `uid <uid> nsp <nsp> type <decimal> [data <data>]`: `data` is
//! `JSON.stringify(data)`, or base64 of its msgpack when the type may carry binary and
//! does (`onlyPlaintext` off). Receivers tell them apart by a leading `{`.

use crate::cluster_format::{ClusterMessage, is_msgpack, kind};
use crate::codec::{self, DecodeError};
use crate::request::{decode_any, value_to_json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Java's `String.hashCode` as the streams adapter computes it (`hash * 31 + code unit`
/// over UTF-16, kept to a signed 32-bit integer).
pub fn hash_code(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The stream of namespace `nsp`: `base` with one stream, else
/// `base-<hashCode(nsp) % count>` (Node compat: the remainder keeps the sign, so
/// `socket.io--1` is a stream name Node uses). `count` 0 is taken as 1.
pub fn stream_name(base: &str, count: u32, nsp: &str) -> String {
    if count <= 1 {
        return base.to_owned();
    }
    // i64: a count above i32::MAX must not overflow; JS computes in doubles.
    let i = i64::from(hash_code(nsp)) % i64::from(count);
    format!("{base}-{i}")
}

/// The streams of every namespace: `base`, or `base-0` … `base-<count-1>`.
pub fn stream_names(base: &str, count: u32) -> Vec<String> {
    if count <= 1 {
        vec![base.to_owned()]
    } else {
        (0..count).map(|i| format!("{base}-{i}")).collect()
    }
}

/// Whether Node sends `msg` over pub/sub instead of the stream: a broadcast with an ack
/// (it has a `requestId`), every server-side emit, fetchSockets. Responses are sent to
/// the requester's channel in any case.
pub fn is_ephemeral(msg: &ClusterMessage) -> bool {
    match msg.kind {
        kind::BROADCAST => msg.get("requestId").is_some(),
        kind::SERVER_SIDE_EMIT | kind::FETCH_SOCKETS => true,
        _ => false,
    }
}

impl ClusterMessage {
    /// The fields of the stream entry Node's streams adapter writes for this message,
    /// in its order. With `only_plaintext` (Node's `onlyPlaintext`), `data` is always
    /// JSON (binary then travels as JSON of a Buffer, as in Node).
    pub fn to_stream_fields(&self, only_plaintext: bool) -> Vec<(&'static str, Vec<u8>)> {
        let mut fields = vec![
            ("uid", self.uid.as_bytes().to_vec()),
            ("nsp", self.nsp.as_bytes().to_vec()),
            ("type", self.kind.to_string().into_bytes()),
        ];
        if let Some(data) = &self.data {
            let data = if !only_plaintext && is_msgpack(self.kind, Some(data)) {
                let mut buf = Vec::new();
                codec::write(&mut buf, data);
                BASE64.encode(buf).into_bytes()
            } else {
                serde_json::to_vec(&value_to_json(data)).unwrap_or_default()
            };
            fields.push(("data", data));
        }
        fields
    }

    /// Reads a stream entry's fields (any order; the last of repeated fields wins, as
    /// a JavaScript object built from them keeps it). Node compat:
    /// * an entry without `nsp`, or with an empty one, is for nobody (an error here);
    /// * `type` is read as `parseInt(type, 10)`: leading spaces, a sign, then digits;
    ///   without digits the message is for nobody;
    /// * an empty or missing `data` means no data; one that starts with `{` is JSON,
    ///   anything else base64 of msgpack;
    /// * `uid` is any text (only compared with the receiver's own).
    pub fn from_stream_fields<'a>(
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, DecodeError> {
        let (mut uid, mut nsp, mut kind, mut data) = (None, None, None, None);
        for (k, v) in fields {
            match k {
                b"uid" => uid = Some(v),
                b"nsp" => nsp = Some(v),
                b"type" => kind = Some(v),
                b"data" => data = Some(v),
                _ => {}
            }
        }
        let text = |v: &[u8], what: &str| {
            std::str::from_utf8(v)
                .map(str::to_owned)
                .map_err(|_| DecodeError(format!("stream entry {what} is not UTF-8")))
        };
        let nsp = match nsp {
            Some(n) if !n.is_empty() => text(n, "nsp")?,
            _ => return Err(DecodeError("stream entry without nsp".into())),
        };
        let kind = kind
            .and_then(parse_int)
            .ok_or_else(|| DecodeError("stream entry without a numeric type".into()))?;
        let data = match data {
            None | Some(b"") => None,
            Some(d) if d.first() == Some(&b'{') => Some(decode_any(d)?),
            Some(d) => {
                // Node compat: Buffer.from(text, "base64") skips what is not base64
                // and stops at the padding; the strict decoder is tried first.
                let bytes = BASE64
                    .decode(d)
                    .or_else(|_| lenient_base64(d))
                    .map_err(|e| DecodeError(format!("stream entry data: {e}")))?;
                Some(codec::decode(&bytes)?)
            }
        };
        Ok(ClusterMessage {
            uid: uid.map_or_else(
                || "undefined".to_owned(),
                |u| String::from_utf8_lossy(u).into_owned(),
            ),
            nsp,
            kind,
            data,
        })
    }
}

/// `parseInt(text, 10)` for a type: `None` where JavaScript gives `NaN` (or a value
/// that is not a message type anyway).
fn parse_int(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim_start();
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits: &str = &s[..s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())];
    digits.parse().ok()
}

/// Base64 as Node's `Buffer.from(.., "base64")` reads it: characters outside the
/// alphabet are skipped (`-`/`_` of the URL alphabet are read as `+`/`/`), reading stops
/// at `=`, and a last lone character is dropped.
fn lenient_base64(d: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let mut cleaned: Vec<u8> = d
        .iter()
        .take_while(|&&b| b != b'=')
        .filter_map(|&b| match b {
            b'-' => Some(b'+'),
            b'_' => Some(b'/'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => Some(b),
            _ => None,
        })
        .collect();
    if cleaned.len() % 4 == 1 {
        cleaned.pop();
    }
    LENIENT.decode(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::fixtures_dir;
    use rmpv::Value;
    use serde_json::Value as Json;

    #[test]
    fn stream_names_follow_javas_hash_code() {
        // Computed by the streams adapter's own `hashCode` (node, util.js of 0.3.1):
        // name, hash, then the stream index for 3, 4 and 7 streams.
        for (nsp, hash, by3, by4, by7) in [
            ("/", 47, 2, 3, 5),
            ("/admin", 1438238848, 1, 0, 4),
            (
                "/a-very-long-namespace-name-that-overflows",
                613985222,
                2,
                2,
                4,
            ),
            // JavaScript's -0 prints as "0".
            ("/negative-one", -510640515, 0, -3, 0),
            ("/\u{1F600}", 1818066, 0, 2, 5),
            ("/dyn-123", -1864101425, -2, -1, -4),
        ] {
            assert_eq!(hash_code(nsp), hash, "{nsp}");
            for (count, i) in [(3, by3), (4, by4), (7, by7)] {
                assert_eq!(
                    stream_name("socket.io", count, nsp),
                    format!("socket.io-{i}"),
                    "{nsp} {count}"
                );
            }
            assert_eq!(stream_name("socket.io", 1, nsp), "socket.io");
        }
        assert_eq!(stream_name("s", 4, "/dyn-123"), "s--1");
        assert_eq!(stream_names("s", 2), ["s-0", "s-1"]);
    }

    fn fields_of(entry: &Json) -> Vec<(Vec<u8>, Vec<u8>)> {
        entry["fields"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_bytes().to_vec(),
                    v.as_str().unwrap().as_bytes().to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn node_stream_entries_decode_and_encode_to_the_same_fields() {
        let dir = fixtures_dir().join("redis-streams-adapter-0.3.1");
        let mut checked = 0;
        for name in [
            "broadcast-all",
            "broadcast-room",
            "broadcast-binary",
            "sockets-join",
            "disconnect-sockets",
            "missed-broadcast",
        ] {
            let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
            // One entry per line (missed-broadcast holds two).
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let entry: Json = serde_json::from_str(line).unwrap();
                let fields = fields_of(&entry);
                let msg = ClusterMessage::from_stream_fields(
                    fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!is_ephemeral(&msg), "{name}");
                let again: Vec<(Vec<u8>, Vec<u8>)> = msg
                    .to_stream_fields(false)
                    .into_iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v))
                    .collect();
                assert_eq!(again, fields, "{name}: re-encoded fields differ");
                checked += 1;
            }
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn node_pubsub_messages_are_ephemeral_and_re_encode_byte_for_byte() {
        let dir = fixtures_dir().join("redis-streams-adapter-0.3.1");
        for name in [
            "server-side-emit.bin",
            "server-side-emit-ack.pubsub.bin",
            "fetch-sockets.pubsub.bin",
            "broadcast-with-ack.pubsub.bin",
            "server-side-emit-ack.response.bin",
            "fetch-sockets.response.bin",
            "broadcast-with-ack.response.1.bin",
            "broadcast-with-ack.response.2.bin",
        ] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let msg = ClusterMessage::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(msg.encode_msgpack(), bytes, "{name}");
            if name.contains("response") {
                continue;
            }
            assert!(is_ephemeral(&msg), "{name}");
        }
    }

    #[test]
    fn entries_are_read_as_node_reads_them() {
        let read = |f: &[(&str, &str)]| {
            ClusterMessage::from_stream_fields(f.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
        };
        // parseInt: leading spaces and trailing text are fine, no digits is not.
        assert_eq!(read(&[("nsp", "/"), ("type", " 4x")]).unwrap().kind, 4);
        assert!(read(&[("nsp", "/"), ("type", "x")]).is_err());
        // No nsp, or an empty one: for nobody.
        assert!(read(&[("type", "3")]).is_err());
        assert!(read(&[("nsp", ""), ("type", "3")]).is_err());
        // Empty data: none. No uid: "undefined".
        let m = read(&[("nsp", "/"), ("type", "6"), ("data", "")]).unwrap();
        assert_eq!((m.data, m.uid.as_str()), (None, "undefined"));
        // The last of repeated fields wins.
        assert_eq!(
            read(&[("nsp", "/a"), ("nsp", "/b"), ("type", "3")])
                .unwrap()
                .nsp,
            "/b"
        );
        // Base64 without padding, as Buffer.from reads it.
        let mut mp = Vec::new();
        codec::write(&mut mp, &Value::from("x"));
        let b64 = BASE64.encode(&mp);
        let m = read(&[
            ("nsp", "/"),
            ("type", "9"),
            ("data", b64.trim_end_matches('=')),
        ])
        .unwrap();
        assert_eq!(m.data, Some(Value::from("x")));
        // Garbage is an error, never a panic.
        assert!(read(&[("nsp", "/"), ("type", "3"), ("data", "%%%")]).is_err());
        assert!(read(&[("nsp", "/"), ("type", "3"), ("data", "{not json")]).is_err());
    }

    #[test]
    fn binary_goes_as_base64_msgpack_unless_only_plaintext() {
        let data = Value::Map(vec![(Value::from("packet"), Value::Binary(vec![1, 2, 3]))]);
        let msg = ClusterMessage {
            uid: "u".into(),
            nsp: "/".into(),
            kind: kind::BROADCAST,
            data: Some(data.clone()),
        };
        let f = msg.to_stream_fields(false);
        assert_eq!(f[3].0, "data");
        assert_ne!(f[3].1.first(), Some(&b'{'));
        let back =
            ClusterMessage::from_stream_fields(f.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())))
                .unwrap();
        assert_eq!(back.data, Some(data));
        assert_eq!(msg.to_stream_fields(true)[3].1.first(), Some(&b'{'));
    }
}
