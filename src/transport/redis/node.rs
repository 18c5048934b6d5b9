//! Which node the two connections use: opening the command connection, moving to
//! another node of a Redis Cluster when one stays unreachable, and following the master
//! that Redis Sentinel names.

use super::{BACKOFF_MAX, BACKOFF_MIN, Node, Shared, lock};
use crate::error::Error;
use crate::stats::Counters;
use crate::transport::BoxFuture;
use crate::transport::sentinel::Follow;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// The command connection of the publisher, to the node of `client`.
pub(super) async fn command_connection(
    client: &redis::Client,
    url: &str,
    connect_timeout: Duration,
) -> Result<ConnectionManager, Error> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(connect_timeout))
        .set_number_of_retries(2)
        .set_min_delay(BACKOFF_MIN)
        .set_max_delay(BACKOFF_MAX);
    match tokio::time::timeout(
        connect_timeout,
        ConnectionManager::new_with_config(client.clone(), config),
    )
    .await
    {
        Ok(res) => Ok(res?),
        Err(_) => Err(Error::ConnectTimeout {
            url: url.to_owned(),
            timeout: connect_timeout,
        }),
    }
}

/// Consecutive failed reconnects to one node before moving to another (when there are
/// others): a restarting Redis answers again within these ~50 ms, a dead node does not.
pub(super) const ATTEMPTS_PER_NODE: u32 = 3;

impl Shared {
    /// The node in use now: its client, URL and generation.
    pub(super) fn node(&self) -> (redis::Client, String, u64) {
        let n = lock(&self.node);
        (n.client.clone(), n.url.clone(), n.generation)
    }

    pub(super) fn url(&self) -> String {
        lock(&self.node).url.clone()
    }

    /// The node of `generation` stays unreachable: moves both connections to the next
    /// fallback node (once per generation, whichever connection notices first).
    pub(super) fn move_on(&self, generation: u64) {
        let mut fallbacks = lock(&self.fallbacks);
        let (list, next) = &mut *fallbacks;
        let mut node = lock(&self.node);
        if node.generation != generation || list.is_empty() {
            return;
        }
        for _ in 0..list.len() {
            let (client, url) = &list[*next % list.len()];
            *next = (*next + 1) % list.len();
            if *url != node.url {
                tracing::warn!(from = %node.url, to = %url, "redis node unreachable; moving to another node of the cluster");
                self.switch(&mut node, client.clone(), url.clone());
                return;
            }
        }
    }

    /// The publisher moved: `PUBSUB NUMSUB` follows (unless closed).
    pub(super) fn set_command_connection(&self, conn: &ConnectionManager) {
        let mut cmd = lock(&self.cmd);
        if cmd.is_some() {
            *cmd = Some(conn.clone());
        }
    }

    /// Moves both connections to `client` at `url` (a new generation, sent to them).
    fn switch(&self, node: &mut Node, client: redis::Client, url: String) {
        node.client = client;
        node.url = url;
        node.generation += 1;
        self.moved.send_replace(node.generation);
    }

    /// With Sentinel: asks the sentinels for the master (checked with `ROLE`) and moves
    /// to it when it is not the node in use. Called before every reconnect attempt of
    /// either connection, and by the watcher. Without Sentinel, nothing.
    pub(super) async fn follow_master(&self) {
        let Some(sentinel) = &self.sentinel else {
            return;
        };
        match sentinel.master().await {
            Ok((client, url)) => {
                let mut node = lock(&self.node);
                if node.url != url {
                    tracing::warn!(from = %node.url, to = %url, "the sentinels name another master; moving to it");
                    Counters::add(&self.counters.master_switches, 1);
                    self.switch(&mut node, client, url);
                }
            }
            Err(e) => tracing::debug!(error = %e, "no master from the sentinels (yet)"),
        }
    }
}

impl Follow for Shared {
    fn follow(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.follow_master())
    }

    fn current(&self) -> String {
        self.url()
    }
}
