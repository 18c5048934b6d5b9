//! The in-process transport: the zero-setup cluster for demos and users' unit tests.

mod common;

use common::{Client, Parser, arg};
use serde_json::json;
use socketioxide::adapter::Emitter;
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions, InProcessBus};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

async fn node(
    bus: &InProcessBus,
) -> (
    socketioxide::SocketIo<ClusterAdapter<Emitter>>,
    Cluster,
    std::net::SocketAddr,
) {
    let cluster = Cluster::connect(ClusterOptions::in_process(bus))
        .await
        .unwrap();
    let (layer, io) = common::builder(Parser::Json)
        .with_adapter::<ClusterAdapter<_>>(cluster.clone())
        .build_layer();
    common::test_ns(&io, "/").await.unwrap();
    let addr = common::serve(layer).await;
    (io, cluster, addr)
}

#[tokio::test]
async fn servers_on_one_bus_are_one_cluster() {
    let bus = InProcessBus::new();
    let (io_a, _a, _) = node(&bus).await;
    let (_io_b, b, addr_b) = node(&bus).await;
    let mut in_room = Client::connect(addr_b, "/", Parser::Json).await;
    assert_eq!(
        in_room.emit_with_ack("join", vec![json!("r")], T).await,
        vec![arg(json!("ok"))]
    );
    let mut outside = Client::connect(addr_b, "/", Parser::Json).await;
    io_a.to("r").emit("to-r", &1).await.unwrap();
    io_a.emit("all", &2).await.unwrap();
    assert_eq!(in_room.recv_event_named("to-r", T).await.i64_arg(0), 1);
    assert_eq!(in_room.recv_event_named("all", T).await.i64_arg(0), 2);
    // `all` arrives after `to-r` (same publisher), so `outside` proves non-delivery.
    outside.expect_no_event_before("all", T).await;
    assert!(b.stats().received >= 2);
}

#[tokio::test]
async fn separate_buses_are_separate_clusters() {
    let (io_a, _a, _) = node(&InProcessBus::new()).await;
    let (io_b, _b, addr_b) = node(&InProcessBus::new()).await;
    let mut c = Client::connect(addr_b, "/", Parser::Json).await;
    io_a.emit("other-cluster", &()).await.unwrap();
    io_b.emit("marker", &()).await.unwrap();
    c.expect_no_event_before("marker", T).await;
}

#[tokio::test]
async fn closed_handle_refuses_broadcasts() {
    let bus = InProcessBus::new();
    let (io_a, a, _) = node(&bus).await;
    a.close().await;
    assert!(io_a.emit("x", &()).await.is_err());
    assert!(!a.is_connected());
}
