//! Redis Sentinel (`ClusterOptions::sentinel`): a master, a replica and three sentinels
//! (`down-after-milliseconds` 500) on free ports. While broadcasts flow from server A
//! to a client of server B, the master fails over — killed with SIGKILL, or by
//! `SENTINEL FAILOVER` — and:
//! * delivery resumes by itself on the new master (the time from `+switch-master` to
//!   the first broadcast emitted after it that arrives is printed);
//! * both servers count each other again, subscribed on the new master;
//! * no connection of ours is left on the old master, nor opened to it when it comes
//!   back as a master (the split-brain window);
//! * every broadcast lost was refused to its caller, failed in the publisher or
//!   reached fewer servers than alive — all counted.
//!
//! Requires `redis-server` and `redis-cli` (Debian's redis-server and redis-tools).

use socketioxide_cluster_test_support as common;

use common::Parser;
use common::cluster::{Serve, client, nodes_serving, until_server_count};
use common::redis::cli;
use common::sentinel::{Auth, MASTER_NAME, Sentinels, application_clients};
use socketioxide_cluster::ClusterOptions;
use socketioxide_cluster_emitter::{Emitter, EmitterOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);
/// A failover with down-after 500 ms takes about 2 s; generous for a loaded machine.
const FAILOVER_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL of the master; it is restarted afterwards (and is a master again for
    /// about ten seconds until the sentinels demote it).
    Kill,
    /// `SENTINEL FAILOVER`: the old master stays up.
    Failover,
}

fn opts(s: &Sentinels, key: &str) -> ClusterOptions {
    ClusterOptions::sentinel(s.sentinel_urls(), MASTER_NAME)
        .key(key)
        .connect_timeout(Duration::from_secs(1))
        .requests_timeout(T)
}

/// Who emits the ticks.
enum Source {
    Server(common::cluster::Io),
    Emitter(Emitter),
}

impl Source {
    async fn emit(&self, event: &str, i: u64) -> bool {
        match self {
            Source::Server(io) => io.emit(event, &(i,)).await.is_ok(),
            Source::Emitter(e) => e.emit(event, &(i,)).confirmed().await.is_ok(),
        }
    }
}

/// Emits `event` i from a server or an emitter every 2 ms until stopped; records when
/// each was emitted and how many `emit` refused.
struct Ticker {
    emitted: Arc<Mutex<Vec<Instant>>>,
    refused: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    fn start(source: Source, event: &'static str) -> Ticker {
        let emitted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (emitted, refused, stop) = (emitted.clone(), refused.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    emitted.lock().unwrap().push(Instant::now());
                    if !source.emit(event, i).await {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        Ticker {
            emitted,
            refused,
            stop,
            task,
        }
    }

    fn emitted_at(&self, i: u64) -> Instant {
        self.emitted.lock().unwrap()[i as usize]
    }

    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let total = self.emitted.lock().unwrap().len() as u64;
        (total, self.refused.load(Ordering::Relaxed))
    }
}

/// Polls `port` for `window`: no connection of ours may appear there.
async fn none_of_ours_on(port: u16, window: Duration, what: &str) {
    let until = Instant::now() + window;
    while Instant::now() < until {
        let ours = application_clients(port);
        assert!(ours.is_empty(), "{what}: connections on {port}: {ours:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn failover_while_broadcasting(fault: Fault) {
    common::init_tracing();
    let s = tokio::task::spawn_blocking(|| Sentinels::start(500))
        .await
        .unwrap();
    let key = common::unique_key("sentinel");
    let servers = nodes_serving(2, &opts(&s, &key), Parser::Json, Serve::ROOT).await;
    let old = s.master_port();
    let request_channel = format!("{key}-request#/#");
    assert_eq!(
        cli(old, &["pubsub", "numsub", &request_channel]),
        format!("{request_channel}\n2\n"),
        "both servers subscribe on the master"
    );
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    until_server_count(&servers[0], 2, T).await;
    let switch = s.on_switch().await;
    let emitter = Emitter::connect(
        EmitterOptions::sentinel(s.sentinel_urls(), MASTER_NAME)
            .key(&key)
            .connect_timeout(Duration::from_secs(1)),
    )
    .await
    .expect("emitter through the sentinels");
    let ticker = Ticker::start(Source::Server(servers[0].io.clone()), "tick");
    let eticker = Ticker::start(Source::Emitter(emitter), "etick");
    // Both flow before the fault.
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        seen.insert(c.recv_event(T).await.name);
    }

    let fault_at = Instant::now();
    // When the last connection of ours left the old master (it stays up on a manual
    // failover), polled from the fault on.
    let left = (fault == Fault::Failover).then(|| {
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + FAILOVER_WITHIN;
            while Instant::now() < deadline {
                if application_clients(old).is_empty() {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        })
    });
    match fault {
        Fault::Kill => s.data_nodes()[0].kill(),
        Fault::Failover => {
            let out = tokio::task::block_in_place(|| s.failover());
            assert!(out.contains("OK"), "SENTINEL FAILOVER: {out:?}");
        }
    }
    let (switched_at, announced) = tokio::time::timeout(FAILOVER_WITHIN, switch)
        .await
        .expect("+switch-master within the bound")
        .expect("the switch listener");
    let new = s.master_port();
    assert_ne!(new, old);

    // Receive until, from both, a tick emitted half a second after the switch arrived:
    // the first tick emitted after the switch that arrives tells when delivery resumed.
    let (mut received, mut ereceived) = (BTreeMap::new(), BTreeMap::new());
    let late = switched_at + Duration::from_millis(500);
    let (mut done, mut edone) = (false, false);
    while !(done && edone) {
        let ev = tokio::time::timeout(FAILOVER_WITHIN, c.recv_event(FAILOVER_WITHIN))
            .await
            .expect("ticks again after the failover");
        let i = ev.i64_arg(0) as u64;
        match ev.name.as_str() {
            "tick" => {
                received.insert(i, Instant::now());
                done |= ticker.emitted_at(i) > late;
            }
            "etick" => {
                ereceived.insert(i, Instant::now());
                edone |= eticker.emitted_at(i) > late;
            }
            other => panic!("unexpected event {other}"),
        }
    }
    let resumed_after = |t: &Ticker, got: &BTreeMap<u64, Instant>| {
        got.iter()
            .filter(|(i, _)| t.emitted_at(**i) >= switched_at)
            .map(|(_, at)| at.saturating_duration_since(switched_at))
            .min()
            .expect("a tick emitted after the switch arrived")
    };
    let resumed = resumed_after(&ticker, &received);
    let eresumed = resumed_after(&eticker, &ereceived);

    // The old master: after a kill it comes back as a master (for ~10 s, until the
    // sentinels demote it); after a manual failover it never went away. Either way no
    // connection of ours may be (or get) there while broadcasts keep flowing.
    let left_old = match fault {
        Fault::Kill => {
            tokio::task::block_in_place(|| s.data_nodes()[0].restart());
            assert!(
                cli(old, &["role"]).starts_with("master"),
                "split-brain setup"
            );
            Duration::ZERO
        }
        Fault::Failover => {
            let left = left.expect("polled").await.unwrap().unwrap_or_else(|| {
                panic!(
                    "still connected to the old master: {:#?}",
                    application_clients(old)
                )
            });
            left.saturating_duration_since(switched_at)
        }
    };
    none_of_ours_on(old, Duration::from_millis(1500), "old master").await;

    // Following the sentinels, not waiting for the old master to drop us (a demoted
    // master closes its clients only ~10 s later): the watcher acts on +switch-master,
    // or within its one-second check.
    let follow_within = Duration::from_secs(3);
    assert!(
        resumed < follow_within && eresumed < follow_within,
        "delivery resumed {resumed:?} (emitter {eresumed:?}) after +switch-master"
    );
    assert!(
        left_old < follow_within,
        "left the old master {left_old:?} after the switch"
    );
    let (total, refused) = ticker.finish().await;
    let (etotal, erefused) = eticker.finish().await;
    while let Some(ev) = c.try_recv_event(Duration::from_millis(300)).await {
        let got = match ev.name.as_str() {
            "tick" => &mut received,
            _ => &mut ereceived,
        };
        got.insert(ev.i64_arg(0) as u64, Instant::now());
    }
    let missing_of = |total: u64, got: &BTreeMap<u64, Instant>| {
        let first = *got.keys().next().unwrap();
        (first..total).filter(|i| !got.contains_key(i)).count() as u64
    };
    let missing = missing_of(total, &received);
    let emissing = missing_of(etotal, &ereceived);
    let a = servers[0].cluster.stats();
    let b = servers[1].cluster.stats();
    eprintln!(
        "{fault:?}: +switch-master {:?} after the fault ({announced}); delivery resumed \
         {resumed:?} after +switch-master; {total} emitted, {missing} not received: {refused} \
         refused by emit (stats.refused {}), {} publish_failed, {} under_delivered; \
         master_switches A {} B {}; off the old master {left_old:?} after the switch",
        switched_at - fault_at,
        a.refused,
        a.publish_failed,
        a.under_delivered,
        a.master_switches,
        b.master_switches,
    );

    eprintln!(
        "{fault:?}, emitter: delivery resumed {eresumed:?} after +switch-master; {etotal} \
         emitted, {emissing} not received, {erefused} refused by emit"
    );

    // Back together on the new master.
    for n in &servers {
        assert!(n.cluster.is_connected());
        until_server_count(n, 2, T).await;
        assert!(n.cluster.stats().master_switches >= 1);
    }
    assert_eq!(
        cli(new, &["pubsub", "numsub", &request_channel]),
        format!("{request_channel}\n2\n"),
        "both servers subscribe on the new master"
    );
    // Every refusal is counted (heartbeats refused meanwhile too).
    assert!(
        a.refused >= refused,
        "{} counted, {refused} refused",
        a.refused
    );
    // Nothing lost silently: a missing tick was refused, failed in the publisher, or
    // reached fewer servers than alive; only the few Redis accepted in the instant it
    // died (kill) may be uncounted.
    let counted = refused + a.publish_failed + a.under_delivered;
    assert!(
        missing <= counted + 10,
        "{missing} missing, {counted} counted"
    );
    // The emitter's caller is told of every loss but those Redis accepted as the master
    // died (kill) or that it published to the old master in the instant before the
    // switch was announced (manual failover).
    assert!(
        emissing <= erefused + 10,
        "emitter: {emissing} missing, {erefused} refused"
    );
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_the_master_is_killed() {
    failover_while_broadcasting(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_a_manual_failover() {
    failover_while_broadcasting(Fault::Failover).await;
}

#[tokio::test]
async fn a_server_connects_to_the_master_not_the_replica() {
    common::init_tracing();
    let s = tokio::task::spawn_blocking(|| Sentinels::start(500))
        .await
        .unwrap();
    let key = common::unique_key("sentinel-connect");
    // The replica's sentinel view comes first: it must not matter.
    let cluster = socketioxide_cluster::Cluster::connect(opts(&s, &key))
        .await
        .expect("connect through the sentinels");
    let master = s.master_port();
    let replica = s.data_nodes()[1].port();
    assert_eq!(application_clients(replica), Vec::<String>::new());
    assert!(!application_clients(master).is_empty());
    let (sentinels, name) = cluster.config().sentinel().expect("sentinel options");
    assert_eq!((sentinels.len(), name), (3, MASTER_NAME));
    cluster.close().await;

    // A master name the sentinels do not know: an error from connect, not a hang.
    let err = socketioxide_cluster::Cluster::connect(
        ClusterOptions::sentinel(s.sentinel_urls(), "nosuchmaster").connect_timeout(T),
    )
    .await
    .expect_err("unknown master name");
    assert!(err.to_string().contains("ntinel"), "{err}");
}

/// Passwords on both legs: the sentinels' own (`requirepass` in their config, given in
/// the sentinel URLs) and the master's (`master_auth`), each checked separately.
#[tokio::test]
async fn each_leg_has_its_own_credentials() {
    common::init_tracing();
    let auth = Auth {
        data: "data-Pw-7".into(),
        sentinel: "sentinel-Pw-9".into(),
    };
    let s = {
        let auth = auth.clone();
        tokio::task::spawn_blocking(move || Sentinels::start_with_auth(500, Some(auth)))
            .await
            .unwrap()
    };
    let with_password = |pw: &str| -> Vec<String> {
        s.sentinel_urls()
            .iter()
            .map(|u| u.replace("redis://", &format!("redis://:{pw}@")))
            .collect()
    };
    let key = common::unique_key("sentinel-auth");
    let good = ClusterOptions::sentinel(with_password(&auth.sentinel), MASTER_NAME)
        .master_auth(None, auth.data.clone())
        .key(&key)
        .connect_timeout(Duration::from_secs(2))
        .requests_timeout(T);
    let servers = nodes_serving(2, &good, Parser::Json, Serve::ROOT).await;
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    until_server_count(&servers[0], 2, T).await;
    servers[0].io.emit("hello", &()).await.unwrap();
    assert_eq!(c.recv_event(T).await.name, "hello");
    let emitter = Emitter::connect(
        EmitterOptions::sentinel(with_password(&auth.sentinel), MASTER_NAME)
            .master_auth(None, auth.data.clone())
            .key(&key),
    )
    .await
    .expect("emitter with both passwords");
    assert_eq!(
        emitter.emit("from-emitter", &()).confirmed().await.unwrap(),
        2
    );
    assert_eq!(c.recv_event(T).await.name, "from-emitter");

    // A wrong master password, or none for the sentinels: an error from connect,
    // never a password in it.
    for (opts, what) in [
        (
            ClusterOptions::sentinel(with_password(&auth.sentinel), MASTER_NAME)
                .master_auth(None, "wrong-master-pw"),
            "wrong master password",
        ),
        (
            ClusterOptions::sentinel(s.sentinel_urls(), MASTER_NAME)
                .master_auth(None, auth.data.clone()),
            "no sentinel password",
        ),
    ] {
        let err = socketioxide_cluster::Cluster::connect(opts.connect_timeout(T))
            .await
            .expect_err(what);
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(&auth.data)
                && !text.contains(&auth.sentinel)
                && !text.contains("wrong-master-pw"),
            "{what}: a password in the error: {text}"
        );
        eprintln!("{what}: {err}");
    }
    c.disconnect().await;
}

/// TLS on both legs (`rediss://` sentinel URLs, `master_tls`), one CA for both: servers
/// and the emitter work, follow a failover, and without the CA they cannot connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_both_legs_through_a_failover() {
    common::init_tracing();
    let certs = Arc::new(common::tls::Certs::generate());
    let s = tokio::task::spawn_blocking(move || Sentinels::start_with(500, None, Some(certs)))
        .await
        .unwrap();
    let (urls, ca) = s.sentinel_tls_urls().expect("TLS setup");
    let key = common::unique_key("sentinel-tls");
    let opts = ClusterOptions::sentinel(urls.clone(), MASTER_NAME)
        .master_tls(true)
        .tls_root_cert(ca.as_bytes())
        .key(&key)
        .connect_timeout(Duration::from_secs(2))
        .requests_timeout(T);
    let servers = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    let emitter = Emitter::connect(
        EmitterOptions::sentinel(urls.clone(), MASTER_NAME)
            .master_tls(true)
            .tls_root_cert(ca.as_bytes())
            .key(&key),
    )
    .await
    .expect("emitter over TLS");
    for round in ["before", "after"] {
        // After the failover: well before a demoted master would drop its clients.
        let within = if round == "before" {
            T
        } else {
            Duration::from_secs(4)
        };
        until_server_count(&servers[0], 2, within).await;
        servers[0].io.emit("hello", &(round,)).await.unwrap();
        assert_eq!(c.recv_event_named("hello", T).await.str_arg(0), round);
        assert_eq!(
            emitter
                .emit("from-emitter", &(round,))
                .confirmed()
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            c.recv_event_named("from-emitter", T).await.str_arg(0),
            round
        );
        if round == "before" {
            let old = s.master_port();
            let switch = s.on_switch().await;
            let out = tokio::task::block_in_place(|| s.failover());
            assert!(out.contains("OK"), "SENTINEL FAILOVER: {out:?}");
            tokio::time::timeout(FAILOVER_WITHIN, switch)
                .await
                .expect("+switch-master")
                .unwrap();
            assert_ne!(s.master_port(), old);
        }
    }
    // The system roots do not know the test CA: the sentinel leg fails.
    let err = socketioxide_cluster::Cluster::connect(
        ClusterOptions::sentinel(urls, MASTER_NAME)
            .master_tls(true)
            .connect_timeout(T),
    )
    .await
    .expect_err("no CA");
    assert!(err.is_connection_error(), "{err}");
    c.disconnect().await;
}

/// The Streams protocol over Sentinel: while broadcasts flow, a `SENTINEL FAILOVER`;
/// the reader follows the writers to the new master and reads on from its offset in the
/// replicated stream: every broadcast accepted is delivered once, but for those the old
/// master took after the replica's last sync (counted or refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_follow_a_failover_without_loss_or_duplicates() {
    use socketioxide_cluster::StreamsOptions;
    common::init_tracing();
    let s = tokio::task::spawn_blocking(|| Sentinels::start(500))
        .await
        .unwrap();
    let key = common::unique_key("sentinel-streams");
    let opts = opts(&s, &key).streams(StreamsOptions {
        stream_name: format!("{key}-s"),
        ..StreamsOptions::default()
    });
    let servers = nodes_serving(2, &opts, Parser::Json, Serve::ROOT).await;
    let mut c = client(&servers[1], "/", Parser::Json, &[], T).await;
    until_server_count(&servers[0], 2, T).await;
    let ticker = Ticker::start(Source::Server(servers[0].io.clone()), "tick");
    c.recv_event_named("tick", T).await;
    let switch = s.on_switch().await;
    let out = tokio::task::block_in_place(|| s.failover());
    assert!(out.contains("OK"), "SENTINEL FAILOVER: {out:?}");
    let (switched_at, _) = tokio::time::timeout(FAILOVER_WITHIN, switch)
        .await
        .expect("+switch-master")
        .unwrap();
    let mut got: BTreeMap<u64, usize> = BTreeMap::new();
    let resumed = loop {
        let ev = c.recv_event_named("tick", FAILOVER_WITHIN).await;
        let i = ev.i64_arg(0) as u64;
        *got.entry(i).or_default() += 1;
        if ticker.emitted_at(i) > switched_at + Duration::from_millis(500) {
            break switched_at.elapsed();
        }
    };
    // The reader follows at once: not when the demoted master drops it (~10 s), and
    // never reading a replica meanwhile.
    assert!(
        resumed < Duration::from_secs(3),
        "a tick emitted 0.5 s after the switch arrived {resumed:?} after it"
    );
    let (total, refused) = ticker.finish().await;
    while let Some(ev) = c.try_recv_event(Duration::from_millis(500)).await {
        *got.entry(ev.i64_arg(0) as u64).or_default() += 1;
    }
    let first = *got.keys().next().unwrap();
    let missing = (first..total).filter(|i| !got.contains_key(i)).count() as u64;
    let dup = got.values().filter(|n| **n > 1).count();
    let a = servers[0].cluster.stats();
    eprintln!(
        "streams over SENTINEL FAILOVER: {total} emitted, {missing} not received ({refused} refused, {} publish_failed), {dup} duplicated, B stream_missed {}",
        a.publish_failed,
        servers[1].cluster.stats().stream_missed
    );
    assert_eq!(dup, 0);
    assert!(
        missing <= refused + a.publish_failed + 10,
        "{missing} missing, {refused} refused, {} failed",
        a.publish_failed
    );
    until_server_count(&servers[0], 2, T).await;
    // An emitter through the sentinels writes the stream of the new master too.
    let emitter = Emitter::connect(
        EmitterOptions::sentinel(s.sentinel_urls(), MASTER_NAME)
            .key(&key)
            .streams(format!("{key}-s")),
    )
    .await
    .expect("streams emitter through the sentinels");
    assert_eq!(
        emitter
            .emit("from-emitter", &"e")
            .confirmed()
            .await
            .unwrap(),
        2
    );
    assert_eq!(c.recv_event_named("from-emitter", T).await.str_arg(0), "e");
    // (Its entry is the last of the new master's stream. What the old master accepted
    // between the promotion and `+switch-master` is not there: delivered to every
    // server, which read it on the old master, but not replicated — the split-brain
    // window of README "High availability with Sentinel".)
    let last = cli(
        s.master_port(),
        &["xrevrange", &format!("{key}-s"), "+", "-", "count", "1"],
    );
    assert!(
        last.contains("emitter"),
        "the new master's last entry: {last}"
    );
    c.disconnect().await;
}

/// Requests from an emitter through the sentinels: answered on the master, and again
/// after a `SENTINEL FAILOVER` (the emitter asks the sentinels anew).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emitter_asks_through_the_sentinels_across_a_failover() {
    common::init_tracing();
    let s = tokio::task::spawn_blocking(|| Sentinels::start(500))
        .await
        .unwrap();
    let key = common::unique_key("sentinel-asks");
    let servers = nodes_serving(2, &opts(&s, &key), Parser::Json, Serve::ROOT).await;
    let _c = client(&servers[0], "/", Parser::Json, &["r"], T).await;
    let emitter = Emitter::connect(
        EmitterOptions::sentinel(s.sentinel_urls(), MASTER_NAME)
            .key(&key)
            .requests_timeout(Duration::from_secs(2)),
    )
    .await
    .expect("emitter through the sentinels");
    assert_eq!(emitter.server_count().await.unwrap(), 2);
    assert_eq!(emitter.fetch_sockets().await.unwrap().len(), 1);
    let switch = s.on_switch().await;
    let out = tokio::task::block_in_place(|| s.failover());
    assert!(out.contains("OK"), "SENTINEL FAILOVER: {out:?}");
    tokio::time::timeout(FAILOVER_WITHIN, switch)
        .await
        .expect("+switch-master")
        .unwrap();
    let deadline = Instant::now() + FAILOVER_WITHIN;
    loop {
        let count = emitter.server_count().await;
        let fetched = emitter.fetch_sockets().await;
        if count.as_ref().ok() == Some(&2) && fetched.as_ref().map(Vec::len).ok() == Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not answered on the new master: {count:?} {fetched:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in &servers {
        s.cluster.close().await;
    }
}
