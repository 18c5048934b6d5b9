//! Sharded pub/sub over a Redis Cluster (`SSUBSCRIBE`/`SPUBLISH`): every channel lives
//! on the master that owns its key slot.
//!
//! * **Subscriptions**: one RESP3 subscriber connection per master, whose pushes are
//!   handed to the sink from the connection's own reader (no queue in between). A
//!   *reconciler* keeps the wanted channels subscribed on their owners: after a
//!   connection loss (a master died: a replica takes over), after an unsolicited
//!   `sunsubscribe` (Redis sends one when a slot migrates or a master is demoted, and
//!   the connection stays open), on `MOVED`, and every 15 s (every second while
//!   something is missing), it reads `CLUSTER SLOTS` and re-issues what is missing. A
//!   channel moved to another master is unsubscribed from the old one, so that it is
//!   never counted twice.
//! * **Publishing**: one task drains a bounded queue, groups what it found by owner,
//!   and sends one pipeline of `SPUBLISH` per master on a command connection of its own
//!   (never the subscriber's: Redis' unsolicited pushes could be taken for replies). A
//!   message refused with `MOVED`/`ASK` or a dropped connection is retried once after
//!   `CLUSTER SLOTS` was read again; then it fails (counted).
//! * **Counting**: `PUBSUB SHARDNUMSUB` summed over the masters, as Node's sharded
//!   adapter does with a node-redis cluster client (only the owner has subscribers).
//!
//! Built ahead of the sharded protocol of the adapter (issue 12), which it will carry.

mod slots;

use super::connect::{RedisEndpoint, open_client};
use super::{BoxFuture, MessageSink, Mode, Sub, Transport, TryPublish};
use crate::error::Error;
use crate::stats::Counters;
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind};
use slots::{Addr, Topology, slot};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How often the reconciler checks the topology when all is well, and when not.
const CHECK_EVERY: Duration = Duration::from_secs(15);
const CHECK_DEGRADED: Duration = Duration::from_secs(1);
/// A topology read is reused for this long by subscribe calls.
const TOPOLOGY_FOR: Duration = Duration::from_millis(200);
/// Most messages sent in one round of pipelines.
const MAX_BATCH: usize = 512;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Outgoing {
    channel: String,
    payload: Bytes,
    done: Option<oneshot::Sender<Result<Option<usize>, Error>>>,
}

/// A subscriber connection to one master and the channels confirmed on it.
struct SubConn {
    conn: MultiplexedConnection,
    channels: HashSet<String>,
    alive: Arc<AtomicBool>,
}

struct Inner {
    /// The seed's connection settings (credentials, TLS), for every node.
    base: redis::ConnectionInfo,
    seeds: Vec<Addr>,
    connect_timeout: Duration,
    topology: Mutex<(Option<Instant>, Topology)>,
    wanted: Mutex<HashSet<String>>,
    subscribers: Mutex<HashMap<Addr, SubConn>>,
    commands: Mutex<HashMap<Addr, MultiplexedConnection>>,
    /// Serializes reconciliations (subscribe calls and the reconciler task).
    reconciling: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    sink: Arc<dyn MessageSink>,
    counters: Arc<Counters>,
    subscribed: AtomicBool,
    closed: AtomicBool,
}

pub(crate) struct ShardedTransport {
    inner: Arc<Inner>,
    queue: mpsc::Sender<Outgoing>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl ShardedTransport {
    /// Connects to the cluster of `seeds` (URLs of any nodes; the first one's
    /// credentials and TLS settings are used for all): reads the topology, then starts
    /// the reconciler and the publisher.
    pub(crate) async fn connect(
        first: &RedisEndpoint,
        more: &[String],
        connect_timeout: Duration,
        queue_capacity: usize,
        sink: Arc<dyn MessageSink>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        let base = open_client(first)
            .map_err(|e| Error::config_from("invalid Redis URL", e))?
            .get_connection_info()
            .clone();
        let mut addrs = Vec::new();
        for url in std::iter::once(&first.url).chain(more) {
            let client = redis::Client::open(url.as_str())
                .map_err(|e| Error::config_from("invalid Redis Cluster seed URL", e))?;
            addrs.push(addr_of(client.get_connection_info().addr())?);
        }
        let inner = Arc::new(Inner {
            base,
            seeds: addrs,
            connect_timeout,
            topology: Mutex::default(),
            wanted: Mutex::default(),
            subscribers: Mutex::default(),
            commands: Mutex::default(),
            reconciling: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            sink,
            counters,
            subscribed: AtomicBool::new(true),
            closed: AtomicBool::new(false),
        });
        inner.refresh_topology().await?;
        let (shutdown, rx_shutdown) = watch::channel(false);
        let (queue, rx) = mpsc::channel(queue_capacity);
        let tasks = vec![
            tokio::spawn(run_reconciler(Arc::downgrade(&inner), rx_shutdown.clone())),
            tokio::spawn(run_publisher(inner.clone(), rx, rx_shutdown)),
        ];
        Ok(Self {
            inner,
            queue,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }
}

fn addr_of(addr: &redis::ConnectionAddr) -> Result<Addr, Error> {
    match addr {
        redis::ConnectionAddr::Tcp(h, p)
        | redis::ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => Ok((h.clone(), *p)),
        _ => Err(Error::config("a Redis Cluster seed must be a TCP address")),
    }
}

impl Inner {
    /// Connection settings for node `addr` (the seed's, another address).
    fn info_for(&self, (host, port): &Addr) -> redis::ConnectionInfo {
        let addr = match self.base.addr().clone() {
            redis::ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => redis::ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure,
                tls_params,
            },
            _ => redis::ConnectionAddr::Tcp(host.clone(), *port),
        };
        self.base.clone().set_addr(addr)
    }

    async fn open(
        &self,
        addr: &Addr,
        config: redis::AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, Error> {
        let client = redis::Client::open(self.info_for(addr))?;
        let config = config
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.connect_timeout));
        Ok(client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    /// The command connection to `addr`, opened when first needed.
    async fn command(&self, addr: &Addr) -> Result<MultiplexedConnection, Error> {
        if let Some(c) = lock(&self.commands).get(addr) {
            return Ok(c.clone());
        }
        let conn = self.open(addr, redis::AsyncConnectionConfig::new()).await?;
        lock(&self.commands).insert(addr.clone(), conn.clone());
        Ok(conn)
    }

    /// Reads `CLUSTER SLOTS` from a known master or a seed.
    async fn refresh_topology(&self) -> Result<Topology, Error> {
        let known = lock(&self.topology).1.masters();
        let mut last = Error::Disconnected;
        for addr in known.iter().chain(&self.seeds) {
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

    async fn topology(&self, fresh: bool) -> Result<Topology, Error> {
        {
            let t = lock(&self.topology);
            if !fresh && t.0.is_some_and(|at| at.elapsed() < TOPOLOGY_FOR) {
                return Ok(t.1.clone());
            }
        }
        self.refresh_topology().await
    }

    /// What a subscriber connection's reader hands over.
    fn on_push(self: &Arc<Self>, addr: &Addr, alive: &AtomicBool, push: PushInfo) {
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
    async fn reconcile(self: &Arc<Self>, fresh: bool) -> Result<bool, Error> {
        let _one_at_a_time = self.reconciling.lock().await;
        let topology = self.topology(fresh).await?;
        lock(&self.subscribers).retain(|_, s| s.alive.load(Ordering::Acquire));
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
        // Some slots without a master (a failover under way): look again soon.
        Ok(topology.is_complete())
    }

    async fn subscribe_on(self: &Arc<Self>, owner: &Addr, ch: &str) -> Result<(), Error> {
        let existing = lock(&self.subscribers).get(owner).map(|s| s.conn.clone());
        let mut conn = match existing {
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
                let settings = self
                    .base
                    .redis_settings()
                    .clone()
                    .set_protocol(redis::ProtocolVersion::RESP3);
                let client =
                    redis::Client::open(self.info_for(owner).set_redis_settings(settings))?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.connect_timeout))
                    .set_push_sender(sender);
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
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
        redis::cmd("SSUBSCRIBE")
            .arg(ch)
            .query_async::<()>(&mut conn)
            .await?;
        if let Some(s) = lock(&self.subscribers).get_mut(owner) {
            s.channels.insert(ch.to_owned());
        }
        Ok(())
    }

    /// `PUBSUB SHARDNUMSUB` of `channels`, summed over the masters.
    async fn shard_num_sub(&self, channels: &[String]) -> Result<Vec<usize>, Error> {
        let masters = self.topology(false).await?.masters();
        let mut sums = vec![0; channels.len()];
        for addr in masters {
            let mut conn = self.command(&addr).await?;
            let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
                .arg("SHARDNUMSUB")
                .arg(channels)
                .query_async(&mut conn)
                .await?;
            for (i, c) in channels.iter().enumerate() {
                sums[i] += counts.iter().find(|(n, _)| n == c).map_or(0, |(_, n)| *n);
            }
        }
        Ok(sums)
    }
}

async fn run_reconciler(inner: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
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

async fn run_publisher(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Outgoing>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
            _ = shutdown.changed() => { rx.close(); rx.recv_many(&mut batch, MAX_BATCH).await }
        };
        if n == 0 {
            return;
        }
        let mut todo: Vec<Outgoing> = std::mem::take(&mut batch);
        for attempt in 0..2 {
            let failed = publish_round(&inner, &mut todo, attempt > 0).await;
            if failed.is_empty() {
                break;
            }
            todo = failed;
            if attempt == 1 {
                Counters::add(&inner.counters.publish_failed, todo.len() as u64);
                for m in todo.drain(..) {
                    if let Some(done) = m.done {
                        let _ = done.send(Err(Error::Disconnected));
                    }
                }
            }
        }
    }
}

/// Sends `todo` grouped by owner; returns what failed (to retry).
async fn publish_round(inner: &Inner, todo: &mut Vec<Outgoing>, fresh: bool) -> Vec<Outgoing> {
    let Ok(topology) = inner.topology(fresh).await else {
        return std::mem::take(todo);
    };
    let mut groups: HashMap<Addr, Vec<Outgoing>> = HashMap::new();
    let mut failed = Vec::new();
    for m in todo.drain(..) {
        match topology.owner(slot(&m.channel)) {
            Some(owner) => groups.entry(owner.clone()).or_default().push(m),
            None => failed.push(m),
        }
    }
    let sends = groups.into_iter().map(|(addr, msgs)| async move {
        let mut pipe = redis::pipe();
        for m in &msgs {
            pipe.cmd("SPUBLISH").arg(&m.channel).arg(&m.payload[..]);
        }
        let res = match inner.command(&addr).await {
            Ok(mut conn) => pipe
                .query_async::<Vec<redis::Value>>(&mut conn)
                .await
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        if res.is_err() {
            lock(&inner.commands).remove(&addr);
        }
        (msgs, res)
    });
    for (msgs, res) in futures_util::future::join_all(sends).await {
        match res {
            Ok(values) if values.len() == msgs.len() => {
                for (m, v) in msgs.into_iter().zip(values) {
                    match v {
                        redis::Value::Int(n) => {
                            Counters::add(&inner.counters.published, 1);
                            if let Some(done) = m.done {
                                let _ = done.send(Ok(usize::try_from(n).ok()));
                            }
                        }
                        // MOVED, ASK, CLUSTERDOWN…: once more after a topology read.
                        _ => failed.push(m),
                    }
                }
            }
            _ => failed.extend(msgs),
        }
    }
    failed
}

impl Transport for ShardedTransport {
    fn publish(
        &self,
        channel: String,
        payload: Bytes,
        mode: Mode,
        _expect: usize,
    ) -> BoxFuture<'_, Result<Option<usize>, Error>> {
        Box::pin(async move {
            if self.inner.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let count = if mode == Mode::Counted {
                Some(
                    self.inner
                        .shard_num_sub(std::slice::from_ref(&channel))
                        .await?[0],
                )
            } else {
                None
            };
            let mut msg = Outgoing {
                channel,
                payload,
                done: None,
            };
            match mode {
                Mode::Volatile => {
                    if self.queue.try_send(msg).is_err() {
                        Counters::add(&self.inner.counters.volatile_dropped, 1);
                    }
                    Ok(None)
                }
                Mode::Queued => {
                    self.queue.send(msg).await.map_err(|_| Error::Closed)?;
                    Ok(None)
                }
                Mode::Confirmed | Mode::Counted => {
                    let (tx, rx) = oneshot::channel();
                    msg.done = Some(tx);
                    self.queue.send(msg).await.map_err(|_| Error::Closed)?;
                    let reached = rx.await.map_err(|_| Error::Closed)??;
                    Ok(count.or(reached))
                }
            }
        })
    }

    fn try_publish(&self, channel: String, payload: Bytes) -> TryPublish {
        if self.inner.closed.load(Ordering::Acquire) {
            return TryPublish::Failed(Error::Closed, channel);
        }
        match self.queue.try_send(Outgoing {
            channel,
            payload,
            done: None,
        }) {
            Ok(()) => TryPublish::Queued,
            Err(mpsc::error::TrySendError::Full(m)) => TryPublish::Full(m.channel, m.payload),
            Err(mpsc::error::TrySendError::Closed(m)) => {
                TryPublish::Failed(Error::Closed, m.channel)
            }
        }
    }

    fn subscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let Sub::Channel(ch) = sub else {
                return Err(Error::config(
                    "sharded pub/sub has no pattern subscriptions",
                ));
            };
            lock(&self.inner.wanted).insert(ch);
            self.inner.reconcile(false).await.map(|_| ())
        })
    }

    fn unsubscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let Sub::Channel(ch) = sub else { return Ok(()) };
            lock(&self.inner.wanted).remove(&ch);
            let conns: Vec<MultiplexedConnection> = lock(&self.inner.subscribers)
                .values_mut()
                .filter_map(|s| s.channels.remove(&ch).then(|| s.conn.clone()))
                .collect();
            for mut conn in conns {
                redis::cmd("SUNSUBSCRIBE")
                    .arg(&ch)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            Ok(())
        })
    }

    fn num_sub(&self, channels: Vec<String>) -> BoxFuture<'_, Result<Vec<usize>, Error>> {
        Box::pin(async move { self.inner.shard_num_sub(&channels).await })
    }

    fn is_connected(&self) -> bool {
        self.inner.subscribed.load(Ordering::Acquire)
    }

    fn is_publishing(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.inner.closed.store(true, Ordering::Release);
        let _ = self.shutdown.send(true);
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        Box::pin(async move {
            for t in tasks {
                let _ = t.await;
            }
            lock(&self.inner.subscribers).clear();
            lock(&self.inner.commands).clear();
        })
    }
}

#[cfg(test)]
mod tests;
