//! Shared integration-test harness: `mod common;` from each file in `tests/`.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod cluster;
pub mod node;
pub mod redis;
pub mod server;

pub use client::{
    Arg, AutoAck, CONNECT_TIMEOUT, Client, ConnectError, Event, Parser, arg, args, bin, to_json,
};
pub use redis::{RedisServer, command_conn, free_port, ping, shared, unique_key};
pub use server::{
    builder, init_tracing, register_test_handlers, serve, test_handlers_middleware, test_ns,
};
