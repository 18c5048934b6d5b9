//! Standalone Redis transport (RESP2 and RESP3).
//!
//! Two connections, as the Node adapter uses two clients:
//! * a dedicated pub/sub connection, owned by one subscriber task that hands every
//!   message to the router, and that reconnects at once (then every 5 to 25 ms while
//!   Redis refuses) and re-issues every subscription when the connection drops;
//! * a command connection ([`ConnectionManager`], reconnecting by itself) used by one
//!   publisher task that drains a bounded queue and sends what it found as one
//!   pipeline, so an `emit` never waits for a Redis round trip.
//!
//! Each connection has its own state: broadcasts fail fast only while the *publishing*
//! connection is known down (a lost subscriber does not stop them), requests (which
//! need replies) while the subscriber is down.

mod held;
mod node;
mod pipeline;
mod publisher;
mod queue;
mod subscriber;

use super::connect::{RedisEndpoint, open_client, open_pubsub, tls_connector};
use super::sentinel::{Sentinel, SentinelSpec, run_watcher};
use super::{BoxFuture, MessageSink, Mode, Sub, Transport, TryPublish};
use crate::error::Error;
use crate::stats::Counters;
use crate::wire::redact_url;
use bytes::Bytes;
use node::command_connection;
use publisher::run_publisher;
use queue::Outgoing;
pub(crate) use queue::Xadd;
use redis::aio::{ConnectionManager, PubSubSink};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subscriber::run_subscriber;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// Wait before retrying a pipeline whose connection dropped.
const RETRY_DELAY: Duration = Duration::from_millis(5);
/// Most messages sent in one pipeline.
const MAX_BATCH: usize = 512;
/// Reconnect backoff bounds of both connections, after a first attempt at once: capped
/// low so delivery resumes within tens of milliseconds of Redis answering again (a
/// refused connection costs Redis and us next to nothing).
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(25);

/// The Redis node both connections use.
struct Node {
    client: redis::Client,
    /// Its URL without credentials, for logs.
    url: String,
    /// Bumped each time the connections move to another node.
    generation: u64,
}

struct Shared {
    node: Mutex<Node>,
    /// Other nodes to move to when this one stays unreachable (a Redis Cluster's; none
    /// for a standalone Redis), and which one is next.
    fallbacks: Mutex<(Vec<(redis::Client, String)>, usize)>,
    /// With Sentinel: asked for the master on every reconnect (and by the watcher).
    sentinel: Option<Arc<Sentinel>>,
    /// The node's generation, sent each time it changes: the subscriber and the
    /// publisher then move their connections at once.
    moved: watch::Sender<u64>,
    /// For `rediss://` subscriber connections (see [`open_pubsub`]).
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
    /// The publisher's command connection, for `PUBSUB NUMSUB`: replaced by the
    /// publisher when it moves to another node (so counts come from the node in use),
    /// taken on close so the connection (and its driver task) goes away.
    cmd: Mutex<Option<ConnectionManager>>,
    sub_sink: Mutex<Option<PubSubSink>>,
    subs: Mutex<HashSet<Sub>>,
    /// The subscriber connection is up.
    subscribed: AtomicBool,
    /// The publishing connection is not known down (set by the publisher task).
    publishing: AtomicBool,
    /// Woken by the subscriber when its connection drops: the publisher then checks its
    /// own with a PING, so that a Redis that went away is noticed by both at once.
    probe: tokio::sync::Notify,
    /// Set by `close`: publishing then fails with `Closed`, not `Disconnected`.
    closed: AtomicBool,
    /// Stream entries kept while publishing is down (see `held.rs`).
    held: Mutex<held::Held>,
    counters: Arc<Counters>,
    /// Screens what the subscriber connection reads (the router; see `screen.rs`).
    screen: Arc<dyn MessageSink>,
}

/// Gives a client for the node the connections use now.
pub(crate) type NodeInUse = Arc<dyn Fn() -> redis::Client + Send + Sync>;

pub(crate) struct RedisTransport {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Outgoing>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RedisTransport {
    pub(crate) async fn connect(
        endpoint: &RedisEndpoint,
        connect_timeout: Duration,
        queue_capacity: usize,
        sink: Arc<dyn MessageSink>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        let redacted = redact_url(&endpoint.url);
        let client = open_client(endpoint)
            .map_err(|e| Error::config_from(format!("invalid redis URL {redacted}"), e))?;
        let tls = match client.get_connection_info().addr() {
            redis::ConnectionAddr::TcpTls {
                insecure: false, ..
            } => Some(tls_connector(endpoint)?),
            _ => None,
        };
        let node = Node {
            client,
            url: redacted,
            generation: 0,
        };
        Self::start(
            node,
            tls,
            None,
            connect_timeout,
            queue_capacity,
            sink,
            counters,
        )
        .await
    }

    /// Connects to the master the sentinels of `spec` name (checked with `ROLE`), and
    /// follows it from then on: every reconnect asks the sentinels again, and a watcher
    /// moves both connections when they announce another master.
    pub(crate) async fn connect_sentinel(
        spec: &SentinelSpec,
        connect_timeout: Duration,
        queue_capacity: usize,
        sink: Arc<dyn MessageSink>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        let sentinel = Arc::new(Sentinel::new(spec, connect_timeout)?);
        let (client, url) = sentinel.master().await?;
        let tls = match spec.master_tls {
            true => Some(tls_connector(&RedisEndpoint {
                url: String::new(),
                tls_root_cert: spec.tls_root_cert.clone(),
            })?),
            false => None,
        };
        let node = Node {
            client,
            url,
            generation: 0,
        };
        let this = Self::start(
            node,
            tls,
            Some(sentinel.clone()),
            connect_timeout,
            queue_capacity,
            sink,
            counters,
        )
        .await?;
        let watcher = run_watcher(sentinel, this.shared.clone(), this.shutdown.subscribe());
        lock(&this.tasks).push(tokio::spawn(watcher));
        Ok(this)
    }

    async fn start(
        node: Node,
        tls: Option<TlsConnector>,
        sentinel: Option<Arc<Sentinel>>,
        connect_timeout: Duration,
        queue_capacity: usize,
        sink: Arc<dyn MessageSink>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        let (pubsub, gate) = open_pubsub(
            &node.client,
            tls.as_ref(),
            &node.url,
            connect_timeout,
            sink.clone(),
        )
        .await?;
        let cmd = command_connection(&node.client, &node.url, connect_timeout).await?;
        let (sub_sink, stream) = pubsub.split();
        let shared = Arc::new(Shared {
            node: Mutex::new(node),
            fallbacks: Mutex::default(),
            sentinel,
            moved: watch::Sender::new(0),
            tls,
            connect_timeout,
            cmd: Mutex::new(Some(cmd.clone())),
            sub_sink: Mutex::new(Some(sub_sink)),
            subs: Mutex::new(HashSet::new()),
            subscribed: AtomicBool::new(true),
            publishing: AtomicBool::new(true),
            probe: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            held: Mutex::default(),
            counters,
            screen: sink.clone(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (queue, rx) = mpsc::channel(queue_capacity);
        let tasks = vec![
            tokio::spawn(run_subscriber(
                shared.clone(),
                (stream, gate),
                sink,
                shutdown_rx.clone(),
            )),
            tokio::spawn(run_publisher(shared.clone(), rx, cmd.clone(), shutdown_rx)),
        ];
        Ok(Self {
            shared,
            queue,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }
}

impl RedisTransport {
    /// Other nodes (of a Redis Cluster) to move to when the one in use stays
    /// unreachable.
    pub(crate) fn set_fallbacks(&self, nodes: Vec<(redis::Client, String)>) {
        let mut f = lock(&self.shared.fallbacks);
        f.0 = nodes;
    }

    /// Keeps up to `cap` stream entries queued while Redis is unreachable, and sends
    /// those not older than `max_age` when it answers again (see `held.rs`).
    pub(crate) fn hold_stream_entries(&self, cap: usize, max_age: Duration) {
        lock(&self.shared.held).set_bounds(cap, max_age);
    }

    /// What gives a client for the node the connections use now, and a receiver told
    /// each time they move to another (for the Streams transport's reader).
    pub(crate) fn node_in_use(&self) -> (NodeInUse, watch::Receiver<u64>) {
        let shared = self.shared.clone();
        (
            Arc::new(move || shared.node().0),
            self.shared.moved.subscribe(),
        )
    }

    /// Why nothing can be published now: closed, or the connection is known down.
    fn refusal(&self) -> Option<Error> {
        if self.shared.closed.load(Ordering::Acquire) {
            Some(Error::Closed)
        } else if !self.shared.publishing.load(Ordering::Acquire) {
            Some(Error::Disconnected)
        } else {
            None
        }
    }
}

impl Transport for RedisTransport {
    fn publish(
        &self,
        channel: String,
        payload: Bytes,
        mode: Mode,
        expect: usize,
    ) -> BoxFuture<'_, Result<Option<usize>, Error>> {
        Box::pin(self.enqueue(Outgoing::new(channel, payload, expect, mode), mode))
    }

    fn try_publish(&self, channel: String, payload: Bytes) -> TryPublish {
        if let Some(e) = self.refusal() {
            if matches!(e, Error::Disconnected) {
                Counters::add(&self.shared.counters.refused, 1);
            }
            return TryPublish::Failed(e, channel);
        }
        match self
            .queue
            .try_send(Outgoing::new(channel, payload, 0, Mode::Queued))
        {
            Ok(()) => TryPublish::Queued,
            Err(mpsc::error::TrySendError::Full(m)) => TryPublish::Full(m.channel, m.payload),
            Err(mpsc::error::TrySendError::Closed(m)) => {
                TryPublish::Failed(Error::Closed, m.channel)
            }
        }
    }

    fn subscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            lock(&self.shared.subs).insert(sub.clone());
            let Some(mut sink) = lock(&self.shared.sub_sink).clone() else {
                return Err(Error::Closed);
            };
            match sub {
                Sub::Channel(c) => sink.subscribe(c).await?,
                Sub::Pattern(p) => sink.psubscribe(p).await?,
            }
            Ok(())
        })
    }

    fn unsubscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            lock(&self.shared.subs).remove(&sub);
            let Some(mut sink) = lock(&self.shared.sub_sink).clone() else {
                return Ok(());
            };
            match sub {
                Sub::Channel(c) => sink.unsubscribe(c).await?,
                Sub::Pattern(p) => sink.punsubscribe(p).await?,
            }
            Ok(())
        })
    }

    fn num_sub(&self, channels: Vec<String>) -> BoxFuture<'_, Result<Vec<usize>, Error>> {
        Box::pin(async move {
            if let Some(e) = self.refusal() {
                // Fail fast, as publishing does: the connection is known down (or moving).
                return Err(e);
            }
            let Some(mut conn) = lock(&self.shared.cmd).clone() else {
                return Err(Error::Closed);
            };
            let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channels)
                .query_async(&mut conn)
                .await?;
            // Matched by name: RESP3 answers with a map.
            Ok(channels
                .iter()
                .map(|c| {
                    counts
                        .iter()
                        .find(|(name, _)| name == c)
                        .map_or(0, |(_, n)| *n)
                })
                .collect())
        })
    }

    fn is_connected(&self) -> bool {
        self.shared.subscribed.load(Ordering::Acquire)
    }

    fn is_publishing(&self) -> bool {
        self.shared.publishing.load(Ordering::Acquire)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let _ = self.shutdown.send(true);
        self.shared.closed.store(true, Ordering::Release);
        self.shared.subscribed.store(false, Ordering::Release);
        self.shared.publishing.store(false, Ordering::Release);
        // Dropping the sink lets the pub/sub connection close once the stream is dropped.
        lock(&self.shared.sub_sink).take();
        lock(&self.shared.cmd).take();
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        Box::pin(async move {
            for task in tasks {
                let _ = task.await;
            }
        })
    }
}
