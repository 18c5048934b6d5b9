//! The Rust emitter (`socketioxide-cluster-emitter`) through a real `redis-server`:
//!
//! * to socketioxide servers on `ClusterAdapter` (both parsers): all, one room, several
//!   rooms, except, namespaces, socket ids, binary, volatile/compress, existing
//!   connections;
//! * to Node socket.io 4.8.4 servers on `@socket.io/redis-adapter` 8.3.0 with Node
//!   `socket.io-client` clients: events, binary as `Buffer`, numeric rooms,
//!   socketsJoin/socketsLeave/disconnectSockets/serverSideEmit;
//! * to a mixed Node + Rust cluster.
//!
//! The request operations against Rust servers are in `tests/emitter_requests.rs`.
//!
//! Absence is proven with a marker emitted afterwards by the same emitter (one publisher
//! connection, so Redis keeps the order, and each server handles its messages in order).
//!
//! Requires `redis-server`, and for the Node tests Node.js 20 and `npm ci` in
//! `tests/interop`.

use socketioxide_cluster_test_support as common;

use bytes::Bytes;
use common::cluster::{
    self, Serve, amap, client, expect_events, fresh_node_server, fresh_nodes, node_expect,
    node_serving, shared_opts, shutdown_all,
};
use common::node::{self as nd, NodeProcess, start_client};
use common::{Parser, arg, bin};
use serde::Serialize;
use serde_json::json;
use socketioxide_cluster_emitter::{Emitter, EmitterOptions, Error};
use std::time::Duration;

/// Bound of one wait.
const T: Duration = Duration::from_secs(15);

/// The Rust servers serve `/` and `/admin`, with a buffer of 100,000 packets per socket.
const SERVE: Serve = Serve {
    dyn_ns: false,
    ..Serve::ALL
};

/// Two Rust servers and an emitter on one fresh key.
async fn rust_cluster(parser: Parser) -> (Vec<cluster::Node>, Emitter) {
    let (nodes, key) = fresh_nodes(2, "em", parser, SERVE).await;
    (nodes, emitter(&key).await)
}

async fn emitter(key: &str) -> Emitter {
    Emitter::connect(EmitterOptions::new(common::shared().url()).key(key))
        .await
        .expect("emitter connect")
}

// ---------------------------------------------------------------------------
// Rust servers

#[tokio::test]
async fn emit_to_all_reaches_every_client_of_every_server_once() {
    for parser in Parser::ALL {
        let (nodes, em) = rust_cluster(parser).await;
        let mut clients = vec![
            client(&nodes[0], "/", parser, &[], T).await,
            client(&nodes[1], "/", parser, &[], T).await,
            client(&nodes[1], "/", parser, &["x"], T).await,
        ];
        let n = em
            .emit("hello", &("world", 42, json!({"nested": ["ü", 1.5]})))
            .confirmed()
            .await
            .unwrap();
        assert_eq!(n, 2, "both servers subscribe to the namespace");
        em.emit("one-arg", &vec![1, 2]).await.unwrap();
        em.emit("no-arg", &()).await.unwrap();
        em.emit("marker", &()).await.unwrap();
        for c in &mut clients {
            let evs = expect_events(c, &["hello", "one-arg", "no-arg", "marker"], T).await;
            assert_eq!(
                evs[0].args,
                vec![
                    arg(json!("world")),
                    arg(json!(42)),
                    arg(json!({"nested": ["ü", 1.5]}))
                ],
                "{parser:?}"
            );
            assert_eq!(
                evs[1].args,
                vec![arg(json!([1, 2]))],
                "a Vec is one argument"
            );
            assert!(evs[2].args.is_empty(), "() is no argument: {:?}", evs[2]);
        }
    }
}

#[tokio::test]
async fn rooms_several_rooms_and_except() {
    for parser in Parser::ALL {
        let (nodes, em) = rust_cluster(parser).await;
        let mut a0 = client(&nodes[0], "/", parser, &["a"], T).await;
        let mut ab1 = client(&nodes[1], "/", parser, &["a", "b"], T).await;
        let mut b1 = client(&nodes[1], "/", parser, &["b"], T).await;
        let mut none0 = client(&nodes[0], "/", parser, &[], T).await;

        em.to("a").emit("to-a", &1).await.unwrap();
        em.to(["a", "b"]).emit("to-ab", &2).await.unwrap();
        em.to("a")
            .to("b")
            .to("a")
            .emit("to-ab-chained", &3)
            .await
            .unwrap();
        em.except("b").emit("except-b", &4).await.unwrap();
        em.to("a").except("b").emit("a-not-b", &5).await.unwrap();
        em.in_(["a", "b"])
            .except(["a"])
            .emit("b-not-a", &6)
            .await
            .unwrap();
        em.to("nobody").emit("to-nobody", &7).await.unwrap();
        em.emit("marker", &()).await.unwrap();

        expect_events(
            &mut a0,
            &[
                "to-a",
                "to-ab",
                "to-ab-chained",
                "except-b",
                "a-not-b",
                "marker",
            ],
            T,
        )
        .await;
        // In both rooms: each event once.
        expect_events(&mut ab1, &["to-a", "to-ab", "to-ab-chained", "marker"], T).await;
        let evs = expect_events(&mut b1, &["to-ab", "to-ab-chained", "b-not-a", "marker"], T).await;
        assert_eq!(evs[2].i64_arg(0), 6);
        expect_events(&mut none0, &["except-b", "marker"], T).await;
    }
}

#[tokio::test]
async fn namespaces_are_kept_apart_and_of_adds_the_slash() {
    let parser = Parser::MsgPack;
    let (nodes, em) = rust_cluster(parser).await;
    let mut root = client(&nodes[1], "/", parser, &["staff"], T).await;
    let mut admin = client(&nodes[1], "/admin", parser, &["staff"], T).await;
    let mut admin0 = client(&nodes[0], "/admin", parser, &[], T).await;
    em.of("/admin").emit("adm", &1).await.unwrap();
    em.of("admin")
        .to("staff")
        .emit("adm-staff", &2)
        .await
        .unwrap();
    em.emit("marker", &()).await.unwrap();
    em.of("/admin").emit("marker", &()).await.unwrap();
    let evs = expect_events(&mut admin, &["adm", "adm-staff", "marker"], T).await;
    assert_eq!(evs[1].i64_arg(0), 2);
    expect_events(&mut admin0, &["adm", "marker"], T).await;
    expect_events(&mut root, &["marker"], T).await;
    // A namespace no server has: published, nobody listens.
    assert_eq!(
        em.of("/none").emit("void", &()).confirmed().await.unwrap(),
        0
    );
}

#[tokio::test]
async fn socket_ids_work_as_rooms() {
    let parser = Parser::Json;
    let (nodes, em) = rust_cluster(parser).await;
    let mut target = client(&nodes[1], "/", parser, &["g"], T).await;
    let mut other = client(&nodes[0], "/", parser, &["g"], T).await;
    let sid = target.sid().to_owned();
    em.to(sid.as_str()).emit("direct", &1).await.unwrap();
    em.to("g")
        .except(sid.as_str())
        .emit("not-target", &2)
        .await
        .unwrap();
    em.emit("marker", &()).await.unwrap();
    expect_events(&mut target, &["direct", "marker"], T).await;
    expect_events(&mut other, &["not-target", "marker"], T).await;
}

#[derive(Serialize)]
struct Upload {
    name: &'static str,
    #[serde(with = "serde_bytes_like")]
    data: Vec<u8>,
}

/// `#[serde(with = "serde_bytes")]` without the dependency: a `Vec<u8>` as msgpack bin.
mod serde_bytes_like {
    pub(crate) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
}

#[tokio::test]
async fn binary_arrives_as_binary_with_both_parsers() {
    for parser in Parser::ALL {
        let (nodes, em) = rust_cluster(parser).await;
        let mut c = client(&nodes[1], "/", parser, &[], T).await;
        let payload = Bytes::from_static(&[0, 1, 2, 254, 255]);
        em.emit("bin", &(payload.clone(), "text", json!({"k": [1, 2]})))
            .await
            .unwrap();
        em.emit(
            "struct",
            &Upload {
                name: "f",
                data: vec![9, 8],
            },
        )
        .await
        .unwrap();
        em.emit("vec-u8", &vec![1u8, 2]).await.unwrap();
        let evs = expect_events(&mut c, &["bin", "struct", "vec-u8"], T).await;
        assert_eq!(
            evs[0].args,
            vec![bin(&payload), arg(json!("text")), arg(json!({"k": [1, 2]}))],
            "{parser:?}"
        );
        assert_eq!(
            evs[1].args,
            vec![amap(vec![("data", bin([9, 8])), ("name", arg(json!("f")))])],
            "{parser:?}: structs are objects, serialize_bytes is binary"
        );
        assert_eq!(
            evs[2].args,
            vec![arg(json!([1, 2]))],
            "plain Vec<u8>: numbers"
        );
    }
}

#[tokio::test]
async fn volatile_and_compress_flags_are_delivered() {
    use futures_util::StreamExt;
    use rmpv::Value;
    use socketioxide_cluster::wire::message::BroadcastMessage;

    let parser = Parser::Json;
    let (nodes, em) = rust_cluster(parser).await;
    let mut c0 = client(&nodes[0], "/", parser, &["v"], T).await;
    let mut c1 = client(&nodes[1], "/", parser, &["v"], T).await;
    // What the servers get: every broadcast of `/`, as it travels through Redis.
    let key = nodes[0].cluster.config().key().to_owned();
    let mut tap = redis::Client::open(common::shared().url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    tap.psubscribe(format!("{key}#/#*")).await.unwrap();
    let mut tap = tap.into_on_message();

    // socketioxide sends volatile packets outside the ordered queue: one at a time.
    em.to("v").volatile().emit("vol", &1).await.unwrap();
    for c in [&mut c0, &mut c1] {
        assert_eq!(c.recv_event_named("vol", T).await.i64_arg(0), 1);
    }
    em.volatile()
        .compress(false)
        .emit("vol-all", &2)
        .await
        .unwrap();
    for c in [&mut c0, &mut c1] {
        assert_eq!(c.recv_event_named("vol-all", T).await.i64_arg(0), 2);
    }
    em.compress(false).emit("uncompressed", &3).await.unwrap();
    em.emit("marker", &()).await.unwrap();
    for c in [&mut c0, &mut c1] {
        expect_events(c, &["uncompressed", "marker"], T).await;
    }
    for n in &nodes {
        let stats = n.cluster.stats();
        assert_eq!(stats.malformed, 0, "{stats:?}");
    }

    // Each message carried exactly its flags, as the servers decode them (a server hands
    // a `volatile` message to socketioxide's volatile path, which may drop the packet
    // for a busy socket instead of queueing it: not observable with a reading client;
    // `compress` has no per-packet effect in socketioxide).
    let (yes, no) = (Value::Boolean(true), Value::Boolean(false));
    let expected = [
        ("vol", vec![("volatile", yes.clone())]),
        ("vol-all", vec![("compress", no.clone()), ("volatile", yes)]),
        ("uncompressed", vec![("compress", no)]),
        ("marker", vec![]),
    ];
    for (event, flags) in expected {
        let msg = tokio::time::timeout(T, tap.next())
            .await
            .unwrap_or_else(|_| panic!("{event:?} not seen on Redis"))
            .expect("tap connection");
        let msg = BroadcastMessage::decode(msg.get_payload_bytes()).unwrap();
        assert_eq!(msg.packet.data[0], Value::from(event));
        let mut got = msg.opts.flags.clone();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let flags: Vec<(String, Value)> =
            flags.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(got, flags, "flags of {event:?}");
        assert_eq!(
            msg.opts.is_volatile(),
            event.starts_with("vol"),
            "{event:?}"
        );
    }
}

#[tokio::test]
async fn existing_connections_and_keys() {
    let parser = Parser::Json;
    let (nodes, _) = rust_cluster(parser).await;
    let key = nodes[0].cluster.config().key().to_owned();
    let mut c = client(&nodes[1], "/", parser, &[], T).await;

    let redis = redis::Client::open(common::shared().url()).unwrap();
    let multiplexed = common::command_conn(&common::shared().url()).await;
    let em = Emitter::from_connection(multiplexed, EmitterOptions::default().key(&key)).unwrap();
    em.emit("via-multiplexed", &1).await.unwrap();
    let manager = redis::aio::ConnectionManager::new(redis.clone())
        .await
        .unwrap();
    let em2 = Emitter::from_connection(manager, EmitterOptions::default().key(&key)).unwrap();
    em2.emit("via-manager", &2).await.unwrap();
    // Another key: another cluster.
    let stranger = emitter("someone-else").await;
    assert_eq!(stranger.emit("stranger", &()).confirmed().await.unwrap(), 0);
    // Clones and spawned futures share the connection.
    let em3 = em.clone();
    tokio::spawn(em3.emit("spawned", &3))
        .await
        .unwrap()
        .unwrap();
    // A RESP3 connection (the emitter only publishes: RESP3 changes nothing on the wire).
    let resp3 = format!("{}?protocol=resp3", common::shared().url());
    let em4 = Emitter::connect(EmitterOptions::new(&resp3).key(&key))
        .await
        .unwrap();
    assert_eq!(
        em4.emit("via-resp3", &4).confirmed().await.unwrap(),
        2,
        "both servers"
    );
    em.emit("marker", &()).await.unwrap();
    expect_events(
        &mut c,
        &[
            "via-multiplexed",
            "via-manager",
            "spawned",
            "via-resp3",
            "marker",
        ],
        T,
    )
    .await;
}

#[tokio::test]
async fn reserved_events_and_unreachable_redis_fail_cleanly() {
    let (_nodes, em) = rust_cluster(Parser::Json).await;
    let err = em.emit("disconnect", &()).await.unwrap_err();
    assert!(matches!(err, Error::ReservedEvent(_)), "{err}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let err = Emitter::connect(
        EmitterOptions::new(format!("redis://user:hunter2@127.0.0.1:{port}"))
            .connect_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. } | Error::ConnectTimeout { .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let err = Emitter::connect(EmitterOptions::new("not a url"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn publish_fails_while_redis_is_down_then_recovers() {
    let redis = common::RedisServer::start();
    let key = common::unique_key("em-down");
    let em = Emitter::connect(
        EmitterOptions::new(redis.url())
            .key(&key)
            .publish_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    assert_eq!(em.emit("before", &()).confirmed().await.unwrap(), 0);
    redis.kill();
    // A broadcast resolves once queued; its failure is counted, and the next flush
    // reports it.
    em.emit("during", &()).await.unwrap();
    let err = em.flush().await.unwrap_err();
    assert!(
        matches!(err, Error::NotPublished { failed: 1, .. }),
        "{err}"
    );
    assert_eq!(em.stats().failed, 1);
    assert!(em.flush().await.is_ok(), "reported once");
    // A confirmed one gets its own error.
    let err = em.emit("during", &()).confirmed().await.unwrap_err();
    assert!(matches!(err, Error::Redis(_) | Error::Timeout(_)), "{err}");
    redis.restart();
    // The connection manager reconnects in the background: bounded retries.
    let deadline = std::time::Instant::now() + T;
    loop {
        match em.emit("after", &()).confirmed().await {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!("not reconnected yet: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no reconnection within {T:?}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Node servers

/// A Node server on a fresh key, and an emitter on that key.
async fn node_server(name: &str) -> (NodeProcess, Emitter, String) {
    let (server, key) = fresh_node_server(name, "em-node").await;
    let em = emitter(&key).await;
    (server, em, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_clients_receive_events_rooms_namespaces_and_buffers() {
    let (server, em, _) = node_server("emN").await;
    let mut c1 = start_client("emN-c1", &server.url(), "/", json!(["r1"]), &[]).await;
    let mut c2 = start_client("emN-c2", &server.url(), "/", json!(["r2", 42]), &[]).await;
    let mut adm = start_client("emN-adm", &server.url(), "/admin", json!(["r1"]), &[]).await;

    em.emit(
        "all",
        &("s", Bytes::from_static(&[1, 2]), json!({"k": 1.5})),
    )
    .await
    .unwrap();
    em.to("r1").emit("room", &1).await.unwrap();
    em.to(["r1", "r2"])
        .except("r2")
        .emit("r1-only", &())
        .await
        .unwrap();
    em.to(42).emit("numeric", &"n").await.unwrap();
    em.to("42").emit("text-42", &()).await.unwrap(); // JS rooms compare with ===
    em.emit("undef", &(None::<()>, 1)).await.unwrap();
    em.of("admin").to("r1").emit("adm", &2).await.unwrap();
    em.emit("marker", &()).await.unwrap();
    em.of("/admin").emit("marker", &()).await.unwrap();

    let evs = node_expect(&mut c1, &["all", "room", "r1-only", "undef", "marker"], T).await;
    assert_eq!(evs[0][0], json!("s"));
    assert_eq!(
        nd::as_bin(&evs[0][1]),
        Some(vec![1, 2]),
        "arrives as a Buffer: {}",
        evs[0][1]
    );
    assert_eq!(evs[0][2], json!({"k": 1.5}));
    assert_eq!(evs[1], json!([1]));
    assert_eq!(evs[3], json!([null, 1]));
    let evs = node_expect(&mut c2, &["all", "numeric", "undef", "marker"], T).await;
    assert_eq!(evs[1], json!(["n"]));
    let evs = node_expect(&mut adm, &["adm", "marker"], T).await;
    assert_eq!(evs[0], json!([2]));

    // Volatile: Node drops it for a client whose transport is busy writing, so it is sent
    // once every client is idle (all markers received), and alone.
    em.volatile()
        .compress(false)
        .emit("flags", &true)
        .await
        .unwrap();
    for c in [&mut c1, &mut c2] {
        assert_eq!(node_expect(c, &["flags"], T).await[0], json!([true]));
    }
    shutdown_all(vec![c1, c2, adm, server]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_servers_apply_join_leave_disconnect_and_server_side_emit() {
    let (mut server, em, _) = node_server("emR").await;
    let mut a = start_client("emR-a", &server.url(), "/", json!(["a"]), &[]).await;
    let mut b = start_client("emR-b", &server.url(), "/", json!(["b"]), &[]).await;
    let mut d = start_client("emR-d", &server.url(), "/", json!(["d"]), &[]).await;
    let mut adm = start_client("emR-adm", &server.url(), "/admin", json!([]), &[]).await;

    // socketsJoin: only the sockets in "a"; then a broadcast to the new room.
    em.in_("a").sockets_join(["j1", "j2"]).await.unwrap();
    em.to("j2").emit("in-j2", &()).await.unwrap();
    // socketsLeave
    em.in_("a").sockets_leave("j2").await.unwrap();
    em.to("j2").emit("still-in-j2", &()).await.unwrap();
    em.to("j1").emit("in-j1", &()).await.unwrap();
    // namespaced join
    em.of("/admin").sockets_join("adm-joined").await.unwrap();
    em.of("/admin")
        .to("adm-joined")
        .emit("adm-j", &())
        .await
        .unwrap();
    em.emit("marker", &()).await.unwrap();
    node_expect(&mut a, &["in-j2", "in-j1", "marker"], T).await;
    node_expect(&mut b, &["marker"], T).await;
    node_expect(&mut d, &["marker"], T).await;
    node_expect(&mut adm, &["adm-j"], T).await;
    // The server's own view.
    let r = server.request(json!({"cmd": "localRooms"}), T).await;
    let rooms: Vec<&str> = r["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["room"].as_str())
        .collect();
    assert!(rooms.contains(&"j1") && !rooms.contains(&"j2"), "{r}");

    // serverSideEmit: JSON, binaries become Node's Buffer JSON.
    em.server_side_emit(
        "job-done",
        &("job-7", json!({"ok": true}), Bytes::from_static(&[9])),
    )
    .await
    .unwrap();
    let ev = server
        .next_matching(|v| v["serverSideEvent"]["event"] == "job-done", T)
        .await;
    assert_eq!(
        ev["serverSideEvent"]["args"],
        json!(["job-7", {"ok": true}, {"type": "Buffer", "data": [9]}])
    );
    assert_eq!(ev["serverSideEvent"]["nsp"], "/");
    assert_eq!(ev["serverSideEvent"]["ack"], false);

    // disconnectSockets: only "d"; b stays connected.
    em.in_("d").disconnect_sockets(true).await.unwrap();
    let ev = d
        .next_matching(|v| v.get("disconnected").is_some(), T)
        .await;
    assert!(ev["disconnected"].is_string(), "{ev}");
    em.except("a").disconnect_sockets(false).await.unwrap();
    let ev = b
        .next_matching(|v| v.get("disconnected").is_some(), T)
        .await;
    assert_eq!(ev["disconnected"], "io server disconnect");
    em.emit("after", &()).await.unwrap();
    node_expect(&mut a, &["after"], T).await;
    a.assert_none_received(|v| v.get("disconnected").is_some());

    shutdown_all(vec![a, b, d, adm, server]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_node_and_rust_cluster_receives_everything_once() {
    for parser in Parser::ALL {
        let (node, em, key) = node_server(&format!("emMix-{parser:?}")).await;
        let rust = node_serving(shared_opts(&key), parser, SERVE).await;
        let mut node_clients =
            vec![start_client("emMix-nc", &node.url(), "/", json!(["r"]), &[]).await];
        if parser == Parser::Json {
            // client.js speaks the default (JSON) parser only.
            node_clients.push(start_client("emMix-nr", &rust.url(), "/", json!(["r"]), &[]).await);
        }
        let mut rc = client(&rust, "/", parser, &["r"], T).await;
        let mut rc_other = client(&rust, "/", parser, &[], T).await;

        let n = em
            .to("r")
            .emit("mixed", &(Bytes::from_static(&[7]), "x"))
            .confirmed()
            .await
            .unwrap();
        assert_eq!(n, 2, "the Node and the Rust server");
        em.emit("marker", &()).await.unwrap();

        for c in &mut node_clients {
            let evs = node_expect(c, &["mixed", "marker"], T).await;
            assert_eq!(nd::as_bin(&evs[0][0]), Some(vec![7]), "{}", evs[0][0]);
            assert_eq!(evs[0][1], json!("x"));
        }
        let evs = expect_events(&mut rc, &["mixed", "marker"], T).await;
        assert_eq!(evs[0].args, vec![bin([7]), arg(json!("x"))]);
        expect_events(&mut rc_other, &["marker"], T).await;
        node_clients.push(node);
        shutdown_all(node_clients).await;
    }
}
