//! A hung server: a child process in the cluster stopped with SIGSTOP, its Redis
//! connections still open. Node waits the full timeout on every request forever; we detect
//! it by its missing heartbeats, stop waiting for it, name it in the error, and count it
//! again as soon as it heartbeats again.
//!
//! `harness = false`: the binary re-executes itself as the child server.

// kill(2) with SIGSTOP/SIGCONT on the test's own child process needs libc.
#![allow(unsafe_code)]

use socketioxide_cluster_test_support as common;

use common::RedisServer;
use socketioxide::{SocketIo, extract::SocketRef};
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions, Error};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SIO_CLUSTER_HUNG_CHILD";
/// Set for the run over the sharded protocol (Node's `createShardedAdapter`).
const SHARDED_ENV: &str = "SIO_CLUSTER_HUNG_SHARDED";

fn opts(url: &str, sharded: bool) -> ClusterOptions {
    let o = ClusterOptions::new(url)
        .name("group")
        .requests_timeout(Duration::from_secs(4))
        .heartbeat(Duration::from_millis(200), Duration::from_millis(1500));
    if sharded {
        o.key("hung-sharded")
            .sharded(socketioxide_cluster::SubscriptionMode::Static)
    } else {
        o.key("hung")
    }
}

async fn server(
    url: &str,
    sharded: bool,
) -> (
    Cluster,
    SocketIo<ClusterAdapter<socketioxide::adapter::Emitter>>,
) {
    let cluster = Cluster::connect(opts(url, sharded)).await.expect("connect");
    let (_svc, io) = SocketIo::builder()
        .with_adapter::<ClusterAdapter<_>>(cluster.clone())
        .build_svc();
    io.ns("/", async |_s: SocketRef<ClusterAdapter<_>>| {})
        .await
        .expect("ns");
    (cluster, io)
}

/// The child: one cluster server; prints its uid, runs until stdin closes.
fn child() {
    let url = std::env::var(CHILD_ENV).expect("url");
    let sharded = std::env::var(SHARDED_ENV).is_ok();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (cluster, _io) = server(&url, sharded).await;
        let me = cluster.uid().to_string();
        cluster.of("/").on_named("who", move |_| {
            let me = me.clone();
            async move { Ok(serde_json::json!(me)) }
        });
        println!("READY {}", cluster.uid());
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .ok();
    });
}

fn main() {
    if std::env::var(CHILD_ENV).is_ok() {
        child();
        return;
    }
    let redis = RedisServer::start();
    for sharded in [false, true] {
        scenario(&redis, sharded);
    }
    println!("2 passed, 0 failed");
}

/// One run: classic, or over the sharded protocol.
fn scenario(redis: &RedisServer, sharded: bool) {
    let mut cmd = Command::new(std::env::current_exe().expect("exe"));
    cmd.env(CHILD_ENV, redis.url());
    if sharded {
        cmd.env(SHARDED_ENV, "1");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("child output");
    let child_uid = line
        .trim()
        .strip_prefix("READY ")
        .expect("child ready line")
        .to_owned();
    let pid = child.id() as i32;
    // Whatever happens below, the child ends with this process (continued, then killed).
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            unsafe { libc::kill(self.0.id() as i32, libc::SIGCONT) };
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Reap(child);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let outcome = rt.block_on(async {
        let (cluster, _io) = server(&redis.url(), sharded).await;
        let ns = cluster.of("/");
        assert_eq!(ns.server_count().await.unwrap(), 2);
        // Healthy: the child answers, and heartbeats. (A loaded machine may stall the
        // child past the heartbeat timeout once while it starts: retry within a bound.)
        let healthy = Instant::now();
        while let Err(e) = ns.all_rooms().await {
            assert!(
                healthy.elapsed() < Duration::from_secs(15),
                "cluster never healthy: {e}"
            );
        }
        let known = Instant::now();
        while !cluster.live_peers().contains(&child_uid) {
            assert!(
                known.elapsed() < Duration::from_secs(10),
                "child heartbeat never seen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // An emitter asking the same cluster (classic: it follows our heartbeats there).
        let emitter = if sharded {
            None
        } else {
            let em = socketioxide_cluster_emitter::Emitter::connect(
                socketioxide_cluster_emitter::EmitterOptions::new(redis.url())
                    .key("hung")
                    .requests_timeout(Duration::from_secs(1)),
            )
            .await
            .expect("emitter");
            // Answered by both while healthy (and it hears the heartbeats from now on).
            let healthy = Instant::now();
            while em.all_rooms().await.is_err() {
                assert!(
                    healthy.elapsed() < Duration::from_secs(10),
                    "emitter: never healthy"
                );
            }
            // Heard twice (its interval known), so its silence can be told.
            while !em.live_servers().contains(&child_uid) {
                assert!(
                    healthy.elapsed() < Duration::from_secs(10),
                    "emitter: child never heard"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Some(em)
        };

        // Named: both are members of "group"; one-of requests alternate (the child
        // answers its own; this one registers its handler below, after the stop).
        let mut asked_child = false;
        for _ in 0..2 {
            if let Ok(r) = ns
                .ask_one("group", "who", &(), socketioxide_cluster::Ask::default())
                .await
            {
                asked_child |= r.from == child_uid && r.result.is_ok();
            }
        }
        assert!(asked_child, "the child is one of the group");

        // SIGSTOP: the child's connections stay open; it stops answering and heartbeating.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        // kill(2) only queues the signal: wait until the kernel says the child is stopped,
        // else it may still answer the next request (seen once on a loaded 2-core CI).
        wait_until_stopped(pid);
        if let Some(em) = &emitter {
            // The emitter's request ends at its timeout with the parent's answer, and
            // names the child (its heartbeats stopped).
            let err = em
                .fetch_sockets()
                .await
                .expect_err("the child does not answer");
            let inc = err.incomplete().expect("partial result");
            assert_eq!((inc.answered, inc.expected), (1, 2), "{err}");
            assert_eq!(inc.missing, vec![child_uid.clone()], "{err}");
            println!("emitter, hung server: {err}");
        }
        let stopped = Instant::now();
        let detected = loop {
            let call = Instant::now();
            match ns.all_rooms().await {
                Err(Error::Unresponsive { servers, .. }) => {
                    assert_eq!(servers, vec![child_uid.clone()], "names the hung server");
                    // Once known, calls do not wait for it at all.
                    assert!(
                        call.elapsed() < Duration::from_millis(1500),
                        "{:?}",
                        call.elapsed()
                    );
                    break stopped.elapsed();
                }
                Err(e) if e.is_timeout() => {} // before the heartbeat timeout: Node's behaviour
                other => panic!("unexpected while the child is stopped: {other:?}"),
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(15),
                "hung server never detected"
            );
        };
        // Named: the stopped member dropped out of "group" (heartbeat timeout), so
        // one-of requests go to the live one only.
        let me = cluster.uid().to_string();
        let mine = me.clone();
        ns.on_named("who", move |_| {
            let me = mine.clone();
            async move { Ok(serde_json::json!(me)) }
        });
        assert_eq!(ns.members("group"), vec![me.clone()]);
        for _ in 0..4 {
            let r = ns
                .ask_one("group", "who", &(), socketioxide_cluster::Ask::default())
                .await
                .expect("the live member answers");
            assert_eq!(r.from, me);
        }
        // Every later call is fast too.
        for _ in 0..5 {
            let call = Instant::now();
            let err = ns.all_rooms().await.unwrap_err();
            assert!(matches!(err, Error::Unresponsive { .. }), "{err}");
            assert!(call.elapsed() < Duration::from_millis(1500));
        }
        // SIGCONT: it heartbeats again and counts again.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        let resumed = Instant::now();
        loop {
            if ns.all_rooms().await.is_ok() && ns.members("group").len() == 2 {
                break;
            }
            assert!(
                resumed.elapsed() < Duration::from_secs(15),
                "resumed server never counted again"
            );
        }
        let back = resumed.elapsed();
        cluster.close().await;
        (detected, back)
    });
    drop(child);
    println!(
        "hung server ({}): detected {:?} after SIGSTOP (heartbeat timeout 1.5 s), counted again {:?} after SIGCONT",
        if sharded { "sharded" } else { "classic" },
        outcome.0,
        outcome.1
    );
}

/// Waits (bounded) until `/proc/<pid>/stat` shows the process stopped (`T`).
fn wait_until_stopped(pid: i32) {
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the parenthesised command name.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state == Some('T') {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "child {pid} not stopped after SIGSTOP: {stat}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
