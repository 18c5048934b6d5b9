//! Which master owns what: reading `CLUSTER SLOTS`, the owner of a channel, the masters
//! known down, and `PUBSUB SHARDNUMSUB` asked of the owners.

use super::slots::{self, Addr, Topology};
use super::{Inner, TOPOLOGY_FOR, lock};
use crate::error::Error;
use std::collections::HashMap;
use std::time::Instant;

impl Inner {
    /// Reads `CLUSTER SLOTS` from a known master or a seed.
    pub(super) async fn refresh_topology(&self) -> Result<Topology, Error> {
        let known = lock(&self.topology).1.masters();
        let down = lock(&self.down).clone();
        // Masters that answer first: a dead one would cost a connect timeout.
        let (dead, alive): (Vec<&Addr>, Vec<&Addr>) = known.iter().partition(|a| down.contains(*a));
        let mut last = Error::Disconnected;
        for addr in alive.into_iter().chain(&self.seeds).chain(dead) {
            let res = async {
                let mut conn = self.command(addr).await?;
                let reply = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<redis::Value>(&mut conn)
                    .await;
                match reply {
                    Ok(reply) => Topology::from_cluster_slots(&reply, &addr.0)
                        .ok_or_else(|| Error::Decode("unreadable CLUSTER SLOTS reply".into())),
                    // A standalone Redis 7: one node owns every channel.
                    Err(e) if e.to_string().contains("cluster support disabled") => {
                        Ok(Topology::whole(addr.clone()))
                    }
                    Err(e) => Err(e.into()),
                }
            };
            match tokio::time::timeout(self.connect_timeout, res).await {
                Ok(Ok(t)) => {
                    *lock(&self.topology) = (Some(Instant::now()), t.clone());
                    return Ok(t);
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = Error::Disconnected,
            }
            lock(&self.commands).remove(addr);
        }
        Err(last)
    }

    pub(super) async fn topology(&self, fresh: bool) -> Result<Topology, Error> {
        {
            let t = lock(&self.topology);
            if !fresh && t.0.is_some_and(|at| at.elapsed() < TOPOLOGY_FOR) {
                return Ok(t.1.clone());
            }
        }
        self.refresh_topology().await
    }

    /// Whether the master owning `channel` (as last read) is known down.
    pub(super) fn owner_is_down(&self, channel: &str) -> bool {
        let down = lock(&self.down);
        if down.is_empty() {
            return false;
        }
        let topology = lock(&self.topology);
        topology
            .1
            .owner(slots::slot(channel))
            .is_some_and(|owner| down.contains(owner))
    }

    /// `PUBSUB SHARDNUMSUB` of `channels`, each asked of the master that owns it. Node
    /// sums the answers of every master; only the owner has subscribers (we subscribe on
    /// masters), so the counts are the same, for one round trip. A channel whose owner
    /// is known down fails at once.
    pub(super) async fn shard_num_sub(&self, channels: &[String]) -> Result<Vec<usize>, Error> {
        let topology = self.topology(false).await?;
        let mut by_owner: HashMap<Addr, Vec<usize>> = HashMap::new();
        for (i, ch) in channels.iter().enumerate() {
            let owner = topology.owner(slots::slot(ch)).ok_or(Error::Disconnected)?;
            by_owner.entry(owner.clone()).or_default().push(i);
        }
        let mut sums = vec![0; channels.len()];
        for (addr, idx) in by_owner {
            if lock(&self.down).contains(&addr) {
                return Err(Error::Disconnected);
            }
            let mut conn = self.command(&addr).await?;
            let mut cmd = redis::cmd("PUBSUB");
            cmd.arg("SHARDNUMSUB");
            for &i in &idx {
                cmd.arg(&channels[i]);
            }
            let counts: Vec<(String, usize)> = cmd.query_async(&mut conn).await?;
            for i in idx {
                sums[i] = counts
                    .iter()
                    .find(|(n, _)| *n == channels[i])
                    .map_or(0, |(_, n)| *n);
            }
        }
        Ok(sums)
    }
}
