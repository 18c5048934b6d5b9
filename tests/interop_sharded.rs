//! Mixed clusters over the ClusterAdapter protocols: a Node socket.io 4.8.4 server on
//! `@socket.io/redis-adapter` 8.3.0's `createShardedAdapter` (`subscriptionMode:
//! "static"`, `tests/interop/server.js --sharded static`) and two socketioxide servers
//! with `ClusterOptions::sharded(SubscriptionMode::Static)`, on one standalone Redis 7
//! (sharded pub/sub works there too); and the same with a Node server on
//! `@socket.io/redis-streams-adapter` 0.3.1 (`--streams`) and ours on
//! `ClusterOptions::streams`: broadcasts, fetchSockets, socketsJoin, serverSideEmit with
//! acks, broadcasts with acks and server counts, both directions.
//!
//! Determinism: as in `interop_requests.rs`, every Node command waits for a pub/sub
//! barrier, and every Rust publish goes out in order on one connection per shard.
//!
//! Requires `redis-server`, Node.js 20 and `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support as common;

use common::cluster::{self, Serve, client, node_expect, nodes_serving, shared_opts, shutdown_all};
use common::node::{NodeProcess, start_client, start_server};
use common::{AutoAck, Parser, arg};
use futures_util::StreamExt;
use serde_json::{Value, json};
use socketioxide_cluster::{StreamsOptions, SubscriptionMode};
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

struct Mixed {
    node: NodeProcess,
    rust: Vec<cluster::Node>,
    key: String,
}

/// Which of Node's ClusterAdapter-based adapters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Sharded,
    Streams,
}

async fn mixed(name: &str, flavor: Flavor) -> Mixed {
    mixed_with(name, flavor, &[]).await
}

/// With `extra` arguments for the Node server.
async fn mixed_with(name: &str, flavor: Flavor, extra: &[&str]) -> Mixed {
    common::init_tracing();
    let key = common::unique_key("sharded");
    let stream = format!("{key}-stream");
    let args = match flavor {
        Flavor::Sharded => ["--sharded", "static"],
        Flavor::Streams => ["--streams", stream.as_str()],
    };
    let args: Vec<&str> = args.iter().chain(extra).copied().collect();
    let node = start_server(&format!("{name}-N"), &common::shared().url(), &key, &args).await;
    let opts = shared_opts(&key).requests_timeout(Duration::from_secs(10));
    let opts = match flavor {
        Flavor::Sharded => opts.sharded(SubscriptionMode::Static),
        Flavor::Streams => opts.streams(StreamsOptions {
            stream_name: stream.clone(),
            ..StreamsOptions::default()
        }),
    };
    let rust = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    Mixed { node, rust, key }
}

async fn node_cmd(node: &mut NodeProcess, cmd: &str, mut fields: Value) -> Value {
    fields["cmd"] = json!(cmd);
    node.request(fields, T).await
}

fn ids(v: &Value) -> BTreeSet<String> {
    v["sockets"]
        .as_array()
        .unwrap_or_else(|| panic!("no sockets in {v}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set<I: IntoIterator<Item = S>, S: ToString>(i: I) -> BTreeSet<String> {
    i.into_iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_and_requests_both_ways_with_nodes_sharded_adapter() {
    both_ways(Flavor::Sharded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_and_requests_both_ways_with_nodes_streams_adapter() {
    both_ways(Flavor::Streams).await;
}

async fn both_ways(flavor: Flavor) {
    let Mixed {
        mut node,
        rust,
        key,
    } = mixed(
        if flavor == Flavor::Sharded {
            "sh"
        } else {
            "st"
        },
        flavor,
    )
    .await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let mut n1 = start_client(
        "sh-n1",
        &node.url(),
        "/",
        json!(["a"]),
        &["--ack-reply", "\"n1\""],
    )
    .await;
    let mut c1 = client(r1, "/", Parser::Json, &["a"], T).await;
    let mut c2 = client(r2, "/", Parser::Json, &["b"], T).await;
    c1.set_auto_ack(Some(AutoAck::With(vec![arg(json!("c1"))])));
    c2.set_auto_ack(Some(AutoAck::With(vec![arg(json!("c2"))])));
    let n1_id = n1.sid();

    // Server counts: SHARDNUMSUB of the main channel, every server counted.
    assert_eq!(
        node_cmd(&mut node, "serverCount", json!({})).await["count"],
        json!(3)
    );
    for r in [r1, r2] {
        assert_eq!(r.cluster.of("/").server_count().await.unwrap(), 3);
    }

    // Node -> Rust broadcasts: all, a room, binary.
    node_cmd(
        &mut node,
        "emit",
        json!({"event": "all", "args": ["from node"]}),
    )
    .await;
    for c in [&mut c1, &mut c2] {
        assert_eq!(c.recv_event_named("all", T).await.str_arg(0), "from node");
    }
    node_expect(&mut n1, &["all"], T).await;
    node_cmd(
        &mut node,
        "emit",
        json!({"to": "b", "event": "room", "args": [1]}),
    )
    .await;
    assert_eq!(c2.recv_event_named("room", T).await.i64_arg(0), 1);
    // Rust -> Node, and Rust -> Rust.
    r1.io.emit("hello", &("from rust", 2)).await.unwrap();
    let args = node_expect(&mut n1, &["hello"], T).await;
    assert_eq!(args[0], json!(["from rust", 2]));
    assert_eq!(
        c2.recv_event_named("hello", T).await.str_arg(0),
        "from rust"
    );
    assert_eq!(
        c1.recv_event_named("hello", T).await.str_arg(0),
        "from rust"
    );
    r2.io.to("a").emit("to-a", &()).await.unwrap();
    node_expect(&mut n1, &["to-a"], T).await;
    c1.recv_event_named("to-a", T).await;
    // Binary: msgpack envelopes (Node's hasBinary rule), read by Node's adapter.
    let big = cluster::big_binary();
    cluster::emit_binary_set(&r1.io, &big).await;
    let args = node_expect(&mut n1, &["r-bin", "r-marker"], T).await;
    cluster::assert_binary_set(&args[0], &big);
    for c in [&mut c1, &mut c2] {
        cluster::expect_events(c, &["r-bin", "r-marker"], T).await;
    }

    // fetchSockets both ways (Node sockets under stand-ins on the Rust side).
    let all = node_cmd(&mut node, "fetchSockets", json!({})).await;
    assert_eq!(ids(&all), set([n1_id.as_str(), c1.sid(), c2.sid()]));
    let in_a = node_cmd(&mut node, "fetchSockets", json!({"to": "a"})).await;
    assert_eq!(ids(&in_a), set([n1_id.as_str(), c1.sid()]));
    for r in [r1, r2] {
        let ns = r.cluster.of("/");
        let got = r.io.fetch_sockets().await.unwrap();
        let got = set(got.iter().map(|s| s.data().id));
        assert_eq!(
            got,
            set([
                ns.sid_for(&n1_id).to_string(),
                c1.sid().into(),
                c2.sid().into()
            ])
        );
        assert_eq!(
            set(ns.clients(&["a"]).await.unwrap()),
            set([n1_id.as_str(), c1.sid()])
        );
    }

    // socketsJoin both ways.
    node_cmd(
        &mut node,
        "socketsJoin",
        json!({"to": "b", "rooms": ["from-node"]}),
    )
    .await;
    let got = r1.io.to("from-node").fetch_sockets().await.unwrap();
    assert_eq!(set(got.iter().map(|s| s.data().id)), set([c2.sid()]));
    r1.io.to("a").join("from-rust").await.unwrap();
    let got = node_cmd(&mut node, "fetchSockets", json!({"to": "from-rust"})).await;
    assert_eq!(ids(&got), set([n1_id.as_str(), c1.sid()]));

    // serverSideEmit with acks, both ways.
    r2.cluster
        .of("/")
        .on_server_side("ping", |ev| ev.ack("pong-r2"));
    r1.cluster
        .of("/")
        .on_server_side("ping", |ev| ev.ack("pong-r1"));
    let r = node_cmd(
        &mut node,
        "serverSideEmit",
        json!({"event": "ping", "args": [], "ack": true}),
    )
    .await;
    assert_eq!(r["err"], Value::Null, "{r}");
    let mut got: Vec<String> = r["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["pong-r1", "pong-r2"]);
    let replies = r1
        .cluster
        .of("/")
        .server_side_emit_with_ack("ping", &())
        .await
        .unwrap();
    assert_eq!(replies.len(), 2, "the Node server and r2: {replies:?}");

    // Broadcasts with acks, both ways.
    let r = node_cmd(
        &mut node,
        "emitWithAck",
        json!({"timeout": 8000, "event": "ask", "args": []}),
    )
    .await;
    assert_eq!(r["err"], Value::Null, "{r}");
    let mut got: Vec<String> = r["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["c1", "c2", "n1"]);
    for c in [&mut c1, &mut c2] {
        c.recv_event_named("ask", T).await;
    }
    node_expect(&mut n1, &["ask"], T).await;
    let acks: Vec<Value> = r2
        .io
        .timeout(Duration::from_secs(8))
        .emit_with_ack::<_, Value>("ask-r", &())
        .await
        .unwrap()
        .map(|(_, r)| r.unwrap())
        .collect()
        .await;
    let mut got: Vec<String> = acks
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["c1", "c2", "n1"]);
    node_expect(&mut n1, &["ask-r"], T).await;
    for c in [&mut c1, &mut c2] {
        c.recv_event_named("ask-r", T).await;
    }

    // Our emitter reaches the Node server's clients too, on either protocol (Node's own
    // emitter has no sharded mode, and its streams emitter is not on the registry).
    let em = socketioxide_cluster_emitter::EmitterOptions::new(common::shared().url());
    let em = match flavor {
        Flavor::Sharded => em.sharded(SubscriptionMode::Static),
        Flavor::Streams => em.streams(format!("{key}-stream")),
    };
    emitter_reaches_node(&mut node, &mut n1, &mut c1, &n1_id, em.key(key)).await;
    kill_node_and_recount(node, n1, &rust).await;
}

async fn emitter_reaches_node(
    node: &mut NodeProcess,
    n1: &mut NodeProcess,
    c1: &mut common::Client,
    n1_id: &str,
    opts: socketioxide_cluster_emitter::EmitterOptions,
) {
    let em = socketioxide_cluster_emitter::Emitter::connect(opts)
        .await
        .unwrap();
    em.to("a").emit("from-emitter", &"e").await.unwrap();
    assert_eq!(node_expect(n1, &["from-emitter"], T).await[0], json!(["e"]));
    assert_eq!(c1.recv_event_named("from-emitter", T).await.str_arg(0), "e");
    em.in_("a").sockets_join("em-joined").await.unwrap();
    let got = node_cmd(node, "fetchSockets", json!({"to": "em-joined"})).await;
    assert_eq!(ids(&got), set([n1_id, c1.sid()]));
}

async fn kill_node_and_recount(mut node: NodeProcess, n1: NodeProcess, rust: &[cluster::Node]) {
    let r1 = &rust[0];
    // The Node server dies (SIGKILL): Redis drops its subscriptions with its connection,
    // so ours count two servers again and a request waits for nobody dead.
    node.kill().await;
    cluster::until_server_count(r1, 2, T).await;
    let started = std::time::Instant::now();
    let sockets = r1.io.fetch_sockets().await.unwrap();
    assert_eq!(sockets.len(), 2, "c1 and c2");
    assert!(
        started.elapsed() < T / 2,
        "answered without waiting for the dead server"
    );

    for r in rust {
        let stats = r.cluster.stats();
        assert_eq!(stats.malformed, 0, "{stats:?}");
    }
    drop(node);
    shutdown_all(vec![n1]).await;
}

/// Waits (bounded) until `PUBSUB SHARDNUMSUB <channel>` on the shared Redis satisfies
/// `ok`: in the dynamic modes a room's channel is subscribed shortly after the room
/// appears, and unsubscribed shortly after it is gone.
async fn until_count(channel: &str, what: &str, ok: impl Fn(usize) -> bool) {
    let mut conn = common::command_conn(&common::shared().url()).await;
    let deadline = std::time::Instant::now() + T;
    loop {
        let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
            .arg("SHARDNUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .unwrap();
        if counts.first().is_some_and(|(_, c)| ok(*c)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{channel}: {counts:?} subscribers, expected {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// At least `n` subscribers on `channel` (see [`until_count`]).
async fn until_subscribed(channel: &str, n: usize) {
    until_count(channel, &format!("{n} or more"), |c| c >= n).await;
}

/// The dynamic modes: a broadcast to one room travels on that room's channel, which
/// each server subscribes while the room exists there (ours: without a join hook from
/// socketioxide, within `room_sync_interval`); socket-id rooms as Node's rule says.
async fn dynamic_mode(mode: SubscriptionMode) {
    common::init_tracing();
    let key = common::unique_key("sharded-dyn");
    let mut node = start_server(
        &format!("dyn-{}-N", mode.as_str()),
        &common::shared().url(),
        &key,
        &["--sharded", mode.as_str()],
    )
    .await;
    let opts = shared_opts(&key)
        .sharded(mode)
        .requests_timeout(Duration::from_secs(10));
    let rust = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let mut n1 = start_client("dyn-n1", &node.url(), "/", json!(["lobby"]), &[]).await;
    let mut c1 = client(r1, "/", Parser::Json, &["lobby"], T).await;
    let mut c2 = client(r2, "/", Parser::Json, &[], T).await;
    let n1_id = n1.sid();
    let room = |r: &str| format!("{key}#/#{r}#");
    // The Node server and r1 both have "lobby"; r1 and r2 each their socket's id room
    // (16 characters: a channel of its own in both modes).
    until_subscribed(&room("lobby"), 2).await;
    until_subscribed(&room(c1.sid()), 1).await;
    until_subscribed(&room(c2.sid()), 1).await;

    node_cmd(
        &mut node,
        "emit",
        json!({"to": "lobby", "event": "l", "args": [1]}),
    )
    .await;
    assert_eq!(c1.recv_event_named("l", T).await.i64_arg(0), 1);
    node_expect(&mut n1, &["l"], T).await;
    r2.io.to("lobby").emit("l2", &2).await.unwrap();
    assert_eq!(node_expect(&mut n1, &["l2"], T).await[0], json!([2]));
    assert_eq!(c1.recv_event_named("l2", T).await.i64_arg(0), 2);
    // To one of our sockets by id, from Node (on that id's room channel) and from Rust.
    node_cmd(
        &mut node,
        "emit",
        json!({"to": c2.sid(), "event": "direct", "args": []}),
    )
    .await;
    c2.recv_event_named("direct", T).await;
    r1.io
        .to(c2.sid().to_owned())
        .emit("direct2", &())
        .await
        .unwrap();
    c2.recv_event_named("direct2", T).await;
    // To the Node socket by id (20 characters: main channel in dynamic mode, its own
    // channel in dynamic-private, which the Node server subscribes).
    if mode == SubscriptionMode::DynamicPrivate {
        until_subscribed(&room(&n1_id), 1).await;
    }
    r2.io.to(n1_id.clone()).emit("to-node", &()).await.unwrap();
    node_expect(&mut n1, &["to-node"], T).await;
    // A room joined later: subscribed by itself, then reached.
    let joined = std::time::Instant::now();
    r2.io.to(c2.sid().to_owned()).join("later").await.unwrap();
    until_subscribed(&room("later"), 1).await;
    eprintln!(
        "{}: a room joined was subscribed after {:?} (room_sync_interval 50 ms)",
        mode.as_str(),
        joined.elapsed()
    );
    node_cmd(
        &mut node,
        "emit",
        json!({"to": "later", "event": "late", "args": []}),
    )
    .await;
    c2.recv_event_named("late", T).await;
    // Left: its channel is unsubscribed again.
    r2.io.to(c2.sid().to_owned()).leave("later").await.unwrap();
    until_count(&room("later"), "none", |c| c == 0).await;
    for r in &rust {
        assert_eq!(r.cluster.stats().malformed, 0);
    }
    shutdown_all(vec![n1, node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_mode_with_nodes_sharded_adapter() {
    dynamic_mode(SubscriptionMode::Dynamic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_private_mode_with_nodes_sharded_adapter() {
    dynamic_mode(SubscriptionMode::DynamicPrivate).await;
}

/// Connection-state recovery across a Node server on the streams adapter
/// (`connectionStateRecovery` on) while Rust servers broadcast: a Node client whose
/// transport dropped is recovered (same id) and gets the Rust broadcasts it missed,
/// replayed by Node from the stream; a Rust server accepts a client whose `auth` carries
/// Node's `pid` and `offset`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_clients_recover_their_state_while_rust_servers_broadcast() {
    let Mixed { node, rust, .. } = mixed_with("csr", Flavor::Streams, &["--csr"]).await;
    let (r1, r2) = (&rust[0], &rust[1]);
    let mut n1 = start_client("csr-n1", &node.url(), "/", json!(["a"]), &[]).await;
    let id = n1.sid();
    cluster::until_server_count(r1, 3, T).await;
    // A first event gives the client an offset (Node appends the entry id).
    r1.io.emit("first", &("x",)).await.unwrap();
    let args = node_expect(&mut n1, &["first"], T).await;
    let offset = args[0]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        offset.split('-').count() == 2 && offset.split('-').all(|p| p.parse::<u64>().is_ok()),
        "an entry id as the last argument: {args:?}"
    );

    node_cmd(&mut n1, "dropTransport", json!({})).await;
    // The client calls it "forced close"; the server sees a transport close, for which
    // it keeps the session.
    n1.next_matching(|v| v.get("disconnected").is_some(), T)
        .await;
    // While it is away: broadcasts from both Rust servers, to its room and to all.
    // `emit` resolves once queued: a confirmed join after each makes the order of the
    // two servers' entries in the stream the order of the calls (r1's, then r2's), and
    // both are in the stream before the client comes back.
    r1.io.to("a").emit("missed-room", &(1,)).await.unwrap();
    r1.io.to("nobody").join("barrier").await.unwrap();
    r2.io.emit("missed-all", &(2,)).await.unwrap();
    r2.io.to("nobody").join("barrier").await.unwrap();
    node_cmd(&mut n1, "reconnect", json!({})).await;
    let ev = n1
        .next_matching(|v| v.get("reconnected").is_some(), T)
        .await;
    assert_eq!(ev["recovered"], json!(true), "{ev}");
    assert_eq!(ev["reconnected"], json!(id), "the same id");
    let args = node_expect(&mut n1, &["missed-room", "missed-all"], T).await;
    assert_eq!(args[0][0], json!(1));
    assert_eq!(args[1][0], json!(2));

    // A client of a Rust server with Node's recovery fields in its auth: accepted.
    let mut c = common::Client::connect_with_auth(
        r2.addr,
        "/",
        Parser::Json,
        Some(json!({"pid": "a-node-pid", "offset": offset})),
    )
    .await;
    r1.io.emit("to-all", &()).await.unwrap();
    c.recv_event_named("to-all", T).await;
    node_expect(&mut n1, &["to-all"], T).await;
    shutdown_all(vec![n1, node]).await;
}
