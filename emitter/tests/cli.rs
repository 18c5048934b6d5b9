//! `socketio-emit`, the built binary, against a real `redis-server`: what it publishes
//! (channel and decoded payload, read by a pattern subscriber), its output, its errors and
//! exit codes.

use futures_util::StreamExt;
use socketioxide_cluster_test_support::{RedisServer, unique_key};
use socketioxide_cluster_wire::message::BroadcastMessage;
use socketioxide_cluster_wire::request::Request;
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);
const BIN: &str = env!("CARGO_BIN_EXE_socketio-emit");

fn redis() -> &'static RedisServer {
    static R: OnceLock<RedisServer> = OnceLock::new();
    R.get_or_init(RedisServer::start)
}

/// Runs the binary (bounded by `T`), without `REDIS_URL` from the environment.
async fn run(args: &[&str]) -> Output {
    let child = tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn socketio-emit");
    tokio::time::timeout(T, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("socketio-emit {args:?} did not exit within {T:?}"))
        .expect("wait socketio-emit")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A subscriber to every channel of `key`.
struct Sub {
    stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>,
}

impl Sub {
    async fn new(key: &str) -> Sub {
        Self::on(&redis().url(), key).await
    }

    /// On the Redis at `url`.
    async fn on(url: &str, key: &str) -> Sub {
        let client = redis::Client::open(url).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.psubscribe(format!("{key}*")).await.unwrap();
        Sub {
            stream: Box::pin(pubsub.into_on_message()),
        }
    }

    async fn next(&mut self) -> (String, Vec<u8>) {
        let msg = tokio::time::timeout(T, self.stream.next())
            .await
            .expect("no message within the timeout")
            .expect("subscription closed");
        (
            msg.get_channel_name().to_owned(),
            msg.get_payload_bytes().to_vec(),
        )
    }
}

#[tokio::test]
async fn emits_with_rooms_flags_and_namespaces() {
    let key = unique_key("cli");
    let mut sub = Sub::new(&key).await;
    let url = redis().url();

    let out = run(&[
        "--redis",
        &url,
        "--key",
        &key,
        "--to",
        "r1",
        "news",
        "\"hello\"",
        "42",
        "1.5",
        "{\"a\":[true,null]}",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (channel, payload) = sub.next().await;
    assert_eq!(channel, format!("{key}#/#r1#"));
    let msg = BroadcastMessage::decode(&payload).unwrap();
    assert_eq!(msg.uid, "emitter");
    assert_eq!(msg.packet.nsp.as_deref(), Some("/"));
    let data: Vec<serde_json::Value> = msg
        .packet
        .data
        .iter()
        .map(socketioxide_cluster_wire::request::value_to_json)
        .collect();
    assert_eq!(
        data,
        [
            serde_json::json!("news"),
            serde_json::json!("hello"),
            serde_json::json!(42),
            serde_json::json!(1.5),
            serde_json::json!({"a": [true, null]})
        ]
    );
    // This test's subscriber is the only one.
    assert_eq!(
        text(&out.stdout).trim(),
        "event \"news\" (namespace /, rooms [\"r1\"]): received by 1 subscriber(s)"
    );

    let out = run(&[
        "--redis",
        &url,
        "--key",
        &key,
        "--nsp",
        "admin",
        "--in",
        "a",
        "--to=b",
        "--except",
        "c",
        "--volatile",
        "--no-compress",
        "--",
        "--odd-event",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "event \"--odd-event\" (namespace /admin, rooms [\"a\", \"b\"], except [\"c\"]): received by 1 subscriber(s)"
    );
    let (channel, payload) = sub.next().await;
    assert_eq!(channel, format!("{key}#/admin#"));
    let msg = BroadcastMessage::decode(&payload).unwrap();
    assert_eq!(msg.opts.room_names(), ["a", "b"]);
    assert_eq!(msg.opts.except_names(), ["c"]);
    assert!(msg.opts.is_volatile());
    assert_eq!(
        msg.opts.flag("compress"),
        Some(&rmpv::Value::Boolean(false))
    );
    assert_eq!(msg.packet.data, vec![rmpv::Value::from("--odd-event")]);

    // -q: silent on success
    let out = run(&["-q", "--redis", &url, "--key", &key, "quiet"]).await;
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    sub.next().await;
}

#[tokio::test]
async fn join_leave_disconnect_and_server_side_requests() {
    let key = unique_key("cli-req");
    let mut sub = Sub::new(&key).await;
    let url = redis().url();
    let base = ["--redis", url.as_str(), "--key", key.as_str()];
    let cases: [(&[&str], &str); 5] = [
        (
            &["--to", "a", "--except", "b", "--join", "j1", "--join", "j2"],
            r#"{"type":2,"opts":{"rooms":["a"],"except":["b"]},"rooms":["j1","j2"]}"#,
        ),
        (
            &["--leave", "j1"],
            r#"{"type":3,"opts":{"rooms":[],"except":[]},"rooms":["j1"]}"#,
        ),
        (
            &["--to", "d", "--disconnect", "--close"],
            r#"{"type":4,"opts":{"rooms":["d"],"except":[]},"close":true}"#,
        ),
        (
            &["--disconnect"],
            r#"{"type":4,"opts":{"rooms":[],"except":[]},"close":false}"#,
        ),
        (
            &["--server-side", "job-done", "\"job-7\"", "{\"ok\":true}"],
            r#"{"uid":"emitter","type":6,"data":["job-done","job-7",{"ok":true}]}"#,
        ),
    ];
    for (args, want) in cases {
        let all: Vec<&str> = base.iter().copied().chain(args.iter().copied()).collect();
        let out = run(&all).await;
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let (channel, payload) = sub.next().await;
        assert_eq!(channel, format!("{key}-request#/#"), "{args:?}");
        assert_eq!(text(&payload), want, "{args:?}");
        Request::decode(&payload).unwrap();
    }
    // Namespaced request.
    let out = run(&[&base[..], &["--nsp", "/admin", "--join", "x"]].concat()).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sub.next().await.0, format!("{key}-request#/admin#"));
}

#[tokio::test]
async fn bad_input_exits_2_with_a_clear_message_and_publishes_nothing() {
    let key = unique_key("cli-bad");
    let mut sub = Sub::new(&key).await;
    let url = redis().url();
    for (args, needle) in [
        (vec!["ev", "hello"], "JSON-ARG 1 is not valid JSON"),
        (vec!["ev", "1", "{\"a\":"], "JSON-ARG 2 is not valid JSON"),
        (
            vec!["--server-side", "ev", "nope"],
            "JSON-ARG 1 is not valid JSON",
        ),
        (vec!["connect"], "\"connect\" is a reserved event name"),
        // clap's usage errors name the offending arguments.
        (
            vec!["--join", "a", "--leave", "b"],
            "the argument '--join <ROOM>' cannot be used with '--leave <ROOM>'",
        ),
        (vec!["--frobnicate"], "unexpected argument '--frobnicate'"),
        (vec![], "required arguments were not provided"),
        (vec!["--timeout", "0", "ev"], "is not in (0, 3600] seconds"),
    ] {
        let all: Vec<&str> = ["--redis", url.as_str(), "--key", key.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let out = run(&all).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(text(&run(&["ev", "hello"]).await.stderr).contains("quote it: '\"hello\"'"));
    // Every pair of operations, and each flag outside its operation, is refused by the
    // parser: status 2, before any connection (this --redis could not connect).
    let ops: [&[&str]; 5] = [
        &["ev"],
        &["--join", "j"],
        &["--leave", "l"],
        &["--disconnect"],
        &["--server-side", "ev"],
    ];
    let mut refused: Vec<Vec<&str>> = Vec::new();
    for (i, a) in ops.iter().enumerate() {
        for b in &ops[i + 1..] {
            // `ev --server-side ev` is one server-side event, with the JSON-ARG "ev".
            if i > 0 || b[0] != "--server-side" {
                refused.push([*a, *b].concat());
            }
        }
    }
    refused.extend([
        vec!["--close", "ev"],
        vec!["--close", "--join", "j"],
        vec!["--volatile", "--disconnect"],
        vec!["--no-compress", "--leave", "l"],
        vec!["--volatile", "--server-side", "ev"],
        vec!["--server-side", "--to", "r", "ev"],
        vec!["--server-side", "--except", "r", "ev"],
    ]);
    for args in refused {
        let all = [&["--redis", "redis://127.0.0.1:1"][..], &args].concat();
        let out = run(&all).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("cannot be used with") || err.contains("required arguments"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("Redis at"), "{args:?}: {err}");
    }
    // Nothing was published: the next message is this marker.
    let out = run(&["--redis", &url, "--key", &key, "marker"]).await;
    assert!(out.status.success());
    let (_, payload) = sub.next().await;
    assert_eq!(
        BroadcastMessage::decode(&payload).unwrap().packet.data,
        vec![rmpv::Value::from("marker")]
    );
}

#[tokio::test]
async fn unreachable_redis_exits_1_quickly_without_showing_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://user:hunter2@127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let out = run(&["--redis", &url, "--timeout", "2", "ev", "1"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot connect to Redis at redis://user:***@127.0.0.1"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // A listener that never answers: the connect timeout applies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let out = run(&["--redis", &url, "--timeout", "0.5", "ev"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("no answer within"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let out = run(&["--redis", "not a url", "ev"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("invalid Redis URL"));
}

#[tokio::test]
async fn help_version_and_redis_url_from_the_environment() {
    for flag in ["--help", "-h"] {
        let out = run(&[flag]).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
        let help = text(&out.stdout);
        for needle in [
            "Usage: socketio-emit [OPTIONS] EVENT [JSON-ARG]...",
            "--disconnect [--close]",
            "Strings need their JSON quotes",
            "Exit status: 0 success, 1 Redis",
            "2 bad command line or bad JSON",
            "EXAMPLES:",
            "socketio-emit --server-side job-done '\"job-7\"' '{\"ok\":true}'",
        ] {
            assert!(help.contains(needle), "{flag}: {needle:?} not in\n{help}");
        }
    }
    for flag in ["-V", "--version"] {
        let out = run(&[flag]).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(
            text(&out.stdout).trim(),
            format!("socketio-emit {}", env!("CARGO_PKG_VERSION"))
        );
    }
    // The help never shows $REDIS_URL's value: it may hold a password.
    let out = tokio::process::Command::new(BIN)
        .arg("--help")
        .env("REDIS_URL", "redis://u:hunter2@127.0.0.1:1")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(
        !text(&out.stdout).contains("hunter2"),
        "{}",
        text(&out.stdout)
    );

    let key = unique_key("cli-env");
    let mut sub = Sub::new(&key).await;
    let child = tokio::process::Command::new(BIN)
        .args(["--key", &key, "from-env"])
        .env("REDIS_URL", redis().url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(T, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sub.next().await.0, format!("{key}#/#"));
}

/// `--sentinel` (repeatable) and `--master-name`: published on the master the sentinels
/// name, not on a replica; the Sentinel-only flags without `--sentinel` are a usage error.
#[tokio::test]
async fn publishes_to_the_master_the_sentinels_name() {
    use socketioxide_cluster_test_support::sentinel::{MASTER_NAME, Sentinels};
    let s = tokio::task::spawn_blocking(|| Sentinels::start(500))
        .await
        .unwrap();
    let key = unique_key("cli-sentinel");
    let master = s.master_port();
    let mut sub = Sub::on(&format!("redis://127.0.0.1:{master}"), &key).await;
    let urls = s.sentinel_urls();
    let mut args = Vec::new();
    for u in &urls {
        args.extend(["--sentinel", u.as_str()]);
    }
    args.extend(["--master-name", MASTER_NAME, "--key", &key, "news", "1"]);
    let out = run(&args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (channel, _) = sub.next().await;
    assert_eq!(channel, format!("{key}#/#"));

    let out = run(&["--master-name", "m", "news", "1"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--sentinel"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "--sentinel",
        &urls[0],
        "--master-name",
        "nosuch",
        "--key",
        &key,
        "news",
        "1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("nosuch"),
        "{}",
        text(&out.stderr)
    );
}

/// `count`, `rooms`, `fetch-sockets` and `--ack` against two socketioxide servers: JSON
/// lines on a pipe, a table with `--table`; a server that never answers (a silent
/// subscriber of the request channel) makes the request exit 3 with what arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_print_json_lines_or_a_table_and_exit_3_on_a_timeout() {
    use socketioxide_cluster::ClusterOptions;
    use socketioxide_cluster_test_support::cluster::{Serve, client, nodes_serving};
    use socketioxide_cluster_test_support::{AutoAck, Parser, arg};
    let key = unique_key("cli-ask");
    let url = redis().url();
    let opts = ClusterOptions::new(&url).key(&key);
    let servers = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    let c1 = client(&servers[0], "/", Parser::Json, &["a"], T).await;
    let c2 = client(&servers[1], "/", Parser::Json, &["b"], T).await;
    c1.set_auto_ack(Some(AutoAck::With(vec![arg(serde_json::json!("c1"))])));
    c2.set_auto_ack(Some(AutoAck::With(vec![arg(serde_json::json!("c2"))])));
    for s in &servers {
        s.cluster
            .of("/")
            .on_server_side("ping", |ev| ev.ack("pong"));
    }
    let base = ["--redis", url.as_str(), "--key", key.as_str()];
    let ok = |out: &Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let lines = |s: String| -> Vec<serde_json::Value> {
        s.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };

    let out = ok(&run(&[&base[..], &["count"]].concat()).await);
    assert_eq!(lines(out), vec![serde_json::json!({"servers": 2})]);
    let out = ok(&run(&[&base[..], &["--table", "count"]].concat()).await);
    assert_eq!(out.trim(), "2 server(s)");
    let rooms = lines(ok(&run(&[&base[..], &["rooms"]].concat()).await));
    for r in ["a", "b", c1.sid(), c2.sid()] {
        assert!(
            rooms.contains(&serde_json::json!({"room": r})),
            "{r}: {rooms:?}"
        );
    }
    let socks = lines(ok(&run(
        &[&base[..], &["--to", "a", "fetch-sockets"]].concat()
    )
    .await));
    assert_eq!(socks.len(), 1, "{socks:?}");
    assert_eq!(socks[0]["id"], serde_json::json!(c1.sid()));
    assert!(
        socks[0]["rooms"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("a"))
    );
    let table = ok(&run(&[&base[..], &["--table", "fetch-sockets"]].concat()).await);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("2 socket(s)") && table.contains(c2.sid()),
        "{table}"
    );
    let mut acks = lines(ok(&run(&[
        &base[..],
        &["--ack", "--timeout", "5", "q", "1"],
    ]
    .concat())
    .await));
    acks.sort_by_key(|v| v.to_string());
    assert_eq!(acks, vec![serde_json::json!("c1"), serde_json::json!("c2")]);
    let acks = lines(ok(&run(
        &[&base[..], &["--server-side", "--ack", "ping"]].concat()
    )
    .await));
    assert_eq!(acks, vec![serde_json::json!("pong"); 2]);

    // Bad forms: exit 2 before connecting.
    for bad in [
        &["count", "1"][..],
        &["--to", "a", "rooms"],
        &["--ack", "--join", "x"],
    ] {
        let out = run(&[&base[..], bad].concat()).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }

    // A third "server" that never answers: exit 3, the two answers printed.
    let mut silent = redis::Client::open(url.as_str())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    silent.subscribe(format!("{key}-request#/#")).await.unwrap();
    let out = run(&[&base[..], &["--timeout", "1", "fetch-sockets"]].concat()).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(lines(text(&out.stdout)).len(), 2);
    assert!(
        text(&out.stderr).contains("2 of 3 servers answered"),
        "{}",
        text(&out.stderr)
    );
    drop(silent);
    for s in &servers {
        s.cluster.close().await;
    }
}
