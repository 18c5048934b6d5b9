//! Cluster-wide requests between socketioxide servers through a real `redis-server`:
//! fetch_sockets, rooms, join/leave/disconnect, remote sockets, emit_with_ack, the
//! classic handle API, server-side events, timeouts and concurrency.

use socketioxide_cluster_test_support as common;

use common::cluster::{Node, Serve, client, nodes_serving, shared_opts};
use common::{AutoAck, Client, Parser, arg};
use futures_util::StreamExt;
use serde_json::json;
use socketioxide::SocketIo;
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions, Error, Partial};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// `/` and `/admin`, socketioxide's default buffer.
const SERVE: Serve = Serve {
    admin: true,
    ..Serve::ROOT
};

async fn cluster_of(n: usize, timeout: Duration) -> Vec<Node> {
    common::init_tracing();
    let key = common::unique_key("rq");
    let opts = shared_opts(&key).requests_timeout(timeout);
    nodes_serving(n, &opts, Parser::Json, SERVE).await
}

async fn rooms_of(c: &Client) -> Vec<String> {
    let ack = c.emit_with_ack("rooms", vec![], T).await;
    serde_json::from_value(common::to_json(&ack[0])).unwrap()
}

fn set<I: IntoIterator<Item = S>, S: ToString>(i: I) -> BTreeSet<String> {
    i.into_iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn fetch_sockets_and_rooms_span_the_cluster() {
    let nodes = cluster_of(3, T).await;
    let a = client(&nodes[0], "/", Parser::Json, &["r1"], T).await;
    let b = client(&nodes[1], "/", Parser::Json, &["r1", "r2"], T).await;
    let c = client(&nodes[2], "/", Parser::Json, &["r3"], T).await;
    for n in &nodes {
        assert_eq!(n.io.fetch_sockets().await.unwrap().len(), 3);
    }
    let in_r1: BTreeSet<String> = nodes[2]
        .io
        .to("r1")
        .fetch_sockets()
        .await
        .unwrap()
        .iter()
        .map(|s| s.data().id.to_string())
        .collect();
    assert_eq!(in_r1, set([a.sid(), b.sid()]));
    let r1_not_r2: Vec<_> = nodes[2]
        .io
        .to("r1")
        .except("r2")
        .fetch_sockets()
        .await
        .unwrap();
    assert_eq!(r1_not_r2.len(), 1);
    assert_eq!(r1_not_r2[0].data().id.to_string(), a.sid());
    // io.rooms(): every joined room of the cluster, as socketioxide lists rooms (no
    // socket-id rooms, from any server; socketioxide's own adapter tests expect this).
    for n in &nodes {
        let rooms = set(n.io.rooms().await.unwrap());
        assert_eq!(rooms, set(["r1", "r2", "r3"]));
    }
    // Rooms of a selection: only the rooms of the selected sockets.
    let rooms_of_r3 = set(nodes[0].io.to("r3").rooms().await.unwrap());
    assert!(
        rooms_of_r3.contains("r3") && !rooms_of_r3.contains("r1"),
        "{rooms_of_r3:?}"
    );
    // Handle API, string ids.
    let ns = nodes[1].cluster.of("/");
    assert_eq!(ns.server_count().await.unwrap(), 3);
    assert_eq!(
        set(ns.clients(&[]).await.unwrap()),
        set([a.sid(), b.sid(), c.sid()])
    );
    assert_eq!(
        set(ns.clients(&["r2", "r3"]).await.unwrap()),
        set([b.sid(), c.sid()])
    );
    let all = set(ns.all_rooms().await.unwrap());
    assert!(
        ["r1", "r2", "r3", a.sid(), b.sid(), c.sid()]
            .iter()
            .all(|r| all.contains(*r)),
        "{all:?}"
    );
    let c_rooms = set(ns.client_rooms(c.sid()).await.unwrap());
    assert_eq!(c_rooms, set(["r3", c.sid()]));
    assert!(matches!(
        ns.client_rooms("nobody-has-this-id").await,
        Err(Error::SocketNotFound(_))
    ));
    assert_eq!(nodes[0].cluster.pending_requests(), 0);
}

#[tokio::test]
async fn join_leave_and_disconnect_apply_everywhere() {
    let nodes = cluster_of(3, T).await;
    let a = client(&nodes[0], "/", Parser::Json, &["src"], T).await;
    let b = client(&nodes[1], "/", Parser::Json, &["src"], T).await;
    let c = client(&nodes[2], "/", Parser::Json, &[], T).await;
    nodes[2].io.within("src").join("joined").await.unwrap();
    // join/leave/disconnect return once Redis accepted the command, so any request
    // published afterwards, from any server, is ordered after it on every server.
    let ns2 = nodes[2].cluster.of("/");
    for x in [&a, &b] {
        assert!(
            ns2.client_rooms(x.sid())
                .await
                .unwrap()
                .contains(&"joined".to_owned())
        );
    }
    assert!(
        !ns2.client_rooms(c.sid())
            .await
            .unwrap()
            .contains(&"joined".to_owned())
    );
    // The client itself sees it too (its own server applied it).
    assert!(rooms_of(&a).await.contains(&"joined".to_owned()));
    nodes[0].io.within("joined").leave("src").await.unwrap();
    // Leave is visible from any other server once it returned.
    assert!(
        nodes[2]
            .io
            .to("src")
            .fetch_sockets()
            .await
            .unwrap()
            .is_empty()
    );
    // Handle API by id.
    let ns = nodes[0].cluster.of("/");
    ns.remote_join(c.sid(), "by-id").await.unwrap();
    assert_eq!(
        set(ns.client_rooms(c.sid()).await.unwrap()),
        set(["by-id", c.sid()])
    );
    ns.remote_leave(c.sid(), "by-id").await.unwrap();
    assert_eq!(set(ns.client_rooms(c.sid()).await.unwrap()), set([c.sid()]));
    assert!(matches!(
        ns.remote_join("no-such-socket", "x").await,
        Err(Error::SocketNotFound(_))
    ));
    // Disconnect across servers.
    let mut b = b;
    let mut c = c;
    nodes[0].io.within("joined").disconnect().await.unwrap();
    b.expect_disconnect(T).await;
    ns.remote_disconnect(c.sid(), false).await.unwrap();
    c.expect_disconnect(T).await;
    drop(a);
}

#[tokio::test]
async fn remote_sockets_can_be_driven_from_another_server() {
    let nodes = cluster_of(2, T).await;
    let mut b = client(&nodes[1], "/", Parser::Json, &["x"], T).await;
    let remote = nodes[0].io.to("x").fetch_sockets().await.unwrap();
    assert_eq!(remote.len(), 1);
    let remote = &remote[0];
    remote.emit("direct", &"hi").await.unwrap();
    assert_eq!(b.recv_event_named("direct", T).await.str_arg(0), "hi");
    remote.join("rj").await.unwrap();
    // Ordered after the join on the target server's subscription:
    let rooms = set(remote.rooms().await.unwrap());
    assert!(rooms.contains("rj") && rooms.contains("x"), "{rooms:?}");
}

/// As socketioxide's own adapter tests check it: each `RemoteSocket` carries the id of
/// its server (`io.config().server_id` there), and an `emit_with_ack` to one remote
/// socket ends right after its ack, without waiting for the other servers.
#[tokio::test]
async fn remote_sockets_carry_their_server_and_a_targeted_ack_ends_the_stream() {
    use futures_util::stream::FusedStream;
    let nodes = cluster_of(3, T).await;
    let mut clients = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let c = client(n, "/", Parser::Json, &[], T).await;
        c.set_auto_ack(Some(AutoAck::With(vec![arg(json!(format!("ack-{i}")))])));
        clients.push(c);
    }
    let server_of: std::collections::BTreeMap<String, socketioxide_core::Uid> = clients
        .iter()
        .zip(&nodes)
        .map(|(c, n)| (c.sid().to_owned(), n.io.config().server_id))
        .collect();
    for n in &nodes {
        let sockets = n.io.fetch_sockets().await.unwrap();
        let got: std::collections::BTreeMap<String, socketioxide_core::Uid> = sockets
            .iter()
            .map(|s| (s.data().id.to_string(), s.data().server_id))
            .collect();
        assert_eq!(got, server_of);
    }
    let sockets = nodes[0].io.fetch_sockets().await.unwrap();
    let mut tested = 0;
    for s in sockets {
        let i = clients
            .iter()
            .position(|c| c.sid() == s.data().id.as_str())
            .unwrap();
        let started = Instant::now();
        let mut acks = s.emit_with_ack::<_, String>("ping", &()).await.unwrap();
        let (sid, ack) = acks.next().await.expect("the ack");
        assert_eq!(sid, s.data().id);
        assert_eq!(ack.unwrap(), format!("ack-{i}"));
        assert!(acks.is_terminated(), "the stream ends with the one ack");
        assert!(started.elapsed() < Duration::from_secs(4));
        clients[i].recv_event_named("ping", T).await;
        tested += 1;
    }
    assert_eq!(tested, 3);
}

#[tokio::test]
async fn emit_with_ack_gathers_acks_from_every_server() {
    let nodes = cluster_of(3, T).await;
    let mut clients = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for j in 0..2 {
            let c = client(n, "/", Parser::Json, &["acks"], T).await;
            c.set_auto_ack(Some(AutoAck::With(vec![arg(json!(format!("{i}-{j}")))])));
            clients.push(c);
        }
    }
    let started = Instant::now();
    let stream = nodes[0]
        .io
        .to("acks")
        .timeout(Duration::from_secs(10))
        .emit_with_ack::<_, String>("ask", &"q")
        .await
        .unwrap();
    // Exactly one ack per socket (each socket's ack is its own text): a lost or
    // duplicated ack fails.
    let acks: Vec<(String, String)> = stream
        .map(|(sid, r)| (sid.to_string(), r.unwrap()))
        .collect()
        .await;
    let by_ack: std::collections::BTreeMap<String, &str> = clients
        .iter()
        .enumerate()
        .map(|(k, c)| (format!("{}-{}", k / 2, k % 2), c.sid()))
        .collect();
    // Every ack names its socket: the local ones, and our peers' (they say it in a
    // field Node ignores).
    for (sid, ack) in &acks {
        assert_eq!(sid, by_ack[ack], "ack {ack:?} attributed to another socket");
    }
    let mut values: Vec<&str> = acks.iter().map(|(_, a)| a.as_str()).collect();
    values.sort_unstable();
    assert_eq!(values, ["0-0", "0-1", "1-0", "1-1", "2-0", "2-1"]);
    // Complete as soon as every ack is in, not at the timeout.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(nodes[0].cluster.pending_requests(), 0);
}

#[tokio::test]
async fn server_side_events_and_acks() {
    let nodes = cluster_of(3, T).await;
    let seen = Arc::new(AtomicUsize::new(0));
    for (i, n) in nodes.iter().enumerate() {
        let seen = seen.clone();
        n.cluster.of("/").on_server_side("ping", move |ev| {
            assert_eq!(ev.arg::<String>(0).unwrap(), "p");
            assert_eq!(ev.arg::<u32>(1).unwrap(), 7);
            seen.fetch_add(1, Ordering::SeqCst);
            ev.ack(format!("pong from {i}"));
        });
    }
    let ns = nodes[0].cluster.of("/");
    let replies = ns
        .server_side_emit_with_ack("ping", &("p", 7))
        .await
        .unwrap();
    let replies: BTreeSet<String> = replies
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(replies, set(["pong from 1", "pong from 2"]));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the sender does not receive its own event"
    );
    // Without ack, and waiting for a specific result.
    let wait = nodes[0].cluster.of("/").wait_server_side(
        "job-done",
        |args| args.first().and_then(|v| v.as_u64()) == Some(42),
        T,
    );
    nodes[2]
        .cluster
        .of("/")
        .server_side_emit("job-done", &(41, "other"))
        .await
        .unwrap();
    nodes[1]
        .cluster
        .of("/")
        .server_side_emit("job-done", &(42, "result"))
        .await
        .unwrap();
    let args = wait.await.unwrap();
    assert_eq!(args[1].as_str(), Some("result"));
    let err = nodes[0]
        .cluster
        .of("/")
        .wait_server_side("never", |_| true, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(nodes[0].cluster.pending_requests(), 0);
}

#[tokio::test]
async fn custom_requests_reach_every_server_hook() {
    let nodes = cluster_of(3, T).await;
    for (i, n) in nodes.iter().enumerate() {
        n.cluster.of("/").on_custom_request(move |data| async move {
            rmpv::Value::from(format!("{i}:{}", data.as_str().unwrap_or("?")))
        });
    }
    let replies = nodes[1]
        .cluster
        .of("/")
        .custom_request(&"hello")
        .await
        .unwrap();
    let replies: BTreeSet<String> = replies
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(replies, set(["0:hello", "1:hello", "2:hello"]));
}

/// A "server" that is subscribed but never answers (a hung process keeps its Redis
/// connection): calls fail at the timeout with the partial results, and nothing leaks.
#[tokio::test]
async fn a_silent_subscriber_makes_calls_time_out_with_partial_results() {
    let timeout = Duration::from_secs(2);
    let nodes = cluster_of(2, timeout).await;
    let _b = client(&nodes[1], "/", Parser::Json, &["room"], T).await;
    let key = nodes[0].cluster.config().key().to_owned();
    let redis = redis::Client::open(common::shared().url()).unwrap();
    let mut silent = redis.get_async_pubsub().await.unwrap();
    silent.subscribe(format!("{key}-request#/#")).await.unwrap();
    let ns = nodes[0].cluster.of("/");
    assert_eq!(ns.server_count().await.unwrap(), 3);
    let started = Instant::now();
    let err = ns.all_rooms().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout && elapsed < timeout * 4, "{elapsed:?}");
    match &err {
        Error::Timeout {
            expected,
            received,
            partial: Partial::Names(rooms),
            ..
        } => {
            assert_eq!((*expected, *received), (2, 1));
            assert!(
                rooms.contains(&"room".to_owned()),
                "partial results kept: {rooms:?}"
            );
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("1 of 2"), "{err}");
    assert!(nodes[0].io.fetch_sockets().await.unwrap_err().is_timeout());
    let err = ns
        .server_side_emit_with_ack("nobody-listens", &())
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(
        nodes[0].cluster.pending_requests(),
        0,
        "no entry survives a timeout"
    );
    // Once the silent subscriber leaves, calls complete at once again.
    drop(silent);
    let started = Instant::now();
    loop {
        if ns.server_count().await.unwrap() == 2 {
            break;
        }
        assert!(started.elapsed() < T, "silent subscriber still counted");
        tokio::task::yield_now().await;
    }
    assert!(ns.all_rooms().await.unwrap().contains(&"room".to_owned()));
}

#[tokio::test]
async fn a_closed_server_is_no_longer_counted() {
    let nodes = cluster_of(3, Duration::from_secs(5)).await;
    let _c = client(&nodes[1], "/", Parser::Json, &["kept"], T).await;
    nodes[2].cluster.close().await;
    let ns = nodes[0].cluster.of("/");
    let started = Instant::now();
    loop {
        if ns.server_count().await.unwrap() == 2 {
            break;
        }
        assert!(started.elapsed() < T, "closed server still counted");
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    assert!(ns.all_rooms().await.unwrap().contains(&"kept".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_calls_get_their_own_replies() {
    let nodes = cluster_of(3, T).await;
    let a = client(&nodes[1], "/", Parser::Json, &["one"], T).await;
    let b = client(&nodes[2], "/", Parser::Json, &["two"], T).await;
    // Every server echoes the call's own value, tagged with its index: each reply of a
    // custom request names the call it answers.
    for (k, n) in nodes.iter().enumerate() {
        n.cluster.of("/").on_custom_request(move |v| async move {
            rmpv::Value::Array(vec![rmpv::Value::from(k as u64), v])
        });
    }
    let ns = nodes[0].cluster.of("/");
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let ns = ns.clone();
        let (a, b) = (a.sid().to_owned(), b.sid().to_owned());
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                // fetchSockets: the two rooms have different sockets.
                1 => assert_eq!(ns.clients(&["one"]).await.unwrap(), [a], "call {i}"),
                3 => assert_eq!(ns.clients(&["two"]).await.unwrap(), [b], "call {i}"),
                // serverSideEmit with acks: the replies echo this call's value.
                _ => {
                    let replies = ns.custom_request(&json!({"call": i})).await.unwrap();
                    let mut replies: Vec<serde_json::Value> = replies
                        .iter()
                        .map(socketioxide_cluster::wire::request::value_to_json)
                        .collect();
                    replies.sort_by_key(|r| r[0].as_u64());
                    let expected: Vec<_> = (0..3).map(|k| json!([k, {"call": i}])).collect();
                    assert_eq!(replies, expected, "call {i}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(nodes[0].cluster.pending_requests(), 0);
}

#[tokio::test]
async fn unknown_namespace_is_an_error() {
    let nodes = cluster_of(1, T).await;
    let err = nodes[0].cluster.of("/nope").all_rooms().await.unwrap_err();
    assert!(matches!(err, Error::UnknownNamespace(_)), "{err}");
    // A single server answers locally, without waiting.
    assert_eq!(
        nodes[0].cluster.of("/admin").server_count().await.unwrap(),
        1
    );
}

/// Opt-in for clusters without Node servers: a foreign subscriber of the request channel
/// (a monitoring client) no longer makes every request wait for the timeout.
#[tokio::test]
async fn counting_peers_only_ignores_foreign_subscribers() {
    common::init_tracing();
    let key = common::unique_key("peers");
    let opts = || {
        ClusterOptions::new(common::shared().url())
            .key(&key)
            .requests_timeout(Duration::from_secs(5))
            .count_peers_only(true)
    };
    let a = Cluster::connect(opts()).await.unwrap();
    let b = Cluster::connect(opts()).await.unwrap();
    let mut ios = Vec::new();
    for c in [&a, &b] {
        let (_svc, io) = SocketIo::builder()
            .with_adapter::<ClusterAdapter<_>>(c.clone())
            .build_svc();
        common::test_ns(&io, "/").await.unwrap();
        ios.push(io);
    }
    let started = Instant::now();
    while !a.live_peers().contains(&b.uid().to_string()) {
        assert!(started.elapsed() < T, "peer heartbeat never seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let redis = redis::Client::open(common::shared().url()).unwrap();
    let mut monitor = redis.get_async_pubsub().await.unwrap();
    monitor
        .subscribe(format!("{key}-request#/#"))
        .await
        .unwrap();
    assert_eq!(
        a.of("/").server_count().await.unwrap(),
        3,
        "Node's count includes the monitor"
    );
    let started = Instant::now();
    a.of("/")
        .server_side_emit_with_ack("nobody-acks", &())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "b does not ack: waits for b only"
    );
    b.of("/").on_server_side("ack-me", |ev| ev.ack(1));
    let started = Instant::now();
    let replies = a
        .of("/")
        .server_side_emit_with_ack("ack-me", &())
        .await
        .unwrap();
    // Well under the 5 s a count that included the monitor would wait.
    assert_eq!(replies.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    a.of("/").all_rooms().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Application code that panics on the task reading Redis (a server-side event handler,
/// a `describe_sockets` closure) is caught and logged: the server keeps receiving.
#[tokio::test]
async fn a_panicking_application_callback_does_not_deafen_the_server() {
    let nodes = cluster_of(2, T).await;
    let mut c = client(&nodes[1], "/", Parser::Json, &["r"], T).await;
    let ns1 = nodes[1].cluster.of("/");
    ns1.on_server_side("boom", |_| panic!("bug in a server-side handler"));
    ns1.describe_sockets(|_| panic!("bug in describe_sockets"));
    let ns0 = nodes[0].cluster.of("/");
    ns0.server_side_emit("boom", &()).await.unwrap();
    let got = ns0.fetch_sockets(&["r"], &[]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, serde_json::json!({}), "the defaults");
    nodes[0].io.to("r").emit("still-here", &()).await.unwrap();
    c.recv_event_named("still-here", T).await;
    assert!(nodes[1].cluster.is_connected());
}

/// `close()` drops the application's closures (which may hold its `SocketIo`, itself
/// holding the cluster), so neither keeps the other alive.
#[tokio::test]
async fn close_drops_the_application_callbacks() {
    let nodes = cluster_of(1, T).await;
    let token = Arc::new(());
    let ns = nodes[0].cluster.of("/");
    let held = [token.clone(), token.clone(), token.clone()];
    let [h1, h2, h3] = held;
    ns.on_server_side("x", move |_| drop(h1.clone()));
    ns.describe_sockets(move |_| {
        let _ = &h2;
        socketioxide_cluster::SocketDetails::new()
    });
    ns.on_custom_request(move |v| {
        let h3 = h3.clone();
        async move {
            drop(h3);
            v
        }
    });
    assert_eq!(Arc::strong_count(&token), 4);
    nodes[0].cluster.close().await;
    assert_eq!(Arc::strong_count(&token), 1);
}
