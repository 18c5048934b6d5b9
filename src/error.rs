//! The crate's error type.

use crate::wire::named::NamedReply;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// A boxed error from a dependency (a serializer, the msgpack codec, a parser).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in the adapter, by failure domain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL or options are invalid.
    #[error("invalid configuration: {0}")]
    Config(#[source] ConfigError),
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis could not be reached within the connect timeout.
    #[error("could not reach redis at {url} within {timeout:?}")]
    ConnectTimeout {
        /// The URL, without credentials.
        url: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// Redis Sentinel named no usable master: the sentinels could not be reached or
    /// asked, they know no master of that name, or the node they name refused us (a
    /// wrong password) or is not a master (`ROLE`). Holds the redis crate's error.
    #[error("no master {master:?} from the sentinels {sentinels:?}: {source}")]
    NoMaster {
        /// The master name asked for.
        master: String,
        /// The sentinel URLs, without credentials.
        sentinels: Vec<String>,
        /// What the sentinels or the master said.
        #[source]
        source: redis::RedisError,
    },
    /// The connection to Redis is down; the operation was not attempted.
    #[error("redis connection is down; nothing was sent")]
    Disconnected,
    /// Redis did not accept a publish that the caller waited for (join, leave,
    /// disconnect, server-side emit): the message is lost. Holds the Redis error.
    #[error("redis did not accept the message (it is lost): {0}")]
    NotPublished(#[source] redis::RedisError),
    /// Redis did not answer a publish that the caller waited for within the response
    /// timeout (`connect_timeout`): it may still be delivered, late, or not at all.
    #[error("redis did not confirm the message in time (it may still be delivered): {0}")]
    Unconfirmed(#[source] redis::RedisError),
    /// A value could not be encoded for the wire.
    #[error("encode: {0}")]
    Encode(#[source] BoxError),
    /// Bytes from the wire could not be decoded.
    #[error("decode: {0}")]
    Decode(#[source] BoxError),
    /// The cluster handle was closed.
    #[error("the cluster handle is closed")]
    Closed,
    /// A cluster-wide request did not get every reply within `requests_timeout`.
    /// `partial` holds what the servers that did answer replied.
    #[error(
        "{operation} timed out after {timeout:?}: {received} of {expected} servers replied ({} missing)",
        expected.saturating_sub(*received)
    )]
    Timeout {
        /// Which operation (`fetchSockets`, `allRooms`, `serverSideEmit`, …).
        operation: &'static str,
        /// Replies expected (other servers subscribed to the namespace's request channel).
        expected: usize,
        /// Replies received.
        received: usize,
        /// How long the call waited.
        timeout: Duration,
        /// The replies that did arrive.
        partial: Partial,
    },
    /// Some servers are hung (subscribed to the namespace but silent, no heartbeat for
    /// `heartbeat_timeout`): the call did not wait for them and returned as soon as the
    /// others answered. `partial` holds those answers.
    #[error(
        "{operation}: {received} servers replied; not waited for unresponsive servers {servers:?}"
    )]
    Unresponsive {
        /// Which operation.
        operation: &'static str,
        /// uids of the hung servers.
        servers: Vec<String>,
        /// Replies received.
        received: usize,
        /// The replies that did arrive.
        partial: Partial,
    },
    /// No live server has this name (see [`ClusterOptions::name`](crate::ClusterOptions::name)).
    #[error("no live server has the name {0:?}")]
    NoSuchServer(String),
    /// A request to named servers did not get every reply in time: `missing` are the
    /// uids that did not answer, `replies` what did arrive.
    #[error("{operation} to {name:?}: no answer within {timeout:?} from {missing:?} ({} replies)", replies.len())]
    NoAnswer {
        /// `ask_one` or `ask_all`.
        operation: &'static str,
        /// The name asked.
        name: String,
        /// Members that did not answer.
        missing: Vec<String>,
        /// The replies received.
        replies: Vec<NamedReply>,
        /// How long the call waited.
        timeout: Duration,
    },
    /// No server of the cluster knows this socket id.
    #[error("no server of the cluster has a socket with id {0:?} in this namespace")]
    SocketNotFound(String),
    /// A remote-socket operation (`RemoteSocket::emit`, `join`, …) on a socket of a Node
    /// server whose stand-in `Sid` no server of the cluster has any more: the socket
    /// disconnected (or the `Sid` was never one that `fetch_sockets` returned).
    #[error(
        "no socket of a Node server has stand-in id {sid} in namespace {nsp:?} any more (disconnected?)"
    )]
    UnknownSocket {
        /// The stand-in `Sid`.
        sid: String,
        /// The namespace.
        nsp: String,
    },
    /// The operation has no counterpart in the protocol spoken (for example a legacy
    /// request over the sharded protocol).
    #[error("not supported by this protocol: {0}")]
    Unsupported(&'static str),
    /// This server has no such namespace (yet).
    #[error("namespace {0:?} is not registered on this server")]
    UnknownNamespace(String),
    /// Strict delivery ([`ClusterOptions::strict_delivery`](crate::ClusterOptions::strict_delivery)):
    /// Redis accepted the message but it reached fewer servers than are alive (a server
    /// was reconnecting its subscriber). It may have reached some.
    #[error("the message reached {reached} of {live} live subscriber connections on {channel}")]
    UnderDelivered {
        /// The channel published on.
        channel: String,
        /// Subscriber connections expected (this server's own included).
        live: usize,
        /// Subscriber connections Redis delivered it to.
        reached: usize,
    },
}

/// Why options or a URL are invalid: a message, and the error behind it when there is
/// one (a URL the redis crate could not parse, a PEM that does not parse).
#[derive(Debug)]
pub struct ConfigError {
    message: String,
    source: Option<BoxError>,
}

impl ConfigError {
    /// An invalid option, described by `message`.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An invalid option, described by `message`, because of `source`.
    pub(crate) fn caused_by(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl Error {
    /// [`Error::Config`] with `message`.
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config(ConfigError::new(message))
    }

    /// [`Error::Config`] with `message`, caused by `source`.
    pub(crate) fn config_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Config(ConfigError::caused_by(message, source))
    }
}

/// What the servers that answered a timed-out request replied.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Partial {
    /// Nothing useful to keep.
    None,
    /// Socket ids or room names.
    Names(Vec<String>),
    /// Sockets with their rooms and data.
    Sockets(Vec<crate::SocketInfo>),
    /// One reply per server that answered (server-side emit acks, custom requests).
    Replies(Vec<rmpv::Value>),
}

impl Error {
    /// True when Redis is unreachable or the connection dropped.
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Disconnected | Error::ConnectTimeout { .. } | Error::NoMaster { .. } => true,
            Error::Redis(e) => {
                e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
            }
            _ => false,
        }
    }

    /// True when a cluster-wide request timed out (see [`Error::Timeout`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::NoAnswer { .. })
    }

    /// The partial results of a timed-out request.
    pub fn partial(&self) -> Option<&Partial> {
        match self {
            Error::Timeout { partial, .. } | Error::Unresponsive { partial, .. } => Some(partial),
            _ => None,
        }
    }

    /// Applies `f` to the partial results of a timed-out or unresponsive request; other
    /// errors pass through.
    pub(crate) fn map_partial(self, f: impl FnOnce(Partial) -> Partial) -> Self {
        match self {
            Error::Timeout {
                operation,
                expected,
                received,
                timeout,
                partial,
            } => Error::Timeout {
                operation,
                expected,
                received,
                timeout,
                partial: f(partial),
            },
            Error::Unresponsive {
                operation,
                servers,
                received,
                partial,
            } => Error::Unresponsive {
                operation,
                servers,
                received,
                partial: f(partial),
            },
            other => other,
        }
    }

    /// True when the handle was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed)
    }

    /// True when the socket an operation names is on no server of the cluster
    /// ([`Error::SocketNotFound`], [`Error::UnknownSocket`]).
    pub fn is_socket_not_found(&self) -> bool {
        matches!(self, Error::SocketNotFound(_) | Error::UnknownSocket { .. })
    }

    /// True when a message reached fewer servers than are alive (strict delivery).
    pub fn is_under_delivered(&self) -> bool {
        matches!(self, Error::UnderDelivered { .. })
    }
}

impl From<Error> for socketioxide_core::adapter::errors::AdapterError {
    fn from(e: Error) -> Self {
        Self(Box::new(e))
    }
}

impl From<crate::wire::codec::DecodeError> for Error {
    fn from(e: crate::wire::codec::DecodeError) -> Self {
        Error::Decode(Box::new(e))
    }
}

impl From<socketioxide_core::parser::ParserError> for Error {
    fn from(e: socketioxide_core::parser::ParserError) -> Self {
        Error::Encode(Box::new(e))
    }
}

/// Getting this crate's [`Error`] back out of the errors socketioxide returns.
impl Error {
    /// This crate's error in `err`: `err` itself, or the first error of its
    /// [`source`](std::error::Error::source) chain that is one. `None` when the failure
    /// did not come from the adapter (e.g. a local socket's full buffer).
    ///
    /// socketioxide hands the adapter's error back wrapped: `io.emit(..)` fails with
    /// `BroadcastError::Adapter(AdapterError(Box<Error>))`, `emit_with_ack(..)` with
    /// `EmitWithAckError::Adapter(Box<Error>)`; `fetch_sockets()` returns it unwrapped.
    ///
    /// ```
    /// use socketioxide::{AdapterError, BroadcastError, EmitWithAckError, SocketError};
    /// use socketioxide_cluster::Error;
    ///
    /// // What `io.emit(..)` returns after `Cluster::close`:
    /// let err = BroadcastError::Adapter(AdapterError::from(Error::Closed));
    /// assert!(Error::find_in(&err).is_some_and(Error::is_closed));
    ///
    /// // What `emit_with_ack(..)` returns while Redis is down:
    /// let err = EmitWithAckError::Adapter(Box::new(Error::Disconnected));
    /// assert!(Error::find_in(&err).is_some_and(Error::is_connection_error));
    ///
    /// // A local delivery failure is not the adapter's:
    /// let err = BroadcastError::Socket(vec![SocketError::InternalChannelFull]);
    /// assert!(Error::find_in(&err).is_none());
    ///
    /// # async fn usage(
    /// #     io: socketioxide::SocketIo<
    /// #         socketioxide_cluster::ClusterAdapter<socketioxide::adapter::Emitter>,
    /// #     >,
    /// # ) {
    /// if let Err(e) = io.emit("news", &"hello").await {
    ///     match Error::find_in(&e) {
    ///         Some(e) if e.is_connection_error() => { /* Redis is down: retry later */ }
    ///         Some(e) => eprintln!("cluster: {e}"),
    ///         None => eprintln!("local delivery: {e}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn find_in<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Error> {
        let mut next: Option<&'a (dyn StdError + 'static)> = Some(err);
        while let Some(e) = next {
            if let Some(ours) = e.downcast_ref::<Error>() {
                return Some(ours);
            }
            next = e.source();
        }
        None
    }
}

#[cfg(test)]
mod find_in_tests {
    use super::Error;
    use socketioxide_core::adapter::errors::{AdapterError, BroadcastError, SocketError};

    /// An application error wrapping ours one level deeper than socketioxide does.
    #[derive(Debug, thiserror::Error)]
    #[error("app: {0}")]
    struct App(#[source] BroadcastError);

    #[test]
    fn finds_the_error_itself_and_through_every_wrapper() {
        assert!(Error::find_in(&Error::Closed).is_some_and(Error::is_closed));
        let boxed = BroadcastError::Adapter(AdapterError::from(Error::Disconnected));
        assert!(matches!(Error::find_in(&boxed), Some(Error::Disconnected)));
        let deeper = App(BroadcastError::Adapter(AdapterError::from(Error::Closed)));
        assert!(matches!(Error::find_in(&deeper), Some(Error::Closed)));
    }

    #[test]
    fn errors_that_are_not_ours_give_none() {
        let local = BroadcastError::Socket(vec![SocketError::Closed]);
        assert!(Error::find_in(&local).is_none());
        let other = AdapterError(Box::new(std::io::Error::other("x")));
        assert!(Error::find_in(&other).is_none());
    }
}
