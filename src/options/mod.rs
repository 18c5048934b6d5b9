//! Adapter options, with Node's names and defaults: [`ClusterOptions`] is the builder,
//! [`ClusterConfig`] what it builds once validated (and what
//! [`Cluster::config`](crate::Cluster::config) shows).

use crate::error::Error;
use crate::transport::{InProcessBus, RedisEndpoint, SentinelSpec, StreamsOptions};
use crate::wire::cluster_format::SubscriptionMode;
use std::time::Duration;

/// Where the cluster's messages travel.
#[derive(Clone)]
pub(crate) enum TransportKind {
    /// A Redis server (standalone; RESP2 or RESP3), or with `cluster` the first seed
    /// of a Redis Cluster (`cluster` holds the other seeds).
    Redis {
        url: RedisEndpoint,
        cluster: Option<Vec<String>>,
    },
    /// The master of a Redis Sentinel setup, as its sentinels name it.
    Sentinel(SentinelSpec),
    /// An in-process bus: servers in one process, no Redis needed.
    InProcess(InProcessBus),
}

/// Which of Node's protocols the servers speak (every server of a cluster must speak the
/// same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `@socket.io/redis-adapter`'s `createAdapter`: `PUBLISH`/`PSUBSCRIBE`, the classic
    /// messages. The default.
    #[default]
    Classic,
    /// `createShardedAdapter`: sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`), the
    /// ClusterAdapter messages, in this subscription mode.
    Sharded(SubscriptionMode),
    /// `@socket.io/redis-streams-adapter` 0.3.x: broadcasts, joins, leaves and
    /// disconnects in Redis streams, the rest over pub/sub, the ClusterAdapter messages
    /// (see [`ClusterOptions::streams`]).
    Streams,
}

/// Default of [`ClusterOptions::max_node_stand_ins`].
pub(crate) const DEFAULT_MAX_NODE_STAND_INS: usize = 65_536;

/// Default of [`ClusterOptions::max_message_size`]: 16 MiB.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Options of a [`Cluster`](crate::Cluster).
///
/// | option | default | Node name |
/// | --- | --- | --- |
/// | [`key`](Self::key) | `"socket.io"` | `key` |
/// | [`requests_timeout`](Self::requests_timeout) | 5000 ms | `requestsTimeout` |
/// | [`connect_timeout`](Self::connect_timeout) | 5 s | (client option) |
/// | [`publish_queue`](Self::publish_queue) | 8192 messages | — |
/// | [`max_message_size`](Self::max_message_size) | 16 MiB | — |
/// | [`publish_on_specific_response_channel`](Self::publish_on_specific_response_channel) | false | `publishOnSpecificResponseChannel` |
/// | [`heartbeat`](Self::heartbeat) | 2 s / 8 s | (ours: liveness between Rust servers) |
/// | [`strict_delivery`](Self::strict_delivery) | false | — |
/// | [`max_node_stand_ins`](Self::max_node_stand_ins) | 65,536 | — |
/// | [`sharded`](Self::sharded) | classic protocol | `createShardedAdapter`'s `subscriptionMode` |
/// | [`room_sync_interval`](Self::room_sync_interval) | 50 ms | — |
/// | [`tls_root_cert`](Self::tls_root_cert) | system roots | (client `tls.ca`) |
/// | [`master_auth`](Self::master_auth) (Sentinel) | none | ioredis `username`, `password` |
/// | [`master_tls`](Self::master_tls) (Sentinel) | false | ioredis `tls` |
///
/// Invalid combinations fail in [`build`](Self::build) (which
/// [`Cluster::connect`](crate::Cluster::connect) calls) with [`Error::Config`]. `Debug`
/// never shows a password from the URL. [`Default`] is a Redis at `127.0.0.1:6379`.
#[derive(Clone)]
pub struct ClusterOptions(ClusterConfig);

/// Validated options, built by [`ClusterOptions::build`]: one getter per option.
#[derive(Clone)]
pub struct ClusterConfig {
    pub(crate) transport: TransportKind,
    pub(crate) key: String,
    pub(crate) requests_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) publish_queue: usize,
    pub(crate) max_message_size: usize,
    pub(crate) specific_response_channel: bool,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) count_peers_only: bool,
    pub(crate) strict_delivery: bool,
    pub(crate) max_node_stand_ins: usize,
    pub(crate) protocol: Protocol,
    pub(crate) room_sync_interval: Duration,
    /// A Sentinel-only option set on other options (an error in `build`).
    pub(crate) misplaced: Option<&'static str>,
    /// With [`Protocol::Streams`].
    pub(crate) streams: StreamsOptions,
    /// Names this server announces (`ClusterOptions::name`).
    pub(crate) names: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self::new("redis://127.0.0.1:6379")
    }
}

impl ClusterOptions {
    /// Options for a Redis server at `url` (`redis://[user:password@]host:port[/db]`;
    /// `rediss://…` for TLS, see [`tls_root_cert`](Self::tls_root_cert)). The user and
    /// password are sent with `AUTH` (Redis 6 ACL users or `requirepass`).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_transport(TransportKind::Redis {
            url: RedisEndpoint {
                url: url.into(),
                tls_root_cert: None,
            },
            cluster: None,
        })
    }

    /// Options for a Redis Cluster reached through `seeds` (URLs of any of its nodes,
    /// tried in order; credentials and TLS as for [`new`](Self::new), the same for
    /// every node). The classic protocol (Node's `createAdapter` with a cluster client):
    /// today's messages and channels, `PUBLISH` reaching every node, the server count
    /// summed over every node. At least one seed.
    pub fn redis_cluster<S: Into<String>>(seeds: impl IntoIterator<Item = S>) -> Self {
        let mut seeds = seeds.into_iter().map(Into::into);
        let first = seeds.next().unwrap_or_default();
        Self::with_transport(TransportKind::Redis {
            url: RedisEndpoint {
                url: first,
                tls_root_cert: None,
            },
            cluster: Some(seeds.collect()),
        })
    }

    /// Options for the master of a Redis Sentinel setup: `sentinels` are the URLs of
    /// the sentinels (`redis://[user:password@]host:port`, `rediss://` for TLS; the
    /// credentials are the sentinels' own, the same in every URL), `master_name` the
    /// name they monitor it under (`sentinel monitor <name> …`; ioredis: `name`). The
    /// classic protocol.
    ///
    /// Every connection asks the sentinels for the master each time it (re)connects and
    /// checks `ROLE` on it, and a watcher moves both connections as soon as the
    /// sentinels announce a new master (`+switch-master`, checked every second as
    /// well), so a server never stays on a demoted master. Credentials and TLS of the
    /// master: [`master_auth`](Self::master_auth), [`master_tls`](Self::master_tls);
    /// [`tls_root_cert`](Self::tls_root_cert) applies to both legs. See README "High
    /// availability with Sentinel".
    pub fn sentinel<S: Into<String>>(
        sentinels: impl IntoIterator<Item = S>,
        master_name: impl Into<String>,
    ) -> Self {
        Self::with_transport(TransportKind::Sentinel(SentinelSpec {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master_name: master_name.into(),
            master_username: None,
            master_password: None,
            master_tls: false,
            tls_root_cert: None,
        }))
    }

    /// Sentinel options: the ACL user (`None`: the default user) and password of the
    /// master and its replicas (ioredis: `username`, `password`). Fails in
    /// [`build`](Self::build) for other options (their URL carries them).
    pub fn master_auth(mut self, username: Option<&str>, password: impl Into<String>) -> Self {
        match &mut self.0.transport {
            TransportKind::Sentinel(spec) => {
                spec.master_username = username.map(str::to_owned);
                spec.master_password = Some(password.into());
            }
            _ => self.0.misplaced = Some("master_auth"),
        }
        self
    }

    /// Sentinel options: reach the master over TLS (ioredis: `tls`), checked against
    /// the system roots or [`tls_root_cert`](Self::tls_root_cert). Default false. Fails
    /// in [`build`](Self::build) for other options (their URL's `rediss://` says it).
    pub fn master_tls(mut self, yes: bool) -> Self {
        match &mut self.0.transport {
            TransportKind::Sentinel(spec) => spec.master_tls = yes,
            _ => self.0.misplaced = Some("master_tls"),
        }
        self
    }

    /// Options for an in-process cluster: every [`Cluster`](crate::Cluster) connected to
    /// the same `bus` is one cluster. For demos and unit tests; nothing leaves the process.
    pub fn in_process(bus: &InProcessBus) -> Self {
        Self::with_transport(TransportKind::InProcess(bus.clone()))
    }

    fn with_transport(transport: TransportKind) -> Self {
        Self(ClusterConfig {
            transport,
            key: "socket.io".into(),
            requests_timeout: Duration::from_millis(5000),
            connect_timeout: Duration::from_secs(5),
            publish_queue: 8192,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            specific_response_channel: false,
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(8),
            count_peers_only: false,
            strict_delivery: false,
            max_node_stand_ins: DEFAULT_MAX_NODE_STAND_INS,
            protocol: Protocol::Classic,
            room_sync_interval: Duration::from_millis(50),
            misplaced: None,
            streams: StreamsOptions::default(),
            names: Vec::new(),
        })
    }

    /// Channel prefix (Node: `key`). Default `socket.io`. Every server of a cluster, Node
    /// or Rust, and every emitter must use the same key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.0.key = key.into();
        self
    }

    /// How long a cluster-wide request waits for replies (Node: `requestsTimeout`).
    /// Default 5000 ms.
    pub fn requests_timeout(mut self, timeout: Duration) -> Self {
        self.0.requests_timeout = timeout;
        self
    }

    /// How long [`Cluster::connect`](crate::Cluster::connect) waits for Redis. Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.0.connect_timeout = timeout;
        self
    }

    /// Capacity of the outgoing publish queue, in messages. Default 8192.
    ///
    /// Broadcasts are encoded once and queued; a writer task pipelines them to Redis.
    /// When the queue is full, `emit` waits for room (backpressure) — except volatile
    /// broadcasts, which are dropped and counted in [`ClusterStats::volatile_dropped`](crate::ClusterStats).
    pub fn publish_queue(mut self, capacity: usize) -> Self {
        self.0.publish_queue = capacity;
        self
    }

    /// Largest message accepted from Redis, in bytes. Default 16 MiB (half of Redis'
    /// default `client-output-buffer-limit pubsub` hard limit, 32 MB, beyond which Redis
    /// cuts every subscriber of the channel off anyway).
    ///
    /// A larger message on one of this server's channels is skipped without being read
    /// into memory (the subscriber streams past it) and counted in
    /// [`ClusterStats::malformed`](crate::ClusterStats). Raise it if your broadcasts carry
    /// larger payloads (and Redis' limit with it).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.0.max_message_size = bytes;
        self
    }

    /// Answer requests on the requester's own channel `<key>-response#<nsp>#<uid>#`
    /// instead of the shared `<key>-response#<nsp>#` (Node:
    /// `publishOnSpecificResponseChannel`, default false). Every server listens to both,
    /// so servers with either setting interoperate; the specific channel spares the
    /// other servers from decoding replies meant for someone else.
    pub fn publish_on_specific_response_channel(mut self, yes: bool) -> Self {
        self.0.specific_response_channel = yes;
        self
    }

    /// Trust the CA certificate(s) in `pem` (PEM, one or more `CERTIFICATE` blocks) for a
    /// `rediss://` URL, instead of the system's root certificates. Default: none, the
    /// system roots are used. Fails in [`build`](Self::build) if the URL is not
    /// `rediss://` or `pem` holds no valid certificate. Ignored by
    /// [`in_process`](Self::in_process) options.
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        match &mut self.0.transport {
            TransportKind::Redis { url, .. } => url.tls_root_cert = Some(pem.into().into()),
            TransportKind::Sentinel(spec) => spec.tls_root_cert = Some(pem.into().into()),
            TransportKind::InProcess(_) => {}
        }
        self
    }

    /// A name this server answers to (repeatable, up to 8; 1 to 64 bytes, no `#`): other
    /// servers and emitters can send requests to one or every live member of a name
    /// (see [`Namespace::ask_one`](crate::Namespace::ask_one)). Its uid is always a name
    /// of it too. Announced in its heartbeats.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.0.names.contains(&name) {
            self.0.names.push(name);
        }
        self
    }

    /// Liveness between our servers: each server publishes a heartbeat every `interval`
    /// on `<key>-heartbeat` (Node ignores that channel); a peer silent for `timeout` that
    /// is still subscribed is *hung*, and requests stop waiting for it (see
    /// [`Error::Unresponsive`]). Defaults 2 s and 8 s; `timeout` must exceed `interval`.
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.0.heartbeat_interval = interval;
        self.0.heartbeat_timeout = timeout;
        self
    }

    /// Count only servers of ours (known by their heartbeats and subscribed to the
    /// namespace) when deciding how many replies a request waits for, instead of every
    /// subscriber of the request channel (Node's rule). Then a monitoring client or any
    /// other foreign subscriber of `<key>-request#<nsp>#` no longer makes every request
    /// wait for the timeout. **Only for clusters without Node servers**: Node servers do
    /// not heartbeat, so their replies would not be waited for. Default false.
    pub fn count_peers_only(mut self, yes: bool) -> Self {
        self.0.count_peers_only = yes;
        self
    }

    /// Make a broadcast that reached fewer servers than are alive an error for its
    /// caller ([`Error::UnderDelivered`]), instead of only counting it in
    /// [`ClusterStats::under_delivered`](crate::ClusterStats). "Alive" is this server and
    /// the servers of ours whose heartbeats are fresh and that serve the namespace (Node
    /// servers send none and are not checked). The price: each `emit` then waits for
    /// Redis' answer to its PUBLISH (one round trip) instead of returning once queued.
    /// Default false.
    pub fn strict_delivery(mut self, yes: bool) -> Self {
        self.0.strict_delivery = yes;
        self
    }

    /// Speak the protocol of Node's `createShardedAdapter` (redis-adapter 8.x) in
    /// `mode` (Node's `subscriptionMode`; every server must use the same): sharded
    /// pub/sub, for a Redis Cluster ([`redis_cluster`](Self::redis_cluster)) or a
    /// standalone Redis 7. In the dynamic modes each local room has a channel of its own
    /// (see [`room_sync_interval`](Self::room_sync_interval)).
    pub fn sharded(mut self, mode: SubscriptionMode) -> Self {
        self.0.protocol = Protocol::Sharded(mode);
        self
    }

    /// Speak the protocol of Node's `@socket.io/redis-streams-adapter` 0.3.x with
    /// `opts` (Node's names; every server must use the same): broadcasts, joins, leaves
    /// and disconnects are appended to Redis streams and read back by every server from
    /// where it stopped, so a server that loses its connection for a moment misses
    /// nothing that is still in the stream; requests and responses go over pub/sub
    /// (`<key>` is Node's `channelPrefix`). Standalone Redis. See README "Lossless
    /// delivery with Redis Streams".
    pub fn streams(mut self, opts: StreamsOptions) -> Self {
        self.0.protocol = Protocol::Streams;
        self.0.streams = opts;
        self
    }

    /// Sharded protocol, dynamic modes: how often the local rooms are compared with the
    /// room channels subscribed. socketioxide tells an adapter nothing when a socket
    /// joins or leaves a room, so a room joined just now receives the broadcasts sent
    /// to its channel at most this long plus one `SSUBSCRIBE` round trip later (Node's
    /// own `SSUBSCRIBE` on join is not awaited either). Default 50 ms.
    pub fn room_sync_interval(mut self, interval: Duration) -> Self {
        self.0.room_sync_interval = interval;
        self
    }

    /// How many stand-in `Sid`s of Node sockets (what `io.fetch_sockets()` returns for
    /// sockets of Node servers, see README "Mixed clusters") this server keeps, about 100
    /// bytes each. One that was dropped is found again by asking the cluster (one
    /// fetchSockets round) the next time it is used. Default 65,536; at least 2.
    pub fn max_node_stand_ins(mut self, entries: usize) -> Self {
        self.0.max_node_stand_ins = entries;
        self
    }

    /// Validates the options: every check [`Cluster::connect`](crate::Cluster::connect)
    /// makes before opening a connection (empty key, zero timeouts or queue, heartbeat
    /// timeout not above its interval, an unusable `tls_root_cert`).
    pub fn build(self) -> Result<ClusterConfig, Error> {
        self.0.validate()?;
        Ok(self.0)
    }
}

mod config;
#[cfg(test)]
mod tests;
