//! Cluster fixtures shared by the integration tests: a socketioxide server on
//! `ClusterAdapter` serving the test namespaces ([`Node`]), raw clients joined to rooms,
//! and the Node.js-side setup and teardown of the interop tests.
//!
//! Every bound is a parameter: each test file keeps its own `T`.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use socketioxide::{SocketIo, adapter::Emitter, extract::SocketRef, handler::ConnectHandler};
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions};

use crate::client::{Arg, Client, Event, Parser, arg};
use crate::node::{NodeProcess, start_server};
use crate::redis::{shared, unique_key};
use crate::server::{builder, init_tracing, serve, test_handlers_middleware, test_ns};

/// A socketioxide server handle on `ClusterAdapter`.
pub type Io = SocketIo<ClusterAdapter<Emitter>>;

/// One socketioxide server on `ClusterAdapter`, served on a loopback port.
#[derive(Debug)]
pub struct Node {
    /// The socketioxide handle (emit, rooms, namespaces).
    pub io: Io,
    /// The cluster its adapter runs on (stats, server-side events, options).
    pub cluster: Cluster,
    /// Where it is served (127.0.0.1, a free port).
    pub addr: SocketAddr,
}

impl Node {
    /// `http://127.0.0.1:PORT`, for `client.js`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// What a [`Node`] serves besides `/` (always there, with the test handlers).
#[derive(Clone, Copy, Debug)]
pub struct Serve {
    /// socketioxide's per-socket `max_buffer_size`; `None` keeps its default.
    pub max_buffer_size: Option<usize>,
    /// `/admin`, with the test handlers.
    pub admin: bool,
    /// The dynamic namespace `/dyn-{id}`, with the test handlers middleware.
    pub dyn_ns: bool,
}

impl Serve {
    /// `/` only, socketioxide's default buffer.
    pub const ROOT: Serve = Serve {
        max_buffer_size: None,
        admin: false,
        dyn_ns: false,
    };
    /// `/`, `/admin` and `/dyn-{id}`, a buffer of 100,000 packets per socket.
    pub const ALL: Serve = Serve {
        max_buffer_size: Some(100_000),
        admin: true,
        dyn_ns: true,
    };
}

/// A node serving [`Serve::ALL`].
pub async fn node_with(opts: ClusterOptions, parser: Parser) -> Node {
    node_serving(opts, parser, Serve::ALL).await
}

/// A node on `opts`, for `parser`, serving `what`.
pub async fn node_serving(opts: ClusterOptions, parser: Parser, what: Serve) -> Node {
    let cluster = Cluster::connect(opts).await.expect("connect");
    let mut b = builder(parser);
    if let Some(n) = what.max_buffer_size {
        b = b.max_buffer_size(n);
    }
    let (layer, io) = b
        .with_adapter::<ClusterAdapter<_>>(cluster.clone())
        .build_layer();
    test_ns(&io, "/").await.expect("ns /");
    if what.admin {
        test_ns(&io, "/admin").await.expect("ns /admin");
    }
    if what.dyn_ns {
        io.dyn_ns(
            "/dyn-{id}",
            (async |_s: SocketRef<ClusterAdapter<Emitter>>| {})
                .with(test_handlers_middleware::<ClusterAdapter<Emitter>>),
        )
        .expect("dyn ns");
    }
    let addr = serve(layer).await;
    Node { io, cluster, addr }
}

/// `n` nodes, one after the other, each on a clone of `opts`.
pub async fn nodes_serving(
    n: usize,
    opts: &ClusterOptions,
    parser: Parser,
    what: Serve,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(node_serving(opts.clone(), parser, what).await);
    }
    nodes
}

/// Tracing, then `n` nodes on the shared `redis-server` with a fresh key prefix
/// `{prefix}…` ([`shared_opts`]). Returns them and the key.
pub async fn fresh_nodes(
    n: usize,
    prefix: &str,
    parser: Parser,
    what: Serve,
) -> (Vec<Node>, String) {
    init_tracing();
    let key = unique_key(prefix);
    let nodes = nodes_serving(n, &shared_opts(&key), parser, what).await;
    (nodes, key)
}

/// Options for the shared `redis-server` with key prefix `key`.
pub fn shared_opts(key: &str) -> ClusterOptions {
    ClusterOptions::new(shared().url()).key(key)
}

/// A raw socket.io client on `node`'s `nsp`, in `rooms` (joined with a "join" acked
/// `"ok"` within `t`).
pub async fn client(node: &Node, nsp: &str, parser: Parser, rooms: &[&str], t: Duration) -> Client {
    let c = Client::connect(node.addr, nsp, parser).await;
    if !rooms.is_empty() {
        let ack = c.emit_with_ack("join", vec![json!(rooms)], t).await;
        assert_eq!(ack, vec![arg(json!("ok"))]);
    }
    c
}

/// The next events of `c` are exactly `names`, in this order (nothing else before the
/// last one), each within `t`. Returns them.
pub async fn expect_events(c: &mut Client, names: &[&str], t: Duration) -> Vec<Event> {
    let mut out = Vec::new();
    for n in names {
        out.push(c.recv_event_named(n, t).await);
    }
    out
}

/// A msgpack-style map with sorted keys (as the test client normalises maps).
pub fn amap(pairs: Vec<(&str, Arg)>) -> Arg {
    let mut m: Vec<(Arg, Arg)> = pairs.into_iter().map(|(k, v)| (Arg::from(k), v)).collect();
    m.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
    Arg::Map(m)
}

// ---------------------------------------------------------------------------
// Node.js side

/// A Node server (`server.js`) named `name` on the shared `redis-server`, with a fresh
/// key prefix `{prefix}…` (tracing initialised first). Returns it and the key.
pub async fn fresh_node_server(name: &str, prefix: &str) -> (NodeProcess, String) {
    init_tracing();
    let key = unique_key(prefix);
    let node = start_server(name, &shared().url(), &key, &[]).await;
    (node, key)
}

/// The next `{"event": ..}` lines of a `client.js` process are exactly `names`, in this
/// order, each within `t`. Returns the `args` of each.
pub async fn node_expect(c: &mut NodeProcess, names: &[&str], t: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    for n in names {
        let what = format!("client event {n:?} (expected sequence {names:?})");
        let ev = c
            .next_matching_described(|v| v.get("event").is_some(), t, &what)
            .await;
        assert_eq!(
            ev["event"],
            json!(n),
            "node {}: expected event {n:?} (sequence {names:?}), got {ev}",
            c.name()
        );
        out.push(ev["args"].clone());
    }
    out
}

/// Shuts every process down; each must exit cleanly within 10 s.
pub async fn shutdown_all(procs: Vec<NodeProcess>) {
    for p in procs {
        let name = p.name().to_string();
        let status = p.shutdown(Duration::from_secs(10)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "node {name} did not exit cleanly: {status:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Faults

/// Waits (bounded by `t`) until `node` counts `n` servers on `/`: counts follow Redis'
/// subscriptions, which change a moment after a server comes or goes. A connection
/// error (the count asked while the connection is down or moving) is "not yet".
pub async fn until_server_count(node: &Node, n: usize, t: Duration) {
    let deadline = tokio::time::Instant::now() + t;
    loop {
        let got = match node.cluster.of("/").server_count().await {
            Ok(got) => format!("{got}"),
            Err(e) if e.is_connection_error() => format!("unknown ({e})"),
            Err(e) => panic!("server count: {e}"),
        };
        if got == n.to_string() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server count stayed {got} for {t:?}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `probe` broadcasts from `from` until `to` receives one (within `t`), drains the
/// probes still in flight; returns how long it took.
pub async fn until_delivered(from: &Io, to: &mut Client, t: Duration) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let _ = from.emit("probe", &()).await;
        if let Some(ev) = to.try_recv_event(Duration::from_millis(50)).await {
            assert_eq!(ev.name, "probe");
            while to
                .try_recv_event(Duration::from_millis(100))
                .await
                .is_some()
            {}
            return started.elapsed();
        }
        assert!(
            started.elapsed() < t,
            "delivery did not resume within {t:?}"
        );
    }
}

/// Stalls `b`'s subscriber task (a server-side handler that blocks it, standing in for a
/// fan-out that cannot keep up), then publishes 1 MiB messages on `b`'s own response
/// channel of `/` through `flood_url` until Redis cuts `b`'s subscriber off (its
/// `client-output-buffer-limit pubsub` must be small). Returns the MiB published by then,
/// and the sender that ends the stall.
pub async fn stall_and_flood(
    a: &Cluster,
    b: &Cluster,
    flood_url: &str,
) -> (usize, std::sync::mpsc::Sender<()>) {
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let blocked = std::sync::Mutex::new(blocked);
    b.of("/").on_server_side("stall", move |_| {
        let _ = blocked
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20));
    });
    a.of("/").server_side_emit("stall", &()).await.unwrap();
    // b's own response channel: only b subscribes to it, so the flood cannot get `a`
    // (which shares the runtime's one free worker) cut off instead.
    let channel = format!("{}-response#/#{}#", b.config().key(), b.uid());
    // From a thread of its own, over a blocking connection: one runtime worker is held by
    // the stall, and the flood must not depend on the test's runtime.
    let flood_url = flood_url.to_owned();
    let sent = tokio::task::spawn_blocking(move || {
        let client = redis::Client::open(flood_url).unwrap();
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .expect("flood connection");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Malformed on purpose (a JSON object cut off: cheap to skip once read), but only
        // after it was read and queued: its first byte (`{`) passes the subscriber's
        // screen, so it takes room in the read-ahead as a real backlog would.
        let mut chunk = vec![b' '; 1024 * 1024];
        chunk[0] = b'{';
        let mut sent = 0usize;
        // Once Redis cut b off, nobody receives.
        loop {
            let receivers: i64 = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&chunk)
                .query(&mut conn)
                .expect("flood PUBLISH");
            sent += 1;
            if receivers == 0 {
                return sent;
            }
            // Paced (50 MiB/s): a reader without a bound keeps up with this and is never
            // cut off, so only a reader that stops reading is.
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                sent < 200,
                "Redis never cut the stalled subscriber off: it kept reading without bound"
            );
        }
    })
    .await
    .unwrap();
    (sent, release)
}

/// The binary arguments the interop tests send from a Rust server, top level, nested,
/// big (bin32) and empty: see [`emit_binary_set`] and [`assert_binary_set`].
pub fn big_binary() -> Vec<u8> {
    (0..70_000u32).map(|i| (i % 251) as u8).collect()
}

#[derive(serde::Serialize)]
struct WithBytes {
    b: bytes::Bytes,
    n: u32,
}

/// `io` emits `r-bin` with the binary set (`big` as the 4th argument), then `r-marker`.
pub async fn emit_binary_set(io: &Io, big: &[u8]) {
    io.emit(
        "r-bin",
        &(
            bytes::Bytes::from_static(BINARY_PAYLOAD),
            "text",
            WithBytes {
                b: bytes::Bytes::from_static(&[9, 8]),
                n: 7,
            },
            bytes::Bytes::copy_from_slice(big),
            bytes::Bytes::new(),
        ),
    )
    .await
    .unwrap();
    io.emit("r-marker", &()).await.unwrap();
}

const BINARY_PAYLOAD: &[u8] = &[0, 1, 2, 254, 255];

/// The `r-bin` arguments a Node client received (`client.js` wire form) are the binary
/// set of [`emit_binary_set`], byte for byte.
pub fn assert_binary_set(args: &Value, big: &[u8]) {
    use crate::node::{as_bin, bin};
    assert_eq!(args[0], bin(BINARY_PAYLOAD), "{args}");
    assert_eq!(args[1], json!("text"));
    assert_eq!(args[2], json!({"b": bin(&[9, 8]), "n": 7}));
    assert_eq!(as_bin(&args[3]).as_deref(), Some(big), "big buffer");
    assert_eq!(args[4], bin(&[]));
}
