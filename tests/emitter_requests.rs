//! The Rust emitter's request operations (`sockets_join`, `sockets_leave`,
//! `disconnect_sockets`, `server_side_emit`) applied by socketioxide servers on
//! `ClusterAdapter`, through a real `redis-server`. They need the adapter's request engine
//! (it answers the requests of Node emitters the same way).
//!
//! Order is proven, not waited for: one emitter connection publishes the request and then
//! a broadcast; each server's subscriber handles its messages in that order, so the
//! broadcast sees the rooms as the request left them.

use socketioxide_cluster_test_support as common;

use bytes::Bytes;
use common::cluster::{self, Serve, client, expect_events, fresh_nodes};
use common::{Client, Parser};
use rmpv::Value;
use serde_json::json;
use socketioxide_cluster_emitter::{Emitter, EmitterOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

/// The Rust servers serve `/` and `/admin`, with socketioxide's default buffer.
const SERVE: Serve = Serve {
    admin: true,
    ..Serve::ROOT
};

async fn setup(parser: Parser) -> (Vec<cluster::Node>, Emitter) {
    let (nodes, key) = fresh_nodes(2, "em-req", parser, SERVE).await;
    let em = Emitter::connect(EmitterOptions::new(common::shared().url()).key(&key))
        .await
        .expect("emitter connect");
    (nodes, em)
}

/// The socket's rooms on its server (the `"rooms"` test handler), its own id removed.
async fn rooms_of(c: &Client) -> Vec<String> {
    let ack = c.emit_with_ack("rooms", vec![], T).await;
    let mut rooms: Vec<String> = common::to_json(&ack[0])
        .as_array()
        .expect("rooms array")
        .iter()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .filter(|r| r != c.sid())
        .collect();
    rooms.sort();
    rooms
}

#[tokio::test]
async fn sockets_join_applies_on_every_server_to_the_selected_sockets() {
    for parser in Parser::ALL {
        let (nodes, em) = setup(parser).await;
        let mut a0 = client(&nodes[0], "/", parser, &["a"], T).await;
        let mut a1 = client(&nodes[1], "/", parser, &["a"], T).await;
        let mut ab1 = client(&nodes[1], "/", parser, &["a", "b"], T).await;
        let mut none1 = client(&nodes[1], "/", parser, &[], T).await;

        em.in_("a")
            .except("b")
            .sockets_join(["j1", "j2"])
            .await
            .unwrap();
        em.to("j2").emit("in-j2", &()).await.unwrap();
        em.emit("marker", &()).await.unwrap();
        for c in [&mut a0, &mut a1] {
            expect_events(c, &["in-j2", "marker"], T).await;
            assert_eq!(rooms_of(c).await, ["a", "j1", "j2"], "{parser:?}");
        }
        for c in [&mut ab1, &mut none1] {
            expect_events(c, &["marker"], T).await;
        }
        assert_eq!(rooms_of(&ab1).await, ["a", "b"]);
        assert!(rooms_of(&none1).await.is_empty());

        // Every socket of the namespace.
        em.sockets_join("everyone").await.unwrap();
        em.to("everyone").emit("all-joined", &()).await.unwrap();
        for c in [&mut a0, &mut a1, &mut ab1, &mut none1] {
            expect_events(c, &["all-joined"], T).await;
        }
    }
}

#[tokio::test]
async fn sockets_leave_applies_on_every_server() {
    let parser = Parser::Json;
    let (nodes, em) = setup(parser).await;
    let mut x0 = client(&nodes[0], "/", parser, &["x", "keep"], T).await;
    let mut x1 = client(&nodes[1], "/", parser, &["x", "keep"], T).await;
    let mut y1 = client(&nodes[1], "/", parser, &["y", "keep"], T).await;

    em.in_("x").sockets_leave("keep").await.unwrap();
    em.to("keep").emit("to-keep", &()).await.unwrap();
    em.emit("marker", &()).await.unwrap();
    expect_events(&mut x0, &["marker"], T).await;
    expect_events(&mut x1, &["marker"], T).await;
    expect_events(&mut y1, &["to-keep", "marker"], T).await;
    assert_eq!(rooms_of(&x1).await, ["x"]);
    assert_eq!(rooms_of(&y1).await, ["keep", "y"]);
}

#[tokio::test]
async fn namespaced_requests_stay_in_their_namespace() {
    let parser = Parser::MsgPack;
    let (nodes, em) = setup(parser).await;
    let mut root = client(&nodes[0], "/", parser, &[], T).await;
    let mut admin = client(&nodes[1], "/admin", parser, &[], T).await;
    em.of("admin").sockets_join("adm-joined").await.unwrap();
    em.of("/admin")
        .to("adm-joined")
        .emit("adm-j", &())
        .await
        .unwrap();
    em.to("adm-joined").emit("root-j", &()).await.unwrap();
    em.emit("marker", &()).await.unwrap();
    expect_events(&mut admin, &["adm-j"], T).await;
    expect_events(&mut root, &["marker"], T).await;
    assert!(rooms_of(&root).await.is_empty());
}

#[tokio::test]
async fn disconnect_sockets_disconnects_the_selected_sockets_everywhere() {
    for close in [false, true] {
        let parser = Parser::Json;
        let (nodes, em) = setup(parser).await;
        let mut d0 = client(&nodes[0], "/", parser, &["d"], T).await;
        let mut d1 = client(&nodes[1], "/", parser, &["d"], T).await;
        let mut keep1 = client(&nodes[1], "/", parser, &["d", "vip"], T).await;
        let mut other0 = client(&nodes[0], "/", parser, &[], T).await;

        em.in_("d")
            .except("vip")
            .disconnect_sockets(close)
            .await
            .unwrap();
        em.emit("marker", &()).await.unwrap();
        d0.expect_disconnect(T).await;
        d1.expect_disconnect(T).await;
        expect_events(&mut keep1, &["marker"], T).await;
        expect_events(&mut other0, &["marker"], T).await;

        em.disconnect_sockets(close).await.unwrap();
        keep1.expect_disconnect(T).await;
        other0.expect_disconnect(T).await;
    }
}

#[tokio::test]
async fn server_side_emit_reaches_every_server_once() {
    let (nodes, em) = setup(Parser::Json).await;
    // Register before emitting. (The namespace handles outlive the futures: in edition
    // 2024 the returned future captures `&self`.)
    let roots: Vec<_> = nodes.iter().map(|n| n.cluster.of("/")).collect();
    // Handlers run on the subscriber task, in the order of the messages: each server
    // counts its deliveries of "job-done".
    let counts: Vec<Arc<AtomicUsize>> = roots
        .iter()
        .map(|ns| {
            let n = Arc::new(AtomicUsize::new(0));
            let counter = n.clone();
            ns.on_server_side("job-done", move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            n
        })
        .collect();
    let waits: Vec<_> = roots
        .iter()
        .map(|ns| {
            ns.wait_server_side(
                "job-done",
                |args| args.first() == Some(&Value::from("job-7")),
                T,
            )
        })
        .collect();
    let markers: Vec<_> = roots
        .iter()
        .map(|ns| ns.wait_server_side("marker", |_| true, T))
        .collect();
    let admin = nodes[0].cluster.of("/admin");
    let admin_wait = admin.wait_server_side("adm-job", |_| true, T);
    em.server_side_emit(
        "job-done",
        &(
            "job-7",
            json!({"ok": true, "ms": 12}),
            Bytes::from_static(&[9]),
        ),
    )
    .await
    .unwrap();
    em.of("admin")
        .server_side_emit("adm-job", &())
        .await
        .unwrap();
    // Published after "job-done" on the same emitter connection: when a server handles
    // the marker it has handled every copy of "job-done" that Redis delivered to it.
    em.server_side_emit("marker", &()).await.unwrap();
    for w in waits {
        let args = w.await.expect("server-side event");
        let args: Vec<serde_json::Value> = args
            .iter()
            .map(socketioxide_cluster::wire::request::value_to_json)
            .collect();
        assert_eq!(
            args,
            vec![
                json!("job-7"),
                json!({"ok": true, "ms": 12}),
                // JSON, as in Node: binaries become Buffer objects.
                json!({"type": "Buffer", "data": [9]}),
            ]
        );
    }
    for (k, (m, n)) in markers.into_iter().zip(&counts).enumerate() {
        m.await.expect("marker");
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "server {k}: job-done deliveries"
        );
    }
    assert!(admin_wait.await.expect("admin event").is_empty());
}
