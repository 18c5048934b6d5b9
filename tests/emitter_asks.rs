//! Requests from the emitter (`server_count`, `fetch_sockets`, `all_rooms`,
//! `server_side_emit_with_ack`, `emit_with_ack`) to a mixed cluster on one Redis: a Node
//! server (socket.io 4.8.4, `@socket.io/redis-adapter` 8.3.0) and two socketioxide
//! servers, with clients on each. Then the Node server stopped (SIGSTOP): the requests
//! end at their timeout with what the others answered; one of ours that went silent is
//! named.
//!
//! Requires `redis-server`, Node.js 20 and `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support as common;

use common::cluster::{Serve, client, nodes_serving, shared_opts};
use common::node::{NodeProcess, start_client, start_server};
use common::{AutoAck, Client, Parser, arg};
use serde_json::json;
use socketioxide_cluster_emitter::{Emitter, EmitterOptions, Partial, rmpv::Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn texts(v: &[Value]) -> BTreeSet<String> {
    v.iter()
        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
        .collect()
}

/// A Node client in room "a" acking "n1", a client of each Rust server (rooms "a" and
/// "b", acking "c1" and "c2"), and a "ping" handler answering "r<i>" on each Rust server.
async fn clients_and_handlers(
    name: &str,
    node: &NodeProcess,
    rust: &[common::cluster::Node],
) -> (NodeProcess, Client, Client) {
    let n1 = start_client(
        name,
        &node.url(),
        "/",
        json!(["a"]),
        &["--ack-reply", "\"n1\""],
    )
    .await;
    let c1 = client(&rust[0], "/", Parser::Json, &["a"], T).await;
    let c2 = client(&rust[1], "/", Parser::Json, &["b"], T).await;
    c1.set_auto_ack(Some(AutoAck::With(vec![arg(json!("c1"))])));
    c2.set_auto_ack(Some(AutoAck::With(vec![arg(json!("c2"))])));
    for (i, r) in rust.iter().enumerate() {
        r.cluster
            .of("/")
            .on_server_side("ping", move |ev| ev.ack(format!("r{i}")));
    }
    (n1, c1, c2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emitter_asks_node_and_rust_servers() {
    common::init_tracing();
    let key = common::unique_key("em-ask");
    let url = common::shared().url();
    let node = start_server("ask-N", &url, &key, &[]).await;
    let rust = nodes_serving(2, &shared_opts(&key), Parser::Json, Serve::ROOT).await;
    let (mut n1, c1, c2) = clients_and_handlers("ask-n1", &node, &rust).await;
    let em = Emitter::connect(
        EmitterOptions::new(&url)
            .key(&key)
            .requests_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();

    // Counts: the three servers, not the emitter.
    assert_eq!(em.server_count().await.unwrap(), 3);

    // fetch_sockets: every socket, described by its server; a room selector.
    let started = Instant::now();
    let all = em.fetch_sockets().await.unwrap();
    let took = started.elapsed();
    let ids: BTreeSet<String> = all.iter().map(|s| s.id.clone()).collect();
    let want: BTreeSet<String> = [n1.sid(), c1.sid().to_owned(), c2.sid().to_owned()].into();
    assert_eq!(ids, want);
    assert!(
        took < Duration::from_secs(1),
        "not waited for the timeout: {took:?}"
    );
    for s in &all {
        assert!(s.rooms.contains(&s.id), "{s:?}: its own id is a room");
        assert!(s.handshake.is_object(), "{s:?}");
    }
    let in_a: BTreeSet<String> = em
        .to("a")
        .fetch_sockets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(in_a, [n1.sid(), c1.sid().to_owned()].into());

    // all_rooms: the union.
    let rooms = em.all_rooms().await.unwrap();
    for r in ["a", "b", c1.sid(), c2.sid()] {
        assert!(rooms.iter().any(|x| x == r), "{r} in {rooms:?}");
    }

    // server_side_emit_with_ack: one reply per server.
    let replies = em.server_side_emit_with_ack("ping", &("x",)).await.unwrap();
    assert_eq!(
        texts(&replies),
        ["ask-N", "r0", "r1"].map(str::to_owned).into()
    );

    // emit_with_ack: every client's first ack argument.
    let acks = em
        .emit_with_ack("ask", &(1,), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(texts(&acks), ["c1", "c2", "n1"].map(str::to_owned).into());
    let acks = em
        .to("b")
        .emit_with_ack("ask", &(2,), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(texts(&acks), ["c2"].map(str::to_owned).into());
    assert_eq!(n1.next_client_event("ask", T).await["args"][0], json!(1));

    // The Node server stopped: each request ends at its timeout with the others' part.
    let pid = node.pid().expect("node pid");
    let stop = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "kill {sig} {pid}");
    };
    stop("-STOP");
    let started = Instant::now();
    let err = em.fetch_sockets().await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_timeout(), "{err}");
    let inc = err.incomplete().expect("partial result");
    assert_eq!((inc.answered, inc.expected), (2, 3), "{err}");
    let Partial::Sockets(part) = &inc.partial else {
        panic!("{err}")
    };
    let part: BTreeSet<String> = part.iter().map(|s| s.id.clone()).collect();
    assert_eq!(part, [c1.sid().to_owned(), c2.sid().to_owned()].into());
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let err = em.server_side_emit_with_ack("ping", &()).await.unwrap_err();
    let inc = err.incomplete().expect("partial");
    assert_eq!(
        texts(match &inc.partial {
            Partial::Replies(r) => r,
            _ => panic!("{err}"),
        }),
        ["r0", "r1"].map(str::to_owned).into()
    );
    let err = em
        .emit_with_ack("ask", &(3,), Duration::from_secs(1))
        .await
        .unwrap_err();
    let inc = err.incomplete().expect("partial");
    assert_eq!(
        inc.acks,
        Some((2, 2)),
        "{err}: the Rust servers' two clients answered"
    );
    eprintln!("with the Node server stopped: {err}");

    // One of ours that stopped heartbeating is named (a stand-in: a subscriber to the
    // request channel that announced itself twice, then went silent).
    let mut silent = redis::Client::open(url.as_str())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    silent.subscribe(format!("{key}-request#/#")).await.unwrap();
    let mut pubc = common::command_conn(&url).await;
    for _ in 0..2 {
        redis::cmd("PUBLISH")
            .arg(format!("{key}-heartbeat"))
            .arg(r#"{"uid":"silent-server-uid","nsps":["/"]}"#)
            .query_async::<()>(&mut pubc)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = em.all_rooms().await.unwrap_err();
    let inc = err.incomplete().expect("partial");
    assert_eq!((inc.answered, inc.expected), (2, 4), "{err}");
    assert_eq!(inc.missing, vec!["silent-server-uid".to_owned()], "{err}");
    drop(silent);

    stop("-CONT");
    // Back: complete again.
    assert_eq!(em.fetch_sockets().await.unwrap().len(), 3);
    for r in &rust {
        r.cluster.close().await;
    }
    common::cluster::shutdown_all(vec![n1, node]).await;
}

/// The same requests on the ClusterAdapter protocols: a Node server on
/// `@socket.io/redis-streams-adapter` 0.3.1 (or `createShardedAdapter`, static) and two
/// of ours; the emitter speaks the ClusterAdapter messages, over pub/sub (streams) or
/// sharded pub/sub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emitter_asks_a_streams_cluster() {
    cluster_format_asks(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emitter_asks_a_sharded_cluster() {
    cluster_format_asks(true).await;
}

async fn cluster_format_asks(sharded: bool) {
    use socketioxide_cluster::{StreamsOptions, SubscriptionMode};
    common::init_tracing();
    let key = common::unique_key(if sharded { "em-ask-sh" } else { "em-ask-st" });
    let stream = format!("{key}-s");
    let url = common::shared().url();
    let args: [&str; 2] = if sharded {
        ["--sharded", "static"]
    } else {
        ["--streams", stream.as_str()]
    };
    let node = start_server("askcf-N", &url, &key, &args).await;
    let opts = if sharded {
        shared_opts(&key).sharded(SubscriptionMode::Static)
    } else {
        shared_opts(&key).streams(StreamsOptions {
            stream_name: stream.clone(),
            ..StreamsOptions::default()
        })
    };
    let rust = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    let (n1, c1, c2) = clients_and_handlers("askcf-n1", &node, &rust).await;
    let eo = EmitterOptions::new(&url)
        .key(&key)
        .requests_timeout(Duration::from_secs(3));
    let eo = if sharded {
        eo.sharded(SubscriptionMode::Static)
    } else {
        eo.streams(stream.clone())
    };
    let em = Emitter::connect(eo).await.unwrap();
    assert_eq!(em.server_count().await.unwrap(), 3);
    let ids: BTreeSet<String> = em
        .fetch_sockets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        ids,
        [n1.sid(), c1.sid().to_owned(), c2.sid().to_owned()].into()
    );
    let in_a: BTreeSet<String> = em
        .to("a")
        .fetch_sockets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(in_a, [n1.sid(), c1.sid().to_owned()].into());
    let rooms = em.all_rooms().await.unwrap();
    assert!(
        rooms.contains(&"a".to_owned()) && rooms.contains(&"b".to_owned()),
        "{rooms:?}"
    );
    let replies = em.server_side_emit_with_ack("ping", &("x",)).await.unwrap();
    assert_eq!(
        texts(&replies),
        ["askcf-N", "r0", "r1"].map(str::to_owned).into()
    );
    let acks = em
        .emit_with_ack("ask", &(1,), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(texts(&acks), ["c1", "c2", "n1"].map(str::to_owned).into());
    for r in &rust {
        r.cluster.close().await;
    }
    common::cluster::shutdown_all(vec![n1, node]).await;
}

/// Every connection killed (`CLIENT KILL TYPE normal` and `TYPE pubsub`: the emitter's
/// publisher, subscriber and command connections, the servers' too): the emitter's next
/// requests are answered, by itself, without a new emitter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_work_again_after_client_kill() {
    common::init_tracing();
    let redis = common::RedisServer::start();
    let key = common::unique_key("em-ask-kill");
    let opts = socketioxide_cluster::ClusterOptions::new(redis.url()).key(&key);
    let rust = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    let _c1 = client(&rust[0], "/", Parser::Json, &[], T).await;
    let em = Emitter::connect(
        EmitterOptions::new(redis.url())
            .key(&key)
            .requests_timeout(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    assert_eq!(em.fetch_sockets().await.unwrap().len(), 1);
    for kind in ["normal", "pubsub"] {
        common::redis::cli(redis.port(), &["client", "kill", "type", kind]);
    }
    // The servers resubscribe by themselves; the emitter reopens what it needs.
    let deadline = Instant::now() + T;
    loop {
        match em.fetch_sockets().await {
            Ok(s) if s.len() == 1 && em.server_count().await.ok() == Some(2) => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "not back within {T:?}: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(em.all_rooms().await.unwrap().len(), 1);
    em.emit("after", &()).await.unwrap();
    em.flush().await.unwrap();
    for r in &rust {
        r.cluster.close().await;
    }
}
