//! Mixed clusters, requests: a Node socket.io 4.8.4 server on `@socket.io/redis-adapter`
//! 8.3.0 (`tests/interop/server.js`) and one or two socketioxide servers on
//! `ClusterAdapter`, sharing one `redis-server` and one key prefix, answer each other's
//! cluster-wide requests in both directions: fetchSockets, allRooms, serverCount,
//! socketsJoin/socketsLeave/disconnectSockets, serverSideEmit (with and without acks),
//! broadcasts with acks, custom requests, remote-socket operations, and a Node server
//! killed with SIGKILL.
//!
//! Determinism: nothing sleeps. What a Node command published is ordered before any later
//! command of the same Node server (one publisher connection, and every receiver handles
//! requests in arrival order), so "Node did X, then Node fetchSockets" sees X applied on
//! the Rust servers. The Rust side queues its publishes on one connection, so "Rust did X,
//! then a Rust request (client_rooms, clients, all_rooms)" is ordered the same way on the
//! Node server. Anything else (server counts after a kill) is polled with a deadline.
//!
//! Requires `redis-server`, Node.js 20 and `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support as common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{
    self, Serve, client, fresh_node_server, nodes_serving, shared_opts, shutdown_all,
};
use common::node::{NodeProcess, start_client};
use common::{AutoAck, Client, Parser, arg};
use futures_util::StreamExt;
use serde_json::{Value, json};
use socketioxide_cluster::{CUSTOM_REQUEST_EVENT, Error, SocketDetails};
use tokio::sync::mpsc;

/// Bound of one wait (a Rust or a Node client event, a Node command, a poll).
const T: Duration = Duration::from_secs(15);
/// `requests_timeout` of the Rust servers (Node keeps its default 5000 ms).
const RUST_REQUESTS_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Rust side

/// The Rust servers serve `/` and `/admin`, with socketioxide's default buffer.
const SERVE: Serve = Serve {
    admin: true,
    ..Serve::ROOT
};

/// The rooms the Rust client's own server has for it (the "rooms" test handler).
async fn rust_rooms(c: &Client) -> BTreeSet<String> {
    let ack = c.emit_with_ack("rooms", vec![], T).await;
    serde_json::from_value(common::to_json(&ack[0])).unwrap()
}

// ---------------------------------------------------------------------------
// Node side

/// One Node server (`server.js`) and `n_rust` Rust servers on the shared redis-server,
/// with a fresh key prefix.
struct Mixed {
    node: NodeProcess,
    rust: Vec<cluster::Node>,
}

async fn mixed(name: &str, n_rust: usize, rust_timeout: Duration) -> Mixed {
    let (node, key) = fresh_node_server(&format!("{name}-N"), "interop-rq").await;
    let opts = shared_opts(&key).requests_timeout(rust_timeout);
    let rust = nodes_serving(n_rust, &opts, Parser::Json, SERVE).await;
    Mixed { node, rust }
}

/// Node `fetchSockets` with `fields` (`to`, `except`, `nsp`): the `sockets` array.
async fn node_fetch(node: &mut NodeProcess, mut fields: Value) -> Vec<Value> {
    fields["cmd"] = json!("fetchSockets");
    let r = node.request(fields, T).await;
    r["sockets"]
        .as_array()
        .unwrap_or_else(|| panic!("no sockets in {r}"))
        .clone()
}

/// A Node command (`fields` without `cmd`) that must succeed; the reply.
async fn node_cmd(node: &mut NodeProcess, cmd: &str, mut fields: Value) -> Value {
    fields["cmd"] = json!(cmd);
    node.request(fields, T).await
}

/// The Node server's own rooms: room -> sids.
async fn node_local_rooms(node: &mut NodeProcess) -> BTreeMap<String, BTreeSet<String>> {
    let r = node_cmd(node, "localRooms", json!({})).await;
    r["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (text(&e["room"]), strs(&e["sids"])))
        .collect()
}

/// Waits for the `{"disconnected": reason}` line of a `client.js` process.
async fn node_client_disconnected(c: &mut NodeProcess) -> String {
    let v = c
        .next_matching_described(
            |v| v.get("disconnected").is_some(),
            T,
            "a {\"disconnected\"} line",
        )
        .await;
    text(&v["disconnected"])
}

// ---------------------------------------------------------------------------
// Small helpers

/// A set of strings from expressions of any `ToString` type (`&str`, `&String`, ...).
macro_rules! sset {
    ($($x:expr),* $(,)?) => { BTreeSet::<String>::from([$($x.to_string()),*]) };
}

fn set<I: IntoIterator<Item = S>, S: ToString>(i: I) -> BTreeSet<String> {
    i.into_iter().map(|s| s.to_string()).collect()
}

/// A JSON string as is, anything else as JSON text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON array as a set of [`text`]s.
fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(text)
        .collect()
}

/// The ids of a Node `fetchSockets` result.
fn ids(sockets: &[Value]) -> BTreeSet<String> {
    sockets.iter().map(|s| text(&s["id"])).collect()
}

fn find<'a>(sockets: &'a [Value], id: &str) -> &'a Value {
    sockets
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("socket {id} not in {sockets:?}"))
}

/// JSON values compared as a multiset of their JSON texts (order-insensitive).
fn jbag<'a, I: IntoIterator<Item = &'a Value>>(i: I) -> Vec<String> {
    let mut v: Vec<String> = i.into_iter().map(Value::to_string).collect();
    v.sort();
    v
}

fn rmpv_json(v: &rmpv::Value) -> Value {
    common::to_json(v)
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let started = Instant::now();
    loop {
        let Some(why) = check().await else { return };
        assert!(
            started.elapsed() < T,
            "{what}: still not true after {T:?} ({why})"
        );
        tokio::task::yield_now().await;
    }
}

// ---------------------------------------------------------------------------
// 1. fetchSockets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_sockets_both_directions() {
    let Mixed { mut node, rust } = mixed("fetch", 2, RUST_REQUESTS_TIMEOUT).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let nurl = node.url();
    let na = start_client(
        "fetch-na",
        &nurl,
        "/",
        json!(["a"]),
        &["--auth", r#"{"data":{"user":"alice"}}"#],
    )
    .await;
    let nab = start_client("fetch-nab", &nurl, "/", json!(["a", "b"]), &[]).await;
    let ra = client(r1, "/", Parser::Json, &["a"], T).await;
    let rab = client(r2, "/", Parser::Json, &["a", "b"], T).await;
    let rnone = client(r2, "/", Parser::Json, &[], T).await;
    let (na_id, nab_id) = (na.sid(), nab.sid());
    let (ra_id, rab_id, rnone_id) = (ra.sid(), rab.sid(), rnone.sid());
    assert_eq!(na_id.len(), 20, "Node socket ids are 20 characters");
    assert_eq!(ra_id.len(), 16, "socketioxide socket ids are 16 characters");

    // --- Node fetchSockets sees the Rust sockets.
    let all = node_fetch(&mut node, json!({})).await;
    assert_eq!(
        ids(&all),
        sset![&na_id, &nab_id, ra_id, rab_id, rnone_id],
        "{all:?}"
    );
    for (id, rooms) in [
        (ra_id, sset!["a", ra_id]),
        (rab_id, sset!["a", "b", rab_id]),
        (rnone_id, sset![rnone_id]),
    ] {
        let s = find(&all, id);
        assert_eq!(strs(&s["rooms"]), rooms, "rooms of Rust socket {s}");
        assert_eq!(s["local"], json!(false), "{s}");
        assert_eq!(s["data"], json!({}), "{s}");
    }
    let s = find(&all, &na_id);
    assert_eq!(s["local"], json!(true));
    assert_eq!(strs(&s["rooms"]), sset!["a", na_id.as_str()]);
    assert_eq!(s["data"], json!({"user": "alice"}));

    let got = node_fetch(&mut node, json!({"to": "a", "except": "b"})).await;
    assert_eq!(ids(&got), sset![na_id.as_str(), ra_id]);
    let got = node_fetch(&mut node, json!({"to": ["b"]})).await;
    assert_eq!(ids(&got), sset![nab_id.as_str(), rab_id]);
    let got = node_fetch(&mut node, json!({"except": ["a"]})).await;
    assert_eq!(ids(&got), sset![rnone_id]);
    // A Rust socket's id is a room, as in Node.
    let got = node_fetch(&mut node, json!({"to": [rnone_id, ra_id]})).await;
    assert_eq!(ids(&got), sset![rnone_id, ra_id]);
    let got = node_fetch(&mut node, json!({"to": "a", "except": [ra_id]})).await;
    assert_eq!(ids(&got), sset![&na_id, &nab_id, rab_id]);

    // --- The Rust handle sees the Node sockets (string ids), from either Rust server.
    for r in [r1, r2] {
        let ns = r.cluster.of("/");
        let all = ns.fetch_sockets(&[], &[]).await.unwrap();
        let all_ids = set(all.iter().map(|s| s.id.clone()));
        assert_eq!(all_ids, sset![&na_id, &nab_id, ra_id, rab_id, rnone_id]);
        let n = all.iter().find(|s| s.id == na_id).unwrap();
        assert_eq!(set(&n.rooms), sset!["a", na_id.as_str()]);
        assert_eq!(n.data, json!({"user": "alice"}));
        assert_eq!(n.handshake["auth"], json!({"data": {"user": "alice"}}));
        assert!(n.handshake["issued"].is_u64(), "{}", n.handshake);
        assert!(n.handshake["headers"].is_object(), "{}", n.handshake);
        let n = all.iter().find(|s| s.id == nab_id).unwrap();
        assert_eq!(set(&n.rooms), sset!["a", "b", nab_id.as_str()]);
        let x = all.iter().find(|s| s.id == rab_id).unwrap();
        assert_eq!(set(&x.rooms), sset!["a", "b", rab_id]);

        let got = ns.fetch_sockets(&["a"], &["b"]).await.unwrap();
        assert_eq!(set(got.iter().map(|s| s.id.clone())), sset![&na_id, ra_id]);
        assert_eq!(
            set(ns.clients(&["b"]).await.unwrap()),
            sset![&nab_id, rab_id]
        );
        assert_eq!(
            set(ns.clients(&[]).await.unwrap()),
            sset![&na_id, &nab_id, ra_id, rab_id, rnone_id]
        );
        // A Node socket's id is a room too.
        assert_eq!(
            set(ns.clients(&[&nab_id, rnone_id]).await.unwrap()),
            sset![&nab_id, rnone_id]
        );
        assert_eq!(
            set(ns.client_rooms(&nab_id).await.unwrap()),
            sset!["a", "b", nab_id.as_str()]
        );
        assert_eq!(
            set(ns.client_rooms(ra_id).await.unwrap()),
            sset!["a", ra_id]
        );
        assert_eq!(r.cluster.pending_requests(), 0);
    }

    // --- socketioxide's io.fetch_sockets(): every socket, Node ones under their stand-in
    // `Sid`s (tests/mixed_api.rs has the rest).
    let ns = r1.cluster.of("/");
    let (sna, snab) = (ns.sid_for(&na_id), ns.sid_for(&nab_id));
    let got = r1.io.fetch_sockets().await.unwrap();
    assert_eq!(
        set(got.iter().map(|s| s.data().id.to_string())),
        sset![ra_id, rab_id, rnone_id, sna, snab]
    );
    let got = r1.io.to("a").fetch_sockets().await.unwrap();
    assert_eq!(
        set(got.iter().map(|s| s.data().id.to_string())),
        sset![ra_id, rab_id, sna, snab]
    );
    let got = r2.io.to("a").except("b").fetch_sockets().await.unwrap();
    assert_eq!(
        set(got.iter().map(|s| s.data().id.to_string())),
        sset![ra_id, sna]
    );

    // --- A Rust server that describes its sockets: Node's fetchSockets (and the Rust
    // handle on the other Rust server) see that data and handshake.
    let io2 = r2.io.clone();
    r2.cluster.of("/").describe_sockets(move |id| {
        let Some(s) = id.parse().ok().and_then(|sid| io2.get_socket(sid)) else {
            return SocketDetails::new().data(json!({"missing": id}));
        };
        SocketDetails::new()
            .data(json!({"user": format!("rust-{}", s.id), "n": 7}))
            .handshake(json!({"url": s.req_parts().uri.path(), "auth": {"t": 1}}))
    });
    let got = node_fetch(&mut node, json!({"to": [rab_id], "withHandshake": true})).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0]["data"],
        json!({"user": format!("rust-{rab_id}"), "n": 7})
    );
    let hs = &got[0]["handshake"];
    assert_eq!(hs["url"], json!("/socket.io/"), "{hs}");
    assert_eq!(hs["auth"], json!({"t": 1}), "{hs}");
    // Fields the application left out keep the placeholder's values and types.
    assert_eq!(hs["query"], json!({}), "{hs}");
    assert_eq!(hs["secure"], json!(false), "{hs}");
    // r1 does not describe its sockets: the defaults.
    let got = node_fetch(&mut node, json!({"to": [ra_id]})).await;
    assert_eq!(got[0]["data"], json!({}), "{got:?}");
    let got = r1
        .cluster
        .of("/")
        .fetch_sockets(&[rab_id], &[])
        .await
        .unwrap();
    assert_eq!(
        got[0].data,
        json!({"user": format!("rust-{rab_id}"), "n": 7})
    );
    assert_eq!(got[0].handshake["auth"], json!({"t": 1}));

    shutdown_all(vec![na, nab, node]).await;
}

// ---------------------------------------------------------------------------
// 2. allRooms and serverCount

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_rooms_and_server_count_both_directions() {
    let Mixed { mut node, rust } = mixed("rooms", 2, RUST_REQUESTS_TIMEOUT).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let na = start_client(
        "rooms-na",
        &node.url(),
        "/",
        json!(["n-room", "shared"]),
        &[],
    )
    .await;
    let ra = client(r1, "/", Parser::Json, &["r1-room", "shared"], T).await;
    let rb = client(r2, "/", Parser::Json, &["r2-room"], T).await;
    let na_id = na.sid();
    let every = sset![
        "n-room",
        "shared",
        "r1-room",
        "r2-room",
        na_id.as_str(),
        ra.sid(),
        rb.sid(),
    ];

    // Node allRooms: its own rooms plus every Rust server's (socket-id rooms included).
    let r = node_cmd(&mut node, "allRooms", json!({})).await;
    assert_eq!(strs(&r["rooms"]), every, "{r}");

    // Rust all_rooms / io.rooms(): the Node server's rooms included.
    for r in [r1, r2] {
        let rooms = set(r.cluster.of("/").all_rooms().await.unwrap());
        assert_eq!(rooms, every);
        // socketioxide's io.rooms(): the joined rooms, without socket-id rooms (as
        // socketioxide lists them).
        let rooms = set(r.io.rooms().await.unwrap());
        assert_eq!(rooms, sset!["n-room", "shared", "r1-room", "r2-room"]);
        // A selection: the rooms of the selected sockets only (the Node one here).
        let rooms = set(r.io.to("n-room").rooms().await.unwrap());
        assert_eq!(rooms, sset!["n-room", "shared"]);
    }

    // serverCount: one Node server + two Rust servers, per namespace.
    for nsp in ["/", "/admin"] {
        let r = node_cmd(&mut node, "serverCount", json!({ "nsp": nsp })).await;
        assert_eq!(r["count"], json!(3), "Node serverCount of {nsp}");
        for r in [r1, r2] {
            assert_eq!(r.cluster.of(nsp).server_count().await.unwrap(), 3, "{nsp}");
        }
    }

    // A Rust server leaves: Node counts 2 servers and allRooms completes without it.
    r2.cluster.close().await;
    let started = Instant::now();
    loop {
        let r = node_cmd(&mut node, "serverCount", json!({})).await;
        if r["count"] == json!(2) {
            break;
        }
        assert!(
            started.elapsed() < T,
            "Node serverCount still {} {T:?} after a Rust server closed",
            r["count"]
        );
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let r = node_cmd(&mut node, "allRooms", json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let rooms = strs(&r["rooms"]);
    assert!(
        rooms.contains("r1-room") && !rooms.contains("r2-room"),
        "{rooms:?}"
    );
    assert_eq!(r1.cluster.of("/").server_count().await.unwrap(), 2);
    drop(rb);

    shutdown_all(vec![na, node]).await;
}

// ---------------------------------------------------------------------------
// 3. socketsJoin / socketsLeave / disconnectSockets

/// Node socketsJoin/socketsLeave/disconnectSockets apply to Rust sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_join_leave_disconnect_apply_on_rust_sockets() {
    let Mixed { mut node, rust } = mixed("njoin", 2, RUST_REQUESTS_TIMEOUT).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let mut na = start_client("njoin-na", &node.url(), "/", json!(["a"]), &[]).await;
    let mut ra = client(r1, "/", Parser::Json, &["a"], T).await;
    let rab = client(r2, "/", Parser::Json, &["a", "b"], T).await;
    let mut rc = client(r2, "/", Parser::Json, &[], T).await;
    let na_id = na.sid();
    let (ra_id, rab_id, rc_id) = (
        ra.sid().to_owned(),
        rab.sid().to_owned(),
        rc.sid().to_owned(),
    );

    // socketsJoin with rooms and except.
    node_cmd(
        &mut node,
        "socketsJoin",
        json!({"to": "a", "except": "b", "rooms": ["j1", "j2"]}),
    )
    .await;
    // Ordered after the join on every server (same Node publisher connection).
    for room in ["j1", "j2"] {
        let got = node_fetch(&mut node, json!({ "to": room })).await;
        assert_eq!(ids(&got), sset![&na_id, &ra_id], "in {room}");
    }
    let s = node_fetch(&mut node, json!({ "to": &ra_id })).await;
    assert_eq!(strs(&s[0]["rooms"]), sset!["a", "j1", "j2", ra_id.as_str()]);
    // The Rust server applied it before answering that fetch, so its client sees it.
    let rooms = rust_rooms(&ra).await;
    assert!(rooms.contains("j1") && rooms.contains("j2"), "{rooms:?}");
    assert!(!rust_rooms(&rab).await.contains("j1"));
    // The Rust handle agrees.
    assert_eq!(
        set(r2.cluster.of("/").clients(&["j1"]).await.unwrap()),
        sset![&na_id, &ra_id]
    );

    // socketsJoin for everyone, then socketsLeave of a selection.
    node_cmd(&mut node, "socketsJoin", json!({"rooms": "everyone"})).await;
    let got = node_fetch(&mut node, json!({"to": "everyone"})).await;
    assert_eq!(ids(&got), sset![&na_id, &ra_id, &rab_id, &rc_id]);
    node_cmd(
        &mut node,
        "socketsLeave",
        json!({"to": "j1", "rooms": ["a"]}),
    )
    .await;
    let got = node_fetch(&mut node, json!({"to": "a"})).await;
    assert_eq!(ids(&got), sset![&rab_id]);
    let rooms = rust_rooms(&ra).await;
    assert!(
        !rooms.contains("a") && rooms.contains("everyone"),
        "{rooms:?}"
    );
    // A Rust socket's id as the selection.
    node_cmd(
        &mut node,
        "socketsLeave",
        json!({"to": &rab_id, "rooms": ["everyone"]}),
    )
    .await;
    let got = node_fetch(&mut node, json!({"to": "everyone"})).await;
    assert_eq!(ids(&got), sset![&na_id, &ra_id, &rc_id]);

    // disconnectSockets (close: false) of a room spanning both sides.
    node_cmd(&mut node, "disconnectSockets", json!({"to": "j1"})).await;
    ra.expect_disconnect(T).await;
    assert_eq!(
        node_client_disconnected(&mut na).await,
        "io server disconnect"
    );
    let got = node_fetch(&mut node, json!({})).await;
    assert_eq!(ids(&got), sset![&rab_id, &rc_id]);
    // disconnectSockets (close: true) by a Rust socket id.
    node_cmd(
        &mut node,
        "disconnectSockets",
        json!({"to": [&rc_id], "close": true}),
    )
    .await;
    rc.expect_disconnect(T).await;
    let got = node_fetch(&mut node, json!({})).await;
    assert_eq!(ids(&got), sset![&rab_id]);
    assert_eq!(
        set(r1.cluster.of("/").clients(&[]).await.unwrap()),
        sset![&rab_id]
    );

    shutdown_all(vec![na, node]).await;
}

/// Rust `io.within(..).join/leave/disconnect` apply to Node sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_join_leave_disconnect_apply_on_node_sockets() {
    let Mixed { mut node, rust } = mixed("rjoin", 2, RUST_REQUESTS_TIMEOUT).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let nurl = node.url();
    let mut na = start_client("rjoin-na", &nurl, "/", json!(["a"]), &[]).await;
    let nb = start_client("rjoin-nb", &nurl, "/", json!(["b"]), &[]).await;
    let mut ra = client(r2, "/", Parser::Json, &["a"], T).await;
    let (na_id, nb_id, ra_id) = (na.sid(), nb.sid(), ra.sid().to_owned());
    let ns = r1.cluster.of("/");

    r1.io.within("a").join(["rj1", "rj2"]).await.unwrap();
    // client_rooms is a request published after the join on R1's one publisher
    // connection: every server handled the join before answering it.
    assert_eq!(
        set(ns.client_rooms(&na_id).await.unwrap()),
        sset!["a", "rj1", "rj2", na_id.as_str()]
    );
    assert_eq!(
        set(ns.client_rooms(&ra_id).await.unwrap()),
        sset!["a", "rj1", "rj2", ra_id.as_str()]
    );
    assert!(
        !ns.client_rooms(&nb_id)
            .await
            .unwrap()
            .contains(&"rj1".to_owned())
    );
    let local = node_local_rooms(&mut node).await;
    assert_eq!(local.get("rj1"), Some(&sset![&na_id]), "{local:?}");
    assert_eq!(local.get("rj2"), Some(&sset![&na_id]), "{local:?}");
    let rooms = rust_rooms(&ra).await;
    assert!(rooms.contains("rj1") && rooms.contains("rj2"), "{rooms:?}");

    r1.io.within("rj1").leave("a").await.unwrap();
    assert!(ns.clients(&["a"]).await.unwrap().is_empty());
    let local = node_local_rooms(&mut node).await;
    assert!(!local.contains_key("a"), "{local:?}");
    assert!(!rust_rooms(&ra).await.contains("a"));

    // except: only the sockets outside rj1.
    r1.io.except("rj1").join("outside").await.unwrap();
    assert_eq!(set(ns.clients(&["outside"]).await.unwrap()), sset![&nb_id]);
    assert_eq!(
        node_local_rooms(&mut node).await.get("outside"),
        Some(&sset![&nb_id])
    );

    // A Node socket's id as the selection.
    r1.io
        .within(na_id.clone())
        .join("by-node-id")
        .await
        .unwrap();
    assert_eq!(
        set(ns.clients(&["by-node-id"]).await.unwrap()),
        sset![&na_id]
    );

    // disconnect: the Node client is disconnected from the namespace (close: false).
    r1.io.within("rj2").disconnect().await.unwrap();
    assert_eq!(
        node_client_disconnected(&mut na).await,
        "io server disconnect"
    );
    ra.expect_disconnect(T).await;
    let d = node
        .next_matching_described(
            |v| v["disconnect"]["sid"] == na_id.as_str(),
            T,
            "the Node server's disconnect report",
        )
        .await;
    assert_eq!(
        d["disconnect"]["reason"],
        json!("server namespace disconnect")
    );
    assert_eq!(set(ns.clients(&[]).await.unwrap()), sset![&nb_id]);
    let r = node_cmd(&mut node, "localSockets", json!({})).await;
    assert_eq!(ids(r["sockets"].as_array().unwrap()), sset![&nb_id]);

    shutdown_all(vec![na, nb, node]).await;
}

// ---------------------------------------------------------------------------
// 4. serverSideEmit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_emit_both_directions() {
    let Mixed { mut node, rust } = mixed("sse", 2, RUST_REQUESTS_TIMEOUT).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, String, Vec<Value>, bool)>();
    for (i, r) in rust.iter().enumerate() {
        let ns = r.cluster.of("/");
        for event in ["n2r", "n2r-ack", "r2n", "r2n-ack"] {
            let tx = tx.clone();
            ns.on_server_side(event, move |ev| {
                let args: Vec<Value> = ev.args.iter().map(rmpv_json).collect();
                if ev.event.ends_with("-ack") {
                    let first: String = ev.arg(0).unwrap();
                    ev.ack(json!({ "from": format!("R{}", i + 1), "got": first }));
                }
                tx.send((i, ev.event.clone(), args, ev.wants_ack()))
                    .unwrap();
            });
        }
    }
    let mut recv = async |n: usize| {
        let mut out = Vec::new();
        for _ in 0..n {
            match tokio::time::timeout(T, rx.recv()).await {
                Ok(Some(x)) => out.push(x),
                other => panic!(
                    "server-side event not received by a Rust handler: {other:?} (got {out:?})"
                ),
            }
        }
        out.sort_by_key(|x| x.0);
        out
    };

    // --- Node -> Rust, no ack: both Rust servers' handlers, with the arguments.
    node_cmd(
        &mut node,
        "serverSideEmit",
        json!({"event": "n2r", "args": ["x", 1, {"k": [1, 2.5, null, "ü"]}]}),
    )
    .await;
    let got = recv(2).await;
    let want_args = vec![json!("x"), json!(1), json!({"k": [1, 2.5, null, "ü"]})];
    assert_eq!(
        got,
        vec![
            (0, "n2r".to_owned(), want_args.clone(), false),
            (1, "n2r".to_owned(), want_args, false)
        ]
    );

    // --- Node -> Rust, with ack: Node gets one reply per Rust server.
    let started = Instant::now();
    let r = node_cmd(
        &mut node,
        "serverSideEmit",
        json!({"event": "n2r-ack", "args": ["q"], "ack": true}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r["err"], Value::Null, "{r}");
    assert_eq!(
        jbag(r["responses"].as_array().unwrap()),
        jbag(&[
            json!({"from": "R1", "got": "q"}),
            json!({"from": "R2", "got": "q"})
        ]),
        "{r}"
    );
    let got = recv(2).await;
    assert!(got.iter().all(|x| x.1 == "n2r-ack" && x.3), "{got:?}");

    // --- Rust -> Node, no ack: server.js reports it; the other Rust server gets it too.
    r1.cluster
        .of("/")
        .server_side_emit("r2n", &("hello", 42, json!({"a": null, "b": [true]})))
        .await
        .unwrap();
    let ev = node
        .next_matching_described(
            |v| v["serverSideEvent"]["event"] == "r2n",
            T,
            "serverSideEvent r2n",
        )
        .await;
    assert_eq!(
        ev["serverSideEvent"],
        json!({"nsp": "/", "event": "r2n", "args": ["hello", 42, {"a": null, "b": [true]}], "ack": false})
    );
    let got = recv(1).await;
    assert_eq!(got[0].0, 1);
    assert_eq!(
        got[0].2,
        vec![json!("hello"), json!(42), json!({"a": null, "b": [true]})]
    );

    // --- Rust -> Node, with ack: Node's configured reply and R2's.
    node_cmd(
        &mut node,
        "config",
        json!({"serverSideAckReply": {"from": "node", "n": 7}}),
    )
    .await;
    let started = Instant::now();
    let replies = r1
        .cluster
        .of("/")
        .server_side_emit_with_ack("r2n-ack", &("ping",))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let replies: Vec<Value> = replies.iter().map(rmpv_json).collect();
    assert_eq!(
        jbag(&replies),
        jbag(&[
            json!({"from": "node", "n": 7}),
            json!({"from": "R2", "got": "ping"})
        ])
    );
    let ev = node
        .next_matching_described(
            |v| v["serverSideEvent"]["event"] == "r2n-ack",
            T,
            "serverSideEvent r2n-ack",
        )
        .await;
    assert_eq!(ev["serverSideEvent"]["args"], json!(["ping"]));
    assert_eq!(ev["serverSideEvent"]["ack"], json!(true));
    let got = recv(1).await;
    assert_eq!((got[0].0, got[0].3), (1, true));

    // From R2 as well (the ack must come back to R2, not R1).
    node_cmd(&mut node, "config", json!({"serverSideAckReply": "node-2"})).await;
    let replies = r2
        .cluster
        .of("/")
        .server_side_emit_with_ack("r2n-ack", &("pong",))
        .await
        .unwrap();
    let replies: Vec<Value> = replies.iter().map(rmpv_json).collect();
    assert_eq!(
        jbag(&replies),
        jbag(&[json!("node-2"), json!({"from": "R1", "got": "pong"})])
    );
    let got = recv(1).await;
    assert_eq!((got[0].0, got[0].1.as_str()), (0, "r2n-ack"));

    // Neither sender got its own events back (Node ignores its uid, we ignore ours).
    // Each Rust server's subscriber handles its own request before the replies to it
    // (Redis delivers the request first), and R1 handled R2's last event after its own
    // earlier ones: a self-delivered event would be in the channel by now.
    if let Ok(x) = rx.try_recv() {
        panic!("unexpected server-side event {x:?}");
    }
    node.assert_none_received(|v| {
        v["serverSideEvent"]["event"]
            .as_str()
            .is_some_and(|e| e.starts_with("n2r"))
    });
    for r in [r1, r2] {
        assert_eq!(r.cluster.pending_requests(), 0);
    }

    shutdown_all(vec![node]).await;
}

// ---------------------------------------------------------------------------
// 5. emit with ack across servers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_with_ack_both_directions() {
    let Mixed { mut node, rust } = mixed("acks", 2, RUST_REQUESTS_TIMEOUT).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let nurl = node.url();
    let mut n1 = start_client(
        "acks-n1",
        &nurl,
        "/",
        json!(["acks"]),
        &["--ack-reply", "n1-reply"],
    )
    .await;
    // No --ack-reply: client.js answers with its socket id.
    let mut n2 = start_client("acks-n2", &nurl, "/", json!([]), &[]).await;
    let mut c1 = client(r1, "/", Parser::Json, &[], T).await;
    let mut c2 = client(r2, "/", Parser::Json, &["acks"], T).await;
    c1.set_auto_ack(Some(AutoAck::With(vec![arg(json!("c1-reply"))])));
    c2.set_auto_ack(Some(AutoAck::With(vec![arg(
        json!({"from": "c2", "n": [1, 2]}),
    )])));
    let n2_id = n2.sid();

    // --- Node io.timeout(t).emit(.., cb): every client answers, Rust ones included.
    let started = Instant::now();
    let r = node_cmd(
        &mut node,
        "emitWithAck",
        json!({"timeout": 8000, "event": "ask", "args": ["q", 1]}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r["err"], Value::Null, "{r}");
    assert_eq!(
        jbag(r["responses"].as_array().unwrap()),
        jbag(&[
            json!("n1-reply"),
            json!(n2_id),
            json!("c1-reply"),
            json!({"from": "c2", "n": [1, 2]})
        ]),
        "{r}"
    );
    for c in [&mut c1, &mut c2] {
        let ev = c.recv_event_named("ask", T).await;
        assert_eq!(ev.args, vec![arg(json!("q")), arg(json!(1))]);
        assert!(ev.ack_id.is_some());
    }
    for n in [&mut n1, &mut n2] {
        let ev = n.next_client_event("ask", T).await;
        assert_eq!(ev["args"], json!(["q", 1]));
        assert_eq!(ev["ack"], json!(true));
    }

    // To a room; to a room nobody is in (every server reports 0 clients: no wait).
    let r = node_cmd(
        &mut node,
        "emitWithAck",
        json!({"to": "acks", "timeout": 8000, "event": "ask-room", "args": []}),
    )
    .await;
    assert_eq!(r["err"], Value::Null, "{r}");
    assert_eq!(
        jbag(r["responses"].as_array().unwrap()),
        jbag(&[json!("n1-reply"), json!({"from": "c2", "n": [1, 2]})])
    );
    c2.recv_event_named("ask-room", T).await;
    n1.next_client_event("ask-room", T).await;
    let started = Instant::now();
    let r = node_cmd(
        &mut node,
        "emitWithAck",
        json!({"to": "nobody", "timeout": 8000, "event": "ask-none", "args": []}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r["err"], Value::Null, "{r}");
    assert_eq!(r["responses"], json!([]));

    // --- Rust io.timeout(t).emit_with_ack: Node clients' acks arrive in the stream, which
    // ends as soon as everyone answered.
    let started = Instant::now();
    let stream = r1
        .io
        .timeout(Duration::from_secs(8))
        .emit_with_ack::<_, Value>("ask-r", &("q2",))
        .await
        .unwrap();
    let acks: Vec<Value> = stream.map(|(_, r)| r.expect("ack error")).collect().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        jbag(&acks),
        jbag(&[
            json!("n1-reply"),
            json!(n2_id),
            json!("c1-reply"),
            json!({"from": "c2", "n": [1, 2]})
        ])
    );
    for n in [&mut n1, &mut n2] {
        let ev = n.next_client_event("ask-r", T).await;
        assert_eq!(ev["args"], json!(["q2"]));
        assert_eq!(ev["ack"], json!(true));
    }
    for c in [&mut c1, &mut c2] {
        c.recv_event_named("ask-r", T).await;
    }

    // A room, from the other Rust server.
    let started = Instant::now();
    let stream = r2
        .io
        .to("acks")
        .timeout(Duration::from_secs(8))
        .emit_with_ack::<_, Value>("ask-r-room", &"q3")
        .await
        .unwrap();
    let acks: Vec<Value> = stream.map(|(_, r)| r.unwrap()).collect().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        jbag(&acks),
        jbag(&[json!("n1-reply"), json!({"from": "c2", "n": [1, 2]})])
    );
    n1.next_client_event("ask-r-room", T).await;
    c2.recv_event_named("ask-r-room", T).await;

    // --- Silent clients: the timeout applies, with what arrived.
    node_cmd(&mut n2, "config", json!({"ack": false})).await;
    let started = Instant::now();
    let stream = r1
        .io
        .to(n2_id.clone())
        .timeout(Duration::from_millis(1000))
        .emit_with_ack::<_, Value>("ask-silent", &())
        .await
        .unwrap();
    let acks: Vec<_> = stream.collect().await;
    let elapsed = started.elapsed();
    assert!(acks.is_empty(), "{acks:?}");
    assert!(
        elapsed >= Duration::from_millis(1000) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    let ev = n2.next_client_event("ask-silent", T).await;
    assert_eq!(ev["ack"], json!(true));
    c1.set_auto_ack(None);
    let r = node_cmd(
        &mut node,
        "emitWithAck",
        json!({"to": c1.sid(), "timeout": 1000, "event": "ask-silent-r", "args": []}),
    )
    .await;
    assert_eq!(r["err"], json!("operation has timed out"), "{r}");
    assert_eq!(r["responses"], json!([]));
    let ev = c1.recv_event_named("ask-silent-r", T).await;
    assert!(ev.ack_id.is_some());

    for r in [r1, r2] {
        assert_eq!(r.cluster.pending_requests(), 0);
    }
    shutdown_all(vec![n1, n2, node]).await;
}

// ---------------------------------------------------------------------------
// 6. custom requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_request_both_directions() {
    let Mixed { mut node, rust } = mixed("custom", 2, RUST_REQUESTS_TIMEOUT).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    for (i, r) in rust.iter().enumerate() {
        r.cluster.of("/").on_custom_request(move |data| async move {
            rmpv::Value::from(format!("R{}:{}", i + 1, common::to_json(&data)))
        });
    }
    // server.js's catch-all serverSideEvent handler acks every server-side event with
    // its configured reply: exactly what `io.on(CUSTOM_REQUEST_EVENT, (data, cb) =>
    // cb(reply))` does.
    node_cmd(
        &mut node,
        "config",
        json!({"serverSideAckReply": "node-custom"}),
    )
    .await;

    // --- Rust custom_request: own hook first, then one reply per other server.
    let replies = r1.cluster.of("/").custom_request(&"hello").await.unwrap();
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert_eq!(replies[0].as_str(), Some("R1:\"hello\""));
    assert_eq!(
        set(replies[1..].iter().map(|v| rmpv_json(v).to_string())),
        sset![
            json!("R2:\"hello\"").to_string(),
            json!("node-custom").to_string()
        ]
    );
    let ev = node
        .next_matching_described(
            |v| v["serverSideEvent"]["event"] == CUSTOM_REQUEST_EVENT,
            T,
            "serverSideEvent custom-request",
        )
        .await;
    assert_eq!(
        ev["serverSideEvent"],
        json!({"nsp": "/", "event": CUSTOM_REQUEST_EVENT, "args": ["hello"], "ack": true})
    );

    // Structured data and a structured Node reply, from R2.
    node_cmd(
        &mut node,
        "config",
        json!({"serverSideAckReply": {"ok": true, "list": [1, null]}}),
    )
    .await;
    let data = json!({"k": [1, 2], "s": "ü"});
    let replies = r2.cluster.of("/").custom_request(&data).await.unwrap();
    let replies: Vec<Value> = replies.iter().map(rmpv_json).collect();
    assert_eq!(replies[0], json!(format!("R2:{data}")));
    assert_eq!(
        jbag(&replies[1..]),
        jbag(&[
            json!(format!("R1:{data}")),
            json!({"ok": true, "list": [1, null]})
        ])
    );
    let ev = node
        .next_matching_described(
            |v| v["serverSideEvent"]["event"] == CUSTOM_REQUEST_EVENT,
            T,
            "serverSideEvent custom-request (2)",
        )
        .await;
    assert_eq!(ev["serverSideEvent"]["args"], json!([data]));

    // --- Node serverSideEmit(CUSTOM_REQUEST_EVENT, data, cb): the Rust hooks answer.
    let r = node_cmd(
        &mut node,
        "serverSideEmit",
        json!({"event": CUSTOM_REQUEST_EVENT, "args": ["from-node"], "ack": true}),
    )
    .await;
    assert_eq!(r["err"], Value::Null, "{r}");
    assert_eq!(
        jbag(r["responses"].as_array().unwrap()),
        jbag(&[json!("R1:\"from-node\""), json!("R2:\"from-node\"")])
    );
    // A namespace without a hook answers null (as socket.io-redis 5.x).
    let r = node_cmd(
        &mut node,
        "serverSideEmit",
        json!({"nsp": "/admin", "event": CUSTOM_REQUEST_EVENT, "args": [1], "ack": true}),
    )
    .await;
    assert_eq!(r["err"], Value::Null, "{r}");
    assert_eq!(r["responses"], json!([null, null]));

    for r in [r1, r2] {
        assert_eq!(r.cluster.pending_requests(), 0);
    }
    shutdown_all(vec![node]).await;
}

// ---------------------------------------------------------------------------
// 7. remote socket operations

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_socket_ops_both_directions() {
    let Mixed { mut node, rust } = mixed("remote", 1, RUST_REQUESTS_TIMEOUT).await;
    let r1 = &rust[0];
    let mut na = start_client("remote-na", &node.url(), "/", json!(["x"]), &[]).await;
    let mut rc = client(r1, "/", Parser::Json, &["x"], T).await;
    let na_id = na.sid();
    let rc_id = rc.sid().to_owned();

    // --- From Node: a RemoteSocket for the Rust socket (found with fetchSockets).
    let r = node_cmd(
        &mut node,
        "remoteSocket",
        json!({"sid": &rc_id, "op": "emit", "event": "direct", "args": ["hi", {"n": 1}]}),
    )
    .await;
    assert_eq!(r["local"], json!(false), "{r}");
    let ev = rc.recv_event_named("direct", T).await;
    assert_eq!(ev.args, vec![arg(json!("hi")), arg(json!({"n": 1}))]);
    assert!(ev.ack_id.is_none());
    // With an ack (flags.expectSingleResponse): the one reply.
    rc.set_auto_ack(Some(AutoAck::With(vec![arg(json!("pong"))])));
    let r = node_cmd(
        &mut node,
        "remoteSocket",
        json!({"sid": &rc_id, "op": "emit", "event": "direct-ack", "args": ["ping"], "ack": true, "timeout": 8000}),
    )
    .await;
    assert_eq!(r["err"], Value::Null, "{r}");
    assert_eq!(r["responses"], json!(["pong"]));
    let ev = rc.recv_event_named("direct-ack", T).await;
    assert_eq!(ev.args, vec![arg(json!("ping"))]);
    // join / leave
    node_cmd(
        &mut node,
        "remoteSocket",
        json!({"sid": &rc_id, "op": "join", "rooms": ["rj", "rj2"]}),
    )
    .await;
    let got = node_fetch(&mut node, json!({"to": "rj"})).await;
    assert_eq!(ids(&got), sset![&rc_id]);
    assert_eq!(
        strs(&got[0]["rooms"]),
        sset!["x", "rj", "rj2", rc_id.as_str()]
    );
    let rooms = rust_rooms(&rc).await;
    assert!(rooms.contains("rj") && rooms.contains("rj2"), "{rooms:?}");
    node_cmd(
        &mut node,
        "remoteSocket",
        json!({"sid": &rc_id, "op": "leave", "rooms": "rj"}),
    )
    .await;
    assert!(node_fetch(&mut node, json!({"to": "rj"})).await.is_empty());
    let rooms = rust_rooms(&rc).await;
    assert!(!rooms.contains("rj") && rooms.contains("rj2"), "{rooms:?}");
    // The Node socket is untouched.
    assert_eq!(
        strs(&node_fetch(&mut node, json!({"to": &na_id})).await[0]["rooms"]),
        sset!["x", na_id.as_str()]
    );

    // --- From Rust: string ids on the handle (socketioxide's RemoteSockets of Node
    // sockets are in tests/mixed_api.rs).
    let ns = r1.cluster.of("/");
    ns.remote_join(&na_id, "from-rust").await.unwrap();
    assert_eq!(
        set(ns.client_rooms(&na_id).await.unwrap()),
        sset!["x", "from-rust", na_id.as_str()]
    );
    assert_eq!(
        node_local_rooms(&mut node).await.get("from-rust"),
        Some(&sset![&na_id])
    );
    ns.remote_leave(&na_id, "x").await.unwrap();
    assert_eq!(
        set(ns.client_rooms(&na_id).await.unwrap()),
        sset!["from-rust", na_id.as_str()]
    );
    assert!(!node_local_rooms(&mut node).await.contains_key("x"));
    assert!(matches!(
        ns.remote_join("AAAAAAAAAAAAAAAAAAAA", "x").await,
        Err(Error::SocketNotFound(_))
    ));
    // Then the Node RemoteSocket disconnects the Rust socket, and the handle the Node one.
    node_cmd(
        &mut node,
        "remoteSocket",
        json!({"sid": &rc_id, "op": "disconnect"}),
    )
    .await;
    rc.expect_disconnect(T).await;
    // close: true; socket.io still sends the DISCONNECT packet before closing.
    ns.remote_disconnect(&na_id, true).await.unwrap();
    assert_eq!(
        node_client_disconnected(&mut na).await,
        "io server disconnect"
    );
    assert!(ns.clients(&[]).await.unwrap().is_empty());
    assert!(node_fetch(&mut node, json!({})).await.is_empty());

    shutdown_all(vec![na, node]).await;
}

// ---------------------------------------------------------------------------
// 8. a Node server killed with SIGKILL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_server_stops_being_counted() {
    let timeout = Duration::from_secs(5);
    let Mixed { mut node, rust } = mixed("kill", 2, timeout).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let na = start_client("kill-na", &node.url(), "/", json!(["n-room"]), &[]).await;
    let ra = client(r1, "/", Parser::Json, &["r-room"], T).await;
    let rb = client(r2, "/", Parser::Json, &["r-room"], T).await;
    ra.set_auto_ack(Some(AutoAck::With(vec![arg(json!("ra"))])));
    rb.set_auto_ack(Some(AutoAck::With(vec![arg(json!("rb"))])));
    for (i, r) in rust.iter().enumerate() {
        let ns = r.cluster.of("/");
        ns.on_server_side("ping", move |ev| ev.ack(format!("R{}", i + 1)));
        ns.on_custom_request(move |_| async move { rmpv::Value::from(format!("R{}", i + 1)) });
    }
    let ns = r1.cluster.of("/");
    assert_eq!(ns.server_count().await.unwrap(), 3);
    assert!(ns.all_rooms().await.unwrap().contains(&"n-room".to_owned()));
    let na_id = na.sid();

    node.kill().await;
    // Redis drops the dead server's subscriptions once it sees the connection close.
    for r in [r1, r2] {
        let ns = r.cluster.of("/");
        eventually(
            "Rust server_count drops to 2 after the Node server died",
            || {
                let ns = ns.clone();
                async move {
                    let n = ns.server_count().await.unwrap();
                    (n != 2).then(|| format!("server_count {n}"))
                }
            },
        )
        .await;
    }

    // Every request now completes without waiting for the 5 s timeout.
    let fast = |what: &str, started: Instant| {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what} took {:?} (timeout {timeout:?})",
            started.elapsed()
        );
    };
    let started = Instant::now();
    let rooms = set(ns.all_rooms().await.unwrap());
    fast("all_rooms", started);
    assert!(
        rooms.contains("r-room") && !rooms.contains("n-room"),
        "{rooms:?}"
    );
    assert!(!rooms.contains(&na_id));

    let started = Instant::now();
    let all = ns.fetch_sockets(&[], &[]).await.unwrap();
    fast("fetch_sockets", started);
    assert_eq!(
        set(all.iter().map(|s| s.id.clone())),
        sset![ra.sid(), rb.sid()]
    );

    let started = Instant::now();
    let got = r1.io.fetch_sockets().await.unwrap();
    fast("io.fetch_sockets", started);
    assert_eq!(got.len(), 2);

    let started = Instant::now();
    let replies = ns.server_side_emit_with_ack("ping", &()).await.unwrap();
    fast("server_side_emit_with_ack", started);
    assert_eq!(replies, vec![rmpv::Value::from("R2")]);

    let started = Instant::now();
    let replies = ns.custom_request(&"x").await.unwrap();
    fast("custom_request", started);
    assert_eq!(
        replies,
        vec![rmpv::Value::from("R1"), rmpv::Value::from("R2")]
    );

    let started = Instant::now();
    let stream = r1
        .io
        .timeout(timeout)
        .emit_with_ack::<_, String>("ask", &())
        .await
        .unwrap();
    let acks: Vec<String> = stream.map(|(_, r)| r.unwrap()).collect().await;
    fast("emit_with_ack", started);
    assert_eq!(set(acks), sset!["ra", "rb"]);

    let started = Instant::now();
    assert!(matches!(
        ns.client_rooms(&na_id).await,
        Err(Error::SocketNotFound(_))
    ));
    fast("client_rooms", started);

    for r in [r1, r2] {
        assert_eq!(r.cluster.pending_requests(), 0);
    }
    drop(na); // its server is gone; killed on drop
}
