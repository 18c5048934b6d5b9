//! What a fault costs in delivered broadcasts: `cargo bench --bench gaps` (release
//! build, plain `fn main`).
//!
//! Two servers A and B on their own `redis-server`, `BENCH_GAP_CLIENTS` clients (default
//! 10, the test-support socket.io client) on B. A broadcasts `tick(seq, sent_at)` with
//! `io.emit` at `BENCH_GAP_RATE` per second (default 1000); after 1 s of steady
//! delivery the fault is injected, ticking goes on until every client received a tick
//! emitted after Redis answered again, then 2 s more; then the bench waits 1.5 s for
//! stragglers and counts.
//!
//! Scenarios (`BENCH_GAP_SCENARIOS`, default `kill-pubsub,kill-all,restart`):
//! * **kill-pubsub**: `CLIENT KILL TYPE pubsub` on the redis-server (every subscriber
//!   connection, A's and B's; the publishing connections stay). Redis never stops
//!   answering, so "Redis back" is the moment of the kill.
//! * **kill-all**: `CLIENT KILL TYPE normal` then `TYPE pubsub`: every connection but
//!   the bench's (publishers, stream readers, subscribers); Redis keeps answering.
//! * **restart**: redis-server SIGKILLed, started again on the same port
//!   `BENCH_GAP_DOWN_MS` later (default 1000; test-support's `RedisServer::restart`).
//!   "Redis back" is the first `PING` answered on a fresh connection of the bench's own
//!   (polled every 2 ms from a thread of its own).
//!
//! Implementations (`BENCH_GAP_PEERS`, default `ours,node,ours-streams,node-streams`):
//! * **ours**: two socketioxide servers on `ClusterAdapter` (default options); every
//!   `io.emit` result is kept (which error, when, how long the call took), and both
//!   servers' `cluster.stats()` are printed.
//! * **node**: two `tests/interop/server.js` (socket.io 4.8.4 + `@socket.io/redis-adapter`
//!   8.3.0); A ticks inside Node (`ticksStart`/`ticksStop` of `tests/interop/bench.js`),
//!   our clients on B measure. Node's `io.emit` returns nothing: a failed publish only
//!   shows as an unhandled promise rejection, which A counts.
//! * **ours-streams**, **node-streams**: the same on the Streams protocol
//!   (`ClusterOptions::streams`; Node's `@socket.io/redis-streams-adapter` 0.3.1):
//!   broadcasts go through a Redis stream that each server reads from its last id, so a
//!   lost connection costs nothing that is still in the stream. Same faults (the stream
//!   readers are normal connections: `CLIENT KILL TYPE pubsub` does not reach them; a
//!   restart without persistence empties the stream, and readers go on from their ids).
//!
//! All times are wall-clock milliseconds of this machine (Rust `SystemTime`, Node
//! `performance.timeOrigin + performance.now()`), printed relative to the fault. For each
//! client:
//! * **gap**: the longest silence between two consecutive ticks received;
//! * **fault->first**: from the fault to the arrival of the first tick emitted after it;
//! * **back->first**: from "Redis back" to the first tick that arrived after it (any tick);
//! * **lost**: ticks whose emit was accepted (no error) and that never arrived, by when
//!   they were emitted (before the fault was complete, while Redis was down, after Redis
//!   answered again), with the span of their emit times.
//!
//! For ours, the counters' change over the run is printed too (`published`,
//! `publish_failed`, `received`, `reconnects`), next to the full `cluster.stats()`.
//!
//! Figures over the clients are given as `min/median/max`.

use socketioxide_cluster_test_support::bench::{command_line, env_num};
use socketioxide_cluster_test_support::{
    client::{Client, Parser},
    cluster::{Io, Node, Serve, node_serving},
    node::{NodeProcess, start_server},
    redis::{RedisServer, command_conn, ping, unique_key},
};

use serde_json::json;
use socketioxide_cluster::{ClusterOptions, ClusterStats, Error, StreamsOptions};
use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::task::JoinHandle;

/// Steady delivery before the fault.
const BEFORE: Duration = Duration::from_secs(1);
/// Ticking after every client got a tick emitted after Redis was back.
const AFTER: Duration = Duration::from_secs(2);
/// Waiting for stragglers after the last tick.
const SETTLE: Duration = Duration::from_millis(1500);
/// Give up waiting for delivery to resume after this long past "Redis back".
const RESUME_LIMIT: Duration = Duration::from_secs(20);

struct Config {
    clients: usize,
    rate: f64,
    down: Duration,
    peers: Vec<String>,
    scenarios: Vec<String>,
}

fn list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
        * 1000.0
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillPubsub,
    KillAll,
    Restart,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::KillPubsub => "kill-pubsub",
            Fault::KillAll => "kill-all",
            Fault::Restart => "restart",
        }
    }
}

// ===== clients =====

/// One tick as a client saw it.
#[derive(Clone, Copy)]
struct Got {
    seq: u64,
    /// The `sent_at` the tick carries.
    sent_at: f64,
    arrived: f64,
}

type Log = Arc<Mutex<Vec<Got>>>;

/// Reads `c`'s events until `stop`, logging ticks.
fn consume(mut c: Client, log: Log, stop: Arc<AtomicBool>) -> JoinHandle<Client> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            if let Some(ev) = c.try_recv_event(Duration::from_millis(50)).await {
                if ev.name != "tick" {
                    continue;
                }
                let arrived = wall_ms();
                let seq = ev.arg(0).as_u64().expect("tick seq");
                let sent_at = ev.arg(1).as_f64().expect("tick sent_at");
                log.lock().unwrap().push(Got {
                    seq,
                    sent_at,
                    arrived,
                });
            }
        }
        c
    })
}

/// Connects `n` clients to `addr`.
async fn clients_on(addr: SocketAddr, n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Client::connect(addr, "/", Parser::Json).await);
    }
    out
}

// ===== senders =====

/// One emit as the sender saw it.
#[derive(Clone)]
struct Sent {
    sent_at: f64,
    /// `None`: accepted. Else the error (this crate's, when it is one).
    err: Option<String>,
    /// How long the `io.emit` call took (ms); NaN for Node.
    took: f64,
}

struct SenderReport {
    sent: Vec<Sent>,
    /// Node: unhandled publish rejections (count, by message).
    rejections: Option<(u64, BTreeMap<String, u64>)>,
}

enum Sender {
    Ours {
        a: Node,
        b: Node,
        ticker: Option<(Arc<AtomicBool>, JoinHandle<Vec<Sent>>)>,
    },
    // Boxed: a NodeProcess is much larger than the other variant.
    Node {
        a: Box<NodeProcess>,
        b: Box<NodeProcess>,
    },
}

const NODE_T: Duration = Duration::from_secs(30);

impl Sender {
    fn b_addr(&self) -> SocketAddr {
        match self {
            Sender::Ours { b, .. } => b.addr,
            Sender::Node { b, .. } => SocketAddr::from(([127, 0, 0, 1], b.port())),
        }
    }

    async fn warm(&mut self) {
        match self {
            Sender::Ours { a, .. } => {
                let _ = a.io.emit("warm", &()).await;
            }
            Sender::Node { a, .. } => {
                let _ = a
                    .try_request(json!({"cmd": "emit", "event": "warm", "args": []}), NODE_T)
                    .await;
            }
        }
    }

    async fn start(&mut self, rate: f64) {
        match self {
            Sender::Ours { a, ticker, .. } => {
                let stop = Arc::new(AtomicBool::new(false));
                let handle = tokio::spawn(tick_loop(a.io.clone(), rate, stop.clone()));
                *ticker = Some((stop, handle));
            }
            Sender::Node { a, .. } => {
                a.request(
                    json!({"cmd": "ticksStart", "event": "tick", "rate": rate}),
                    NODE_T,
                )
                .await;
            }
        }
    }

    async fn stop(&mut self) -> SenderReport {
        match self {
            Sender::Ours { ticker, .. } => {
                let (stop, handle) = ticker.take().expect("ticking");
                stop.store(true, Ordering::Relaxed);
                SenderReport {
                    sent: handle.await.expect("tick loop"),
                    rejections: None,
                }
            }
            Sender::Node { a, .. } => {
                let r = a
                    .request(json!({"cmd": "ticksStop", "settleMs": 500}), NODE_T)
                    .await;
                let sent = r["sentAt"]
                    .as_array()
                    .expect("sentAt")
                    .iter()
                    .map(|v| Sent {
                        sent_at: v.as_f64().expect("sentAt ms"),
                        err: None,
                        took: f64::NAN,
                    })
                    .collect();
                let msgs = r["rejectionMessages"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                            .collect()
                    })
                    .unwrap_or_default();
                SenderReport {
                    sent,
                    rejections: Some((r["rejections"].as_u64().unwrap_or(0), msgs)),
                }
            }
        }
    }

    fn stats(&self) -> Vec<String> {
        match self {
            Sender::Ours { a, b, .. } => vec![
                format!("A cluster.stats() {:?}", a.cluster.stats()),
                format!("B cluster.stats() {:?}", b.cluster.stats()),
                format!(
                    "A is_connected {}, B is_connected {}",
                    a.cluster.is_connected(),
                    b.cluster.is_connected()
                ),
            ],
            Sender::Node { .. } => Vec::new(),
        }
    }

    /// Ours: A's and B's counters now.
    fn counters(&self) -> Option<(ClusterStats, ClusterStats)> {
        match self {
            Sender::Ours { a, b, .. } => Some((a.cluster.stats(), b.cluster.stats())),
            Sender::Node { .. } => None,
        }
    }

    async fn close(self) {
        match self {
            Sender::Ours { a, b, .. } => {
                a.cluster.close().await;
                b.cluster.close().await;
            }
            Sender::Node { a, b } => {
                for p in [*a, *b] {
                    let name = p.name().to_owned();
                    if p.shutdown(Duration::from_secs(10)).await.is_none() {
                        eprintln!("node {name} did not exit in time (killed)");
                    }
                }
            }
        }
    }
}

/// `io.emit("tick", (seq, sent_at))` at `rate` per second until `stop`.
async fn tick_loop(io: Io, rate: f64, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let mut sent = Vec::new();
    let t0 = tokio::time::Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = t0 + Duration::from_secs_f64(seq as f64 / rate);
        tokio::time::sleep_until(due).await;
        let sent_at = wall_ms();
        let started = Instant::now();
        let res = io.emit("tick", &(seq, sent_at)).await;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        let err = res.err().map(|e| match Error::find_in(&e) {
            Some(ours) => format!("{ours}"),
            None => format!("{e}"),
        });
        sent.push(Sent { sent_at, err, took });
        seq += 1;
    }
    sent
}

// ===== one run =====

struct Outcome {
    fault: Fault,
    imp: &'static str,
    lines: Vec<String>,
    summary: Summary,
}

#[derive(Default)]
struct Summary {
    emits: usize,
    errors: usize,
    gap: String,
    fault_first: String,
    back_first: String,
    lost_down: String,
    lost_back: String,
    lost_other: String,
}

async fn setup(imp: &str, redis: &RedisServer, clients: usize) -> (Sender, Vec<Client>) {
    let key = unique_key("gaps");
    let mut sender = match imp {
        "ours" | "ours-streams" => {
            let mut opts = ClusterOptions::new(redis.url()).key(&key);
            if imp == "ours-streams" {
                opts = opts.streams(StreamsOptions {
                    stream_name: format!("{key}-stream"),
                    ..StreamsOptions::default()
                });
            }
            let serve = Serve {
                max_buffer_size: Some(100_000),
                ..Serve::ROOT
            };
            let a = node_serving(opts.clone(), Parser::Json, serve).await;
            let b = node_serving(opts, Parser::Json, serve).await;
            Sender::Ours { a, b, ticker: None }
        }
        "node" | "node-streams" => {
            let stream = format!("{key}-stream");
            let args: &[&str] = if imp == "node-streams" {
                &["--streams", &stream]
            } else {
                &[]
            };
            let a = start_server("A", &redis.url(), &key, args).await;
            let b = start_server("B", &redis.url(), &key, args).await;
            Sender::Node {
                a: Box::new(a),
                b: Box::new(b),
            }
        }
        other => panic!(
            "BENCH_GAP_PEERS: unknown implementation {other:?} (ours, node, ours-streams, node-streams)"
        ),
    };
    let mut cs = clients_on(sender.b_addr(), clients).await;
    // Every client receives a broadcast from A before the clock starts.
    let started = Instant::now();
    for c in &mut cs {
        loop {
            sender.warm().await;
            if c.try_recv_event(Duration::from_millis(100)).await.is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "a client of B never got A's warm-up broadcast"
            );
        }
    }
    // Drain the extra warm-ups.
    for c in &mut cs {
        while c.try_recv_event(Duration::from_millis(100)).await.is_some() {}
    }
    (sender, cs)
}

/// The first successful PING on a fresh connection, polled every 2 ms (wall ms).
fn first_ping(redis_addr: SocketAddr) -> f64 {
    let limit = Instant::now() + Duration::from_secs(60);
    loop {
        if ping(redis_addr, Duration::from_millis(200)).is_ok() {
            return wall_ms();
        }
        assert!(Instant::now() < limit, "redis-server never answered again");
        std::thread::sleep(Duration::from_millis(2));
    }
}

async fn run(imp: &'static str, fault: Fault, cfg: &Config) -> Outcome {
    let redis = Arc::new(RedisServer::start());
    let (mut sender, clients) = setup(imp, &redis, cfg.clients).await;
    let stop = Arc::new(AtomicBool::new(false));
    let logs: Vec<Log> = (0..clients.len()).map(|_| Log::default()).collect();
    let consumers: Vec<JoinHandle<Client>> = clients
        .into_iter()
        .zip(&logs)
        .map(|(c, log)| consume(c, log.clone(), stop.clone()))
        .collect();

    let counters_before = sender.counters();
    sender.start(cfg.rate).await;
    tokio::time::sleep(BEFORE).await;
    let mut lines = Vec::new();
    let t_fault;
    let t_back;
    match fault {
        Fault::KillAll => {
            let mut admin = command_conn(&redis.url()).await;
            let mut killed: i64 = 0;
            for kind in ["normal", "pubsub"] {
                killed += redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg(kind)
                    .query_async::<i64>(&mut admin)
                    .await
                    .expect("CLIENT KILL TYPE");
            }
            t_fault = wall_ms();
            t_back = t_fault;
            lines.push(format!(
                "fault: CLIENT KILL TYPE normal, then TYPE pubsub, closed {killed} connections (every one but the bench's)"
            ));
        }
        Fault::KillPubsub => {
            let mut admin = command_conn(&redis.url()).await;
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut admin)
                .await
                .expect("CLIENT KILL TYPE pubsub");
            // The fault is done when Redis answered the kill.
            t_fault = wall_ms();
            t_back = t_fault;
            lines.push(format!(
                "fault: CLIENT KILL TYPE pubsub closed {killed} connections"
            ));
        }
        Fault::Restart => {
            let (r, down) = (redis.clone(), cfg.down);
            let (killed_tx, killed_rx) = tokio::sync::oneshot::channel();
            // kill() SIGKILLs and reaps the process: the fault is done when it returns.
            // restart() blocks until the new process answers PING.
            let restarter = tokio::task::spawn_blocking(move || {
                r.kill();
                let _ = killed_tx.send(wall_ms());
                std::thread::sleep(down);
                r.restart();
            });
            t_fault = killed_rx.await.expect("kill");
            let (addr, down) = (redis.addr(), cfg.down);
            let pinger = tokio::task::spawn_blocking(move || {
                std::thread::sleep(down.saturating_sub(Duration::from_millis(20)));
                first_ping(addr)
            });
            t_back = pinger.await.expect("pinger");
            restarter.await.expect("restart");
            lines.push(format!(
                "fault: redis-server SIGKILLed, restarted on the same port {} ms later; first PING answered {:.1} ms after the kill",
                cfg.down.as_millis(),
                t_back - t_fault
            ));
        }
    }
    // Tick until every client got a tick emitted after Redis was back, then AFTER more.
    let resume_limit = Instant::now() + RESUME_LIMIT;
    let resumed = loop {
        let all = logs.iter().all(|l| {
            l.lock()
                .unwrap()
                .iter()
                .rev()
                .take(64)
                .any(|g| g.sent_at > t_back)
        });
        if all {
            break true;
        }
        if Instant::now() > resume_limit {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if !resumed {
        lines.push(format!(
            "delivery did NOT resume on every client within {} s of Redis being back",
            RESUME_LIMIT.as_secs()
        ));
    }
    tokio::time::sleep(AFTER).await;
    let report = sender.stop().await;
    tokio::time::sleep(SETTLE).await;
    stop.store(true, Ordering::Relaxed);
    let mut clients = Vec::new();
    for h in consumers {
        match h.await {
            Ok(c) => clients.push(c),
            Err(e) => lines.push(format!("a client task failed: {e}")),
        }
    }
    lines.extend(sender.stats());
    if let (Some((a0, b0)), Some((a1, b1))) = (counters_before, sender.counters()) {
        // B publishes nothing but its heartbeats (one per heartbeat interval), which A
        // publishes as well: A's published minus B's is A's accepted ticks on Redis.
        lines.push(format!(
            "during the run: A published +{} (B, heartbeats only: +{}), A publish_failed +{}, B received +{}, reconnects A +{} B +{}",
            a1.published - a0.published,
            b1.published - b0.published,
            a1.publish_failed - a0.publish_failed,
            b1.received - b0.received,
            a1.reconnects - a0.reconnects,
            b1.reconnects - b0.reconnects,
        ));
    }
    let summary = analyse(&report, &logs, t_fault, t_back, fault, &mut lines);
    drop(clients);
    sender.close().await;
    Outcome {
        fault,
        imp,
        lines,
        summary,
    }
}

// ===== analysis =====

fn rel(t: f64, t0: f64) -> String {
    format!("{:+.0} ms", t - t0)
}

/// `min/median/max` of `v` (ms, one decimal), or "-" when empty.
fn spread(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "-".to_owned();
    }
    v.sort_by(f64::total_cmp);
    let (min, med, max) = (v[0], v[v.len() / 2], v[v.len() - 1]);
    if (max - min).abs() < 0.05 {
        format!("{min:.1}")
    } else {
        format!("{min:.1}/{med:.1}/{max:.1}")
    }
}

fn spread_int(mut v: Vec<usize>) -> String {
    if v.is_empty() {
        return "-".to_owned();
    }
    v.sort();
    let (min, med, max) = (v[0], v[v.len() / 2], v[v.len() - 1]);
    if min == max {
        format!("{min}")
    } else {
        format!("{min}/{med}/{max}")
    }
}

fn analyse(
    report: &SenderReport,
    logs: &[Log],
    t_fault: f64,
    t_back: f64,
    fault: Fault,
    lines: &mut Vec<String>,
) -> Summary {
    let sent = &report.sent;
    let emits = sent.len();
    let accepted = sent.iter().filter(|s| s.err.is_none()).count();
    lines.push(format!(
        "A emitted {emits} ticks ({} s at the set rate), {accepted} accepted",
        fmt1(
            (sent.last().map_or(0.0, |s| s.sent_at) - sent.first().map_or(0.0, |s| s.sent_at))
                / 1000.0
        ),
    ));
    // Errors by message, with the span of their emit times.
    let mut errors: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for s in sent {
        if let Some(e) = &s.err {
            let entry = errors.entry(e).or_insert((0, s.sent_at, s.sent_at));
            entry.0 += 1;
            entry.2 = s.sent_at;
        }
    }
    let n_errors: usize = errors.values().map(|e| e.0).sum();
    if report.rejections.is_none() {
        if errors.is_empty() {
            lines.push("io.emit errors: none".to_owned());
        }
        for (e, (n, first, last)) in &errors {
            lines.push(format!(
                "io.emit errors: {n} x {e:?}, emitted {} .. {} after the fault",
                rel(*first, t_fault),
                rel(*last, t_fault)
            ));
        }
        if fault == Fault::Restart {
            let after: Vec<f64> = sent
                .iter()
                .filter(|s| s.err.is_some() && s.sent_at >= t_back)
                .map(|s| s.sent_at)
                .collect();
            lines.push(format!(
                "io.emit errors after Redis answered PING again: {}{}",
                after.len(),
                after.last().map_or(String::new(), |l| format!(
                    " (the last one {} after)",
                    rel(*l, t_back)
                ))
            ));
        }
        let slowest = sent.iter().map(|s| s.took).fold(0.0, f64::max);
        lines.push(format!("slowest io.emit call: {slowest:.1} ms"));
    }
    if let Some((n, msgs)) = &report.rejections {
        lines.push(format!(
            "io.emit errors: not observable in Node (io.emit returns nothing); unhandled publish rejections: {n} {msgs:?}"
        ));
    }

    // Per client.
    let (mut gaps, mut fault_first, mut back_first) = (Vec::new(), Vec::new(), Vec::new());
    let (mut lost_down, mut lost_back, mut lost_other) = (Vec::new(), Vec::new(), Vec::new());
    let (mut dups, mut errored_but_arrived) = (0usize, 0usize);
    let mut lost_span: Option<(f64, f64)> = None;
    let mut received = Vec::new();
    for log in logs {
        let log = log.lock().unwrap();
        received.push(log.len());
        let mut arrivals: Vec<f64> = log.iter().map(|g| g.arrived).collect();
        arrivals.sort_by(f64::total_cmp);
        let gap = arrivals.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        gaps.push(gap);
        if let Some(g) = log
            .iter()
            .filter(|g| g.sent_at > t_fault)
            .min_by(|a, b| a.arrived.total_cmp(&b.arrived))
        {
            fault_first.push(g.arrived - t_fault);
        }
        if let Some(g) = log
            .iter()
            .filter(|g| g.arrived > t_back)
            .min_by(|a, b| a.arrived.total_cmp(&b.arrived))
        {
            back_first.push(g.arrived - t_back);
        }
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for g in log.iter() {
            *seen.entry(g.seq).or_default() += 1;
        }
        dups += seen.values().filter(|&&n| n > 1).count();
        let (mut down, mut back, mut other) = (0, 0, 0);
        for (seq, s) in sent.iter().enumerate() {
            let arrived = seen.contains_key(&(seq as u64));
            if s.err.is_some() {
                errored_but_arrived += usize::from(arrived);
                continue;
            }
            if arrived {
                continue;
            }
            lost_span = Some(match lost_span {
                None => (s.sent_at, s.sent_at),
                Some((a, b)) => (a.min(s.sent_at), b.max(s.sent_at)),
            });
            if s.sent_at < t_fault {
                other += 1;
            } else if s.sent_at < t_back {
                down += 1;
            } else {
                back += 1;
            }
        }
        lost_down.push(down);
        lost_back.push(back);
        lost_other.push(other);
    }
    lines.push(format!(
        "received per client {} of {emits}; duplicates {dups}; errored emits that arrived anyway {errored_but_arrived}",
        spread_int(received)
    ));
    if fault != Fault::Restart {
        // Redis never stopped answering: "back" is the fault itself.
        back_first.clear();
    }
    lines.push(format!(
        "per client (min/median/max, ms): longest silence {}; fault -> first tick emitted after it {}; Redis back -> first tick {}",
        spread(gaps.clone()),
        spread(fault_first.clone()),
        spread(back_first.clone())
    ));
    let span = lost_span.map_or(String::new(), |(a, b)| {
        format!(
            "; the lost ticks were emitted {} .. {} after the fault",
            rel(a, t_fault),
            rel(b, t_fault)
        )
    });
    match fault {
        Fault::KillPubsub | Fault::KillAll => lines.push(format!(
            "accepted but never delivered, per client: {} emitted before the kill completed, {} after{span}",
            spread_int(lost_other.clone()),
            spread_int(lost_back.clone()),
        )),
        Fault::Restart => lines.push(format!(
            "accepted but never delivered, per client: {} emitted before the kill completed, {} while Redis was down, {} after it answered again{span}",
            spread_int(lost_other.clone()),
            spread_int(lost_down.clone()),
            spread_int(lost_back.clone()),
        )),
    }
    Summary {
        emits,
        errors: n_errors + report.rejections.as_ref().map_or(0, |r| r.0 as usize),
        gap: spread(gaps),
        fault_first: spread(fault_first),
        back_first: spread(back_first),
        lost_down: if fault == Fault::Restart {
            spread_int(lost_down)
        } else {
            "-".to_owned()
        },
        lost_back: spread_int(lost_back),
        lost_other: spread_int(lost_other),
    }
}

fn fmt1(x: f64) -> String {
    format!("{x:.1}")
}

// ===== main =====

fn print_summary(outcomes: &[Outcome]) {
    println!();
    println!(
        "summary (per client: min/median/max, or one value when all clients agree; times in ms)"
    );
    let header = format!(
        "{:<12} {:<5} {:>6} {:>12} {:>18} {:>18} {:>18} {:>13} {:>11} {:>9}",
        "scenario",
        "impl",
        "emits",
        "emit errors",
        "longest silence",
        "fault->first",
        "back->first",
        "lost: before",
        "while down",
        "after"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    for o in outcomes {
        let s = &o.summary;
        println!(
            "{:<12} {:<5} {:>6} {:>12} {:>18} {:>18} {:>18} {:>13} {:>11} {:>9}",
            o.fault.name(),
            o.imp,
            s.emits,
            s.errors,
            s.gap,
            s.fault_first,
            s.back_first,
            s.lost_other,
            s.lost_down,
            s.lost_back,
        );
    }
    println!(
        "lost = accepted, never delivered, by emit time: before the fault was complete, while Redis was down, after it answered again (kill-pubsub: after the kill)\n\
         node: \"emit errors\" counts unhandled publish rejections; io.emit itself cannot fail there"
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cfg = Config {
        clients: env_num("BENCH_GAP_CLIENTS", 10),
        rate: env_num("BENCH_GAP_RATE", 1000) as f64,
        down: Duration::from_millis(env_num("BENCH_GAP_DOWN_MS", 1000) as u64),
        peers: list("BENCH_GAP_PEERS", "ours,node,ours-streams,node-streams"),
        scenarios: list("BENCH_GAP_SCENARIOS", "kill-pubsub,kill-all,restart"),
    };
    assert!(
        cfg.clients > 0 && cfg.rate > 0.0,
        "BENCH_GAP_CLIENTS and BENCH_GAP_RATE must be > 0"
    );
    println!(
        "gaps: 2 servers, {} clients on B, A emits {} ticks/s; commit {}, {}, node {}",
        cfg.clients,
        cfg.rate,
        command_line("git", &["rev-parse", "--short", "HEAD"]),
        command_line("redis-server", &["--version"]),
        command_line("node", &["--version"]),
    );
    println!("load average at start: {}", loadavg());
    let mut outcomes = Vec::new();
    for scenario in &cfg.scenarios {
        let fault = match scenario.as_str() {
            "kill-pubsub" => Fault::KillPubsub,
            "kill-all" => Fault::KillAll,
            "restart" => Fault::Restart,
            other => {
                panic!(
                    "BENCH_GAP_SCENARIOS: unknown scenario {other:?} (kill-pubsub, kill-all, restart)"
                )
            }
        };
        for imp in ["ours", "node", "ours-streams", "node-streams"] {
            if !cfg.peers.iter().any(|p| p == imp) {
                println!(
                    "\n== {} / {imp}: skipped (not in BENCH_GAP_PEERS)",
                    fault.name()
                );
                continue;
            }
            let o = run(imp, fault, &cfg).await;
            println!("\n== {} / {imp}", fault.name());
            for l in &o.lines {
                println!("    {l}");
            }
            outcomes.push(o);
        }
    }
    print_summary(&outcomes);
    println!("load average at end: {}", loadavg());
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}
