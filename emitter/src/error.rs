//! The one error type of the crate.

use std::time::Duration;

/// Why an emitter operation failed.
///
/// URLs in messages never show a password (`redis://user:***@host`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event name is reserved by socket.io and cannot be emitted (Node's emitter
    /// throws `"<event>" is a reserved event name`).
    #[error("{0:?} is a reserved event name")]
    ReservedEvent(String),
    /// The options are invalid (bad URL, empty key, zero timeout).
    #[error("invalid emitter options: {0}")]
    Config(String),
    /// Redis refused or failed the initial connection.
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// What Redis or the network said.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not accept the initial connection within the connect timeout.
    #[error("cannot connect to Redis at {url}: no answer within {timeout:?}")]
    ConnectTimeout {
        /// The URL, password redacted.
        url: String,
        /// The configured connect timeout.
        timeout: Duration,
    },
    /// A `PUBLISH` failed (connection lost, Redis error). The message may not have been
    /// delivered; a connection made by [`Emitter::connect`](crate::Emitter::connect)
    /// reconnects by itself, so a later call may succeed.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer a `PUBLISH` within the publish timeout. The message may or
    /// may not have been delivered.
    #[error("Redis did not answer PUBLISH within {0:?}")]
    Timeout(Duration),
    /// Messages queued earlier (broadcasts, which resolve once queued) failed since the
    /// previous [`flush`](crate::Emitter::flush): `failed` of them, the last because of
    /// `last`. Each is counted in [`Emitter::stats`](crate::Emitter::stats) too.
    #[error("{failed} queued messages were not published (last: {last})")]
    NotPublished {
        /// How many failed since the previous flush.
        failed: u64,
        /// The last failure.
        last: String,
    },
    /// A request did not get every answer within its timeout: how many servers
    /// answered out of how many, which of our servers went silent, and what arrived
    /// ([`Incomplete::partial`](crate::Incomplete)).
    #[error("timeout: {0}")]
    Incomplete(Box<crate::Incomplete>),
    /// No live server of ours has this name.
    #[error("no live server has the name {0:?}")]
    NoSuchServer(String),
    /// A named request did not get every reply in time.
    #[error("{operation} to {name:?}: no answer within {timeout:?} from {missing:?} ({} replies)", replies.len())]
    NoAnswer {
        /// `ask_one` or `ask_all`.
        operation: &'static str,
        /// The name asked.
        name: String,
        /// Members that did not answer.
        missing: Vec<String>,
        /// The replies received.
        replies: Vec<crate::NamedReply>,
        /// How long the call waited.
        timeout: Duration,
    },
    /// The emitter's writer has stopped (its runtime shut down).
    #[error("the emitter is closed")]
    Closed,
    /// The arguments could not be serialized to msgpack.
    #[error("cannot encode the arguments: {0}")]
    Encode(String),
}

impl Error {
    /// Whether Redis or the servers did not answer in time (`Timeout`, `Incomplete`,
    /// `ConnectTimeout`).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::Timeout(_)
                | Error::Incomplete(_)
                | Error::ConnectTimeout { .. }
                | Error::NoAnswer { .. }
        )
    }

    /// What a timed-out request had gathered.
    pub fn incomplete(&self) -> Option<&crate::Incomplete> {
        match self {
            Error::Incomplete(i) => Some(i),
            _ => None,
        }
    }
}
