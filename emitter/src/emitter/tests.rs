//! Byte-compatibility with `@socket.io/redis-emitter` 5.1.0: every captured fixture is
//! reproduced (channel and bytes) by the equivalent Rust call.

use super::*;
use serde_json::Value as Json;
use socketioxide_cluster_test_support::fixtures_dir;
use std::sync::Mutex;

type Sent = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Captures what would be published.
struct Capture(Sent);

impl Publish for Capture {
    fn publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<usize, redis::RedisError>> {
        self.0.lock().unwrap().push((channel, payload));
        Box::pin(async { Ok(2) })
    }
}

/// Never answers.
struct Stuck;

impl Publish for Stuck {
    fn publish(
        &self,
        _: String,
        _: Vec<u8>,
    ) -> BoxFuture<'static, Result<usize, redis::RedisError>> {
        Box::pin(std::future::pending())
    }
}

fn capture() -> (Emitter, Sent) {
    let sent: Sent = Arc::default();
    let emitter =
        Emitter::with_publisher(Box::new(Capture(sent.clone())), &EmitterOptions::default());
    (emitter, sent)
}

/// The Rust equivalent of each fixture's `produced_by`.
async fn run_step(e: &Emitter, step: &str) -> Result<usize, Error> {
    match step {
        // emitter.emit('em', 'hello')
        "emit" => e.emit("em", "hello").confirmed().await,
        // emitter.to('room1').emit('em-room', 'r1')
        "to-room" => e.to("room1").emit("em-room", "r1").confirmed().await,
        // emitter.to(['room1','room2']).except('room3').emit('em-multi', 1)
        "to-rooms-except" => {
            e.to(["room1", "room2"])
                .except("room3")
                .emit("em-multi", &1)
                .confirmed()
                .await
        }
        // emitter.except('room1').emit('em-except', 'x')
        "except-only" => e.except("room1").emit("em-except", "x").confirmed().await,
        // emitter.volatile.emit('em-vol', 'v')
        "volatile" => e.volatile().emit("em-vol", "v").confirmed().await,
        // emitter.compress(false).emit('em-cmp', 'c')
        "compress" => e.compress(false).emit("em-cmp", "c").confirmed().await,
        // emitter.emit('em-bin', Buffer.from([1,2,3]))
        "binary" => {
            e.emit("em-bin", &bytes::Bytes::from_static(&[1, 2, 3]))
                .confirmed()
                .await
        }
        // emitter.emit('em-undef', undefined, 1)
        "undefined-arg" => e.emit("em-undef", &(None::<()>, 1)).confirmed().await,
        // emitter.of('/admin').emit('em-adm', 'a')
        "namespace" => e.of("/admin").emit("em-adm", "a").confirmed().await,
        // emitter.of('admin').to('adminroom').emit('em-adm-room', 'a')
        "namespace-no-slash-room" => {
            e.of("admin")
                .to("adminroom")
                .emit("em-adm-room", "a")
                .confirmed()
                .await
        }
        // emitter.socketsJoin('ejoin')
        "sockets-join" => e.sockets_join("ejoin").await,
        // emitter.in('room1').except('room2').socketsJoin(['ej1', 'ej2'])
        "sockets-join-filtered" => {
            e.in_("room1")
                .except("room2")
                .sockets_join(["ej1", "ej2"])
                .await
        }
        // emitter.in('room1').socketsLeave('ejoin')
        "sockets-leave" => e.in_("room1").sockets_leave("ejoin").await,
        // emitter.serverSideEmit('esse', 'from-emitter', 1)
        "server-side-emit" => e.server_side_emit("esse", &("from-emitter", 1)).await,
        // emitter.of('/admin').socketsJoin('adm-joined')
        "namespace-sockets-join" => e.of("/admin").sockets_join("adm-joined").await,
        // emitter.in('edisc').disconnectSockets(true)
        "disconnect-sockets" => e.in_("edisc").disconnect_sockets(true).await,
        // emitter.in('nobody').disconnectSockets()
        "disconnect-sockets-default" => e.in_("nobody").disconnect_sockets(false).await,
        other => panic!("fixture step {other:?} has no Rust equivalent in this test: add it"),
    }
}

#[tokio::test]
async fn every_redis_emitter_fixture_is_reproduced_byte_for_byte() {
    let dir = fixtures_dir();
    let manifest: Json = serde_json::from_str(
        &std::fs::read_to_string(dir.join("redis-emitter-5.1.0/manifest.json")).unwrap(),
    )
    .unwrap();
    let entries = manifest["entries"].as_array().unwrap();
    let mut checked = 0;
    for entry in entries {
        let step = entry["step"].as_str().unwrap();
        let file = entry["file"].as_str().unwrap();
        let want_channel = entry["channel"].as_str().unwrap();
        let want = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(
            entry["varies_per_run"].as_array().map(Vec::len),
            Some(0),
            "{file}: a varying field would need masking"
        );
        let (emitter, sent) = capture();
        let n = run_step(&emitter, step)
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        assert_eq!(n, 2, "{step}: the subscriber count is passed through");
        let sent = std::mem::take(&mut *sent.lock().unwrap());
        assert_eq!(sent.len(), 1, "{step}: one PUBLISH per operation");
        let (channel, bytes) = &sent[0];
        assert_eq!(channel, want_channel, "{step}: channel");
        assert_eq!(
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&want),
            "{step}: bytes"
        );
        assert_eq!(bytes, &want, "{step}: bytes");
        checked += 1;
    }
    assert_eq!(checked, 17, "every redis-emitter-5.1.0 fixture is covered");
}

#[tokio::test]
async fn reserved_events_are_rejected_and_nothing_is_sent() {
    let (e, sent) = capture();
    for ev in RESERVED_EVENTS {
        let err = e.to("r").emit(ev, &1).confirmed().await.unwrap_err();
        assert!(
            matches!(&err, Error::ReservedEvent(name) if name == ev),
            "{err}"
        );
        assert_eq!(err.to_string(), format!("{ev:?} is a reserved event name"));
    }
    for ev in RESERVED_SERVER_SIDE_EVENTS {
        assert!(matches!(
            e.server_side_emit(ev, &()).await,
            Err(Error::ReservedEvent(_))
        ));
    }
    // socket.io reserves "connection" server-side only; clients may receive it.
    e.emit("connection", &()).confirmed().await.unwrap();
    assert_eq!(sent.lock().unwrap().len(), 1);
}

fn decode(bytes: &[u8]) -> BroadcastMessage {
    BroadcastMessage::decode(bytes).unwrap()
}

#[tokio::test]
async fn operators_are_immutable_and_accumulate_like_js_sets() {
    let (e, sent) = capture();
    let base = e.to("a");
    let ab = base.to(["b", "a"]).in_(vec!["c".to_owned()]);
    let _unused = base.except("x"); // does not change `base`
    base.emit("one", &()).confirmed().await.unwrap();
    ab.except("x")
        .except(["x", "y"])
        .emit("many", &())
        .confirmed()
        .await
        .unwrap();
    let sent = sent.lock().unwrap();
    assert_eq!(sent[0].0, "socket.io#/#a#");
    let first = decode(&sent[0].1);
    assert_eq!(first.opts.room_names(), ["a"]);
    assert!(first.opts.except_names().is_empty());
    assert_eq!(first.packet.data, vec![Value::from("one")]);
    assert_eq!(sent[1].0, "socket.io#/#");
    let second = decode(&sent[1].1);
    assert_eq!(second.opts.room_names(), ["a", "b", "c"]);
    assert_eq!(second.opts.except_names(), ["x", "y"]);
    assert_eq!(base.rooms(), &[Room::from("a")]);
    assert_eq!(ab.excepted(), &[] as &[Room]);
}

#[tokio::test]
async fn flags_keep_their_first_position_as_object_assign() {
    let (e, sent) = capture();
    e.volatile()
        .compress(true)
        .volatile()
        .compress(false)
        .emit("f", &())
        .confirmed()
        .await
        .unwrap();
    e.compress(true)
        .volatile()
        .emit("g", &())
        .confirmed()
        .await
        .unwrap();
    let sent = sent.lock().unwrap();
    let keys = |b: &[u8]| -> Vec<(String, Value)> { decode(b).opts.flags };
    assert_eq!(
        keys(&sent[0].1),
        vec![
            ("volatile".to_owned(), Value::Boolean(true)),
            ("compress".to_owned(), Value::Boolean(false)),
        ]
    );
    assert_eq!(keys(&sent[1].1)[0].0, "compress");
}

#[tokio::test]
async fn namespaces_keys_and_numeric_rooms() {
    let sent: Sent = Arc::default();
    let e = Emitter::with_publisher(
        Box::new(Capture(sent.clone())),
        &EmitterOptions::default().key("app"),
    );
    assert_eq!(e.nsp(), "/");
    assert_eq!(e.of("").nsp(), "/");
    assert_eq!(e.of("chat").nsp(), "/chat");
    assert_eq!(e.of("/chat").of("admin").nsp(), "/admin");
    assert_eq!(e.of("chat").key(), "app");
    e.of("chat")
        .to(42)
        .emit("n", &())
        .confirmed()
        .await
        .unwrap();
    e.of("chat")
        .to("room#hash")
        .emit("h", &())
        .confirmed()
        .await
        .unwrap();
    e.of("chat").server_side_emit("s", &()).await.unwrap();
    e.of("chat")
        .to([1, 2])
        .disconnect_sockets(false)
        .await
        .unwrap();
    let sent = sent.lock().unwrap();
    assert_eq!(sent[0].0, "app#/chat#42#");
    let msg = decode(&sent[0].1);
    assert_eq!(
        msg.opts.rooms,
        vec![Value::from(42)],
        "a number, as JS sends it"
    );
    assert_eq!(msg.packet.nsp.as_deref(), Some("/chat"));
    assert_eq!(sent[1].0, "app#/chat#room#hash#");
    assert_eq!(sent[2].0, "app-request#/chat#");
    assert_eq!(
        String::from_utf8_lossy(&sent[2].1),
        r#"{"uid":"emitter","type":6,"data":["s"]}"#
    );
    assert_eq!(
        String::from_utf8_lossy(&sent[3].1),
        r#"{"type":4,"opts":{"rooms":[1,2],"except":[]},"close":false}"#
    );
}

#[tokio::test]
async fn server_side_binary_travels_as_a_node_json_buffer() {
    let (e, sent) = capture();
    e.server_side_emit("b", &(bytes::Bytes::from_static(&[1, 2]), 1.5, 2.0))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sent.lock().unwrap()[0].1),
        r#"{"uid":"emitter","type":6,"data":["b",{"type":"Buffer","data":[1,2]},1.5,2]}"#
    );
}

#[tokio::test]
async fn a_silent_redis_is_a_bounded_timeout() {
    let opts = EmitterOptions::default().publish_timeout(Duration::from_millis(50));
    let e = Emitter::with_publisher(Box::new(Stuck), &opts);
    let err = e.emit("x", &()).confirmed().await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(t) if t == Duration::from_millis(50)),
        "{err}"
    );
}

#[tokio::test]
async fn futures_are_static_send_and_lazy() {
    let (e, sent) = capture();
    let local = String::from("borrowed");
    let fut = e.to(local.as_str()).emit("ev", &(local.as_str(), 1));
    drop(local);
    assert!(
        sent.lock().unwrap().is_empty(),
        "nothing is sent before polling"
    );
    tokio::spawn(fut).await.unwrap().unwrap();
    assert_eq!(sent.lock().unwrap().len(), 1);
    // Dropped unpolled: nothing is sent.
    drop(e.emit("never", &()));
    assert_eq!(sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unencodable_arguments_are_an_error() {
    use std::collections::HashMap;
    let (e, _) = capture();
    // A map with non-string keys is fine for msgpack; a failing Serialize is not.
    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("nope"))
        }
    }
    let err = e.emit("x", &(Fails,)).confirmed().await.unwrap_err();
    assert!(
        matches!(err, Error::Encode(ref m) if m.contains("nope")),
        "{err}"
    );
    let mut m = HashMap::new();
    m.insert(1, "one");
    e.emit("map", &m).confirmed().await.unwrap();
}

/// Fails every message, as a Redis that refuses them would.
struct Refusing;

impl Publish for Refusing {
    fn publish(
        &self,
        _: String,
        _: Vec<u8>,
    ) -> BoxFuture<'static, Result<usize, redis::RedisError>> {
        Box::pin(async {
            Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            )))
        })
    }
}

#[tokio::test]
async fn broadcasts_resolve_once_queued_and_flush_reports_what_failed() {
    let e = Emitter::with_publisher(Box::new(Refusing), &EmitterOptions::default());
    for i in 0..3 {
        e.emit("x", &i).await.expect("queued");
    }
    let err = e.flush().await.unwrap_err();
    assert!(
        matches!(err, Error::NotPublished { failed: 3, .. }),
        "{err}"
    );
    assert_eq!(e.stats().failed, 3);
    assert_eq!(e.stats().published, 0);
    // Reported once; a confirmed call gets its own error (and is counted too).
    e.flush().await.expect("nothing failed since");
    assert!(matches!(
        e.emit("y", &()).confirmed().await,
        Err(Error::Redis(_))
    ));
    assert!(matches!(e.sockets_join("r").await, Err(Error::Redis(_))));
    assert_eq!(e.stats().failed, 5);
}

#[tokio::test]
async fn a_full_queue_makes_the_caller_wait_for_room() {
    let opts = EmitterOptions::default()
        .queue_capacity(2)
        .publish_timeout(Duration::from_millis(300));
    let e = Emitter::with_publisher(Box::new(Stuck), &opts);
    // The writer holds the first (stuck in Redis); two more fill the queue.
    for i in 0..3 {
        e.emit("x", &i).await.expect("queued");
        tokio::task::yield_now().await;
    }
    let fourth = tokio::time::timeout(Duration::from_millis(100), e.emit("x", &3)).await;
    assert!(fourth.is_err(), "the fourth waits for room");
    // Once the stuck batch times out (counted failed), room is made.
    tokio::time::timeout(Duration::from_secs(5), e.emit("x", &3))
        .await
        .expect("room after the timeout")
        .expect("queued");
    assert!(e.stats().failed >= 1);
}

#[tokio::test]
async fn one_tasks_messages_keep_their_order_among_many_tasks() {
    let (e, sent) = capture();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let e = e.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    if i % 50 == 0 {
                        // Confirmed calls in between: queued behind that task's emits.
                        e.to(format!("t{t}")).sockets_join("x").await.unwrap();
                    }
                    e.to(format!("t{t}")).emit("seq", &i).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    e.flush().await.unwrap();
    let sent = sent.lock().unwrap();
    for t in 0..8 {
        let channel = format!("{}#/#t{t}#", crate::DEFAULT_KEY);
        let seq: Vec<u64> = sent
            .iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, p)| decode(p).packet.data[1].as_u64().unwrap())
            .collect();
        assert_eq!(seq, (0..200).collect::<Vec<u64>>(), "task {t}");
    }
}
