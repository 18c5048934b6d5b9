#![warn(missing_docs)]
//! The test harness of the socketioxide-cluster workspace, shared by the root crate's
//! integration tests (`tests/*.rs`, which import it as `common`), its benches and the
//! emitter's tests. Not published.
//!
//! * [`redis`]: throw-away `redis-server` processes on free loopback ports (never 6379),
//!   with fault injection (SIGKILL, SIGSTOP/SIGCONT, restart on the same port).
//! * [`redis_cluster`]: a throw-away Redis Cluster of such processes (`--cluster create`).
//! * [`client`]: a minimal real socket.io v4 client speaking both socketioxide parsers.
//! * [`server`]: serving a socketioxide layer on a loopback port, and the generic test
//!   handlers (`join`, `leave`, `rooms`, `echo`).
//! * [`cluster`]: socketioxide servers on `ClusterAdapter` ([`cluster::Node`]), clients
//!   joined to rooms, the Node-side setup and teardown, fault helpers.
//! * [`flood`]: seeded malformed messages for every channel a server listens to, and a
//!   pipelined publisher for them (the garbage-flood bench and test).
//! * [`node`]: the Node.js interop scripts of `tests/interop/` driven over JSON lines.
//!
//! Paths to the repository's data are computed from this crate's manifest directory:
//! [`node::interop_dir`] (`tests/interop/` of the root crate) and [`fixtures_dir`]
//! (`shared/wire-fixtures/` next to the repository). Both panic with what to do when the
//! directory is missing.
//!
//! This crate depends on the root crate: it may only ever be a dev-dependency (of the root
//! crate and of the emitter). The wire crate cannot use it, see
//! [`socketioxide_cluster_wire::test_fixtures`].

pub mod bench;
pub mod client;
pub mod cluster;
pub mod flood;
pub mod node;
pub mod redis;
pub mod redis_cluster;
pub mod sentinel;
pub mod server;
pub mod tls;

pub use crate::redis::{RedisServer, command_conn, free_port, ping, shared, unique_key};
pub use client::{
    Arg, AutoAck, CONNECT_TIMEOUT, Client, ConnectError, Event, Parser, arg, args, bin, to_json,
};
pub use server::{
    builder, init_tracing, register_test_handlers, serve, test_handlers_middleware, test_ns,
};
/// The golden fixtures directory. Defined once in the wire crate (whose own tests cannot
/// depend on this crate) and re-exported here for every other test.
pub use socketioxide_cluster_wire::test_fixtures::fixtures_dir;
