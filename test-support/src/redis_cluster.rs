//! A throw-away Redis Cluster: `redis-server --cluster-enabled yes` processes on free
//! loopback ports (client port and cluster-bus port both picked free, so no port needs
//! the classic `port + 10000` to be free), joined with `redis-cli --cluster create`,
//! waited for until every node reports `cluster_state:ok` (and every replica's link to
//! its master is up). About 2 s to create (`redis-cli` waits on its own).
//!
//! Nodes are [`RedisServer`]s: killed on drop, and with the test binary.

use crate::redis::{RedisServer, cli, free_port};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the cluster may take to report `cluster_state:ok` after creation.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Redis Cluster.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    masters: usize,
    /// The nodes' cluster config files, removed on drop.
    confs: Vec<PathBuf>,
}

impl RedisCluster {
    /// `masters` masters, each with `replicas` replicas.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        assert!(masters >= 3, "redis-cli --cluster create needs 3 masters");
        let total = masters * (1 + replicas);
        let (nodes, confs): (Vec<RedisServer>, Vec<PathBuf>) =
            (0..total).map(|_| start_node()).unzip();
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for n in &nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port()));
        }
        cmd.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("could not run redis-cli (install Debian's redis-tools): {e}")
        });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster {
            nodes,
            masters,
            confs,
        };
        cluster.wait_ready();
        cluster
    }

    /// Every node answers `cluster_state:ok`, and every replica's master link is up.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for n in self
            .nodes
            .iter()
            .filter(|n| n.answers_ping(Duration::from_millis(200)))
        {
            loop {
                let info = cli(n.port(), &["cluster", "info"]);
                let role = cli(n.port(), &["role"]);
                let replica_waiting = role.starts_with("slave")
                    && !cli(n.port(), &["info", "replication"]).contains("master_link_status:up");
                if info.contains("cluster_state:ok") && !replica_waiting {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} not ready within {READY_TIMEOUT:?}: {info}",
                    n.port()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The nodes (masters first, as created; roles change on failover).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// How many masters it was created with.
    pub fn masters(&self) -> usize {
        self.masters
    }

    /// `redis://127.0.0.1:PORT` of node `i`.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// The seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The seed URLs for a client that should use node `i`: that one first, then the
    /// others.
    pub fn seeds_from(&self, i: usize) -> Vec<String> {
        let mut urls = self.urls();
        urls.rotate_left(i);
        urls
    }

    /// `redis-cli -p <port of node i> <args>`, its output.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        cli(self.nodes[i].port(), args)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.kill();
        }
        for c in &self.confs {
            std::fs::remove_file(c).ok();
        }
    }
}

/// One cluster-enabled node on free ports, and its own config file.
fn start_node() -> (RedisServer, PathBuf) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let used = Mutex::new(PathBuf::new());
    let server = RedisServer::start_with(|| {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let conf = std::env::temp_dir().join(format!(
            "socketioxide-cluster-test-nodes-{}-{n}.conf",
            std::process::id()
        ));
        std::fs::remove_file(&conf).ok();
        *used.lock().unwrap() = conf.clone();
        [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &conf.display().to_string(),
            "--cluster-port",
            &free_port().to_string(),
            "--cluster-node-timeout",
            "2000",
            "--repl-diskless-sync-delay",
            "0",
        ]
        .map(str::to_owned)
        .to_vec()
    });
    (server, used.into_inner().unwrap())
}
