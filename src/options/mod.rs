//! Adapter options, with Node's names and defaults: [`ClusterOptions`] is the builder,
//! [`ClusterConfig`] what it builds once validated (and what
//! [`Cluster::config`](crate::Cluster::config) shows).

use crate::error::Error;
use crate::transport::{InProcessBus, RedisEndpoint, root_certs};
use crate::wire::redact_url;
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
    /// An in-process bus: servers in one process, no Redis needed.
    InProcess(InProcessBus),
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
/// | [`tls_root_cert`](Self::tls_root_cert) | system roots | (client `tls.ca`) |
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
        if let TransportKind::Redis { url, .. } = &mut self.0.transport {
            url.tls_root_cert = Some(pem.into().into());
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

impl ClusterConfig {
    /// Channel prefix (Node: `key`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How long a cluster-wide request waits for replies (Node: `requestsTimeout`).
    pub fn requests_timeout(&self) -> Duration {
        self.requests_timeout
    }

    /// How long connecting to Redis, and each confirmed publish, may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Capacity of the outgoing publish queue, in messages.
    pub fn publish_queue(&self) -> usize {
        self.publish_queue
    }

    /// Largest message accepted from Redis, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Whether replies go to the requester's own response channel (Node:
    /// `publishOnSpecificResponseChannel`).
    pub fn publish_on_specific_response_channel(&self) -> bool {
        self.specific_response_channel
    }

    /// How often this server heartbeats.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// Silence after which a peer of ours is stale.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_timeout
    }

    /// Whether requests count only heartbeating peers of ours.
    pub fn count_peers_only(&self) -> bool {
        self.count_peers_only
    }

    /// Whether an under-delivered broadcast is an error for its caller.
    pub fn strict_delivery(&self) -> bool {
        self.strict_delivery
    }

    /// Stand-in `Sid`s of Node sockets kept at most.
    pub fn max_node_stand_ins(&self) -> usize {
        self.max_node_stand_ins
    }

    /// The Redis URL, password hidden; `None` for the in-process bus.
    pub fn redis_url(&self) -> Option<String> {
        match &self.transport {
            TransportKind::Redis { url, .. } => Some(redact_url(&url.url)),
            TransportKind::InProcess(_) => None,
        }
    }

    /// The custom TLS root certificate(s) (PEM), if set.
    pub fn tls_root_cert(&self) -> Option<&[u8]> {
        match &self.transport {
            TransportKind::Redis { url, .. } => url.tls_root_cert.as_deref(),
            TransportKind::InProcess(_) => None,
        }
    }

    /// Whether the transport is a Redis Cluster ([`ClusterOptions::redis_cluster`]).
    pub fn is_redis_cluster(&self) -> bool {
        matches!(
            &self.transport,
            TransportKind::Redis {
                cluster: Some(_),
                ..
            }
        )
    }

    fn validate(&self) -> Result<(), Error> {
        if let TransportKind::Redis { url, .. } = &self.transport
            && url.url.is_empty()
        {
            return Err(Error::config(
                "a Redis URL (or a Redis Cluster seed) is required",
            ));
        }
        if self.key.is_empty() {
            return Err(Error::config("key must not be empty"));
        }
        if self.publish_queue == 0 {
            return Err(Error::config("publish_queue must be at least 1"));
        }
        if self.max_node_stand_ins < 2 {
            return Err(Error::config("max_node_stand_ins must be at least 2"));
        }
        if self.max_message_size == 0 {
            return Err(Error::config("max_message_size must be at least 1"));
        }
        if self.requests_timeout.is_zero()
            || self.connect_timeout.is_zero()
            || self.heartbeat_interval.is_zero()
        {
            return Err(Error::config(
                "timeouts and intervals must be greater than zero",
            ));
        }
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(Error::config(
                "heartbeat timeout must exceed the heartbeat interval",
            ));
        }
        if let TransportKind::Redis { url, .. } = &self.transport
            && let Some(pem) = &url.tls_root_cert
        {
            // A CA for a plain connection would be a silent downgrade, not TLS.
            // The redis crate takes the scheme in any case.
            let tls = url
                .url
                .get(..9)
                .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"));
            if !tls {
                return Err(Error::config(format!(
                    "tls_root_cert is set but the URL {} is not rediss://",
                    redact_url(&url.url)
                )));
            }
            root_certs(pem)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.transport {
            TransportKind::Redis { url, .. } => match url.tls_root_cert {
                Some(_) => format!("{} (custom TLS root cert)", redact_url(&url.url)),
                None => redact_url(&url.url),
            },
            TransportKind::InProcess(_) => "in-process".to_owned(),
        };
        f.debug_struct("ClusterConfig")
            .field("transport", &transport)
            .field("key", &self.key)
            .field("requests_timeout", &self.requests_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("publish_queue", &self.publish_queue)
            .field("max_message_size", &self.max_message_size)
            .field("specific_response_channel", &self.specific_response_channel)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("count_peers_only", &self.count_peers_only)
            .field("strict_delivery", &self.strict_delivery)
            .field("max_node_stand_ins", &self.max_node_stand_ins)
            .finish()
    }
}

#[cfg(test)]
mod tests;
