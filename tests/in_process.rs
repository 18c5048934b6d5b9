//! The in-process transport: the zero-setup cluster for demos and users' unit tests.

use socketioxide_cluster_test_support as common;

use common::cluster::{Node, Serve, node_serving};
use common::{Client, Parser, arg};
use serde_json::json;
use socketioxide_cluster::{ClusterOptions, InProcessBus};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

async fn node(bus: &InProcessBus) -> Node {
    node_serving(ClusterOptions::in_process(bus), Parser::Json, Serve::ROOT).await
}

#[tokio::test]
async fn servers_on_one_bus_are_one_cluster() {
    let bus = InProcessBus::new();
    let a = node(&bus).await;
    let b = node(&bus).await;
    let mut in_room = Client::connect(b.addr, "/", Parser::Json).await;
    assert_eq!(
        in_room.emit_with_ack("join", vec![json!("r")], T).await,
        vec![arg(json!("ok"))]
    );
    let mut outside = Client::connect(b.addr, "/", Parser::Json).await;
    a.io.to("r").emit("to-r", &1).await.unwrap();
    a.io.emit("all", &2).await.unwrap();
    assert_eq!(in_room.recv_event_named("to-r", T).await.i64_arg(0), 1);
    assert_eq!(in_room.recv_event_named("all", T).await.i64_arg(0), 2);
    // `all` arrives after `to-r` (same publisher), so `outside` proves non-delivery.
    outside.expect_no_event_before("all", T).await;
    assert!(b.cluster.stats().received >= 2);
}

#[tokio::test]
async fn separate_buses_are_separate_clusters() {
    let a = node(&InProcessBus::new()).await;
    let y = InProcessBus::new();
    let b = node(&y).await;
    let b2 = node(&y).await;
    let mut c = Client::connect(b.addr, "/", Parser::Json).await;
    a.io.emit("other-cluster", &()).await.unwrap();
    // A bus hands a message to every member's inbox before `emit` returns, and b reads
    // its inbox in order: had a's broadcast reached b, it would arrive before b2's.
    b2.io.emit("marker", &()).await.unwrap();
    c.expect_no_event_before("marker", T).await;
}

#[tokio::test]
async fn closed_handle_refuses_broadcasts() {
    let bus = InProcessBus::new();
    let a = node(&bus).await;
    a.cluster.close().await;
    let err = a.io.emit("x", &()).await.unwrap_err();
    let ours = socketioxide_cluster::Error::find_in(&err);
    assert!(ours.is_some_and(|e| e.is_closed()), "{err:?}");
    assert!(!a.cluster.is_connected());
}
