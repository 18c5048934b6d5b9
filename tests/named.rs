//! Named servers on one Redis: three socketioxide servers (two named "worker", one
//! "api") and a Node server (socket.io 4.8.4, redis-adapter 8.3.0) in the same cluster.
//! One-of-a-name spreads requests over the members, all-of-a-name gathers every reply,
//! a request past its time to live is dropped and counted, an unknown name fails at once,
//! a uid is a name, and the Node server sees none of it and keeps working.
//!
//! Requires `redis-server`, Node.js 20 and `npm ci` in `tests/interop`.

use socketioxide_cluster_test_support as common;

use common::Parser;
use common::cluster::{Node, Serve, client, node_serving, shared_opts};
use common::node::{start_client, start_server};
use serde_json::json;
use socketioxide_cluster::{Ask, ClusterOptions, Error};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn opts(key: &str, name: &str) -> ClusterOptions {
    shared_opts(key)
        .name(name)
        .heartbeat(Duration::from_millis(200), Duration::from_millis(1000))
        .requests_timeout(Duration::from_secs(2))
}

/// Waits until `on` sees `n` live members of `name`.
async fn until_members(on: &Node, name: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + T;
    loop {
        let m = on.cluster.of("/").members(name);
        if m.len() == n {
            return m;
        }
        assert!(Instant::now() < deadline, "{name}: {m:?}, want {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_one_or_every_member_of_a_name() {
    common::init_tracing();
    let key = common::unique_key("named");
    let mut node = start_server("named-N", &common::shared().url(), &key, &[]).await;
    let mut servers = Vec::new();
    for name in ["worker", "worker", "api"] {
        servers.push(node_serving(opts(&key, name), Parser::Json, Serve::ROOT).await);
    }
    let uid = |i: usize| servers[i].cluster.uid().to_string();
    for (i, s) in servers.iter().enumerate() {
        let me = uid(i);
        s.cluster.of("/").on_named("job", move |req| {
            let me = me.clone();
            async move { Ok(json!({"by": me, "args": req.args})) }
        });
        s.cluster
            .of("/")
            .on_named("fail", |_| async { Err("no can do".to_owned()) });
    }
    let api = servers[2].cluster.of("/");
    let workers = until_members(&servers[2], "worker", 2).await;
    let mut want = vec![uid(0), uid(1)];
    want.sort();
    assert_eq!(workers, want);
    assert_eq!(api.members(&uid(0)), vec![uid(0)], "a uid is a name");

    // One of the group: round robin over both members.
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        let r = api
            .ask_one("worker", "job", &(i,), Ask::default())
            .await
            .unwrap();
        let v = r.result.unwrap();
        assert_eq!(v["by"], json!(r.from));
        assert_eq!(v["args"], json!([i]));
        *by.entry(r.from).or_default() += 1;
    }
    assert_eq!(
        by.values().copied().collect::<Vec<_>>(),
        vec![3, 3],
        "{by:?}"
    );

    // All of the group: one reply each.
    let all = api
        .ask_all("worker", "job", &("x",), Ask::default())
        .await
        .unwrap();
    let mut from: Vec<String> = all.iter().map(|r| r.from.clone()).collect();
    from.sort();
    assert_eq!(from, want);
    // By uid; a handler's error comes back as that member's error.
    let r = api
        .ask_one(&uid(1), "fail", &(), Ask::default())
        .await
        .unwrap();
    assert_eq!(r.result, Err("no can do".to_owned()));
    // An event nobody handles: each member says so.
    let r = api
        .ask_one(&uid(0), "nothing", &(), Ask::default())
        .await
        .unwrap();
    assert!(r.result.unwrap_err().contains("no handler"));

    // Fire and forget to all.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for s in &servers[..2] {
        let tx = tx.clone();
        s.cluster.of("/").on_named("reload", move |req| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(req.args);
                Ok(json!(null))
            }
        });
    }
    assert_eq!(
        api.tell_all("worker", "reload", &("now",), Ask::default())
            .await
            .unwrap(),
        2
    );
    for _ in 0..2 {
        let args = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        assert_eq!(args, vec![json!("now")]);
    }

    // Unknown name: at once.
    let started = Instant::now();
    let err = api
        .ask_one("nobody", "job", &(), Ask::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NoSuchServer(ref n) if n == "nobody"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_millis(100));

    // A request past its deadline when it arrives: dropped by the member, counted, and
    // the caller's timeout names it.
    let before =
        servers[0].cluster.stats().named_expired + servers[1].cluster.stats().named_expired;
    let err = api
        .ask_all(
            "worker",
            "job",
            &(),
            Ask::default()
                .ttl(Duration::from_micros(1))
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    match &err {
        Error::NoAnswer {
            missing, replies, ..
        } => {
            let mut m = missing.clone();
            m.sort();
            assert_eq!(m, want, "{err}");
            assert!(replies.is_empty());
        }
        other => panic!("{other}"),
    }
    assert!(err.is_timeout());
    let after = servers[0].cluster.stats().named_expired + servers[1].cluster.stats().named_expired;
    assert_eq!(after - before, 2, "both members dropped it");
    // With room to spare, the same request is answered.
    let ok = api
        .ask_all(
            "worker",
            "job",
            &(),
            Ask::default().ttl(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(ok.len(), 2);

    // From an emitter: the same requests, the members learnt from the heartbeats.
    let em = socketioxide_cluster_emitter::Emitter::connect(
        socketioxide_cluster_emitter::EmitterOptions::new(common::shared().url())
            .key(&key)
            .requests_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    assert_eq!(em.members("worker").await.unwrap(), want);
    let ea = Ask::default();
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..4 {
        let r = em.ask_one("worker", "job", &(i,), ea).await.unwrap();
        assert_eq!(r.result.unwrap()["args"], json!([i]));
        *by.entry(r.from).or_default() += 1;
    }
    assert_eq!(
        by.values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{by:?}"
    );
    assert_eq!(em.ask_all("worker", "job", &(), ea).await.unwrap().len(), 2);
    assert_eq!(
        em.ask_all("api", "job", &(), ea).await.unwrap()[0].from,
        uid(2)
    );
    assert_eq!(
        em.tell_all("worker", "reload", &("e",), ea).await.unwrap(),
        2
    );
    for _ in 0..2 {
        let args = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        assert_eq!(args, vec![json!("e")]);
    }
    let err = em.ask_one("nobody", "job", &(), ea).await.unwrap_err();
    assert!(
        matches!(err, socketioxide_cluster_emitter::Error::NoSuchServer(_)),
        "{err}"
    );

    // A member that left is no longer asked.
    servers[1].cluster.close().await;
    let left = until_members(&servers[2], "worker", 1).await;
    assert_eq!(left, vec![uid(0)]);
    for _ in 0..3 {
        let r = api
            .ask_one("worker", "job", &(), Ask::default())
            .await
            .unwrap();
        assert_eq!(r.from, uid(0));
    }

    // The Node server saw none of it: it still counts the servers and delivers.
    let count = node.request(json!({"cmd": "serverCount"}), T).await;
    assert_eq!(count["count"], json!(3), "{count}");
    let mut c = client(&servers[0], "/", Parser::Json, &[], T).await;
    let n1 = start_client("named-n1", &node.url(), "/", json!([]), &[]).await;
    node.request(json!({"cmd": "emit", "event": "still", "args": [1]}), T)
        .await;
    assert_eq!(c.recv_event_named("still", T).await.i64_arg(0), 1);
    for s in &servers {
        assert_eq!(s.cluster.stats().malformed, 0);
        s.cluster.close().await;
    }
    common::cluster::shutdown_all(vec![n1, node]).await;
}

/// The same on a Redis Cluster (3 masters), sharded protocol: each server's named
/// channel lives on its own slot's master. Also the latency of one-of and all-of
/// requests (printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_requests_on_a_redis_cluster() {
    use common::redis_cluster::RedisCluster;
    use socketioxide_cluster::SubscriptionMode;
    common::init_tracing();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .unwrap();
    let key = common::unique_key("named-rc");
    let mut servers = Vec::new();
    for i in 0..3 {
        let o = ClusterOptions::redis_cluster(cluster.seeds_from(i))
            .key(&key)
            .sharded(SubscriptionMode::Static)
            .name("group")
            .heartbeat(Duration::from_millis(200), Duration::from_millis(1000));
        servers.push(node_serving(o, Parser::Json, Serve::ROOT).await);
    }
    for s in &servers {
        let me = s.cluster.uid().to_string();
        s.cluster.of("/").on_named("who", move |_| {
            let me = me.clone();
            async move { Ok(json!(me)) }
        });
    }
    until_members(&servers[0], "group", 3).await;
    let ns = servers[0].cluster.of("/");
    let mut one = Vec::new();
    let mut from = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let t = Instant::now();
        let r = ns
            .ask_one("group", "who", &(), Ask::default())
            .await
            .unwrap();
        one.push(t.elapsed());
        assert_eq!(r.result.unwrap(), json!(r.from));
        from.insert(r.from);
    }
    assert_eq!(from.len(), 3, "every member asked");
    let mut all = Vec::new();
    for _ in 0..60 {
        let t = Instant::now();
        assert_eq!(
            ns.ask_all("group", "who", &(), Ask::default())
                .await
                .unwrap()
                .len(),
            3
        );
        all.push(t.elapsed());
    }
    let em = socketioxide_cluster_emitter::Emitter::connect(
        socketioxide_cluster_emitter::EmitterOptions::redis_cluster(cluster.urls())
            .key(&key)
            .sharded(SubscriptionMode::Static),
    )
    .await
    .unwrap();
    let ea = Ask::default();
    assert_eq!(em.ask_all("group", "who", &(), ea).await.unwrap().len(), 3);
    let mut em_one = Vec::new();
    for _ in 0..60 {
        let t = Instant::now();
        em.ask_one("group", "who", &(), ea).await.unwrap();
        em_one.push(t.elapsed());
    }
    let p50 = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    eprintln!(
        "named requests on a Redis Cluster (sharded), p50 of 60: one of 3 {:?}, all of 3 {:?}, one of 3 from the emitter {:?}",
        p50(&mut one),
        p50(&mut all),
        p50(&mut em_one)
    );
    for s in &servers {
        s.cluster.close().await;
    }
}

/// Named requests over the Streams transport (pub/sub part) and the in-process bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_requests_over_streams_and_the_in_process_bus() {
    use socketioxide_cluster::{InProcessBus, StreamsOptions};
    common::init_tracing();
    let key = common::unique_key("named-st");
    let bus = InProcessBus::new();
    type Make<'a> = Box<dyn Fn() -> ClusterOptions + 'a>;
    let transports: [(&str, Make<'_>); 2] = [
        (
            "streams",
            Box::new(|| {
                opts(&key, "g").streams(StreamsOptions {
                    stream_name: format!("{key}-s"),
                    ..StreamsOptions::default()
                })
            }),
        ),
        (
            "in-process",
            Box::new(|| {
                ClusterOptions::in_process(&bus)
                    .key(&key)
                    .name("g")
                    .heartbeat(Duration::from_millis(200), Duration::from_millis(1000))
            }),
        ),
    ];
    for (what, make) in transports {
        let mut servers = Vec::new();
        for _ in 0..2 {
            servers.push(node_serving(make(), Parser::Json, Serve::ROOT).await);
        }
        for s in &servers {
            let me = s.cluster.uid().to_string();
            s.cluster.of("/").on_named("who", move |_| {
                let me = me.clone();
                async move { Ok(json!(me)) }
            });
        }
        until_members(&servers[0], "g", 2).await;
        let all = servers[0]
            .cluster
            .of("/")
            .ask_all("g", "who", &(), Ask::default())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(all.len(), 2, "{what}");
        for r in &all {
            assert_eq!(r.result, Ok(json!(r.from)), "{what}");
        }
        for s in &servers {
            s.cluster.close().await;
        }
    }
}

/// An emitter with a name is a member of it: servers and other emitters ask it; it is
/// not counted as a server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emitter_with_a_name_answers() {
    use socketioxide_cluster_emitter::{Emitter, EmitterOptions};
    common::init_tracing();
    let key = common::unique_key("named-em");
    let server = node_serving(opts(&key, "api"), Parser::Json, Serve::ROOT).await;
    let cron = Emitter::connect(
        EmitterOptions::new(common::shared().url())
            .key(&key)
            .name("cron"),
    )
    .await
    .unwrap();
    cron.on_named("next-run", |req| async move {
        Ok(json!({"at": "03:00", "asked_by": req.from}))
    })
    .await
    .unwrap();
    let members = until_members(&server, "cron", 1).await;
    let reply = server
        .cluster
        .of("/")
        .ask_one("cron", "next-run", &(), Ask::default())
        .await
        .unwrap();
    assert_eq!(reply.from, members[0]);
    let v = reply.result.unwrap();
    assert_eq!(v["at"], json!("03:00"));
    assert_eq!(v["asked_by"], json!(server.cluster.uid().to_string()));
    // Not one of the servers.
    assert_eq!(server.cluster.of("/").server_count().await.unwrap(), 1);
    assert!(
        server.cluster.live_peers().is_empty(),
        "{:?}",
        server.cluster.live_peers()
    );
    // Another emitter asks it too.
    let other = Emitter::connect(EmitterOptions::new(common::shared().url()).key(&key))
        .await
        .unwrap();
    let r = other
        .ask_one("cron", "next-run", &(), Ask::default())
        .await
        .unwrap();
    assert_eq!(r.result.unwrap()["at"], json!("03:00"));
    server.cluster.close().await;
}
