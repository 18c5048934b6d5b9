//! A garbage flood (`test-support/src/flood.rs`: 3,000 malformed messages on each of the 7
//! channels two servers listen to, about 137 MB, pipelined) while valid broadcasts flow
//! from A to a client on B, on a Redis with its default output-buffer limits: every valid
//! broadcast arrives, the garbage is counted, neither subscriber is cut off, and the
//! process' memory stays bounded. (Before the subscriber screen, Redis cut both
//! subscribers off and resident memory grew by about 100 MB.)

use socketioxide_cluster_test_support as common;

use common::cluster::{Node, Serve, node_serving};
use common::flood::{self, FloodSpec};
use common::{Client, Parser, RedisServer, arg};
use serde_json::json;
use socketioxide_cluster::ClusterOptions;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
/// Valid broadcasts, one every millisecond or so: they overlap the flood.
const VALID: usize = 1500;
/// Resident memory the flood may add, at its peak. Measured here: about 5 MB (the bench:
/// +6 MB for a 481 MB flood); before the screen, see the commit that added this test. The
/// bound leaves room for a loaded CI machine.
const PEAK_GROWTH: u64 = 40 * 1024 * 1024;

/// Resident set size of this test process (`VmRSS`, bytes).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0)
        * 1024
}

async fn node(redis: &RedisServer) -> Node {
    let opts = ClusterOptions::new(redis.url())
        .key("flood")
        .connect_timeout(Duration::from_secs(5));
    node_serving(
        opts,
        Parser::Json,
        Serve {
            max_buffer_size: Some(100_000),
            ..Serve::ROOT
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_flood_loses_no_valid_broadcast_and_stays_bounded() {
    common::init_tracing();
    let redis = RedisServer::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let mut c = Client::connect(b.addr, "/", Parser::Json).await;
    assert_eq!(
        c.emit_with_ack("join", vec![json!("r")], T).await,
        vec![arg(json!("ok"))]
    );
    common::cluster::until_delivered(&a.io, &mut c, T).await;
    let (uid_a, uid_b) = (a.cluster.uid().to_string(), b.cluster.uid().to_string());
    let channels = flood::channels("flood", "r", &[&uid_a, &uid_b]);
    let spec = FloodSpec {
        per_channel: 3000,
        ..FloodSpec::issue()
    };
    let (before_a, before_b) = (a.cluster.stats(), b.cluster.stats());

    // Peak RSS while the flood and the valid broadcasts run.
    let rss_before = rss();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (peak, stop) = (peak.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let flood = std::thread::spawn({
        let (url, channels, spec) = (redis.url(), channels.clone(), spec.clone());
        move || flood::publish(&url, &channels, &spec)
    });
    for i in 0..VALID {
        a.io.to("r").emit("valid", &i).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let sent = tokio::task::spawn_blocking(move || flood.join().unwrap())
        .await
        .unwrap();
    eprintln!(
        "flood: {} messages, {:.0} MB in {:?}",
        sent.messages,
        sent.bytes as f64 / 1e6,
        sent.took
    );
    assert_eq!(sent.messages, 7 * spec.per_channel);

    // Every valid broadcast, in order.
    assert_eq!(c.count_events_in_order("valid", VALID, T).await, VALID);
    // All the garbage on B's six channels counted (B does not listen to A's own response
    // channel).
    let want = 6 * spec.per_channel as u64;
    let started = tokio::time::Instant::now();
    while b.cluster.stats().malformed - before_b.malformed < want {
        assert!(
            started.elapsed() < T,
            "B counted {} of {want} malformed: {:?}",
            b.cluster.stats().malformed - before_b.malformed,
            b.cluster.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let (sa, sb) = (a.cluster.stats(), b.cluster.stats());
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "RSS before {:.1} MB, peak {:.1} MB; B {sb:?}; A {sa:?}",
        rss_before as f64 / 1e6,
        peak as f64 / 1e6
    );
    // Neither subscriber was cut off by Redis.
    assert_eq!(sb.reconnects, before_b.reconnects, "B was cut off: {sb:?}");
    assert_eq!(sa.reconnects, before_a.reconnects, "A was cut off: {sa:?}");
    assert!(
        peak.saturating_sub(rss_before) < PEAK_GROWTH,
        "RSS grew by {:.1} MB during the flood",
        (peak - rss_before) as f64 / 1e6
    );
}
