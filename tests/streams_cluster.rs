//! The Redis Streams transport over a real Redis Cluster (3 masters on free ports): each
//! stream is a key on the master owning its slot, written there and read there, with
//! the pub/sub part classic (`PUBLISH` reaches every node, Node's default) or sharded
//! (`use_sharded_pub_sub`, Node's `useShardedPubSub`). Two servers on different nodes:
//! broadcasts, joins and requests cross; the readers' connections killed while
//! broadcasts flow lose and duplicate nothing; the stream's master killed (SIGKILL, its
//! replica promoted): delivery resumes by itself, every entry the new master holds was
//! delivered once, and what was lost is counted.
//!
//! Requires `redis-server` and `redis-cli` (Debian's redis-server and redis-tools).

use socketioxide_cluster_test_support as common;

use common::Parser;
use common::cluster::{Node, Serve, client, node_serving, until_server_count};
use common::redis_cluster::RedisCluster;
use socketioxide_cluster::{ClusterOptions, StreamsOptions};
use socketioxide_cluster_emitter::{Emitter, EmitterOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn opts(cluster: &RedisCluster, i: usize, key: &str, sharded: bool) -> ClusterOptions {
    ClusterOptions::redis_cluster(cluster.seeds_from(i))
        .key(key)
        .connect_timeout(Duration::from_secs(1))
        .requests_timeout(T)
        .streams(StreamsOptions {
            stream_name: format!("{key}-s"),
            use_sharded_pub_sub: sharded,
            ..StreamsOptions::default()
        })
}

/// The node holding `stream` (the master that answers `XLEN` without `MOVED`) and its
/// length.
fn owner_of(cluster: &RedisCluster, stream: &str) -> (usize, usize) {
    let deadline = Instant::now() + T;
    loop {
        for i in 0..cluster.nodes().len() {
            if !cluster.nodes()[i].answers_ping(Duration::from_millis(200)) {
                continue;
            }
            if let Ok(n) = cluster.cli(i, &["xlen", stream]).trim().parse() {
                return (i, n);
            }
        }
        assert!(Instant::now() < deadline, "no node owns {stream}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills every connection blocked in `XREAD` on every node (the stream readers).
fn kill_readers(cluster: &RedisCluster) -> usize {
    let mut killed = 0;
    for i in 0..cluster.nodes().len() {
        for line in cluster.cli(i, &["client", "list"]).lines() {
            if line.contains(" cmd=xread") {
                let id = line.split(' ').next().unwrap().trim_start_matches("id=");
                cluster.cli(i, &["client", "kill", "id", id]);
                killed += 1;
            }
        }
    }
    killed
}

/// The tick numbers of the entries `stream` holds, read on node `i`.
fn ticks_in(cluster: &RedisCluster, i: usize, stream: &str) -> Vec<u64> {
    // `redis-cli` prints each field on a line; a broadcast's data is JSON holding
    // `["tick",<n>]`.
    cluster
        .cli(i, &["xrange", stream, "-", "+"])
        .lines()
        .filter_map(|l| {
            let at = l.find("[\"tick\",")? + "[\"tick\",".len();
            let rest = &l[at..];
            rest[..rest.find(']')?].parse().ok()
        })
        .collect()
}

/// Emits "tick" i from `node` every millisecond until stopped (`next`: the next i);
/// returns the count.
fn ticker(
    node: &Node,
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    next: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    let io = node.io.clone();
    tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if io.emit("tick", &(i,)).await.is_err() {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            i += 1;
            next.store(i, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        i
    })
}

async fn servers(cluster: &RedisCluster, key: &str, sharded: bool) -> Vec<Node> {
    let mut servers = Vec::new();
    for i in 0..2 {
        servers.push(node_serving(opts(cluster, i, key, sharded), Parser::Json, Serve::ROOT).await);
    }
    servers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_a_redis_cluster_classic_and_sharded_pubsub() {
    common::init_tracing();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .unwrap();
    for sharded in [false, true] {
        let what = if sharded {
            "sharded pub/sub"
        } else {
            "classic pub/sub"
        };
        let key = common::unique_key("rc-streams");
        let stream = format!("{key}-s");
        let servers = servers(&cluster, &key, sharded).await;
        let mut a = client(&servers[0], "/", Parser::Json, &["ra"], T).await;
        let mut b = client(&servers[1], "/", Parser::Json, &["rb"], T).await;
        until_server_count(&servers[0], 2, T).await;
        until_server_count(&servers[1], 2, T).await;

        servers[0].io.emit("all", &("x",)).await.unwrap();
        assert_eq!(b.recv_event_named("all", T).await.str_arg(0), "x", "{what}");
        assert_eq!(a.recv_event_named("all", T).await.str_arg(0), "x", "{what}");
        servers[1].io.to("ra").emit("room", &(1,)).await.unwrap();
        assert_eq!(a.recv_event_named("room", T).await.i64_arg(0), 1, "{what}");
        let (owner, len) = owner_of(&cluster, &stream);
        assert_eq!(
            len, 2,
            "{what}: broadcasts are entries of the stream on node {owner}"
        );

        // Requests over pub/sub, answered by both; a join through the stream.
        assert_eq!(
            servers[1].io.fetch_sockets().await.unwrap().len(),
            2,
            "{what}"
        );
        servers[1].io.to("ra").join("joined").await.unwrap();
        assert_eq!(owner_of(&cluster, &stream).1, 3, "{what}");
        let got = servers[0].io.to("joined").fetch_sockets().await.unwrap();
        assert_eq!(got.len(), 1, "{what}");
        assert_eq!(got[0].data().id.as_str(), a.sid());
        servers[1]
            .cluster
            .of("/")
            .on_server_side("ping", |ev| ev.ack("pong"));
        let replies = servers[0]
            .cluster
            .of("/")
            .server_side_emit_with_ack("ping", &())
            .await
            .unwrap();
        assert_eq!(replies.len(), 1, "{what}");

        // An emitter on the cluster writes the stream too (on its master), and counts
        // the servers.
        let emitter = Emitter::connect(
            EmitterOptions::redis_cluster(cluster.urls())
                .key(key.clone())
                .streams(stream.clone())
                .use_sharded_pub_sub(sharded),
        )
        .await
        .unwrap();
        assert_eq!(
            emitter
                .emit("from-emitter", &"e")
                .confirmed()
                .await
                .unwrap(),
            2,
            "{what}"
        );
        assert_eq!(a.recv_event_named("from-emitter", T).await.str_arg(0), "e");
        assert_eq!(b.recv_event_named("from-emitter", T).await.str_arg(0), "e");
        assert_eq!(
            owner_of(&cluster, &stream).1,
            4,
            "{what}: the emitter's entry"
        );
        let heard = Arc::new(AtomicU64::new(0));
        let h = heard.clone();
        servers[0]
            .cluster
            .of("/")
            .on_server_side("hello", move |_| {
                h.fetch_add(1, Ordering::Relaxed);
            });
        emitter
            .server_side_emit("hello", &"from the emitter")
            .await
            .unwrap();
        let deadline = Instant::now() + T;
        while heard.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < deadline,
                "{what}: the emitter's server-side emit"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // The readers' connections killed while broadcasts flow: all delivered, once.
        let (stop, refused) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let tick = ticker(&servers[0], stop.clone(), refused.clone(), Arc::default());
        b.recv_event_named("tick", T).await;
        let mut kills = 0;
        for _ in 0..3 {
            kills += tokio::task::block_in_place(|| kill_readers(&cluster));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let total = tick.await.unwrap();
        let mut got: BTreeMap<u64, usize> = BTreeMap::new();
        got.insert(0, 1);
        while got.len() < total as usize {
            let Some(ev) = b.try_recv_event(T).await else {
                break;
            };
            *got.entry(ev.i64_arg(0) as u64).or_default() += 1;
        }
        assert!(b.try_recv_event(Duration::from_millis(300)).await.is_none());
        let missing: Vec<u64> = (0..total).filter(|i| !got.contains_key(i)).collect();
        let dup: Vec<u64> = got
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(i, _)| *i)
            .collect();
        eprintln!(
            "{what}: reader connections killed {kills} times while {total} broadcasts flowed: {} missing, {} duplicated",
            missing.len(),
            dup.len()
        );
        assert!(kills >= 3, "{kills} readers killed");
        assert_eq!(refused.load(Ordering::Relaxed), 0, "{what}");
        assert!(missing.is_empty(), "{what}: missing {missing:?}");
        assert!(dup.is_empty(), "{what}: duplicated {dup:?}");
        assert!(servers[1].cluster.stats().reconnects >= 1);
        for s in &servers {
            s.cluster.close().await;
            assert_eq!(s.cluster.stats().malformed, 0);
            assert_eq!(s.cluster.stats().stream_missed, 0);
        }
    }
}

/// The master holding the stream is killed while broadcasts flow; its replica is
/// promoted. The reader finds the stream's new master by itself and reads on from its
/// offset: every entry the new master holds reaches the client once; what is missing
/// was refused by `emit`, failed in the publisher (both counted), or was accepted by the
/// old master in the instant before it died and never replicated (asynchronous
/// replication; Node loses those too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_resume_on_the_promoted_replica_when_the_streams_master_dies() {
    common::init_tracing();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 1))
        .await
        .unwrap();
    let key = common::unique_key("rc-streams-failover");
    let stream = format!("{key}-s");
    let servers = servers(&cluster, &key, false).await;
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    until_server_count(&servers[0], 2, T).await;
    let (stop, refused) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let next = Arc::new(AtomicU64::new(0));
    let tick = ticker(&servers[0], stop.clone(), refused.clone(), next.clone());
    c.recv_event_named("tick", T).await;
    let (owner, _) = tokio::task::block_in_place(|| owner_of(&cluster, &stream));
    let at_kill = next.load(Ordering::Relaxed);
    let killed = Instant::now();
    cluster.nodes()[owner].kill();
    let mut got: BTreeMap<u64, usize> = BTreeMap::new();
    // Resumed: ticks emitted well after the kill arrive.
    let resumed = loop {
        let ev = c.recv_event_named("tick", Duration::from_secs(30)).await;
        let i = ev.i64_arg(0) as u64;
        *got.entry(i).or_default() += 1;
        if i > at_kill + 50 {
            break killed.elapsed();
        }
    };
    // Some more ticks after the resume, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let total = tick.await.unwrap();
    while let Some(ev) = c.try_recv_event(Duration::from_millis(500)).await {
        *got.entry(ev.i64_arg(0) as u64).or_default() += 1;
    }
    let (new_owner, _) = tokio::task::block_in_place(|| owner_of(&cluster, &stream));
    let held: BTreeSet<u64> =
        tokio::task::block_in_place(|| ticks_in(&cluster, new_owner, &stream))
            .into_iter()
            .collect();
    let first = *got.keys().next().unwrap();
    let not_delivered: Vec<u64> = held
        .iter()
        .filter(|i| **i >= first && !got.contains_key(i))
        .copied()
        .collect();
    let dup: Vec<u64> = got
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    let missing = (first..total).filter(|i| !got.contains_key(i)).count() as u64;
    let stats = servers[0].cluster.stats();
    let refused = refused.load(Ordering::Relaxed);
    eprintln!(
        "streams master killed: delivery resumed {resumed:?} later (node {owner} -> {new_owner}); \
         {total} emits: {} received, {missing} not received ({refused} refused by emit, {} failed \
         in the publisher, the rest accepted by the dying master and not replicated); the new \
         master holds {} of them, {} not delivered; {} duplicated",
        got.len(),
        stats.publish_failed,
        held.len(),
        not_delivered.len(),
        dup.len()
    );
    assert_ne!(owner, new_owner, "the replica holds the stream now");
    assert!(
        not_delivered.is_empty(),
        "in the stream, never delivered: {not_delivered:?}"
    );
    assert!(dup.is_empty(), "duplicated: {dup:?}");
    let counted = refused + stats.publish_failed;
    assert!(
        missing <= counted + 50,
        "{missing} missing, {counted} counted"
    );
    assert_eq!(servers[1].cluster.of("/").server_count().await.unwrap(), 2);
    for s in &servers {
        s.cluster.close().await;
    }
}
