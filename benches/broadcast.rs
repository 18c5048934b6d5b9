//! Cross-node broadcast throughput through a real `redis-server`.
//!
//! `cargo bench --bench broadcast` (release build, plain `fn main`, no harness).
//!
//! Phases, run one after the other in one process (tokio, 2 worker threads):
//!
//! 1. **raw redis**: one multiplexed connection PUBLISHes N messages of the exact size of
//!    the adapter's broadcast (pre-encoded `BroadcastMessage`s, pipelines of 512 as the
//!    adapter's writer task sends them) to `<key>#/#`; one `PSUBSCRIBE <key>#/#*`
//!    connection (as the adapter subscribes) counts them. The ceiling of the Redis hop.
//! 2. **local only** (reference, no Redis): one plain socketioxide server (`LocalAdapter`)
//!    with C clients of its own; `io.emit` N times.
//! 3. **adapter A->B**: two socketioxide servers with a `ClusterAdapter` each on the same
//!    `redis-server`; C clients on B; A runs `io.emit` N times.
//!
//! Phases 2 and 3 run once per client kind:
//! * `test client`: the integration tests' socket.io client (`test-support/src/client.rs`),
//!   which decodes every packet into `serde_json::Value` then `rmpv::Value` and hands it
//!   to a consumer task through a channel. Faithful, but it is the most expensive part
//!   of the run: the numbers are bounded by it on a small machine.
//! * `light client`: a minimal websocket reader written here (JSON parser only) that
//!   only pulls the two integers out of `42["bench",i,sent_at,"..."]`: it shows what the
//!   servers do when the clients cost less.
//!
//! Environment:
//! * `BENCH_N` broadcasts per phase (default 20000)
//! * `BENCH_CLIENTS` clients (default 50)
//! * `BENCH_PARSER` `json` (default), `msgpack` or `both` (the light client is JSON only)
//! * `BENCH_CLIENT` `both` (default), `test` or `light`
//! * `BENCH_RATE` broadcasts/s to pace the emit loop at (default: unpaced burst). In a
//!   burst, latency is mostly queueing delay; pace below the saturation rate to see the
//!   latency of one hop.
//! * `RUST_LOG` for the adapter's tracing output.
//!
//! Latency is `arrival - sent_at`, both read from one `Instant` in this process. For the
//! test client the arrival is taken when the consumer task dequeues the decoded event;
//! for the light client right after the websocket frame is read.
//!
//! Each phase also prints a timeline (when A's publisher had all its messages accepted by
//! Redis, when B's subscriber had received them all, when the last client was done) and
//! how much CPU the run got: everything (servers, clients, redis-server) shares the
//! machine's cores, and "waiting for a CPU" (run-queue time, from
//! `/proc/self/task/*/schedstat`) shows when other processes took them.

// getrusage(2) and sysconf(3) for the CPU and memory figures need libc.
#![allow(unsafe_code)]

use socketioxide_cluster_test_support::bench::env_num;
use socketioxide_cluster_test_support::{client, redis as redis_server, server};

use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use client::{Client, Parser};
use futures_util::{SinkExt, StreamExt};
use redis_server::RedisServer;
use socketioxide::{SocketIo, adapter::Emitter, extract::SocketRef};
use socketioxide_cluster::{
    Cluster, ClusterAdapter, ClusterOptions, ClusterStats,
    wire::{
        channel::Channels,
        message::{BroadcastMessage, EVENT, NodePacket, WireOptions},
    },
};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

const PAYLOAD: &str = "payload-0123456789abcdef";
/// A client gives up (and the rest counts as lost) after this long without an event.
const NO_PROGRESS: Duration = Duration::from_secs(30);
/// Bound for connecting a client and for the warm-up event.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pipeline size of the raw baseline: the adapter's writer sends at most 512 per pipeline.
const RAW_BATCH: usize = 512;

// ===== configuration =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    /// `test-support/src/client.rs`
    Test,
    /// [`light_connect`] / [`light_consume`]
    Light,
}

impl ClientKind {
    fn label(self) -> &'static str {
        match self {
            ClientKind::Test => "test client",
            ClientKind::Light => "light client",
        }
    }
}

struct Config {
    n: usize,
    clients: usize,
    parsers: Vec<Parser>,
    kinds: Vec<ClientKind>,
    rate: Option<f64>,
    /// Set once redis-server runs, to read its CPU time.
    redis_pid: u32,
}

impl Config {
    fn from_env() -> Config {
        let parsers = match std::env::var("BENCH_PARSER").as_deref() {
            Err(_) | Ok("json") => vec![Parser::Json],
            Ok("msgpack") => vec![Parser::MsgPack],
            Ok("both") => vec![Parser::Json, Parser::MsgPack],
            Ok(other) => panic!("BENCH_PARSER={other:?}: expected json, msgpack or both"),
        };
        let kinds = match std::env::var("BENCH_CLIENT").as_deref() {
            Err(_) | Ok("both") => vec![ClientKind::Test, ClientKind::Light],
            Ok("test") => vec![ClientKind::Test],
            Ok("light") => vec![ClientKind::Light],
            Ok(other) => panic!("BENCH_CLIENT={other:?}: expected both, test or light"),
        };
        let rate = match env_num("BENCH_RATE", 0) {
            0 => None,
            r => Some(r as f64),
        };
        let cfg = Config {
            n: env_num("BENCH_N", 20_000),
            clients: env_num("BENCH_CLIENTS", 50),
            parsers,
            kinds,
            rate,
            redis_pid: 0,
        };
        assert!(
            cfg.n > 0 && cfg.clients > 0,
            "BENCH_N and BENCH_CLIENTS must be > 0"
        );
        cfg
    }
}

/// The process-wide time origin that `sent_at` and arrivals are measured against.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_since_epoch(t: Instant) -> u64 {
    t.duration_since(epoch()).as_micros() as u64
}

/// CPU time used so far by this process and by redis-server, for "how many cores did
/// the run get" (the machine may be shared: fewer than 2 cores means contention).
#[derive(Clone, Copy)]
struct CpuSnap {
    wall: Instant,
    own: Duration,
    redis: Duration,
    /// Time this process' threads spent runnable but waiting for a CPU.
    waited: Duration,
}

impl CpuSnap {
    fn now(redis_pid: u32) -> CpuSnap {
        // SAFETY: getrusage fills the struct we pass.
        let own = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut ru);
            tv(ru.ru_utime) + tv(ru.ru_stime)
        };
        CpuSnap {
            wall: Instant::now(),
            own,
            redis: proc_cpu(redis_pid),
            waited: runqueue_wait(),
        }
    }

    /// "cpu: this process 1.93 cores (+0.02 waiting for a CPU), redis-server 0.05 cores; ..."
    fn cores_since(&self, start: &CpuSnap) -> String {
        let wall = (self.wall - start.wall).as_secs_f64();
        format!(
            "cpu: this process {:.2} cores (+{:.2} waiting for a CPU), redis-server {:.2} cores; peak RSS {} MB",
            (self.own - start.own).as_secs_f64() / wall,
            (self.waited.saturating_sub(start.waited)).as_secs_f64() / wall,
            (self.redis.saturating_sub(start.redis)).as_secs_f64() / wall,
            peak_rss_mb(),
        )
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// utime + stime of `pid` from /proc (zero if unreadable).
fn proc_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / hz)
}

/// Sum over this process' threads of the run-queue wait time (`/proc/self/task/*/schedstat`,
/// second field, ns). Large values mean other processes took the CPUs.
fn runqueue_wait() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

fn peak_rss_mb() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    let kb = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_maxrss
    };
    kb as u64 / 1024
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

// ===== main =====

fn main() {
    let mut cfg = Config::from_env();
    epoch();
    // Killed by its Drop (also when a phase panics and unwinds out of `main`), and by
    // PR_SET_PDEATHSIG if this process dies without unwinding. Panics with
    // "install it with `apt-get install redis-server`" when the binary is missing.
    let redis = RedisServer::start();
    cfg.redis_pid = redis.pid();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(&cfg, &redis));
    // Stop the servers' tasks before the redis-server they talk to goes away.
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(redis);
}

async fn run(cfg: &Config, redis: &RedisServer) {
    server::init_tracing();
    let url = redis.url();
    let pace = match cfg.rate {
        Some(r) => format!("emit paced at {}/s", fmt_int(r)),
        None => "unpaced burst".to_owned(),
    };
    println!(
        "broadcast bench: N={} broadcasts, C={} clients, {pace}; 2 tokio workers, {} CPUs, load avg {}",
        cfg.n,
        cfg.clients,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
    );

    raw_redis(cfg, &url).await;
    for &parser in &cfg.parsers {
        for &kind in &cfg.kinds {
            if kind == ClientKind::Light && parser != Parser::Json {
                println!("(light client skipped for {parser:?}: it only speaks the JSON parser)");
                continue;
            }
            local_only(cfg, parser, kind).await;
            adapter_a_to_b(cfg, &url, parser, kind).await;
        }
    }
}

// ===== phase 1: raw Redis =====

/// One message exactly as the adapter encodes `io.emit("bench", &(i, sent_at, PAYLOAD))`
/// (checked against a captured one: see [`probe_wire_size`]).
fn wire_message(uid: &str, i: u64, sent_at: u64) -> Vec<u8> {
    BroadcastMessage {
        uid: uid.to_owned(),
        packet: NodePacket {
            kind: EVENT,
            data: vec![
                rmpv::Value::from("bench"),
                rmpv::Value::from(i),
                rmpv::Value::from(sent_at),
                rmpv::Value::from(PAYLOAD),
            ],
            nsp: Some("/".to_owned()),
            id: None,
        },
        opts: WireOptions::new(vec![], vec![], vec![]),
    }
    .encode()
}

async fn raw_redis(cfg: &Config, url: &str) {
    let n = cfg.n;
    let key = redis_server::unique_key("bench-raw");
    let channels = Channels::new(&key, "/");
    let uid = socketioxide_core::Uid::new().to_string();
    // A realistic sent_at (a few seconds into the run) so the integer has its usual width.
    let sent_at = micros_since_epoch(Instant::now()) + 5_000_000;
    let msgs: Vec<Vec<u8>> = (0..n as u64)
        .map(|i| wire_message(&uid, i, sent_at + i))
        .collect();
    let avg_size = msgs.iter().map(Vec::len).sum::<usize>() as f64 / n as f64;

    let client = redis::Client::open(url).expect("redis url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
    pubsub
        .psubscribe(channels.pattern())
        .await
        .expect("PSUBSCRIBE");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("command connection");

    // When each pipeline was handed to the connection: messages arrive in order on one
    // connection, so message k's latency is arrival - batch_sent[k / RAW_BATCH].
    let batch_sent: Arc<Vec<AtomicU64>> = Arc::new(
        (0..n.div_ceil(RAW_BATCH))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let sub = {
        let batch_sent = batch_sent.clone();
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            let mut lat = Vec::with_capacity(n);
            let mut last = None;
            while lat.len() < n {
                match tokio::time::timeout(NO_PROGRESS, stream.next()).await {
                    Ok(Some(_msg)) => {
                        let t = Instant::now();
                        let sent = batch_sent[lat.len() / RAW_BATCH].load(Ordering::Acquire);
                        lat.push(micros_since_epoch(t).saturating_sub(sent) as u32);
                        last = Some(t);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            (lat, last)
        })
    };

    let cpu0 = CpuSnap::now(cfg.redis_pid);
    let t0 = Instant::now();
    for (b, chunk) in msgs.chunks(RAW_BATCH).enumerate() {
        let mut pipe = redis::pipe();
        for m in chunk {
            pipe.cmd("PUBLISH")
                .arg(channels.broadcast())
                .arg(&m[..])
                .ignore();
        }
        batch_sent[b].store(micros_since_epoch(Instant::now()), Ordering::Release);
        pipe.query_async::<()>(&mut conn)
            .await
            .expect("PUBLISH pipeline");
    }
    let published = t0.elapsed();
    let (mut lat, last) = sub.await.expect("subscriber task");
    let cpu = CpuSnap::now(cfg.redis_pid).cores_since(&cpu0);
    let received = lat.len();
    let e2e = last.map_or(Duration::ZERO, |l| l - t0).as_secs_f64();
    let (p50, p99) = percentiles(&mut lat);
    println!(
        "raw redis PUBLISH->PSUBSCRIBE: {n} msgs of {avg_size:.0} B in {e2e:.2} s = {} msg/s \
         (publish side {} msg/s), lost {}, latency p50 {p50:.1} ms p99 {p99:.1} ms\n    {cpu}",
        fmt_int(received as f64 / e2e),
        fmt_int(n as f64 / published.as_secs_f64()),
        n - received,
    );
}

// ===== clients =====

/// What one client saw.
struct ClientResult {
    /// Latencies in µs, one per delivery.
    lat: Vec<u32>,
    last: Option<Instant>,
    /// Events that were not a well-formed `bench` event with `i < N`.
    unexpected: usize,
}

impl ClientResult {
    fn new(n: usize) -> Self {
        Self {
            lat: Vec::with_capacity(n),
            last: None,
            unexpected: 0,
        }
    }

    fn seen(&self) -> usize {
        self.lat.len() + self.unexpected
    }

    fn record(&mut self, n: usize, arrival: Instant, i: Option<u64>, sent_at: Option<u64>) {
        match (i, sent_at) {
            (Some(i), Some(sent)) if i < n as u64 => {
                self.lat
                    .push(micros_since_epoch(arrival).saturating_sub(sent) as u32);
                self.last = Some(arrival);
            }
            _ => self.unexpected += 1,
        }
    }
}

/// Test client: receive `warm`, signal `ready`, then record up to `n` `bench` events.
async fn consume(mut client: Client, n: usize, ready: mpsc::Sender<()>) -> ClientResult {
    let warm = client.recv_event(SETUP_TIMEOUT).await;
    assert_eq!(
        warm.name, "warm",
        "{client:?}: expected the warm-up event first"
    );
    ready.send(()).await.ok();
    drop(ready);
    let mut res = ClientResult::new(n);
    while res.seen() < n {
        let Some(ev) = client.try_recv_event(NO_PROGRESS).await else {
            break;
        };
        let t = Instant::now();
        if ev.name == "bench" {
            let i = ev.args.first().and_then(|a| a.as_u64());
            let sent = ev.args.get(1).and_then(|a| a.as_u64());
            res.record(n, t, i, sent);
        } else {
            res.record(n, t, None, None);
        }
    }
    res
}

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Light client: websocket + engine.io open + socket.io connect to `/` (JSON parser).
async fn light_connect(addr: SocketAddr) -> Ws {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio::time::timeout(SETUP_TIMEOUT, connect_async(&url))
        .await
        .unwrap_or_else(|_| panic!("light client: connect to {url} timed out"))
        .unwrap_or_else(|e| panic!("light client: connect to {url} failed: {e}"));
    let open = light_next_text(&mut ws, "engine.io open").await;
    assert!(
        open.starts_with('0'),
        "light client: expected engine.io open, got {open:?}"
    );
    ws.send(Message::text("40")).await.expect("send connect");
    let ack = light_next_text(&mut ws, "connect ack").await;
    assert!(
        ack.starts_with("40"),
        "light client: expected connect ack, got {ack:?}"
    );
    ws
}

/// Next text frame (answering engine.io pings), bounded by [`SETUP_TIMEOUT`].
async fn light_next_text(ws: &mut Ws, what: &str) -> String {
    loop {
        let msg = tokio::time::timeout(SETUP_TIMEOUT, ws.next())
            .await
            .unwrap_or_else(|_| panic!("light client: timed out waiting for {what}"));
        match msg {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.ok();
            }
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("light client: expected {what}, got {other:?}"),
        }
    }
}

/// `42["bench",I,SENT,...` -> (I, SENT)
fn parse_bench(s: &str) -> (Option<u64>, Option<u64>) {
    let Some(rest) = s.strip_prefix("42[\"bench\",") else {
        return (None, None);
    };
    let mut it = rest.splitn(3, ',');
    let i = it.next().and_then(|x| x.parse().ok());
    let sent = it.next().and_then(|x| x.parse().ok());
    (i, sent)
}

/// Light client: like [`consume`], reading frames itself.
async fn light_consume(mut ws: Ws, n: usize, ready: mpsc::Sender<()>) -> ClientResult {
    let warm = light_next_text(&mut ws, "warm-up event").await;
    assert!(
        warm.starts_with("42[\"warm\""),
        "light client: expected the warm-up event first, got {warm:?}"
    );
    ready.send(()).await.ok();
    drop(ready);
    let mut res = ClientResult::new(n);
    // No per-event timer: check for progress every NO_PROGRESS instead.
    let check = tokio::time::sleep(NO_PROGRESS);
    tokio::pin!(check);
    let mut seen_at_check = 0;
    while res.seen() < n {
        tokio::select! {
            biased;
            msg = ws.next() => {
                let t = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        if text.as_str() == "2" {
                            ws.send(Message::text("3")).await.ok();
                            continue;
                        }
                        let (i, sent) = parse_bench(text.as_str());
                        res.record(n, t, i, sent);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(_)) => res.record(n, t, None, None),
                    None | Some(Err(_)) => break,
                }
            }
            _ = &mut check => {
                if res.seen() == seen_at_check {
                    break;
                }
                seen_at_check = res.seen();
                check.as_mut().reset(Instant::now() + NO_PROGRESS);
            }
        }
    }
    res
}

// ===== phases 2 and 3: socket.io =====

/// One socket.io phase's measurements.
struct Run {
    emit_time: Duration,
    t0: Instant,
    results: Vec<ClientResult>,
    /// Milestones observed while the run was going (label, time since t0).
    milestones: Vec<(String, Duration)>,
    /// "cpu: ..." from t0 until every client finished.
    cpu: String,
}

async fn emit_loop<A: socketioxide::adapter::Adapter>(io: &SocketIo<A>, n: usize, rate: Option<f64>)
where
    A::Error: std::fmt::Debug,
{
    let t0 = Instant::now();
    for i in 0..n as u64 {
        if let Some(rate) = rate {
            let due = t0 + Duration::from_secs_f64(i as f64 / rate);
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
        }
        let sent_at = micros_since_epoch(Instant::now());
        io.emit("bench", &(i, sent_at, PAYLOAD))
            .await
            .expect("io.emit");
    }
}

/// Connect C clients of `kind` to `addr`, check that each receives a `warm` event emitted
/// by `io`, then run the emit loop on `io` and wait for the clients to finish.
/// `monitor` is started with the clock (t0) and reports milestones.
async fn run_clients<A, F>(
    io: &SocketIo<A>,
    addr: SocketAddr,
    parser: Parser,
    kind: ClientKind,
    cfg: &Config,
    monitor: F,
) -> Run
where
    A: socketioxide::adapter::Adapter,
    A::Error: std::fmt::Debug,
    F: FnOnce(Instant) -> JoinHandle<Vec<(String, Duration)>>,
{
    let (n, c) = (cfg.n, cfg.clients);
    let (ready_tx, mut ready_rx) = mpsc::channel(c);
    let mut handles: Vec<JoinHandle<ClientResult>> = Vec::with_capacity(c);
    for _ in 0..c {
        let ready = ready_tx.clone();
        handles.push(match kind {
            ClientKind::Test => {
                let client = Client::connect(addr, "/", parser).await;
                tokio::spawn(consume(client, n, ready))
            }
            ClientKind::Light => {
                let ws = light_connect(addr).await;
                tokio::spawn(light_consume(ws, n, ready))
            }
        });
    }
    drop(ready_tx);
    // Warm-up: one event through the whole path, received by every client before the
    // clock starts (proves that subscriptions and connections are all up).
    io.emit("warm", &()).await.expect("warm-up emit");
    for k in 0..c {
        match tokio::time::timeout(SETUP_TIMEOUT, ready_rx.recv()).await {
            Ok(Some(())) => {}
            _ => panic!("only {k} of {c} clients received the warm-up event"),
        }
    }

    let cpu0 = CpuSnap::now(cfg.redis_pid);
    let t0 = Instant::now();
    let mon = monitor(t0);
    emit_loop(io, n, cfg.rate).await;
    let emit_time = t0.elapsed();
    let mut results = Vec::with_capacity(c);
    for h in handles {
        results.push(h.await.expect("client task panicked"));
    }
    let cpu = CpuSnap::now(cfg.redis_pid).cores_since(&cpu0);
    let mut milestones = mon.await.unwrap_or_default();
    if let Some(last) = results.iter().filter_map(|r| r.last).max() {
        milestones.push(("last client done".to_owned(), last - t0));
    }
    Run {
        emit_time,
        t0,
        results,
        milestones,
        cpu,
    }
}

async fn local_only(cfg: &Config, parser: Parser, kind: ClientKind) {
    let (layer, io) = server::builder(parser)
        .max_buffer_size(1_000_000)
        .build_layer();
    io.ns("/", async |_s: SocketRef| {});
    let addr = server::serve(layer).await;
    let run = run_clients(&io, addr, parser, kind, cfg, |_| {
        tokio::spawn(async { Vec::new() })
    })
    .await;
    report(
        &format!("local only (no redis), {parser:?}, {}", kind.label()),
        cfg,
        &run,
        "",
    );
}

type Io = SocketIo<ClusterAdapter<Emitter>>;

async fn cluster_node(url: &str, key: &str, parser: Parser) -> (Io, Cluster, SocketAddr) {
    let cluster = Cluster::connect(ClusterOptions::new(url).key(key))
        .await
        .expect("Cluster::connect");
    let (layer, io) = server::builder(parser)
        .max_buffer_size(1_000_000)
        .with_adapter::<ClusterAdapter<_>>(cluster.clone())
        .build_layer();
    io.ns("/", async |_s: SocketRef<ClusterAdapter<Emitter>>| {})
        .await
        .expect("ns /");
    let addr = server::serve(layer).await;
    (io, cluster, addr)
}

async fn adapter_a_to_b(cfg: &Config, url: &str, parser: Parser, kind: ClientKind) {
    let key = redis_server::unique_key("bench");
    let (io_a, cluster_a, _addr_a) = cluster_node(url, &key, parser).await;
    let (_io_b, cluster_b, addr_b) = cluster_node(url, &key, parser).await;
    // The counters below include the probe and the warm-up broadcast (N + 2), and any
    // control message the adapters exchange.
    let base_a = cluster_a.stats();
    let base_b = cluster_b.stats();
    let wire_size = probe_wire_size(url, &key, &io_a, cfg.n as u64 - 1).await;
    let n = cfg.n as u64 + 2;
    let monitor = {
        let (a, b) = (cluster_a.clone(), cluster_b.clone());
        move |t0: Instant| {
            tokio::spawn(async move {
                // Sample the counters to see which stage finishes when.
                let (mut published, mut received) = (None, None);
                let deadline = t0 + Duration::from_secs(120);
                while (published.is_none() || received.is_none()) && Instant::now() < deadline {
                    if published.is_none() && a.stats().published - base_a.published >= n {
                        published = Some(t0.elapsed());
                    }
                    if received.is_none() && b.stats().received - base_b.received >= n {
                        received = Some(t0.elapsed());
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let mut m = Vec::new();
                if let Some(p) = published {
                    m.push(("A published all".to_owned(), p));
                }
                if let Some(r) = received {
                    m.push(("B got all from redis".to_owned(), r));
                }
                m
            })
        }
    };
    let run = run_clients(&io_a, addr_b, parser, kind, cfg, monitor).await;
    let stats = |name: &str, s: ClusterStats, base: ClusterStats| {
        format!(
            "{name} published {}, publish_failed {}, received {}, delivery_failed {}, malformed {}",
            s.published - base.published,
            s.publish_failed - base.publish_failed,
            s.received - base.received,
            s.delivery_failed - base.delivery_failed,
            s.malformed - base.malformed,
        )
    };
    let extra = format!(
        "    stats (N + probe + warm-up + adapter control messages): {}; {}; one broadcast = {wire_size} B on the wire",
        stats("A", cluster_a.stats(), base_a),
        stats("B", cluster_b.stats(), base_b),
    );
    report(
        &format!("adapter A->B via redis, {parser:?}, {}", kind.label()),
        cfg,
        &run,
        &extra,
    );
    cluster_a.close().await;
    cluster_b.close().await;
}

/// Size of one real `bench` broadcast as A publishes it, captured by a raw subscriber
/// before any client is connected (so nothing is delivered and the measured run has no
/// extra subscriber).
async fn probe_wire_size(url: &str, key: &str, io: &Io, i: u64) -> usize {
    let client = redis::Client::open(url).expect("redis url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
    pubsub
        .psubscribe(Channels::new(key, "/").pattern())
        .await
        .expect("PSUBSCRIBE");
    let sent_at = micros_since_epoch(Instant::now()) + 5_000_000;
    io.emit("bench", &(i, sent_at, PAYLOAD))
        .await
        .expect("probe emit");
    let msg = tokio::time::timeout(SETUP_TIMEOUT, pubsub.on_message().next())
        .await
        .expect("probe broadcast not seen on redis")
        .expect("pubsub stream ended");
    msg.get_payload_bytes().len()
}

// ===== output =====

fn report(label: &str, cfg: &Config, run: &Run, extra: &str) {
    let (n, c) = (cfg.n, cfg.clients);
    let mut lat: Vec<u32> = Vec::with_capacity(n * c);
    let mut unexpected = 0usize;
    let mut last: Option<Instant> = None;
    for r in &run.results {
        unexpected += r.unexpected;
        lat.extend_from_slice(&r.lat);
        last = last.max(r.last);
    }
    let received = lat.len();
    let total = last.map_or(Duration::ZERO, |l| l - run.t0).as_secs_f64();
    let (p50, p99) = percentiles(&mut lat);
    let p999 = percentile(&lat, 0.999);
    let max = lat.last().map_or(f64::NAN, |&m| m as f64 / 1000.0);
    let unexpected = if unexpected > 0 {
        format!(" (+{unexpected} unexpected events)")
    } else {
        String::new()
    };
    println!(
        "{label} ({c} clients): emit loop {}/s; {n} broadcasts in {total:.2} s = {} broadcasts/s, \
         {} deliveries/s, lost {}{unexpected}, latency p50 {p50:.1} ms p99 {p99:.1} ms \
         p99.9 {p999:.1} ms max {max:.1} ms",
        fmt_int(n as f64 / run.emit_time.as_secs_f64()),
        fmt_int(n as f64 / total),
        fmt_int(received as f64 / total),
        n * c - received,
    );
    let m: Vec<String> = run
        .milestones
        .iter()
        .map(|(l, d)| format!("{l} {:.2} s", d.as_secs_f64()))
        .collect();
    println!(
        "    timeline: emit loop done {:.2} s, {}; {}",
        run.emit_time.as_secs_f64(),
        m.join(", "),
        run.cpu,
    );
    if !extra.is_empty() {
        println!("{extra}");
    }
}

/// Sorts `lat` and returns (p50, p99) in ms.
fn percentiles(lat: &mut [u32]) -> (f64, f64) {
    lat.sort_unstable();
    (percentile(lat, 0.50), percentile(lat, 0.99))
}

/// `q`-quantile of sorted µs values, in ms.
fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

/// `1234567.8` -> `"1,234,568"`.
fn fmt_int(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_owned();
    }
    let s = (x.round() as u64).to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (k, ch) in s.chars().enumerate() {
        if k > 0 && (s.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
