//! A garbage flood while valid broadcasts flow (issue 10, goal 3).
//!
//! `cargo bench --bench flood` (release build, plain `fn main`, no harness).
//!
//! Scenario, on one throw-away `redis-server` (default configuration, so Redis' own
//! `client-output-buffer-limit pubsub 32mb 8mb 60` applies):
//!
//! * two socketioxide servers with a `ClusterAdapter` each, A and B, in this process
//!   (tokio, 2 worker threads); `FLOOD_CLIENTS` websocket clients on B (default 50,
//!   each in room `r`);
//! * A runs `io.emit("bench", i)` paced at `FLOOD_RATE` per second (default 1000) for
//!   `FLOOD_SECONDS` (default 10);
//! * `FLOOD_START_MS` (default 2000) into the run, a child process (this binary again,
//!   so that generating the garbage does not count in this process' memory) publishes the
//!   flood of `test-support/src/flood.rs` over a Redis connection of its own, pipelined
//!   (written as fast as Redis reads, replies read concurrently): `FLOOD_PER_CHANNEL` (default 10,000) malformed messages on each
//!   of the 7 channels the servers listen to (`P#/#`, `P#/#r#`, `P-request#/#`,
//!   `P-response#/#`, both servers' own response channels, `P-heartbeat`); about
//!   460 MB: truncated msgpack with huge declared lengths, random bytes, wrong types,
//!   JSON, nesting up to 100,000 deep, and every 2000th message per channel 2 MiB.
//!
//! Printed: valid broadcasts sent (emits that succeeded; failed emits separately),
//! received by all clients, lost; the resident memory of **this process** (servers and
//! clients alike: they run here; from `/proc/self/statm`) before the flood, at its peak
//! during the flood, and `FLOOD_AFTER_S` (default 5) seconds after B has skipped the
//! whole flood; B's malformed count and both servers' reconnects. Then the raw ceiling: how
//! long Redis takes to deliver the same flood (same channels) to a subscriber that only
//! counts bytes (raw TCP), and to a plain redis-rs subscriber that counts messages (which
//! parses and queues everything: it may be cut off by Redis). Last, the cost of each kind
//! of garbage for the screen and the decoders, on one thread.
//!
//! `FLOOD_RAW=0` leaves the raw ceiling out. `FLOOD_REDIS_ARGS` adds `redis-server` arguments (for diagnosis, e.g.
//! `--client-output-buffer-limit "pubsub 0 0 0"` written as
//! `FLOOD_REDIS_ARGS='--client-output-buffer-limit pubsub 0 0 0'` lifts Redis' limit so
//! the servers are never cut off and the figures show how long they take to skip it all).
//!
//! The full run takes about 35 s here (2 cores). Smaller: `FLOOD_PER_CHANNEL=2000
//! FLOOD_SECONDS=5`. `RUST_LOG=socketioxide_cluster=debug` shows the adapter's logs.

// sysconf(3) for the page size needs libc.
#![allow(unsafe_code)]

use socketioxide_cluster_test_support::bench::env_num;
use socketioxide_cluster_test_support::{flood, redis as redis_server, server};

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use socketioxide::{adapter::Emitter, extract::SocketRef};
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions};
use tokio::time::Instant;

type Io = socketioxide::SocketIo<ClusterAdapter<Emitter>>;

struct Config {
    rate: f64,
    seconds: f64,
    clients: usize,
    start: Duration,
    after: Duration,
    spec: flood::FloodSpec,
}

impl Config {
    fn from_env() -> Config {
        let mut spec = flood::FloodSpec::issue();
        spec.per_channel = env_num("FLOOD_PER_CHANNEL", spec.per_channel);
        spec.seed = env_num("FLOOD_SEED", spec.seed);
        Config {
            rate: env_num("FLOOD_RATE", 1000.0),
            seconds: env_num("FLOOD_SECONDS", 10.0),
            clients: env_num("FLOOD_CLIENTS", 50),
            start: Duration::from_millis(env_num("FLOOD_START_MS", 2000)),
            after: Duration::from_secs(env_num("FLOOD_AFTER_S", 5)),
            spec,
        }
    }
}

// ===== memory =====

/// Resident set size of this process, in bytes (`/proc/self/statm`, second field).
fn rss() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Samples [`rss`] every 5 ms on a thread of its own and keeps the peak since the last
/// [`Sampler::reset`].
struct Sampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    fn start() -> Sampler {
        let peak = Arc::new(AtomicU64::new(rss()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Sampler { peak, stop }
    }
    fn reset(&self) {
        self.peak.store(rss(), Ordering::Relaxed);
    }
    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).max(rss())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ===== the flood, in a child process =====

const CHILD_ENV: &str = "FLOOD_BENCH_CHILD";

/// Runs the flood in a child process; resolves with what it printed
/// (`<messages> <bytes> <seconds>`).
async fn flood_child(url: &str, channels: &[String], spec: &flood::FloodSpec) -> flood::Sent {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.env(CHILD_ENV, "1")
        .env("FLOOD_URL", url)
        .env("FLOOD_CHANNELS", channels.join("\n"))
        .env("FLOOD_PER_CHANNEL", spec.per_channel.to_string())
        .env("FLOOD_SEED", spec.seed.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("flood child"))
        .await
        .unwrap();
    assert!(out.status.success(), "flood child failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    flood::Sent {
        messages: f[0].parse().unwrap(),
        bytes: f[1].parse().unwrap(),
        took: Duration::from_secs_f64(f[2].parse().unwrap()),
    }
}

fn child_main() {
    let url = std::env::var("FLOOD_URL").unwrap();
    let channels: Vec<String> = std::env::var("FLOOD_CHANNELS")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let spec = Config::from_env().spec;
    let sent = flood::publish(&url, &channels, &spec);
    println!(
        "{} {} {}",
        sent.messages,
        sent.bytes,
        sent.took.as_secs_f64()
    );
}

// ===== main =====

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_main();
    }
    let cfg = Config::from_env();
    // For diagnosis, e.g. FLOOD_REDIS_ARGS="--client-output-buffer-limit pubsub 0 0 0" (no
    // cut-off: shows how long the servers take to skip the whole flood).
    let extra = std::env::var("FLOOD_REDIS_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let redis = redis_server::RedisServer::start_with_args(&extra);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(&cfg, &redis));
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(redis);
}

async fn cluster_node(url: &str, key: &str) -> (Io, Cluster, SocketAddr) {
    let cluster = Cluster::connect(ClusterOptions::new(url).key(key))
        .await
        .expect("Cluster::connect");
    let (layer, io) = socketioxide::SocketIo::builder()
        .max_buffer_size(100_000)
        .with_adapter::<ClusterAdapter<_>>(cluster.clone())
        .build_layer();
    io.ns("/", async |s: SocketRef<ClusterAdapter<Emitter>>| {
        s.join("r");
    })
    .await
    .expect("ns /");
    let addr = server::serve(layer).await;
    (io, cluster, addr)
}

async fn run(cfg: &Config, redis: &redis_server::RedisServer) {
    server::init_tracing();
    let url = redis.url();
    let n = (cfg.rate * cfg.seconds).round() as usize;
    println!(
        "flood bench: A emits {n} broadcasts at {}/s to {} clients on B; flood of {} x 7 \
         malformed messages {:.1} s in; 2 tokio workers, {} CPUs, load avg {}",
        cfg.rate,
        cfg.clients,
        cfg.spec.per_channel,
        cfg.start.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
    );
    let sampler = Sampler::start();
    let key = redis_server::unique_key("flood");
    let (io_a, cluster_a, _) = cluster_node(&url, &key).await;
    let (_io_b, cluster_b, addr_b) = cluster_node(&url, &key).await;
    let (uid_a, uid_b) = (cluster_a.uid().to_string(), cluster_b.uid().to_string());
    let channels = flood::channels(&key, "r", &[&uid_a, &uid_b]);

    // Clients, each counting the distinct `bench` indices it got.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::with_capacity(cfg.clients);
    let progress = Arc::new(AtomicU64::new(0));
    for _ in 0..cfg.clients {
        let ws = client_ws::connect(addr_b).await;
        clients.push(tokio::spawn(client_ws::count(
            ws,
            n,
            stop.clone(),
            progress.clone(),
        )));
    }
    // Warm-up: every client gets one broadcast through Redis.
    let deadline = Instant::now() + Duration::from_secs(10);
    while progress.load(Ordering::Relaxed) < cfg.clients as u64 {
        assert!(
            Instant::now() < deadline,
            "warm-up broadcasts not delivered"
        );
        io_a.emit("warm", &()).await.expect("warm-up emit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    progress.store(0, Ordering::Relaxed);
    let base_a = cluster_a.stats();
    let base_b = cluster_b.stats();

    let rss_before = rss();
    sampler.reset();
    let t0 = Instant::now();
    let flood = {
        let (url, channels, spec, start) =
            (url.clone(), channels.clone(), cfg.spec.clone(), cfg.start);
        tokio::spawn(async move {
            tokio::time::sleep(start).await;
            let started = t0.elapsed();
            let sent = flood_child(&url, &channels, &spec).await;
            (started, sent, t0.elapsed())
        })
    };
    // When B's malformed count last moved: the flood is over for B once it stops.
    let last_malformed = {
        let b = cluster_b.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut last, mut at) = (b.stats().malformed, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let now = b.stats().malformed;
                if now != last {
                    (last, at) = (now, t0.elapsed());
                }
            }
            at
        })
    };
    let (mut sent, mut failed) = (0usize, 0usize);
    let mut first_error = None;
    for i in 0..n {
        let due = t0 + Duration::from_secs_f64(i as f64 / cfg.rate);
        tokio::time::sleep_until(due).await;
        match io_a.emit("bench", &(i,)).await {
            Ok(()) => sent += 1,
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let emit_done = t0.elapsed();
    let (flood_started, flood_sent, flood_published) = flood.await.unwrap();
    let rss_peak = sampler.peak();
    // Clients: every broadcast sent, or no progress for 3 s.
    let want = (sent * cfg.clients) as u64;
    let mut seen = progress.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while seen < want && since.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = progress.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            since = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let flood_skipped = last_malformed.await.unwrap();
    let mut received = 0usize;
    for c in clients {
        received += c.await.unwrap();
    }
    let settle = cfg.after.saturating_sub(t0.elapsed() - flood_skipped);
    tokio::time::sleep(settle).await;
    let rss_after = rss();
    let (a, b) = (cluster_a.stats(), cluster_b.stats());

    println!(
        "valid broadcasts: sent {sent} (failed emits {failed}{}), received by all {} clients {received} \
         of {want}, lost {}",
        first_error.map_or(String::new(), |e| format!(": {e}")),
        cfg.clients,
        want as usize - received.min(want as usize),
    );
    println!(
        "flood: {} messages, {:.0} MB, published {:.2} s .. {:.2} s ({:.2} s), B done skipping at \
         {:.2} s; emit loop done {:.2} s",
        flood_sent.messages,
        flood_sent.bytes as f64 / 1e6,
        flood_started.as_secs_f64(),
        flood_published.as_secs_f64(),
        flood_sent.took.as_secs_f64(),
        flood_skipped.as_secs_f64(),
        emit_done.as_secs_f64(),
    );
    println!(
        "RSS of the bench process (A, B, clients): before {}, peak during {}, {:.0} s after {}",
        mb(rss_before),
        mb(rss_peak),
        cfg.after.as_secs_f64(),
        mb(rss_after),
    );
    println!(
        "B: malformed {}, received {}, delivery_failed {}, reconnects {}; A: malformed {}, \
         reconnects {}, publish_failed {}",
        b.malformed - base_b.malformed,
        b.received - base_b.received,
        b.delivery_failed - base_b.delivery_failed,
        b.reconnects - base_b.reconnects,
        a.malformed - base_a.malformed,
        a.reconnects - base_a.reconnects,
        a.publish_failed - base_a.publish_failed,
    );
    cluster_a.close().await;
    cluster_b.close().await;
    drop(sampler);

    if std::env::var("FLOOD_RAW").as_deref() != Ok("0") {
        raw_tcp_ceiling(redis.addr(), &url, &key, &channels, &cfg.spec).await;
        raw_ceiling(&url, &key, &channels, &cfg.spec).await;
    }
    decode_costs(&cfg.spec);
}

/// How long Redis takes to deliver the flood to a subscriber of the same channels that
/// only counts bytes (a raw TCP connection, no parsing): the ceiling.
async fn raw_tcp_ceiling(
    addr: SocketAddr,
    url: &str,
    key: &str,
    channels: &[String],
    spec: &flood::FloodSpec,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let resp = |args: &[&str]| {
        let mut c = format!("*{}\r\n", args.len());
        for a in args {
            c.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        c
    };
    let pattern = format!("{key}#/#*");
    // What Redis will write: one frame per message (pmessage for the two broadcast
    // channels, message for the others), from the same seeded generator.
    let mut rng = flood::Rng::new(spec.seed);
    let mut expected = 0usize;
    for j in 0..spec.per_channel * channels.len() {
        let len = flood::message(spec, &mut rng, j / channels.len()).len();
        let ch = &channels[j % channels.len()];
        let bulk = |n: usize| 1 + n.to_string().len() + 2 + n + 2;
        expected += if j % channels.len() < 2 {
            4 + bulk(8) + bulk(pattern.len()) + bulk(ch.len()) + bulk(len)
        } else {
            4 + bulk(7) + bulk(ch.len()) + bulk(len)
        };
    }
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut sub = vec!["SUBSCRIBE"];
    sub.extend(channels[2..].iter().map(String::as_str));
    tcp.write_all((resp(&["PSUBSCRIBE", &pattern]) + &resp(&sub)).as_bytes())
        .await
        .unwrap();
    // The confirmations: one per subscription, each ending in ":<count>\r\n".
    let mut buf = vec![0u8; 1 << 20];
    let mut confirmations = Vec::new();
    while confirmations.iter().filter(|&&b| b == b':').count() < channels.len() - 1 {
        let n = tcp.read(&mut buf).await.unwrap();
        confirmations.extend_from_slice(&buf[..n]);
    }
    let t0 = Instant::now();
    let url = url.to_owned();
    let (chs, sp) = (channels.to_vec(), spec.clone());
    let child = tokio::spawn(async move { flood_child(&url, &chs, &sp).await });
    let mut got = 0usize;
    while got < expected {
        match tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
    let took = t0.elapsed();
    let sent = child.await.unwrap();
    println!(
        "raw redis ceiling: a TCP subscriber that only counts bytes got {:.0} of {:.0} MB ({} \
         flood messages) in {:.2} s from the first PUBLISH (publisher done in {:.2} s)",
        got as f64 / 1e6,
        expected as f64 / 1e6,
        sent.messages,
        took.as_secs_f64(),
        sent.took.as_secs_f64(),
    );
}

/// The same for a plain redis-rs subscriber that counts messages (it parses and queues
/// every message, unbounded; Redis may cut it off).
async fn raw_ceiling(url: &str, key: &str, channels: &[String], spec: &flood::FloodSpec) {
    let client = redis::Client::open(url).expect("redis url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.psubscribe(format!("{key}#/#*")).await.unwrap();
    for c in &channels[2..] {
        pubsub.subscribe(c).await.unwrap();
    }
    let total = spec.per_channel * channels.len();
    let counter = tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        let mut n = 0usize;
        let mut first = None;
        while n < total {
            match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
                Ok(Some(_)) => {
                    first.get_or_insert_with(Instant::now);
                    n += 1;
                }
                _ => break,
            }
        }
        (n, first, Instant::now())
    });
    let t0 = Instant::now();
    let sent = flood_child(url, channels, spec).await;
    let (n, _first, last) = counter.await.unwrap();
    println!(
        "plain redis-rs subscriber: counted {n} of {} flood messages ({:.0} MB) in {:.2} s \
         from the first PUBLISH (publisher done in {:.2} s)",
        sent.messages,
        sent.bytes as f64 / 1e6,
        (last - t0).as_secs_f64(),
        sent.took.as_secs_f64(),
    );
}

/// Where a server's time goes on the flood, per kind of garbage: the screen (first
/// bytes, `wire::screen`) and, for what it lets through, the full decoding, over the
/// flood's first messages of each kind, as a broadcast and as a request.
fn decode_costs(spec: &flood::FloodSpec) {
    use socketioxide_cluster::wire::{message::BroadcastMessage, request::Request, screen};
    let names = ["truncated", "random", "wrong types", "JSON", "deep", "huge"];
    let mut rng = flood::Rng::new(spec.seed);
    let mut by_kind: Vec<Vec<Vec<u8>>> = vec![Vec::new(); names.len()];
    for k in 0..spec.per_channel.min(4000) {
        let m = flood::message(spec, &mut rng, k);
        let kind = if m.len() >= spec.huge_size { 5 } else { k % 5 };
        by_kind[kind].push(m);
    }
    let mut line = Vec::new();
    for (kind, msgs) in by_kind.iter().enumerate() {
        let bytes: usize = msgs.iter().map(Vec::len).sum();
        for (what, check, decode) in [
            (
                "broadcast",
                screen::broadcast as fn(&[u8], usize) -> Result<(), &'static str>,
                (|m: &[u8]| BroadcastMessage::decode(m).is_ok()) as fn(&[u8]) -> bool,
            ),
            ("request", screen::request, |m: &[u8]| {
                Request::decode(m).is_ok()
            }),
        ] {
            let t = std::time::Instant::now();
            let mut passed = 0;
            for m in msgs {
                if check(&m[..m.len().min(screen::HEAD)], m.len()).is_ok() {
                    passed += 1;
                    assert!(!decode(m), "a flood message decoded");
                }
            }
            let took = t.elapsed();
            let t = std::time::Instant::now();
            for m in msgs {
                std::hint::black_box(decode(m));
            }
            let full = t.elapsed();
            line.push(format!(
                "{:>11} as {what:<9}: {:>4} msgs {:>6.1} MB, {:>3}% pass the screen; screen+decode                  {:>7.0} MB/s ({:.2} us/msg), decode all {:>7.0} MB/s",
                names[kind],
                msgs.len(),
                bytes as f64 / 1e6,
                passed * 100 / msgs.len().max(1),
                bytes as f64 / 1e6 / took.as_secs_f64(),
                took.as_secs_f64() * 1e6 / msgs.len().max(1) as f64,
                bytes as f64 / 1e6 / full.as_secs_f64(),
            ));
        }
    }
    println!(
        "cost per kind (one thread, this process):\n  {}",
        line.join("\n  ")
    );
}

/// A minimal socket.io websocket client (JSON parser) that counts the distinct
/// `42["bench",i]` it receives.
mod client_ws {
    use super::*;
    use futures_util::SinkExt;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

    pub(super) type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

    pub(super) async fn connect(addr: SocketAddr) -> Ws {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), connect_async(&url))
            .await
            .expect("connect timed out")
            .expect("connect");
        let open = next_text(&mut ws).await;
        assert!(open.starts_with('0'), "{open}");
        ws.send(Message::text("40")).await.unwrap();
        let ack = next_text(&mut ws).await;
        assert!(ack.starts_with("40"), "{ack}");
        ws
    }

    async fn next_text(ws: &mut Ws) -> String {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "2" => {
                    ws.send(Message::text("3")).await.ok();
                }
                Ok(Some(Ok(Message::Text(t)))) => return t.as_str().to_owned(),
                Ok(Some(Ok(_))) => {}
                other => panic!("client: {other:?}"),
            }
        }
    }

    /// Counts distinct indices `< n` until `stop`; `progress` counts every new one (and
    /// the first `warm` event).
    pub(super) async fn count(
        mut ws: Ws,
        n: usize,
        stop: Arc<AtomicBool>,
        progress: Arc<AtomicU64>,
    ) -> usize {
        let mut seen = vec![false; n];
        let mut count = 0;
        let mut warm = false;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !stop.load(Ordering::Relaxed) {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let t = t.as_str();
                        if t == "2" {
                            ws.send(Message::text("3")).await.ok();
                        } else if let Some(rest) = t.strip_prefix("42[\"bench\",") {
                            let i: usize = rest.trim_end_matches(']').parse().unwrap_or(usize::MAX);
                            if i < n && !seen[i] {
                                seen[i] = true;
                                count += 1;
                                progress.fetch_add(1, Ordering::Relaxed);
                            }
                        } else if t.starts_with("42[\"warm\"") && !warm {
                            warm = true;
                            progress.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => break,
                },
                _ = tick.tick() => {}
            }
        }
        count
    }
}
