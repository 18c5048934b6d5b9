#![forbid(unsafe_code)]
//! The Redis wire protocol shared by Node's `@socket.io/redis-adapter` 8.x and
//! `@socket.io/redis-emitter` 5.x, used by both `socketioxide-cluster` (the adapter) and
//! `socketioxide-cluster-emitter`.
//!
//! * [`channel`]: channel names (`<key>#<nsp>#`, `<key>-request#<nsp>#`, …).
//! * [`cluster_format`]: the ClusterAdapter messages of Node's sharded and streams
//!   adapters (`{type, data, uid, nsp}`), and the sharded adapter's channels.
//! * [`codec`]: msgpack exactly as notepack.io writes it, and a hardened reader.
//! * [`message`]: the broadcast message `[uid, packet, opts]`.
//! * [`named`]: messages between named servers (ours only).
//! * [`packet`]: how a receiver reads its `packet`, as Node's server and clients do.
//! * [`request`]: requests and responses (JSON, or msgpack when they carry binary).
//! * [`screen`]: refusing a message from its first bytes, before decoding it.
//! * [`streams`]: the stream entries and stream names of Node's streams adapter.
//! * `sentinel` (feature `sentinel`): Redis Sentinel settings, as the redis crate takes them.
//!
//! `PROTOCOL.md` at the repository root documents every byte.

pub mod channel;
pub mod cluster_format;
pub mod codec;
pub mod message;
pub mod named;
pub mod packet;
mod redact;
pub mod request;
pub mod screen;
#[cfg(feature = "sentinel")]
pub mod sentinel;
pub mod streams;
#[doc(hidden)]
pub mod test_fixtures;

pub use redact::redact_url;
