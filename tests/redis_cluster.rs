//! The classic protocol over a real Redis Cluster (3 masters on free ports, created by
//! `redis-cli --cluster create`): three servers, each connected to a different node,
//! are one socket.io cluster — broadcasts cross nodes, and requests count the servers
//! of every node (`PUBSUB NUMSUB` only sees the node asked). An emitter publishing on
//! yet another node reaches them all.
//!
//! The sharded protocol (`SPUBLISH`, Node's `createShardedAdapter`) is not built yet.
//!
//! Requires `redis-server` and `redis-cli` (Debian's redis-server and redis-tools).

use socketioxide_cluster_test_support as common;

use common::Parser;
use common::cluster::{Serve, client, node_serving, until_delivered, until_server_count};
use common::redis_cluster::RedisCluster;
use socketioxide_cluster::{ClusterOptions, SubscriptionMode};
use socketioxide_cluster_emitter::{Emitter, EmitterOptions};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_protocol_spans_the_nodes_of_a_redis_cluster() {
    common::init_tracing();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .unwrap();
    let key = common::unique_key("rc");
    let mut servers = Vec::new();
    for i in 0..3 {
        let opts = ClusterOptions::redis_cluster(cluster.seeds_from(i))
            .key(key.clone())
            .requests_timeout(T);
        assert!(opts.clone().build().unwrap().is_redis_cluster());
        servers.push(node_serving(opts, Parser::Json, Serve::ROOT).await);
    }
    // Each server subscribes on its own node: NUMSUB there is 1, the summed count 3.
    let request_channel = format!("{key}-request#/#");
    for i in 0..3 {
        let out = cluster.cli(i, &["pubsub", "numsub", &request_channel]);
        assert_eq!(out.lines().nth(1), Some("1"), "node {i}: {out}");
    }
    let mut clients = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let room = format!("room{i}");
        clients.push(client(s, "/", Parser::Json, &[room.as_str()], T).await);
    }

    // Broadcasts cross the nodes.
    servers[0].io.emit("all", &"from 0").await.unwrap();
    for c in &mut clients {
        assert_eq!(c.recv_event_named("all", T).await.str_arg(0), "from 0");
    }
    servers[1]
        .io
        .to("room2")
        .emit("room", &"from 1")
        .await
        .unwrap();
    assert_eq!(
        clients[2].recv_event_named("room", T).await.str_arg(0),
        "from 1"
    );

    // Requests count every node's servers, and get every reply.
    for s in &servers {
        let ns = s.cluster.of("/");
        assert_eq!(ns.server_count().await.unwrap(), 3);
        let started = std::time::Instant::now();
        assert_eq!(s.io.fetch_sockets().await.unwrap().len(), 3);
        assert!(started.elapsed() < T / 2, "not waited for the timeout");
        let mut ids: Vec<String> = ns.clients(&[]).await.unwrap();
        ids.sort();
        let mut want: Vec<String> = clients.iter().map(|c| c.sid().to_owned()).collect();
        want.sort();
        assert_eq!(ids, want);
    }
    servers[2].io.to("room0").join("joined").await.unwrap();
    let got = servers[1].io.to("joined").fetch_sockets().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data().id.as_str(), clients[0].sid());

    // An emitter publishing on a node of its own (a classic PUBLISH reaches every node).
    let emitter = Emitter::connect(EmitterOptions::new(cluster.url(1)).key(key.clone()))
        .await
        .unwrap();
    emitter.emit("from-emitter", &"e").await.unwrap();
    for c in &mut clients {
        assert_eq!(c.recv_event_named("from-emitter", T).await.str_arg(0), "e");
    }
    for s in &servers {
        s.cluster.close().await;
    }
    let stats = servers[0].cluster.stats();
    assert_eq!(stats.malformed, 0, "{stats:?}");
}

/// The node a server uses is killed (SIGKILL): its connections move to another node of
/// the cluster by themselves, and delivery resumes both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_moves_to_another_node_when_its_node_dies() {
    common::init_tracing();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .unwrap();
    let key = common::unique_key("rc-kill");
    let mut servers = Vec::new();
    for i in 0..2 {
        let opts = ClusterOptions::redis_cluster(cluster.seeds_from(i))
            .key(key.clone())
            .requests_timeout(T);
        servers.push(node_serving(opts, Parser::Json, Serve::ROOT).await);
    }
    let mut c0 = client(&servers[0], "/", Parser::Json, &[], T).await;
    let mut c1 = client(&servers[1], "/", Parser::Json, &[], T).await;
    until_delivered(&servers[1].io, &mut c0, T).await;

    let killed = std::time::Instant::now();
    cluster.nodes()[0].kill();
    let to_moved = until_delivered(&servers[1].io, &mut c0, Duration::from_secs(20)).await;
    let from_moved = until_delivered(&servers[0].io, &mut c1, Duration::from_secs(20)).await;
    eprintln!(
        "node killed -> delivery to the moved server resumed after {:?}, from it {:?} later (total {:?})",
        to_moved,
        from_moved,
        killed.elapsed()
    );
    assert!(servers[0].cluster.is_connected());
    // Counted right again: the dead node's subscribers are gone, the moved one is on
    // another node.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = servers[1].cluster.of("/").server_count().await.unwrap_or(0);
        if n == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server count stays {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(servers[0].io.fetch_sockets().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_cluster_without_a_reachable_seed_is_an_error_from_connect() {
    let dead = format!("redis://127.0.0.1:{}", common::free_port());
    let opts = ClusterOptions::redis_cluster([dead.clone(), dead])
        .connect_timeout(Duration::from_millis(500));
    let err = socketioxide_cluster::Cluster::connect(opts)
        .await
        .unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
    let none: [&str; 0] = [];
    let err = ClusterOptions::redis_cluster(none).build().unwrap_err();
    assert!(err.to_string().contains("Redis Cluster seed"), "{err}");
}

/// The sharded protocol (Node's `createShardedAdapter`, static mode) between our
/// servers, on each of their own nodes of a Redis Cluster, and on a standalone Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_protocol_between_our_servers() {
    common::init_tracing();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .unwrap();
    let key = common::unique_key("rc-sharded");
    let mut on_cluster = Vec::new();
    for i in 0..3 {
        on_cluster.push(
            ClusterOptions::redis_cluster(cluster.seeds_from(i))
                .sharded(SubscriptionMode::Static)
                .key(key.clone())
                .requests_timeout(T),
        );
    }
    let emitter = EmitterOptions::redis_cluster(cluster.urls())
        .sharded(SubscriptionMode::Static)
        .key(key.clone());
    sharded_scenario(on_cluster, emitter, &key).await;
    let standalone = (0..3)
        .map(|_| {
            ClusterOptions::new(common::shared().url())
                .sharded(SubscriptionMode::Static)
                .key(key.clone())
                .requests_timeout(T)
        })
        .collect();
    let emitter = EmitterOptions::new(common::shared().url())
        .sharded(SubscriptionMode::Static)
        .key(key.clone());
    sharded_scenario(standalone, emitter, &key).await;
}

async fn sharded_scenario(opts: Vec<ClusterOptions>, emitter: EmitterOptions, key: &str) {
    use common::AutoAck;
    use futures_util::StreamExt;
    let later = opts[0].clone();
    let mut servers = Vec::new();
    for o in opts {
        servers.push(node_serving(o, Parser::Json, Serve::ROOT).await);
    }
    let mut clients = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let room = format!("room{i}");
        let c = client(s, "/", Parser::Json, &[room.as_str()], T).await;
        c.set_auto_ack(Some(AutoAck::With(vec![common::arg(serde_json::json!(i))])));
        clients.push(c);
    }
    servers[0].io.emit("all", &"from 0").await.unwrap();
    for c in &mut clients {
        assert_eq!(c.recv_event_named("all", T).await.str_arg(0), "from 0");
    }
    servers[1]
        .io
        .to("room2")
        .emit("room", &"from 1")
        .await
        .unwrap();
    assert_eq!(
        clients[2].recv_event_named("room", T).await.str_arg(0),
        "from 1"
    );
    for s in &servers {
        assert_eq!(s.cluster.of("/").server_count().await.unwrap(), 3, "{key}");
        assert_eq!(s.io.fetch_sockets().await.unwrap().len(), 3);
    }
    servers[2].io.to("room0").join("joined").await.unwrap();
    let got = servers[1].io.to("joined").fetch_sockets().await.unwrap();
    assert_eq!(got.len(), 1);
    let rooms = servers[1].cluster.of("/").all_rooms().await.unwrap();
    assert!(rooms.contains(&"joined".to_owned()), "{rooms:?}");
    // Acks from every client, through BROADCAST_CLIENT_COUNT / BROADCAST_ACK.
    let acks: Vec<_> = servers[0]
        .io
        .timeout(T)
        .emit_with_ack::<_, u32>("ask", &())
        .await
        .unwrap()
        .collect()
        .await;
    let mut values: Vec<u32> = acks.into_iter().map(|(_, r)| r.unwrap()).collect();
    values.sort();
    assert_eq!(values, vec![0, 1, 2]);
    for c in &mut clients {
        c.recv_event_named("ask", T).await;
    }
    // Server-side emit with acks.
    for (i, s) in servers.iter().enumerate() {
        s.cluster
            .of("/")
            .on_server_side("ping", move |ev| ev.ack(format!("pong-{i}")));
    }
    let replies = servers[0]
        .cluster
        .of("/")
        .server_side_emit_with_ack("ping", &())
        .await
        .unwrap();
    assert_eq!(replies.len(), 2, "{replies:?}");

    // The emitter speaks the sharded protocol too (Node's emitter cannot).
    let em = Emitter::connect(emitter).await.unwrap();
    em.emit("from-emitter", &"e").await.unwrap();
    for c in &mut clients {
        assert_eq!(c.recv_event_named("from-emitter", T).await.str_arg(0), "e");
    }
    em.to("room1").emit("em-room", &1).await.unwrap();
    assert_eq!(
        clients[1].recv_event_named("em-room", T).await.i64_arg(0),
        1
    );
    em.in_("room0").sockets_join("em-joined").await.unwrap();
    let got = servers[1].io.to("em-joined").fetch_sockets().await.unwrap();
    assert_eq!(got.len(), 1);
    let waited = servers[2]
        .cluster
        .of("/")
        .wait_server_side("em-sse", |_| true, T);
    em.server_side_emit("em-sse", &("x",)).await.unwrap();
    assert_eq!(waited.await.unwrap(), vec![rmpv::Value::from("x")]);

    // Counted as servers come and go (SHARDNUMSUB of the namespace channel): one that
    // joins, then leaves; requests then wait for exactly the servers there are.
    let extra = node_serving(later, Parser::Json, Serve::ROOT).await;
    until_server_count(&servers[0], 4, T).await;
    assert_eq!(servers[1].io.fetch_sockets().await.unwrap().len(), 3);
    extra.cluster.close().await;
    until_server_count(&servers[0], 3, T).await;
    let replies = servers[0]
        .cluster
        .of("/")
        .server_side_emit_with_ack("ping", &())
        .await
        .unwrap();
    assert_eq!(replies.len(), 2, "after a server left: {replies:?}");
    for s in &servers {
        s.cluster.close().await;
    }
    assert_eq!(servers[0].cluster.stats().malformed, 0);
}

/// A Node server (socket.io 4.8.4, redis-adapter 8.3.0, node-redis 4.7.1 `createCluster`)
/// and two Rust servers on three different nodes of one Redis Cluster, one protocol each
/// run: broadcasts both ways, counts, fetchSockets both ways, server-side acks.
async fn node_on_the_cluster(protocol: Option<SubscriptionMode>) {
    node_on_the_cluster_with(protocol, None).await;
}

/// `streams`: both on the streams protocol (Node's `@socket.io/redis-streams-adapter`
/// 0.3.1), its pub/sub part sharded when `Some(true)`.
async fn node_on_the_cluster_with(protocol: Option<SubscriptionMode>, streams: Option<bool>) {
    use common::node::{start_client, start_server};
    use serde_json::json;
    common::init_tracing();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .unwrap();
    let key = common::unique_key("rc-node");
    let stream = format!("{key}-s");
    let mut args = vec!["--cluster"];
    if let Some(mode) = protocol {
        args.extend(["--sharded", mode.as_str()]);
    }
    if let Some(sharded) = streams {
        args.extend(["--streams", stream.as_str()]);
        if sharded {
            args.push("--streams-sharded");
        }
    }
    let mut node = start_server("rc-node-N", &cluster.urls().join(","), &key, &args).await;
    let mut servers = Vec::new();
    for i in 1..3 {
        let mut opts = ClusterOptions::redis_cluster(cluster.seeds_from(i))
            .key(key.clone())
            .requests_timeout(T);
        if let Some(mode) = protocol {
            opts = opts.sharded(mode);
        }
        if let Some(sharded) = streams {
            opts = opts.streams(socketioxide_cluster::StreamsOptions {
                stream_name: stream.clone(),
                use_sharded_pub_sub: sharded,
                ..Default::default()
            });
        }
        servers.push(node_serving(opts, Parser::Json, Serve::ROOT).await);
    }
    let (r1, r2) = (&servers[0], &servers[1]);
    let mut n1 = start_client("rc-n1", &node.url(), "/", json!(["lobby"]), &[]).await;
    let mut c1 = client(r1, "/", Parser::Json, &["lobby"], T).await;
    let mut c2 = client(r2, "/", Parser::Json, &[], T).await;
    let what = match streams {
        Some(true) => "streams, sharded pub/sub",
        Some(false) => "streams",
        None => protocol.map_or("classic", SubscriptionMode::as_str),
    };

    let count = node.request(json!({"cmd": "serverCount"}), T).await;
    assert_eq!(count["count"], json!(3), "{what}: {count}");
    for r in [r1, r2] {
        assert_eq!(r.cluster.of("/").server_count().await.unwrap(), 3, "{what}");
    }
    // In the dynamic modes a room's channel is subscribed shortly after the room
    // appears: probe until the Rust server gets a Node broadcast to the room.
    let started = std::time::Instant::now();
    loop {
        node.request(
            json!({"cmd": "emit", "to": "lobby", "event": "probe", "args": []}),
            T,
        )
        .await;
        if let Some(ev) = c1.try_recv_event(Duration::from_millis(50)).await {
            assert_eq!(ev.name, "probe");
            break;
        }
        assert!(
            started.elapsed() < T,
            "{what}: no Node room broadcast reached r1"
        );
    }
    while c1
        .try_recv_event(Duration::from_millis(100))
        .await
        .is_some()
    {}
    node.request(json!({"cmd": "emit", "event": "all", "args": ["n"]}), T)
        .await;
    for c in [&mut c1, &mut c2] {
        assert_eq!(c.recv_event_named("all", T).await.str_arg(0), "n", "{what}");
    }
    r2.io.to("lobby").emit("to-lobby", &"r").await.unwrap();
    assert_eq!(
        n1.next_client_event("to-lobby", T).await["args"],
        json!(["r"]),
        "{what}"
    );
    assert_eq!(c1.recv_event_named("to-lobby", T).await.str_arg(0), "r");
    if streams.is_some() {
        // Both broadcasts went through the stream, on the master that owns its key.
        let lens: Vec<usize> = (0..cluster.nodes().len())
            .filter_map(|i| cluster.cli(i, &["xlen", &stream]).trim().parse().ok())
            .collect();
        assert_eq!(
            lens.len(),
            1,
            "{what}: one master holds the stream: {lens:?}"
        );
        assert!(
            lens[0] >= 2,
            "{what}: Node's and ours are entries: {lens:?}"
        );
    }
    let got = r1.io.fetch_sockets().await.unwrap();
    assert_eq!(got.len(), 3, "{what}");
    let all = node.request(json!({"cmd": "fetchSockets"}), T).await;
    assert_eq!(
        all["sockets"].as_array().map(Vec::len),
        Some(3),
        "{what}: {all}"
    );
    r2.cluster
        .of("/")
        .on_server_side("ping", |ev| ev.ack("pong"));
    let replies = r1
        .cluster
        .of("/")
        .server_side_emit_with_ack("ping", &())
        .await
        .unwrap();
    assert_eq!(replies.len(), 2, "{what}: the Node server and r2");
    r1.cluster
        .of("/")
        .on_server_side("ping", |ev| ev.ack("pong-r1"));
    // Our emitter on the cluster asks every server (the Node one too).
    let mut eo = EmitterOptions::redis_cluster(cluster.urls())
        .key(key.clone())
        .requests_timeout(T);
    if let Some(mode) = protocol {
        eo = eo.sharded(mode);
    }
    if let Some(sharded) = streams {
        eo = eo.streams(stream.clone()).use_sharded_pub_sub(sharded);
    }
    let em = Emitter::connect(eo).await.unwrap();
    assert_eq!(em.server_count().await.unwrap(), 3, "{what}: emitter count");
    let from_emitter = em.fetch_sockets().await.unwrap();
    assert_eq!(
        from_emitter.len(),
        3,
        "{what}: emitter fetch {from_emitter:?}"
    );
    let acks = em.server_side_emit_with_ack("ping", &()).await.unwrap();
    assert_eq!(acks.len(), 3, "{what}: {acks:?}");
    for s in &servers {
        s.cluster.close().await;
    }
    common::cluster::shutdown_all(vec![n1, node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_classic_server_on_a_redis_cluster() {
    node_on_the_cluster(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_streams_server_on_a_redis_cluster() {
    node_on_the_cluster_with(None, Some(false)).await;
    node_on_the_cluster_with(None, Some(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sharded_server_on_a_redis_cluster() {
    node_on_the_cluster(Some(SubscriptionMode::Static)).await;
    node_on_the_cluster(Some(SubscriptionMode::Dynamic)).await;
}

/// Broadcasts flow from A to B's client over the sharded protocol while the master that
/// owns the namespace channel is killed (SIGKILL; its replica is promoted): delivery
/// resumes by itself; the emits refused meanwhile failed fast with an error, and what
/// Redis accepted but nobody received is counted here (at-most-once, as in Node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_delivery_resumes_after_the_owning_master_is_killed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    common::init_tracing();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 1))
        .await
        .unwrap();
    let key = common::unique_key("rc-failover");
    let mut servers = Vec::new();
    for i in 0..2 {
        let opts = ClusterOptions::redis_cluster(cluster.seeds_from(i))
            .sharded(SubscriptionMode::Static)
            .key(key.clone())
            .connect_timeout(Duration::from_secs(1))
            .requests_timeout(T);
        servers.push(node_serving(opts, Parser::Json, Serve::ROOT).await);
    }
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    let main = format!("{key}#/#");
    // Only the owning master has the subscriptions (both servers').
    let owner = (0..cluster.nodes().len())
        .find(|&i| {
            cluster
                .cli(i, &["pubsub", "shardnumsub", &main])
                .lines()
                .nth(1)
                == Some("2")
        })
        .expect("the master owning the namespace channel");

    let (sent, failed, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let io = servers[0].io.clone();
    let ticker = {
        let (sent, failed, stop) = (sent.clone(), failed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                // Confirmed by Redis or failed: `emit` only queues, so count by the
                // transport's outcome afterwards instead; here every call is one tick.
                match io.emit("tick", &(i,)).await {
                    Ok(()) => sent.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            i
        })
    };
    c.recv_event_named("tick", T).await;
    let at_kill = sent.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
    let killed = std::time::Instant::now();
    cluster.nodes()[owner].kill();
    let mut received = std::collections::BTreeSet::new();
    let resumed = loop {
        let ev = c.recv_event_named("tick", Duration::from_secs(30)).await;
        let i = ev.i64_arg(0) as u64;
        received.insert(i);
        if i > at_kill + 50 {
            break killed.elapsed();
        }
    };
    stop.store(true, Ordering::Relaxed);
    let total = ticker.await.unwrap();
    while let Some(ev) = c.try_recv_event(Duration::from_millis(300)).await {
        received.insert(ev.i64_arg(0) as u64);
    }
    let stats = servers[0].cluster.stats();
    let first = *received.iter().next().unwrap();
    let missing = (first..total).filter(|i| !received.contains(i)).count();
    let refused = failed.load(Ordering::Relaxed);
    eprintln!(
        "received {} ticks, from {first} to {:?}; {total} emitted",
        received.len(),
        received.iter().next_back()
    );
    eprintln!(
        "owning master killed: delivery resumed {resumed:?} later; {total} emits: {refused} \
         refused by emit, {} failed in the publisher (publish_failed), {} reached fewer \
         servers than alive (under_delivered); {missing} not received",
        stats.publish_failed, stats.under_delivered,
    );
    assert!(servers[1].cluster.is_connected());
    assert_eq!(servers[1].cluster.of("/").server_count().await.unwrap(), 2);
    // Nothing is lost silently: a missing tick was refused, failed in the publisher or
    // reached fewer servers than alive (all counted), but for the few Redis accepted in
    // the instant it died.
    let counted = refused + stats.publish_failed + stats.under_delivered;
    assert!(
        missing as u64 <= counted + 10,
        "{missing} missing, {counted} counted"
    );
}
