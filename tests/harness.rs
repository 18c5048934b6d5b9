//! Self-tests of the shared test harness (the `test-support/` crate, imported as `common`),
//! against a plain socketioxide server with the default `LocalAdapter`, plus the
//! `RedisServer` process helper.

// kill(2) with signal 0 checks whether a redis-server process is still alive.
#![allow(unsafe_code)]

use socketioxide_cluster_test_support as common;

use std::{
    convert::Infallible,
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::*;
use serde_json::json;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Data, SocketRef},
    handler::ConnectHandler,
};

const T: Duration = Duration::from_secs(5);

/// Extra handlers used by these self-tests, registered (race-free) from a middleware.
async fn harness_handlers<A: Adapter>(s: SocketRef<A>) -> Result<(), Infallible> {
    register_test_handlers(&s);
    // echo (binary, json) back through the ack
    s.on(
        "bin_echo",
        async |Data((b, v)): Data<(Bytes, serde_json::Value)>, ack: AckSender<A>| {
            ack.send(&(b, v)).ok();
        },
    );
    // ask the client something with an ack, then report the answer as an event
    s.on("ask", async |s: SocketRef<A>| {
        let answer = match s.emit_with_ack::<_, String>("question", &"ready?") {
            Ok(stream) => match stream.await {
                Ok(a) => a,
                Err(e) => format!("ack error: {e}"),
            },
            Err(e) => format!("send error: {e}"),
        };
        s.emit("answer", &answer).ok();
    });
    // emit `n` events "n" with args 0..n to this socket
    // (socketioxide's per-socket buffer holds 128 packets by default: when it is full,
    // `emit` fails with InternalChannelFull, so wait for the writer to drain it)
    s.on("burst", async |s: SocketRef<A>, Data(n): Data<u64>| {
        for i in 0..n {
            let mut tries = 0;
            while let Err(e) = s.emit("n", &i) {
                tries += 1;
                assert!(tries < 1000, "emit {i} keeps failing: {e}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    // emit "other" then "marker"
    s.on("other_then_marker", async |s: SocketRef<A>| {
        s.emit("other", &1).ok();
        s.emit("marker", &()).ok();
    });
    s.on("kick", async |s: SocketRef<A>| {
        s.disconnect().ok();
    });
    Ok(())
}

async fn local_server(parser: Parser) -> (SocketAddr, SocketIo) {
    let (layer, io) = builder(parser).build_layer();
    for path in ["/", "/admin"] {
        io.ns(
            path,
            (async |_s: SocketRef| {})
                .with(harness_handlers::<socketioxide::adapter::LocalAdapter>),
        );
    }
    // a namespace whose connect handler emits immediately
    io.ns("/welcome", async |s: SocketRef| {
        s.emit("welcome", &s.id.to_string()).ok();
    });
    let addr = serve(layer).await;
    (addr, io)
}

async fn join(c: &Client, rooms: serde_json::Value) {
    let ack = c.emit_with_ack("join", vec![rooms], T).await;
    assert_eq!(ack, vec![arg(json!("ok"))], "{c:?}: join failed");
}

fn payload() -> (
    &'static str,
    i64,
    serde_json::Value,
    &'static str,
    Bytes,
    f64,
) {
    (
        "hello",
        42,
        json!({"z": {"list": [1, -7, 1.5, null, true], "s": "x"}, "a": [], "m": {}}),
        "unicode ✓ 日本語 🎉 \"quoted\" \\ \n",
        Bytes::from_static(&[0, 1, 2, 255, 254]),
        -0.25,
    )
}

fn expected_event(name: &str) -> Event {
    let (s, n, obj, uni, b, f) = payload();
    Event::new(
        name,
        vec![
            arg(json!(s)),
            arg(json!(n)),
            arg(obj),
            arg(json!(uni)),
            bin(&b),
            arg(json!(f)),
        ],
    )
}

/// Both parsers: room broadcasts on `/` and `/admin` carry strings, numbers, nested
/// objects, unicode and binary, and decode to the same `Event`.
#[tokio::test]
async fn room_broadcast_same_event_for_both_parsers() {
    let mut per_parser = Vec::new();
    for parser in Parser::ALL {
        let (addr, io) = local_server(parser).await;
        let mut in_room = Client::connect(addr, "/", parser).await;
        let mut admin = Client::connect(addr, "/admin", parser).await;
        let mut outside = Client::connect(addr, "/", parser).await;
        assert!(!in_room.sid().is_empty());
        assert_ne!(in_room.sid(), outside.sid());

        join(&in_room, json!(["r1", "r2"])).await;
        join(&admin, json!("r1")).await;
        let rooms = in_room.emit_with_ack("rooms", vec![], T).await;
        assert_eq!(rooms, vec![arg(json!(["r1", "r2"]))]);

        io.to("r1").emit("data", &payload()).await.unwrap();
        io.of("/admin")
            .unwrap()
            .to("r1")
            .emit("data", &payload())
            .await
            .unwrap();
        io.emit("marker", &()).await.unwrap();

        let ev = in_room.recv_event_named("data", T).await;
        assert_eq!(ev, expected_event("data"), "{parser:?}");
        assert_eq!(ev.str_arg(0), "hello");
        assert_eq!(ev.i64_arg(1), 42);
        assert_eq!(ev.bin_arg(4), &[0, 1, 2, 255, 254]);
        assert_eq!(ev.json(2)["z"]["list"][1], json!(-7));
        let admin_ev = admin.recv_event_named("data", T).await;
        assert_eq!(admin_ev, ev, "{parser:?}: /admin differs from /");

        let marker = outside.expect_no_event_before("marker", T).await;
        // `emit("marker", &())` sends ONE null argument (unit is not an empty tuple)
        assert_eq!(marker.args, vec![Arg::Nil], "{marker:?}");
        in_room.expect_no_event_before("marker", T).await;

        // leaving works too
        let ack = in_room.emit_with_ack("leave", vec![json!("r1")], T).await;
        assert_eq!(ack, vec![arg(json!("ok"))]);
        io.to("r1").emit("data", &1).await.unwrap();
        io.emit("marker", &()).await.unwrap();
        in_room.expect_no_event_before("marker", T).await;

        per_parser.push(ev);
    }
    assert_eq!(
        per_parser[0], per_parser[1],
        "JSON and MsgPack events differ"
    );
}

/// Client -> server binary + acks (event and ack packets with attachments).
#[tokio::test]
async fn client_binary_emit_and_acks() {
    for parser in Parser::ALL {
        let (addr, _io) = local_server(parser).await;
        for nsp in ["/", "/admin"] {
            let c = Client::connect(addr, nsp, parser).await;
            let ack = c
                .emit_with_ack("echo", vec![json!({"k": [1, "two", null]})], T)
                .await;
            assert_eq!(ack, vec![arg(json!({"k": [1, "two", null]}))], "{parser:?}");

            let sent = vec![bin([9u8, 8, 7]), arg(json!({"u": "✓", "n": -3}))];
            let ack = c.emit_args_with_ack("bin_echo", sent.clone(), T).await;
            assert_eq!(ack, sent, "{parser:?} {nsp}");

            // acks are matched by id even when several are in flight
            let (a, b) = tokio::join!(
                c.emit_with_ack("echo", vec![json!("a")], T),
                c.emit_with_ack("echo", vec![json!("b")], T)
            );
            assert_eq!((a, b), (vec![arg(json!("a"))], vec![arg(json!("b"))]));
        }
    }
}

/// Server -> client ack requests: manual `ack()` and `AutoAck`.
#[tokio::test]
async fn server_ack_requests() {
    for parser in Parser::ALL {
        let (addr, _io) = local_server(parser).await;
        let mut c = Client::connect(addr, "/admin", parser).await;
        c.emit("ask", vec![]);
        let q = c.recv_event_named("question", T).await;
        assert_eq!(q.args, vec![arg(json!("ready?"))]);
        assert!(q.ack_id.is_some(), "{q:?}");
        c.ack(&q, vec![arg(json!("yes"))]);
        let a = c.recv_event_named("answer", T).await;
        assert_eq!(a.args, vec![arg(json!("yes"))], "{parser:?}");

        c.set_auto_ack(Some(AutoAck::With(vec![arg(json!("auto"))])));
        c.emit("ask", vec![]);
        c.recv_event_named("question", T).await;
        let a = c.recv_event_named("answer", T).await;
        assert_eq!(a.args, vec![arg(json!("auto"))], "{parser:?}");

        c.set_auto_ack(Some(AutoAck::Echo));
        c.emit("ask", vec![]);
        c.recv_event_named("question", T).await;
        let a = c.recv_event_named("answer", T).await;
        assert_eq!(a.args, vec![arg(json!("ready?"))], "{parser:?}");
    }
}

/// `expect_no_event_before` and `recv_event_named` fail loudly on an unexpected event.
#[tokio::test]
async fn unexpected_events_panic() {
    for parser in Parser::ALL {
        let (addr, _io) = local_server(parser).await;

        let mut c = Client::connect(addr, "/", parser).await;
        c.emit("other_then_marker", vec![]);
        let res = tokio::spawn(async move { c.expect_no_event_before("marker", T).await }).await;
        let err = res.expect_err("expect_no_event_before should have panicked");
        assert!(err.is_panic());
        let msg = err.into_panic();
        let msg = msg
            .downcast_ref::<String>()
            .expect("panic message is a String");
        assert!(msg.contains("unexpected event"), "{msg}");
        assert!(msg.contains("other"), "{msg}");

        let mut c = Client::connect(addr, "/", parser).await;
        c.emit("other_then_marker", vec![]);
        let res = tokio::spawn(async move { c.recv_event_named("marker", T).await }).await;
        assert!(res.unwrap_err().is_panic());

        // and the happy path: the first event is the marker
        let mut c = Client::connect(addr, "/", parser).await;
        c.emit("other_then_marker", vec![]);
        c.recv_event_named("other", T).await;
        c.expect_no_event_before("marker", T).await;

        // timeouts are bounded and panic
        let mut c = Client::connect(addr, "/", parser).await;
        let start = Instant::now();
        let res = tokio::spawn(async move {
            c.recv_event(Duration::from_millis(200)).await;
        })
        .await;
        assert!(res.unwrap_err().is_panic());
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}

/// Burst receive with ordering check.
#[tokio::test]
async fn burst_in_order() {
    for parser in Parser::ALL {
        let (addr, _io) = local_server(parser).await;
        let mut c = Client::connect(addr, "/", parser).await;
        c.emit("burst", vec![json!(2000)]);
        let n = c
            .count_events_in_order("n", 2000, Duration::from_secs(10))
            .await;
        assert_eq!(n, 2000, "{parser:?}");
        // nothing more than asked for arrives
        c.emit("burst", vec![json!(3)]);
        assert_eq!(c.count_events("n", 3, T).await, 3);
        c.emit("other_then_marker", vec![]);
        c.expect_no_event_before("other", T).await;
    }
}

/// Events emitted by the connect handler arrive after the connect ack (so `connect`
/// never swallows them), connect errors are reported, and disconnects both ways work.
#[tokio::test]
async fn connect_and_disconnect_lifecycle() {
    for parser in Parser::ALL {
        let (addr, io) = local_server(parser).await;

        let mut c = Client::connect(addr, "/welcome", parser).await;
        let w = c.recv_event_named("welcome", T).await;
        assert_eq!(w.str_arg(0), c.sid());

        let err = Client::try_connect(addr, "/nope", parser, None)
            .await
            .expect_err("unknown namespace must be refused");
        assert!(!err.message.is_empty());

        // auth payload is accepted
        let c2 = Client::connect_with_auth(addr, "/", parser, Some(json!({"token": "t"}))).await;
        let sid = c2.sid().to_string();

        // server-side disconnect
        let mut k = Client::connect(addr, "/admin", parser).await;
        k.emit("kick", vec![]);
        k.expect_disconnect(T).await;

        // client-side disconnect is seen by the server
        let deadline = Instant::now() + T;
        assert!(io.sockets().iter().any(|s| s.id.to_string() == sid));
        c2.disconnect().await;
        while io.sockets().iter().any(|s| s.id.to_string() == sid) {
            assert!(Instant::now() < deadline, "server never saw the disconnect");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // Drop closes the connection too
        let c3 = Client::connect(addr, "/", parser).await;
        let sid = c3.sid().to_string();
        drop(c3);
        let deadline = Instant::now() + T;
        while io.sockets().iter().any(|s| s.id.to_string() == sid) {
            assert!(Instant::now() < deadline, "server never saw the drop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn raw_ping(port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(T))?;
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[test]
fn redis_server_answers_ping() {
    let own = RedisServer::start();
    assert_ne!(own.port(), 6379);
    assert_eq!(own.url(), format!("redis://127.0.0.1:{}", own.port()));
    assert_eq!(raw_ping(own.port()).unwrap(), "+PONG\r\n");

    let shared = shared();
    assert_eq!(raw_ping(shared.port()).unwrap(), "+PONG\r\n");
    assert_eq!(
        shared.port(),
        common::shared().port(),
        "shared() is one instance"
    );
    assert_ne!(shared.port(), own.port());

    let with_args =
        RedisServer::start_with_args(&["--client-output-buffer-limit", "pubsub 1mb 1mb 0"]);
    assert!(with_args.answers_ping(T));

    let (a, b) = (unique_key("socket.io"), unique_key("socket.io"));
    assert_ne!(a, b);
    assert!(a.starts_with("socket.io-"));
}

#[test]
fn redis_kill_stop_cont_restart() {
    let r = RedisServer::start();
    let port = r.port();
    let pid = r.pid();

    r.stop();
    assert!(
        !r.answers_ping(Duration::from_millis(300)),
        "a SIGSTOPped server must not answer"
    );
    r.cont();
    assert!(r.answers_ping(T));

    r.kill();
    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("killed server still accepts");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // SAFETY: kill(pid, 0) only checks for existence.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "redis-server {pid} still exists after kill()");

    r.restart();
    assert_eq!(r.port(), port);
    assert_ne!(r.pid(), pid);
    assert_eq!(raw_ping(port).unwrap(), "+PONG\r\n");

    let pid = r.pid();
    drop(r);
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "redis-server {pid} survived Drop");
}
