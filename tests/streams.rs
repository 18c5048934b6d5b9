//! The Redis Streams transport (`ClusterOptions::streams`) between Rust servers on a
//! real `redis-server`: broadcasts and joins go through the stream (it grows), requests
//! over pub/sub; the reader's connection killed while broadcasts flow loses nothing and
//! duplicates nothing; a reader kept away while the stream is trimmed past its offset
//! counts exactly what it missed.
//!
//! Requires `redis-server` and `redis-cli` (Debian's redis-server and redis-tools).

use socketioxide_cluster_test_support as common;

use common::Parser;
use common::cluster::{Node, Serve, client, nodes_serving, until_server_count};
use common::redis::{RedisServer, cli};
use socketioxide_cluster::{ClusterOptions, StreamsOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn redis() -> &'static RedisServer {
    static R: OnceLock<RedisServer> = OnceLock::new();
    R.get_or_init(RedisServer::start)
}

fn opts(key: &str, streams: StreamsOptions) -> ClusterOptions {
    ClusterOptions::new(redis().url())
        .key(key)
        .streams(streams)
        .requests_timeout(T)
}

fn streams_named(name: &str) -> StreamsOptions {
    StreamsOptions {
        stream_name: name.to_owned(),
        ..StreamsOptions::default()
    }
}

fn xlen(port: u16, stream: &str) -> usize {
    cli(port, &["xlen", stream]).trim().parse().unwrap()
}

/// Kills every connection blocked in `XREAD` (the servers' stream readers).
fn kill_readers() -> usize {
    let mut killed = 0;
    for line in cli(redis().port(), &["client", "list"]).lines() {
        if line.contains(" cmd=xread") {
            let id = line.split(' ').next().unwrap().trim_start_matches("id=");
            cli(redis().port(), &["client", "kill", "id", id]);
            killed += 1;
        }
    }
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_go_through_the_stream_and_requests_over_pubsub() {
    common::init_tracing();
    let key = common::unique_key("streams");
    let stream = format!("{key}-stream");
    let servers = nodes_serving(
        2,
        &opts(&key, streams_named(&stream)),
        Parser::Json,
        Serve::ROOT,
    )
    .await;
    let mut a = client(&servers[0], "/", Parser::Json, &["ra"], T).await;
    let mut b = client(&servers[1], "/", Parser::Json, &["rb"], T).await;
    until_server_count(&servers[0], 2, T).await;

    servers[0].io.emit("all", &("x",)).await.unwrap();
    assert_eq!(b.recv_event_named("all", T).await.str_arg(0), "x");
    assert_eq!(a.recv_event_named("all", T).await.str_arg(0), "x");
    servers[0].io.to("rb").emit("room", &(1,)).await.unwrap();
    assert_eq!(b.recv_event_named("room", T).await.i64_arg(0), 1);
    assert_eq!(
        xlen(redis().port(), &stream),
        2,
        "broadcasts are stream entries"
    );

    // Requests: pub/sub, answered by both.
    assert_eq!(servers[1].io.fetch_sockets().await.unwrap().len(), 2);
    // Join: a stream entry too, seen by the next request.
    servers[1].io.to("ra").join("joined").await.unwrap();
    assert_eq!(xlen(redis().port(), &stream), 3);
    let got = servers[1].io.to("joined").fetch_sockets().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data().id.as_str(), a.sid());
    for s in &servers {
        s.cluster.close().await;
    }
}

/// Emits "tick" i from `node` every millisecond until stopped; returns the count.
fn ticker(
    node: &Node,
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    let io = node.io.clone();
    tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if io.emit("tick", &(i,)).await.is_err() {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        i
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_reader_connection_loses_and_duplicates_nothing() {
    common::init_tracing();
    let key = common::unique_key("streams-kill");
    let servers = nodes_serving(
        2,
        &opts(&key, streams_named(&format!("{key}-s"))),
        Parser::Json,
        Serve::ROOT,
    )
    .await;
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    until_server_count(&servers[0], 2, T).await;
    let (stop, refused) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let tick = ticker(&servers[0], stop.clone(), refused.clone());
    c.recv_event_named("tick", T).await;
    let mut kills = 0;
    for _ in 0..3 {
        kills += tokio::task::block_in_place(kill_readers);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kills >= 3, "{kills} readers killed");
    stop.store(true, Ordering::Relaxed);
    let total = tick.await.unwrap();
    let mut got: BTreeMap<u64, usize> = BTreeMap::new();
    got.insert(0, 1);
    while got.len() < total as usize {
        let Some(ev) = c.try_recv_event(T).await else {
            break;
        };
        *got.entry(ev.i64_arg(0) as u64).or_default() += 1;
    }
    // Nothing more arrives (no duplicate after the last one).
    assert!(c.try_recv_event(Duration::from_millis(300)).await.is_none());
    let missing: Vec<u64> = (0..total).filter(|i| !got.contains_key(i)).collect();
    let dup: Vec<u64> = got
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    eprintln!(
        "reader connections killed {kills} times while {total} broadcasts flowed: {} missing, {} duplicated, {} refused",
        missing.len(),
        dup.len(),
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "the publisher's connection was not touched"
    );
    assert!(missing.is_empty(), "missing: {missing:?}");
    assert!(dup.is_empty(), "duplicated: {dup:?}");
    assert!(servers[1].cluster.stats().reconnects >= 1);
    assert_eq!(servers[1].cluster.stats().stream_missed, 0);
}

/// A reader that cannot reconnect (Redis' `maxclients` reached) while the stream is
/// trimmed past its offset counts what it missed, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_max_len_counts_the_gap() {
    common::init_tracing();
    let redis = RedisServer::start();
    let key = common::unique_key("streams-gap");
    let stream = format!("{key}-s");
    let opts = ClusterOptions::new(redis.url())
        .key(&key)
        .requests_timeout(T)
        .streams(StreamsOptions {
            stream_name: stream.clone(),
            max_len: 10,
            ..StreamsOptions::default()
        });
    let servers = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    servers[0].io.emit("tick", &(0,)).await.unwrap();
    c.recv_event_named("tick", T).await;
    // Keep the readers out: one connection of the test's, the limit set to the
    // clients there now minus the two readers, then the readers killed.
    let mut admin = common::command_conn(&redis.url()).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let readers: Vec<&str> = list
        .lines()
        .filter(|l| l.contains(" cmd=xread"))
        .map(|l| l.split(' ').next().unwrap().trim_start_matches("id="))
        .collect();
    assert_eq!(readers.len(), 2);
    let limit = list.lines().count() - readers.len();
    let set_max = |n: usize| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxclients")
            .arg(n)
            .to_owned()
    };
    set_max(limit).query_async::<()>(&mut admin).await.unwrap();
    for id in readers {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async::<()>(&mut admin)
            .await
            .unwrap();
    }
    let n = 1000u64;
    for i in 1..=n {
        servers[0].io.emit("tick", &(i,)).await.unwrap();
    }
    // Every XADD is in (the publisher's pipeline was flushed by a confirmed command).
    servers[0].io.to("nobody").join("x").await.unwrap();
    let len: usize = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(len < 500, "trimmed to about maxLen: {len}");
    set_max(10_000).query_async::<()>(&mut admin).await.unwrap();
    // The reader is back: what is left arrives; what was trimmed is counted.
    let mut got = 0u64;
    let mut last = 0;
    while last < n {
        let ev = c.recv_event_named("tick", T).await;
        last = ev.i64_arg(0) as u64;
        got += 1;
    }
    let missed = servers[1].cluster.stats().stream_missed;
    eprintln!(
        "1000 broadcasts while the reader was away, stream trimmed to {len}: {got} delivered, {missed} counted as missed"
    );
    assert!(missed > 0);
    // Every broadcast is either delivered or counted missed, exactly (the join entry,
    // the last one, is still in the stream and read).
    assert_eq!(got + missed, n);
}

/// Redis restarted (SIGKILL, 300 ms down, no persistence: the stream starts anew) while
/// broadcasts flow: every broadcast emitted while it was down is kept and appended once
/// it answers (`offline_queue`), every one accepted after is delivered, all once; what
/// was lost went down with Redis or failed in the publisher (counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing_emitted_during_or_after_it() {
    common::init_tracing();
    let redis = Arc::new(RedisServer::start());
    let key = common::unique_key("streams-restart");
    let opts = ClusterOptions::new(redis.url())
        .key(&key)
        .requests_timeout(T)
        .streams(streams_named(&format!("{key}-s")));
    let servers = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    let io = servers[0].io.clone();
    let stop = Arc::new(AtomicBool::new(false));
    // (i, accepted) for every tick, and when Redis answered again.
    let log = Arc::new(std::sync::Mutex::new(
        Vec::<(u64, bool, std::time::Instant)>::new(),
    ));
    let tick = {
        let (stop, log) = (stop.clone(), log.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ok = io.emit("tick", &(i,)).await.is_ok();
                log.lock().unwrap().push((i, ok, std::time::Instant::now()));
                i += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    c.recv_event_named("tick", T).await;
    let (killed, back) = {
        let r = redis.clone();
        tokio::task::spawn_blocking(move || {
            r.kill();
            let killed = std::time::Instant::now();
            std::thread::sleep(Duration::from_millis(300));
            r.restart();
            (killed, std::time::Instant::now())
        })
        .await
        .unwrap()
    };
    // Tick on until a tick emitted 1 s after Redis was back arrives.
    let mut got: BTreeMap<u64, usize> = BTreeMap::new();
    loop {
        let ev = c.recv_event_named("tick", T).await;
        let i = ev.i64_arg(0) as u64;
        *got.entry(i).or_default() += 1;
        if log
            .lock()
            .unwrap()
            .iter()
            .any(|(j, _, at)| *j == i && *at > back + Duration::from_secs(1))
        {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    tick.await.unwrap();
    while let Some(ev) = c.try_recv_event(Duration::from_millis(500)).await {
        *got.entry(ev.i64_arg(0) as u64).or_default() += 1;
    }
    let log = log.lock().unwrap().clone();
    let accepted_after: Vec<u64> = log
        .iter()
        .filter(|(_, ok, at)| *ok && *at > back)
        .map(|(i, ..)| *i)
        .collect();
    let lost_after: Vec<u64> = accepted_after
        .iter()
        .copied()
        .filter(|i| !got.contains_key(i))
        .collect();
    let dup: Vec<u64> = got
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    let lost_before = log
        .iter()
        .filter(|(i, ok, at)| *ok && *at <= back && !got.contains_key(i))
        .count();
    // Emitted while Redis was down: kept (offline_queue) and appended once it was back.
    let during: Vec<u64> = log
        .iter()
        .filter(|(_, ok, at)| *ok && *at > killed && *at <= back)
        .map(|(i, ..)| *i)
        .collect();
    let lost_during = during.iter().filter(|i| !got.contains_key(i)).count();
    let refused = log.iter().filter(|(_, ok, _)| !ok).count();
    let a = servers[0].cluster.stats();
    eprintln!(
        "redis restarted: {} emitted while it was down, {lost_during} of them lost, {} held; \
         {} accepted after it was back, {} of them lost; {lost_before} accepted before lost \
         (publish_failed {}), {refused} refused, {} duplicated",
        during.len(),
        a.stream_held,
        accepted_after.len(),
        lost_after.len(),
        a.publish_failed,
        dup.len()
    );
    assert!(!accepted_after.is_empty());
    assert!(a.stream_held > 0, "entries were held while Redis was down");
    assert_eq!(refused, 0, "nothing refused: the offline queue had room");
    // Only what was in the pipeline when Redis died can be lost (counted).
    assert!(
        lost_during as u64 <= a.publish_failed,
        "{lost_during} emitted while down lost, {} counted",
        a.publish_failed
    );
    assert!(
        lost_after.is_empty(),
        "lost after Redis was back: {lost_after:?}"
    );
    assert!(dup.is_empty(), "duplicated: {dup:?}");
    for s in &servers {
        s.cluster.close().await;
    }
}
