//! The crate's error type.

use std::time::Duration;

/// Everything that can go wrong in the adapter, by failure domain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL or options are invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
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
    /// The connection to Redis is down; the operation was not attempted.
    #[error("redis connection is down; nothing was sent")]
    Disconnected,
    /// A value could not be encoded for the wire.
    #[error("encode: {0}")]
    Encode(String),
    /// Bytes from the wire could not be decoded.
    #[error("decode: {0}")]
    Decode(String),
    /// The cluster handle was closed.
    #[error("the cluster handle is closed")]
    Closed,
}

impl Error {
    /// True when Redis is unreachable or the connection dropped.
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Disconnected | Error::ConnectTimeout { .. } => true,
            Error::Redis(e) => {
                e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
            }
            _ => false,
        }
    }

    /// True when the handle was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed)
    }
}

impl From<Error> for socketioxide_core::adapter::errors::AdapterError {
    fn from(e: Error) -> Self {
        Self(Box::new(e))
    }
}

impl From<crate::codec::DecodeError> for Error {
    fn from(e: crate::codec::DecodeError) -> Self {
        Error::Decode(e.0)
    }
}

impl From<socketioxide_core::parser::ParserError> for Error {
    fn from(e: socketioxide_core::parser::ParserError) -> Self {
        Error::Encode(e.to_string())
    }
}
