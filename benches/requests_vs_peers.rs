//! Latency of cluster-wide requests next to the peers, in one run:
//! `cargo bench --bench requests_vs_peers` (release build, plain `fn main`).
//!
//! The same scenario for every implementation: two servers A and B on one
//! `redis-server` (each implementation gets its own), `BENCH_CLIENTS` clients (default
//! 50, the test-support socket.io client, JSON parser) connected to **B** and spread over
//! 10 rooms (`room0`..`room9`); server A runs `BENCH_CALLS` (default 2000) calls of each
//! operation back to back, after 50 warm-up calls, and the bench prints p50/p99/max.
//! Every call has to reach B through Redis and wait for its reply.
//!
//! * **ours**: two socketioxide 0.18.9 servers on `ClusterAdapter`, through socketioxide's
//!   API (`io.fetch_sockets()`, `io.rooms()`) and through the handle
//!   (`cluster.of("/").fetch_sockets(..)`, Node's full `{id, handshake, rooms, data}`
//!   reply, `all_rooms()`, `server_side_emit_with_ack`, `server_count`).
//! * **socketioxide-redis 0.4.4**: two socketioxide 0.18.9 servers on its `RedisAdapter`
//!   (redis driver, RESP3); it has `io.fetch_sockets()` and `io.rooms()` (no server-side
//!   events, no server count in its API).
//! * **node**: two `tests/interop/server.js` processes (socket.io 4.8.4,
//!   `@socket.io/redis-adapter` 8.3.0); our clients connect to B. The timing is taken
//!   inside Node (`benchRequests` command of `tests/interop/bench.js`,
//!   `performance.now()` around each call), so it does not include the JSON-lines hop.
//! * **raw redis**: the ceiling of one request: a `PUBLISH` of a request-sized payload,
//!   received by a subscriber that `PUBLISH`es a reply of the size of the fetchSockets
//!   reply measured above, received by the first side's subscriber (two command
//!   connections, two subscriber connections). Once as is, once preceded by the
//!   `PUBSUB NUMSUB` that Node's adapter (and ours) sends before each request.
//!
//! Before the timed calls, one call of each operation is made while a `PSUBSCRIBE *`
//! connection watches the request/response channels: the "wire" column shows how many
//! messages and bytes one call puts through Redis (and the largest reply).
//!
//! Environment: `BENCH_CALLS` (2000), `BENCH_CLIENTS` (50), `BENCH_PEERS` (comma-separated
//! subset of `ours,redis,node,raw`, default all). Needs `redis-server`, and for `node`
//! Node.js 20 with `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support::bench::{command_line, env_num};
use socketioxide_cluster_test_support::{
    client::{Client, Parser},
    node::{NodeProcess, start_server},
    redis::{RedisServer, command_conn, unique_key},
    server,
};

use futures_util::StreamExt;
use serde_json::{Value, json};
use socketioxide::{
    SocketIo,
    adapter::{Adapter, Emitter},
};
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions};
use socketioxide_redis::{RedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use std::{
    fmt::Debug,
    net::SocketAddr,
    time::{Duration, Instant},
};
use tokio::{sync::mpsc, task::JoinHandle};

const ROOMS: usize = 10;
const WARMUP: usize = 50;
/// How long the wire probe waits before it starts, for the previous operation's messages.
const PROBE_SETTLE: Duration = Duration::from_millis(150);
/// Calls of each operation the wire probe makes, and the pause after each.
const PROBE_CALLS: usize = 20;
const PROBE_GAP: Duration = Duration::from_millis(10);

struct Config {
    calls: usize,
    clients: usize,
    peers: Vec<String>,
}

impl Config {
    fn from_env() -> Config {
        let peers = std::env::var("BENCH_PEERS").unwrap_or_else(|_| "ours,redis,node,raw".into());
        let cfg = Config {
            calls: env_num("BENCH_CALLS", 2000),
            clients: env_num("BENCH_CLIENTS", 50),
            peers: peers.split(',').map(|s| s.trim().to_owned()).collect(),
        };
        assert!(
            cfg.calls > 0 && cfg.clients > 0,
            "BENCH_CALLS and BENCH_CLIENTS must be > 0"
        );
        cfg
    }

    fn wants(&self, peer: &str) -> bool {
        self.peers.iter().any(|p| p == peer)
    }

    /// Clients in `room3` (client i is in `room{i % 10}`).
    fn in_room3(&self) -> usize {
        (0..self.clients).filter(|i| i % ROOMS == 3).count()
    }
}

// ===== figures =====

/// Latency figures of one operation, in ms.
#[derive(Clone, Copy)]
struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
    per_sec: f64,
}

impl Stats {
    fn of(samples: &mut [Duration], total: Duration) -> Stats {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let pct =
            |q: f64| ms(samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)]);
        let sum: Duration = samples.iter().sum();
        Stats {
            n: samples.len(),
            p50: pct(0.50),
            p99: pct(0.99),
            max: ms(*samples.last().unwrap()),
            mean: ms(sum) / samples.len() as f64,
            per_sec: samples.len() as f64 / total.as_secs_f64(),
        }
    }

    /// From the reply of Node's `benchRequests`.
    fn from_node(v: &Value) -> Stats {
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let n = v["n"].as_u64().unwrap_or(0) as usize;
        Stats {
            n,
            p50: f("p50"),
            p99: f("p99"),
            max: f("max"),
            mean: f("mean"),
            per_sec: n as f64 / (f("totalMs") / 1000.0),
        }
    }
}

/// What one call put through Redis on the request/response channels.
#[derive(Clone, Copy, Default)]
struct Wire {
    msgs: usize,
    bytes: usize,
    /// The largest message on a request channel.
    request: usize,
    /// The largest message on a response channel.
    reply: usize,
    /// Median ms from a call's first request to its last reply, seen on the wire.
    turnaround: Option<f64>,
}

impl Wire {
    fn show(&self) -> String {
        if self.msgs == 0 {
            return "-".to_owned();
        }
        let t = self
            .turnaround
            .map_or("-".to_owned(), |t| format!("{t:.3} ms"));
        format!(
            "{} msgs {} B (req {} B, reply {} B); turnaround {t}",
            self.msgs, self.bytes, self.request, self.reply
        )
    }
}

struct Row {
    op: &'static str,
    imp: String,
    stats: Option<Stats>,
    /// Result size of the calls (sockets, rooms, replies, servers), or why there is none.
    result: String,
    wire: Option<Wire>,
}

impl Row {
    fn na(op: &'static str, imp: &str, why: &str) -> Row {
        Row {
            op,
            imp: imp.to_owned(),
            stats: None,
            result: why.to_owned(),
            wire: None,
        }
    }
}

/// Times `calls` calls of `f` (after `WARMUP` warm-up calls); each returns the size of
/// its result, which must be `expect`.
async fn measure(
    calls: usize,
    expect: usize,
    what: &str,
    mut f: impl AsyncFnMut() -> usize,
) -> Stats {
    for _ in 0..WARMUP {
        let got = f().await;
        assert_eq!(
            got, expect,
            "{what}: warm-up call returned {got} items, expected {expect}"
        );
    }
    let mut samples = Vec::with_capacity(calls);
    let start = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let got = f().await;
        samples.push(t.elapsed());
        assert_eq!(
            got, expect,
            "{what}: a call returned {got} items, expected {expect}"
        );
    }
    Stats::of(&mut samples, start.elapsed())
}

// ===== the wire probe =====

/// A `PSUBSCRIBE *` connection that records every message on a request or response
/// channel (ours/Node: `<key>-request#..`, `<key>-response#..`; socketioxide-redis uses the
/// same words).
struct Capture {
    rx: mpsc::UnboundedReceiver<(String, usize, Instant)>,
    task: JoinHandle<()>,
}

impl Capture {
    async fn start(url: &str) -> Capture {
        let client = redis::Client::open(url).expect("redis url");
        let mut pubsub = client.get_async_pubsub().await.expect("capture connection");
        pubsub.psubscribe("*").await.expect("PSUBSCRIBE *");
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let at = Instant::now();
                let ch = msg.get_channel_name().to_owned();
                if ch.contains("-request#") || ch.contains("-response#") {
                    let _ = tx.send((ch, msg.get_payload_bytes().len(), at));
                }
            }
        });
        Capture { rx, task }
    }

    /// Runs `call` `PROBE_CALLS` times, one after the other, and returns what the first
    /// one put on the wire and the median time from a call's first request to its last
    /// reply as this connection saw them (the other servers' turnaround).
    async fn probe(&mut self, mut call: impl AsyncFnMut()) -> Wire {
        // The last replies of the previous operation may still be on their way here.
        tokio::time::sleep(PROBE_SETTLE).await;
        while self.rx.try_recv().is_ok() {}
        let mut first = None;
        let mut turnarounds = Vec::new();
        for _ in 0..PROBE_CALLS {
            call().await;
            tokio::time::sleep(PROBE_GAP).await;
            let mut w = Wire::default();
            let (mut req_at, mut reply_at) = (None, None);
            while let Ok((ch, len, at)) = self.rx.try_recv() {
                w.msgs += 1;
                w.bytes += len;
                if ch.contains("-request#") {
                    w.request = w.request.max(len);
                    req_at = req_at.or(Some(at));
                } else {
                    w.reply = w.reply.max(len);
                    reply_at = Some(at);
                }
            }
            if let (Some(q), Some(r)) = (req_at, reply_at) {
                turnarounds.push(r.saturating_duration_since(q).as_secs_f64() * 1000.0);
            }
            first.get_or_insert(w);
        }
        let mut w = first.unwrap_or_default();
        turnarounds.sort_by(f64::total_cmp);
        w.turnaround = turnarounds.get(turnarounds.len() / 2).copied();
        w
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ===== clients =====

/// `n` clients on `addr` (client i in `room{i % 10}`, joined through the server's `join`
/// event, which Rust test servers and server.js both ack with "ok").
async fn clients_on(addr: SocketAddr, n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let c = Client::connect(addr, "/", Parser::Json).await;
        let ack = c
            .emit_with_ack(
                "join",
                vec![json!(format!("room{}", i % ROOMS))],
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(ack.len(), 1, "join ack: {ack:?}");
        out.push(c);
    }
    out
}

// ===== socketioxide's API, for ours and socketioxide-redis =====

async fn io_rows<A: Adapter>(
    imp: &str,
    io: &SocketIo<A>,
    cfg: &Config,
    cap: &mut Capture,
    rows: &mut Vec<Row>,
) where
    A::Error: Debug,
{
    let (c, r3) = (cfg.clients, cfg.in_room3());
    let w = cap
        .probe(async || {
            let _ = io.fetch_sockets().await;
        })
        .await;
    let s = measure(cfg.calls, c, "io.fetch_sockets()", async || {
        io.fetch_sockets().await.unwrap().len()
    })
    .await;
    rows.push(row(
        "fetchSockets (all)",
        &format!("{imp}: io.fetch_sockets()"),
        s,
        c,
        w,
    ));

    let w = cap
        .probe(async || {
            let _ = io.to("room3").fetch_sockets().await;
        })
        .await;
    let s = measure(cfg.calls, r3, "io.to(room3).fetch_sockets()", async || {
        io.to("room3").fetch_sockets().await.unwrap().len()
    })
    .await;
    rows.push(row(
        "fetchSockets (room3)",
        &format!("{imp}: io.to(\"room3\").fetch_sockets()"),
        s,
        r3,
        w,
    ));

    // io.rooms(): the size it has is whatever the adapter answers (with or without the
    // socket-id rooms); it must stay the same over the run.
    let w = cap
        .probe(async || {
            let _ = io.rooms().await;
        })
        .await;
    let n = io.rooms().await.unwrap().len();
    let s = measure(cfg.calls, n, "io.rooms()", async || {
        io.rooms().await.unwrap().len()
    })
    .await;
    rows.push(row("allRooms", &format!("{imp}: io.rooms()"), s, n, w));
}

fn row(op: &'static str, imp: &str, stats: Stats, result: usize, wire: Wire) -> Row {
    Row {
        op,
        imp: imp.to_owned(),
        stats: Some(stats),
        result: result.to_string(),
        wire: Some(wire),
    }
}

// ===== ours =====

type OursIo = SocketIo<ClusterAdapter<Emitter>>;

async fn ours_server(url: &str, key: &str) -> (OursIo, Cluster, SocketAddr) {
    let cluster = Cluster::connect(ClusterOptions::new(url).key(key))
        .await
        .expect("Cluster::connect");
    let (layer, io) = SocketIo::builder()
        .with_adapter::<ClusterAdapter<_>>(cluster.clone())
        .build_layer();
    server::test_ns(&io, "/").await.expect("ns /");
    let addr = server::serve(layer).await;
    (io, cluster, addr)
}

async fn ours(cfg: &Config, redis: &RedisServer) -> (Vec<Row>, Wire) {
    let url = redis.url();
    let key = unique_key("rvp-ours");
    let (io, cluster, _) = ours_server(&url, &key).await;
    let (_io_b, cluster_b, addr_b) = ours_server(&url, &key).await;
    cluster_b
        .of("/")
        .on_server_side("bench", |ev| ev.ack("pong"));
    let clients = clients_on(addr_b, cfg.clients).await;
    let ns = cluster.of("/");
    assert_eq!(ns.server_count().await.unwrap(), 2);
    let mut cap = Capture::start(&url).await;
    let mut rows = Vec::new();
    let (c, r3) = (cfg.clients, cfg.in_room3());
    let imp = "ours";

    let w_fetch = cap
        .probe(async || {
            let _ = ns.fetch_sockets(&[], &[]).await;
        })
        .await;
    let s = measure(cfg.calls, c, "handle fetch_sockets", async || {
        ns.fetch_sockets(&[], &[]).await.unwrap().len()
    })
    .await;
    rows.push(row(
        "fetchSockets (all)",
        "ours: cluster.of(\"/\").fetch_sockets(&[], &[])",
        s,
        c,
        w_fetch,
    ));
    let w = cap
        .probe(async || {
            let _ = ns.fetch_sockets(&["room3"], &[]).await;
        })
        .await;
    let s = measure(cfg.calls, r3, "handle fetch_sockets room3", async || {
        ns.fetch_sockets(&["room3"], &[]).await.unwrap().len()
    })
    .await;
    rows.push(row(
        "fetchSockets (room3)",
        "ours: cluster.of(\"/\").fetch_sockets(&[\"room3\"], &[])",
        s,
        r3,
        w,
    ));
    let w = cap
        .probe(async || {
            let _ = ns.all_rooms().await;
        })
        .await;
    let n = ns.all_rooms().await.unwrap().len();
    let s = measure(cfg.calls, n, "all_rooms", async || {
        ns.all_rooms().await.unwrap().len()
    })
    .await;
    rows.push(row(
        "allRooms",
        "ours: cluster.of(\"/\").all_rooms()",
        s,
        n,
        w,
    ));

    io_rows(imp, &io, cfg, &mut cap, &mut rows).await;

    let w = cap
        .probe(async || {
            let _ = ns.server_side_emit_with_ack("bench", &()).await;
        })
        .await;
    let s = measure(cfg.calls, 1, "server_side_emit_with_ack", async || {
        ns.server_side_emit_with_ack("bench", &())
            .await
            .unwrap()
            .len()
    })
    .await;
    rows.push(row(
        "serverSideEmit with ack",
        "ours: server_side_emit_with_ack",
        s,
        1,
        w,
    ));
    let w = cap
        .probe(async || {
            let _ = ns.server_count().await;
        })
        .await;
    let s = measure(cfg.calls, 2, "server_count", async || {
        ns.server_count().await.unwrap()
    })
    .await;
    rows.push(row(
        "serverCount",
        "ours: cluster.of(\"/\").server_count()",
        s,
        2,
        w,
    ));
    println!(
        "ours: server A stats {:?}; pending requests {}",
        cluster.stats(),
        cluster.pending_requests()
    );
    drop(clients);
    cluster.close().await;
    cluster_b.close().await;
    (rows, w_fetch)
}

// ===== socketioxide-redis =====

type TheirsIo = SocketIo<RedisAdapter<Emitter>>;

async fn theirs_server(url: &str, key: &str) -> (TheirsIo, SocketAddr) {
    // Its redis driver needs RESP3 (push messages on one multiplexed connection).
    let client = redis::Client::open(format!("{url}/?protocol=resp3")).expect("redis url");
    let config = RedisAdapterConfig::new().with_prefix(key.to_owned());
    let ctr = RedisAdapterCtr::new_with_redis_config(&client, config)
        .await
        .expect("RedisAdapterCtr");
    let (layer, io) = SocketIo::builder()
        .with_adapter::<RedisAdapter<_>>(ctr)
        .build_layer();
    server::test_ns(&io, "/").await.expect("ns /");
    let addr = server::serve(layer).await;
    (io, addr)
}

async fn theirs(cfg: &Config, redis: &RedisServer) -> (Vec<Row>, Wire) {
    let url = redis.url();
    let key = unique_key("rvp-theirs");
    let (io, _) = theirs_server(&url, &key).await;
    let (_io_b, addr_b) = theirs_server(&url, &key).await;
    let clients = clients_on(addr_b, cfg.clients).await;
    let mut cap = Capture::start(&url).await;
    let mut rows = Vec::new();
    io_rows("socketioxide-redis", &io, cfg, &mut cap, &mut rows).await;
    let w_fetch = rows[0].wire.unwrap_or_default();
    let imp = "socketioxide-redis";
    rows.push(Row::na(
        "serverSideEmit with ack",
        imp,
        "n/a: no server-side events",
    ));
    rows.push(Row::na("serverCount", imp, "n/a: not in its API"));
    drop(clients);
    (rows, w_fetch)
}

// ===== node =====

async fn node(cfg: &Config, redis: &RedisServer) -> (Vec<Row>, Wire) {
    let url = redis.url();
    let key = unique_key("rvp-node");
    let mut a = start_server("A", &url, &key, &[]).await;
    let mut b = start_server("B", &url, &key, &[]).await;
    let long = Duration::from_secs(60) + Duration::from_millis(50) * cfg.calls as u32;
    // B answers serverSideEmit acks without a stdout line per event.
    b.request(json!({"cmd": "config", "reportServerSide": false}), long)
        .await;
    let addr_b = SocketAddr::from(([127, 0, 0, 1], b.port()));
    let clients = clients_on(addr_b, cfg.clients).await;
    let mut cap = Capture::start(&url).await;
    let (c, r3) = (cfg.clients, cfg.in_room3());
    // Socket-id rooms plus room0..room9 (fewer when there are fewer clients).
    let all_rooms = c + c.min(ROOMS);
    let ops: [(&'static str, &str, Value, usize); 5] = [
        (
            "fetchSockets (all)",
            "node: io.fetchSockets()",
            json!({"op": "fetchSockets"}),
            c,
        ),
        (
            "fetchSockets (room3)",
            "node: io.to(\"room3\").fetchSockets()",
            json!({"op": "fetchSockets", "to": "room3"}),
            r3,
        ),
        (
            "allRooms",
            "node: io.of(\"/\").adapter.allRooms()",
            json!({"op": "allRooms"}),
            all_rooms,
        ),
        (
            "serverSideEmit with ack",
            "node: io.serverSideEmit(ev, cb)",
            json!({"op": "serverSideEmit", "event": "bench"}),
            1,
        ),
        (
            "serverCount",
            "node: adapter.serverCount()",
            json!({"op": "serverCount"}),
            2,
        ),
    ];
    let mut rows = Vec::new();
    let mut w_fetch = Wire::default();
    for (op, imp, cmd, expect) in ops {
        let mut probe = cmd.clone();
        probe["cmd"] = json!("benchRequests");
        probe["n"] = json!(1);
        probe["warmup"] = json!(0);
        probe["expect"] = json!(expect);
        let w = cap
            .probe(async || {
                a.request(probe.clone(), long).await;
            })
            .await;
        if op == "fetchSockets (all)" {
            w_fetch = w;
        }
        let mut run = cmd;
        run["cmd"] = json!("benchRequests");
        run["n"] = json!(cfg.calls);
        run["warmup"] = json!(WARMUP);
        run["expect"] = json!(expect);
        let reply = a.request(run, long).await;
        rows.push(row(op, imp, Stats::from_node(&reply), expect, w));
    }
    drop(clients);
    shutdown(a).await;
    shutdown(b).await;
    (rows, w_fetch)
}

async fn shutdown(p: NodeProcess) {
    let name = p.name().to_owned();
    if p.shutdown(Duration::from_secs(10)).await.is_none() {
        eprintln!("node {name} did not exit in time (killed)");
    }
}

// ===== raw redis =====

/// One request/reply through Redis: A publishes `req` bytes on `raw-request`, B's
/// subscriber receives it and B publishes `reply` bytes on `raw-response`, which A's
/// subscriber receives. With `numsub`, A first asks `PUBSUB NUMSUB raw-request`.
async fn raw(cfg: &Config, url: &str, req: usize, reply: usize, numsub: bool) -> Stats {
    let key = unique_key("raw");
    let (req_ch, resp_ch) = (format!("{key}-rq"), format!("{key}-rs"));
    let mut pub_a = command_conn(url).await;
    let mut pub_b = command_conn(url).await;
    let client = redis::Client::open(url).expect("redis url");
    let mut sub_a = client.get_async_pubsub().await.expect("sub a");
    sub_a.subscribe(&resp_ch).await.expect("SUBSCRIBE");
    let mut sub_b = client.get_async_pubsub().await.expect("sub b");
    sub_b.subscribe(&req_ch).await.expect("SUBSCRIBE");
    let responder = {
        let resp_ch = resp_ch.clone();
        let payload = vec![b'r'; reply];
        tokio::spawn(async move {
            let mut stream = sub_b.into_on_message();
            while stream.next().await.is_some() {
                let _: i64 = redis::cmd("PUBLISH")
                    .arg(&resp_ch)
                    .arg(&payload)
                    .query_async(&mut pub_b)
                    .await
                    .expect("reply PUBLISH");
            }
        })
    };
    let payload = vec![b'q'; req];
    let mut replies = sub_a.into_on_message();
    let stats = measure(cfg.calls, reply, "raw round trip", async || {
        if numsub {
            let (_, n): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&req_ch)
                .query_async(&mut pub_a)
                .await
                .expect("NUMSUB");
            assert_eq!(n, 1);
        }
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(&req_ch)
            .arg(&payload)
            .query_async(&mut pub_a)
            .await
            .expect("request PUBLISH");
        assert_eq!(receivers, 1);
        replies
            .next()
            .await
            .expect("reply stream")
            .get_payload_bytes()
            .len()
    })
    .await;
    responder.abort();
    stats
}

// ===== output =====

fn print_table(rows: &[Row]) {
    let ow = rows.iter().map(|r| r.op.len()).max().unwrap_or(2).max(2);
    let iw = rows.iter().map(|r| r.imp.len()).max().unwrap_or(14).max(14);
    println!();
    let header = format!(
        "{:<ow$}  {:<iw$} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  wire per call",
        "op",
        "implementation",
        "calls",
        "p50 ms",
        "p99 ms",
        "max ms",
        "mean ms",
        "calls/s",
        "result"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len() + 40));
    let mut last_op = "";
    for r in rows {
        let op = if r.op == last_op { "" } else { r.op };
        last_op = r.op;
        match r.stats {
            Some(s) => println!(
                "{op:<ow$}  {:<iw$} {:>6} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.0} {:>7}  {}",
                r.imp,
                s.n,
                s.p50,
                s.p99,
                s.max,
                s.mean,
                s.per_sec,
                r.result,
                r.wire.map_or("-".to_owned(), |w| w.show()),
            ),
            None => println!("{op:<ow$}  {:<iw$} {}", r.imp, r.result),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cfg = Config::from_env();
    println!(
        "requests_vs_peers: 2 servers, {} clients on server B in {ROOMS} rooms, server A calls each operation {} times (after {WARMUP} warm-up calls)",
        cfg.clients, cfg.calls
    );
    println!(
        "commit {}, {}, node {}, load average {}",
        command_line("git", &["rev-parse", "--short", "HEAD"]),
        command_line("redis-server", &["--version"]),
        command_line("node", &["--version"]),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
    );
    // One redis-server per implementation, kept until the end (the adapters' background
    // tasks of a finished phase must not see their Redis go away mid-run).
    let mut servers = Vec::new();
    let mut rows = Vec::new();
    let mut reply_sizes: Vec<(String, Wire)> = Vec::new();
    if cfg.wants("ours") {
        servers.push(RedisServer::start());
        let (r, w) = ours(&cfg, servers.last().unwrap()).await;
        rows.extend(r);
        reply_sizes.push(("ours".into(), w));
    }
    if cfg.wants("redis") {
        servers.push(RedisServer::start());
        let (r, w) = theirs(&cfg, servers.last().unwrap()).await;
        rows.extend(r);
        reply_sizes.push(("socketioxide-redis".into(), w));
    }
    if cfg.wants("node") {
        servers.push(RedisServer::start());
        let (r, w) = node(&cfg, servers.last().unwrap()).await;
        rows.extend(r);
        reply_sizes.push(("node".into(), w));
    }
    if cfg.wants("raw") {
        servers.push(RedisServer::start());
        let url = servers.last().unwrap().url();
        if reply_sizes.is_empty() {
            // Nothing measured: a reply of 50 sockets is about 110 B each on our wire.
            reply_sizes.push((
                "assumed".into(),
                Wire {
                    request: 150,
                    reply: 110 * cfg.clients,
                    ..Wire::default()
                },
            ));
        }
        for (who, w) in &reply_sizes {
            for numsub in [false, true] {
                let s = raw(&cfg, &url, w.request, w.reply, numsub).await;
                let imp = format!(
                    "raw redis: {}PUBLISH {} B -> sub -> PUBLISH {} B -> sub (sizes of {who})",
                    if numsub { "NUMSUB + " } else { "" },
                    w.request,
                    w.reply
                );
                rows.push(Row {
                    op: "ceiling (fetchSockets all)",
                    imp,
                    stats: Some(s),
                    result: format!("{} B", w.reply),
                    wire: None,
                });
            }
        }
    }
    // Group by operation, in the order they were first measured.
    let mut order: Vec<&'static str> = Vec::new();
    for r in &rows {
        if !order.contains(&r.op) {
            order.push(r.op);
        }
    }
    rows.sort_by_key(|r| order.iter().position(|o| *o == r.op));
    print_table(&rows);
    println!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    drop(servers);
}
