//! Emitter options, with Node's names and defaults: [`EmitterOptions`] is the builder,
//! [`EmitterConfig`] what it builds once validated.

pub(crate) use socketioxide_cluster_wire::redact_url;

use crate::Error;
pub use socketioxide_cluster_wire::cluster_format::SubscriptionMode;
use socketioxide_cluster_wire::sentinel::SentinelSpec;
use std::time::Duration;

/// Default Redis URL of [`EmitterOptions::default`].
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// Default key prefix, as in Node (`socket.io`).
pub const DEFAULT_KEY: &str = "socket.io";

/// Options of an [`Emitter`](crate::Emitter).
///
/// | option | default | Node name |
/// | --- | --- | --- |
/// | URL ([`new`](Self::new)) | `redis://127.0.0.1:6379` ([`Default`]) | (the redis client) |
/// | [`key`](Self::key) | `"socket.io"` | `key` |
/// | [`connect_timeout`](Self::connect_timeout) | 5 s | (client option) |
/// | [`publish_timeout`](Self::publish_timeout) | 5 s | — |
/// | [`queue_capacity`](Self::queue_capacity) | 65,536 messages | — (node-redis queues without a bound) |
/// | [`requests_timeout`](Self::requests_timeout) | 5 s | (the servers' `requestsTimeout`) |
/// | [`tls_root_cert`](Self::tls_root_cert) | system roots | (client `tls.ca`) |
/// | [`sharded`](Self::sharded) | classic | (the servers' `createShardedAdapter`; Node's emitter has none) |
/// | [`redis_cluster`](Self::redis_cluster) | one Redis | (a cluster client) |
/// | [`sentinel`](Self::sentinel), [`master_auth`](Self::master_auth), [`master_tls`](Self::master_tls) | one Redis | (ioredis `sentinels`, `name`, `username`/`password`, `tls`) |
///
/// The key must be the one the servers use (Node adapter `key`, `ClusterOptions::key`).
///
/// `Debug` never shows a password from the URL.
#[derive(Clone)]
pub struct EmitterOptions {
    pub(crate) url: String,
    pub(crate) key: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) publish_timeout: Duration,
    pub(crate) queue_capacity: usize,
    pub(crate) requests_timeout: Duration,
    /// Names this emitter answers to (`name`).
    pub(crate) names: Vec<String>,
    pub(crate) tls_root_cert: Option<Vec<u8>>,
    /// The other seeds of a Redis Cluster (`url` is the first).
    pub(crate) cluster: Option<Vec<String>>,
    pub(crate) sharded: Option<SubscriptionMode>,
    /// With [`streams`](Self::streams): the servers' streams.
    pub(crate) streams: Option<crate::streams::StreamTarget>,
    /// With [`sentinel`](Self::sentinel): where the master is asked for (`url` unused).
    pub(crate) sentinel: Option<SentinelSpec>,
    /// A Sentinel-only option set on other options (an error in `build`).
    misplaced: Option<&'static str>,
}

impl EmitterOptions {
    /// Options for the Redis server at `url`
    /// (`redis://[user:password@]host:port[/db]`, `rediss://…` needs TLS support in
    /// `redis`, `redis+unix:///path`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key: DEFAULT_KEY.into(),
            connect_timeout: Duration::from_secs(5),
            publish_timeout: Duration::from_secs(5),
            queue_capacity: crate::DEFAULT_QUEUE,
            requests_timeout: Duration::from_secs(5),
            names: Vec::new(),
            tls_root_cert: None,
            cluster: None,
            sharded: None,
            sentinel: None,
            streams: None,
            misplaced: None,
        }
    }

    /// Speak the Streams protocol of servers on Node's `@socket.io/redis-streams-adapter`
    /// 0.3.x or `ClusterOptions::streams`: broadcasts, joins, leaves and disconnects are
    /// appended to `stream_name` (Node's `streamName`, default `socket.io`; with
    /// [`stream_count`](Self::stream_count) the namespace's stream among several), server-side
    /// emits are published. The count an operation returns is the namespace's servers.
    /// A standalone Redis, a Redis Cluster (each stream is written on its master) or the
    /// master of a Sentinel setup.
    pub fn streams(mut self, stream_name: impl Into<String>) -> Self {
        self.streams = Some(crate::streams::StreamTarget {
            stream_name: stream_name.into(),
            stream_count: 1,
            max_len: 10_000,
            sharded_pub_sub: false,
        });
        self
    }

    /// Streams: the servers' `useShardedPubSub` (default false): server-side emits are
    /// `SPUBLISH`ed and servers counted with `PUBSUB SHARDNUMSUB`. An error in
    /// [`build`](Self::build) without [`streams`](Self::streams).
    pub fn use_sharded_pub_sub(mut self, on: bool) -> Self {
        match &mut self.streams {
            Some(s) => s.sharded_pub_sub = on,
            None => self.misplaced = Some("use_sharded_pub_sub"),
        }
        self
    }

    /// Streams: the servers' `streamCount` (default 1). Node's streams emitter has none
    /// (it writes the base stream only). An error in [`build`](Self::build) without
    /// [`streams`](Self::streams).
    pub fn stream_count(mut self, n: u32) -> Self {
        match &mut self.streams {
            Some(s) => s.stream_count = n,
            None => self.misplaced = Some("stream_count"),
        }
        self
    }

    /// Streams: `maxLen`, the length each `XADD` trims its stream to, about (default
    /// 10,000, Node's). An error in [`build`](Self::build) without
    /// [`streams`](Self::streams).
    pub fn max_len(mut self, n: usize) -> Self {
        match &mut self.streams {
            Some(s) => s.max_len = n,
            None => self.misplaced = Some("max_len"),
        }
        self
    }

    /// Options for the master of a Redis Sentinel setup: `sentinels` are the
    /// sentinels' URLs (`redis://[user:password@]host:port`, `rediss://` for TLS; their
    /// credentials are the sentinels' own, the same in every URL), `master_name` the
    /// name they monitor the master under. The master is asked of the sentinels (and
    /// checked with `ROLE`) when the emitter connects and again after a failed
    /// `PUBLISH`, and a watcher on one sentinel drops the connection as soon as the
    /// sentinels announce another master (`+switch-master`), so the next operation goes
    /// to the new one. Classic protocol.
    pub fn sentinel<S: Into<String>>(
        sentinels: impl IntoIterator<Item = S>,
        master_name: impl Into<String>,
    ) -> Self {
        let mut o = Self::new("");
        o.sentinel = Some(SentinelSpec {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master_name: master_name.into(),
            master_username: None,
            master_password: None,
            master_tls: false,
            tls_root_cert: None,
        });
        o
    }

    /// Sentinel options: the ACL user (`None`: the default user) and password of the
    /// master. An error in [`build`](Self::build) for other options.
    pub fn master_auth(mut self, username: Option<&str>, password: impl Into<String>) -> Self {
        match &mut self.sentinel {
            Some(spec) => {
                spec.master_username = username.map(str::to_owned);
                spec.master_password = Some(password.into());
            }
            None => self.misplaced = Some("master_auth"),
        }
        self
    }

    /// Sentinel options: reach the master over TLS (system roots, or
    /// [`tls_root_cert`](Self::tls_root_cert), which then applies to both legs).
    /// Default false. An error in [`build`](Self::build) for other options.
    pub fn master_tls(mut self, yes: bool) -> Self {
        match &mut self.sentinel {
            Some(spec) => spec.master_tls = yes,
            None => self.misplaced = Some("master_tls"),
        }
        self
    }

    /// Options for a Redis Cluster reached through `seeds` (URLs of any of its nodes;
    /// the first one's credentials and TLS for all). Messages are routed to the node
    /// that owns their channel's slot (a classic `PUBLISH` reaches every node anyway).
    pub fn redis_cluster<S: Into<String>>(seeds: impl IntoIterator<Item = S>) -> Self {
        let mut seeds = seeds.into_iter().map(Into::into);
        let mut o = Self::new(seeds.next().unwrap_or_default());
        o.cluster = Some(seeds.collect());
        o
    }

    /// Speak the sharded protocol of servers on `createShardedAdapter` (Node) or
    /// `ClusterOptions::sharded` (ours) in `mode`: ClusterAdapter messages with uid
    /// `"emitter"`, `SPUBLISH`ed on the namespace channel, which servers receive in every
    /// mode (room channels are used only in the dynamic modes, as the servers do).
    pub fn sharded(mut self, mode: SubscriptionMode) -> Self {
        self.sharded = Some(mode);
        self
    }

    /// Channel prefix (Node: `key`). Default `socket.io`.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// How long [`Emitter::connect`](crate::Emitter::connect) waits for Redis. Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one operation waits for Redis to acknowledge its `PUBLISH`. Default 5 s.
    /// Applies to connections given to [`Emitter::from_connection`](crate::Emitter::from_connection) too.
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// A name this emitter answers to (repeatable, up to 8; 1 to 64 bytes, no `#`):
    /// it heartbeats every 2 s on `<key>-heartbeat` with its names (marked as an
    /// emitter: servers do not count it as one of them), and answers named requests with
    /// the handlers of [`Emitter::on_named`](crate::Emitter::on_named).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.names.contains(&name) {
            self.names.push(name);
        }
        self
    }

    /// How long a request from the emitter (`fetch_sockets`, `all_rooms`,
    /// `server_side_emit_with_ack`) waits for the servers' answers. Default 5 s (Node's
    /// `requestsTimeout`). `emit_with_ack` takes its own.
    pub fn requests_timeout(mut self, timeout: Duration) -> Self {
        self.requests_timeout = timeout;
        self
    }

    /// How many messages may wait for the writer (see [`Emitter`](crate::Emitter)): a
    /// caller finding the queue full waits for room. Default 65,536 (about 10 MB of
    /// typical broadcasts).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// Trust this CA (PEM, one or more certificates) for a `rediss://` URL instead of
    /// the system's roots. Default: system roots.
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// Validates the options (a `tls_root_cert` without a `rediss://` URL or without a
    /// PEM certificate, an empty key, a zero timeout are [`Error::Config`]);
    /// [`Emitter::connect`](crate::Emitter::connect) does it for you.
    pub fn build(self) -> Result<EmitterConfig, Error> {
        self.validate()?;
        Ok(EmitterConfig(self))
    }

    fn validate(&self) -> Result<(), Error> {
        if let Some(option) = self.misplaced {
            return Err(Error::Config(format!(
                "{option} is an option of EmitterOptions::{} only",
                if option.starts_with("master") {
                    "sentinel"
                } else {
                    "streams"
                }
            )));
        }
        if let Some(st) = &self.streams {
            if st.stream_name.is_empty() || st.stream_count == 0 || st.max_len == 0 {
                return Err(Error::Config(
                    "streams: the stream name must not be empty, stream_count and max_len above zero".into(),
                ));
            }
            if self.sharded.is_some() {
                return Err(Error::Config(
                    "streams: no sharded mode (use_sharded_pub_sub is the streams' own)".into(),
                ));
            }
        }
        if let Some(spec) = &self.sentinel {
            let mut spec = spec.clone();
            spec.tls_root_cert = self.tls_root_cert.clone().map(Into::into);
            spec.builder().map_err(Error::Config)?;
            if self.sharded.is_some() {
                return Err(Error::Config(
                    "Sentinel carries the classic protocol only (not sharded)".into(),
                ));
            }
        }
        if let Some(pem) = &self.tls_root_cert {
            if self.sentinel.is_none() && !self.url.starts_with("rediss:") {
                return Err(Error::Config("tls_root_cert needs a rediss:// URL".into()));
            }
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(Error::Config(
                    "tls_root_cert holds no PEM CERTIFICATE block".into(),
                ));
            }
        }
        if self.key.is_empty() {
            return Err(Error::Config("key must not be empty".into()));
        }
        if self.url.is_empty() && self.sentinel.is_none() {
            return Err(Error::Config(
                "a Redis URL (or Redis Cluster seed) is required".into(),
            ));
        }
        if self.names.len() > socketioxide_cluster_wire::named::MAX_NAMES
            || !self
                .names
                .iter()
                .all(|n| socketioxide_cluster_wire::named::valid_name(n))
        {
            return Err(Error::Config(
                "names: at most 8, each 1 to 64 bytes without '#'".into(),
            ));
        }
        if self.requests_timeout.is_zero() {
            return Err(Error::Config("requests_timeout must be above zero".into()));
        }
        if self.queue_capacity == 0 {
            return Err(Error::Config("queue_capacity must be at least 1".into()));
        }
        if self.connect_timeout.is_zero() || self.publish_timeout.is_zero() {
            return Err(Error::Config("timeouts must be greater than zero".into()));
        }
        Ok(())
    }
}

/// Validated emitter options, built by [`EmitterOptions::build`]: one getter per option.
#[derive(Clone, Debug)]
pub struct EmitterConfig(pub(crate) EmitterOptions);

impl EmitterConfig {
    /// Channel prefix (Node: `key`).
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// The Redis URL, its password replaced by `***`.
    pub fn redis_url(&self) -> String {
        redact_url(&self.0.url)
    }

    /// How long connecting waits for Redis.
    pub fn connect_timeout(&self) -> Duration {
        self.0.connect_timeout
    }

    /// How long one operation waits for Redis to acknowledge its `PUBLISH`.
    pub fn publish_timeout(&self) -> Duration {
        self.0.publish_timeout
    }

    /// The custom TLS root certificate(s) (PEM), if set.
    pub fn tls_root_cert(&self) -> Option<&[u8]> {
        self.0.tls_root_cert.as_deref()
    }

    /// Whether the emitter reaches a Redis Cluster.
    pub fn is_redis_cluster(&self) -> bool {
        self.0.cluster.is_some()
    }

    /// The sharded protocol's mode, when it is the one spoken.
    pub fn sharded(&self) -> Option<SubscriptionMode> {
        self.0.sharded
    }

    /// With [`EmitterOptions::sentinel`]: the sentinel URLs (passwords hidden) and the
    /// master's name.
    pub fn sentinel(&self) -> Option<(Vec<String>, &str)> {
        let spec = self.0.sentinel.as_ref()?;
        Some((spec.redacted(), spec.master_name.as_str()))
    }
}

impl Default for EmitterOptions {
    /// `redis://127.0.0.1:6379`, key `socket.io`.
    fn default() -> Self {
        Self::new(DEFAULT_URL)
    }
}

impl std::fmt::Debug for EmitterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmitterOptions")
            .field("url", &redact_url(&self.url))
            .field("key", &self.key)
            .field("connect_timeout", &self.connect_timeout)
            .field("publish_timeout", &self.publish_timeout)
            .field("custom_tls_root_cert", &self.tls_root_cert.is_some())
            .field("redis_cluster", &self.cluster.is_some())
            .field("sharded", &self.sharded)
            .field("streams", &self.streams)
            .field(
                "sentinel",
                &self
                    .sentinel
                    .as_ref()
                    .map(|s| (s.redacted(), &s.master_name)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_node() {
        let o = EmitterOptions::new("redis://h").build().unwrap();
        assert_eq!(o.key(), "socket.io");
        assert_eq!(o.redis_url(), "redis://h");
        assert_eq!(o.connect_timeout(), Duration::from_secs(5));
        assert_eq!(o.publish_timeout(), Duration::from_secs(5));
        assert!(o.tls_root_cert().is_none());
        let d = EmitterOptions::default().build().unwrap();
        assert_eq!(d.redis_url(), "redis://127.0.0.1:6379");
    }

    #[test]
    fn debug_never_shows_a_password() {
        for (url, secret, shown) in [
            (
                "redis://alice:s3cret@host:6380/2",
                "s3cret",
                "redis://alice:***@host:6380/2",
            ),
            ("redis://:s3cret@host", "s3cret", "redis://:***@host"),
            ("rediss://s3cret@host", "s3cret", "rediss://***@host"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=s3cret",
                "s3cret",
                "redis+unix:///tmp/r.sock?db=1&pass=***",
            ),
        ] {
            let dbg = format!("{:?}", EmitterOptions::new(url));
            assert!(!dbg.contains(secret), "{dbg}");
            assert!(dbg.contains(shown), "{dbg}");
        }
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn invalid_options_fail() {
        for o in [
            EmitterOptions::new("redis://h").key(""),
            EmitterOptions::new("redis://h").publish_timeout(Duration::ZERO),
            EmitterOptions::new("redis://h").connect_timeout(Duration::ZERO),
            EmitterOptions::new("redis://h").tls_root_cert("-----BEGIN CERTIFICATE-----"),
            EmitterOptions::new("rediss://h").tls_root_cert("not a pem"),
        ] {
            let dbg = format!("{o:?}");
            assert!(matches!(o.build(), Err(Error::Config(_))), "{dbg}");
        }
    }
}

#[cfg(test)]
mod sentinel_tests {
    use super::*;

    #[test]
    fn sentinel_options_are_checked_and_never_show_a_password() {
        let o = EmitterOptions::sentinel(["redis://:s-pw@127.0.0.1:26379"], "mymaster")
            .master_auth(None, "m-pw")
            .build()
            .unwrap();
        let (urls, name) = o.sentinel().unwrap();
        assert_eq!(
            (urls[0].as_str(), name),
            ("redis://:***@127.0.0.1:26379", "mymaster")
        );
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("-pw"), "{dbg}");
        for (opts, why) in [
            (
                EmitterOptions::sentinel(Vec::<String>::new(), "m"),
                "at least one sentinel",
            ),
            (
                EmitterOptions::sentinel(["redis://h:1"], "m").sharded(SubscriptionMode::Static),
                "classic protocol only",
            ),
            (
                EmitterOptions::new("redis://h").master_tls(true),
                "master_tls is an option",
            ),
        ] {
            let err = opts.build().expect_err(why).to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
