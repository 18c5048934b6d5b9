//! Fuzzing the wire decoders: whatever bytes arrive on a subscribed channel, the four
//! decoders (`codec::decode`, `BroadcastMessage::decode`, `Request::decode`,
//! `Response::decode`) return `Ok` or `Err`: no panic, no decode slower than
//! [`common::MAX_TIME`], no heap use beyond [`common::peak_budget`] (a counting global
//! allocator measures it).
//!
//! Inputs: (a) arbitrary bytes, (b) mutations of every golden fixture payload in
//! `../shared/wire-fixtures/*/*.bin` (bit flips, truncations at every length, byte
//! insertions and deletions, length headers rewritten to huge values), (c) well-formed
//! msgpack/JSON of the wrong shape (wrong field types, unknown request types, deep
//! nesting, huge counts backed by a few bytes). Valid broadcasts round-trip exactly.
//!
//! `PROPTEST_CASES` sets the cases per property (default 256). Failing seeds are saved
//! to `tests/corpus/proptest-regressions.txt`; add the minimized input as a corpus file
//! too (see `tests/corpus/README.md`).

mod common;

use common::{DECODERS, Header, check_all, fixture_payloads, hex, inflate, length_headers};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use rmpv::Value;
use socketioxide_cluster_wire::{
    codec,
    message::BroadcastMessage,
    request::{Request, Response, value_to_json},
};
use std::sync::LazyLock;

static FIXTURES: LazyLock<Vec<(String, Vec<u8>)>> = LazyLock::new(fixture_payloads);

fn config() -> ProptestConfig {
    ProptestConfig {
        // `ProptestConfig::default()` reads PROPTEST_CASES (256 when unset).
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/corpus/proptest-regressions.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// `check_all` as a proptest assertion, plus the properties every successful decode
/// must keep.
fn check(input: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = check_all(input) {
        return Err(TestCaseError::fail(e));
    }
    if let Ok(m) = BroadcastMessage::decode(input) {
        renormalizes(input, &m)?;
    }
    if let Ok(r) = Request::decode(input) {
        // Re-encoding what we accepted never panics, and its bytes are fine input too.
        let again = r.encode();
        if let Err(e) = check_all(&again) {
            return Err(TestCaseError::fail(format!("re-encoded request: {e}")));
        }
    }
    Ok(())
}

/// A decoded message re-encodes to canonical notepack bytes that decode again to bytes
/// that are stable: `encode(decode(encode(m))) == encode(m)`. (Not `== m` itself:
/// float32, integral float64 and ext values from foreign producers are normalised by
/// the first encode.)
fn renormalizes(input: &[u8], m: &BroadcastMessage) -> Result<(), TestCaseError> {
    let once = m.encode();
    // Normalising grows a value at most a few times (a 6-byte timestamp becomes a
    // 26-byte ISO string, a 1-byte fixint uid a 4-byte string).
    prop_assert!(
        once.len() <= 8 * input.len() + 64,
        "re-encoding {} bytes gave {} bytes: {}",
        input.len(),
        once.len(),
        hex(input)
    );
    match BroadcastMessage::decode(&once) {
        Ok(m2) => {
            let twice = m2.encode();
            prop_assert!(
                twice == once,
                "re-encoding is not stable for {:?}: {} then {}",
                m,
                hex(&once),
                hex(&twice)
            );
        }
        // An ext value at the deepest level becomes a `[type, bin]` array, one level
        // deeper than the reader accepts: the one way a re-encode may not decode.
        Err(e) => prop_assert!(
            e.0.contains("nested deeper"),
            "re-encoded message does not decode ({}): {}",
            e,
            hex(&once)
        ),
    }
    Ok(())
}

// =======================================================================================
// (a) arbitrary bytes
// =======================================================================================

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_short_bytes(input in vec(any::<u8>(), 0..=24)) {
        check(&input)?;
    }

    #[test]
    fn arbitrary_bytes(input in vec(any::<u8>(), 0..=512)) {
        check(&input)?;
    }

    /// Starting with `{` takes the JSON path of requests and responses.
    #[test]
    fn arbitrary_json_looking_text(input in "\\{[ -~]{0,80}") {
        check(input.as_bytes())?;
    }

    /// Containers whose headers promise more than is there, in every width.
    #[test]
    fn arbitrary_bytes_after_container_headers(
        marker in prop::sample::select(vec![0x90u8, 0x9f, 0x80, 0x8f, 0xdc, 0xdd, 0xde, 0xdf]),
        tail in vec(any::<u8>(), 0..=64),
    ) {
        let mut input = vec![marker];
        input.extend_from_slice(&tail);
        check(&input)?;
    }
}

// =======================================================================================
// (b) mutations of the golden fixtures
// =======================================================================================

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
    Delete(Index),
    Overwrite(Index, u8),
    /// Rewrite one length header (array/map/str/bin/ext) to this length.
    Inflate(Index, u32),
    /// Copy a chunk of another fixture over this position.
    Splice(Index, Index, Index, usize),
}

fn huge_len() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(u32::MAX),
        Just(0x7fff_ffff),
        Just(1_000_000),
        Just(0xffff),
        Just(0x1_0000),
        0u32..64,
        any::<u32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        (any::<Index>(), huge_len()).prop_map(|(i, n)| Mutation::Inflate(i, n)),
        (any::<Index>(), any::<Index>(), any::<Index>(), 1usize..32)
            .prop_map(|(f, from, to, n)| Mutation::Splice(f, from, to, n)),
    ]
}

fn apply(mut buf: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match m {
        Mutation::FlipBit(i, bit) if !buf.is_empty() => {
            let p = at(i, buf.len());
            buf[p] ^= 1 << bit;
        }
        Mutation::Truncate(i) => buf.truncate(at(i, buf.len() + 1)),
        Mutation::Insert(i, b) => {
            let p = at(i, buf.len() + 1);
            buf.insert(p, *b);
        }
        Mutation::Delete(i) if !buf.is_empty() => {
            let p = at(i, buf.len());
            buf.remove(p);
        }
        Mutation::Overwrite(i, b) if !buf.is_empty() => {
            let p = at(i, buf.len());
            buf[p] = *b;
        }
        Mutation::Inflate(i, n) => {
            let headers = length_headers(&buf);
            if !headers.is_empty() {
                let (pos, marker, kind) = headers[i.index(headers.len())];
                buf = inflate(&buf, pos, marker, kind, *n);
            }
        }
        Mutation::Splice(f, from, to, n) => {
            let src = &FIXTURES[f.index(FIXTURES.len())].1;
            if !src.is_empty() {
                let s = from.index(src.len());
                let chunk = &src[s..(s + n).min(src.len())];
                let p = at(to, buf.len() + 1);
                let end = (p + chunk.len()).min(buf.len());
                buf.splice(p..end, chunk.iter().copied());
            }
        }
        _ => {}
    }
    buf
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_fixtures(
        which in any::<Index>(),
        mutations in vec(mutation(), 1..=4),
    ) {
        let (_, original) = &FIXTURES[which.index(FIXTURES.len())];
        let input = mutations.iter().fold(original.clone(), apply);
        check(&input)?;
    }
}

#[test]
fn every_fixture_decodes_within_budget() {
    for (name, bytes) in FIXTURES.iter() {
        check_all(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Ok(m) = BroadcastMessage::decode(bytes) {
            renormalizes(bytes, &m).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn every_truncation_of_every_fixture() {
    for (name, bytes) in FIXTURES.iter() {
        for len in 0..bytes.len() {
            check_all(&bytes[..len]).unwrap_or_else(|e| panic!("{name}[..{len}]: {e}"));
        }
    }
}

/// Every position of payloads up to 256 bytes, 256 spread positions of longer ones (the
/// long ones are JSON fetch responses: every deletion would cost seconds in debug).
#[test]
fn single_byte_deletions_of_every_fixture() {
    for (name, bytes) in FIXTURES.iter() {
        let step = bytes.len().div_ceil(256).max(1);
        for i in (0..bytes.len()).step_by(step) {
            let mut b = bytes.clone();
            b.remove(i);
            check_all(&b).unwrap_or_else(|e| panic!("{name} without byte {i}: {e}"));
        }
    }
}

#[test]
fn every_length_header_of_every_fixture_inflated() {
    let mut headers_seen = 0;
    for (name, bytes) in FIXTURES.iter() {
        for (pos, marker, kind) in length_headers(bytes) {
            headers_seen += 1;
            let rest = (bytes.len() - pos) as u32;
            for len in [u32::MAX, 0x7fff_ffff, 1_000_000, 0xffff, rest, rest + 1] {
                let b = inflate(bytes, pos, marker, kind, len);
                check_all(&b).unwrap_or_else(|e| {
                    panic!("{name}: header {marker:#04x} at {pos} set to {len}: {e}")
                });
            }
        }
    }
    assert!(
        headers_seen > 1000,
        "only {headers_seen} msgpack length headers in the fixtures"
    );
}

// =======================================================================================
// (c) well-formed values of the wrong shape
// =======================================================================================

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::F64),
        any::<f32>().prop_map(Value::F32),
        ".{0,12}".prop_map(Value::from),
        vec(any::<u8>(), 0..12).prop_map(Value::Binary),
        (any::<i8>(), vec(any::<u8>(), 0..13)).prop_map(|(t, d)| Value::Ext(t, d)),
    ]
    .boxed()
}

/// Any msgpack value (ext values included, written raw).
fn any_value() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                vec((inner.clone(), inner), 0..6).prop_map(Value::Map),
            ]
        })
        .boxed()
}

fn s(key: &str) -> Value {
    Value::from(key)
}

/// A map built from optional fields, in a shuffled order.
fn object(fields: Vec<(&'static str, Option<Value>)>) -> impl Strategy<Value = Value> {
    let entries: Vec<(Value, Value)> = fields
        .into_iter()
        .filter_map(|(k, v)| Some((s(k), v?)))
        .collect();
    Just(entries).prop_shuffle().prop_map(Value::Map)
}

fn packet_type() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::from(2)),
        Just(Value::from(5)),
        Just(Value::from(-1)),
        Just(Value::from(256 + 2)),
        Just(Value::F64(2.5)),
        Just(s("2")),
        any_value(),
    ]
    .boxed()
}

fn packet_like() -> BoxedStrategy<Value> {
    (
        prop::option::of(packet_type()),
        prop::option::of(prop_oneof![
            vec(any_value(), 0..4).prop_map(Value::Array),
            any_value()
        ]),
        prop::option::of(prop_oneof![Just(s("/")), any_value()]),
        prop::option::of(any_value()),
        prop::option::of(any_value()),
    )
        .prop_flat_map(|(ty, data, nsp, id, extra)| {
            object(vec![
                ("type", ty),
                ("data", data),
                ("nsp", nsp),
                ("id", id),
                ("extra", extra),
            ])
        })
        .boxed()
}

fn rooms_like() -> BoxedStrategy<Value> {
    prop_oneof![
        vec(
            prop_oneof![".{0,6}".prop_map(Value::from), any_value()],
            0..4
        )
        .prop_map(Value::Array),
        any_value(),
    ]
    .boxed()
}

fn opts_like() -> BoxedStrategy<Value> {
    (
        prop::option::of(rooms_like()),
        prop::option::of(rooms_like()),
        prop::option::of(prop_oneof![
            vec(("[a-z]{1,8}".prop_map(Value::from), any_value()), 0..4).prop_map(Value::Map),
            any_value(),
        ]),
    )
        .prop_flat_map(|(rooms, except, flags)| {
            object(vec![("rooms", rooms), ("except", except), ("flags", flags)])
        })
        .boxed()
}

/// `[uid, packet, opts, ...]` with any field of the wrong type, or the wrong length.
fn broadcast_like() -> BoxedStrategy<Value> {
    (
        prop_oneof![".{0,8}".prop_map(Value::from), any_value()],
        prop_oneof![packet_like(), any_value()],
        prop_oneof![opts_like(), any_value()],
        vec(any_value(), 0..2),
        0usize..=3,
    )
        .prop_map(|(uid, packet, opts, extra, keep)| {
            let mut items = vec![uid, packet, opts];
            items.extend(extra);
            if keep < 3 {
                items.truncate(keep);
            }
            Value::Array(items)
        })
        .boxed()
}

fn request_type() -> BoxedStrategy<Value> {
    prop_oneof![
        (0u64..=10).prop_map(Value::from),
        (0u64..=10).prop_map(|k| Value::from(256 + k)),
        (0u64..=10).prop_map(|k| Value::from((1u64 << 32) + k)),
        any::<i64>().prop_map(Value::from),
        Just(Value::F64(7.0)),
        Just(Value::F64(7.5)),
        Just(s("7")),
        any_value(),
    ]
    .boxed()
}

/// Request / response objects with wrong or missing fields and unknown types.
fn request_like() -> BoxedStrategy<Value> {
    let id = || prop_oneof![".{0,8}".prop_map(Value::from), any_value()];
    (
        prop::option::of(request_type()),
        prop::option::of(id()),
        prop::option::of(id()),
        prop::option::of(prop_oneof![opts_like(), any_value()]),
        prop::option::of(rooms_like()),
        prop::option::of(prop_oneof![packet_like(), any_value()]),
        prop::option::of(any_value()),
        (
            prop::option::of(id()),
            prop::option::of(any_value()),
            prop::option::of(any_value()),
        ),
    )
        .prop_flat_map(
            |(ty, uid, rid, opts, rooms, packet, data, (sid, room, close))| {
                object(vec![
                    ("type", ty),
                    ("uid", uid),
                    ("requestId", rid),
                    ("opts", opts),
                    ("rooms", rooms),
                    ("packet", packet),
                    ("data", data),
                    ("sid", sid),
                    ("room", room),
                    ("close", close),
                ])
            },
        )
        .boxed()
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(&value_to_json(v)).expect("serialize JSON")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_msgpack_value(v in any_value()) {
        check(&codec::to_vec(&v))?;
        check(&json_bytes(&v))?;
    }

    #[test]
    fn wrong_shaped_broadcasts(v in broadcast_like()) {
        check(&codec::to_vec(&v))?;
    }

    #[test]
    fn wrong_shaped_requests_and_responses(v in request_like()) {
        check(&codec::to_vec(&v))?;
        check(&json_bytes(&v))?;
    }

    /// Structure from a generator, then a huge length written into one of its headers.
    #[test]
    fn wrong_shaped_with_an_inflated_header(
        v in prop_oneof![broadcast_like(), request_like()],
        which in any::<Index>(),
        len in huge_len(),
    ) {
        let bytes = codec::to_vec(&v);
        let headers = length_headers(&bytes);
        prop_assume!(!headers.is_empty());
        let (pos, marker, kind) = headers[which.index(headers.len())];
        check(&inflate(&bytes, pos, marker, kind, len))?;
    }
}

#[test]
fn unknown_request_types_are_errors() {
    // Node's RequestType stops at 9; anything else is skipped by the receiver, including
    // numbers whose low byte is a known type.
    for ty in [
        10u64,
        11,
        99,
        255,
        256,
        257,
        258,
        261,
        263,
        0x1_0000_0001,
        u64::MAX,
    ] {
        for body in [
            format!(
                r#"{{"uid":"u","requestId":"r","type":{ty},"opts":{{"rooms":[],"except":[]}},"rooms":["x"]}}"#
            ),
            format!(r#"{{"requestId":"r","type":{ty},"sid":"s","room":"x"}}"#),
        ] {
            check_all(body.as_bytes()).unwrap();
            let got = Request::decode(body.as_bytes());
            assert!(got.is_err(), "type {ty} decoded as {got:?} from {body}");
            let mp = codec::to_vec(&Value::Map(vec![
                (s("requestId"), s("r")),
                (s("type"), Value::from(ty)),
                (
                    s("packet"),
                    Value::Map(vec![
                        (s("type"), Value::from(2)),
                        (s("data"), Value::Array(vec![])),
                    ]),
                ),
            ]));
            let got = Request::decode(&mp);
            assert!(
                got.is_err(),
                "msgpack type {ty} decoded as {got:?}: {}",
                hex(&mp)
            );
        }
    }
}

#[test]
fn non_integer_request_types_are_errors() {
    for ty in [
        "-1",
        "7.5",
        "\"7\"",
        "null",
        "[7]",
        "{\"a\":7}",
        "1e300",
        "true",
    ] {
        let body = format!(r#"{{"requestId":"r","type":{ty}}}"#);
        check_all(body.as_bytes()).unwrap();
        assert!(Request::decode(body.as_bytes()).is_err(), "{body}");
    }
}

#[test]
fn json_that_is_not_an_object_is_an_error() {
    for body in [
        &b"[1,2,3]"[..],
        b"\"requestId\"",
        b"42",
        b"null",
        b"true",
        b" {\"requestId\":\"r\",\"type\":1}",
        b"{\"requestId\":\"r\",\"type\":1} trailing",
        b"{\"requestId\":\"r\",\"type\":1,}",
        b"{\"requestId\":\"r\xff\",\"type\":1}",
        b"{\"requestId\":\"\\ud800\",\"type\":1}",
        b"{\"requestId\":1e99999,\"type\":1}",
        b"{",
        b"{}",
    ] {
        check_all(body).unwrap();
        assert!(Request::decode(body).is_err(), "{}", hex(body));
        assert!(Response::decode(body).is_err(), "{}", hex(body));
        assert!(BroadcastMessage::decode(body).is_err(), "{}", hex(body));
    }
}

// ---- deep nesting ---------------------------------------------------------------------

fn nested(open: &[u8], leaf: &[u8], close: &[u8], depth: usize) -> Vec<u8> {
    let mut b = open.repeat(depth);
    b.extend_from_slice(leaf);
    b.extend_from_slice(&close.repeat(depth));
    b
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [63, 64, 65, 66, 100, 127, 129, 1000, 100_000] {
        let inputs = [
            nested(&[0x91], &[0xc0], &[], depth),
            nested(&[0x81, 0xa1, b'a'], &[0xc0], &[], depth),
            nested(&[0xdc, 0x00, 0x01], &[0x01], &[], depth),
            nested(&[0xdf, 0, 0, 0, 1, 0xc0], &[0xc0], &[], depth),
            nested(b"{\"a\":", b"1", b"}", depth),
            nested(b"[", b"1", b"]", depth),
            {
                let mut b = b"{\"a\":".to_vec();
                b.extend(nested(b"[", b"1", b"]", depth));
                b.push(b'}');
                b
            },
            {
                // a broadcast whose packet.data nests deeply
                let mut b = vec![0x93, 0xa1, b'u', 0x82, 0xa4];
                b.extend_from_slice(b"type");
                b.push(0x02);
                b.push(0xa4);
                b.extend_from_slice(b"data");
                b.extend(nested(&[0x91], &[0xc0], &[], depth));
                b.push(0x80);
                b
            },
        ];
        for b in inputs {
            check_all(&b).unwrap_or_else(|e| panic!("depth {depth}: {e}"));
            if depth > 70 {
                assert!(codec::decode(&b).is_err(), "depth {depth}");
                assert!(BroadcastMessage::decode(&b).is_err(), "depth {depth}");
                assert!(Request::decode(&b).is_err(), "depth {depth}");
                assert!(Response::decode(&b).is_err(), "depth {depth}");
            }
        }
    }
}

// ---- huge counts backed by a few bytes ------------------------------------------------

#[test]
fn huge_headers_with_few_bytes() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for n in [1_000_000u32, 0xffff, u32::MAX, 0x7fff_ffff] {
        let be = n.to_be_bytes();
        for marker in [0xdd, 0xdf, 0xdb, 0xc6, 0xc9] {
            let mut b = vec![marker];
            b.extend_from_slice(&be);
            for tail in 0..=8 {
                let mut t = b.clone();
                t.extend(std::iter::repeat_n(0xc0, tail));
                inputs.push(t);
            }
        }
        // inside an otherwise valid broadcast: [uid, {type, data: <huge>}, {}]
        let mut b = vec![0x93, 0xa1, b'u', 0x82, 0xa4];
        b.extend_from_slice(b"type");
        b.push(0x02);
        b.push(0xa4);
        b.extend_from_slice(b"data");
        b.push(0xdd);
        b.extend_from_slice(&be);
        b.extend_from_slice(&[0xa1, b'e', 0x80]);
        inputs.push(b);
    }
    inputs.push(vec![0xdc, 0xff, 0xff]);
    inputs.push(vec![0xde, 0xff, 0xff, 0xc0, 0xc0]);
    inputs.push(vec![0xc4, 0xff, 0x00]);
    inputs.push(vec![0xc5, 0xff, 0xff, 0x00]);
    inputs.push(vec![0xd9, 0xff, b'a']);
    inputs.push(vec![0xc7, 0xff, 0x00]);
    inputs.push(vec![0xc8, 0xff, 0xff, 0xff]);
    for b in &inputs {
        check_all(b).unwrap();
        assert!(codec::decode(b).is_err(), "{}", hex(b));
    }
}

/// Heap use must stay proportional to the input for every shape, including a chain of
/// containers that each claim as many items as bytes remain: each level may reserve
/// room for "the rest of the message", and 64 levels of that multiply the input.
#[test]
fn nested_huge_headers_do_not_multiply_the_input() {
    for size in [1usize << 10, 1 << 14, 1 << 16] {
        for (name, marker) in [
            ("array32", 0xddu8),
            ("map32", 0xdf),
            ("array16", 0xdc),
            ("map16", 0xde),
        ] {
            let wide = marker == 0xdd || marker == 0xdf;
            let map = marker == 0xdf || marker == 0xde;
            let mut b = Vec::with_capacity(size);
            for _ in 0..70 {
                let rest = size - b.len() - if wide { 5 } else { 3 };
                // a map of n entries needs 2n bytes: claim as many as could fit
                let claim = if map { rest / 2 } else { rest };
                b.push(marker);
                if wide {
                    b.extend_from_slice(&(claim as u32).to_be_bytes());
                } else {
                    b.extend_from_slice(&(claim.min(0xffff) as u16).to_be_bytes());
                }
                if map {
                    b.push(0xc0); // a key, then the value is the next level
                }
            }
            b.resize(size, 0xc0);
            for which in 0..DECODERS.len() {
                common::run_decoder(which, &b)
                    .unwrap_or_else(|e| panic!("{name} chain of {size} bytes: {e}"));
            }
        }
    }
}

// =======================================================================================
// Round trip of valid broadcasts
// =======================================================================================

/// A float the notepack writer keeps as a float64 (non-integral or out of integer range).
fn float_that_stays_float() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("round-trips as a float64", |f| {
        codec::decode(&codec::to_vec(&Value::F64(*f))).ok() == Some(Value::F64(*f))
    })
}

/// Values notepack writes and reads back unchanged.
fn canonical_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        float_that_stays_float().prop_map(Value::F64),
        ".{0,12}".prop_map(Value::from),
        vec(any::<u8>(), 0..12).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((inner.clone(), inner), 0..5).prop_map(Value::Map),
        ]
    })
    .boxed()
}

fn room() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,10}".prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
    ]
}

/// A broadcast as any known producer lays it out (packet keys `type, data, nsp[, id]`,
/// opts keys in any order, `except` possibly absent).
fn valid_broadcast() -> BoxedStrategy<Value> {
    let packet = (
        // What a socket.io client accepts as an event (see `wire::packet`).
        prop_oneof![Just(2u8), Just(5u8)],
        ".{0,10}".prop_filter("a reserved event name", |e| {
            !socketioxide_cluster_wire::packet::RESERVED_EVENTS.contains(&e.as_str())
        }),
        vec(canonical_value(), 0..4),
        prop::option::of("/[a-z]{0,8}"),
        prop::option::of(0..i64::MAX),
    )
        .prop_map(|(kind, event, args, nsp, id)| {
            let mut data = vec![Value::from(event)];
            data.extend(args);
            let mut m = vec![
                (s("type"), Value::from(kind)),
                (s("data"), Value::Array(data)),
            ];
            if let Some(nsp) = nsp {
                m.push((s("nsp"), Value::from(nsp)));
            }
            if let Some(id) = id {
                m.push((s("id"), Value::from(id)));
            }
            Value::Map(m)
        });
    let opts = (
        vec(room(), 0..4),
        prop::option::of(vec(room(), 0..3)),
        vec(("[a-zA-Z]{1,10}", canonical_value()), 0..4),
    )
        .prop_flat_map(|(rooms, except, flags)| {
            let mut entries = vec![
                (s("rooms"), Value::Array(rooms)),
                (
                    s("flags"),
                    Value::Map(flags.into_iter().map(|(k, v)| (s(&k), v)).collect()),
                ),
            ];
            if let Some(except) = except {
                entries.push((s("except"), Value::Array(except)));
            }
            Just(entries).prop_shuffle().prop_map(Value::Map)
        });
    (".{0,12}", packet, opts)
        .prop_map(|(uid, packet, opts)| Value::Array(vec![Value::from(uid), packet, opts]))
        .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_broadcasts_round_trip(v in valid_broadcast()) {
        let bytes = codec::to_vec(&v);
        check(&bytes)?;
        let m = BroadcastMessage::decode(&bytes)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", hex(&bytes))))?;
        let encoded = m.encode();
        prop_assert!(
            encoded == bytes,
            "re-encoding changed the bytes: {} became {}",
            hex(&bytes),
            hex(&encoded)
        );
        let again = BroadcastMessage::decode(&encoded)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", hex(&encoded))))?;
        prop_assert_eq!(again, m);
    }
}

#[test]
fn header_walker_sees_the_fixture_structure() {
    // Guards the mutation machinery: a fixture's first header is its outer container.
    let (name, bytes) = FIXTURES
        .iter()
        .find(|(n, _)| n.ends_with("redis-adapter-8.3.0/broadcast-all.bin"))
        .expect("broadcast-all fixture");
    let headers = length_headers(bytes);
    assert_eq!(headers.first(), Some(&(0, 0x93, Header::Fix)), "{name}");
    let grown = inflate(bytes, 0, 0x93, Header::Fix, 3);
    assert_eq!(
        codec::decode(&grown).ok(),
        codec::decode(bytes).ok(),
        "widening a header keeps the value"
    );
}

/// The heap budget leaves room for honest payloads: large flat containers of the
/// cheapest elements (one `rmpv::Value` per byte or two) stay within it.
#[test]
fn large_honest_payloads_fit_the_heap_budget() {
    let n = 10_000usize;
    let mut inputs: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut b = vec![0xdc];
    b.extend_from_slice(&(n as u16).to_be_bytes());
    b.extend(std::iter::repeat_n(0x00, n));
    inputs.push(("array16 of fixints", b));
    let mut b = vec![0xde];
    b.extend_from_slice(&((n / 2) as u16).to_be_bytes());
    b.extend(std::iter::repeat_n(0xc0, n));
    inputs.push(("map16 of nil: nil", b));
    let mut b = vec![0xdc];
    b.extend_from_slice(&((n / 2) as u16).to_be_bytes());
    b.extend(std::iter::repeat_n([0xa1, b'a'], n / 2).flatten());
    inputs.push(("array16 of 1-char strings", b));
    let mut b = vec![0xdc];
    b.extend_from_slice(&(n as u16).to_be_bytes());
    b.extend(std::iter::repeat_n(0x90, n));
    inputs.push(("array16 of empty arrays", b));
    let mut j = br#"{"requestId":"r","type":6,"data":["#.to_vec();
    j.extend(std::iter::repeat_n(&b"0,"[..], n).flatten());
    j.extend_from_slice(b"0]}");
    inputs.push(("JSON array of zeros", j));
    let mut j = br#"{"requestId":"r","type":6,"data":["#.to_vec();
    j.extend(std::iter::repeat_n(&b"[],"[..], n).flatten());
    j.extend_from_slice(b"[]]}");
    inputs.push(("JSON array of empty arrays", j));
    let mut j = br#"{"requestId":"r","type":6,"data":["#.to_vec();
    j.extend(std::iter::repeat_n(&b"{},"[..], n).flatten());
    j.extend_from_slice(b"{}]}");
    inputs.push(("JSON array of empty objects", j));
    for (name, input) in inputs {
        for (which, decoder) in DECODERS.iter().enumerate() {
            let cost = common::run_decoder(which, &input).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!(
                "{name}: {decoder} {} bytes → peak {} ({:.1}/byte) in {:?}",
                input.len(),
                cost.peak,
                cost.peak as f64 / input.len() as f64,
                cost.elapsed
            );
        }
    }
}

/// Latent (nothing re-encodes a received broadcast today): `decode_opts` records a key
/// in `order` each time it appears, and `encode_opts` writes the final `rooms` array
/// once per occurrence, so duplicated keys make `encode()` quadratic in the input.
#[test]
fn duplicate_opts_keys_do_not_multiply_the_reencoding() {
    let dupes = 500usize;
    let mut b = vec![0x93, 0xa1, b'u', 0x82, 0xa4];
    b.extend_from_slice(b"type");
    b.push(0x02);
    b.push(0xa4);
    b.extend_from_slice(b"data");
    b.extend_from_slice(&[0x91, 0xa1, b'e']);
    b.push(0xde);
    b.extend_from_slice(&(dupes as u16 + 1).to_be_bytes());
    for _ in 0..dupes {
        b.extend_from_slice(&[0xa5, b'r', b'o', b'o', b'm', b's', 0x90]);
    }
    b.extend_from_slice(&[0xa5, b'r', b'o', b'o', b'm', b's', 0xdc, 0x01, 0xf4]);
    b.extend(std::iter::repeat_n(0x01, 500));
    let m = BroadcastMessage::decode(&b).expect("decodes");
    renormalizes(&b, &m).unwrap();
}
