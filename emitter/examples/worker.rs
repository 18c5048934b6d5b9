//! A worker that holds no sockets and pushes an event to a room every second.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p socketioxide-cluster-emitter --example worker
//! ```
//!
//! Any socket.io server of the cluster (Node with `@socket.io/redis-adapter`, or Rust with
//! `socketioxide-cluster`, key `socket.io`) delivers `tick` to its clients in room `ticks`
//! of namespace `/`. Environment: `REDIS_URL` (default `redis://127.0.0.1:6379`), `ROOM`
//! (default `ticks`), `TICKS` (stop after that many; default: run until Ctrl-C).

use serde::Serialize;
use socketioxide_cluster_emitter::{Emitter, EmitterOptions, Error};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Serialize)]
struct Tick {
    n: u64,
    unix_ms: u128,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let room = std::env::var("ROOM").unwrap_or_else(|_| "ticks".into());
    let limit: Option<u64> = std::env::var("TICKS").ok().and_then(|t| t.parse().ok());

    let emitter = match Emitter::connect(EmitterOptions::new(url.clone())).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("worker: {e}");
            eprintln!(
                "worker: is Redis running? Start one with `redis-server` (or \
                 `docker run -p 6379:6379 redis`), or set REDIS_URL."
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("worker: emitting `tick` to room {room:?} every second (Ctrl-C to stop)");

    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        n += 1;
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        // One argument, an object: socket.on("tick", ({n, unix_ms}) => ...)
        match emitter
            .to(room.as_str())
            .emit("tick", &Tick { n, unix_ms })
            // Waits for Redis (one tick a second: the count is worth the round trip).
            .confirmed()
            .await
        {
            Ok(servers) => println!("tick {n}: received by {servers} server(s)"),
            // A lost connection is retried by the next tick (the connection reconnects).
            Err(e @ (Error::Redis(_) | Error::Timeout(_))) => eprintln!("tick {n}: {e}"),
            Err(e) => {
                eprintln!("worker: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        if limit.is_some_and(|l| n >= l) {
            break;
        }
    }
    std::process::ExitCode::SUCCESS
}
