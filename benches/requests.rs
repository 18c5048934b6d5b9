//! Latency of cluster-wide requests across 3 servers on one real `redis-server`.
//!
//! `cargo bench --bench requests` (release build, plain `fn main`).
//!
//! Three socketioxide servers with a `ClusterAdapter`, `BENCH_CLIENTS` clients (default
//! 30) spread over them in 10 rooms; server A runs, one after the other, `BENCH_CALLS`
//! (default 2000) calls of each operation and prints p50/p99/max. Each call waits for the
//! other two servers' replies (counted with PUBSUB NUMSUB, as Node does).

use socketioxide_cluster_test_support::{client, redis as redis_server, server};

use client::{Client, Parser};
use redis_server::RedisServer;
use serde_json::json;
use socketioxide::{SocketIo, adapter::Emitter};
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions};
use std::time::{Duration, Instant};

type Io = SocketIo<ClusterAdapter<Emitter>>;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let total: Duration = samples.iter().sum();
    println!(
        "{name:<28} {:>6} calls  p50 {:>6.3} ms  p99 {:>6.3} ms  max {:>6.3} ms  ({:.0} calls/s sequential)",
        samples.len(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*samples.last().unwrap()),
        samples.len() as f64 / total.as_secs_f64()
    );
}

async fn node(url: &str) -> (Io, Cluster, std::net::SocketAddr) {
    let cluster = Cluster::connect(ClusterOptions::new(url).key("bench-rq"))
        .await
        .expect("connect");
    let (layer, io) = SocketIo::builder()
        .with_adapter::<ClusterAdapter<_>>(cluster.clone())
        .build_layer();
    server::test_ns(&io, "/").await.expect("ns");
    let addr = server::serve(layer).await;
    (io, cluster, addr)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = env("BENCH_CALLS", 2000);
    let clients = env("BENCH_CLIENTS", 30);
    let redis = RedisServer::start();
    let url = redis.url();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(node(&url).await);
    }
    let mut conns = Vec::new();
    for i in 0..clients {
        let c = Client::connect(nodes[i % 3].2, "/", Parser::Json).await;
        c.emit_with_ack(
            "join",
            vec![json!(format!("room{}", i % 10))],
            Duration::from_secs(10),
        )
        .await;
        conns.push(c);
    }
    for (_, c, _) in &nodes[1..] {
        c.of("/").on_server_side("bench", |ev| ev.ack("pong"));
    }
    let (io, cluster, _) = &nodes[0];
    let ns = cluster.of("/");
    assert_eq!(ns.server_count().await.unwrap(), 3);
    println!(
        "3 servers, {clients} clients in 10 rooms, {calls} sequential calls each, from server A:"
    );

    macro_rules! run {
        ($name:expr, $call:expr) => {{
            for _ in 0..50 {
                $call; // warm-up
            }
            let mut samples = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                $call;
                samples.push(t.elapsed());
            }
            report($name, samples);
        }};
    }
    run!(
        "io.fetch_sockets()",
        assert_eq!(io.fetch_sockets().await.unwrap().len(), clients)
    );
    run!(
        "io.to(room3).fetch_sockets()",
        io.to("room3").fetch_sockets().await.unwrap()
    );
    run!("cluster.of(/).all_rooms()", ns.all_rooms().await.unwrap());
    run!("io.rooms()", io.rooms().await.unwrap());
    run!("server_side_emit_with_ack", {
        let _ = ns.server_side_emit_with_ack("bench", &()).await;
    });
    let stats = cluster.stats();
    println!(
        "server A stats: {stats:?}; pending requests {}",
        cluster.pending_requests()
    );
    drop(conns);
}
