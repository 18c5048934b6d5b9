//! [`Emitter`] and [`BroadcastOperator`].

use crate::args::to_args;
use crate::options::redact_url;
use crate::rooms::{self, IntoRooms, Room};
use crate::sentinel::SentinelPublisher;
use crate::streams::StreamsPublisher;
use crate::{EmitterOptions, Error};
use rmpv::Value;
use serde::Serialize;
use socketioxide_cluster_wire::channel::Channels;
use socketioxide_cluster_wire::cluster_format::{
    ClusterMessage, ShardedChannels, SubscriptionMode,
};
use socketioxide_cluster_wire::message::{BroadcastMessage, EVENT, NodePacket, WireOptions};
use socketioxide_cluster_wire::request::{Request, Selector};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The uid of every emitter message (Node: the constant `"emitter"`). It never equals a
/// server's uid, so every server, the emitting one included, handles what an emitter sends.
pub const EMITTER_UID: &str = "emitter";

/// Event names [`emit`](Emitter::emit) refuses, as `@socket.io/redis-emitter` does: a
/// client would take them for socket.io's own events.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Event names [`server_side_emit`](Emitter::server_side_emit) refuses, as socket.io's
/// `namespace.serverSideEmit` does: a Node server would hand them to its connection
/// listeners.
pub const RESERVED_SERVER_SIDE_EVENTS: [&str; 3] = ["connect", "connection", "new_namespace"];

pub(crate) use crate::publish::BoxFuture;
use crate::publish::{Publish, RedisPublisher};
use crate::writer::Writer;
use std::sync::OnceLock;

/// Awaits `connect` within `timeout`: its connection, or the error naming `url`.
async fn connecting<C>(
    connect: impl Future<Output = redis::RedisResult<C>>,
    url: String,
    timeout: Duration,
) -> Result<C, Error> {
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(Error::Connect { url, source }),
        Err(_) => Err(Error::ConnectTimeout { url, timeout }),
    }
}

/// Whether requests from the emitter are built for these options (not over Sentinel,
/// for now).
fn asks(_: &EmitterOptions) -> bool {
    true
}

/// The request protocol of these options' servers.
fn dialect(opts: &EmitterOptions) -> crate::requests::Dialect {
    use crate::requests::Dialect;
    match (&opts.streams, opts.sharded) {
        (Some(t), _) if t.sharded_pub_sub => Dialect::Sharded,
        (Some(_), _) => Dialect::ClusterFormat,
        (None, Some(_)) => Dialect::Sharded,
        (None, None) => Dialect::Classic,
    }
}

/// `SPUBLISH` for the sharded protocol, `PUBLISH` otherwise.
fn publish_command(opts: &EmitterOptions) -> &'static str {
    if opts.sharded.is_some() {
        "SPUBLISH"
    } else {
        "PUBLISH"
    }
}

pub(crate) struct Shared {
    pub(crate) key: String,
    publish_timeout: Duration,
    /// Requests (classic protocol, `Emitter::connect`): opened on first use.
    pub(crate) asker: Option<crate::requests::Asker>,
    pub(crate) requests_timeout: Duration,
    next_named: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    publisher: Arc<dyn Publish>,
    /// Started by the first operation (inside the caller's runtime).
    writer: OnceLock<Writer>,
    queue_capacity: usize,
    sharded: Option<SubscriptionMode>,
}

impl Shared {
    /// The next one-of index for `name` (round robin, per emitter).
    pub(crate) fn next_named(&self, name: &str) -> usize {
        let mut next = self.next_named.lock().unwrap_or_else(|p| p.into_inner());
        let i = next.entry(name.to_owned()).or_insert(0);
        let out = *i;
        *i = i.wrapping_add(1);
        out
    }

    pub(crate) fn writer(&self) -> &Writer {
        self.writer.get_or_init(|| {
            Writer::start(
                self.publisher.clone(),
                self.queue_capacity,
                self.publish_timeout,
            )
        })
    }
}

/// Sends events and cluster-wide operations to the socket.io servers sharing a Redis,
/// without being a server: `@socket.io/redis-emitter` for Rust.
///
/// A cheap clone (one connection and one writer task shared by every clone and every
/// [`of`](Self::of)). Every operation encodes its message at call time and queues it;
/// a broadcast ([`emit`](Self::emit)) resolves once queued, the other operations (and
/// [`EmitFuture::confirmed`]) once Redis acknowledged them, with Redis' count of
/// subscribers that received it (the servers listening on that namespace; 0 means none
/// is). See the crate docs, "How it works".
///
/// ```no_run
/// # async fn run() -> Result<(), socketioxide_cluster_emitter::Error> {
/// use socketioxide_cluster_emitter::{Emitter, EmitterOptions};
///
/// let emitter = Emitter::connect(EmitterOptions::new("redis://127.0.0.1:6379")).await?;
/// emitter.emit("announcement", &("hello", 42)).await?;
/// emitter.of("/admin").to("room1").except("room2").emit("event", &1).await?;
/// emitter.in_("room1").sockets_join("room2").await?;
/// emitter.server_side_emit("job-done", &("job-7", "ok")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Emitter {
    pub(crate) shared: Arc<Shared>,
    pub(crate) nsp: Arc<str>,
    pub(crate) channels: Arc<Channels>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("key", &self.shared.key)
            .field("nsp", &self.nsp)
            .finish()
    }
}

impl Emitter {
    /// Connects to Redis at the options' URL, within the connect timeout.
    ///
    /// The connection is a [`redis::aio::ConnectionManager`]: after a connection loss,
    /// the operation that noticed it fails with [`Error::Redis`], and the manager
    /// reconnects in the background for the next ones.
    pub async fn connect(opts: EmitterOptions) -> Result<Self, Error> {
        let opts = opts.build()?.0;
        if let Some(spec) = &opts.sentinel {
            let mut spec = spec.clone();
            spec.tls_root_cert = opts.tls_root_cert.clone().map(Into::into);
            if spec.master_tls || spec.sentinels.iter().any(|u| u.starts_with("rediss:")) {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            let streams = opts.streams.clone().map(|t| (opts.key.clone(), t));
            let publisher = SentinelPublisher::connect(
                &spec,
                opts.connect_timeout,
                opts.publish_timeout,
                streams,
            )
            .await?;
            // Requests: on the master the sentinels name when a connection is opened
            // (and asked again for every count).
            let asker = crate::requests::Asker::new(
                &opts.key,
                dialect(&opts),
                crate::requests::Source::Master(publisher.master()),
                crate::requests::Counter::Plain(Box::default()),
                crate::requests::ShardedVia::Node,
                opts.connect_timeout,
            );
            return Ok(Self::with_parts(Box::new(publisher), &opts, Some(asker)));
        }
        let url = redact_url(&opts.url);
        if opts.url.starts_with("rediss:") {
            // redis' rustls needs a crypto provider: the one rustls would pick itself
            // (no-op when the application installed one already).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = match &opts.tls_root_cert {
            None => redis::Client::open(opts.url.as_str()),
            Some(pem) => redis::Client::build_with_tls(
                opts.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
        }
        .map_err(|e| Error::Config(format!("invalid Redis URL {url}: {e}")))?;
        let command = publish_command(&opts);
        if let Some(more) = &opts.cluster {
            return Self::connect_cluster(client, more, &opts, url).await;
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(opts.connect_timeout))
            .set_response_timeout(Some(opts.publish_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let asker = crate::requests::Asker::new(
            &opts.key,
            dialect(&opts),
            crate::requests::Source::Client(Box::new(client.clone())),
            crate::requests::Counter::Plain(Box::default()),
            crate::requests::ShardedVia::Node,
            opts.connect_timeout,
        );
        let conn = connecting(
            redis::aio::ConnectionManager::new_with_config(client, config),
            url,
            opts.connect_timeout,
        )
        .await?;
        let asker = asks(&opts).then_some(asker);
        if let Some(target) = &opts.streams {
            let publisher = StreamsPublisher {
                conn,
                key: opts.key.clone(),
                target: target.clone(),
                cluster: false,
            };
            return Ok(Self::with_parts(Box::new(publisher), &opts, asker));
        }
        let publisher = Box::new(RedisPublisher {
            conn,
            command,
            cluster: false,
        });
        Ok(Self::with_parts(publisher, &opts, asker))
    }

    /// A Redis Cluster: the redis crate's cluster connection, which routes each
    /// command to the node owning its channel's slot and follows `MOVED`/`ASK`.
    async fn connect_cluster(
        first: redis::Client,
        more: &[String],
        opts: &EmitterOptions,
        url: String,
    ) -> Result<Self, Error> {
        let mut nodes = vec![first.get_connection_info().clone()];
        for seed in more {
            let c = redis::Client::open(seed.as_str()).map_err(|e| {
                Error::Config(format!(
                    "invalid Redis Cluster seed {}: {e}",
                    redact_url(seed)
                ))
            })?;
            nodes.push(c.get_connection_info().clone());
        }
        let mut builder = redis::cluster::ClusterClient::builder(nodes.clone())
            .connection_timeout(opts.connect_timeout)
            .response_timeout(opts.publish_timeout);
        if let Some(pem) = &opts.tls_root_cert {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            });
        }
        let client = builder
            .build()
            .map_err(|e| Error::Config(format!("invalid Redis Cluster options: {e}")))?;
        let conn = connecting(client.get_async_connection(), url, opts.connect_timeout).await?;
        // Requests: responses subscribed on the first seed (a classic PUBLISH reaches
        // every node), servers counted over every node.
        let asker = asks(opts).then(|| {
            crate::requests::Asker::new(
                &opts.key,
                dialect(opts),
                crate::requests::Source::Client(Box::new(first.clone())),
                crate::requests::Counter::Cluster(conn.clone()),
                crate::requests::ShardedVia::Cluster(nodes.clone(), opts.tls_root_cert.clone()),
                opts.connect_timeout,
            )
        });
        if let Some(target) = &opts.streams {
            let publisher = StreamsPublisher {
                conn,
                key: opts.key.clone(),
                target: target.clone(),
                cluster: true,
            };
            return Ok(Self::with_parts(Box::new(publisher), opts, asker));
        }
        let command = publish_command(opts);
        let publisher = Box::new(RedisPublisher {
            conn,
            command,
            cluster: true,
        });
        Ok(Self::with_parts(publisher, opts, asker))
    }

    /// An emitter on a connection you already have (Node: `new Emitter(redisClient)`):
    /// a [`redis::aio::ConnectionManager`], a [`redis::aio::MultiplexedConnection`], or
    /// any cloneable async connection. The options' URL and connect timeout are unused.
    /// Broadcasts are pipelined on it: for a Redis Cluster, use
    /// [`EmitterOptions::redis_cluster`] with [`connect`](Self::connect) instead (its
    /// pipelines are split by slot).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use socketioxide_cluster_emitter::{Emitter, EmitterOptions, redis};
    ///
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let conn = client.get_multiplexed_async_connection().await?;
    /// let emitter = Emitter::from_connection(conn, EmitterOptions::default().key("my-app"))?;
    /// emitter.emit("ready", &()).await?;
    /// # Ok(()) }
    /// ```
    pub fn from_connection<C>(conn: C, opts: EmitterOptions) -> Result<Self, Error>
    where
        C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
    {
        let opts = opts.build()?.0;
        if let Some(target) = &opts.streams {
            let publisher = StreamsPublisher {
                conn,
                key: opts.key.clone(),
                target: target.clone(),
                cluster: false,
            };
            return Ok(Self::with_publisher(Box::new(publisher), &opts));
        }
        let command = publish_command(&opts);
        Ok(Self::with_publisher(
            Box::new(RedisPublisher {
                conn,
                command,
                cluster: false,
            }),
            &opts,
        ))
    }

    pub(crate) fn with_publisher(publisher: Box<dyn Publish>, opts: &EmitterOptions) -> Self {
        Self::with_parts(publisher, opts, None)
    }

    fn with_parts(
        publisher: Box<dyn Publish>,
        opts: &EmitterOptions,
        asker: Option<crate::requests::Asker>,
    ) -> Self {
        let names = opts.names.clone();
        let shared = Arc::new(Shared {
            key: opts.key.clone(),
            publish_timeout: opts.publish_timeout,
            publisher: Arc::from(publisher),
            writer: OnceLock::new(),
            queue_capacity: opts.queue_capacity,
            asker,
            requests_timeout: opts.requests_timeout,
            next_named: Default::default(),
            // The Streams protocol's messages are the sharded static ones; its publisher
            // puts them in the stream or on pub/sub.
            sharded: match &opts.streams {
                Some(_) => Some(SubscriptionMode::Static),
                None => opts.sharded,
            },
        });
        // A named emitter heartbeats (every 2 s, until the last clone is dropped).
        if !names.is_empty()
            && shared.asker.is_some()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let weak = Arc::downgrade(&shared);
            rt.spawn(async move {
                // Listen on its named channel (answers, replies, probes) first.
                if let Some(s) = weak.upgrade() {
                    if let Some(a) = &s.asker {
                        a.heartbeat(&names);
                    }
                    let _ = Self::for_nsp(s, "/").answer_named().await;
                }
                let mut tick = tokio::time::interval(Duration::from_secs(2));
                loop {
                    tick.tick().await;
                    let Some(s) = weak.upgrade() else { return };
                    if let Some(a) = &s.asker {
                        let (channel, beat) = a.heartbeat(&names);
                        let _ = s.writer().queue(channel, beat, false).await;
                    }
                }
            });
        }
        Self::for_nsp(shared, "/")
    }

    fn for_nsp(shared: Arc<Shared>, nsp: &str) -> Self {
        let channels = Arc::new(Channels::new(&shared.key, nsp));
        Self {
            shared,
            nsp: nsp.into(),
            channels,
        }
    }

    /// The emitter of namespace `nsp` (Node compat: a missing leading `/` is added, so
    /// `of("admin")` is `/admin`). Shares this emitter's connection.
    pub fn of(&self, nsp: &str) -> Self {
        if nsp.starts_with('/') {
            Self::for_nsp(self.shared.clone(), nsp)
        } else {
            Self::for_nsp(self.shared.clone(), &format!("/{nsp}"))
        }
    }

    /// This emitter's namespace (`/` unless made by [`of`](Self::of)).
    pub fn nsp(&self) -> &str {
        &self.nsp
    }

    /// The key prefix of the channels.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    pub(crate) fn operator(&self) -> BroadcastOperator {
        BroadcastOperator {
            emitter: self.clone(),
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Vec::new(),
        }
    }

    /// Emits `event` to every client of the namespace, on every server.
    /// See [`BroadcastOperator::emit`] for the arguments.
    pub fn emit<T: ?Sized + Serialize>(&self, event: &str, args: &T) -> EmitFuture {
        self.operator().emit(event, args)
    }

    /// Targets the clients in `rooms` (one or several; accumulates).
    pub fn to(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.operator().to(rooms)
    }

    /// Same as [`to`](Self::to) (Node: `in`, a Rust keyword).
    pub fn in_(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.operator().to(rooms)
    }

    /// Excludes the clients in `rooms` (one or several; accumulates).
    pub fn except(&self, rooms: impl IntoRooms) -> BroadcastOperator {
        self.operator().except(rooms)
    }

    /// The event may be dropped for clients that are not ready to receive it
    /// (`flags.volatile`).
    pub fn volatile(&self) -> BroadcastOperator {
        self.operator().volatile()
    }

    /// Whether the servers should compress the event (`flags.compress`).
    pub fn compress(&self, compress: bool) -> BroadcastOperator {
        self.operator().compress(compress)
    }

    /// Makes every socket of the namespace join `rooms`, on every server.
    pub fn sockets_join(&self, rooms: impl IntoRooms) -> PublishFuture {
        self.operator().sockets_join(rooms)
    }

    /// Makes every socket of the namespace leave `rooms`, on every server.
    pub fn sockets_leave(&self, rooms: impl IntoRooms) -> PublishFuture {
        self.operator().sockets_leave(rooms)
    }

    /// Disconnects every socket of the namespace; `close` also closes the underlying
    /// connections (Node's default is `false`).
    pub fn disconnect_sockets(&self, close: bool) -> PublishFuture {
        self.operator().disconnect_sockets(close)
    }

    /// Emits the server-side event `event` to every server of the namespace (Node:
    /// `emitter.serverSideEmit(event, ...args)`; servers receive it with
    /// `io.on(event, (...args) => ..)`, or `cluster.of(nsp).on_server_side(..)`).
    ///
    /// Arguments follow the rules of [`BroadcastOperator::emit`] but travel as JSON, as
    /// Node's do: binaries arrive as `{"type":"Buffer","data":[..]}`. For one reply per
    /// server, see [`server_side_emit_with_ack`](Self::server_side_emit_with_ack). The names in [`RESERVED_SERVER_SIDE_EVENTS`] are
    /// refused.
    pub fn server_side_emit<T: ?Sized + Serialize>(&self, event: &str, args: &T) -> PublishFuture {
        let msg = (|| {
            if RESERVED_SERVER_SIDE_EVENTS.contains(&event) {
                return Err(Error::ReservedEvent(event.to_owned()));
            }
            let mut data = vec![Value::from(event)];
            data.extend(to_args(args)?);
            let req = Request::ServerSideEmit {
                uid: Some(EMITTER_UID.to_owned()),
                request_id: None,
                data,
            };
            self.request_bytes(&req)
        })();
        self.send(msg)
    }

    /// The channel and bytes of a request (no reply expected) in the protocol spoken.
    fn request_bytes(&self, req: &Request) -> Result<(String, Vec<u8>), Error> {
        if self.shared.sharded.is_none() {
            return Ok((self.channels.request().to_owned(), req.encode()));
        }
        let msg = ClusterMessage::from_request(req, EMITTER_UID, &self.nsp)
            .ok_or_else(|| Error::Config("no sharded counterpart for this request".into()))?;
        let main = ShardedChannels::new(&self.shared.key, &self.nsp);
        Ok((main.main().to_owned(), msg.encode()))
    }

    /// Queues a prepared message; resolves with Redis' count once it was published (in
    /// queue order, behind what was queued before).
    fn send(&self, msg: Result<(String, Vec<u8>), Error>) -> PublishFuture {
        let shared = self.shared.clone();
        PublishFuture(Box::pin(async move {
            let (channel, payload) = msg?;
            shared.writer().confirmed(channel, payload).await
        }))
    }

    /// Waits until every message queued so far (by any clone) is published or failed:
    /// `Ok` when none failed since the previous flush, else [`Error::NotPublished`] with
    /// how many. Call it before a process exits, or where a batch of broadcasts must be
    /// known to have reached Redis.
    pub async fn flush(&self) -> Result<(), Error> {
        self.shared.writer().flush().await
    }

    /// Counts of what the writer published and what failed, since the emitter was made
    /// (every clone and namespace of it).
    pub fn stats(&self) -> crate::EmitterStats {
        match self.shared.writer.get() {
            Some(w) => w.stats(),
            None => crate::EmitterStats::default(),
        }
    }
}

/// The future of one operation: resolves to the number of Redis subscribers (servers)
/// that received the message, once Redis has acknowledged it.
///
/// The message is encoded when the operation is called, and queued when this future is
/// first polled; dropping it unpolled sends nothing. It borrows nothing (`'static`,
/// `Send`), so it can be spawned.
#[must_use = "nothing is sent unless the future is awaited"]
pub struct PublishFuture(BoxFuture<'static, Result<usize, Error>>);

impl Future for PublishFuture {
    type Output = Result<usize, Error>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for PublishFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishFuture")
    }
}

/// The future of a broadcast ([`BroadcastOperator::emit`]): resolves once the message
/// is queued for the writer (at once, unless the queue is full), as Node's emitter
/// hands it to its Redis client. A failure after that is counted in
/// [`Emitter::stats`] and reported by the next [`Emitter::flush`].
///
/// [`confirmed`](Self::confirmed) waits for Redis instead, and gives its count.
#[must_use = "nothing is sent unless the future is awaited"]
pub struct EmitFuture {
    shared: Arc<Shared>,
    msg: Option<Result<(String, Vec<u8>), Error>>,
    queued: Option<BoxFuture<'static, Result<(), Error>>>,
}

impl EmitFuture {
    /// Resolves once Redis accepted the message, with its count of subscribers (the
    /// servers of the namespace), like the other operations.
    pub fn confirmed(mut self) -> PublishFuture {
        let msg = self.msg.take();
        let shared = self.shared.clone();
        PublishFuture(Box::pin(async move {
            let (channel, payload) =
                msg.ok_or_else(|| Error::Config("confirmed() after the emit was awaited".into()))??;
            shared.writer().confirmed(channel, payload).await
        }))
    }
}

impl Future for EmitFuture {
    type Output = Result<(), Error>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.queued.is_none() {
            let msg = self.msg.take();
            let shared = self.shared.clone();
            self.queued = Some(Box::pin(async move {
                let (channel, payload) = msg.ok_or(Error::Closed)??;
                shared.writer().queue(channel, payload, false).await?;
                Ok(())
            }));
        }
        match self.queued.as_mut() {
            Some(f) => f.as_mut().poll(cx),
            None => std::task::Poll::Ready(Err(Error::Closed)),
        }
    }
}

impl std::fmt::Debug for EmitFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmitFuture")
    }
}

/// Targets (rooms, exceptions) and flags of one operation, built from an [`Emitter`].
///
/// Immutable, as in Node: every method returns a new operator and leaves this one as it
/// was, so a partial target can be reused:
///
/// ```no_run
/// # async fn run(emitter: socketioxide_cluster_emitter::Emitter) -> Result<(), socketioxide_cluster_emitter::Error> {
/// let staff = emitter.of("/admin").to("staff");
/// staff.emit("shift", &"starts").await?;
/// staff.except("interns").volatile().emit("salary", &()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "an operator does nothing until an operation (emit, sockets_join, …) is awaited"]
pub struct BroadcastOperator {
    pub(crate) emitter: Emitter,
    rooms: Vec<Room>,
    except: Vec<Room>,
    pub(crate) flags: Vec<(String, Value)>,
}

impl std::fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("nsp", &self.emitter.nsp)
            .field("rooms", &self.rooms)
            .field("except", &self.except)
            .field("flags", &self.flags)
            .finish()
    }
}

impl BroadcastOperator {
    /// Also targets the clients in `rooms` (duplicates are ignored, as in Node's `Set`).
    pub fn to(&self, rooms: impl IntoRooms) -> Self {
        let mut next = self.clone();
        rooms::add_all(&mut next.rooms, rooms);
        next
    }

    /// Same as [`to`](Self::to).
    pub fn in_(&self, rooms: impl IntoRooms) -> Self {
        self.to(rooms)
    }

    /// Also excludes the clients in `rooms`.
    pub fn except(&self, rooms: impl IntoRooms) -> Self {
        let mut next = self.clone();
        rooms::add_all(&mut next.except, rooms);
        next
    }

    /// Sets `flags.volatile = true`.
    pub fn volatile(&self) -> Self {
        self.flag("volatile", Value::Boolean(true))
    }

    /// Sets `flags.compress`.
    pub fn compress(&self, compress: bool) -> Self {
        self.flag("compress", Value::Boolean(compress))
    }

    /// JS `Object.assign({}, flags, {name: value})`: an existing key keeps its place.
    fn flag(&self, name: &str, value: Value) -> Self {
        let mut next = self.clone();
        match next.flags.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => next.flags.push((name.to_owned(), value)),
        }
        next
    }

    /// The rooms targeted so far.
    pub fn rooms(&self) -> &[Room] {
        &self.rooms
    }

    /// The rooms excluded so far.
    pub fn excepted(&self) -> &[Room] {
        &self.except
    }

    pub(crate) fn selector(&self) -> Selector {
        Selector {
            rooms: self.rooms.iter().map(Room::to_value).collect(),
            except: self.except.iter().map(Room::to_value).collect(),
        }
    }

    /// Emits `event` with `args` to the targeted clients on every server.
    ///
    /// Arguments: a tuple (or array, tuple struct) is spread into several arguments
    /// (`&("a", 1)` → `socket.on("ev", (a, n) => ..)`), `&()` sends none, any other value
    /// is one argument (`&vec![1, 2]` is one array, `&json!({..})` one object). Structs
    /// become objects. Byte buffers serialized as bytes (`bytes::Bytes`,
    /// `serde_bytes::ByteBuf`, fields with `#[serde(with = "serde_bytes")]`) arrive as
    /// binary (`Buffer` / `ArrayBuffer`); a plain `Vec<u8>` arrives as an array of numbers.
    ///
    /// Fails with [`Error::ReservedEvent`] for the names in [`RESERVED_EVENTS`].
    /// For the clients' acknowledgements, see
    /// [`emit_with_ack`](BroadcastOperator::emit_with_ack).
    pub fn emit<T: ?Sized + Serialize>(&self, event: &str, args: &T) -> EmitFuture {
        EmitFuture {
            shared: self.emitter.shared.clone(),
            msg: Some(self.broadcast(event, args)),
            queued: None,
        }
    }

    /// The channel and bytes of a broadcast, exactly as `@socket.io/redis-emitter` 5.1.0.
    fn broadcast<T: ?Sized + Serialize>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<(String, Vec<u8>), Error> {
        if RESERVED_EVENTS.contains(&event) {
            return Err(Error::ReservedEvent(event.to_owned()));
        }
        let mut data = vec![Value::from(event)];
        data.extend(to_args(args)?);
        let mut opts = WireOptions::emitter(Vec::new(), Vec::new(), self.flags.clone());
        let selector = self.selector();
        opts.rooms = selector.rooms;
        opts.except = Some(selector.except);
        let msg = BroadcastMessage {
            uid: EMITTER_UID.to_owned(),
            packet: NodePacket {
                kind: EVENT,
                data,
                nsp: Some(self.emitter.nsp.to_string()),
                id: None,
            },
            opts,
        };
        if let Some(mode) = self.emitter.shared.sharded {
            let msg = ClusterMessage::broadcast(
                EMITTER_UID,
                &self.emitter.nsp,
                msg.packet.data,
                &msg.opts,
                None,
            );
            let channels = ShardedChannels::new(&self.emitter.shared.key, &self.emitter.nsp);
            return Ok((channels.for_message(&msg, mode), msg.encode()));
        }
        let channels = &self.emitter.channels;
        let channel = match self.rooms.as_slice() {
            [room] => channels.room(&room.as_text()),
            _ => channels.broadcast().to_owned(),
        };
        Ok((channel, msg.encode()))
    }

    /// Makes the targeted sockets join `rooms`, on every server (Node: `socketsJoin`).
    pub fn sockets_join(&self, rooms: impl IntoRooms) -> PublishFuture {
        self.join_leave(true, rooms)
    }

    /// Makes the targeted sockets leave `rooms`, on every server (Node: `socketsLeave`).
    pub fn sockets_leave(&self, rooms: impl IntoRooms) -> PublishFuture {
        self.join_leave(false, rooms)
    }

    fn join_leave(&self, join: bool, rooms: impl IntoRooms) -> PublishFuture {
        let req = Request::JoinLeave {
            uid: None,
            join,
            opts: self.selector(),
            // Node compat: the rooms to join are sent as given (no deduplication).
            rooms: rooms.into_rooms().iter().map(Room::to_value).collect(),
        };
        self.request(req)
    }

    /// Disconnects the targeted sockets, on every server; `close` also closes their
    /// underlying connections (Node: `disconnectSockets(close = false)`).
    pub fn disconnect_sockets(&self, close: bool) -> PublishFuture {
        let req = Request::Disconnect {
            uid: None,
            opts: self.selector(),
            close,
        };
        self.request(req)
    }

    fn request(&self, req: Request) -> PublishFuture {
        self.emitter.send(self.emitter.request_bytes(&req))
    }
}

#[cfg(test)]
mod tests;
