//! The classic protocol over a Redis Cluster (`ClusterOptions::redis_cluster`).
//!
//! A classic `PUBLISH` in a Redis Cluster reaches the subscribers of every node (the
//! cluster bus copies it), so the messages and channels are today's, carried by the
//! standalone transport connected to one node: the first seed that answers. What
//! differs is counting: `PUBSUB NUMSUB` only counts the subscribers of the node asked,
//! so the server count of a request is summed over every node of the cluster (masters
//! and replicas: a subscriber may sit on either), as Node's adapter does with a cluster
//! client. The node list comes from `CLUSTER NODES`, cached for [`TOPOLOGY_FOR`].
//!
//! When the node in use stays unreachable (three reconnects in a row fail, about 50 ms),
//! both connections move to another node of the list, and the subscriptions with them.
//!
//! Not done yet (issue 12): the sharded protocol.

use super::connect::{RedisEndpoint, host_port, info_at, open_client};
use super::redis::RedisTransport;
use super::{BoxFuture, MessageSink, Mode, Sub, Transport, TryPublish};
use crate::error::Error;
use crate::stats::Counters;
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a node list read from `CLUSTER NODES` is reused.
const TOPOLOGY_FOR: Duration = Duration::from_secs(1);

/// The classic protocol over a Redis Cluster.
pub(crate) struct ClassicCluster {
    inner: RedisTransport,
    /// The seed the connections use (topology is read from it).
    seed: redis::Client,
    connect_timeout: Duration,
    nodes: Mutex<Nodes>,
}

#[derive(Default)]
struct Nodes {
    /// `host:port` of every node, and when it was read.
    list: Option<(Instant, Vec<(String, u16)>)>,
    /// One command connection per node, opened when first needed.
    conns: HashMap<(String, u16), MultiplexedConnection>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClassicCluster {
    /// Connects through the first of the seeds (`first`, then `more`, with `first`'s
    /// TLS settings) that answers; the error of the last one when none does.
    pub(crate) async fn connect(
        first: &RedisEndpoint,
        more: &[String],
        connect_timeout: Duration,
        queue_capacity: usize,
        sink: Arc<dyn MessageSink>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        let seeds = std::iter::once(first.clone()).chain(more.iter().map(|url| RedisEndpoint {
            url: url.clone(),
            tls_root_cert: first.tls_root_cert.clone(),
        }));
        let mut last = None;
        for seed in seeds {
            let inner = RedisTransport::connect(
                &seed,
                connect_timeout,
                queue_capacity,
                sink.clone(),
                counters.clone(),
            )
            .await;
            match inner {
                Ok(inner) => {
                    let client = open_client(&seed)?;
                    let this = Self {
                        inner,
                        seed: client,
                        connect_timeout,
                        nodes: Mutex::default(),
                    };
                    // The other nodes to move to, known from the start.
                    this.node_list().await?;
                    return Ok(this);
                }
                Err(e) => {
                    tracing::debug!(seed = %crate::wire::redact_url(&seed.url), error = %e, "Redis Cluster seed did not answer");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::config("no Redis Cluster seed")))
    }

    /// A client for node `host:port`, with the seed's credentials and TLS settings.
    fn client_for(&self, host: &str, port: u16) -> Result<redis::Client, Error> {
        let info = info_at(self.seed.get_connection_info(), host, port);
        Ok(redis::Client::open(info)?)
    }

    async fn conn(&self, host: &str, port: u16) -> Result<MultiplexedConnection, Error> {
        let key = (host.to_owned(), port);
        if let Some(c) = lock(&self.nodes).conns.get(&key) {
            return Ok(c.clone());
        }
        let client = self.client_for(host, port)?;
        let conn = tokio::time::timeout(
            self.connect_timeout,
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| Error::ConnectTimeout {
            url: format!("{host}:{port}"),
            timeout: self.connect_timeout,
        })??;
        lock(&self.nodes).conns.insert(key, conn.clone());
        Ok(conn)
    }

    /// Every node of the cluster (`CLUSTER NODES`, cached), asked of the seed, or of
    /// the nodes known before when the seed does not answer. The connections' fallback
    /// nodes are updated from it.
    async fn node_list(&self) -> Result<Vec<(String, u16)>, Error> {
        let known = match &lock(&self.nodes).list {
            Some((at, list)) if at.elapsed() < TOPOLOGY_FOR => return Ok(list.clone()),
            Some((_, list)) => list.clone(),
            None => Vec::new(),
        };
        let seed = host_port(self.seed.get_connection_info().addr())?;
        let mut last = None;
        for (host, port) in std::iter::once(seed).chain(known) {
            let ask = async {
                let mut conn = self.conn(&host, port).await?;
                let text: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await?;
                Ok::<_, Error>(parse_cluster_nodes(&text, &host))
            };
            let failed = match tokio::time::timeout(self.connect_timeout, ask).await {
                Ok(Ok(list)) => {
                    let fallbacks = list
                        .iter()
                        .filter_map(|(h, p)| {
                            Some((self.client_for(h, *p).ok()?, format!("{h}:{p}")))
                        })
                        .collect();
                    self.inner.set_fallbacks(fallbacks);
                    lock(&self.nodes).list = Some((Instant::now(), list.clone()));
                    return Ok(list);
                }
                Ok(Err(e)) => e,
                Err(_) => Error::Disconnected,
            };
            lock(&self.nodes).conns.remove(&(host.clone(), port));
            last = Some(failed);
        }
        Err(last.unwrap_or(Error::Disconnected))
    }

    /// `PUBSUB NUMSUB` of `channels`, summed over every node. A node that cannot be
    /// asked counts nothing: its subscribers lost their connection with it.
    async fn summed_num_sub(&self, channels: &[String]) -> Result<Vec<usize>, Error> {
        let nodes = self.node_list().await?;
        let asks = nodes.iter().map(|(host, port)| async move {
            let mut conn = self.conn(host, *port).await?;
            let mut cmd = redis::cmd("PUBSUB");
            cmd.arg("NUMSUB").arg(channels);
            let ask = cmd.query_async::<Vec<(String, usize)>>(&mut conn);
            match tokio::time::timeout(self.connect_timeout, ask).await {
                Ok(Ok(counts)) => Ok(counts),
                Ok(Err(e)) => Err(Error::from(e)),
                Err(_) => Err(Error::Disconnected),
            }
        });
        let mut sums = vec![0; channels.len()];
        for (res, (host, port)) in futures_util::future::join_all(asks)
            .await
            .into_iter()
            .zip(&nodes)
        {
            match res {
                Ok(counts) => {
                    for (i, c) in channels.iter().enumerate() {
                        sums[i] += counts.iter().find(|(n, _)| n == c).map_or(0, |(_, n)| *n);
                    }
                }
                Err(e) => {
                    lock(&self.nodes).conns.remove(&(host.clone(), *port));
                    tracing::debug!(node = %format!("{host}:{port}"), error = %e, "NUMSUB of a cluster node failed; not counted");
                }
            }
        }
        Ok(sums)
    }
}

/// `host:port` of every connected node in `CLUSTER NODES` output (an empty host, as a
/// node reports itself before it knows its address, is the seed's host).
fn parse_cluster_nodes(text: &str, seed_host: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(_id), Some(addr), Some(flags)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if flags
            .split(',')
            .any(|fl| matches!(fl, "fail" | "noaddr" | "handshake"))
        {
            continue;
        }
        // `ip:port@cport[,hostname]`
        let hostport = addr.split('@').next().unwrap_or_default();
        let Some((host, port)) = hostport.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let host = if host.is_empty() { seed_host } else { host };
        out.push((host.to_owned(), port));
    }
    out
}

impl Transport for ClassicCluster {
    fn publish(
        &self,
        channel: String,
        payload: Bytes,
        mode: Mode,
        expect: usize,
    ) -> BoxFuture<'_, Result<Option<usize>, Error>> {
        // A PUBLISH in a cluster answers how many subscribers of the node it was sent to
        // got it, not of the cluster: nothing to compare with the live servers.
        let _ = expect;
        Box::pin(async move {
            if mode != Mode::Counted {
                self.inner.publish(channel, payload, mode, 0).await?;
                return Ok(None);
            }
            // Node compat: the count first (Node asks it before publishing), then the
            // request itself, confirmed.
            let n = self.summed_num_sub(std::slice::from_ref(&channel)).await?[0];
            self.inner
                .publish(channel, payload, Mode::Confirmed, 0)
                .await?;
            Ok(Some(n))
        })
    }

    fn try_publish(&self, channel: String, payload: Bytes) -> TryPublish {
        self.inner.try_publish(channel, payload)
    }

    fn subscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.subscribe(sub)
    }

    fn unsubscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.unsubscribe(sub)
    }

    fn num_sub(&self, channels: Vec<String>) -> BoxFuture<'_, Result<Vec<usize>, Error>> {
        Box::pin(async move { self.summed_num_sub(&channels).await })
    }

    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    fn is_publishing(&self) -> bool {
        self.inner.is_publishing()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        lock(&self.nodes).conns.clear();
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lists_every_reachable_node() {
        let text = "\
07c3 127.0.0.1:30004@31004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@31002,node-b master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected 10923-16383
e7d1 :30001@31001 myself,master - 0 0 1 connected 0-5460
bad line
";
        assert_eq!(
            parse_cluster_nodes(text, "10.0.0.1"),
            vec![
                ("127.0.0.1".to_owned(), 30004),
                ("127.0.0.1".to_owned(), 30002),
                ("10.0.0.1".to_owned(), 30001),
            ]
        );
    }
}
