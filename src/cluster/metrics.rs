//! Feature `metrics`: [`Cluster::stats`](crate::Cluster::stats) and the connection state
//! through the [`metrics`] facade, so any exporter (Prometheus, StatsD, …) shows them.
//!
//! A task of the cluster handle records, every second and once more on close:
//!
//! * counters `socketio_cluster_<field>_total` for every counter of
//!   [`ClusterStats`](crate::ClusterStats) (`published`, `publish_failed`,
//!   `volatile_dropped`, `received`, `malformed`, `delivery_failed`, `reconnects`,
//!   `replies_dropped`, `under_delivered`, `refused`, `master_switches`,
//!   `stream_missed`, `stream_held`, `named_expired`, `named_dropped`), as absolute values;
//! * gauges `socketio_cluster_connected` (1 when the subscriber connection is up),
//!   `socketio_cluster_pending_requests`, `socketio_cluster_live_peers` (our other
//!   servers heard from), `socketio_cluster_node_stand_ins`.
//!
//! * per namespace (label `namespace`): gauges `socketio_cluster_servers` (the servers
//!   of the namespace, as `server_count` says) and `socketio_cluster_local_sockets`
//!   (this server's sockets there).
//!
//! Labels: `key` (the channel prefix: one cluster), `transport` (`redis`,
//! `redis-cluster`, `sentinel`, `in-process`) and `protocol` (`classic`, `sharded`,
//! `streams`). The counters are those of one cluster handle, over all its namespaces.

use super::Cluster;
use crate::options::Protocol;
use std::time::Duration;

/// How often the figures are recorded.
pub(super) const EVERY: Duration = Duration::from_secs(1);

/// The labels of `cluster`'s figures.
fn labels(cluster: &Cluster) -> Vec<(&'static str, String)> {
    let c = cluster.config();
    let transport = if c.sentinel().is_some() {
        "sentinel"
    } else if c.is_redis_cluster() {
        "redis-cluster"
    } else if c.is_in_process() {
        "in-process"
    } else {
        "redis"
    };
    let protocol = match c.protocol() {
        Protocol::Classic => "classic",
        Protocol::Sharded(_) => "sharded",
        Protocol::Streams => "streams",
    };
    vec![
        ("key", c.key().to_owned()),
        ("transport", transport.to_owned()),
        ("protocol", protocol.to_owned()),
    ]
}

/// Records `cluster`'s figures once.
pub(super) fn record(cluster: &Cluster) {
    let labels = labels(cluster);
    let s = cluster.stats();
    let counters = [
        ("socketio_cluster_published_total", s.published),
        ("socketio_cluster_publish_failed_total", s.publish_failed),
        (
            "socketio_cluster_volatile_dropped_total",
            s.volatile_dropped,
        ),
        ("socketio_cluster_received_total", s.received),
        ("socketio_cluster_malformed_total", s.malformed),
        ("socketio_cluster_delivery_failed_total", s.delivery_failed),
        ("socketio_cluster_reconnects_total", s.reconnects),
        ("socketio_cluster_replies_dropped_total", s.replies_dropped),
        ("socketio_cluster_under_delivered_total", s.under_delivered),
        ("socketio_cluster_refused_total", s.refused),
        ("socketio_cluster_master_switches_total", s.master_switches),
        ("socketio_cluster_stream_missed_total", s.stream_missed),
        ("socketio_cluster_stream_held_total", s.stream_held),
        ("socketio_cluster_named_expired_total", s.named_expired),
        ("socketio_cluster_named_dropped_total", s.named_dropped),
    ];
    for (name, v) in counters {
        metrics::counter!(name, &labels).absolute(v);
    }
    let gauges = [
        (
            "socketio_cluster_connected",
            if cluster.is_connected() { 1.0 } else { 0.0 },
        ),
        (
            "socketio_cluster_pending_requests",
            cluster.pending_requests() as f64,
        ),
        (
            "socketio_cluster_live_peers",
            cluster.live_peers().len() as f64,
        ),
        ("socketio_cluster_node_stand_ins", s.node_stand_ins as f64),
    ];
    for (name, v) in gauges {
        metrics::gauge!(name, &labels).set(v);
    }
}

/// Records the per-namespace gauges of `cluster` (one `server_count` per namespace).
pub(super) async fn record_namespaces(cluster: &Cluster) {
    let labels = labels(cluster);
    let router = cluster.router();
    for nsp in router.namespace_names() {
        let Some(ops) = router.namespace(&nsp) else {
            continue;
        };
        let mut l = labels.clone();
        l.push(("namespace", nsp.clone()));
        let local = ops
            .local_ids(&crate::wire::request::Selector::new(Vec::new(), Vec::new()))
            .len();
        metrics::gauge!("socketio_cluster_local_sockets", &l).set(local as f64);
        if let Ok(n) = cluster.of(&nsp).server_count().await {
            metrics::gauge!("socketio_cluster_servers", &l).set(n as f64);
        }
    }
}
