//! Keeping the wanted channels subscribed on their owners: the subscriber connections'
//! pushes, the reconciliation, and the task that runs it.

use super::slots::{Addr, slot};
use super::{CHECK_DEGRADED, CHECK_EVERY, Inner, SubConn, lock};
use crate::error::Error;
use crate::stats::Counters;
use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::watch;

impl Inner {
    /// What a subscriber connection's reader hands over.
    pub(super) fn on_push(self: &Arc<Self>, addr: &Addr, alive: &AtomicBool, push: PushInfo) {
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
            _ => None,
        };
        match push.kind {
            PushKind::SMessage => {
                if let [ch, redis::Value::BulkString(payload)] = &push.data[..]
                    && let Some(ch) = text(ch)
                {
                    self.sink.deliver(&ch, None, payload);
                }
            }
            // Unsolicited on migration or demotion (or ours, confirmed): the channel
            // is no longer subscribed there.
            PushKind::SUnsubscribe => {
                if let Some(ch) = push.data.first().and_then(text)
                    && let Some(s) = lock(&self.subscribers).get_mut(addr)
                    && s.channels.remove(&ch)
                    && lock(&self.wanted).contains(&ch)
                {
                    self.subscribed.store(false, Ordering::Release);
                    self.wake.notify_one();
                }
            }
            PushKind::Disconnection => {
                alive.store(false, Ordering::Release);
                lock(&self.down).insert(addr.clone());
                self.subscribed.store(false, Ordering::Release);
                Counters::add(&self.counters.reconnects, 1);
                self.sink.connection_lost();
                self.wake.notify_one();
            }
            _ => {}
        }
    }

    /// Every wanted channel subscribed on its owner, and on nobody else; whether every
    /// slot has an owner.
    pub(super) async fn reconcile(self: &Arc<Self>, fresh: bool) -> Result<bool, Error> {
        let _one_at_a_time = self.reconciling.lock().await;
        let topology = self.topology(fresh).await?;
        lock(&self.subscribers).retain(|_, s| s.alive.load(Ordering::Acquire));
        self.check_down(&topology).await;
        let wanted: Vec<String> = lock(&self.wanted).iter().cloned().collect();
        let mut missing = 0;
        for ch in wanted {
            let Some(owner) = topology.owner(slot(&ch)).cloned() else {
                missing += 1;
                continue;
            };
            let elsewhere: Vec<(Addr, MultiplexedConnection)> = {
                let mut subs = lock(&self.subscribers);
                if subs.get(&owner).is_some_and(|s| s.channels.contains(&ch)) {
                    continue;
                }
                subs.iter_mut()
                    .filter_map(|(a, s)| {
                        (*a != owner && s.channels.remove(&ch)).then(|| (a.clone(), s.conn.clone()))
                    })
                    .collect()
            };
            for (_, mut conn) in elsewhere {
                // Best effort: the old owner may be gone, or already dropped it.
                let _ = redis::cmd("SUNSUBSCRIBE")
                    .arg(&ch)
                    .query_async::<()>(&mut conn)
                    .await;
            }
            if let Err(e) = self.subscribe_on(&owner, &ch).await {
                tracing::debug!(channel = %ch, owner = ?owner, error = %e, "SSUBSCRIBE failed; retried");
                missing += 1;
            }
        }
        self.subscribed.store(missing == 0, Ordering::Release);
        if missing > 0 {
            return Err(Error::Disconnected);
        }
        // Some slots without a master (a failover under way), or a master still down:
        // look again soon.
        Ok(topology.is_complete() && lock(&self.down).is_empty())
    }

    /// Forgets the masters known down that no longer own slots, or that answer again.
    async fn check_down(&self, topology: &super::slots::Topology) {
        let masters = topology.masters();
        let down: Vec<Addr> = lock(&self.down).iter().cloned().collect();
        for addr in down {
            let back = masters.contains(&addr) && {
                let ping = async {
                    let mut conn = self.command(&addr).await?;
                    redis::cmd("PING").query_async::<()>(&mut conn).await?;
                    Ok::<_, Error>(())
                };
                let bound = self
                    .connect_timeout
                    .min(std::time::Duration::from_millis(500));
                matches!(tokio::time::timeout(bound, ping).await, Ok(Ok(())))
            };
            if back || !masters.contains(&addr) {
                lock(&self.down).remove(&addr);
            } else {
                lock(&self.commands).remove(&addr);
            }
        }
    }

    /// One wanted channel subscribed on its owner (per room, so without going over
    /// every wanted channel as [`reconcile`](Self::reconcile) does); on failure the
    /// reconciler retries it.
    pub(super) async fn subscribe_one(self: &Arc<Self>, ch: &str) -> Result<(), Error> {
        let topology = self.topology(false).await?;
        let owner = topology
            .owner(slot(ch))
            .cloned()
            .ok_or(Error::Disconnected)?;
        if lock(&self.subscribers)
            .get(&owner)
            .is_some_and(|s| s.channels.contains(ch))
        {
            return Ok(());
        }
        let res = self.subscribe_on(&owner, ch).await;
        if res.is_err() {
            self.wake.notify_one();
        }
        res
    }

    async fn subscribe_on(self: &Arc<Self>, owner: &Addr, ch: &str) -> Result<(), Error> {
        let mut conn = self.subscriber_conn(owner).await?;
        redis::cmd("SSUBSCRIBE")
            .arg(ch)
            .query_async::<()>(&mut conn)
            .await?;
        if let Some(s) = lock(&self.subscribers).get_mut(owner) {
            s.channels.insert(ch.to_owned());
        }
        Ok(())
    }

    /// The subscriber connection to `owner`, opened once (concurrent subscriptions wait
    /// for the same one: two would each count as a subscriber).
    async fn subscriber_conn(
        self: &Arc<Self>,
        owner: &Addr,
    ) -> Result<MultiplexedConnection, Error> {
        if let Some(c) = lock(&self.subscribers).get(owner).map(|s| s.conn.clone()) {
            return Ok(c);
        }
        let _one_at_a_time = self.opening.lock().await;
        let existing = lock(&self.subscribers).get(owner).map(|s| s.conn.clone());
        let conn = match existing {
            Some(c) => c,
            None => {
                let alive = Arc::new(AtomicBool::new(true));
                let weak = Arc::downgrade(self);
                let (addr, flag) = (owner.clone(), alive.clone());
                let sender = move |push: PushInfo| -> Result<(), std::convert::Infallible> {
                    if let Some(inner) = weak.upgrade() {
                        inner.on_push(&addr, &flag, push);
                    }
                    Ok(())
                };
                let config = redis::AsyncConnectionConfig::new().set_push_sender(sender);
                let conn = self.open(owner, config, true).await?;
                lock(&self.down).remove(owner);
                lock(&self.subscribers).insert(
                    owner.clone(),
                    SubConn {
                        conn: conn.clone(),
                        channels: HashSet::new(),
                        alive,
                    },
                );
                conn
            }
        };
        Ok(conn)
    }
}

pub(super) async fn run_reconciler(inner: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut degraded = false;
    loop {
        let wait = if degraded {
            CHECK_DEGRADED
        } else {
            CHECK_EVERY
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let woken = tokio::select! {
            _ = strong.wake.notified() => true,
            _ = tokio::time::sleep(wait) => false,
            _ = shutdown.changed() => return,
        };
        let res = strong.reconcile(true).await;
        degraded = !matches!(res, Ok(true));
        if woken && res.is_ok() {
            tracing::info!("sharded subscriptions restored");
        }
    }
}
