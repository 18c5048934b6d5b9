//! Mixed clusters: a Node socket.io 4.8.4 server on `@socket.io/redis-adapter` 8.3.0 and
//! a socketioxide server on `ClusterAdapter`, sharing one `redis-server` and one key
//! prefix, are ONE cluster for broadcasts, in both directions, with clients on the other
//! side. The Node emitters (`@socket.io/redis-emitter` 5.1.0, `socket.io-emitter` 3.2.0)
//! reach Rust clients.
//!
//! Absence is always proven with a marker emitted afterwards from the same origin (one
//! publisher connection, so Redis keeps the order), and the clients' event sequences are
//! checked strictly: every event a client receives is named in the expected sequence.
//!
//! Requires `redis-server`, Node.js 20 and `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support as common;

use std::time::Duration;

use bytes::Bytes;
use common::cluster::{
    self, amap, client, expect_events, fresh_node_server, node_expect, node_with, shared_opts,
    shutdown_all,
};
use common::node::{self as nd, NodeProcess, start_client, start_emitter, u8array, undefined};
use common::{Arg, Parser, arg, bin};
use serde::Serialize;
use serde_json::{Value, json};

/// Bound of one wait (a Rust or a Node client event, a Node command).
const T: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Node side

/// One Node server (`server.js`) and one Rust server on the shared redis-server, with a
/// fresh key prefix.
struct Mixed {
    key: String,
    node: NodeProcess,
    rust: cluster::Node,
}

async fn mixed(name: &str, parser: Parser) -> Mixed {
    let (node, key) = fresh_node_server(&format!("{name}-N"), "interop").await;
    let rust = node_with(shared_opts(&key), parser).await;
    Mixed { key, node, rust }
}

/// `emit` on the Node server (`fields` without `cmd`); replies once Redis delivered it.
async fn node_emit(node: &mut NodeProcess, mut fields: Value) {
    fields["cmd"] = json!("emit");
    node.request(fields, T).await;
}

// ---------------------------------------------------------------------------
// 1. io.emit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_to_all_both_directions() {
    let Mixed { mut node, rust, .. } = mixed("all", Parser::Json).await;
    let mut rc = client(&rust, "/", Parser::Json, &[], T).await;
    let mut nc = start_client("all-nc", &node.url(), "/", json!([]), &[]).await;

    // Node io.emit -> Rust client, exactly once.
    node_emit(
        &mut node,
        json!({"event": "from-node", "args": ["hello", 1, 1.5, {"a": [1, "ü", null, true]}]}),
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker", "args": []})).await;
    let evs = expect_events(&mut rc, &["from-node", "n-marker"], T).await;
    assert_eq!(evs[0].json(0), json!("hello"));
    assert_eq!(evs[0].json(1), json!(1));
    assert_eq!(evs[0].json(2), json!(1.5));
    assert_eq!(evs[0].json(3), json!({"a": [1, "ü", null, true]}));
    assert_eq!(evs[0].args.len(), 4);
    node_expect(&mut nc, &["from-node", "n-marker"], T).await;

    // notepack's size classes (uint64/int64, float64, str8/str16, array16, map16) and
    // the volatile / compress / local flags.
    let long = "x".repeat(300);
    let many: Vec<i64> = (0..20).collect();
    let map16: serde_json::Map<String, Value> =
        (0..20).map(|i| (format!("k{i}"), json!(i))).collect();
    let values = json!([
        4294967296u64,
        -4294967296i64,
        -1,
        -200,
        0.1,
        "ü€𝄞",
        "y".repeat(40),
        long,
        many,
        map16,
        [[], {}, [null]],
    ]);
    node_emit(
        &mut node,
        json!({"event": "n-values", "args": values.clone()}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"compress": false, "event": "n-compress", "args": [1]}),
    )
    .await;
    // `local`: nothing is published, the Rust client must not get it
    node_emit(
        &mut node,
        json!({"local": true, "event": "n-local", "args": []}),
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker2", "args": []})).await;
    let evs = expect_events(&mut rc, &["n-values", "n-compress", "n-marker2"], T).await;
    let got: Vec<Value> = (0..evs[0].args.len()).map(|i| evs[0].json(i)).collect();
    assert_eq!(Value::Array(got), values);
    node_expect(
        &mut nc,
        &["n-values", "n-compress", "n-local", "n-marker2"],
        T,
    )
    .await;
    // Volatile packets bypass the ordered per-socket queue on both sides (socketioxide:
    // a latest-value slot; socket.io: dropped while the transport is busy), so a
    // volatile event is sent alone, to idle clients, and awaited before anything else.
    node_emit(
        &mut node,
        json!({"volatile": true, "event": "n-volatile", "args": [1]}),
    )
    .await;
    assert_eq!(
        expect_events(&mut rc, &["n-volatile"], T).await[0].i64_arg(0),
        1
    );
    node_expect(&mut nc, &["n-volatile"], T).await;

    // Rust io.emit -> Node client, exactly once.
    rust.io
        .emit(
            "from-rust",
            &("world", 2, 2.5, json!({"b": ["é", null, false]})),
        )
        .await
        .unwrap();
    rust.io.emit("r-marker", &()).await.unwrap();
    let args = node_expect(&mut nc, &["from-rust", "r-marker"], T).await;
    assert_eq!(args[0], json!(["world", 2, 2.5, {"b": ["é", null, false]}]));
    // socketioxide sends `&()` as one `null` argument (to its local clients as well).
    assert_eq!(args[1], json!([null]));
    expect_events(&mut rc, &["from-rust", "r-marker"], T).await;

    // Rust values, flags, and `local()` (not published).
    rust.io.emit("r-values", &values).await.unwrap();
    rust.io
        .emit(
            "r-values-spread",
            &(4294967296u64, -4294967296i64, 0.1, "ü€𝄞", &long_string()),
        )
        .await
        .unwrap();
    rust.io.local().emit("r-local", &2).await.unwrap();
    rust.io.emit("r-marker2", &()).await.unwrap();
    let args = node_expect(&mut nc, &["r-values", "r-values-spread", "r-marker2"], T).await;
    assert_eq!(args[0], json!([values]));
    assert_eq!(
        args[1],
        json!([4294967296u64, -4294967296i64, 0.1, "ü€𝄞", long_string()])
    );
    expect_events(
        &mut rc,
        &["r-values", "r-values-spread", "r-local", "r-marker2"],
        T,
    )
    .await;
    // volatile alone (see above)
    rust.io.volatile().emit("r-volatile", &3).await.unwrap();
    assert_eq!(
        node_expect(&mut nc, &["r-volatile"], T).await[0],
        json!([3])
    );
    expect_events(&mut rc, &["r-volatile"], T).await;

    shutdown_all(vec![nc, node]).await;
}

fn long_string() -> String {
    "z".repeat(70_000) // str32
}

// ---------------------------------------------------------------------------
// 2. to(room), to([r1, r2]), except(room)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_except_both_directions() {
    let Mixed { mut node, rust, .. } = mixed("rooms", Parser::Json).await;
    let p = Parser::Json;
    let mut ra = client(&rust, "/", p, &["a"], T).await;
    let mut rab = client(&rust, "/", p, &["a", "b"], T).await;
    let mut rb = client(&rust, "/", p, &["b"], T).await;
    let mut rnone = client(&rust, "/", p, &[], T).await;
    let nurl = node.url();
    let mut na = start_client("rooms-na", &nurl, "/", json!(["a"]), &[]).await;
    let mut nab = start_client("rooms-nab", &nurl, "/", json!(["a", "b"]), &[]).await;
    let mut nb = start_client("rooms-nb", &nurl, "/", json!(["b"]), &[]).await;
    let mut nnone = start_client("rooms-nnone", &nurl, "/", json!([]), &[]).await;

    // Node origin.
    node_emit(
        &mut node,
        json!({"to": "a", "event": "n-to-a", "args": [1]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"to": ["a", "b"], "event": "n-to-ab", "args": [2]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"except": "b", "event": "n-except-b", "args": [3]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"to": "a", "except": "b", "event": "n-a-not-b", "args": [4]}),
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker", "args": []})).await;

    let seq_a = ["n-to-a", "n-to-ab", "n-except-b", "n-a-not-b", "n-marker"];
    let seq_ab = ["n-to-a", "n-to-ab", "n-marker"];
    let seq_b = ["n-to-ab", "n-marker"];
    let seq_none = ["n-except-b", "n-marker"];
    let evs = expect_events(&mut ra, &seq_a, T).await;
    let got: Vec<i64> = evs[..4].iter().map(|e| e.i64_arg(0)).collect();
    assert_eq!(got, vec![1, 2, 3, 4]);
    expect_events(&mut rab, &seq_ab, T).await; // in both rooms: once
    expect_events(&mut rb, &seq_b, T).await;
    expect_events(&mut rnone, &seq_none, T).await;
    node_expect(&mut na, &seq_a, T).await;
    node_expect(&mut nab, &seq_ab, T).await;
    node_expect(&mut nb, &seq_b, T).await;
    node_expect(&mut nnone, &seq_none, T).await;

    // Rust origin.
    let io = &rust.io;
    io.to("a").emit("r-to-a", &1).await.unwrap();
    io.to(["a", "b"]).emit("r-to-ab", &2).await.unwrap();
    io.except("b").emit("r-except-b", &3).await.unwrap();
    io.to("a").except("b").emit("r-a-not-b", &4).await.unwrap();
    io.emit("r-marker", &()).await.unwrap();

    let seq_a = ["r-to-a", "r-to-ab", "r-except-b", "r-a-not-b", "r-marker"];
    let seq_ab = ["r-to-a", "r-to-ab", "r-marker"];
    let seq_b = ["r-to-ab", "r-marker"];
    let seq_none = ["r-except-b", "r-marker"];
    let args = node_expect(&mut na, &seq_a, T).await;
    // (`&()` is one `null` argument in socketioxide)
    assert_eq!(
        args,
        vec![
            json!([1]),
            json!([2]),
            json!([3]),
            json!([4]),
            json!([null])
        ]
    );
    node_expect(&mut nab, &seq_ab, T).await; // in both rooms: once
    node_expect(&mut nb, &seq_b, T).await;
    node_expect(&mut nnone, &seq_none, T).await;
    expect_events(&mut ra, &seq_a, T).await;
    expect_events(&mut rab, &seq_ab, T).await;
    expect_events(&mut rb, &seq_b, T).await;
    expect_events(&mut rnone, &seq_none, T).await;

    shutdown_all(vec![na, nab, nb, nnone, node]).await;
}

/// Rooms with a member on one side only, room names with `#` (the channel is
/// `P#/#h#x#`) or non-ASCII characters, and leaving a room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_rooms_and_leave_both_directions() {
    let Mixed { mut node, rust, .. } = mixed("odd", Parser::Json).await;
    let p = Parser::Json;
    let mut r = client(&rust, "/", p, &["only-rust", "h#x", "ü-room", "tmp"], T).await;
    let mut n = start_client(
        "odd-n",
        &node.url(),
        "/",
        json!(["only-node", "h#x", "ü-room", "tmp"]),
        &[],
    )
    .await;

    node_emit(
        &mut node,
        json!({"to": "only-rust", "event": "n1", "args": []}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"to": "only-node", "event": "n2", "args": []}),
    )
    .await;
    node_emit(&mut node, json!({"to": "h#x", "event": "n3", "args": []})).await;
    node_emit(
        &mut node,
        json!({"to": "ü-room", "event": "n4", "args": []}),
    )
    .await;
    node_emit(&mut node, json!({"to": "h", "event": "n5", "args": []})).await;
    node_emit(
        &mut node,
        json!({"to": ["only-rust", "only-node"], "except": "h#x", "event": "n6", "args": []}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"except": "ü-room", "event": "n7", "args": []}),
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker", "args": []})).await;
    expect_events(&mut r, &["n1", "n3", "n4", "n-marker"], T).await;
    node_expect(&mut n, &["n2", "n3", "n4", "n-marker"], T).await;

    let io = &rust.io;
    io.to("only-node").emit("r1", &()).await.unwrap();
    io.to("only-rust").emit("r2", &()).await.unwrap();
    io.to("h#x").emit("r3", &()).await.unwrap();
    io.to("ü-room").emit("r4", &()).await.unwrap();
    io.to("h").emit("r5", &()).await.unwrap();
    io.to(["only-rust", "only-node"])
        .except("h#x")
        .emit("r6", &())
        .await
        .unwrap();
    io.except("ü-room").emit("r7", &()).await.unwrap();
    io.emit("r-marker", &()).await.unwrap();
    node_expect(&mut n, &["r1", "r3", "r4", "r-marker"], T).await;
    expect_events(&mut r, &["r2", "r3", "r4", "r-marker"], T).await;

    // Both clients leave "tmp": neither gets what is sent to it afterwards.
    let ack = r.emit_with_ack("leave", vec![json!("tmp")], T).await;
    assert_eq!(ack, vec![arg(json!("ok"))]);
    let reply = n
        .request(json!({"cmd": "leave", "rooms": ["tmp"]}), T)
        .await;
    assert_eq!(reply["reply"], json!("ok"), "{reply}");
    node_emit(
        &mut node,
        json!({"to": "tmp", "event": "n-tmp", "args": []}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"to": ["tmp", "x"], "event": "n-tmp2", "args": []}),
    )
    .await;
    io.to("tmp").emit("r-tmp", &()).await.unwrap();
    node_emit(&mut node, json!({"event": "n-marker2", "args": []})).await;
    // The Rust server may not have read n-marker2 yet: wait for it before r-marker2,
    // which goes to the local client at once.
    expect_events(&mut r, &["n-marker2"], T).await;
    io.emit("r-marker2", &()).await.unwrap();
    expect_events(&mut r, &["r-marker2"], T).await;
    node_expect(&mut n, &["n-marker2", "r-marker2"], T).await;

    shutdown_all(vec![n, node]).await;
}

// ---------------------------------------------------------------------------
// 3. binary

#[derive(Serialize)]
struct WithBytes {
    b: Bytes,
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_both_directions() {
    let Mixed { mut node, rust, .. } = mixed("bin", Parser::Json).await;
    let mut rc = client(&rust, "/", Parser::Json, &[], T).await;
    let mut nc = start_client("bin-nc", &node.url(), "/", json!([]), &[]).await;
    // socket.io-client on the Rust server: Node binary re-encoded by socketioxide.
    let mut nc_on_rust = start_client("bin-nc-on-rust", &rust.url(), "/", json!([]), &[]).await;

    let big = cluster::big_binary(); // bin32

    // Rust -> Node client: a Buffer with the same bytes.
    cluster::emit_binary_set(&rust.io, &big).await;
    let args = node_expect(&mut nc, &["r-bin", "r-marker"], T).await;
    cluster::assert_binary_set(&args[0], &big);
    node_expect(&mut nc_on_rust, &["r-bin", "r-marker"], T).await;
    expect_events(&mut rc, &["r-bin", "r-marker"], T).await;

    // Node -> Rust client: binary (top level, nested, in an array, big).
    node_emit(
        &mut node,
        json!({"event": "n-bin", "args": [
            nd::bin(&[1, 2, 3]),
            "t",
            {"nested": nd::bin(&[4]), "arr": [nd::bin(&[5, 6]), 1]},
            nd::bin(&big),
            u8array(&[7, 8]),
        ]}),
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker", "args": []})).await;
    let evs = expect_events(&mut rc, &["n-bin", "n-marker"], T).await;
    assert_eq!(
        evs[0].args,
        vec![
            bin([1, 2, 3]),
            arg(json!("t")),
            amap(vec![
                ("nested", bin([4])),
                ("arr", Arg::Array(vec![bin([5, 6]), Arg::from(1)])),
            ]),
            bin(&big),
            bin([7, 8]),
        ]
    );
    let args = node_expect(&mut nc_on_rust, &["n-bin", "n-marker"], T).await;
    assert_eq!(
        args[0],
        json!([
            nd::bin(&[1, 2, 3]),
            "t",
            {"nested": nd::bin(&[4]), "arr": [nd::bin(&[5, 6]), 1]},
            nd::bin(&big),
            nd::bin(&[7, 8]),
        ])
    );
    node_expect(&mut nc, &["n-bin", "n-marker"], T).await;

    shutdown_all(vec![nc, nc_on_rust, node]).await;
}

// ---------------------------------------------------------------------------
// 4. socket.broadcast

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_broadcast_both_directions() {
    let Mixed { mut node, rust, .. } = mixed("sbc", Parser::Json).await;
    let p = Parser::Json;
    let nurl = node.url();
    let mut n_sender = start_client("sbc-nsender", &nurl, "/", json!(["r"]), &[]).await;
    let mut n_peer = start_client("sbc-npeer", &nurl, "/", json!(["r"]), &[]).await;
    let mut r_sender = client(&rust, "/", p, &["r"], T).await;
    let mut r_peer = client(&rust, "/", p, &["r"], T).await;

    // socket.broadcast.emit from a Node socket reaches the Rust clients.
    node.request(
        json!({"cmd": "broadcast", "sid": n_sender.sid(), "event": "n-bc", "args": ["x"]}),
        T,
    )
    .await;
    node.request(
        json!({"cmd": "broadcast", "sid": n_sender.sid(), "to": "r", "event": "n-bc-r", "args": ["y"]}),
        T,
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker", "args": []})).await;
    for c in [&mut r_sender, &mut r_peer] {
        let evs = expect_events(c, &["n-bc", "n-bc-r", "n-marker"], T).await;
        assert_eq!(evs[0].str_arg(0), "x");
        assert_eq!(evs[1].str_arg(0), "y");
    }
    node_expect(&mut n_peer, &["n-bc", "n-bc-r", "n-marker"], T).await;
    node_expect(&mut n_sender, &["n-marker"], T).await;

    // socket.broadcast() from a Rust socket reaches the Node clients, not the sender.
    let sock = rust
        .io
        .get_socket(r_sender.sid().parse().unwrap())
        .expect("rust socket");
    sock.broadcast().emit("r-bc", &"x").await.unwrap();
    sock.to("r").emit("r-bc-r", &"y").await.unwrap();
    rust.io.emit("r-marker", &()).await.unwrap();
    for c in [&mut n_sender, &mut n_peer] {
        let args = node_expect(c, &["r-bc", "r-bc-r", "r-marker"], T).await;
        assert_eq!(args[0], json!(["x"]));
        assert_eq!(args[1], json!(["y"]));
    }
    expect_events(&mut r_peer, &["r-bc", "r-bc-r", "r-marker"], T).await;
    expect_events(&mut r_sender, &["r-marker"], T).await;

    shutdown_all(vec![n_sender, n_peer, node]).await;
}

// ---------------------------------------------------------------------------
// 5. /admin

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_namespace_both_directions() {
    let Mixed { mut node, rust, .. } = mixed("adm", Parser::Json).await;
    let p = Parser::Json;
    let nurl = node.url();
    let mut r_root = client(&rust, "/", p, &["staff"], T).await;
    let mut r_admin = client(&rust, "/admin", p, &["staff"], T).await;
    let mut n_root = start_client("adm-nroot", &nurl, "/", json!(["staff"]), &[]).await;
    let mut n_admin = start_client("adm-nadmin", &nurl, "/admin", json!(["staff"]), &[]).await;

    // Node origin.
    node_emit(
        &mut node,
        json!({"nsp": "/admin", "event": "n-adm", "args": [1]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"nsp": "/admin", "to": "staff", "event": "n-adm-staff", "args": [2]}),
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker", "args": []})).await;
    node_emit(
        &mut node,
        json!({"nsp": "/admin", "event": "n-marker", "args": []}),
    )
    .await;
    let evs = expect_events(&mut r_admin, &["n-adm", "n-adm-staff", "n-marker"], T).await;
    assert_eq!(evs[0].i64_arg(0), 1);
    assert_eq!(evs[1].i64_arg(0), 2);
    expect_events(&mut r_root, &["n-marker"], T).await;
    node_expect(&mut n_admin, &["n-adm", "n-adm-staff", "n-marker"], T).await;
    node_expect(&mut n_root, &["n-marker"], T).await;

    // Rust origin.
    let admin = || rust.io.of("/admin").expect("/admin");
    admin().emit("r-adm", &1).await.unwrap();
    admin().to("staff").emit("r-adm-staff", &2).await.unwrap();
    rust.io.emit("r-marker", &()).await.unwrap();
    admin().emit("r-marker", &()).await.unwrap();
    let args = node_expect(&mut n_admin, &["r-adm", "r-adm-staff", "r-marker"], T).await;
    assert_eq!(args[0], json!([1]));
    assert_eq!(args[1], json!([2]));
    node_expect(&mut n_root, &["r-marker"], T).await;
    expect_events(&mut r_admin, &["r-adm", "r-adm-staff", "r-marker"], T).await;
    expect_events(&mut r_root, &["r-marker"], T).await;

    shutdown_all(vec![n_root, n_admin, node]).await;
}

/// A dynamic namespace (`/dyn-{id}` on Rust, `^\/dyn-\w+$` on Node), created on both
/// sides by a client connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_namespace_both_directions() {
    let Mixed { mut node, rust, .. } = mixed("dyn", Parser::Json).await;
    let p = Parser::Json;
    let mut r_dyn = client(&rust, "/dyn-abc", p, &["d"], T).await;
    let mut r_other = client(&rust, "/dyn-other", p, &[], T).await;
    let mut n_dyn = start_client("dyn-n", &node.url(), "/dyn-abc", json!(["d"]), &[]).await;

    node_emit(
        &mut node,
        json!({"nsp": "/dyn-abc", "event": "n-dyn", "args": [1]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"nsp": "/dyn-abc", "to": "d", "event": "n-dyn-d", "args": [2]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"nsp": "/dyn-other", "event": "n-marker", "args": []}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"nsp": "/dyn-abc", "event": "n-marker", "args": []}),
    )
    .await;
    expect_events(&mut r_dyn, &["n-dyn", "n-dyn-d", "n-marker"], T).await;
    expect_events(&mut r_other, &["n-marker"], T).await;
    node_expect(&mut n_dyn, &["n-dyn", "n-dyn-d", "n-marker"], T).await;

    let dyn_abc = || rust.io.of("/dyn-abc").expect("/dyn-abc");
    dyn_abc().emit("r-dyn", &1).await.unwrap();
    dyn_abc().to("d").emit("r-dyn-d", &2).await.unwrap();
    dyn_abc().emit("r-marker", &()).await.unwrap();
    node_expect(&mut n_dyn, &["r-dyn", "r-dyn-d", "r-marker"], T).await;
    expect_events(&mut r_dyn, &["r-dyn", "r-dyn-d", "r-marker"], T).await;

    shutdown_all(vec![n_dyn, node]).await;
}

// ---------------------------------------------------------------------------
// 6. socket ids as rooms

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_id_rooms_both_directions() {
    let Mixed { mut node, rust, .. } = mixed("sid", Parser::Json).await;
    let p = Parser::Json;
    let nurl = node.url();
    let mut r_target = client(&rust, "/", p, &["g"], T).await;
    let mut r_other = client(&rust, "/", p, &["g"], T).await;
    let mut n_target = start_client("sid-ntarget", &nurl, "/", json!(["g"]), &[]).await;
    let mut n_other = start_client("sid-nother", &nurl, "/", json!(["g"]), &[]).await;
    let r_sid = r_target.sid().to_owned();
    let n_sid = n_target.sid();

    // Node origin: to(<rust sid>) (a single-room channel named after the sid) and
    // except(<rust sid>).
    node_emit(
        &mut node,
        json!({"to": r_sid, "event": "n-direct", "args": [1]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"to": "g", "except": r_sid, "event": "n-not-target", "args": [2]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"except": [r_sid], "event": "n-all-but-target", "args": [3]}),
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker", "args": []})).await;
    let evs = expect_events(&mut r_target, &["n-direct", "n-marker"], T).await;
    assert_eq!(evs[0].i64_arg(0), 1);
    expect_events(
        &mut r_other,
        &["n-not-target", "n-all-but-target", "n-marker"],
        T,
    )
    .await;
    for c in [&mut n_target, &mut n_other] {
        node_expect(c, &["n-not-target", "n-all-but-target", "n-marker"], T).await;
    }

    // Rust origin: to(<node sid>), except(<node sid>).
    rust.io
        .to(n_sid.clone())
        .emit("r-direct", &1)
        .await
        .unwrap();
    rust.io
        .to("g")
        .except(n_sid.clone())
        .emit("r-not-target", &2)
        .await
        .unwrap();
    rust.io.emit("r-marker", &()).await.unwrap();
    let args = node_expect(&mut n_target, &["r-direct", "r-marker"], T).await;
    assert_eq!(args[0], json!([1]));
    node_expect(&mut n_other, &["r-not-target", "r-marker"], T).await;
    for c in [&mut r_target, &mut r_other] {
        expect_events(c, &["r-not-target", "r-marker"], T).await;
    }

    shutdown_all(vec![n_target, n_other, node]).await;
}

// ---------------------------------------------------------------------------
// 7. numeric room

/// A Node client joined the number 42; a Rust client joined "42" (numeric rooms are
/// matched by their decimal text on the Rust side). Node `io.to(42)` (channel
/// `P#/#42#`, `rooms: [42]` as a msgpack int) reaches both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_room_from_node_reaches_rust_client_in_decimal_room() {
    let Mixed {
        mut node,
        rust,
        key,
    } = mixed("num", Parser::Json).await;
    let p = Parser::Json;
    let mut r42 = client(&rust, "/", p, &["42"], T).await;
    let mut rnone = client(&rust, "/", p, &["420"], T).await;
    let mut n42 = start_client("num-n42", &node.url(), "/", json!([42]), &[]).await;

    // single room: channel P#/#42#
    node_emit(&mut node, json!({"to": 42, "event": "n-num", "args": [1]})).await;
    // two rooms (main channel), one numeric
    node_emit(
        &mut node,
        json!({"to": [42, "other"], "event": "n-num-two", "args": [2]}),
    )
    .await;
    // except a numeric room
    node_emit(
        &mut node,
        json!({"except": 42, "event": "n-not-42", "args": [3]}),
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker", "args": []})).await;

    let evs = expect_events(&mut r42, &["n-num", "n-num-two", "n-marker"], T).await;
    assert_eq!(evs[0].i64_arg(0), 1);
    assert_eq!(evs[1].i64_arg(0), 2);
    expect_events(&mut rnone, &["n-not-42", "n-marker"], T).await;
    node_expect(&mut n42, &["n-num", "n-num-two", "n-marker"], T).await;

    // The emitters can target the number 42 as well.
    let mut e = start_emitter("num-E", &common::shared().url(), &key).await;
    for lib in ["redis-emitter", "socket.io-emitter"] {
        e.request(
            json!({"lib": lib, "to": 42, "event": "e-num", "args": [lib]}),
            T,
        )
        .await;
        e.request(json!({"lib": lib, "event": "e-marker", "args": []}), T)
            .await;
        let evs = expect_events(&mut r42, &["e-num", "e-marker"], T).await;
        assert_eq!(evs[0].str_arg(0), lib);
        expect_events(&mut rnone, &["e-marker"], T).await;
        node_expect(&mut n42, &["e-num", "e-marker"], T).await;
    }

    shutdown_all(vec![e, n42, node]).await;
}

// ---------------------------------------------------------------------------
// 8. emitters

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitters_reach_rust_clients() {
    emitters_reach_rust_clients_with(Parser::Json).await;
}

async fn emitters_reach_rust_clients_with(p: Parser) {
    common::init_tracing();
    let redis_url = common::shared().url();
    let key = common::unique_key("interop-em");
    let rust = node_with(shared_opts(&key), p).await;
    let mut r1 = client(&rust, "/", p, &["r1"], T).await;
    let mut r2 = client(&rust, "/", p, &["r2"], T).await;
    let mut radmin = client(&rust, "/admin", p, &["r1"], T).await;
    let mut e = start_emitter(&format!("em-{p:?}"), &redis_url, &key).await;

    for lib in ["redis-emitter", "socket.io-emitter"] {
        let ctx = format!("{lib} / {p:?}");
        // to all, with a Buffer
        e.request(
            json!({"lib": lib, "event": "all", "args": ["s", nd::bin(&[1, 2]), {"k": nd::bin(&[3])}]}),
            T,
        )
        .await;
        // to one room
        e.request(
            json!({"lib": lib, "to": ["r1"], "event": "room", "args": [1]}),
            T,
        )
        .await;
        // two rooms
        e.request(
            json!({"lib": lib, "to": ["r1", "r2"], "event": "two", "args": [2]}),
            T,
        )
        .await;
        // Uint8Array (bin for redis-emitter, ext 0 for socket.io-emitter's notepack 2)
        // and undefined (nil, resp. fixext1 type 0 `d4 00 00`)
        e.request(
            json!({"lib": lib, "event": "typed", "args": [u8array(&[4, 5, 6]), undefined(), "after"]}),
            T,
        )
        .await;
        // /admin, then a marker on "/"
        e.request(
            json!({"lib": lib, "nsp": "/admin", "event": "adm", "args": ["a"]}),
            T,
        )
        .await;
        e.request(
            json!({"lib": lib, "nsp": "/admin", "to": "r1", "event": "adm-r1", "args": []}),
            T,
        )
        .await;
        e.request(json!({"lib": lib, "event": "marker", "args": []}), T)
            .await;
        e.request(
            json!({"lib": lib, "nsp": "/admin", "event": "marker", "args": []}),
            T,
        )
        .await;

        let evs = expect_events(&mut r1, &["all", "room", "two", "typed", "marker"], T).await;
        assert_eq!(
            evs[0].args,
            vec![arg(json!("s")), bin([1, 2]), amap(vec![("k", bin([3]))])],
            "{ctx}"
        );
        assert_eq!(evs[1].args, vec![arg(json!(1))], "{ctx}");
        assert_eq!(evs[2].args, vec![arg(json!(2))], "{ctx}");
        assert_eq!(
            evs[3].args,
            vec![bin([4, 5, 6]), Arg::Nil, arg(json!("after"))],
            "{ctx}"
        );
        let evs = expect_events(&mut r2, &["all", "two", "typed", "marker"], T).await;
        assert_eq!(
            evs[2].args,
            vec![bin([4, 5, 6]), Arg::Nil, arg(json!("after"))],
            "{ctx}"
        );
        let evs = expect_events(&mut radmin, &["adm", "adm-r1", "marker"], T).await;
        assert_eq!(evs[0].args, vec![arg(json!("a"))], "{ctx}");

        // Volatile: socketioxide sends volatile packets through a latest-value slot that
        // bypasses the ordered queue, so each one is sent alone to idle clients and
        // awaited before the next emit.
        e.request(
            json!({"lib": lib, "to": ["r1", "r2"], "volatile": true, "event": "vol-two", "args": [3]}),
            T,
        )
        .await;
        for c in [&mut r1, &mut r2] {
            let evs = expect_events(c, &["vol-two"], T).await;
            assert_eq!(evs[0].args, vec![arg(json!(3))], "{ctx}");
        }
        e.request(
            json!({"lib": lib, "volatile": true, "event": "vol-all", "args": [nd::bin(&[4])]}),
            T,
        )
        .await;
        for c in [&mut r1, &mut r2] {
            let evs = expect_events(c, &["vol-all"], T).await;
            assert_eq!(evs[0].args, vec![bin([4])], "{ctx}");
        }
    }

    // except: redis-emitter only
    e.request(
        json!({"lib": "redis-emitter", "except": ["r1"], "event": "ex", "args": []}),
        T,
    )
    .await;
    e.request(
        json!({"lib": "redis-emitter", "to": ["r1", "r2"], "except": "r2", "event": "ex2", "args": []}),
        T,
    )
    .await;
    e.request(
        json!({"lib": "redis-emitter", "event": "marker2", "args": []}),
        T,
    )
    .await;
    expect_events(&mut r1, &["ex2", "marker2"], T).await;
    expect_events(&mut r2, &["ex", "marker2"], T).await;

    assert_eq!(rust.cluster.stats().malformed, 0);
    shutdown_all(vec![e]).await;
}

// ---------------------------------------------------------------------------
// 9. msgpack parser on the Rust server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgpack_rust_server_and_node_broadcasts() {
    let p = Parser::MsgPack;
    let Mixed { mut node, rust, .. } = mixed("mp", p).await;
    let mut rc = client(&rust, "/", p, &["a"], T).await;
    let mut rnone = client(&rust, "/", p, &[], T).await;
    let mut radmin = client(&rust, "/admin", p, &[], T).await;
    let mut nc = start_client("mp-nc", &node.url(), "/", json!(["a"]), &[]).await;

    // Node -> Rust (msgpack)
    node_emit(
        &mut node,
        json!({"event": "n-all", "args": ["hello", 1, -2, 1.5, 1000000, null, {"a": [true, "ü"]}]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"to": "a", "event": "n-bin", "args": [
            nd::bin(&[1, 2, 3]),
            {"nested": nd::bin(&[4]), "arr": [nd::bin(&[]), 1]},
            u8array(&[7, 8]),
        ]}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"except": "a", "event": "n-not-a", "args": []}),
    )
    .await;
    node_emit(
        &mut node,
        json!({"nsp": "/admin", "event": "n-adm", "args": [nd::bin(&[9])]}),
    )
    .await;
    node_emit(&mut node, json!({"event": "n-marker", "args": []})).await;
    node_emit(
        &mut node,
        json!({"nsp": "/admin", "event": "n-marker", "args": []}),
    )
    .await;

    let evs = expect_events(&mut rc, &["n-all", "n-bin", "n-marker"], T).await;
    assert_eq!(
        evs[0].args,
        vec![
            arg(json!("hello")),
            arg(json!(1)),
            arg(json!(-2)),
            arg(json!(1.5)),
            arg(json!(1000000)),
            Arg::Nil,
            arg(json!({"a": [true, "ü"]})),
        ]
    );
    assert_eq!(
        evs[1].args,
        vec![
            bin([1, 2, 3]),
            amap(vec![
                ("nested", bin([4])),
                ("arr", Arg::Array(vec![bin([]), Arg::from(1)])),
            ]),
            bin([7, 8]),
        ]
    );
    expect_events(&mut rnone, &["n-all", "n-not-a", "n-marker"], T).await;
    let evs = expect_events(&mut radmin, &["n-adm", "n-marker"], T).await;
    assert_eq!(evs[0].args, vec![bin([9])]);
    node_expect(&mut nc, &["n-all", "n-bin", "n-marker"], T).await;

    // Rust (msgpack) -> Node client
    rust.io
        .to("a")
        .emit(
            "r-bin",
            &(
                Bytes::from_static(&[0, 255]),
                WithBytes {
                    b: Bytes::from_static(&[1]),
                    n: 3,
                },
                1.5,
                -7,
            ),
        )
        .await
        .unwrap();
    rust.io.emit("r-marker", &()).await.unwrap();
    let args = node_expect(&mut nc, &["r-bin", "r-marker"], T).await;
    assert_eq!(
        args[0],
        json!([nd::bin(&[0, 255]), {"b": nd::bin(&[1]), "n": 3}, 1.5, -7])
    );
    expect_events(&mut rc, &["r-bin", "r-marker"], T).await;
    expect_events(&mut rnone, &["r-marker"], T).await;

    shutdown_all(vec![nc, node]).await;
}

/// The emitters also reach the clients of a msgpack-parser Rust server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitters_reach_rust_msgpack_clients() {
    emitters_reach_rust_clients_with(Parser::MsgPack).await;
}
