//! Mixed clusters through socketioxide's own API: one Node socket.io 4.8.4 server on
//! `@socket.io/redis-adapter` 8.3.0 (`tests/interop/server.js`) and two socketioxide
//! servers on `ClusterAdapter`, on one `redis-server`. From a Rust server,
//! `io.fetch_sockets()` returns every socket of the cluster (Node sockets under stand-in
//! `Sid`s), every `RemoteSocket` operation on a Node socket takes effect on the Node
//! client, `io.to(<node socket id>)` works, acks say which socket answered where the wire
//! allows it, and a stand-in whose socket is gone fails with a clear error.
//!
//! Each scenario is a function of a [`Mixed`] cluster, so that every transport runs the
//! same scenarios (one `#[tokio::test]` per transport and scenario, at the end): the
//! classic protocol on one Redis, and the sharded protocol (`createShardedAdapter`,
//! static mode) on one Redis.
//!
//! Determinism: nothing sleeps. What a Rust server publishes goes out on one connection
//! in order, and the Node server handles it in arrival order, so a broadcast marker sent
//! after an operation arrives after that operation's effect.
//!
//! Requires `redis-server`, Node.js 20 and `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support as common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::cluster::{
    self, Serve, client, fresh_node_server, node_expect, node_serving, nodes_serving, shared_opts,
    shutdown_all,
};
use common::node::{NodeProcess, start_client};
use common::{AutoAck, Client, Parser, arg};
use futures_util::StreamExt;
use futures_util::stream::FusedStream;
use serde_json::{Value, json};
use socketioxide::socket::RemoteSocket;
use socketioxide_cluster::{ClusterAdapter, ClusterOptions, Error};
use socketioxide_core::{Sid, Uid};

/// Bound of one wait (a client event, a Node command, a request).
const T: Duration = Duration::from_secs(15);

const SERVE: Serve = Serve {
    admin: true,
    ..Serve::ROOT
};

type Remote = RemoteSocket<ClusterAdapter<socketioxide::adapter::Emitter>>;

/// One Node server and some Rust servers sharing one Redis and one key.
struct Mixed {
    node: NodeProcess,
    rust: Vec<cluster::Node>,
    opts: ClusterOptions,
}

/// The standalone-Redis transport: `n_rust` Rust servers with `edit`ed options.
async fn standalone(
    name: &str,
    n_rust: usize,
    edit: impl FnOnce(ClusterOptions) -> ClusterOptions,
) -> Mixed {
    let (node, key) = fresh_node_server(&format!("{name}-N"), "mixed-api").await;
    let opts = edit(shared_opts(&key).requests_timeout(Duration::from_secs(10)));
    let rust = nodes_serving(n_rust, &opts, Parser::Json, SERVE).await;
    Mixed { node, rust, opts }
}

/// The sharded protocol (static mode) on the same Redis: the Node server on
/// `createShardedAdapter`, the Rust servers with `ClusterOptions::sharded`.
async fn sharded(
    name: &str,
    n_rust: usize,
    edit: impl FnOnce(ClusterOptions) -> ClusterOptions,
) -> Mixed {
    common::init_tracing();
    let key = common::unique_key("mixed-api-sharded");
    let node = common::node::start_server(
        &format!("{name}-NS"),
        &common::shared().url(),
        &key,
        &["--sharded", "static"],
    )
    .await;
    let opts = edit(
        shared_opts(&key)
            .sharded(socketioxide_cluster::SubscriptionMode::Static)
            .requests_timeout(Duration::from_secs(10)),
    );
    let rust = nodes_serving(n_rust, &opts, Parser::Json, SERVE).await;
    Mixed { node, rust, opts }
}

// ---------------------------------------------------------------------------
// Helpers

/// A Node client of the Node server, in `rooms`, answering acks with `ack` (with its
/// socket id when `None`).
async fn node_client(m: &Mixed, name: &str, rooms: &[&str], ack: Option<&str>) -> NodeProcess {
    let ack_arg = ack.map(|a| json!(a).to_string());
    let mut extra: Vec<&str> = Vec::new();
    if let Some(a) = &ack_arg {
        extra.extend(["--ack-reply", a]);
    }
    start_client(name, &m.node.url(), "/", json!(rooms), &extra).await
}

async fn rust_client(r: &cluster::Node, rooms: &[&str], ack: &str) -> Client {
    let c = client(r, "/", Parser::Json, rooms, T).await;
    c.set_auto_ack(Some(AutoAck::With(vec![arg(json!(ack))])));
    c
}

/// `(id, server id)` of each remote socket.
fn listed(sockets: &[Remote]) -> BTreeMap<String, Uid> {
    sockets
        .iter()
        .map(|s| (s.data().id.to_string(), s.data().server_id))
        .collect()
}

fn ids(sockets: &[Remote]) -> BTreeSet<String> {
    sockets.iter().map(|s| s.data().id.to_string()).collect()
}

fn find(sockets: Vec<Remote>, sid: Sid) -> Remote {
    let all = format!("{:?}", listed(&sockets));
    sockets
        .into_iter()
        .find(|s| s.data().id == sid)
        .unwrap_or_else(|| panic!("{sid} not in {all}"))
}

macro_rules! sset {
    ($($x:expr),* $(,)?) => { BTreeSet::<String>::from([$($x.to_string()),*]) };
}

fn room_set(rooms: Vec<std::borrow::Cow<'static, str>>) -> BTreeSet<String> {
    rooms.into_iter().map(|r| r.to_string()).collect()
}

/// The Node server's own rooms: room -> socket ids.
async fn node_rooms(node: &mut NodeProcess) -> BTreeMap<String, BTreeSet<String>> {
    let r = node.request(json!({"cmd": "localRooms"}), T).await;
    r["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms in {r}"))
        .iter()
        .map(|e| {
            let sids = e["sids"].as_array().unwrap().iter();
            let sids = sids.map(|s| s.as_str().unwrap().to_owned()).collect();
            (e["room"].as_str().unwrap().to_owned(), sids)
        })
        .collect()
}

/// The ids of the Node server's own sockets.
async fn node_sockets(node: &mut NodeProcess) -> BTreeSet<String> {
    let r = node.request(json!({"cmd": "localSockets"}), T).await;
    let list = r["sockets"].as_array().unwrap_or_else(|| panic!("{r}"));
    list.iter()
        .map(|s| s["id"].as_str().or(s.as_str()).unwrap().to_owned())
        .collect()
}

async fn disconnected(c: &mut NodeProcess) -> String {
    let v = c
        .next_matching_described(|v| v.get("disconnected").is_some(), T, "a disconnect")
        .await;
    v["disconnected"].as_str().unwrap_or_default().to_owned()
}

/// Sends a `marker` broadcast from `r`, and checks it is the next event of every client:
/// nothing aimed elsewhere reached them in between.
async fn nothing_else_before_marker(
    r: &cluster::Node,
    nodes: &mut [&mut NodeProcess],
    rust: &mut [&mut Client],
) {
    r.io.emit("marker", &()).await.unwrap();
    for c in nodes.iter_mut() {
        node_expect(c, &["marker"], T).await;
    }
    for c in rust.iter_mut() {
        assert_eq!(c.recv_event(T).await.name, "marker", "client {}", c.sid());
    }
}

/// Our error inside a socketioxide error.
fn ours<'a>(e: &'a (dyn std::error::Error + 'static)) -> &'a Error {
    Error::find_in(e).unwrap_or_else(|| panic!("not an adapter error: {e}"))
}

// ---------------------------------------------------------------------------
// Scenarios

/// `io.fetch_sockets()` on either Rust server returns all four sockets, each with its
/// server's id; selections by room and by Node socket id (real or stand-in) work; the
/// handle maps stand-ins back, even on a server that never listed them.
async fn fetch_sockets_lists_the_whole_cluster(m: Mixed) {
    let mut n1 = node_client(&m, "mx-fetch-n1", &["a"], None).await;
    let mut n2 = node_client(&m, "mx-fetch-n2", &["a", "b"], None).await;
    let (r1, r2) = (&m.rust[0], &m.rust[1]);
    let c1 = rust_client(r1, &["a"], "c1").await;
    let c2 = rust_client(r2, &["b"], "c2").await;
    let ns = r1.cluster.of("/");
    let (n1_id, n2_id) = (n1.sid(), n2.sid());
    assert_eq!(n1_id.len(), 20, "a Node socket id");
    let (s1, s2) = (ns.sid_for(&n1_id), ns.sid_for(&n2_id));
    assert_ne!(s1.to_string(), n1_id);
    let (id1, id2) = (r1.io.config().server_id, r2.io.config().server_id);

    for r in [r1, r2] {
        let all = r.io.fetch_sockets().await.unwrap();
        assert_eq!(
            listed(&all),
            BTreeMap::from([
                (c1.sid().to_owned(), id1),
                (c2.sid().to_owned(), id2),
                (s1.to_string(), Uid::ZERO),
                (s2.to_string(), Uid::ZERO),
            ]),
            "every socket of the cluster, each with its server's id (Node's: ZERO)"
        );
        let got = r.io.to("a").fetch_sockets().await.unwrap();
        assert_eq!(ids(&got), sset![c1.sid(), s1, s2]);
        let got = r.io.to("b").except("a").fetch_sockets().await.unwrap();
        assert_eq!(ids(&got), sset![c2.sid()]);
        // A Node socket's id is a room, under its real id and under its stand-in.
        let got = r.io.to(n1_id.clone()).fetch_sockets().await.unwrap();
        assert_eq!(ids(&got), sset![s1]);
        let got = r.io.to(s2.to_string()).fetch_sockets().await.unwrap();
        assert_eq!(ids(&got), sset![s2]);
        let got = r.io.except(s1.to_string()).fetch_sockets().await.unwrap();
        assert_eq!(ids(&got), sset![c1.sid(), c2.sid(), s2]);
        // The handle gives the real ids back.
        let h = r.cluster.of("/");
        assert_eq!(h.socket_id(s1).await.unwrap(), n1_id);
        assert_eq!(h.socket_id(s2).await.unwrap(), n2_id);
        let c2_sid: Sid = c2.sid().parse().unwrap();
        assert_eq!(h.socket_id(c2_sid).await.unwrap(), c2.sid());
        assert_eq!(h.sid_for(c2.sid()), c2_sid, "a socketioxide id is its own");
        // The handle's listing says where our sockets are.
        let infos = h.fetch_sockets(&[], &[]).await.unwrap();
        let server = |id: &str| infos.iter().find(|s| s.id == id).unwrap().server_id;
        assert_eq!(server(c1.sid()), Some(id1));
        assert_eq!(server(c2.sid()), Some(id2));
        assert_eq!(server(&n1_id), None);
        assert_eq!(
            r.cluster.stats().node_stand_ins,
            2,
            "{:?}",
            r.cluster.stats()
        );
    }
    // A server that never listed the sockets maps a stand-in by asking the cluster.
    let r3 = node_serving(m.opts.clone(), Parser::Json, SERVE).await;
    assert_eq!(r3.cluster.of("/").socket_id(s2).await.unwrap(), n2_id);
    let unknown = r3.cluster.of("/").socket_id(Sid::new()).await.unwrap_err();
    assert!(unknown.is_socket_not_found(), "{unknown}");
    assert!(matches!(unknown, Error::SocketNotFound(_)), "{unknown:?}");

    nothing_else_before_marker(r1, &mut [&mut n1, &mut n2], &mut []).await;
    shutdown_all(vec![n1, n2, m.node]).await;
}

/// Every `RemoteSocket` operation on a Node socket reaches that Node client, and only it.
async fn remote_socket_ops_reach_node_clients(mut m: Mixed) {
    let mut n1 = node_client(&m, "mx-ops-n1", &["a"], Some("n1-ack")).await;
    let mut n2 = node_client(&m, "mx-ops-n2", &["a"], None).await;
    let (r1, r2) = (&m.rust[0], &m.rust[1]);
    let mut c2 = rust_client(r2, &["a"], "c2-ack").await;
    let n1_id = n1.sid();
    let s1 = r1.cluster.of("/").sid_for(&n1_id);

    let rs = find(r1.io.fetch_sockets().await.unwrap(), s1);
    // emit
    rs.emit("direct", &("hi", 1)).await.unwrap();
    let ev = n1.next_client_event("direct", T).await;
    assert_eq!(ev["args"], json!(["hi", 1]));
    nothing_else_before_marker(r1, &mut [&mut n1, &mut n2], &mut [&mut c2]).await;
    // emit_with_ack: the one ack, under the socket's stand-in; the stream ends with it
    // (socketioxide's own adapter tests check the same).
    let mut acks = rs.emit_with_ack::<_, Value>("ask", &("q",)).await.unwrap();
    let (sid, ack) = acks.next().await.expect("the ack");
    assert_eq!(sid, s1, "the ack names the socket");
    assert_eq!(ack.unwrap(), json!("n1-ack"));
    assert!(acks.is_terminated(), "ends right after the one ack");
    assert_eq!(n1.next_client_event("ask", T).await["args"], json!(["q"]));
    // join, rooms, leave
    rs.join("j1").await.unwrap();
    let rooms = node_rooms(&mut m.node).await;
    assert_eq!(rooms.get("j1"), Some(&sset![n1_id]), "{rooms:?}");
    // Joined rooms, as socketioxide lists them (no own-id room).
    assert_eq!(room_set(rs.rooms().await.unwrap()), sset!["a", "j1"]);
    rs.leave("a").await.unwrap();
    assert_eq!(room_set(rs.rooms().await.unwrap()), sset!["j1"]);
    let rooms = node_rooms(&mut m.node).await;
    assert_eq!(rooms.get("a"), Some(&sset![n2.sid()]), "{rooms:?}");
    // A RemoteSocket on our other server still works, with that server's id.
    let rc = find(
        r1.io.fetch_sockets().await.unwrap(),
        c2.sid().parse().unwrap(),
    );
    assert_eq!(rc.data().server_id, r2.io.config().server_id);
    rc.emit("direct-rust", &"x").await.unwrap();
    assert_eq!(c2.recv_event_named("direct-rust", T).await.args.len(), 1);
    let mut acks = rc.emit_with_ack::<_, Value>("ask-rust", &()).await.unwrap();
    let (sid, ack) = acks.next().await.expect("the ack");
    assert_eq!(sid.to_string(), c2.sid(), "our peer names its socket");
    assert_eq!(ack.unwrap(), json!("c2-ack"));
    assert!(acks.is_terminated(), "ends right after the one ack");
    c2.recv_event_named("ask-rust", T).await;
    // disconnect
    rs.disconnect().await.unwrap();
    assert_eq!(disconnected(&mut n1).await, "io server disconnect");
    assert_eq!(node_sockets(&mut m.node).await, sset![n2.sid()]);
    nothing_else_before_marker(r1, &mut [&mut n2], &mut [&mut c2]).await;
    shutdown_all(vec![n1, n2, m.node]).await;
}

/// `io.to(<Node socket id>)` (real or stand-in) operations, and acks gathered from a
/// room: a Rust peer's say which socket answered, a Node server's cannot (`Sid::ZERO`).
async fn operators_on_node_socket_ids(mut m: Mixed) {
    let mut n1 = node_client(&m, "mx-to-n1", &["a"], Some("n1-ack")).await;
    let mut n2 = node_client(&m, "mx-to-n2", &["a"], Some("n2-ack")).await;
    let (r1, r2) = (&m.rust[0], &m.rust[1]);
    let mut c1 = rust_client(r1, &["a"], "c1-ack").await;
    let mut c2 = rust_client(r2, &["a"], "c2-ack").await;
    let (n1_id, n2_id) = (n1.sid(), n2.sid());
    let s2 = r1.cluster.of("/").sid_for(&n2_id);
    r1.io.fetch_sockets().await.unwrap(); // the stand-ins are known to r1

    r1.io.to(n1_id.clone()).emit("by-id", &1).await.unwrap();
    assert_eq!(n1.next_client_event("by-id", T).await["args"], json!([1]));
    r1.io
        .to(s2.to_string())
        .emit("by-stand-in", &2)
        .await
        .unwrap();
    assert_eq!(
        n2.next_client_event("by-stand-in", T).await["args"],
        json!([2])
    );
    nothing_else_before_marker(r1, &mut [&mut n1, &mut n2], &mut [&mut c1, &mut c2]).await;

    r1.io.to(n1_id.clone()).join("k").await.unwrap();
    r1.io.to(s2.to_string()).join("k").await.unwrap();
    let rooms = node_rooms(&mut m.node).await;
    assert_eq!(rooms.get("k"), Some(&sset![n1_id, n2_id]), "{rooms:?}");
    r1.io.to(s2.to_string()).leave("k").await.unwrap();
    let rooms = node_rooms(&mut m.node).await;
    assert_eq!(rooms.get("k"), Some(&sset![n1_id]), "{rooms:?}");
    let rooms = room_set(r1.io.to(s2.to_string()).rooms().await.unwrap());
    assert_eq!(rooms, sset!["a"]);
    let rooms = room_set(r1.io.rooms().await.unwrap());
    assert_eq!(
        rooms,
        sset!["a", "k"],
        "the cluster's joined rooms, no socket ids"
    );

    let acks: Vec<_> = r1
        .io
        .to("a")
        .timeout(Duration::from_secs(8))
        .emit_with_ack::<_, Value>("ask-a", &())
        .await
        .unwrap()
        .collect()
        .await;
    let got: BTreeSet<(String, String)> = acks
        .into_iter()
        .map(|(sid, r)| (sid.to_string(), r.unwrap().as_str().unwrap().to_owned()))
        .collect();
    let zero = Sid::ZERO.to_string();
    let want = BTreeSet::from([
        (c1.sid().to_owned(), "c1-ack".to_owned()),
        (c2.sid().to_owned(), "c2-ack".to_owned()),
        (zero.clone(), "n1-ack".to_owned()),
        (zero, "n2-ack".to_owned()),
    ]);
    assert_eq!(got, want);
    for c in [&mut c1, &mut c2] {
        c.recv_event_named("ask-a", T).await;
    }
    n1.next_client_event("ask-a", T).await;
    n2.next_client_event("ask-a", T).await;

    r1.io.to(s2.to_string()).disconnect().await.unwrap();
    assert_eq!(disconnected(&mut n2).await, "io server disconnect");
    assert_eq!(node_sockets(&mut m.node).await, sset![n1_id]);
    shutdown_all(vec![n1, n2, m.node]).await;
}

/// A `RemoteSocket` of a Node socket that left: once a complete listing forgot its
/// stand-in, every operation fails with `UnknownSocket` (never a silent no-op).
async fn a_stand_in_of_a_gone_socket_fails_clearly(mut m: Mixed) {
    let mut n1 = node_client(&m, "mx-gone-n1", &["a"], None).await;
    let mut n2 = node_client(&m, "mx-gone-n2", &["a"], None).await;
    let r1 = &m.rust[0];
    let (n1_id, n2_id) = (n1.sid(), n2.sid());
    let s2 = r1.cluster.of("/").sid_for(&n2_id);
    let rs = find(r1.io.fetch_sockets().await.unwrap(), s2);
    assert_eq!(r1.cluster.stats().node_stand_ins, 2);

    n2.request(json!({"cmd": "disconnect"}), T).await;
    assert_eq!(disconnected(&mut n2).await, "io client disconnect");
    assert_eq!(node_sockets(&mut m.node).await, sset![n1_id]);
    // A complete listing no longer has it: its stand-in is dropped.
    let all = r1.io.fetch_sockets().await.unwrap();
    assert!(!ids(&all).contains(&s2.to_string()));
    assert_eq!(r1.cluster.stats().node_stand_ins, 1);

    let unknown = |e: &Error| matches!(e, Error::UnknownSocket { sid, nsp } if *sid == s2.to_string() && nsp == "/");
    let e = rs.emit("late", &()).await.unwrap_err();
    assert!(unknown(ours(&e)), "{e}");
    let Err(e) = rs.emit_with_ack::<_, Value>("late", &()).await else {
        panic!("emit_with_ack on a gone socket succeeded");
    };
    assert!(unknown(ours(&e)), "{e}");
    let e = rs.join("x").await.unwrap_err();
    assert!(unknown(&e) && e.is_socket_not_found(), "{e}");
    let e = rs.leave("a").await.unwrap_err();
    assert!(unknown(&e), "{e}");
    let e = rs.rooms().await.unwrap_err();
    assert!(unknown(&e), "{e}");
    let e = rs.disconnect().await.unwrap_err();
    assert!(unknown(ours(&e)), "{e}");
    assert_eq!(
        r1.cluster
            .of("/")
            .socket_id(s2)
            .await
            .unwrap_err()
            .to_string(),
        Error::SocketNotFound(s2.to_string()).to_string()
    );
    // Nothing reached the remaining Node client.
    nothing_else_before_marker(r1, &mut [&mut n1], &mut []).await;
    shutdown_all(vec![n1, n2, m.node]).await;
}

/// With room for two stand-ins and three Node sockets, at least one was dropped as soon
/// as it was listed: operations on it still reach its client (found again by asking).
async fn a_dropped_stand_in_is_found_again(m: Mixed) {
    let mut ns = vec![
        node_client(&m, "mx-evict-n1", &["a"], None).await,
        node_client(&m, "mx-evict-n2", &["a"], None).await,
        node_client(&m, "mx-evict-n3", &["a"], None).await,
    ];
    let r1 = &m.rust[0];
    let all = r1.io.fetch_sockets().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(r1.cluster.stats().node_stand_ins, 2, "bounded");
    for rs in &all {
        rs.emit("found", &rs.data().id.to_string()).await.unwrap();
    }
    for n in &mut ns {
        let stand_in = r1.cluster.of("/").sid_for(&n.sid());
        let ev = n.next_client_event("found", T).await;
        assert_eq!(ev["args"], json!([stand_in.to_string()]));
    }
    assert!(r1.cluster.stats().node_stand_ins <= 2);
    let mut refs: Vec<&mut NodeProcess> = ns.iter_mut().collect();
    nothing_else_before_marker(r1, &mut refs, &mut []).await;
    ns.push(m.node);
    shutdown_all(ns).await;
}

// ---------------------------------------------------------------------------
// Every scenario on every transport.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_fetch_sockets_lists_the_whole_cluster() {
    fetch_sockets_lists_the_whole_cluster(standalone("fetch", 2, |o| o).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_remote_socket_ops_reach_node_clients() {
    remote_socket_ops_reach_node_clients(standalone("ops", 2, |o| o).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_operators_on_node_socket_ids() {
    operators_on_node_socket_ids(standalone("to", 2, |o| o).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_a_stand_in_of_a_gone_socket_fails_clearly() {
    a_stand_in_of_a_gone_socket_fails_clearly(standalone("gone", 1, |o| o).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_a_dropped_stand_in_is_found_again() {
    let edit = |o: ClusterOptions| o.max_node_stand_ins(2);
    a_dropped_stand_in_is_found_again(standalone("evict", 1, edit).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_fetch_sockets_lists_the_whole_cluster() {
    fetch_sockets_lists_the_whole_cluster(sharded("fetch", 2, |o| o).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_remote_socket_ops_reach_node_clients() {
    remote_socket_ops_reach_node_clients(sharded("ops", 2, |o| o).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_operators_on_node_socket_ids() {
    operators_on_node_socket_ids(sharded("to", 2, |o| o).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_a_stand_in_of_a_gone_socket_fails_clearly() {
    a_stand_in_of_a_gone_socket_fails_clearly(sharded("gone", 1, |o| o).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_a_dropped_stand_in_is_found_again() {
    let edit = |o: ClusterOptions| o.max_node_stand_ins(2);
    a_dropped_stand_in_is_found_again(sharded("evict", 1, edit).await).await;
}
