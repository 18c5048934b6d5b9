//! Broadcast throughput and request latency across two servers, one Redis against a
//! 3-master Redis Cluster, classic protocol against sharded, in one run.
//!
//! `cargo bench --bench cluster` (plain `fn main`). Every phase: servers A and B (on
//! different nodes of the cluster), `BENCH_CLIENTS` clients on B; A broadcasts
//! `BENCH_N` events as fast as it can; the time until every client of B received all
//! of them gives broadcasts/s; then `BENCH_CALLS` sequential `fetch_sockets()` from A
//! give the request latency. `BENCH_SETUPS` (comma-separated parts of the names below)
//! runs only some. Phases:
//!
//! * one Redis, classic; one Redis, sharded (static); one Redis, streams (the Streams
//!   protocol: broadcasts XADDed and read back with XREAD by B);
//! * cluster, classic (PUBLISH copied to every node by the cluster bus);
//! * cluster, sharded static: one namespace, so one shard carries everything;
//! * cluster, sharded dynamic, the clients spread over `BENCH_ROOMS` rooms and A's
//!   broadcasts round-robin over them: each room's channel lives on its own slot, so the
//!   load spreads over the shards;
//! * cluster, sharded static and classic, the clients split over `/` and `/admin` and the
//!   broadcasts alternating: two namespace channels, on two shards when sharded.
//!
//! Everything (servers, clients, every redis-server) shares this machine's cores: the
//! figures compare the setups with each other, not with a production cluster.
//!
//! Environment: `BENCH_N` (default 20000), `BENCH_CLIENTS` (10), `BENCH_ROOMS` (6),
//! `BENCH_CALLS` (500).

use socketioxide_cluster::{ClusterOptions, StreamsOptions, SubscriptionMode};
use socketioxide_cluster_test_support::bench::{command_line, env_num};
use socketioxide_cluster_test_support::cluster::{Node, Serve, client, node_serving};
use socketioxide_cluster_test_support::redis_cluster::RedisCluster;
use socketioxide_cluster_test_support::{Client, Parser, RedisServer, unique_key};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(120);

struct Setup {
    name: &'static str,
    a: ClusterOptions,
    b: ClusterOptions,
    /// Broadcasts go to rooms (one per client group) instead of the whole namespace.
    rooms: bool,
    /// The clients are split over `/` and `/admin`, and the broadcasts alternate.
    namespaces: bool,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let n: usize = env_num("BENCH_N", 20_000);
    let clients: usize = env_num("BENCH_CLIENTS", 10);
    let rooms: usize = env_num("BENCH_ROOMS", 6);
    let calls: usize = env_num("BENCH_CALLS", 500);
    println!(
        "cluster bench: {n} broadcasts to {clients} clients; {calls} fetch_sockets; {}",
        command_line("redis-server", &["--version"])
    );
    let single = RedisServer::start();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .expect("cluster");
    let seeds = |i: usize| cluster.seeds_from(i);
    let key = unique_key("bench-cluster");
    let opts = |o: ClusterOptions| o.key(key.clone()).requests_timeout(T);
    let streams = StreamsOptions {
        max_len: 2 * n,
        ..StreamsOptions::default()
    };
    let setups = vec![
        Setup {
            name: "one Redis, classic",
            a: opts(ClusterOptions::new(single.url())),
            b: opts(ClusterOptions::new(single.url())),
            rooms: false,
            namespaces: false,
        },
        Setup {
            name: "one Redis, sharded static",
            a: opts(ClusterOptions::new(single.url()).sharded(SubscriptionMode::Static)),
            b: opts(ClusterOptions::new(single.url()).sharded(SubscriptionMode::Static)),
            rooms: false,
            namespaces: false,
        },
        Setup {
            name: "one Redis, streams",
            // A burst of BENCH_N must stay in the stream while B reads it.
            a: opts(ClusterOptions::new(single.url()).streams(streams.clone())),
            b: opts(ClusterOptions::new(single.url()).streams(streams.clone())),
            rooms: false,
            namespaces: false,
        },
        Setup {
            name: "3-master cluster, classic",
            a: opts(ClusterOptions::redis_cluster(seeds(0))),
            b: opts(ClusterOptions::redis_cluster(seeds(1))),
            rooms: false,
            namespaces: false,
        },
        Setup {
            name: "3-master cluster, sharded static",
            a: opts(ClusterOptions::redis_cluster(seeds(0)).sharded(SubscriptionMode::Static)),
            b: opts(ClusterOptions::redis_cluster(seeds(1)).sharded(SubscriptionMode::Static)),
            rooms: false,
            namespaces: false,
        },
        Setup {
            name: "3-master cluster, sharded dynamic, rooms",
            a: opts(ClusterOptions::redis_cluster(seeds(0)).sharded(SubscriptionMode::Dynamic)),
            b: opts(ClusterOptions::redis_cluster(seeds(1)).sharded(SubscriptionMode::Dynamic)),
            rooms: true,
            namespaces: false,
        },
        Setup {
            name: "3-master cluster, sharded static, 2 nsps",
            a: opts(ClusterOptions::redis_cluster(seeds(0)).sharded(SubscriptionMode::Static)),
            b: opts(ClusterOptions::redis_cluster(seeds(1)).sharded(SubscriptionMode::Static)),
            rooms: false,
            namespaces: true,
        },
        Setup {
            name: "3-master cluster, classic, 2 nsps",
            a: opts(ClusterOptions::redis_cluster(seeds(0))),
            b: opts(ClusterOptions::redis_cluster(seeds(1))),
            rooms: false,
            namespaces: true,
        },
    ];
    println!(
        "{:<42} {:>12} {:>14} {:>12} {:>12}",
        "setup", "broadcasts/s", "deliveries/s", "fetch p50", "fetch p99"
    );
    // BENCH_SETUPS: comma-separated parts of setup names to run (default: all).
    let only = std::env::var("BENCH_SETUPS").unwrap_or_default();
    for s in setups {
        if !only.is_empty() && !only.split(',').any(|p| s.name.contains(p.trim())) {
            continue;
        }
        phase(s, n, clients, rooms, calls).await;
    }
    drop(single);
}

async fn phase(s: Setup, n: usize, clients: usize, rooms: usize, calls: usize) {
    // A burst must not overflow socketioxide's per-socket buffer (128 by default).
    let serve = Serve {
        max_buffer_size: Some(n + 1024),
        admin: s.namespaces,
        ..Serve::ROOT
    };
    let a = node_serving(s.a, Parser::Json, serve).await;
    let b = node_serving(s.b, Parser::Json, serve).await;
    let groups = if s.rooms {
        rooms.max(1)
    } else if s.namespaces {
        2
    } else {
        1
    };
    let nsp = |g: usize| {
        if s.namespaces && g == 1 {
            "/admin"
        } else {
            "/"
        }
    };
    let mut cs: Vec<(usize, Client)> = Vec::new();
    for i in 0..clients {
        let g = i % groups;
        let room = format!("room{g}");
        cs.push((
            g,
            client(&b, nsp(g), Parser::Json, &[room.as_str()], T).await,
        ));
    }
    // In the dynamic mode a room's channel is subscribed shortly after the room
    // appears: probe every room until it is reached.
    if s.rooms {
        for g in 0..groups {
            let (_, c) = cs
                .iter_mut()
                .find(|(k, _)| *k == g)
                .expect("a client per room");
            probe(&a, c, &format!("room{g}")).await;
        }
        for (_, c) in &mut cs {
            while c.try_recv_event(Duration::from_millis(50)).await.is_some() {}
        }
    }
    let per_group: Vec<usize> = (0..groups)
        .map(|g| (0..n).filter(|i| i % groups == g).count())
        .collect();
    let waits: Vec<_> = cs
        .into_iter()
        .map(|(g, mut c)| {
            let want = per_group[g];
            tokio::spawn(async move {
                let ok = c.count_events("bench", want, T).await == want;
                (ok, c)
            })
        })
        .collect();
    let started = Instant::now();
    for i in 0..n {
        if s.rooms {
            a.io.to(format!("room{}", i % groups))
                .emit("bench", &(i,))
                .await
                .expect("emit");
        } else if s.namespaces && i % 2 == 1 {
            a.io.of("/admin")
                .expect("/admin")
                .emit("bench", &(i,))
                .await
                .expect("emit");
        } else {
            a.io.emit("bench", &(i,)).await.expect("emit");
        }
    }
    let mut complete = true;
    // Kept connected for the requests below.
    let mut kept = Vec::new();
    for w in waits {
        let (ok, c) = w.await.expect("counting task");
        complete &= ok;
        kept.push(c);
    }
    let took = started.elapsed().as_secs_f64();
    let deliveries: usize = (0..clients).map(|i| per_group[i % groups]).sum();
    let mut lat = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let got = a.io.fetch_sockets().await.expect("fetch_sockets");
        lat.push(t.elapsed());
        assert_eq!(
            got.len(),
            (0..clients).filter(|i| nsp(i % groups) == "/").count()
        );
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "{:<42} {:>12.0} {:>14.0} {:>9.2} ms {:>9.2} ms{}",
        s.name,
        n as f64 / took,
        deliveries as f64 / took,
        pct(0.5),
        pct(0.99),
        if complete {
            ""
        } else {
            "  (INCOMPLETE: some events missing)"
        }
    );
    drop(kept);
    a.cluster.close().await;
    b.cluster.close().await;
}

/// Broadcasts `probe` to `room` from `from` until `to` receives one.
async fn probe(from: &Node, to: &mut Client, room: &str) {
    let started = Instant::now();
    loop {
        from.io
            .to(room.to_owned())
            .emit("probe", &())
            .await
            .expect("emit");
        if to.try_recv_event(Duration::from_millis(20)).await.is_some() {
            return;
        }
        assert!(started.elapsed() < T, "room {room} never reached");
    }
}
