//! Asking the cluster from the emitter: the classic adapter's request protocol
//! (`@socket.io/redis-adapter` 8.x), or the ClusterAdapter messages of the sharded and
//! streams protocols; answered alike by Node servers and ours.
//!
//! Nothing here exists until the first request: then the emitter opens one subscriber
//! connection (`SUBSCRIBE P-response#N#`, `P-response#N#<uid>#` for each namespace asked,
//! and `P-heartbeat`, where our servers announce themselves) and one command connection
//! (for `PUBSUB NUMSUB`). A lost subscriber connection is opened again by the next
//! request.
//!
//! * **Identity**: requests carry a uid of its own per emitter, `emitter-<16 hex>`:
//!   not `"emitter"` (what its broadcasts carry), never a server's (6 characters for
//!   Node, 16 for ours), never another emitter's. The emitter does not subscribe to
//!   `P-request#N#`, so it is never counted as a server.
//! * **How many answers**: `PUBSUB NUMSUB P-request#N#` (`P#N#` for the ClusterAdapter
//!   protocols, `SHARDNUMSUB` over sharded pub/sub; summed over every node of a Redis
//!   Cluster), as Node counts; every server answers (none of them is the
//!   requester). A request returns as soon as every expected answer arrived.
//! * **Timeouts**: the partial result is kept in [`Error::Incomplete`], with how many
//!   answered out of how many, and the uids of our servers that stopped announcing
//!   themselves (their last heartbeat is older than twice their interval). Node servers
//!   send no heartbeats: they are counted, not named.

use crate::Error;
use rmpv::Value;
use socketioxide_cluster_wire::cluster_format::{ClusterMessage, Incoming};
use socketioxide_cluster_wire::named::{Incoming as NamedIncoming, NamedMessage, NamedReply};
use socketioxide_cluster_wire::request::{Response, value_to_json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Answers one request may get before the requester reads them (a burst bigger than
/// this from a huge cluster is still read: the reader waits for room).
const ANSWERS: usize = 1024;

/// A socket of the cluster, as the server that has it describes it
/// ([`Emitter::fetch_sockets`](crate::Emitter::fetch_sockets)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RemoteSocket {
    /// The socket id.
    pub id: String,
    /// Its rooms (its own id among them).
    pub rooms: Vec<String>,
    /// The application's `socket.data` (Node) or the socket's extensions our servers
    /// describe, as JSON.
    pub data: serde_json::Value,
    /// The handshake (`headers`, `time`, `address`, `query`, `auth`, …), as JSON.
    pub handshake: serde_json::Value,
}

/// What a request had gathered when it timed out.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Partial {
    /// `fetch_sockets`.
    Sockets(Vec<RemoteSocket>),
    /// `all_rooms`.
    Rooms(Vec<String>),
    /// `server_side_emit_with_ack`, `emit_with_ack`: the replies received.
    Replies(Vec<Value>),
}

/// A request that timed out: see [`Error::Incomplete`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Incomplete {
    /// `fetch_sockets`, `all_rooms`, `server_side_emit_with_ack`, `emit_with_ack`.
    pub operation: &'static str,
    /// Servers expected to answer (for `emit_with_ack`: servers to report their client
    /// count).
    pub expected: usize,
    /// Servers that answered.
    pub answered: usize,
    /// For `emit_with_ack`: acknowledgements announced by the servers that answered,
    /// and received.
    pub acks: Option<(u64, usize)>,
    /// Our servers (uids) that stopped announcing themselves; Node servers are counted
    /// in `expected - answered`, not named.
    pub missing: Vec<String>,
    /// What arrived.
    pub partial: Partial,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} of {} servers answered",
            self.operation, self.answered, self.expected
        )?;
        if let Some((announced, got)) = self.acks {
            write!(f, ", {got} of {announced} acknowledgements")?;
        }
        if !self.missing.is_empty() {
            write!(f, "; silent: {}", self.missing.join(", "))?;
        }
        Ok(())
    }
}

/// A fresh id of `n` hex digits (request ids, the emitter's uid).
pub(crate) fn random_hex(n: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n);
    out
}

/// Which request protocol the servers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `@socket.io/redis-adapter`'s classic one: requests on `P-request#N#`, answers
    /// on `P-response#N#` (or the requester's own), servers counted on the request
    /// channel.
    Classic,
    /// The ClusterAdapter messages over classic pub/sub (the streams adapter's pub/sub
    /// part): requests on `P#N#`, answers on `P#N#<uid>#`, servers counted on `P#N#`.
    ClusterFormat,
    /// The same over sharded pub/sub (Node's `createShardedAdapter`, streams with
    /// `useShardedPubSub`): `SSUBSCRIBE` on the answer channel's master, servers counted
    /// with `PUBSUB SHARDNUMSUB`.
    Sharded,
}

/// Where `PUBSUB NUMSUB` is asked.
pub(crate) enum Counter {
    /// One Redis (or the Sentinel master): a connection opened on first use, and again
    /// when the node to ask changed.
    Plain(Box<tokio::sync::Mutex<Option<(String, redis::aio::MultiplexedConnection)>>>),
    /// A Redis Cluster connection: the redis crate asks every node and sums.
    Cluster(redis::cluster_async::ClusterConnection),
}

/// Where the node to ask is: fixed, or the master the sentinels name now.
pub(crate) enum Source {
    Client(Box<redis::Client>),
    Master(Arc<dyn Master>),
}

/// The master of a Sentinel setup, asked of the sentinels each time.
pub(crate) trait Master: Send + Sync {
    fn client(&self) -> crate::publish::BoxFuture<'_, redis::RedisResult<redis::Client>>;
}

/// One of our servers, from its heartbeats.
struct Peer {
    last: Instant,
    /// Time between its last two heartbeats.
    interval: Duration,
    /// Heartbeats heard (from the second on, `interval` is measured).
    beats: u32,
    nsps: Vec<String>,
    /// Its names (`ClusterOptions::name`).
    names: Vec<String>,
    /// A named emitter, not a server.
    emitter: bool,
}

/// The subscriber connection: classic (a RESP2 pub/sub connection), or RESP3 with
/// pushes for `SSUBSCRIBE` (one node, or a cluster connection routing by slot).
enum Link {
    PubSub(redis::aio::PubSubSink),
    Node(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

struct Subscriber {
    link: Link,
    channels: HashSet<String>,
    alive: Arc<std::sync::atomic::AtomicBool>,
}

/// How the sharded subscriber connects.
pub(crate) enum ShardedVia {
    /// One Redis 7 (the emitter's client).
    Node,
    /// A Redis Cluster: its seeds and TLS roots.
    Cluster(Vec<redis::ConnectionInfo>, Option<Vec<u8>>),
}

/// Where a handler's reply goes: `(channel, bytes)` to publish.
type ReplySender = mpsc::Sender<(String, Vec<u8>)>;

/// Hands what the subscriber reads to the request waiting for it (or to the peers'
/// table, for our heartbeats). Never waits: called from the connection's reader.
struct Dispatch {
    dialect: Dialect,
    heartbeat: String,
    pending: Mutex<HashMap<String, mpsc::Sender<Response>>>,
    peers: Mutex<HashMap<String, Peer>>,
    /// Woken by every heartbeat (a first named request waits for one).
    beat: tokio::sync::Notify,
    /// `<key>-named#<uid>#`: replies to named requests.
    named: String,
    named_pending: Mutex<HashMap<String, mpsc::Sender<NamedReply>>>,
    /// This emitter's uid and key (named replies it sends).
    uid: String,
    key: String,
    /// Handlers of named requests to this emitter (`Emitter::on_named`).
    handlers: Mutex<HashMap<(String, String), crate::named::Handler>>,
    /// Where replies go to be published (the writer, through a forwarding task).
    replies: Mutex<Option<ReplySender>>,
    /// A named emitter's heartbeat, also sent when another emitter probes.
    own_beat: Mutex<Option<Vec<u8>>>,
    running: Arc<tokio::sync::Semaphore>,
}

impl Dispatch {
    /// A message on this emitter's named channel: a reply to one of its requests, or a
    /// request or event for it (its handler on a task of its own).
    fn on_named(&self, m: NamedMessage) {
        if m.expired(socketioxide_cluster_wire::named::now_us()) {
            return;
        }
        let (id, nsp, req) = match m.into_incoming() {
            NamedIncoming::Reply { id, reply } => {
                let tx = lock(&self.named_pending).get(&id).cloned();
                if let Some(tx) = tx {
                    let _ = tx.try_send(reply);
                }
                return;
            }
            NamedIncoming::Request { id, nsp, req } => (id, nsp, req),
        };
        let ev = req.event.clone();
        let handler = lock(&self.handlers).get(&(nsp, ev.clone())).cloned();
        let Some(tx) = lock(&self.replies).clone() else {
            return;
        };
        let reply_to = socketioxide_cluster_wire::named::channel(&self.key, &req.from);
        let me = self.uid.clone();
        let reply = move |id: String, res: Result<serde_json::Value, String>| {
            let _ = tx.try_send((reply_to, NamedMessage::reply(id, me, res).encode()));
        };
        let Some(handler) = handler else {
            if let Some(id) = id {
                reply(id, Err(format!("no handler for {ev:?} here")));
            }
            return;
        };
        let Ok(permit) = self.running.clone().try_acquire_owned() else {
            if let Some(id) = id {
                reply(id, Err("busy".into()));
            }
            return;
        };
        tokio::spawn(async move {
            let res = handler(req).await;
            drop(permit);
            if let Some(id) = id {
                reply(id, res);
            }
        });
    }

    fn deliver(&self, channel: &[u8], payload: &[u8]) {
        if channel == self.heartbeat.as_bytes() {
            let probe = serde_json::from_slice::<serde_json::Value>(payload)
                .is_ok_and(|v| v["probe"].as_bool() == Some(true));
            if probe
                && let Some(beat) = lock(&self.own_beat).clone()
                && let Some(tx) = lock(&self.replies).clone()
            {
                let _ = tx.try_send((self.heartbeat.clone(), beat));
            }
            heard(&self.peers, payload);
            self.beat.notify_waiters();
            return;
        }
        if channel == self.named.as_bytes() {
            if let Ok(m) = NamedMessage::decode(payload) {
                self.on_named(m);
            }
            return;
        }
        // Answers to other requesters (the shared channel) are skipped unread.
        if let Some(id) = Response::peek_request_id(payload)
            && !lock(&self.pending).contains_key(id)
        {
            return;
        }
        let resp = match self.dialect {
            Dialect::Classic => Response::decode(payload).ok(),
            // Our answer channel carries only answers; read as classic ones.
            Dialect::ClusterFormat | Dialect::Sharded => ClusterMessage::decode(payload)
                .ok()
                .and_then(|m| match m.into_incoming() {
                    Ok(Incoming::Response(r)) => Some(r),
                    _ => None,
                }),
        };
        let Some(resp) = resp else { return };
        let tx = lock(&self.pending).get(&resp.request_id).cloned();
        if let Some(tx) = tx {
            // Bounded: beyond ANSWERS unread answers to one request, the rest is lost
            // to it (it then times out with what it has).
            let _ = tx.try_send(resp);
        }
    }
}

/// The emitter's request machinery (see the module docs).
pub(crate) struct Asker {
    pub(crate) uid: String,
    pub(crate) dialect: Dialect,
    key: String,
    /// Where the subscriber connection is opened.
    source: Source,
    counter: Counter,
    sharded_via: ShardedVia,
    subscriber: tokio::sync::Mutex<Option<Subscriber>>,
    /// The heartbeat probe was sent (named requests).
    probed: std::sync::atomic::AtomicBool,
    dispatch: Arc<Dispatch>,
    connect_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Asker {
    pub(crate) fn new(
        key: &str,
        dialect: Dialect,
        source: Source,
        counter: Counter,
        sharded_via: ShardedVia,
        connect_timeout: Duration,
    ) -> Asker {
        let uid = format!("emitter-{}", random_hex(16));
        let named = socketioxide_cluster_wire::named::channel(key, &uid);
        Asker {
            uid: uid.clone(),
            dialect,
            key: key.to_owned(),
            source,
            counter,
            sharded_via,
            subscriber: tokio::sync::Mutex::new(None),
            probed: std::sync::atomic::AtomicBool::new(false),
            dispatch: Arc::new(Dispatch {
                dialect,
                heartbeat: format!("{key}-heartbeat"),
                pending: Mutex::default(),
                peers: Mutex::default(),
                beat: tokio::sync::Notify::new(),
                named,
                uid: uid.clone(),
                key: key.to_owned(),
                handlers: Mutex::default(),
                replies: Mutex::default(),
                own_beat: Mutex::default(),
                running: Arc::new(tokio::sync::Semaphore::new(256)),
                named_pending: Mutex::default(),
            }),
            connect_timeout,
        }
    }

    /// The client of the node to use now.
    async fn client(&self) -> Result<redis::Client, Error> {
        match &self.source {
            Source::Client(c) => Ok((**c).clone()),
            Source::Master(m) => tokio::time::timeout(self.connect_timeout, m.client())
                .await
                .map_err(|_| Error::Timeout(self.connect_timeout))?
                .map_err(Error::Redis),
        }
    }

    fn heartbeat_channel(&self) -> String {
        format!("{}-heartbeat", self.key)
    }

    /// Subscribes (once) to the response channels of `nsp` and to our heartbeats.
    pub(crate) async fn listen(&self, nsp: &str) -> Result<(), Error> {
        let wanted = match self.dialect {
            Dialect::Classic => vec![
                format!("{}-response#{nsp}#", self.key),
                format!("{}-response#{nsp}#{}#", self.key, self.uid),
                self.heartbeat_channel(),
            ],
            Dialect::ClusterFormat => vec![
                format!("{}#{nsp}#{}#", self.key, self.uid),
                self.heartbeat_channel(),
            ],
            // Our sharded servers' heartbeats are SPUBLISHed: SSUBSCRIBEd here.
            Dialect::Sharded => vec![
                format!("{}#{nsp}#{}#", self.key, self.uid),
                self.heartbeat_channel(),
            ],
        };
        self.subscribe_wanted(&wanted).await
    }

    /// Subscribes (once) to the emitter's named channel and to our heartbeats; the
    /// first time, waits (at most `wait`) for a heartbeat, so that names are known.
    /// `probe` publishes `{"uid":…,"probe":true}` on the heartbeat channel (our servers
    /// heartbeat at once when they read it); the first call then waits until no new
    /// server was heard for 150 ms, at most `wait`.
    pub(crate) async fn listen_named<F>(&self, wait: Duration, probe: F) -> Result<(), Error>
    where
        F: Future<Output = Result<usize, Error>>,
    {
        let wanted = [self.dispatch.named.clone(), self.heartbeat_channel()];
        self.subscribe_wanted(&wanted).await?;
        if self.probed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let until = tokio::time::Instant::now() + wait;
        let beat = self.dispatch.beat.notified();
        tokio::pin!(beat);
        beat.as_mut().enable();
        probe.await?;
        // Until no new server was heard for 150 ms (heartbeats of known ones do not
        // count), at most `wait`.
        let mut known = lock(&self.dispatch.peers).len();
        let mut quiet_until = until;
        loop {
            match tokio::time::timeout_at(quiet_until.min(until), beat.as_mut()).await {
                Ok(()) => {
                    let now_known = lock(&self.dispatch.peers).len();
                    if now_known > known {
                        known = now_known;
                        quiet_until = tokio::time::Instant::now() + Duration::from_millis(150);
                    }
                    beat.set(self.dispatch.beat.notified());
                    beat.as_mut().enable();
                }
                Err(_) => return Ok(()),
            }
        }
    }

    /// Registers a handler for named requests `event` in namespace `nsp`.
    pub(crate) fn on_named(&self, nsp: &str, event: &str, h: crate::named::Handler) {
        lock(&self.dispatch.handlers).insert((nsp.to_owned(), event.to_owned()), h);
    }

    /// Hands the replies of this emitter's handlers to `tx` (the first call only).
    pub(crate) fn set_replies(&self, tx: ReplySender) -> bool {
        let mut r = lock(&self.dispatch.replies);
        if r.is_some() {
            return false;
        }
        *r = Some(tx);
        true
    }

    /// This emitter's heartbeat with `names`: `{"uid","names","emitter":true}` (kept,
    /// to answer probes).
    pub(crate) fn heartbeat(&self, names: &[String]) -> (String, Vec<u8>) {
        let beat = serde_json::json!({"uid": self.uid, "names": names, "emitter": true})
            .to_string()
            .into_bytes();
        *lock(&self.dispatch.own_beat) = Some(beat.clone());
        (self.heartbeat_channel(), beat)
    }

    /// The probe our servers answer with a heartbeat.
    pub(crate) fn probe(&self) -> (String, Vec<u8>) {
        (
            self.heartbeat_channel(),
            serde_json::json!({"uid": self.uid, "probe": true})
                .to_string()
                .into_bytes(),
        )
    }

    /// Live servers of ours (heard within twice their interval) that announce `name` or
    /// whose uid is `name`; sorted.
    pub(crate) fn members(&self, name: &str) -> Vec<String> {
        let peers = lock(&self.dispatch.peers);
        let mut out: Vec<String> = peers
            .iter()
            .filter(|(_, p)| p.last.elapsed() <= p.interval * 2)
            .filter(|(uid, p)| *uid == name || p.names.iter().any(|n| n == name))
            .map(|(uid, _)| uid.clone())
            .collect();
        out.sort();
        out
    }

    pub(crate) fn register_named(&self, id: &str, n: usize) -> mpsc::Receiver<NamedReply> {
        let (tx, rx) = mpsc::channel(n.max(1));
        lock(&self.dispatch.named_pending).insert(id.to_owned(), tx);
        rx
    }

    pub(crate) fn done_named(&self, id: &str) {
        lock(&self.dispatch.named_pending).remove(id);
    }

    async fn subscribe_wanted(&self, wanted: &[String]) -> Result<(), Error> {
        let mut sub = self.subscriber.lock().await;
        // Twice at most: a connection found dead while subscribing is opened again.
        for attempt in 0..2 {
            if sub
                .as_ref()
                .is_some_and(|s| !s.alive.load(Ordering::Acquire))
            {
                *sub = None; // lost: open again
            }
            if sub.is_none() {
                *sub = Some(self.open().await?);
            }
            let Some(s) = sub.as_mut() else {
                return Err(Error::Closed);
            };
            match subscribe_all(s, wanted).await {
                Ok(()) => return Ok(()),
                // The retry's outcome is what counts.
                Err(_) if attempt == 0 => *sub = None,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A RESP3 connection whose pushes go to the dispatcher (sharded pub/sub).
    async fn open_sharded(&self) -> Result<Subscriber, Error> {
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (dispatch, flag) = (self.dispatch.clone(), alive.clone());
        let sender = move |push: redis::PushInfo| -> Result<(), std::convert::Infallible> {
            match push.kind {
                redis::PushKind::SMessage | redis::PushKind::Message => {
                    if let [redis::Value::BulkString(ch), redis::Value::BulkString(p)] =
                        &push.data[..]
                    {
                        dispatch.deliver(ch, p);
                    }
                }
                redis::PushKind::Disconnection => flag.store(false, Ordering::Release),
                _ => {}
            }
            Ok(())
        };
        let base = self.client().await?;
        let url = base.get_connection_info().addr().to_string();
        let timed = |e: tokio::time::error::Elapsed| {
            let _ = e;
            Error::ConnectTimeout {
                url: url.clone(),
                timeout: self.connect_timeout,
            }
        };
        let link = match &self.sharded_via {
            ShardedVia::Node => {
                let info = base.get_connection_info().clone();
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(redis::ProtocolVersion::RESP3);
                let client = redis::Client::open(info.set_redis_settings(settings))?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_push_sender(sender);
                let conn = tokio::time::timeout(
                    self.connect_timeout,
                    client.get_multiplexed_async_connection_with_config(&config),
                )
                .await
                .map_err(timed)??;
                Link::Node(conn)
            }
            ShardedVia::Cluster(nodes, certs) => {
                let mut b = redis::cluster::ClusterClient::builder(nodes.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .connection_timeout(self.connect_timeout)
                    .push_sender(sender);
                if let Some(pem) = certs {
                    b = b.certs(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    });
                }
                let client = b.build()?;
                let conn =
                    tokio::time::timeout(self.connect_timeout, client.get_async_connection())
                        .await
                        .map_err(timed)??;
                Link::Cluster(conn)
            }
        };
        Ok(Subscriber {
            link,
            channels: HashSet::new(),
            alive,
        })
    }

    async fn open(&self) -> Result<Subscriber, Error> {
        if self.dialect == Dialect::Sharded {
            return self.open_sharded().await;
        }
        let client = self.client().await?;
        let url = client.get_connection_info().addr().to_string();
        let pubsub =
            match tokio::time::timeout(self.connect_timeout, client.get_async_pubsub()).await {
                Ok(Ok(p)) => p,
                Ok(Err(source)) => return Err(Error::Connect { url, source }),
                Err(_) => {
                    return Err(Error::ConnectTimeout {
                        url,
                        timeout: self.connect_timeout,
                    });
                }
            };
        let (sink, mut stream) = pubsub.split();
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (dispatch, flag) = (self.dispatch.clone(), alive.clone());
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(msg) = stream.next().await {
                dispatch.deliver(msg.get_channel_name().as_bytes(), msg.get_payload_bytes());
            }
            flag.store(false, Ordering::Release);
        });
        Ok(Subscriber {
            link: Link::PubSub(sink),
            channels: HashSet::new(),
            alive,
        })
    }

    /// Where requests for `nsp` go and where servers are counted: `P-request#N#`
    /// (classic) or `P#N#`.
    pub(crate) fn request_channel(&self, nsp: &str) -> String {
        match self.dialect {
            Dialect::Classic => format!("{}-request#{nsp}#", self.key),
            Dialect::ClusterFormat | Dialect::Sharded => format!("{}#{nsp}#", self.key),
        }
    }

    /// `PUBSUB NUMSUB channel`: the servers of the namespace; once more on a fresh
    /// connection when the one it had was lost (`CLIENT KILL`, a Redis restart).
    pub(crate) async fn count(&self, channel: &str) -> Result<usize, Error> {
        match self.count_once(channel).await {
            Err(Error::Redis(e)) if crate::publish::is_connection_error(&e) => {
                self.count_once(channel).await
            }
            res => res,
        }
    }

    async fn count_once(&self, channel: &str) -> Result<usize, Error> {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg(if self.dialect == Dialect::Sharded {
            "SHARDNUMSUB"
        } else {
            "NUMSUB"
        })
        .arg(channel);
        let counts: Vec<(String, usize)> = match &self.counter {
            Counter::Cluster(conn) => cmd.query_async(&mut conn.clone()).await?,
            Counter::Plain(conn) => {
                let client = self.client().await?;
                let addr = client.get_connection_info().addr().to_string();
                let mut guard = conn.lock().await;
                // Another node to ask (a new Sentinel master): a connection there.
                if guard.as_ref().is_some_and(|(a, _)| *a != addr) {
                    *guard = None;
                }
                if guard.is_none() {
                    let opened = tokio::time::timeout(
                        self.connect_timeout,
                        client.get_multiplexed_async_connection(),
                    )
                    .await
                    .map_err(|_| Error::Timeout(self.connect_timeout))??;
                    *guard = Some((addr, opened));
                }
                let Some((_, c)) = guard.as_mut() else {
                    return Err(Error::Closed);
                };
                match cmd.query_async(c).await {
                    Ok(v) => v,
                    Err(e) => {
                        *guard = None; // opened again next time
                        return Err(e.into());
                    }
                }
            }
        };
        Ok(counts.first().map_or(0, |(_, n)| *n))
    }

    /// Registers `request_id`: its answers arrive on the receiver until [`done`].
    ///
    /// [`done`]: Self::done
    pub(crate) fn register(&self, request_id: &str) -> mpsc::Receiver<Response> {
        let (tx, rx) = mpsc::channel(ANSWERS);
        lock(&self.dispatch.pending).insert(request_id.to_owned(), tx);
        rx
    }

    pub(crate) fn done(&self, request_id: &str) {
        lock(&self.dispatch.pending).remove(request_id);
    }

    /// Our servers heard at least twice (their interval is known), the last time
    /// within twice that interval.
    pub(crate) fn live(&self) -> Vec<String> {
        let peers = lock(&self.dispatch.peers);
        let mut out: Vec<String> = peers
            .iter()
            .filter(|(_, p)| !p.emitter && p.beats >= 2 && p.last.elapsed() <= p.interval * 2)
            .map(|(uid, _)| uid.clone())
            .collect();
        out.sort();
        out
    }

    /// Our servers serving `nsp` whose heartbeats stopped (older than twice their
    /// interval).
    pub(crate) fn silent(&self, nsp: &str) -> Vec<String> {
        let peers = lock(&self.dispatch.peers);
        let mut out: Vec<String> = peers
            .iter()
            .filter(|(_, p)| p.nsps.iter().any(|n| n == nsp))
            .filter(|(_, p)| p.last.elapsed() > p.interval * 2)
            .map(|(uid, _)| uid.clone())
            .collect();
        out.sort();
        out
    }
}

/// Subscribes `s` to what it lacks of `wanted`.
async fn subscribe_all(s: &mut Subscriber, wanted: &[String]) -> Result<(), Error> {
    for ch in wanted {
        if s.channels.contains(ch) {
            continue;
        }
        match &mut s.link {
            Link::PubSub(sink) => sink.subscribe(ch).await?,
            Link::Node(conn) => {
                redis::cmd("SSUBSCRIBE")
                    .arg(ch)
                    .query_async::<()>(conn)
                    .await?
            }
            Link::Cluster(conn) => conn.ssubscribe(ch).await?,
        }
        s.channels.insert(ch.clone());
    }
    Ok(())
}

/// A heartbeat of ours: `{"uid", "nsps"}` or `{"uid", "leave": true}`.
fn heard(peers: &Mutex<HashMap<String, Peer>>, payload: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let Some(uid) = v["uid"].as_str() else { return };
    // Another emitter's probe: nobody to remember.
    if v["probe"].as_bool() == Some(true) {
        return;
    }
    let mut peers = lock(peers);
    if v["leave"].as_bool() == Some(true) {
        peers.remove(uid);
        return;
    }
    let nsps: Vec<String> = v["nsps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .take(1024)
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<String> = v["names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str())
                .filter(|n| socketioxide_cluster_wire::named::valid_name(n))
                .take(socketioxide_cluster_wire::named::MAX_NAMES)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let now = Instant::now();
    let (interval, beats) = match peers.get(uid) {
        Some(p) => (now - p.last, p.beats.saturating_add(1)),
        // Our servers' default interval until a second heartbeat measures it.
        None => (Duration::from_secs(2), 1),
    };
    peers.insert(
        uid.to_owned(),
        Peer {
            last: now,
            interval: interval.clamp(Duration::from_millis(100), Duration::from_secs(60)),
            beats,
            nsps,
            names,
            emitter: v["emitter"].as_bool() == Some(true),
        },
    );
}

/// The sockets of a fetch answer `{requestId, sockets: [{id, handshake, rooms, data}]}`.
pub(crate) fn sockets_of(resp: &Response) -> Vec<RemoteSocket> {
    let Some(Value::Array(list)) = resp.get("sockets") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|s| {
            let Value::Map(m) = s else { return None };
            let get = |k: &str| {
                m.iter()
                    .find(|(key, _)| key.as_str() == Some(k))
                    .map(|(_, v)| v)
            };
            Some(RemoteSocket {
                id: get("id")?.as_str()?.to_owned(),
                rooms: room_names(get("rooms")),
                data: get("data").map_or(serde_json::Value::Null, value_to_json),
                handshake: get("handshake").map_or(serde_json::Value::Null, value_to_json),
            })
        })
        .collect()
}

/// The rooms of an all-rooms answer `{requestId, rooms: [..]}`.
pub(crate) fn rooms_of(resp: &Response) -> Vec<String> {
    room_names(resp.get("rooms"))
}

/// An array of rooms as names: strings as they are, others (numeric rooms of JS apps)
/// as their JSON text.
fn room_names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(r)) => r
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => s.as_str().map(str::to_owned),
                other => Some(value_to_json(other).to_string()),
            })
            .collect(),
        _ => Vec::new(),
    }
}
