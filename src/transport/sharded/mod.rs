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

mod publisher;
mod routing;
mod slots;
mod subscriptions;

use super::connect::{RedisEndpoint, host_port, info_at, open_client};
use super::redis::Xadd;
use super::{BoxFuture, MessageSink, Mode, Sub, Transport, TryPublish, queue_as};
use crate::error::Error;
use crate::stats::Counters;
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use slots::{Addr, Topology};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
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
    /// Subscriber connections it should reach (0: not checked).
    expect: usize,
    /// [`Mode::Counted`]: `PUBSUB SHARDNUMSUB` of the channel, in the same pipeline
    /// just before the `SPUBLISH` (the owner answers both).
    count: bool,
    /// Set: an `XADD` on the stream `channel` instead of an `SPUBLISH` (the Streams
    /// transport over a Redis Cluster writes its entries on each stream's master).
    xadd: Option<Xadd>,
    done: Option<super::Done>,
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
    /// Masters known unreachable (a connection to them failed): what they own fails at
    /// once instead of waiting for a connect timeout, until the topology gives their
    /// slots to another master or they answer again (the reconciler checks).
    down: Mutex<HashSet<Addr>>,
    /// Serializes reconciliations (the reconciler task, and nothing else).
    reconciling: tokio::sync::Mutex<()>,
    /// Serializes opening subscriber connections.
    opening: tokio::sync::Mutex<()>,
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
            addrs.push(host_port(client.get_connection_info().addr())?);
        }
        let inner = Arc::new(Inner {
            base,
            seeds: addrs,
            connect_timeout,
            topology: Mutex::default(),
            wanted: Mutex::default(),
            subscribers: Mutex::default(),
            commands: Mutex::default(),
            down: Mutex::default(),
            reconciling: tokio::sync::Mutex::new(()),
            opening: tokio::sync::Mutex::new(()),
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
            tokio::spawn(subscriptions::run_reconciler(
                Arc::downgrade(&inner),
                rx_shutdown.clone(),
            )),
            tokio::spawn(publisher::run_publisher(inner.clone(), rx, rx_shutdown)),
        ];
        Ok(Self {
            inner,
            queue,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }
}

impl ShardedTransport {
    /// Queues `msg` as `mode` says (see [`Mode`]); refused at once (and counted) while
    /// the master owning its channel is known down.
    async fn enqueue(&self, msg: Outgoing, mode: Mode) -> Result<Option<usize>, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        // Fail fast while the channel's master is known down (until a replica took its
        // slots over or it answers again).
        if self.inner.owner_is_down(&msg.channel) {
            // The caller gets the error (counted, and a dropped volatile message too).
            Counters::add(&self.inner.counters.refused, 1);
            if mode == Mode::Volatile {
                Counters::add(&self.inner.counters.volatile_dropped, 1);
            }
            return Err(Error::Disconnected);
        }
        queue_as(
            &self.queue,
            msg,
            mode,
            &self.inner.counters.volatile_dropped,
            |m| &mut m.done,
        )
        .await
    }

    /// `XADD` on `stream`, on the master owning its slot, queued with the `SPUBLISH`es:
    /// resolves as [`Transport::publish`] does for `mode` (with `None`).
    pub(crate) async fn xadd(
        &self,
        stream: String,
        entry: Xadd,
        mode: Mode,
    ) -> Result<Option<usize>, Error> {
        let msg = Outgoing {
            channel: stream,
            payload: Bytes::new(),
            expect: 0,
            count: false,
            xadd: Some(entry),
            done: None,
        };
        self.enqueue(msg, mode).await
    }

    /// A client for the master that owns `key` now (read afresh when `fresh`), with the
    /// seed's credentials and TLS settings: where the stream reader reads a stream.
    pub(crate) async fn client_for_key(
        &self,
        key: &str,
        fresh: bool,
    ) -> Result<redis::Client, Error> {
        let topology = self.inner.topology(fresh).await?;
        let owner = topology
            .owner(slots::slot(key))
            .ok_or(Error::Disconnected)?;
        Ok(redis::Client::open(self.inner.info_for(owner))?)
    }
}

impl Inner {
    /// Connection settings for node `addr` (the seed's, another address).
    fn info_for(&self, (host, port): &Addr) -> redis::ConnectionInfo {
        info_at(&self.base, host, *port)
    }

    /// A connection to `addr` with `config` and the connect timeout; `resp3` for the
    /// subscriber connections (pushes).
    async fn open(
        &self,
        addr: &Addr,
        config: redis::AsyncConnectionConfig,
        resp3: bool,
    ) -> Result<MultiplexedConnection, Error> {
        let mut info = self.info_for(addr);
        if resp3 {
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP3);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info)?;
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
        let conn = self
            .open(addr, redis::AsyncConnectionConfig::new(), false)
            .await?;
        lock(&self.commands).insert(addr.clone(), conn.clone());
        Ok(conn)
    }
}

impl Transport for ShardedTransport {
    fn publish(
        &self,
        channel: String,
        payload: Bytes,
        mode: Mode,
        expect: usize,
    ) -> BoxFuture<'_, Result<Option<usize>, Error>> {
        let msg = Outgoing {
            channel,
            payload,
            expect,
            count: mode == Mode::Counted,
            xadd: None,
            done: None,
        };
        Box::pin(self.enqueue(msg, mode))
    }

    fn try_publish(&self, channel: String, payload: Bytes) -> TryPublish {
        if self.inner.closed.load(Ordering::Acquire) {
            return TryPublish::Failed(Error::Closed, channel);
        }
        match self.queue.try_send(Outgoing {
            channel,
            payload,
            expect: 0,
            count: false,
            xadd: None,
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
            lock(&self.inner.wanted).insert(ch.clone());
            self.inner.subscribe_one(&ch).await
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
