//! A mixed cluster on Redis Sentinel: a Node socket.io 4.8.4 server on
//! `@socket.io/redis-adapter` 8.3.0 with ioredis 5.11.1 Sentinel clients
//! (`tests/interop/server.js --sentinel mymaster`, `failoverDetector: true`) and two
//! socketioxide servers on `ClusterOptions::sentinel`, through one master, its replica
//! and three sentinels. Broadcasts cross both ways and every server counts three; after a
//! failover (`SENTINEL FAILOVER`, and the master killed with SIGKILL) all three are
//! together again on the new master, without a restart.
//!
//! Requires `redis-server`, `redis-cli`, Node.js 20 and `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support as common;

use common::cluster::{Serve, client, node_expect, nodes_serving, until_server_count};
use common::node::{NodeProcess, start_client, start_server};
use common::sentinel::{MASTER_NAME, Sentinels};
use common::{Client, Parser};
use serde_json::json;
use socketioxide_cluster::ClusterOptions;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

/// Both directions: the Node server's broadcast reaches the Rust client, a Rust
/// server's reaches the Node client; every server counts three.
async fn all_together(
    node: &mut NodeProcess,
    n1: &mut NodeProcess,
    rust: &[common::cluster::Node],
    c: &mut Client,
    tag: &str,
    within: Duration,
) {
    for r in rust {
        until_server_count(r, 3, within).await;
    }
    let count = node.request(json!({"cmd": "serverCount"}), T).await;
    assert_eq!(count["count"], json!(3), "{tag}: Node's count");
    let from_node = format!("from-node-{tag}");
    node.request(json!({"cmd": "emit", "event": from_node, "args": [tag]}), T)
        .await;
    assert_eq!(c.recv_event_named(&from_node, T).await.str_arg(0), tag);
    node_expect(n1, &[&from_node], T).await;
    let from_rust = format!("from-rust-{tag}");
    rust[0].io.emit(from_rust.clone(), &(tag,)).await.unwrap();
    let args = node_expect(n1, &[&from_rust], T).await;
    assert_eq!(args[0], json!([tag]));
    assert_eq!(c.recv_event_named(&from_rust, T).await.str_arg(0), tag);
}

async fn mixed_failover(kill: bool) {
    common::init_tracing();
    let s = tokio::task::spawn_blocking(|| Sentinels::start(500))
        .await
        .unwrap();
    let key = common::unique_key("sentinel-mixed");
    let mut node = start_server(
        "sen-N",
        &s.sentinel_urls().join(","),
        &key,
        &["--sentinel", MASTER_NAME],
    )
    .await;
    let opts = ClusterOptions::sentinel(s.sentinel_urls(), MASTER_NAME)
        .key(&key)
        .connect_timeout(Duration::from_secs(1))
        .requests_timeout(Duration::from_secs(5));
    let rust = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    let mut n1 = start_client("sen-n1", &node.url(), "/", json!([]), &[]).await;
    let mut c = client(&rust[1], "/", Parser::Json, &[], T).await;
    all_together(&mut node, &mut n1, &rust, &mut c, "before", T).await;

    let old = s.master_port();
    let switch = s.on_switch().await;
    if kill {
        s.data_nodes()[0].kill();
    } else {
        let out = tokio::task::block_in_place(|| s.failover());
        assert!(out.contains("OK"), "SENTINEL FAILOVER: {out:?}");
    }
    tokio::time::timeout(Duration::from_secs(30), switch)
        .await
        .expect("+switch-master")
        .unwrap();
    assert_ne!(s.master_port(), old);
    // Well before a demoted master would drop its clients (~10 s after the switch).
    all_together(
        &mut node,
        &mut n1,
        &rust,
        &mut c,
        "after",
        Duration::from_secs(4),
    )
    .await;
    common::cluster::shutdown_all(vec![n1, node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_rust_servers_follow_a_manual_failover_together() {
    mixed_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_rust_servers_follow_a_killed_master_together() {
    mixed_failover(true).await;
}
