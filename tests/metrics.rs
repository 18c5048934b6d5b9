//! Feature `metrics` (on for every test build, through the test harness): the counters
//! of `stats()` and the connection state reach a `metrics` recorder, with the documented
//! names and labels.

use socketioxide_cluster_test_support as common;

use common::Parser;
use common::cluster::{Serve, client, nodes_serving, shared_opts};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_connection_state_reach_the_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    let key = common::unique_key("metrics");
    let servers = nodes_serving(2, &shared_opts(&key), Parser::Json, Serve::ROOT).await;
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    servers[0].io.emit("x", &()).await.unwrap();
    c.recv_event_named("x", T).await;
    let published = servers[0].cluster.stats().published;
    assert!(published >= 1);
    // Recorded every second: wait (bounded) for a snapshot with the figure.
    let deadline = Instant::now() + T;
    loop {
        let snap = snapshotter.snapshot().into_vec();
        let ours: Vec<_> = snap
            .iter()
            .filter(|(k, ..)| {
                k.key()
                    .labels()
                    .any(|l| l.key() == "key" && l.value() == key)
            })
            .collect();
        let find = |name: &'static str| ours.iter().filter(move |(k, ..)| k.key().name() == name);
        let counted = find("socketio_cluster_published_total").any(|(k, _, _, v)| {
            k.key()
                .labels()
                .any(|l| l.key() == "transport" && l.value() == "redis")
                && k.key()
                    .labels()
                    .any(|l| l.key() == "protocol" && l.value() == "classic")
                && matches!(v, DebugValue::Counter(n) if *n >= published)
        });
        let connected = find("socketio_cluster_connected")
            .any(|(.., v)| matches!(v, DebugValue::Gauge(g) if g.into_inner() == 1.0));
        let servers = find("socketio_cluster_servers").any(|(k, _, _, v)| {
            k.key()
                .labels()
                .any(|l| l.key() == "namespace" && l.value() == "/")
                && matches!(v, DebugValue::Gauge(g) if g.into_inner() == 2.0)
        });
        let sockets = find("socketio_cluster_local_sockets")
            .any(|(.., v)| matches!(v, DebugValue::Gauge(g) if g.into_inner() == 1.0));
        if counted && connected && servers && sockets {
            break;
        }
        assert!(Instant::now() < deadline, "not recorded: {snap:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in &servers {
        s.cluster.close().await;
    }
    // On close: recorded once more, disconnected.
    let snap = snapshotter.snapshot().into_vec();
    assert!(snap.iter().any(
        |(k, _, _, v)| k.key().name() == "socketio_cluster_connected"
            && matches!(v, DebugValue::Gauge(g) if g.into_inner() == 0.0)
    ));
}
