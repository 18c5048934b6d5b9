//! [`ClusterConfig`]: the validated options, one getter each, and the checks that
//! validate them.

use super::{ClusterConfig, ClusterOptions, Protocol, TransportKind};
use crate::error::Error;
use crate::transport::root_certs;
use crate::wire::redact_url;
use std::time::Duration;

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

    /// The names this server announces ([`ClusterOptions::name`]).
    pub fn names(&self) -> &[String] {
        &self.names
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

    /// How often the local rooms are compared with the room channels (sharded protocol,
    /// dynamic modes).
    pub fn room_sync_interval(&self) -> Duration {
        self.room_sync_interval
    }

    /// The protocol spoken ([`ClusterOptions::sharded`]).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The streams options ([`ClusterOptions::streams`]), when that is the protocol.
    pub fn streams(&self) -> Option<&crate::StreamsOptions> {
        (self.protocol == Protocol::Streams).then_some(&self.streams)
    }

    /// Stand-in `Sid`s of Node sockets kept at most.
    pub fn max_node_stand_ins(&self) -> usize {
        self.max_node_stand_ins
    }

    /// The Redis URL, password hidden; `None` for the in-process bus and Sentinel.
    pub fn redis_url(&self) -> Option<String> {
        match &self.transport {
            TransportKind::Redis { url, .. } => Some(redact_url(&url.url)),
            TransportKind::Sentinel(_) | TransportKind::InProcess(_) => None,
        }
    }

    /// With [`ClusterOptions::sentinel`]: the sentinel URLs (passwords hidden) and the
    /// master's name.
    pub fn sentinel(&self) -> Option<(Vec<String>, &str)> {
        match &self.transport {
            TransportKind::Sentinel(spec) => Some((spec.redacted(), spec.master_name.as_str())),
            _ => None,
        }
    }

    /// The custom TLS root certificate(s) (PEM), if set.
    pub fn tls_root_cert(&self) -> Option<&[u8]> {
        match &self.transport {
            TransportKind::Redis { url, .. } => url.tls_root_cert.as_deref(),
            TransportKind::Sentinel(spec) => spec.tls_root_cert.as_deref(),
            TransportKind::InProcess(_) => None,
        }
    }

    /// Whether the transport is a Redis Cluster ([`ClusterOptions::redis_cluster`]).
    /// Whether the transport is the in-process bus.
    pub fn is_in_process(&self) -> bool {
        matches!(&self.transport, TransportKind::InProcess(_))
    }

    /// Whether the transport is a Redis Cluster.
    pub fn is_redis_cluster(&self) -> bool {
        matches!(
            &self.transport,
            TransportKind::Redis {
                cluster: Some(_),
                ..
            }
        )
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        if let TransportKind::Redis { url, .. } = &self.transport
            && url.url.is_empty()
        {
            return Err(Error::config(
                "a Redis URL (or a Redis Cluster seed) is required",
            ));
        }
        if let Some(option) = self.misplaced {
            return Err(Error::config(format!(
                "{option} is an option of ClusterOptions::sentinel only"
            )));
        }
        if let TransportKind::Sentinel(spec) = &self.transport {
            crate::transport::sentinel::validate(spec)?;
            if let Protocol::Sharded(_) = self.protocol {
                return Err(Error::config(
                    "Sentinel carries the classic and streams protocols only (not sharded)",
                ));
            }
        }
        if self.names.len() > crate::wire::named::MAX_NAMES
            || !self.names.iter().all(|n| crate::wire::named::valid_name(n))
        {
            return Err(Error::config(
                "names: at most 8, each 1 to 64 bytes without '#'",
            ));
        }
        if self.key.is_empty() {
            return Err(Error::config("key must not be empty"));
        }
        if self.publish_queue == 0 {
            return Err(Error::config("publish_queue must be at least 1"));
        }
        if let Protocol::Sharded(_) = self.protocol
            && matches!(self.transport, TransportKind::InProcess(_))
        {
            return Err(Error::config("the sharded protocol needs Redis"));
        }
        if self.protocol == Protocol::Streams {
            let s = &self.streams;
            match &self.transport {
                TransportKind::InProcess(_) => {
                    return Err(Error::config("the streams protocol needs Redis"));
                }
                TransportKind::Sentinel(_) if s.use_sharded_pub_sub => {
                    return Err(Error::config(
                        "streams over Sentinel carry their pub/sub part classic (use_sharded_pub_sub is for a Redis Cluster or one Redis 7)",
                    ));
                }
                _ => {}
            }
            if s.stream_name.is_empty()
                || s.stream_count == 0
                || s.max_len == 0
                || s.read_count == 0
                || s.block_time.is_zero()
            {
                return Err(Error::config(
                    "streams: stream_name must not be empty; stream_count, max_len, read_count and block_time must be above zero",
                ));
            }
        }
        if self.room_sync_interval.is_zero() {
            return Err(Error::config(
                "room_sync_interval must be greater than zero",
            ));
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
            TransportKind::Sentinel(spec) => format!(
                "master {:?} of sentinels {:?}{}",
                spec.master_name,
                spec.redacted(),
                if spec.master_tls { " (TLS)" } else { "" }
            ),
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
            .field("protocol", &self.protocol)
            .field("streams", &self.streams())
            .finish()
    }
}
