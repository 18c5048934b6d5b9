//! Secured Redis: `rediss://` (TLS) with a custom CA, and Redis 6+ ACL users
//! (`redis://user:password@host`), for the adapter and the emitter.
//!
//! * TLS: a `redis-server` with `--tls-port` and certificates generated here with `rcgen`
//!   (a throw-away CA and a server certificate for `127.0.0.1`; no `openssl` CLI needed).
//!   It keeps its plain port too, which only the harness uses (readiness `PING`).
//! * ACL: a `redis-server` whose `default` user is switched off after start, so every
//!   connection must authenticate as the `app` user.
//! * Credentials never show: every test runs under one process-wide tracing subscriber
//!   at `TRACE` that writes into a buffer (log records included), and the passwords
//!   must never appear in it, nor in an error's `Display`/`Debug`, nor in the options'
//!   `Debug`.
//!
//! Requires `redis-server` built with TLS (Debian's is).

use socketioxide_cluster_test_support as common;

use common::tls::Certs;
use common::{Client, Parser, RedisServer, arg, free_port};
use serde_json::json;
use socketioxide::{SocketIo, adapter::Emitter as LocalEmitter};
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions, Error};
use socketioxide_cluster_emitter::{Emitter, EmitterOptions};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bound of one wait.
const T: Duration = Duration::from_secs(10);
/// The ACL user's password. Must never be printed anywhere.
const PASSWORD: &str = "s3cret-Pw-4acl";
/// A wrong password tried against the ACL server. Must never be printed either.
const WRONG_PASSWORD: &str = "s3cret-wrong-Pw";
/// The admin user's password (fault injection only).
const ADMIN_PASSWORD: &str = "adm1n-Pw";

type Io = SocketIo<ClusterAdapter<LocalEmitter>>;

// ---------------------------------------------------------------------------
// Log capture

/// Everything every thread of this test binary logged, formatted, at TRACE level.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer_buf = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer_buf.clone()))
            .try_init()
            .expect("secure.rs installs the only tracing subscriber of its binary");
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Panics, showing the offending lines, if a secret was ever logged.
fn assert_logs_hide_secrets() {
    let logs = captured_logs();
    for secret in [PASSWORD, WRONG_PASSWORD, ADMIN_PASSWORD] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "password logged:\n{}", leaks.join("\n"));
    }
}

/// `s` (an error's or options' rendering) shows no password.
fn assert_no_secret(s: &str) {
    for secret in [PASSWORD, WRONG_PASSWORD, ADMIN_PASSWORD] {
        assert!(!s.contains(secret), "password shown: {s}");
    }
}

// ---------------------------------------------------------------------------
// Servers and clients

/// A `redis-server` that also speaks TLS on `tls_port` (no client certificates).
struct TlsRedis {
    _server: RedisServer,
    tls_port: u16,
    certs: Certs,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        Self::start_with_args(&[])
    }

    /// With `extra` appended to the command line.
    fn start_with_args(extra: &[&str]) -> TlsRedis {
        let certs = Certs::generate();
        // A fresh TLS port per start attempt: another process may take a free port
        // before redis-server binds it.
        let last_port = std::cell::Cell::new(0);
        let server = RedisServer::start_with(|| {
            last_port.set(free_port());
            let mut args = certs.redis_args(last_port.get());
            args.extend(extra.iter().map(|a| a.to_string()));
            args
        });
        let tls_port = last_port.get();
        TlsRedis {
            _server: server,
            tls_port,
            certs,
        }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    fn options(&self, key: &str) -> ClusterOptions {
        ClusterOptions::new(self.url())
            .tls_root_cert(self.certs.ca_pem.as_bytes())
            .key(key)
    }
}

/// A `redis-server` whose `default` user is off: clients must log in as `app`
/// (password [`PASSWORD`]); `admin` ([`ADMIN_PASSWORD`]) is for fault injection.
struct AclRedis {
    server: RedisServer,
}

impl AclRedis {
    async fn start() -> AclRedis {
        let server = RedisServer::start();
        let mut conn = common::command_conn(&server.url()).await;
        for user in [("app", PASSWORD), ("admin", ADMIN_PASSWORD)] {
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(user.0)
                .arg("on")
                .arg(format!(">{}", user.1))
                .arg(&["~*", "&*", "+@all"])
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
        }
        redis::cmd("ACL")
            .arg(&["SETUSER", "default", "off"])
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        AclRedis { server }
    }

    fn url_as(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.server.port())
    }

    fn app_url(&self) -> String {
        self.url_as("app", PASSWORD)
    }

    async fn admin(&self) -> redis::aio::MultiplexedConnection {
        common::command_conn(&self.url_as("admin", ADMIN_PASSWORD)).await
    }
}

struct Node {
    io: Io,
    cluster: Cluster,
    addr: SocketAddr,
}

async fn node(opts: ClusterOptions) -> Node {
    let cluster = Cluster::connect(opts).await.expect("connect");
    let (layer, io) = common::builder(Parser::Json)
        .with_adapter::<ClusterAdapter<_>>(cluster.clone())
        .build_layer();
    common::test_ns(&io, "/").await.expect("ns /");
    let addr = common::serve(layer).await;
    Node { io, cluster, addr }
}

async fn client(node: &Node, rooms: &[&str]) -> Client {
    let c = Client::connect(node.addr, "/", Parser::Json).await;
    if !rooms.is_empty() {
        let ack = c.emit_with_ack("join", vec![json!(rooms)], T).await;
        assert_eq!(ack, vec![arg(json!("ok"))]);
    }
    c
}

/// Two nodes with `opts`; a broadcast from each reaches a client of the other, once.
async fn assert_broadcasts_flow(opts: ClusterOptions) -> Vec<Node> {
    let nodes = vec![node(opts.clone()).await, node(opts).await];
    let c0 = client(&nodes[0], &["a"]).await;
    let c1 = client(&nodes[1], &["b"]).await;
    for (from, to, room, mut c) in [(0, 1, "b", c1), (1, 0, "a", c0)] {
        let io = &nodes[from].io;
        io.to(room).emit("hello", &("from", from)).await.unwrap();
        io.to(room).emit("marker", &()).await.unwrap();
        let ev = c.recv_event_named("hello", T).await;
        assert_eq!(
            ev.args,
            vec![arg(json!("from")), arg(json!(from))],
            "to {to}"
        );
        c.expect_no_event_before("marker", T).await;
    }
    nodes
}

/// `Cluster::connect(opts)` fails well before its connect timeout; returns the error.
async fn connect_fails_fast(opts: ClusterOptions) -> Error {
    let opts = opts.connect_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let err = tokio::time::timeout(T, Cluster::connect(opts))
        .await
        .expect("Cluster::connect hung")
        .expect_err("Cluster::connect should fail");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}: {err}",
        started.elapsed()
    );
    assert!(!matches!(err, Error::ConnectTimeout { .. }), "{err}");
    err
}

// ---------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn tls_with_custom_ca_delivers_broadcasts() {
    logs();
    let redis = TlsRedis::start();
    let nodes = assert_broadcasts_flow(redis.options(&common::unique_key("tls"))).await;
    let dbg = format!("{:?}", nodes[0].cluster);
    assert!(dbg.contains("rediss://127.0.0.1:"), "{dbg}");
    assert!(dbg.contains("custom TLS root cert"), "{dbg}");
    assert!(!dbg.contains("BEGIN CERTIFICATE"), "{dbg}");
    assert!(nodes[0].cluster.is_connected());
}

/// The TLS subscriber connection is gated like the plain one: a server that cannot keep
/// up stops reading after a bounded read-ahead, Redis cuts it off for its output buffer,
/// and it comes back over TLS and receives again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_subscriber_that_cannot_keep_up_stays_bounded_and_recovers() {
    logs();
    let redis = TlsRedis::start_with_args(&["--client-output-buffer-limit", "pubsub 4mb 2mb 1"]);
    let opts = redis.options(&common::unique_key("tls-slow"));
    let (a, b) = (node(opts.clone()).await, node(opts).await);
    let mut c = client(&b, &[]).await;
    common::cluster::until_delivered(&a.io, &mut c, T).await;
    // The flood goes through the server's plain port; b reads it over TLS.
    let plain = format!("redis://127.0.0.1:{}", redis._server.port());
    let (sent, release) = common::cluster::stall_and_flood(&a.cluster, &b.cluster, &plain).await;
    eprintln!("slow TLS subscriber: cut off by Redis after {sent} MiB");
    assert!(sent < 64, "{sent} MiB published before the cut-off");
    release.send(()).unwrap();
    let took = common::cluster::until_delivered(&a.io, &mut c, T).await;
    eprintln!("slow TLS subscriber: receiving again {took:?} after it caught up");
    assert!(b.cluster.stats().reconnects >= 1, "{:?}", b.cluster.stats());
}

#[tokio::test]
async fn tls_with_wrong_or_missing_ca_fails_from_connect() {
    logs();
    let redis = TlsRedis::start();
    let key = common::unique_key("tls-bad");

    // Another CA than the one that signed the server's certificate.
    let other = Certs::generate();
    let err =
        connect_fails_fast(ClusterOptions::new(redis.url()).tls_root_cert(other.ca_pem.as_bytes()))
            .await;
    assert!(matches!(err, Error::Redis(_)), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");

    // No CA given: the system roots do not know our test CA.
    let err = connect_fails_fast(ClusterOptions::new(redis.url()).key(&key)).await;
    assert!(err.to_string().contains("certificate"), "{err}");

    // Not PEM at all.
    let err = connect_fails_fast(ClusterOptions::new(redis.url()).tls_root_cert("not a pem")).await;
    assert!(matches!(err, Error::Config(_)), "{err}");

    // A CA for a plain `redis://` URL is a configuration error, not a silent downgrade.
    let plain = format!("redis://127.0.0.1:{}", redis.tls_port);
    let err = connect_fails_fast(
        ClusterOptions::new(&plain).tls_root_cert(redis.certs.ca_pem.as_bytes()),
    )
    .await;
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(err.to_string().contains("rediss://"), "{err}");

    // Plain RESP to the TLS port: refused, not a hang.
    let err = connect_fails_fast(ClusterOptions::new(plain)).await;
    assert!(err.is_connection_error(), "{err:?}");
}

#[tokio::test]
async fn emitter_over_tls() {
    logs();
    let redis = TlsRedis::start();
    let key = common::unique_key("tls-em");
    let n = node(redis.options(&key)).await;
    let mut c = client(&n, &[]).await;

    // With the CA in the options.
    let em = Emitter::connect(
        EmitterOptions::new(redis.url())
            .key(&key)
            .tls_root_cert(redis.certs.ca_pem.clone().into_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(em.emit("over-tls", &6).confirmed().await.unwrap(), 1);
    assert_eq!(c.recv_event_named("over-tls", T).await.i64_arg(0), 6);

    // Or an existing TLS connection.
    let tls_client = redis::Client::build_with_tls(
        redis.url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(redis.certs.ca_pem.clone().into_bytes()),
        },
    )
    .unwrap();
    let conn = redis::aio::ConnectionManager::new(tls_client)
        .await
        .unwrap();
    let em = Emitter::from_connection(conn, EmitterOptions::default().key(&key)).unwrap();
    assert_eq!(em.emit("over-tls", &7).confirmed().await.unwrap(), 1);
    assert_eq!(c.recv_event_named("over-tls", T).await.i64_arg(0), 7);

    // `rediss://` through `Emitter::connect`: TLS is there, and an unknown CA is refused
    // with an error, not a hang.
    let started = Instant::now();
    let err = Emitter::connect(EmitterOptions::new(redis.url()).key(&key))
        .await
        .unwrap_err();
    assert!(
        matches!(err, socketioxide_cluster_emitter::Error::Connect { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

// ---------------------------------------------------------------------------
// ACL users

#[tokio::test]
async fn acl_user_delivers_broadcasts_and_survives_reconnects() {
    logs();
    let redis = AclRedis::start().await;
    let key = common::unique_key("acl");
    let opts = ClusterOptions::new(redis.app_url()).key(&key);
    let dbg = format!("{opts:?}");
    assert_no_secret(&dbg);
    assert!(dbg.contains("redis://app:***@127.0.0.1:"), "{dbg}");
    let nodes = assert_broadcasts_flow(opts).await;
    assert_no_secret(&format!("{:?}", nodes[0].cluster));

    // Drop every connection of `app`: the adapter logs the loss (with its URL), then
    // reconnects, authenticating again, and broadcasts flow once more.
    let mut c1 = client(&nodes[1], &[]).await;
    let mut admin = redis.admin().await;
    let killed: usize = redis::cmd("CLIENT")
        .arg(&["KILL", "USER", "app"])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 4, "killed {killed} connections");
    let deadline = Instant::now() + T;
    let mut n = 0;
    loop {
        n += 1;
        // Fails (or is lost) while the connections are down.
        let _ = nodes[0].io.emit("after-kill", &n).await;
        if let Some(ev) = c1.try_recv_event(Duration::from_millis(200)).await {
            assert_eq!(ev.name, "after-kill", "{ev:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no broadcast after reconnecting");
    }
    assert!(nodes[0].cluster.is_connected());
    assert!(
        captured_logs().contains("redis://app:***@127.0.0.1:"),
        "the connection loss was not logged with the redacted URL"
    );
    assert_logs_hide_secrets();
}

#[tokio::test]
async fn acl_bad_credentials_fail_from_connect_without_showing_them() {
    logs();
    let redis = AclRedis::start().await;
    for url in [
        redis.url_as("app", WRONG_PASSWORD),
        redis.url_as("nobody", WRONG_PASSWORD),
        // Password only: `AUTH <password>` as `default`, which is off.
        format!(
            "redis://:{WRONG_PASSWORD}@127.0.0.1:{}",
            redis.server.port()
        ),
    ] {
        let opts = ClusterOptions::new(&url);
        assert_no_secret(&format!("{opts:?}"));
        let err = connect_fails_fast(opts).await;
        assert!(matches!(err, Error::Redis(_)), "{err:?}");
        let shown = err.to_string();
        assert!(
            shown.contains("WRONGPASS") || shown.contains("uthentication"),
            "{shown}"
        );
        assert_no_secret(&shown);
        assert_no_secret(&format!("{err:?}"));
    }
    assert_logs_hide_secrets();
}

#[tokio::test]
async fn emitter_with_acl_user() {
    logs();
    let redis = AclRedis::start().await;
    let key = common::unique_key("acl-em");
    let n = node(ClusterOptions::new(redis.app_url()).key(&key)).await;
    let mut c = client(&n, &["r"]).await;

    let opts = EmitterOptions::new(redis.app_url()).key(&key);
    assert_no_secret(&format!("{opts:?}"));
    let em = Emitter::connect(opts).await.expect("emitter connect");
    assert_no_secret(&format!("{em:?}"));
    assert_eq!(
        em.to("r")
            .emit("from-emitter", &"hi")
            .confirmed()
            .await
            .unwrap(),
        1
    );
    assert_eq!(c.recv_event_named("from-emitter", T).await.str_arg(0), "hi");

    let started = Instant::now();
    let err = Emitter::connect(EmitterOptions::new(redis.url_as("app", WRONG_PASSWORD)))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(err, socketioxide_cluster_emitter::Error::Connect { .. }),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.contains("redis://app:***@127.0.0.1:"), "{shown}");
    assert_no_secret(&shown);
    assert_no_secret(&format!("{err:?}"));
    assert_logs_hide_secrets();
}

#[tokio::test]
async fn acl_missing_credentials_are_refused() {
    logs();
    let redis = AclRedis::start().await;
    let url = format!("redis://127.0.0.1:{}", redis.server.port());
    // The adapter finds out at connect.
    let err = connect_fails_fast(ClusterOptions::new(&url)).await;
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    // The emitter at connect or, as `ConnectionManager` sends nothing before the first
    // command, at the first emit; never silently.
    let err = match Emitter::connect(EmitterOptions::new(&url)).await {
        Err(e) => e,
        Ok(em) => em.emit("x", &1).confirmed().await.unwrap_err(),
    };
    assert!(err.to_string().contains("NOAUTH"), "{err}");
}

/// A command Redis refuses (here an ACL that forbids PUBLISH) is the caller's error for
/// the calls that wait for Redis (join/leave/disconnect, server-side emit), and is
/// counted for pipelined broadcasts; nothing is lost silently.
#[tokio::test]
async fn refused_publish_is_reported_not_lost() {
    logs();
    let redis = AclRedis::start().await;
    let opts = ClusterOptions::new(redis.app_url()).key(common::unique_key("acl-pub"));
    let nodes = assert_broadcasts_flow(opts).await;
    let mut admin = redis.admin().await;
    redis::cmd("ACL")
        .arg(&["SETUSER", "app", "-publish"])
        .query_async::<()>(&mut admin)
        .await
        .unwrap();

    let io = &nodes[0].io;
    let err = io.within("a").join("x").await.unwrap_err();
    assert!(matches!(err, Error::NotPublished(_)), "{err:?}");
    assert!(err.to_string().contains("no permissions"), "{err}");
    let err = nodes[0]
        .cluster
        .of("/")
        .server_side_emit("job", &())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotPublished(_)), "{err:?}");

    // A broadcast is only queued: its loss shows in the stats.
    let before = nodes[0].cluster.stats().publish_failed;
    io.emit("lost", &()).await.unwrap();
    let deadline = Instant::now() + T;
    while nodes[0].cluster.stats().publish_failed == before {
        assert!(Instant::now() < deadline, "refused broadcast not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_logs_hide_secrets();
}
