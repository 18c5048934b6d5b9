//! Serving a socketioxide layer on a loopback port, and generic test handlers.

use std::{convert::Infallible, net::SocketAddr};

use socketioxide::{
    ParserConfig, SocketIo, SocketIoBuilder,
    adapter::Adapter,
    extract::{AckSender, Data, SocketRef},
    handler::ConnectHandler,
    layer::SocketIoLayer,
};

use socketioxide_core::adapter::DefinedAdapter;

use crate::client::Parser;

/// Serve `layer` with axum on `127.0.0.1:0` in a spawned task; returns the bound address.
/// The server lives as long as the current tokio runtime (i.e. the test).
pub async fn serve<A: Adapter>(layer: SocketIoLayer<A>) -> SocketAddr {
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("axum::serve");
    });
    addr
}

/// A `SocketIo` builder configured for `parser`; chain `.with_adapter::<..>(..)` etc.
pub fn builder(parser: Parser) -> SocketIoBuilder {
    let b = SocketIo::builder();
    match parser {
        Parser::Json => b.with_parser(ParserConfig::common()),
        Parser::MsgPack => b.with_parser(ParserConfig::msgpack()),
    }
}

/// Register the generic test event handlers on `s`:
/// * `"join"`  (a room string or an array of room strings) -> joins, acks `"ok"`
///   (or an `"error: ..."` string on malformed arguments)
/// * `"leave"` (same) -> leaves, acks `"ok"`
/// * `"rooms"` -> acks the sorted list of this socket's (local) rooms
/// * `"echo"` (any JSON args) -> acks the first argument back
pub fn register_test_handlers<A: Adapter>(s: &SocketRef<A>) {
    s.on(
        "join",
        async |s: SocketRef<A>, Data(rooms): Data<serde_json::Value>, ack: AckSender<A>| {
            match rooms_of(rooms) {
                Ok(rooms) => {
                    s.join(rooms);
                    ack.send(&"ok").ok();
                }
                Err(e) => {
                    ack.send(&e).ok();
                }
            }
        },
    );
    s.on(
        "leave",
        async |s: SocketRef<A>, Data(rooms): Data<serde_json::Value>, ack: AckSender<A>| {
            match rooms_of(rooms) {
                Ok(rooms) => {
                    s.leave(rooms);
                    ack.send(&"ok").ok();
                }
                Err(e) => {
                    ack.send(&e).ok();
                }
            }
        },
    );
    s.on("rooms", async |s: SocketRef<A>, ack: AckSender<A>| {
        let mut rooms: Vec<String> = s.rooms().into_iter().map(|r| r.to_string()).collect();
        rooms.sort();
        ack.send(&rooms).ok();
    });
    s.on(
        "echo",
        async |Data(v): Data<serde_json::Value>, ack: AckSender<A>| {
            ack.send(&v).ok();
        },
    );
}

/// A connect *middleware* registering [`register_test_handlers`].
///
/// socketioxide sends the namespace connect ack BEFORE it spawns the connect handler, so
/// handlers registered in the connect handler race with the client's first emit (an event
/// with no handler yet is silently dropped). Middlewares run before the ack is sent, so
/// registering there is race-free. Use via [`test_ns`] or
/// `io.ns(path, handler.with(test_handlers_middleware::<A>))`.
pub async fn test_handlers_middleware<A: Adapter>(s: SocketRef<A>) -> Result<(), Infallible> {
    register_test_handlers(&s);
    Ok(())
}

/// Define namespace `path` with only the generic test handlers (race-free, see
/// [`test_handlers_middleware`]). The result must be awaited for remote adapters
/// (`A::InitRes`); for the `LocalAdapter` it is `()`.
pub fn test_ns<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, path: &'static str) -> A::InitRes {
    io.ns(
        path,
        (async |_s: SocketRef<A>| {}).with(test_handlers_middleware::<A>),
    )
}

/// Handlers ack this error string (instead of `"ok"`) on malformed room arguments.
fn rooms_of(v: serde_json::Value) -> Result<Vec<String>, String> {
    match v {
        serde_json::Value::String(s) => Ok(vec![s]),
        serde_json::Value::Array(a) => a
            .into_iter()
            .map(|r| match r {
                serde_json::Value::String(s) => Ok(s),
                other => Err(format!("error: room must be a string, got {other}")),
            })
            .collect(),
        other => Err(format!(
            "error: rooms must be a string or an array of strings, got {other}"
        )),
    }
}

/// Install a tracing subscriber honouring `RUST_LOG` (once; later calls are no-ops).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
