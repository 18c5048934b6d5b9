//! Mixed clusters with the previous generation of Node servers: a socket.io 4.0.2 server on
//! socket.io-redis 6.1.1 (`tests/interop/legacy_server.js`, the Redis adapter of socket.io
//! 3.x/4.0) and socketioxide servers on `ClusterAdapter`, on one `redis-server` and one key
//! prefix, with real clients on both sides.
//!
//! * Broadcasts, both ways: to all, rooms, except, socket ids as rooms, a socket's
//!   broadcast, volatile, binary (notepack 2 writes typed arrays as ext type 0 and
//!   `undefined` as `d4 00 00`), `/admin`.
//! * What socket.io-redis 6.1.1 sends, answered or applied by Rust servers: SOCKETS (0,
//!   `allSockets()`), ALL_ROOMS (1), REMOTE_FETCH (5) — all without `uid`, so answered on
//!   the shared response channel even by a Rust server that publishes on specific response
//!   channels —, the single-socket REMOTE_JOIN / REMOTE_LEAVE / REMOTE_DISCONNECT (2/3/4
//!   with `sid`, answered by the one server that has the socket), and the `opts` forms of
//!   2/3/4 (socketsJoin, socketsLeave, disconnectSockets, RemoteSocket operations).
//! * What Rust servers send, answered or applied by socket.io-redis 6.1.1: ALL_ROOMS,
//!   REMOTE_FETCH (fetch_sockets, clients, client_rooms, the find step of remote_*), the
//!   `opts` forms of 2/3/4, broadcasts.
//! * What 6.1.1 does not know: SERVER_SIDE_EMIT (6, also custom requests) is ignored, so a
//!   Rust request waiting for acks times out with the other replies; BROADCAST (7, the
//!   broadcast with acks) and BROADCAST_ACK (9) are msgpack, which 6.1.1 parses as JSON:
//!   its adapter emits `"error"`, which ends a Node process that does not listen to it.
//!
//! Ordering as in `interop_requests.rs`: what one server published is ordered before its
//! later requests on every server; nothing sleeps. Requires `redis-server`, Node.js 20 and
//! `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support as common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{
    self, Serve, amap, client, expect_events, node_expect, node_serving, nodes_serving,
    shared_opts, shutdown_all,
};
use common::node::{
    self as nd, NodeProcess, array_buffer, start_client, start_legacy_server, u8array, undefined,
};
use common::{Arg, AutoAck, Client, Parser, arg, bin, init_tracing, shared, unique_key};
use futures_util::StreamExt;
use serde_json::{Value, json};
use socketioxide_cluster::{CUSTOM_REQUEST_EVENT, ClusterOptions, Error, Partial, SocketDetails};
use tokio::sync::mpsc;

/// Bound of one wait (a Rust or a Node client event, a Node command).
const T: Duration = Duration::from_secs(15);
/// `requests_timeout` of the Rust servers in tests where every server answers.
const RUST_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Setup

/// One socket.io-redis 6.1.1 server and Rust servers on the shared redis-server, with a
/// fresh key prefix.
struct Mixed {
    key: String,
    legacy: NodeProcess,
    rust: Vec<cluster::Node>,
}

/// `legacy_server.js` with `legacy_args`, then `n_rust` Rust servers (serving `/`,
/// `/admin`) with `requests_timeout(rust_timeout)`.
async fn mixed(name: &str, n_rust: usize, rust_timeout: Duration, legacy_args: &[&str]) -> Mixed {
    init_tracing();
    let key = unique_key("legacy");
    let legacy =
        start_legacy_server(&format!("{name}-L"), &shared().url(), &key, legacy_args).await;
    let ready = legacy.ready_info();
    assert_eq!(ready["libs"]["socket.io-redis"], json!("6.1.1"), "{ready}");
    assert_eq!(ready["libs"]["socket.io"], json!("4.0.2"), "{ready}");
    let rust = nodes_serving(
        n_rust,
        &rust_opts(&key, rust_timeout),
        Parser::Json,
        Serve::ALL,
    )
    .await;
    Mixed { key, legacy, rust }
}

fn rust_opts(key: &str, timeout: Duration) -> ClusterOptions {
    shared_opts(key).requests_timeout(timeout)
}

/// A legacy-server command (`fields` without `cmd`) that must succeed; the reply.
async fn cmd(legacy: &mut NodeProcess, name: &str, mut fields: Value) -> Value {
    fields["cmd"] = json!(name);
    legacy.request(fields, T).await
}

async fn emit(legacy: &mut NodeProcess, fields: Value) {
    cmd(legacy, "emit", fields).await;
}

/// Legacy `fetchSockets` (REMOTE_FETCH) with `fields`: the `sockets` array.
async fn fetch(legacy: &mut NodeProcess, fields: Value) -> Vec<Value> {
    let r = cmd(legacy, "fetchSockets", fields).await;
    r["sockets"].as_array().expect("sockets").clone()
}

/// The rooms the Rust client's own server has for it (the "rooms" test handler).
async fn rust_rooms(c: &Client) -> BTreeSet<String> {
    let ack = c.emit_with_ack("rooms", vec![], T).await;
    serde_json::from_value(common::to_json(&ack[0])).unwrap()
}

/// Waits for the `{"disconnected": reason}` line of a `client.js` process.
async fn disconnected(c: &mut NodeProcess) -> String {
    let v = c
        .next_matching_described(|v| v.get("disconnected").is_some(), T, "{\"disconnected\"}")
        .await;
    text(&v["disconnected"])
}

/// The `{"wire": ..}` lines of a `--tap` legacy server received so far (other buffered
/// lines are dropped).
fn wire_lines(legacy: &mut NodeProcess) -> Vec<Value> {
    legacy
        .drain_events()
        .into_iter()
        .filter_map(|v| v.get("wire").cloned())
        .collect()
}

fn adapter_errors(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|v| v.get("adapterError").cloned())
        .collect()
}

macro_rules! sset {
    ($($x:expr),* $(,)?) => { BTreeSet::<String>::from([$($x.to_string()),*]) };
}

fn set<I: IntoIterator<Item = S>, S: ToString>(i: I) -> BTreeSet<String> {
    i.into_iter().map(|s| s.to_string()).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(text)
        .collect()
}

fn ids(sockets: &[Value]) -> BTreeSet<String> {
    sockets.iter().map(|s| text(&s["id"])).collect()
}

fn find<'a>(sockets: &'a [Value], id: &str) -> &'a Value {
    sockets
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("socket {id} not in {sockets:?}"))
}

// ---------------------------------------------------------------------------
// 1. Broadcasts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_both_directions() {
    let Mixed {
        mut legacy, rust, ..
    } = mixed("bc", 1, RUST_TIMEOUT, &[]).await;
    let r = &rust[0];
    let p = Parser::Json;
    let mut ra = client(r, "/", p, &["a"], T).await;
    let mut rab = client(r, "/", p, &["a", "b"], T).await;
    let mut rnone = client(r, "/", p, &[], T).await;
    let lurl = legacy.url();
    let mut la = start_client("bc-la", &lurl, "/", json!(["a"]), &[]).await;
    let mut lab = start_client("bc-lab", &lurl, "/", json!(["a", "b"]), &[]).await;
    let mut lnone = start_client("bc-lnone", &lurl, "/", json!([]), &[]).await;
    let (ra_id, la_id) = (ra.sid().to_owned(), la.sid());
    let values = json!(["hello", 1, 1.5, -7, 4294967296u64, {"k": [null, true, "ü"]}]);

    // --- Legacy origin.
    emit(&mut legacy, json!({"event": "l-all", "args": values})).await;
    emit(
        &mut legacy,
        json!({"to": "a", "event": "l-to-a", "args": [2]}),
    )
    .await;
    emit(
        &mut legacy,
        json!({"to": ["a", "b"], "event": "l-to-ab", "args": [3]}),
    )
    .await;
    emit(
        &mut legacy,
        json!({"except": "b", "event": "l-except-b", "args": [4]}),
    )
    .await;
    emit(
        &mut legacy,
        json!({"to": "a", "except": "b", "event": "l-a-not-b", "args": [5]}),
    )
    .await;
    // A Rust socket's id as the one room (channel P#/#<id>#), and in except.
    emit(
        &mut legacy,
        json!({"to": &ra_id, "event": "l-to-rust-id", "args": []}),
    )
    .await;
    emit(
        &mut legacy,
        json!({"to": "a", "except": [&ra_id], "event": "l-a-not-rust-id", "args": []}),
    )
    .await;
    // socket.broadcast.to("a") from la: except [la's id].
    cmd(
        &mut legacy,
        "broadcast",
        json!({"sid": &la_id, "to": "a", "event": "l-bc", "args": []}),
    )
    .await;
    emit(
        &mut legacy,
        json!({"local": true, "event": "l-local", "args": []}),
    )
    .await;
    emit(&mut legacy, json!({"event": "l-marker", "args": []})).await;

    let evs = expect_events(
        &mut ra,
        &[
            "l-all",
            "l-to-a",
            "l-to-ab",
            "l-except-b",
            "l-a-not-b",
            "l-to-rust-id",
            "l-bc",
            "l-marker",
        ],
        T,
    )
    .await;
    let got: Vec<Value> = (0..evs[0].args.len()).map(|i| evs[0].json(i)).collect();
    assert_eq!(Value::Array(got), values);
    let got: Vec<i64> = evs[1..5].iter().map(|e| e.i64_arg(0)).collect();
    assert_eq!(got, vec![2, 3, 4, 5]);
    let seq_ab = [
        "l-all",
        "l-to-a",
        "l-to-ab",
        "l-a-not-rust-id",
        "l-bc",
        "l-marker",
    ];
    expect_events(&mut rab, &seq_ab, T).await;
    expect_events(&mut rnone, &["l-all", "l-except-b", "l-marker"], T).await;
    node_expect(
        &mut la,
        &[
            "l-all",
            "l-to-a",
            "l-to-ab",
            "l-except-b",
            "l-a-not-b",
            "l-a-not-rust-id",
            "l-local",
            "l-marker",
        ],
        T,
    )
    .await;
    node_expect(
        &mut lab,
        &[
            "l-all",
            "l-to-a",
            "l-to-ab",
            "l-a-not-rust-id",
            "l-bc",
            "l-local",
            "l-marker",
        ],
        T,
    )
    .await;
    node_expect(
        &mut lnone,
        &["l-all", "l-except-b", "l-local", "l-marker"],
        T,
    )
    .await;

    // --- Rust origin.
    let io = &r.io;
    io.emit(
        "r-all",
        &("world", 2, 2.5, json!({"b": ["é", null, false]})),
    )
    .await
    .unwrap();
    io.to("a").emit("r-to-a", &2).await.unwrap();
    io.to(["a", "b"]).emit("r-to-ab", &3).await.unwrap();
    io.except("b").emit("r-except-b", &4).await.unwrap();
    io.to("a").except("b").emit("r-a-not-b", &5).await.unwrap();
    // A legacy socket's id as the one room, and in except.
    io.to(la_id.clone())
        .emit("r-to-legacy-id", &())
        .await
        .unwrap();
    io.to("a")
        .except(la_id.clone())
        .emit("r-a-not-legacy-id", &())
        .await
        .unwrap();
    // socket.to("a") from ra: except [ra's id].
    let sock = io.get_socket(ra_id.parse().unwrap()).expect("ra");
    sock.to("a").emit("r-bc", &()).await.unwrap();
    io.local().emit("r-local", &()).await.unwrap();
    io.emit("r-marker", &()).await.unwrap();

    let args = node_expect(
        &mut la,
        &[
            "r-all",
            "r-to-a",
            "r-to-ab",
            "r-except-b",
            "r-a-not-b",
            "r-to-legacy-id",
            "r-bc",
            "r-marker",
        ],
        T,
    )
    .await;
    assert_eq!(args[0], json!(["world", 2, 2.5, {"b": ["é", null, false]}]));
    assert_eq!(args[1..5], [json!([2]), json!([3]), json!([4]), json!([5])]);
    node_expect(
        &mut lab,
        &[
            "r-all",
            "r-to-a",
            "r-to-ab",
            "r-a-not-legacy-id",
            "r-bc",
            "r-marker",
        ],
        T,
    )
    .await;
    node_expect(&mut lnone, &["r-all", "r-except-b", "r-marker"], T).await;
    expect_events(
        &mut ra,
        &[
            "r-all",
            "r-to-a",
            "r-to-ab",
            "r-except-b",
            "r-a-not-b",
            "r-a-not-legacy-id",
            "r-local",
            "r-marker",
        ],
        T,
    )
    .await;
    expect_events(
        &mut rab,
        &[
            "r-all",
            "r-to-a",
            "r-to-ab",
            "r-a-not-legacy-id",
            "r-bc",
            "r-local",
            "r-marker",
        ],
        T,
    )
    .await;
    expect_events(
        &mut rnone,
        &["r-all", "r-except-b", "r-local", "r-marker"],
        T,
    )
    .await;

    // --- notepack's size classes both ways (notepack 2.2.0 on the legacy side): uint64,
    // int64, negative ints, float64, str8/str16/str32, array16, map16.
    let map16: serde_json::Map<String, Value> =
        (0..20).map(|i| (format!("k{i}"), json!(i))).collect();
    let sizes = json!([
        4294967296u64,
        -4294967296i64,
        -1,
        -200,
        -40000,
        0.1,
        "ü€𝄞",
        "y".repeat(40),
        "x".repeat(300),
        "z".repeat(70_000),
        (0..20).collect::<Vec<i64>>(),
        map16,
        [[], {}, [null]],
    ]);
    emit(
        &mut legacy,
        json!({"event": "l-sizes", "args": sizes.clone()}),
    )
    .await;
    let ev = &expect_events(&mut ra, &["l-sizes"], T).await[0];
    let got: Vec<Value> = (0..ev.args.len()).map(|i| ev.json(i)).collect();
    assert_eq!(Value::Array(got), sizes);
    node_expect(&mut la, &["l-sizes"], T).await;
    io.emit("r-sizes", &sizes).await.unwrap();
    assert_eq!(
        node_expect(&mut la, &["r-sizes"], T).await[0],
        json!([sizes])
    );
    expect_events(&mut ra, &["r-sizes"], T).await;
    for c in [&mut rab, &mut rnone] {
        expect_events(c, &["l-sizes", "r-sizes"], T).await;
    }
    for c in [&mut lab, &mut lnone] {
        node_expect(c, &["l-sizes", "r-sizes"], T).await;
    }

    // --- Volatile (and compress: false from the legacy side): each alone, to idle
    // clients (volatile packets may overtake the ordered ones on both sides).
    emit(
        &mut legacy,
        json!({"volatile": true, "compress": false, "event": "l-vol", "args": [6]}),
    )
    .await;
    assert_eq!(expect_events(&mut ra, &["l-vol"], T).await[0].i64_arg(0), 6);
    node_expect(&mut la, &["l-vol"], T).await;
    io.volatile().emit("r-vol", &7).await.unwrap();
    assert_eq!(node_expect(&mut la, &["r-vol"], T).await[0], json!([7]));
    expect_events(&mut ra, &["r-vol"], T).await;

    shutdown_all(vec![la, lab, lnone, legacy]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_both_directions() {
    let Mixed {
        mut legacy, rust, ..
    } = mixed("bin", 1, RUST_TIMEOUT, &[]).await;
    let r = &rust[0];
    let mut rc = client(r, "/", Parser::Json, &[], T).await;
    let mut lc = start_client("bin-lc", &legacy.url(), "/", json!([]), &[]).await;
    // socket.io-client on the Rust server: legacy binary re-encoded by socketioxide.
    let mut lc_on_rust = start_client("bin-lc-on-rust", &r.url(), "/", json!([]), &[]).await;
    let big = cluster::big_binary(); // bin32

    // Legacy -> Rust: notepack 2.2.0 writes a Buffer as bin, a Uint8Array or ArrayBuffer
    // as ext 8/16/32 type 0 (`c7 len 00`, whatever the length: 1 and 8 bytes too),
    // `undefined` as fixext1 type 0 (`d4 00 00`, read as null) and a Date as fixext8
    // type 0 (`d7 00` + epoch ms as int32 hi, uint32 lo; read as its ISO string).
    emit(
        &mut legacy,
        json!({"event": "l-bin", "args": [
            nd::bin(&[1, 2, 3]),
            "t",
            {"nested": nd::bin(&[4]), "arr": [nd::bin(&[5, 6]), 1]},
            u8array(&[7, 8]),
            array_buffer(&[9]),
            undefined(),
            nd::bin(&big),
            u8array(&[1, 2, 3, 4, 5, 6, 7, 8]),
            u8array(&[0]),
            {"$date": 1_577_836_800_123u64},
            {"$date": -1000},
        ]}),
    )
    .await;
    emit(&mut legacy, json!({"event": "l-marker", "args": []})).await;
    let evs = expect_events(&mut rc, &["l-bin", "l-marker"], T).await;
    assert_eq!(evs[0].args.len(), 11);
    assert_eq!(
        evs[0].args[7..],
        [
            bin([1, 2, 3, 4, 5, 6, 7, 8]),
            bin([0]),
            arg(json!("2020-01-01T00:00:00.123Z")),
            arg(json!("1969-12-31T23:59:59.000Z")),
        ],
        "8- and 1-byte typed arrays (ext 8 type 0), Dates (fixext 8 type 0)"
    );
    assert_eq!(
        nd::base64_encode(evs[0].bin_arg(6)),
        nd::base64_encode(&big)
    );
    assert_eq!(
        evs[0].args[..6],
        vec![
            bin([1, 2, 3]),
            arg(json!("t")),
            amap(vec![
                ("nested", bin([4])),
                ("arr", Arg::Array(vec![bin([5, 6]), Arg::from(1)])),
            ]),
            bin([7, 8]),
            bin([9]),
            Arg::Nil,
        ]
    );
    let args = node_expect(&mut lc_on_rust, &["l-bin", "l-marker"], T).await;
    assert_eq!(
        args[0],
        json!([
            nd::bin(&[1, 2, 3]),
            "t",
            {"nested": nd::bin(&[4]), "arr": [nd::bin(&[5, 6]), 1]},
            nd::bin(&[7, 8]),
            nd::bin(&[9]),
            null,
            nd::bin(&big),
            nd::bin(&[1, 2, 3, 4, 5, 6, 7, 8]),
            nd::bin(&[0]),
            "2020-01-01T00:00:00.123Z",
            "1969-12-31T23:59:59.000Z",
        ])
    );
    // The legacy server's own client, for comparison (socket.io 4.0.2 locally).
    let args = node_expect(&mut lc, &["l-bin", "l-marker"], T).await;
    assert_eq!(
        args[0][7],
        nd::bin(&[1, 2, 3, 4, 5, 6, 7, 8]),
        "{}",
        args[0]
    );
    assert_eq!(args[0][8], nd::bin(&[0]), "{}", args[0]);
    assert_eq!(args[0][9], json!("2020-01-01T00:00:00.123Z"), "{}", args[0]);

    // Rust -> legacy: a Buffer with the same bytes (top level, nested, big, empty).
    cluster::emit_binary_set(&r.io, &big).await;
    let args = node_expect(&mut lc, &["r-bin", "r-marker"], T).await;
    cluster::assert_binary_set(&args[0], &big);
    expect_events(&mut rc, &["r-bin", "r-marker"], T).await;
    node_expect(&mut lc_on_rust, &["r-bin", "r-marker"], T).await;

    shutdown_all(vec![lc, lc_on_rust, legacy]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_namespace_both_directions() {
    let Mixed {
        mut legacy, rust, ..
    } = mixed("adm", 1, RUST_TIMEOUT, &[]).await;
    let r = &rust[0];
    let p = Parser::Json;
    let lurl = legacy.url();
    let mut r_root = client(r, "/", p, &["staff"], T).await;
    let mut r_admin = client(r, "/admin", p, &["staff"], T).await;
    let mut r_admin2 = client(r, "/admin", p, &[], T).await;
    let mut l_root = start_client("adm-lroot", &lurl, "/", json!(["staff"]), &[]).await;
    let mut l_admin = start_client("adm-ladmin", &lurl, "/admin", json!(["staff"]), &[]).await;

    emit(
        &mut legacy,
        json!({"nsp": "/admin", "event": "l-adm", "args": [1]}),
    )
    .await;
    emit(
        &mut legacy,
        json!({"nsp": "/admin", "to": "staff", "event": "l-adm-staff", "args": [2]}),
    )
    .await;
    emit(&mut legacy, json!({"event": "l-marker", "args": []})).await;
    emit(
        &mut legacy,
        json!({"nsp": "/admin", "event": "l-marker", "args": []}),
    )
    .await;
    let evs = expect_events(&mut r_admin, &["l-adm", "l-adm-staff", "l-marker"], T).await;
    assert_eq!((evs[0].i64_arg(0), evs[1].i64_arg(0)), (1, 2));
    expect_events(&mut r_admin2, &["l-adm", "l-marker"], T).await;
    expect_events(&mut r_root, &["l-marker"], T).await;
    node_expect(&mut l_admin, &["l-adm", "l-adm-staff", "l-marker"], T).await;
    node_expect(&mut l_root, &["l-marker"], T).await;

    let admin = || r.io.of("/admin").expect("/admin");
    admin().emit("r-adm", &1).await.unwrap();
    admin().to("staff").emit("r-adm-staff", &2).await.unwrap();
    r.io.emit("r-marker", &()).await.unwrap();
    admin().emit("r-marker", &()).await.unwrap();
    let args = node_expect(&mut l_admin, &["r-adm", "r-adm-staff", "r-marker"], T).await;
    assert_eq!(args[..2], [json!([1]), json!([2])]);
    node_expect(&mut l_root, &["r-marker"], T).await;
    expect_events(&mut r_admin, &["r-adm", "r-adm-staff", "r-marker"], T).await;
    expect_events(&mut r_admin2, &["r-adm", "r-marker"], T).await;
    expect_events(&mut r_root, &["r-marker"], T).await;

    shutdown_all(vec![l_root, l_admin, legacy]).await;
}

// ---------------------------------------------------------------------------
// 2. Requests socket.io-redis 6.1.1 sends, answered by Rust servers

/// SOCKETS, ALL_ROOMS and REMOTE_FETCH from the legacy server: every Rust server answers
/// (6.1.1 resolves only once every subscriber of its request channel did, and fails
/// otherwise), also one that publishes on specific response channels (6.1.1 requests
/// carry no uid: the answer goes to the shared channel, the only one 6.1.1 listens to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_queries_answered_by_rust() {
    let Mixed {
        key,
        mut legacy,
        mut rust,
    } = mixed("lq", 1, RUST_TIMEOUT, &[]).await;
    let opts = rust_opts(&key, RUST_TIMEOUT).publish_on_specific_response_channel(true);
    rust.push(node_serving(opts, Parser::Json, Serve::ALL).await);
    let (r1, r2) = (&rust[0], &rust[1]);
    let la = start_client(
        "lq-la",
        &legacy.url(),
        "/",
        json!(["a"]),
        &["--auth", r#"{"data":{"user":"ada"}}"#],
    )
    .await;
    let ra = client(r1, "/", Parser::Json, &["a"], T).await;
    let rb = client(r2, "/", Parser::Json, &["b"], T).await;
    let radm = client(r2, "/admin", Parser::Json, &["staff"], T).await;
    let (la_id, ra_id, rb_id, radm_id) = (la.sid(), ra.sid(), rb.sid(), radm.sid());
    let io2 = r2.io.clone();
    r2.cluster.of("/").describe_sockets(move |id| {
        let found = id
            .parse()
            .ok()
            .and_then(|sid| io2.get_socket(sid))
            .is_some();
        SocketDetails::new()
            .data(json!({"user": format!("rust-{id}"), "found": found}))
            .handshake(json!({"auth": {"t": 1}}))
    });

    // What 6.1.1 waits for: every subscriber of its request channel.
    assert_eq!(
        cmd(&mut legacy, "numSub", json!({})).await["count"],
        json!(3)
    );

    // SOCKETS (io.in(..).allSockets()).
    let sids = |r: Value| strs(&r["sids"]);
    let r = cmd(&mut legacy, "allSockets", json!({})).await;
    assert_eq!(sids(r), sset![&la_id, ra_id, rb_id]);
    let r = cmd(&mut legacy, "allSockets", json!({"to": "a"})).await;
    assert_eq!(sids(r), sset![&la_id, ra_id]);
    let r = cmd(&mut legacy, "allSockets", json!({"to": [rb_id, "a"]})).await;
    assert_eq!(sids(r), sset![&la_id, ra_id, rb_id]);
    let r = cmd(&mut legacy, "allSockets", json!({"to": "nobody"})).await;
    assert_eq!(sids(r), sset![]);
    let r = cmd(&mut legacy, "allSockets", json!({"nsp": "/admin"})).await;
    assert_eq!(sids(r), sset![radm_id]);

    // ALL_ROOMS, socket-id rooms included.
    let r = cmd(&mut legacy, "allRooms", json!({})).await;
    assert_eq!(
        strs(&r["rooms"]),
        sset!["a", "b", &la_id, ra_id, rb_id],
        "{r}"
    );
    let r = cmd(&mut legacy, "allRooms", json!({"nsp": "/admin"})).await;
    assert_eq!(strs(&r["rooms"]), sset!["staff", radm_id], "{r}");

    // REMOTE_FETCH.
    let all = fetch(&mut legacy, json!({"withHandshake": true})).await;
    assert_eq!(ids(&all), sset![&la_id, ra_id, rb_id]);
    let s = find(&all, ra_id);
    assert_eq!(strs(&s["rooms"]), sset!["a", ra_id], "{s}");
    assert_eq!(
        (&s["data"], &s["local"]),
        (&json!({}), &json!(false)),
        "{s}"
    );
    let s = find(&all, rb_id);
    assert_eq!(strs(&s["rooms"]), sset!["b", rb_id], "{s}");
    assert_eq!(
        s["data"],
        json!({"user": format!("rust-{rb_id}"), "found": true})
    );
    assert_eq!(s["handshake"]["auth"], json!({"t": 1}), "{s}");
    assert_eq!(s["handshake"]["query"], json!({}), "{s}");
    let s = find(&all, &la_id);
    assert_eq!(
        (&s["data"], &s["local"]),
        (&json!({"user": "ada"}), &json!(true))
    );
    let got = fetch(&mut legacy, json!({"to": "a", "except": [ra_id]})).await;
    assert_eq!(ids(&got), sset![&la_id]);
    let got = fetch(&mut legacy, json!({"to": [rb_id]})).await;
    assert_eq!(ids(&got), sset![rb_id]);
    let got = fetch(&mut legacy, json!({"except": "a"})).await;
    assert_eq!(ids(&got), sset![rb_id]);
    let got = fetch(&mut legacy, json!({"nsp": "/admin", "to": "staff"})).await;
    assert_eq!(ids(&got), sset![radm_id]);

    for r in [r1, r2] {
        assert_eq!(r.cluster.pending_requests(), 0);
        assert_eq!(r.cluster.stats().malformed, 0, "{:?}", r.cluster.stats());
    }
    shutdown_all(vec![la, legacy]).await;
}

/// socket.io 4.0.2 RemoteSocket operations (broadcast to the id, `opts` forms of
/// REMOTE_JOIN/LEAVE/DISCONNECT with `rooms: [id]`) and socketsJoin / socketsLeave /
/// disconnectSockets from the legacy server apply to Rust sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_socket_operations_apply_on_rust() {
    let Mixed {
        mut legacy, rust, ..
    } = mixed("lops", 2, RUST_TIMEOUT, &[]).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let mut la = start_client("lops-la", &legacy.url(), "/", json!(["x"]), &[]).await;
    let mut ra = client(r1, "/", Parser::Json, &["x"], T).await;
    let mut rb = client(r2, "/", Parser::Json, &["x"], T).await;
    let (la_id, ra_id, rb_id) = (la.sid(), ra.sid().to_owned(), rb.sid().to_owned());

    // RemoteSocket.emit: only that socket.
    let r = cmd(
        &mut legacy,
        "remoteSocket",
        json!({"sid": &ra_id, "op": "emit", "event": "direct", "args": ["hi", {"n": 1}]}),
    )
    .await;
    assert_eq!(r["local"], json!(false), "{r}");
    emit(&mut legacy, json!({"event": "l-marker", "args": []})).await;
    let evs = expect_events(&mut ra, &["direct", "l-marker"], T).await;
    assert_eq!(evs[0].args, vec![arg(json!("hi")), arg(json!({"n": 1}))]);
    expect_events(&mut rb, &["l-marker"], T).await;
    node_expect(&mut la, &["l-marker"], T).await;

    // RemoteSocket.join / leave.
    cmd(
        &mut legacy,
        "remoteSocket",
        json!({"sid": &ra_id, "op": "join", "rooms": ["rj", "rj2"]}),
    )
    .await;
    let got = fetch(&mut legacy, json!({"to": "rj"})).await;
    assert_eq!(ids(&got), sset![&ra_id]);
    assert_eq!(strs(&got[0]["rooms"]), sset!["x", "rj", "rj2", &ra_id]);
    let rooms = rust_rooms(&ra).await;
    assert!(rooms.contains("rj") && rooms.contains("rj2"), "{rooms:?}");
    cmd(
        &mut legacy,
        "remoteSocket",
        json!({"sid": &ra_id, "op": "leave", "rooms": "rj"}),
    )
    .await;
    assert!(fetch(&mut legacy, json!({"to": "rj"})).await.is_empty());
    let rooms = rust_rooms(&ra).await;
    assert!(!rooms.contains("rj") && rooms.contains("rj2"), "{rooms:?}");

    // socketsJoin / socketsLeave with rooms and except (a Rust socket id in except).
    cmd(
        &mut legacy,
        "socketsJoin",
        json!({"to": "x", "except": [&rb_id], "rooms": ["j1", "j2"]}),
    )
    .await;
    for room in ["j1", "j2"] {
        let got = fetch(&mut legacy, json!({ "to": room })).await;
        assert_eq!(ids(&got), sset![&la_id, &ra_id], "in {room}");
    }
    assert!(rust_rooms(&ra).await.contains("j1"));
    assert!(!rust_rooms(&rb).await.contains("j1"));
    cmd(
        &mut legacy,
        "socketsLeave",
        json!({"to": "j1", "rooms": ["x"]}),
    )
    .await;
    let got = fetch(&mut legacy, json!({"to": "x"})).await;
    assert_eq!(ids(&got), sset![&rb_id]);
    assert!(!rust_rooms(&ra).await.contains("x"));
    // The Rust handle agrees.
    assert_eq!(
        set(r2.cluster.of("/").clients(&["j2"]).await.unwrap()),
        sset![&la_id, &ra_id]
    );

    // disconnectSockets (close: false) of a room spanning both sides.
    cmd(&mut legacy, "disconnectSockets", json!({"to": "j2"})).await;
    ra.expect_disconnect(T).await;
    assert_eq!(disconnected(&mut la).await, "io server disconnect");
    // RemoteSocket.disconnect(true) of a Rust socket.
    cmd(
        &mut legacy,
        "remoteSocket",
        json!({"sid": &rb_id, "op": "disconnect", "close": true}),
    )
    .await;
    rb.expect_disconnect(T).await;
    assert!(fetch(&mut legacy, json!({})).await.is_empty());
    assert!(r1.cluster.of("/").clients(&[]).await.unwrap().is_empty());

    shutdown_all(vec![la, legacy]).await;
}

/// The adapter API's single-socket requests (`remoteJoin(id, room)`, `remoteLeave`,
/// `remoteDisconnect(id, close)`: REMOTE_JOIN/LEAVE/DISCONNECT with `sid` and a
/// `requestId`): the Rust server that has the socket applies it and answers `{requestId}`,
/// the others stay silent, and an id nobody has times out on the legacy side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_single_socket_requests_on_rust() {
    let legacy_timeout = Duration::from_millis(1500);
    let Mixed {
        mut legacy, rust, ..
    } = mixed(
        "lss",
        2,
        RUST_TIMEOUT,
        &["--tap", "--requests-timeout", "1500"],
    )
    .await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let ra = client(r1, "/", Parser::Json, &["x"], T).await;
    let mut rb = client(r2, "/", Parser::Json, &["x"], T).await;
    let (ra_id, rb_id) = (ra.sid().to_owned(), rb.sid().to_owned());

    cmd(
        &mut legacy,
        "remoteJoin",
        json!({"sid": &ra_id, "room": "sj"}),
    )
    .await;
    assert!(rust_rooms(&ra).await.contains("sj"));
    cmd(
        &mut legacy,
        "remoteLeave",
        json!({"sid": &ra_id, "room": "x"}),
    )
    .await;
    assert!(!rust_rooms(&ra).await.contains("x"));
    cmd(
        &mut legacy,
        "remoteJoin",
        json!({"sid": &rb_id, "room": "sj2"}),
    )
    .await;
    assert!(rust_rooms(&rb).await.contains("sj2"));
    // Seen from the legacy server, through both Rust servers' ALL_ROOMS answers.
    let r = cmd(&mut legacy, "allRooms", json!({})).await;
    let rooms = strs(&r["rooms"]);
    assert!(rooms.contains("sj") && rooms.contains("sj2"), "{rooms:?}");

    // An id nobody has: no answer, the legacy call fails at its requestsTimeout.
    let started = Instant::now();
    let err = legacy
        .try_request(
            json!({"cmd": "remoteJoin", "sid": "AAAAAAAAAAAAAAAAAAAA", "room": "z"}),
            T,
        )
        .await
        .unwrap_err();
    assert_eq!(err, "timeout reached while waiting for remoteJoin response");
    assert!(
        started.elapsed() >= legacy_timeout,
        "{:?}",
        started.elapsed()
    );

    cmd(
        &mut legacy,
        "remoteDisconnect",
        json!({"sid": &rb_id, "close": true}),
    )
    .await;
    rb.expect_disconnect(T).await;

    // One answer per request, from the server that has the socket: every Rust server
    // answers this ALL_ROOMS after the requests above (one publisher each, in order), so
    // any other answer to them would have arrived by now.
    cmd(&mut legacy, "allRooms", json!({})).await;
    let wire = wire_lines(&mut legacy);
    let requests: Vec<&Value> = wire
        .iter()
        .filter(|w| text(&w["channel"]).contains("-request#/#"))
        .map(|w| &w["json"])
        .filter(|j| j.get("sid").is_some())
        .collect();
    assert_eq!(requests.len(), 5, "{requests:?}");
    for req in requests {
        let id = &req["requestId"];
        let answers = wire
            .iter()
            .filter(|w| {
                text(&w["channel"]).contains("-response#/#") && &w["json"]["requestId"] == id
            })
            .count();
        let want = usize::from(req["sid"] != "AAAAAAAAAAAAAAAAAAAA");
        assert_eq!(answers, want, "answers to {req}: {wire:?}");
        if want == 1 {
            let answer = wire
                .iter()
                .find(|w| &w["json"]["requestId"] == id && w["json"].get("type").is_none())
                .unwrap();
            assert_eq!(answer["json"], json!({ "requestId": id }), "{answer}");
        }
    }
    shutdown_all(vec![legacy]).await;
}

// ---------------------------------------------------------------------------
// 3. Requests Rust servers send, answered or applied by socket.io-redis 6.1.1

/// ALL_ROOMS and REMOTE_FETCH from Rust servers: the legacy server answers (it ignores
/// the `uid` our requests carry), and its sockets are in every result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_queries_answered_by_legacy() {
    let Mixed {
        mut legacy, rust, ..
    } = mixed("rq", 2, RUST_TIMEOUT, &[]).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let lurl = legacy.url();
    let la = start_client(
        "rq-la",
        &lurl,
        "/",
        json!(["a", "shared"]),
        &["--auth", r#"{"data":{"user":"ada"}}"#],
    )
    .await;
    let ladm = start_client("rq-ladm", &lurl, "/admin", json!(["staff"]), &[]).await;
    let ra = client(r1, "/", Parser::Json, &["a"], T).await;
    let rb = client(r2, "/", Parser::Json, &["r2"], T).await;
    let (la_id, ladm_id, ra_id, rb_id) = (la.sid(), ladm.sid(), ra.sid(), rb.sid());

    for r in [r1, r2] {
        for nsp in ["/", "/admin"] {
            assert_eq!(r.cluster.of(nsp).server_count().await.unwrap(), 3, "{nsp}");
        }
        let ns = r.cluster.of("/");
        // ALL_ROOMS
        let rooms = set(ns.all_rooms().await.unwrap());
        assert_eq!(rooms, sset!["a", "shared", "r2", &la_id, ra_id, rb_id]);
        let rooms = set(r.cluster.of("/admin").all_rooms().await.unwrap());
        assert_eq!(rooms, sset!["staff", &ladm_id]);
        let rooms = set(r.io.rooms().await.unwrap());
        assert_eq!(
            rooms,
            sset!["a", "shared", "r2"],
            "joined rooms, no socket ids"
        );
        // REMOTE_FETCH
        let all = ns.fetch_sockets(&[], &[]).await.unwrap();
        assert_eq!(set(all.iter().map(|s| &s.id)), sset![&la_id, ra_id, rb_id]);
        let l = all.iter().find(|s| s.id == la_id).unwrap();
        assert_eq!(set(&l.rooms), sset!["a", "shared", &la_id]);
        assert_eq!(l.data, json!({"user": "ada"}));
        assert_eq!(l.handshake["auth"], json!({"data": {"user": "ada"}}));
        assert!(l.handshake["issued"].is_u64(), "{}", l.handshake);
        let got = ns.fetch_sockets(&["a"], &[ra_id]).await.unwrap();
        assert_eq!(set(got.iter().map(|s| &s.id)), sset![&la_id]);
        assert_eq!(set(ns.clients(&["shared"]).await.unwrap()), sset![&la_id]);
        assert_eq!(
            set(ns.clients(&[la_id.as_str()]).await.unwrap()),
            sset![&la_id]
        );
        assert_eq!(
            set(ns.client_rooms(&la_id).await.unwrap()),
            sset!["a", "shared", &la_id]
        );
        assert!(matches!(
            ns.client_rooms("AAAAAAAAAAAAAAAAAAAA").await,
            Err(Error::SocketNotFound(_))
        ));
        // socketioxide's API: every socket, the legacy one under its stand-in `Sid` (and
        // reachable through it), and the rooms of a selection through REMOTE_FETCH.
        let got = r.io.fetch_sockets().await.unwrap();
        let stand_in = ns.sid_for(&la_id);
        assert_eq!(
            set(got.iter().map(|s| s.data().id)),
            sset![ra_id, rb_id, stand_in]
        );
        let legacy_socket = got.iter().find(|s| s.data().id == stand_in).unwrap();
        assert_eq!(
            set(legacy_socket.rooms().await.unwrap()),
            sset!["a", "shared"]
        );
        let rooms = set(r.io.to("shared").rooms().await.unwrap());
        assert!(rooms.contains("a") && !rooms.contains("r2"), "{rooms:?}");
        assert_eq!(r.cluster.pending_requests(), 0);
    }
    // And the legacy server counts the Rust servers.
    assert_eq!(
        cmd(&mut legacy, "numSub", json!({"nsp": "/admin"})).await["count"],
        json!(3)
    );

    shutdown_all(vec![la, ladm, legacy]).await;
}

/// `io.within(..).join/leave/disconnect` and the handle's `remote_join/leave/disconnect`
/// (REMOTE_FETCH to find the socket, then the `opts` form with our uid) apply to legacy
/// sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_socket_operations_apply_on_legacy() {
    let Mixed {
        mut legacy, rust, ..
    } = mixed("rops", 1, RUST_TIMEOUT, &[]).await;
    let r1 = &rust[0];
    let lurl = legacy.url();
    let mut la = start_client("rops-la", &lurl, "/", json!(["a"]), &[]).await;
    let mut lb = start_client("rops-lb", &lurl, "/", json!(["b"]), &[]).await;
    let mut ra = client(r1, "/", Parser::Json, &["a"], T).await;
    let (la_id, lb_id) = (la.sid(), lb.sid());
    let ns = r1.cluster.of("/");
    let local_rooms = async |legacy: &mut NodeProcess| -> Vec<(String, BTreeSet<String>)> {
        let r = cmd(legacy, "localRooms", json!({})).await;
        r["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (text(&e["room"]), strs(&e["sids"])))
            .collect()
    };
    let room_of = |rooms: &[(String, BTreeSet<String>)], name: &str| {
        rooms
            .iter()
            .find(|(r, _)| r == name)
            .map(|(_, s)| s.clone())
    };

    r1.io.within("a").join(["j1", "j2"]).await.unwrap();
    assert_eq!(
        set(ns.client_rooms(&la_id).await.unwrap()),
        sset!["a", "j1", "j2", &la_id]
    );
    let rooms = local_rooms(&mut legacy).await;
    assert_eq!(room_of(&rooms, "j1"), Some(sset![&la_id]), "{rooms:?}");
    assert!(rust_rooms(&ra).await.contains("j2"));

    r1.io.within("j1").leave("a").await.unwrap();
    assert!(ns.clients(&["a"]).await.unwrap().is_empty());
    assert_eq!(room_of(&local_rooms(&mut legacy).await, "a"), None);

    r1.io.except("j1").join("outside").await.unwrap();
    assert_eq!(set(ns.clients(&["outside"]).await.unwrap()), sset![&lb_id]);
    assert_eq!(
        room_of(&local_rooms(&mut legacy).await, "outside"),
        Some(sset![&lb_id])
    );

    // The handle, by legacy socket id.
    ns.remote_join(&lb_id, "rj").await.unwrap();
    assert_eq!(
        room_of(&local_rooms(&mut legacy).await, "rj"),
        Some(sset![&lb_id])
    );
    ns.remote_leave(&lb_id, "b").await.unwrap();
    assert_eq!(
        set(ns.client_rooms(&lb_id).await.unwrap()),
        sset!["outside", "rj", &lb_id]
    );
    assert!(matches!(
        ns.remote_join("AAAAAAAAAAAAAAAAAAAA", "x").await,
        Err(Error::SocketNotFound(_))
    ));

    // disconnect (close: false), then remote_disconnect(close: true).
    r1.io.within("j2").disconnect().await.unwrap();
    assert_eq!(disconnected(&mut la).await, "io server disconnect");
    ra.expect_disconnect(T).await;
    ns.remote_disconnect(&lb_id, true).await.unwrap();
    assert_eq!(disconnected(&mut lb).await, "io server disconnect");
    assert!(ns.clients(&[]).await.unwrap().is_empty());
    assert!(fetch(&mut legacy, json!({})).await.is_empty());

    shutdown_all(vec![la, lb, legacy]).await;
}

// ---------------------------------------------------------------------------
// 4. What socket.io-redis 6.1.1 does not know

/// SERVER_SIDE_EMIT (also custom requests) is ignored by 6.1.1: without ack nothing
/// happens there; with ack the Rust call waits for it and times out, keeping the other
/// servers' replies. A broadcast with acks is a msgpack BROADCAST request, and the other
/// Rust server's client acks are msgpack BROADCAST_ACK replies on the shared response
/// channel: 6.1.1 parses both as JSON, fails, and emits an adapter "error" for each (here
/// listened to: it goes on working); its clients get nothing, and the Rust stream ends at
/// the ack timeout with the Rust clients' acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_requests_unknown_to_legacy() {
    let timeout = Duration::from_secs(2);
    let Mixed {
        mut legacy, rust, ..
    } = mixed("unk", 2, timeout, &["--tap"]).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let mut la = start_client("unk-la", &legacy.url(), "/", json!([]), &[]).await;
    let mut ra = client(r1, "/", Parser::Json, &[], T).await;
    let mut rb = client(r2, "/", Parser::Json, &[], T).await;
    ra.set_auto_ack(Some(AutoAck::With(vec![arg(json!("ra"))])));
    rb.set_auto_ack(Some(AutoAck::With(vec![arg(json!("rb"))])));
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Vec<Value>)>();
    for (i, r) in rust.iter().enumerate() {
        let ns = r.cluster.of("/");
        let tx = tx.clone();
        ns.on_server_side("sse", move |ev| {
            ev.ack(format!("R{}", i + 1));
            tx.send((
                ev.event.clone(),
                ev.args.iter().map(common::to_json).collect(),
            ))
            .unwrap();
        });
        ns.on_custom_request(move |_| async move { rmpv::Value::from(format!("R{}", i + 1)) });
    }
    let ns = r1.cluster.of("/");

    // Without ack: R2 gets it, the legacy server receives it (valid JSON) and ignores it.
    ns.server_side_emit("sse", &("x", 1)).await.unwrap();
    let got = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(got, ("sse".to_owned(), vec![json!("x"), json!(1)]));

    // With ack: R2 answers, the legacy server is waited for until the timeout.
    let started = Instant::now();
    let err = ns.server_side_emit_with_ack("sse", &()).await.unwrap_err();
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    match &err {
        Error::Timeout {
            operation: "serverSideEmit",
            expected: 2,
            received: 1,
            partial: Partial::Replies(replies),
            ..
        } => assert_eq!(replies, &vec![rmpv::Value::from("R2")]),
        other => panic!("expected a timeout with R2's reply, got {other:?}"),
    }
    tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    // A custom request travels the same way.
    let started = Instant::now();
    let err = ns.custom_request(&"q").await.unwrap_err();
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    match &err {
        Error::Timeout {
            expected: 2,
            received: 1,
            partial: Partial::Replies(replies),
            ..
        } => assert_eq!(
            replies,
            &vec![rmpv::Value::from("R1"), rmpv::Value::from("R2")]
        ),
        other => panic!("expected a timeout with R1's and R2's replies, got {other:?}"),
    }
    // Nothing of that upset the legacy server (all JSON): ordered before this answer.
    assert!(ns.all_rooms().await.is_ok());
    let wire = legacy.drain_events();
    assert_eq!(adapter_errors(&wire), Vec::<Value>::new(), "{wire:?}");
    let sse: Vec<&Value> = wire
        .iter()
        .filter_map(|v| v.get("wire"))
        .filter(|w| text(&w["channel"]).contains("-request#") && w["json"]["type"] == 6)
        .collect();
    assert_eq!(sse.len(), 3, "{sse:?}"); // no ack, with ack, custom request
    assert_eq!(sse[0]["json"]["data"], json!(["sse", "x", 1]));
    assert!(sse[1]["json"]["requestId"].is_string());
    assert_eq!(sse[2]["json"]["data"], json!([CUSTOM_REQUEST_EVENT, "q"]));

    // Broadcast with acks from R1.
    let started = Instant::now();
    let stream = r1
        .io
        .timeout(timeout)
        .emit_with_ack::<_, Value>("ask", &"q")
        .await
        .unwrap();
    let acks: BTreeSet<String> = stream
        .map(|(_, res)| {
            res.map(|v| text(&v))
                .unwrap_or_else(|e| format!("error: {e}"))
        })
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert_eq!(acks, sset!["ra", "rb"]);
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_secs(3),
        "the stream waited for the legacy server's client count until the timeout: {elapsed:?}"
    );
    ra.recv_event_named("ask", T).await;
    rb.recv_event_named("ask", T).await;
    // The legacy client got nothing (the marker comes first), the legacy server goes on.
    emit(&mut legacy, json!({"event": "l-marker", "args": []})).await;
    node_expect(&mut la, &["l-marker"], T).await;
    expect_events(&mut ra, &["l-marker"], T).await;
    let r = cmd(&mut legacy, "allRooms", json!({})).await;
    assert!(strs(&r["rooms"]).contains(ra.sid()), "{r}");
    // What it got: the BROADCAST request and R2's BROADCAST_ACK, neither JSON, each an
    // adapter error; R2's client count (JSON) was ignored.
    let events = legacy.drain_events();
    let not_json: Vec<String> = events
        .iter()
        .filter_map(|v| v.get("wire"))
        .filter(|w| w["json"].is_null())
        .map(|w| {
            format!(
                "{} {}",
                text(&w["channel"]).split('#').next().unwrap(),
                w["firstByte"]
            )
        })
        .collect();
    let key_req = format!("{}-request", legacy.ready_info()["key"].as_str().unwrap());
    let key_res = format!("{}-response", legacy.ready_info()["key"].as_str().unwrap());
    // 0x85: msgpack map of 5 {uid, requestId, type: 7, packet, opts}; 0x84: {type: 9,
    // requestId, packet, sid}.
    assert_eq!(
        not_json,
        vec![format!("{key_req} 133"), format!("{key_res} 132")]
    );
    let errors = adapter_errors(&events);
    assert_eq!(errors.len(), 2, "{events:?}");
    for e in &errors {
        assert_eq!(e["nsp"], json!("/"), "{e}");
        assert!(text(&e["message"]).contains("JSON"), "{e}");
    }
    assert!(
        events
            .iter()
            .filter_map(|v| v.get("wire"))
            .any(|w| w["json"]["type"] == 8 && w["json"]["clientCount"] == 1),
        "{events:?}"
    );

    shutdown_all(vec![la, legacy]).await;
}

/// The same broadcast with acks, to a legacy server that does not listen to its adapter's
/// "error" events (a plain application): the process ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_with_ack_ends_a_plain_legacy_server() {
    let timeout = Duration::from_secs(1);
    let Mixed {
        mut legacy, rust, ..
    } = mixed("plain", 1, timeout, &["--plain-errors"]).await;
    let r1 = &rust[0];
    let ns = r1.cluster.of("/");
    assert_eq!(ns.server_count().await.unwrap(), 2);
    // Anything JSON is fine.
    ns.server_side_emit("sse", &()).await.unwrap();
    assert_eq!(set(ns.all_rooms().await.unwrap()), sset![]);

    let stream = r1
        .io
        .timeout(timeout)
        .emit_with_ack::<_, Value>("ask", &())
        .await
        .unwrap();
    assert_eq!(stream.count().await, 0);
    let status = legacy
        .wait_exit(T)
        .await
        .expect("the legacy server is still running");
    assert_eq!(status.code(), Some(1), "{status:?}");
    // Redis dropped its subscriptions with its connections.
    let started = Instant::now();
    while ns.server_count().await.unwrap() != 1 {
        assert!(
            started.elapsed() < T,
            "the dead legacy server is still counted"
        );
        tokio::task::yield_now().await;
    }
}
