//! The emitter's publish rate next to Node's `@socket.io/redis-emitter` 5.1.0 and the raw
//! Redis ceiling, in one run: `cargo bench --bench emitter` (release build, plain
//! `fn main`).
//!
//! One `redis-server`, one socketioxide server on `ClusterAdapter` with `BENCH_CLIENTS`
//! (default 50) test clients (JSON parser, socketioxide buffer raised so that nothing is
//! dropped for a slow client). Then, one after the other, `BENCH_N` (default 20,000)
//! broadcasts `emit("bench", i, payload)` to every client:
//!
//! 1. **raw redis**: the same messages, pre-encoded, `PUBLISH`ed in pipelines of 512 on
//!    one connection (what no emitter can beat);
//!    and one `PUBLISH` at a time, waiting for each reply (`BENCH_N / 10`);
//! 2. **ours**: a plain sequential loop of `emitter.emit(..).await` (resolves once
//!    queued; the writer pipelines), then `flush()`;
//! 3. **ours, confirmed**: `emit(..).confirmed().await` in a loop (one round trip per
//!    call: the emitter's behaviour before the writer), `BENCH_N / 10` messages;
//! 4. **node**: `tests/interop/emit.js` runs the same loop of Node's fire-and-forget
//!    `emit` (node-redis queues and pipelines), then a `PING`.
//!
//! 5. **requests**: 200 each of `server_count`, `fetch_sockets`, `all_rooms` and
//!    `server_side_emit_with_ack` from the emitter; p50 and p99.
//!
//! 6. **named requests**: 200 each of `ask_one` and `ask_all` to a group of three servers
//!    (this one and two more), from a fourth server and from the emitter.
//!
//! For each: the loop's time (first to last emit call) and rate, the time until Redis had
//! executed everything, and the time until every client had received every broadcast, in
//! order (checked: the k-th event carries k).

use socketioxide_cluster_test_support as common;

use common::Parser;
use common::bench::env_num;
use common::cluster::{Serve, client, node_serving};
use common::node::start_emitter;
use serde_json::json;
use socketioxide_cluster::ClusterOptions;
use socketioxide_cluster_emitter::{Emitter, EmitterOptions};
use std::time::{Duration, Instant};

const PAYLOAD: &str = "payload-0123456789abcdef";
const T: Duration = Duration::from_secs(120);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

struct Line {
    what: &'static str,
    n: usize,
    loop_time: Duration,
    executed: Duration,
    delivered: Option<Duration>,
}

impl Line {
    fn print(&self) {
        let rate = |d: Duration| self.n as f64 / d.as_secs_f64();
        println!(
            "{:<18} {:>7} {:>10.1} {:>12.0} {:>12.1} {:>12}",
            self.what,
            self.n,
            self.loop_time.as_secs_f64() * 1000.0,
            rate(self.loop_time),
            self.executed.as_secs_f64() * 1000.0,
            self.delivered.map_or("-".to_owned(), |d| format!(
                "{:.1}",
                d.as_secs_f64() * 1000.0
            )),
        );
    }
}

async fn run() {
    let n: usize = env_num("BENCH_N", 20_000);
    let clients: usize = env_num("BENCH_CLIENTS", 50);
    let redis = common::RedisServer::start();
    let key = common::unique_key("bench-emitter");
    let serve = Serve {
        max_buffer_size: Some(n + 1024),
        ..Serve::ROOT
    };
    let server = node_serving(
        ClusterOptions::new(redis.url()).key(&key).name("group"),
        Parser::Json,
        serve,
    )
    .await;
    let mut cs = Vec::new();
    for _ in 0..clients {
        cs.push(client(&server, "/", Parser::Json, &[], T).await);
    }
    let emitter = Emitter::connect(EmitterOptions::new(redis.url()).key(&key))
        .await
        .expect("emitter");
    assert_eq!(
        emitter.emit("warm", &()).confirmed().await.expect("warm"),
        1,
        "the server subscribes"
    );
    for c in &mut cs {
        c.recv_event_named("warm", T).await;
    }
    let mut lines = Vec::new();

    // 1. raw redis
    let mut conn = common::command_conn(&redis.url()).await;
    let channel = format!("{key}#/#");
    let encoded: Vec<Vec<u8>> = (0..n).map(|i| wire_bytes(&key, i)).collect();
    let t0 = Instant::now();
    for chunk in encoded.chunks(512) {
        let mut pipe = redis::pipe();
        for m in chunk {
            pipe.cmd("PUBLISH").arg(&channel).arg(&m[..]).ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .expect("raw pipeline");
    }
    let executed = t0.elapsed();
    let delivered = deliver(&mut cs, n, t0).await;
    lines.push(Line {
        what: "raw redis",
        n,
        loop_time: executed,
        executed,
        delivered: Some(delivered),
    });

    // 1b. raw redis, one round trip per message (the ceiling of a confirmed loop)
    let m = n / 10;
    let t0 = Instant::now();
    for msg in encoded.iter().take(m) {
        redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&msg[..])
            .query_async::<usize>(&mut conn)
            .await
            .expect("raw publish");
    }
    let executed = t0.elapsed();
    let delivered = deliver(&mut cs, m, t0).await;
    lines.push(Line {
        what: "raw redis, 1 by 1",
        n: m,
        loop_time: executed,
        executed,
        delivered: Some(delivered),
    });

    // 2. ours
    let t0 = Instant::now();
    for i in 0..n {
        emitter.emit("bench", &(i, PAYLOAD)).await.expect("queued");
    }
    let loop_time = t0.elapsed();
    emitter.flush().await.expect("every message published");
    let executed = t0.elapsed();
    let delivered = deliver(&mut cs, n, t0).await;
    lines.push(Line {
        what: "ours",
        n,
        loop_time,
        executed,
        delivered: Some(delivered),
    });

    // 3. ours, confirmed
    let m = n / 10;
    let t0 = Instant::now();
    for i in 0..m {
        emitter
            .emit("bench", &(i, PAYLOAD))
            .confirmed()
            .await
            .expect("published");
    }
    let loop_time = t0.elapsed();
    let delivered = deliver(&mut cs, m, t0).await;
    lines.push(Line {
        what: "ours, confirmed",
        n: m,
        loop_time,
        executed: loop_time,
        delivered: Some(delivered),
    });
    let stats = emitter.stats();

    // 4. node
    let mut node = start_emitter("bench-node-emitter", &redis.url(), &key).await;
    let t0 = Instant::now();
    let r = node
        .request(
            json!({"cmd": "burst", "event": "bench", "count": n, "payload": PAYLOAD}),
            T,
        )
        .await;
    let delivered = deliver(&mut cs, n, t0).await;
    let ms = |k: &str| Duration::from_secs_f64(r[k].as_f64().unwrap_or(f64::NAN) / 1000.0);
    lines.push(Line {
        what: "node",
        n,
        loop_time: ms("loop_ms"),
        executed: ms("executed_ms"),
        // Measured from the request: includes the command's trip to the Node process.
        delivered: Some(delivered),
    });
    node.shutdown(Duration::from_secs(5)).await;

    // 5. requests from the emitter (to the one server and its clients)
    server
        .cluster
        .of("/")
        .on_server_side("ping", |ev| ev.ack("pong"));
    let mut latencies = Vec::new();
    for what in [
        "server_count",
        "fetch_sockets",
        "all_rooms",
        "server_side_emit_with_ack",
    ] {
        let mut times = Vec::with_capacity(200);
        for _ in 0..200 {
            let t = Instant::now();
            match what {
                "server_count" => {
                    emitter.server_count().await.expect("count");
                }
                "fetch_sockets" => {
                    assert_eq!(emitter.fetch_sockets().await.expect("fetch").len(), clients);
                }
                "all_rooms" => {
                    emitter.all_rooms().await.expect("rooms");
                }
                _ => {
                    emitter
                        .server_side_emit_with_ack("ping", &())
                        .await
                        .expect("ack");
                }
            }
            times.push(t.elapsed());
        }
        times.sort();
        latencies.push((what, times[100], times[198]));
    }

    // 6. named requests: one of / all of a group of three servers (the one above and
    // two more), from a server and from the emitter.
    let mut group = Vec::new();
    for _ in 0..2 {
        group.push(
            node_serving(
                ClusterOptions::new(redis.url()).key(&key).name("group"),
                Parser::Json,
                Serve::ROOT,
            )
            .await,
        );
    }
    for s in group.iter().chain([&server]) {
        s.cluster
            .of("/")
            .on_named("who", |_| async { Ok(serde_json::json!(1)) });
    }
    let asker = node_serving(
        ClusterOptions::new(redis.url()).key(&key),
        Parser::Json,
        Serve::ROOT,
    )
    .await;
    let ns = asker.cluster.of("/");
    let deadline = Instant::now() + T;
    while ns.members("group").len() < 3 {
        assert!(Instant::now() < deadline, "group never complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ask = socketioxide_cluster::Ask::default();
    let eask = socketioxide_cluster_emitter::Ask::default();
    for what in [
        "ask_one (server)",
        "ask_all of 3 (server)",
        "ask_one (emitter)",
        "ask_all of 3 (emitter)",
    ] {
        let mut times = Vec::with_capacity(200);
        for _ in 0..200 {
            let t = Instant::now();
            match what {
                "ask_one (server)" => {
                    drop(ns.ask_one("group", "who", &(), ask).await.expect("one"))
                }
                "ask_all of 3 (server)" => {
                    drop(ns.ask_all("group", "who", &(), ask).await.expect("all"))
                }
                "ask_one (emitter)" => drop(
                    emitter
                        .ask_one("group", "who", &(), eask)
                        .await
                        .expect("one"),
                ),
                _ => drop(
                    emitter
                        .ask_all("group", "who", &(), eask)
                        .await
                        .expect("all"),
                ),
            }
            times.push(t.elapsed());
        }
        times.sort();
        latencies.push((what, times[100], times[198]));
    }
    for s in group.iter().chain([&asker]) {
        s.cluster.close().await;
    }

    println!(
        "\n{n} broadcasts to {clients} clients of one Rust server (emit(\"bench\", i, payload)); times in ms from the first emit"
    );
    println!(
        "{:<18} {:>7} {:>10} {:>12} {:>12} {:>12}",
        "", "n", "loop", "loop msg/s", "executed", "delivered"
    );
    for l in &lines {
        l.print();
    }
    let rate = |l: &Line| l.n as f64 / l.loop_time.as_secs_f64();
    let (ours, node) = (&lines[2], &lines[4]);
    println!(
        "ours / node (loop rate): {:.2}x; ours executed by Redis at {:.0} msg/s, delivered at {:.0} msg/s",
        rate(ours) / rate(node),
        ours.n as f64 / ours.executed.as_secs_f64(),
        ours.n as f64 / ours.delivered.unwrap_or_default().as_secs_f64(),
    );
    println!(
        "requests (200 each; fetch_sockets to 1 server with {clients} sockets; named to a group of 3):"
    );
    for (what, p50, p99) in latencies {
        println!(
            "  {what:<26} p50 {:>7.3} ms  p99 {:>7.3} ms",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0
        );
    }
    println!(
        "emitter stats: {stats:?}; server stats: {:?}",
        server.cluster.stats()
    );
    server.cluster.close().await;
}

/// Waits until every client received `n` bench events, in order; the time since `t0`.
async fn deliver(cs: &mut Vec<common::Client>, n: usize, t0: Instant) -> Duration {
    let tasks: Vec<_> = std::mem::take(cs)
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let got = c.count_events_in_order("bench", n, T).await;
                (c, got)
            })
        })
        .collect();
    for t in tasks {
        let (c, got) = t.await.expect("client task");
        assert_eq!(got, n, "{c:?}: every broadcast delivered");
        cs.push(c);
    }
    t0.elapsed()
}

/// The bytes our emitter publishes for `emit("bench", i, PAYLOAD)` (the emitter's wire
/// format: `["emitter", packet, opts]`).
fn wire_bytes(_key: &str, i: usize) -> Vec<u8> {
    use socketioxide_cluster::wire::message::{BroadcastMessage, EVENT, NodePacket, WireOptions};
    BroadcastMessage {
        uid: "emitter".into(),
        packet: NodePacket {
            kind: EVENT,
            data: vec![
                rmpv::Value::from("bench"),
                rmpv::Value::from(i as u64),
                rmpv::Value::from(PAYLOAD),
            ],
            nsp: Some("/".into()),
            id: None,
        },
        opts: WireOptions::emitter(Vec::new(), Vec::new(), Vec::new()),
    }
    .encode()
}
