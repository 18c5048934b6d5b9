//! Broadcasts across several socketioxide servers through a real `redis-server`, seen by
//! real socket.io clients (JSON and msgpack parsers).

use socketioxide_cluster_test_support as common;

use bytes::Bytes;
use common::cluster::{Node, Serve, client, fresh_nodes, node_with};
use common::{Parser, arg, bin};
use serde_json::json;
use socketioxide_cluster::{Cluster, ClusterOptions, Error};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

async fn cluster_of(n: usize, parser: Parser) -> Vec<Node> {
    fresh_nodes(n, "bc", parser, Serve::ALL).await.0
}

#[tokio::test]
async fn emit_to_all_reaches_every_server_once() {
    for parser in Parser::ALL {
        let nodes = cluster_of(3, parser).await;
        let mut clients = Vec::new();
        for n in &nodes {
            clients.push(client(n, "/", parser, &[], T).await);
        }
        nodes[0]
            .io
            .emit("hello", &("world", 42, json!({"nested": ["ü", 1.5]})))
            .await
            .unwrap();
        nodes[0].io.emit("marker", &()).await.unwrap();
        for c in &mut clients {
            let ev = c.recv_event_named("hello", T).await;
            assert_eq!(
                ev.args,
                vec![
                    arg(json!("world")),
                    arg(json!(42)),
                    arg(json!({"nested": ["ü", 1.5]}))
                ]
            );
            // Exactly once: the server's own message coming back from Redis is ignored.
            c.expect_no_event_before("marker", T).await;
        }
    }
}

#[tokio::test]
async fn to_room_and_several_rooms_and_except() {
    for parser in Parser::ALL {
        let nodes = cluster_of(3, parser).await;
        let mut a0 = client(&nodes[0], "/", parser, &["a"], T).await;
        let mut ab1 = client(&nodes[1], "/", parser, &["a", "b"], T).await;
        let mut b2 = client(&nodes[2], "/", parser, &["b"], T).await;
        let mut none2 = client(&nodes[2], "/", parser, &[], T).await;

        // One origin, so every receiver sees the same order (per-publisher ordering);
        // the receivers sit on the origin itself and on two other servers.
        let io = &nodes[0].io;
        io.to("a").emit("to-a", &1).await.unwrap();
        io.to(["a", "b"]).emit("to-ab", &2).await.unwrap();
        io.except("b").emit("except-b", &3).await.unwrap();
        io.to("a").except("b").emit("a-not-b", &4).await.unwrap();
        io.emit("marker", &()).await.unwrap();

        assert_eq!(a0.recv_event_named("to-a", T).await.i64_arg(0), 1);
        assert_eq!(a0.recv_event_named("to-ab", T).await.i64_arg(0), 2);
        assert_eq!(a0.recv_event_named("except-b", T).await.i64_arg(0), 3);
        assert_eq!(a0.recv_event_named("a-not-b", T).await.i64_arg(0), 4);

        assert_eq!(ab1.recv_event_named("to-a", T).await.i64_arg(0), 1);
        // In both rooms, delivered once.
        assert_eq!(ab1.recv_event_named("to-ab", T).await.i64_arg(0), 2);

        assert_eq!(b2.recv_event_named("to-ab", T).await.i64_arg(0), 2);
        assert_eq!(none2.recv_event_named("except-b", T).await.i64_arg(0), 3);
        for c in [&mut a0, &mut ab1, &mut b2, &mut none2] {
            c.expect_no_event_before("marker", T).await;
        }
    }
}

#[tokio::test]
async fn socket_broadcast_excludes_the_sender_everywhere() {
    let parser = Parser::Json;
    let nodes = cluster_of(2, parser).await;
    let mut sender = client(&nodes[0], "/", parser, &["r"], T).await;
    let mut peer0 = client(&nodes[0], "/", parser, &["r"], T).await;
    let mut peer1 = client(&nodes[1], "/", parser, &["r"], T).await;
    let sock = nodes[0]
        .io
        .get_socket(sender.sid().parse().unwrap())
        .expect("socket");
    sock.broadcast().emit("from-socket", &"x").await.unwrap();
    sock.to("r").emit("from-socket-to-r", &"y").await.unwrap();
    nodes[0].io.emit("marker", &()).await.unwrap();
    for peer in [&mut peer0, &mut peer1] {
        assert_eq!(
            peer.recv_event_named("from-socket", T).await.str_arg(0),
            "x"
        );
        assert_eq!(
            peer.recv_event_named("from-socket-to-r", T)
                .await
                .str_arg(0),
            "y"
        );
        peer.expect_no_event_before("marker", T).await;
    }
    sender.expect_no_event_before("marker", T).await;
}

#[tokio::test]
async fn volatile_broadcasts_are_delivered_when_nothing_is_congested() {
    let parser = Parser::Json;
    let nodes = cluster_of(2, parser).await;
    let mut c = client(&nodes[1], "/", parser, &[], T).await;
    nodes[0].io.volatile().emit("vol", &1).await.unwrap();
    assert_eq!(c.recv_event_named("vol", T).await.i64_arg(0), 1);
    assert_eq!(nodes[0].cluster.stats().volatile_dropped, 0);
}

#[tokio::test]
async fn binary_payloads_cross_servers_intact() {
    for parser in Parser::ALL {
        let nodes = cluster_of(2, parser).await;
        let mut c = client(&nodes[1], "/", parser, &[], T).await;
        let payload = Bytes::from_static(&[0, 1, 2, 254, 255]);
        nodes[0]
            .io
            .emit("bin", &(payload.clone(), "text", json!({"k": [1, 2]})))
            .await
            .unwrap();
        let ev = c.recv_event_named("bin", T).await;
        assert_eq!(
            ev.args,
            vec![bin(&payload), arg(json!("text")), arg(json!({"k": [1, 2]}))],
            "{parser:?}"
        );
    }
}

#[tokio::test]
async fn namespaces_are_kept_apart() {
    let parser = Parser::MsgPack;
    let nodes = cluster_of(2, parser).await;
    let mut root = client(&nodes[1], "/", parser, &[], T).await;
    let mut admin = client(&nodes[1], "/admin", parser, &["staff"], T).await;
    nodes[0]
        .io
        .of("/admin")
        .unwrap()
        .emit("adm", &1)
        .await
        .unwrap();
    nodes[0]
        .io
        .of("/admin")
        .unwrap()
        .to("staff")
        .emit("adm-staff", &2)
        .await
        .unwrap();
    nodes[0].io.emit("marker", &()).await.unwrap();
    nodes[0]
        .io
        .of("/admin")
        .unwrap()
        .emit("marker", &())
        .await
        .unwrap();
    assert_eq!(admin.recv_event_named("adm", T).await.i64_arg(0), 1);
    assert_eq!(admin.recv_event_named("adm-staff", T).await.i64_arg(0), 2);
    admin.expect_no_event_before("marker", T).await;
    root.expect_no_event_before("marker", T).await;
}

#[tokio::test]
async fn dynamic_namespaces_get_their_own_channels() {
    let parser = Parser::Json;
    let nodes = cluster_of(2, parser).await;
    let mut d1_on_0 = client(&nodes[0], "/dyn-1", parser, &[], T).await;
    let mut d1_on_1 = client(&nodes[1], "/dyn-1", parser, &[], T).await;
    let mut d2_on_1 = client(&nodes[1], "/dyn-2", parser, &[], T).await;
    nodes[0]
        .io
        .of("/dyn-1")
        .unwrap()
        .emit("dyn", &"one")
        .await
        .unwrap();
    nodes[1]
        .io
        .of("/dyn-2")
        .unwrap()
        .emit("marker", &())
        .await
        .unwrap();
    nodes[0]
        .io
        .of("/dyn-1")
        .unwrap()
        .emit("marker", &())
        .await
        .unwrap();
    assert_eq!(d1_on_0.recv_event_named("dyn", T).await.str_arg(0), "one");
    assert_eq!(d1_on_1.recv_event_named("dyn", T).await.str_arg(0), "one");
    d2_on_1.expect_no_event_before("marker", T).await;
}

#[tokio::test]
async fn socket_ids_work_as_rooms_across_servers() {
    let parser = Parser::Json;
    let nodes = cluster_of(2, parser).await;
    let mut target = client(&nodes[1], "/", parser, &["g"], T).await;
    let mut other = client(&nodes[1], "/", parser, &["g"], T).await;
    let sid = target.sid().to_owned();
    nodes[0]
        .io
        .to(sid.clone())
        .emit("direct", &1)
        .await
        .unwrap();
    nodes[0]
        .io
        .to("g")
        .except(sid.clone())
        .emit("not-target", &2)
        .await
        .unwrap();
    nodes[0].io.emit("marker", &()).await.unwrap();
    assert_eq!(target.recv_event_named("direct", T).await.i64_arg(0), 1);
    target.expect_no_event_before("marker", T).await;
    assert_eq!(other.recv_event_named("not-target", T).await.i64_arg(0), 2);
    other.expect_no_event_before("marker", T).await;
}

#[tokio::test]
async fn malformed_messages_are_skipped_and_counted() {
    let parser = Parser::Json;
    let nodes = cluster_of(2, parser).await;
    let mut c = client(&nodes[1], "/", parser, &["room"], T).await;
    let key = nodes[1].cluster.config().key().to_owned();
    let mut conn = common::command_conn(&common::shared().url()).await;
    let garbage: Vec<Vec<u8>> = vec![
        b"{\"a\":1}".to_vec(),
        vec![0xc1],
        vec![0x93, 0xa1, b'x'],
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        vec![
            0x93, 0xa1, b'x', 0x81, 0xa4, b't', b'y', b'p', b'e', 0x02, 0x80,
        ],
        vec![0x91; 5000],
        vec![0xa2, 0xff, 0xfe],
    ];
    for g in &garbage {
        for ch in [format!("{key}#/#"), format!("{key}#/#room#")] {
            let _: () = redis::cmd("PUBLISH")
                .arg(ch)
                .arg(g.as_slice())
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    nodes[0].io.emit("after-garbage", &"ok").await.unwrap();
    assert_eq!(
        c.recv_event_named("after-garbage", T).await.str_arg(0),
        "ok"
    );
    assert_eq!(nodes[1].cluster.stats().malformed, 2 * garbage.len() as u64);
}

#[tokio::test]
async fn resp3_connections_work() {
    common::init_tracing();
    let key = common::unique_key("resp3");
    // Its own redis-server: the test kills pub/sub connections.
    let server = common::RedisServer::start();
    let url = format!("{}?protocol=resp3", server.url());
    let a = node_with(ClusterOptions::new(&url).key(&key), Parser::Json).await;
    let b = node_with(ClusterOptions::new(&url).key(&key), Parser::Json).await;
    let mut c = client(&b, "/", Parser::Json, &["r3"], T).await;
    a.io.emit("resp3", &1).await.unwrap();
    assert_eq!(c.recv_event_named("resp3", T).await.i64_arg(0), 1);
    // Requests too: PUBSUB NUMSUB and the replies on the response channels.
    let ns = a.cluster.of("/");
    assert_eq!(ns.server_count().await.unwrap(), 2);
    assert_eq!(ns.clients(&["r3"]).await.unwrap(), vec![c.sid().to_owned()]);
    a.io.within("r3").join("joined-over-resp3").await.unwrap();
    assert!(
        ns.client_rooms(c.sid())
            .await
            .unwrap()
            .contains(&"joined-over-resp3".to_owned())
    );
    // And after the subscriber connection was killed: resubscribed over RESP3.
    let mut conn = common::command_conn(&server.url()).await;
    // Every connection of the adapters (subscribers included) speaks RESP3.
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let adapters: Vec<&str> = list
        .lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .collect();
    assert!(adapters.len() >= 4, "{list}");
    assert!(adapters.iter().all(|l| l.contains(" resp=3")), "{list}");
    assert!(
        adapters
            .iter()
            .any(|l| l.contains(" psub=") && !l.contains(" psub=0 ")),
        "a pattern subscriber: {list}"
    );
    let id = b.cluster.stats().reconnects;
    let _: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while b.cluster.stats().reconnects == id || !b.cluster.is_connected() {
        assert!(started.elapsed() < T, "b never reconnected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    common::cluster::until_delivered(&a.io, &mut c, T).await;
}

#[tokio::test]
async fn bad_url_and_unreachable_redis_fail_from_connect() {
    let err = Cluster::connect(ClusterOptions::new("not a url"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    // A port nobody listens on: refused at once, not a hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let err = Cluster::connect(
        ClusterOptions::new(format!("redis://127.0.0.1:{port}"))
            .connect_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(err.is_connection_error(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn close_flushes_then_refuses() {
    let parser = Parser::Json;
    let nodes = cluster_of(2, parser).await;
    let mut c = client(&nodes[1], "/", parser, &[], T).await;
    for i in 0..100 {
        nodes[0].io.emit("before-close", &i).await.unwrap();
    }
    nodes[0].cluster.close().await;
    assert_eq!(c.count_events_in_order("before-close", 100, T).await, 100);
    let err = nodes[0].io.emit("after-close", &()).await.unwrap_err();
    // The adapter's own refusal, not a local failure: `Closed`, as documented (not
    // `Disconnected`, which would tell the application to wait for a reconnect).
    let ours = Error::find_in(&err);
    assert!(ours.is_some_and(|e| e.is_closed()), "{err:?}");
    assert!(!nodes[0].cluster.is_connected());
}

/// Issue requirement: a burst of 20,000 broadcasts from one server to 50 clients on
/// another arrives complete and in order (socketioxide's per-socket buffer raised, as
/// the README tells users to do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_20000_broadcasts_to_50_clients_arrives_complete() {
    const N: usize = 20_000;
    const CLIENTS: usize = 50;
    let parser = Parser::MsgPack;
    let nodes = cluster_of(2, parser).await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(client(&nodes[1], "/", parser, &[], T).await);
    }
    let io = nodes[0].io.clone();
    let sender = tokio::spawn(async move {
        for i in 0..N {
            io.emit("burst", &(i,)).await.unwrap();
        }
    });
    let mut tasks = Vec::new();
    for mut c in clients {
        tasks.push(tokio::spawn(async move {
            c.count_events_in_order("burst", N, Duration::from_secs(120))
                .await
        }));
    }
    sender.await.unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), N);
    }
    let stats = nodes[1].cluster.stats();
    assert_eq!(stats.delivery_failed, 0, "{stats:?}");
    assert_eq!(nodes[0].cluster.stats().publish_failed, 0);
}
