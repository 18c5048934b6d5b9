#![forbid(unsafe_code)]
//! A socketioxide adapter that makes many servers one cluster through Redis, speaking
//! the exact wire protocol of Node's `@socket.io/redis-adapter` 8.x, so Rust and Node
//! servers share one cluster and every socket.io emitter reaches Rust clients.
//!
//! # Modules
//!
//! Each module depends only on those listed before it (no import cycles;
//! `tests/layout.rs` checks it):
//!
//! * [`wire`] (its own crate, shared with the emitter): channel names, notepack-exact
//!   msgpack, the broadcast message, requests and responses.
//! * `error`, `stats` (counters, bounded-rate logs), `socket_info` (what fetchSockets
//!   says about a socket, both ways), `packet` (socketioxide packets ⇄ Node data arrays),
//!   `stand_in` (the `Sid`s that stand for Node sockets in socketioxide's API).
//! * `transport`: the Redis seam (standalone Redis, Redis Cluster classic and sharded,
//!   in-process bus; `sentinel`: following the master Redis Sentinel names; `streams`:
//!   Redis Streams for broadcasts, read from a kept offset; `connect`:
//!   opening the connections, TLS; `gate`: the subscriber's bounded read-ahead).
//! * `options`: [`ClusterOptions`] (builder) and [`ClusterConfig`] (validated).
//! * `liveness` (heartbeats between our servers), `correlation` (requests in flight),
//!   `replies` (the bounded reply queue), `server_side` (server-side events and acks),
//!   `callbacks` (the application's handlers, hooks, waiters and describers),
//!   [`named`] (requests to one or every live member of a server name).
//! * `shared`: the parts every namespace gets from its cluster handle.
//! * `requests`: a namespace's core, requests and gathering their replies.
//! * `router`: which namespace each received message belongs to.
//! * `namespace`: the classic per-namespace API ([`Namespace`]).
//! * `cluster`: the handle ([`Cluster`]): connect, stats, close;
//!   `cluster::metrics` (feature `metrics`): `stats()` through the `metrics` facade.
//! * `ack_stream`, `adapter`: the socketioxide `CoreAdapter` ([`ClusterAdapter`]) —
//!   `broadcast` (both ways), `respond` (answering requests), `local` (own sockets).
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use socketioxide::{SocketIo, extract::SocketRef};
//! use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions};
//!
//! let cluster = Cluster::connect(
//!     ClusterOptions::new("redis://127.0.0.1:6379")
//!         .key("socket.io")
//!         .requests_timeout(Duration::from_secs(5)),
//! )
//! .await?;
//! let (layer, io) = SocketIo::builder()
//!     .with_adapter::<ClusterAdapter<_>>(cluster.clone())
//!     .build_layer();
//! io.ns("/", async |s: SocketRef<ClusterAdapter<_>>| { s.join("room1"); }).await?;
//! // Reaches the sockets in `room1` on every server of the cluster:
//! io.to("room1").emit("news", "hello").await?;
//! # let _ = layer; Ok(()) }
//! ```
//!
//! # How it works
//!
//! * **Channels** (see [`wire::channel`]): a server `PSUBSCRIBE`s to `<key>#<nsp>#*` for each
//!   namespace. A broadcast goes to `<key>#<nsp>#<room>#` when it targets exactly one
//!   room, and to `<key>#<nsp>#` otherwise.
//! * **Messages** (see [`wire::message`]): msgpack `[uid, {type: 2, data: [event, ...args],
//!   nsp}, {rooms, except, flags}]`, encoded as notepack.io does ([`wire::codec`]).
//! * **Sending**: `io.emit`, `io.to(..)`, `socket.broadcast()` … are translated once,
//!   queued, and pipelined to Redis by one writer task; the local sockets are served
//!   directly. `emit` does not wait for Redis, but fails fast while Redis is down.
//! * **Receiving**: one task owns the subscriber connection; each message is decoded,
//!   checked (own uid, namespace, known room) and delivered through socketioxide's
//!   local adapter. Socket ids work as rooms, as in Node.
//! * **Nothing is dropped silently**: see [`ClusterStats`]. Note that socketioxide itself
//!   drops packets for a socket whose buffer is full: raise `max_buffer_size` on the
//!   `SocketIo` builder for bursty traffic.
//! * **Requests** (see `requests`, `adapter::respond`): cluster-wide operations are JSON
//!   requests on `<key>-request#<nsp>#`, answered on `<key>-response#<nsp>#[<uid>#]`,
//!   matched by `requestId`; the number of replies to wait for is the request channel's
//!   subscriber count (`PUBSUB NUMSUB`, pipelined with the request's PUBLISH). [`Cluster::of`] gives the classic API ([`Namespace`]). Commands
//!   without replies (join, leave, disconnect, server-side emit) return once Redis
//!   accepted them, so a request sent afterwards by any server sees their effect.
//! * **Node sockets in socketioxide's API**: `io.fetch_sockets()` lists them under
//!   stand-in `Sid`s (a fixed hash of namespace and id; Node ids have 20 characters, a
//!   `Sid` 16), with server id `Uid::ZERO`; `RemoteSocket` operations and `io.to(..)`
//!   send their real ids. Sockets of our servers carry their server's id.
//! * **Redis Cluster** ([`ClusterOptions::redis_cluster`]): the classic protocol through one
//!   node (server counts summed over the nodes), or Node's sharded protocol
//!   ([`ClusterOptions::sharded`]: `SSUBSCRIBE`/`SPUBLISH` on the shard owning each
//!   channel, the ClusterAdapter messages of [`wire::cluster_format`]).
//! * **Redis Sentinel** ([`ClusterOptions::sentinel`]): the standalone transport on the
//!   master the sentinels name, asked again (and checked with `ROLE`) on every
//!   reconnect; a watcher moves both connections on `+switch-master`, the subscriber
//!   subscribed on the new master before it leaves the old one.
//! * **Redis Streams** ([`ClusterOptions::streams`]): Node's streams adapter protocol;
//!   broadcasts, joins, leaves and disconnects are stream entries each server reads from
//!   its last id, the rest travels over pub/sub; entries trimmed unread are counted.
//! * **Liveness**: our servers heartbeat on `<key>-heartbeat` (Node ignores it); a peer
//!   that stops while still subscribed is not waited for ([`Error::Unresponsive`]).
//! * **Failures**: the subscriber reconnects and re-subscribes by itself; while Redis is
//!   down broadcasts and requests fail at once ([`Error::Disconnected`]; a lost
//!   subscriber alone stops only requests); a message that reached fewer servers than are
//!   alive is counted ([`ClusterStats::under_delivered`], an error with
//!   [`ClusterOptions::strict_delivery`]); the subscriber reads a bounded amount ahead of
//!   the router.

mod ack_stream;
mod adapter;
mod callbacks;
mod cluster;
mod correlation;
mod error;
mod liveness;
pub mod named;
mod namespace;
mod options;
mod packet;
mod replies;
mod requests;
mod router;
mod server_side;
mod shared;
mod socket_info;
mod stand_in;
mod stats;
mod transport;

pub use socketioxide_cluster_wire as wire;

pub use ack_stream::AckStream;
pub use adapter::{ClusterAdapter, InitRes};
pub use cluster::Cluster;
pub use error::{BoxError, ConfigError, Error, Partial};
pub use named::{Ask, NamedReply, NamedRequest};
pub use namespace::Namespace;
pub use options::{ClusterConfig, ClusterOptions, Protocol};
pub use server_side::{CUSTOM_REQUEST_EVENT, ServerSideEvent};
pub use socket_info::{SocketDetails, SocketInfo};
pub use stats::ClusterStats;
pub use transport::{InProcessBus, StreamsOptions};
pub use wire::cluster_format::SubscriptionMode;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
