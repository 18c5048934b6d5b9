#![forbid(unsafe_code)]
//! Emit to a socket.io cluster from processes that hold no sockets — workers, cron jobs,
//! HTTP APIs, CLIs — through Redis, writing exactly what Node's
//! [`@socket.io/redis-emitter`](https://github.com/socketio/socket.io-redis-emitter) 5.1.0
//! writes. Node servers on `@socket.io/redis-adapter` 8.x and Rust servers on
//! `socketioxide-cluster` receive it alike.
//!
//! ```no_run
//! # async fn run() -> Result<(), socketioxide_cluster_emitter::Error> {
//! use socketioxide_cluster_emitter::{Emitter, EmitterOptions};
//! # let (job_id, result) = (7, "ok");
//!
//! // Key prefix "socket.io" by default: it must be the servers' key.
//! let emitter = Emitter::connect(EmitterOptions::new("redis://127.0.0.1:6379")).await?;
//!
//! emitter.emit("announcement", &("hello", 42)).await?; // two arguments
//! emitter
//!     .of("/admin")
//!     .to("room1")
//!     .to("room2")
//!     .except("room3")
//!     .emit("event", &serde_json::json!({"a": 1}))
//!     .await?;
//! // Binary: anything that serializes as bytes (bytes::Bytes with its "serde" feature,
//! // serde_bytes) is a Buffer for Node clients.
//! let payload = bytes::Bytes::from_static(b"\x00\x01");
//! emitter.to("room1").volatile().compress(false).emit("bin", &(payload,)).await?;
//!
//! emitter.in_("room1").sockets_join("room2").await?;
//! emitter.in_("room1").sockets_leave("room2").await?;
//! emitter.in_("room1").disconnect_sockets(true).await?;
//! emitter.server_side_emit("job-done", &(job_id, result)).await?;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! An emitter that only emits is a Redis *publisher* only, as Node's: one connection,
//! no subscription. Requests (`fetch_sockets`, `all_rooms`, `server_count`,
//! `server_side_emit_with_ack`, `emit_with_ack`, named requests) open what they need for
//! replies on first use (see `Emitter::fetch_sockets`). Each operation is
//! encoded once, at call time, and queued for the emitter's one writer task, which
//! sends what is queued as pipelines (up to 512 messages per round trip), in queue
//! order:
//!
//! * a broadcast ([`emit`](Emitter::emit)) resolves **once queued**, as Node's emitter
//!   returns once it handed the message to its Redis client: a loop of
//!   `emit(..).await` runs at pipeline speed, not one round trip per call.
//!   [`confirmed()`](EmitFuture::confirmed) waits for Redis instead and gives the count
//!   of subscribers that received it;
//! * the other operations (`sockets_join`, `sockets_leave`, `disconnect_sockets`,
//!   `server_side_emit`) resolve once Redis accepted them, with that count;
//! * nothing is lost silently: a queued broadcast that fails later is counted in
//!   [`Emitter::stats`] and reported by the next [`Emitter::flush`], which also waits
//!   until everything queued before it is settled (call it before a process exits).
//!   The queue holds at most [`EmitterOptions::queue_capacity`] messages (65,536 by
//!   default); a caller finding it full waits for room.
//!
//! | operation | channel | payload |
//! | --- | --- | --- |
//! | `emit` to all, or to 2+ rooms | `<key>#<nsp>#` | msgpack `["emitter", {type: 2, data: [event, ...args], nsp}, {rooms, flags, except}]` |
//! | `emit` to exactly one room | `<key>#<nsp>#<room>#` | the same |
//! | `sockets_join` / `sockets_leave` | `<key>-request#<nsp>#` | JSON `{"type":2\|3,"opts":{"rooms":[..],"except":[..]},"rooms":[..]}` |
//! | `disconnect_sockets` | `<key>-request#<nsp>#` | JSON `{"type":4,"opts":{..},"close":bool}` |
//! | `server_side_emit` | `<key>-request#<nsp>#` | JSON `{"uid":"emitter","type":6,"data":[event, ...args]}` |
//!
//! * The uid `"emitter"` never equals a server's uid, so every server — Node or Rust —
//!   delivers what an emitter sends to its own clients.
//! * msgpack is written as `notepack.io` writes it (integral floats as integers, key
//!   orders of Node's object literals, `rooms, flags, except` for the emitter), by the
//!   shared [`socketioxide_cluster_wire`] crate: the bytes equal those of the Node
//!   emitter, which the unit tests check against captured fixtures.
//! * Requests carry no `uid` and no `requestId` (Node compat): servers apply them without
//!   answering.
//! * Flags: [`volatile`](Emitter::volatile) → `{"volatile": true}`,
//!   [`compress(b)`](Emitter::compress) → `{"compress": b}`.
//!
//! Nothing is retried behind your back: a confirmed operation that fails (Redis down,
//! timeout) returns the error, a queued broadcast that fails is counted and reported by
//! [`Emitter::flush`]; the caller decides whether to retry. [`Emitter::connect`] uses a
//! [`redis::aio::ConnectionManager`], which reconnects by itself after a connection loss.
//!
//! # Command line
//!
//! The crate also installs `socketio-emit`, for scripts and operators; run
//! `socketio-emit --help`.

mod args;
mod ask;
mod emitter;
mod error;
mod named;
mod options;
mod publish;
mod requests;
mod rooms;
mod sentinel;
mod streams;
mod writer;

pub use args::Args;
pub use emitter::{
    BroadcastOperator, EMITTER_UID, EmitFuture, Emitter, PublishFuture, RESERVED_EVENTS,
    RESERVED_SERVER_SIDE_EVENTS,
};
pub use error::Error;
pub use named::{Ask, NamedReply, NamedRequest};
pub use options::{DEFAULT_KEY, DEFAULT_URL, EmitterConfig, EmitterOptions, SubscriptionMode};
pub use requests::{Incomplete, Partial, RemoteSocket};
pub use rooms::{IntoRooms, Room};
pub use writer::{DEFAULT_QUEUE, EmitterStats};

/// The `redis` crate this emitter is built on, to create connections for
/// [`Emitter::from_connection`].
pub use redis;
/// The msgpack values acknowledgements arrive as (binary kept).
pub use rmpv;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
