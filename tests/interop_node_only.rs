//! Self-check of the Node.js interop harness (`tests/interop/*.js` driven by
//! `test-support/src/node.rs`), with Node processes only: two Node socket.io
//! servers on @socket.io/redis-adapter 8.3.0 in one cluster, Node clients, and
//! both emitters. It proves the Node side works before Rust servers join it.
//!
//! Requires `redis-server`, Node.js 20 and `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support as common;

use std::time::Duration;

use common::cluster::shutdown_all;
use common::node::{
    DEFAULT_TIMEOUT, as_bin, base64_decode, base64_encode, bin, start_client, start_emitter,
    start_server, u8array, undefined,
};
use common::redis::{RedisServer, unique_key};
use serde_json::{Value, json};

const T: Duration = DEFAULT_TIMEOUT;

fn sorted_strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    out.sort();
    out
}

#[test]
fn base64_helpers_match_node() {
    for (raw, enc) in [
        (&b""[..], ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"\x01\x02\x03", "AQID"),
        (b"\xde\xad\xbe\xef", "3q2+7w=="),
    ] {
        assert_eq!(base64_encode(raw), enc);
        assert_eq!(base64_decode(enc).unwrap(), raw);
    }
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
    assert_eq!(as_bin(&bin(b"\x00\xff")).unwrap(), b"\x00\xff");
    assert!(as_bin(&json!({"$bin": "AQI=", "$kind": "ArrayBuffer"})).is_none());
}

/// Two Node servers A and B in one cluster: broadcasts, rooms, binary,
/// requests (fetchSockets, allRooms, serverSideEmit, emitWithAck, socketsJoin,
/// disconnectSockets) and a dynamic namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cluster_of_two_servers() {
    let redis = RedisServer::start();
    let key = unique_key("sio");
    let url = redis.url();

    let mut a = start_server("A", &url, &key, &["--requests-timeout", "3000"]).await;
    let mut b = start_server("B", &url, &key, &["--requests-timeout", "3000"]).await;
    assert_ne!(a.ready_info()["uids"]["/"], b.ready_info()["uids"]["/"]);

    let mut ca = start_client("cA", &a.url(), "/", json!([]), &[]).await;
    let mut cb = start_client("cB", &b.url(), "/", json!(["room1", 42]), &[]).await;
    let mut cadmin = start_client("cAdmin", &b.url(), "/admin", json!(["adm"]), &[]).await;
    let mut cdyn = start_client("cDyn", &b.url(), "/dyn-abc", json!([]), &[]).await;
    let (sid_a, sid_b) = (ca.sid(), cb.sid());

    // serverCount = subscribers of the request channel
    let r = a.request(json!({"cmd": "serverCount"}), T).await;
    assert_eq!(r["count"], 2);

    // io.emit on A reaches the client on B (and A's own client)
    a.request(
        json!({"cmd": "emit", "event": "hello", "args": ["world", 1]}),
        T,
    )
    .await;
    let ev = cb.next_client_event("hello", T).await;
    assert_eq!(ev["args"], json!(["world", 1]));
    let ev = ca.next_client_event("hello", T).await;
    assert_eq!(ev["args"], json!(["world", 1]));

    // binary to one room arrives as a Buffer
    a.request(
        json!({"cmd": "emit", "to": ["room1"], "event": "bin", "args": [bin(&[1, 2, 3]), {"nested": bin(&[4])}]}),
        T,
    )
    .await;
    let ev = cb.next_client_event("bin", T).await;
    assert_eq!(ev["args"][0], bin(&[1, 2, 3]), "{ev}");
    assert_eq!(as_bin(&ev["args"][1]["nested"]).unwrap(), vec![4]);

    // numeric room; except; then a marker proves what did not arrive
    a.request(
        json!({"cmd": "emit", "to": [42], "event": "num", "args": []}),
        T,
    )
    .await;
    cb.next_client_event("num", T).await;
    a.request(
        json!({"cmd": "emit", "except": ["room1"], "event": "skipped", "args": []}),
        T,
    )
    .await;
    a.request(json!({"cmd": "emit", "event": "marker", "args": []}), T)
        .await;
    cb.next_client_event("marker", T).await;
    cb.assert_none_received(|v| v["event"] == "skipped");
    ca.next_client_event("skipped", T).await;

    // socket.broadcast.emit from cA's socket on A
    a.request(
        json!({"cmd": "broadcast", "sid": sid_a, "event": "bc", "args": ["x"]}),
        T,
    )
    .await;
    cb.next_client_event("bc", T).await;

    // namespaces
    a.request(
        json!({"cmd": "emit", "nsp": "/admin", "event": "adm", "args": []}),
        T,
    )
    .await;
    cadmin.next_client_event("adm", T).await;
    a.request(
        json!({"cmd": "emit", "nsp": "/dyn-abc", "event": "dyn", "args": [true]}),
        T,
    )
    .await;
    assert_eq!(
        cdyn.next_client_event("dyn", T).await["args"],
        json!([true])
    );

    // fetchSockets / allRooms across the cluster
    let r = a.request(json!({"cmd": "fetchSockets"}), T).await;
    let sockets = r["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 2, "{r}");
    let remote = sockets.iter().find(|s| s["id"] == sid_b).expect("cB");
    assert_eq!(
        sorted_strings(&remote["rooms"]),
        sorted_strings(&json!([sid_b, "room1", 42]))
    );
    assert_eq!(remote["local"], false);
    let r = a
        .request(json!({"cmd": "fetchSockets", "to": ["room1"]}), T)
        .await;
    assert_eq!(r["sockets"].as_array().unwrap().len(), 1);
    let r = a.request(json!({"cmd": "allRooms"}), T).await;
    let rooms = sorted_strings(&r["rooms"]);
    for want in ["room1", "42", sid_a.as_str(), sid_b.as_str()] {
        assert!(rooms.iter().any(|x| x == want), "{want} not in {rooms:?}");
    }

    // serverSideEmit without and with ack
    a.request(
        json!({"cmd": "serverSideEmit", "event": "sse", "args": ["p", bin(&[9])]}),
        T,
    )
    .await;
    let ev = b
        .next_matching(|v| v["serverSideEvent"]["event"] == "sse", T)
        .await;
    // binary does not survive the JSON request
    assert_eq!(
        ev["serverSideEvent"]["args"],
        json!(["p", {"type": "Buffer", "data": [9]}])
    );
    b.request(
        json!({"cmd": "config", "serverSideAckReply": {"from": "B"}}),
        T,
    )
    .await;
    let r = a
        .request(
            json!({"cmd": "serverSideEmit", "event": "ping", "args": [], "ack": true}),
            T,
        )
        .await;
    assert_eq!(r["err"], Value::Null, "{r}");
    assert_eq!(r["responses"], json!([{"from": "B"}]));
    a.assert_none_received(|v| v["serverSideEvent"]["event"] == "ping");

    // broadcast with acks across the cluster: clients answer with their sid
    let r = a
        .request(
            json!({"cmd": "emitWithAck", "event": "ask", "args": [], "timeout": 5000}),
            T,
        )
        .await;
    assert_eq!(r["err"], Value::Null, "{r}");
    assert_eq!(
        sorted_strings(&r["responses"]),
        sorted_strings(&json!([sid_a, sid_b]))
    );
    cb.request(json!({"cmd": "config", "ackReply": bin(&[7, 7])}), T)
        .await;
    let r = a
        .request(
            json!({"cmd": "emitWithAck", "to": ["room1"], "event": "ask2", "args": [], "timeout": 5000}),
            T,
        )
        .await;
    assert_eq!(r["responses"], json!([bin(&[7, 7])]), "{r}");

    // socketsJoin from A applies on B
    a.request(
        json!({"cmd": "socketsJoin", "to": ["room1"], "rooms": ["joined"]}),
        T,
    )
    .await;
    let r = b
        .request(json!({"cmd": "fetchSockets", "to": ["joined"]}), T)
        .await;
    // B applies the request when its subscriber gets it; fetchSockets round-trips
    // through Redis after it, so this is ordered.
    assert_eq!(r["sockets"][0]["id"], sid_b, "{r}");
    a.request(
        json!({"cmd": "emit", "to": ["joined"], "event": "j", "args": []}),
        T,
    )
    .await;
    cb.next_client_event("j", T).await;

    // client -> server events reach the server with acks
    let r = cb
        .request(
            json!({"cmd": "emit", "event": "up", "args": [bin(&[5])], "ack": true}),
            T,
        )
        .await;
    assert_eq!(r["response"], json!(["B"]));
    let ev = b
        .next_matching(|v| v["socketEvent"]["event"] == "up", T)
        .await;
    assert_eq!(ev["socketEvent"]["args"], json!([bin(&[5])]));

    // disconnectSockets from A disconnects the client of B
    a.request(
        json!({"cmd": "disconnectSockets", "to": ["room1"], "close": false}),
        T,
    )
    .await;
    let ev = cb
        .next_matching(|v| v.get("disconnected").is_some(), T)
        .await;
    assert_eq!(ev["disconnected"], "io server disconnect");
    b.next_matching(|v| v["disconnect"]["sid"] == sid_b.as_str(), T)
        .await;

    // errors are reported, not fatal
    let e = a
        .try_request(json!({"cmd": "broadcast", "sid": "nope", "event": "x"}), T)
        .await
        .unwrap_err();
    assert!(e.contains("no local socket"), "{e}");
    assert!(a.try_request(json!({"cmd": "nope"}), T).await.is_err());
    a.request(json!({"cmd": "ping"}), T).await;

    shutdown_all(vec![ca, cb, cadmin, cdyn, a, b]).await;
}

/// @socket.io/redis-emitter 5.1.0 and socket.io-emitter 3.2.0 reach Node clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_emitters_reach_node_clients() {
    let redis = RedisServer::start();
    let key = unique_key("sio");
    let url = redis.url();

    let mut s = start_server("S", &url, &key, &[]).await;
    let mut c1 = start_client("c1", &s.url(), "/", json!(["r1"]), &[]).await;
    let mut c2 = start_client("c2", &s.url(), "/", json!(["r2"]), &[]).await;
    let mut cadmin = start_client("cadm", &s.url(), "admin", json!([]), &[]).await;
    let mut e = start_emitter("E", &url, &key).await;

    for lib in ["redis-emitter", "socket.io-emitter"] {
        // to all, with a Buffer
        e.request(
            json!({"lib": lib, "event": "all", "args": ["s", bin(&[1, 2])]}),
            T,
        )
        .await;
        for c in [&mut c1, &mut c2] {
            let ev = c.next_client_event("all", T).await;
            assert_eq!(ev["args"], json!(["s", bin(&[1, 2])]), "{lib}: {ev}");
        }
        // to one room; the marker (to all) proves c2 got nothing before it
        e.request(
            json!({"lib": lib, "to": ["r1"], "event": "room", "args": [1]}),
            T,
        )
        .await;
        e.request(json!({"lib": lib, "event": "marker", "args": []}), T)
            .await;
        c1.next_client_event("room", T).await;
        c2.next_client_event("marker", T).await;
        c2.assert_none_received(|v| v["event"] == "room");
        c1.next_client_event("marker", T).await;
        // two rooms, volatile
        e.request(
            json!({"lib": lib, "to": ["r1", "r2"], "volatile": true, "event": "two", "args": []}),
            T,
        )
        .await;
        c1.next_client_event("two", T).await;
        c2.next_client_event("two", T).await;
        // typed array and undefined
        e.request(
            json!({"lib": lib, "event": "typed", "args": [u8array(&[4, 5, 6]), undefined()]}),
            T,
        )
        .await;
        let ev = c1.next_client_event("typed", T).await;
        // notepack bin (redis-emitter) or ext 0 (socket.io-emitter): a Buffer on the client
        assert_eq!(ev["args"][0], bin(&[4, 5, 6]), "{lib}: {ev}");
        assert_eq!(ev["args"][1], Value::Null, "{lib}: {ev}");
        c2.next_client_event("typed", T).await;
        // other namespace
        e.request(
            json!({"lib": lib, "nsp": "/admin", "event": "adm", "args": []}),
            T,
        )
        .await;
        cadmin.next_client_event("adm", T).await;
    }

    // except, then request operations: redis-emitter only
    e.request(
        json!({"lib": "redis-emitter", "except": ["r1"], "event": "ex", "args": []}),
        T,
    )
    .await;
    e.request(
        json!({"lib": "redis-emitter", "event": "marker2", "args": []}),
        T,
    )
    .await;
    c2.next_client_event("ex", T).await;
    c1.next_client_event("marker2", T).await;
    c1.assert_none_received(|v| v["event"] == "ex");
    let err = e
        .try_request(
            json!({"lib": "socket.io-emitter", "except": ["r1"], "event": "ex", "args": []}),
            T,
        )
        .await
        .unwrap_err();
    assert!(err.contains("not supported"), "{err}");

    e.request(
        json!({"cmd": "socketsJoin", "to": ["r2"], "rooms": ["viaEmitter"]}),
        T,
    )
    .await;
    e.request(
        json!({"lib": "redis-emitter", "to": ["viaEmitter"], "event": "joined", "args": []}),
        T,
    )
    .await;
    c2.next_client_event("joined", T).await;

    e.request(
        json!({"cmd": "serverSideEmit", "event": "fromEmitter", "args": [{"a": 1}]}),
        T,
    )
    .await;
    let ev = s
        .next_matching(|v| v["serverSideEvent"]["event"] == "fromEmitter", T)
        .await;
    assert_eq!(ev["serverSideEvent"]["args"], json!([{"a": 1}]));
    assert_eq!(ev["serverSideEvent"]["ack"], false);

    e.request(
        json!({"cmd": "disconnectSockets", "to": ["r1"], "close": true}),
        T,
    )
    .await;
    let ev = c1
        .next_matching(|v| v.get("disconnected").is_some(), T)
        .await;
    assert_eq!(ev["disconnected"], "io server disconnect");

    shutdown_all(vec![e, c1, c2, cadmin, s]).await;
}
