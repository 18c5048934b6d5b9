//! A throw-away Sentinel setup: one master, one replica and three sentinels
//! (`redis-server <conf> --sentinel`, each with its own writable config) on free
//! loopback ports, with a small `down-after-milliseconds` so that a failover takes
//! about a second and a half (measured timings: `../shared/reference/streams-and-sentinel.md`
//! §B.4). Every process is a [`RedisServer`]: killed on drop and with the test binary.

use crate::redis::{RedisServer, cli, cli_as, free_port};
use crate::tls::Certs;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The master name the sentinels monitor.
pub const MASTER_NAME: &str = "mymaster";

/// How long the sentinels may take to know each other and the replica.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A master, its replica and three sentinels.
#[derive(Debug)]
pub struct Sentinels {
    /// Index 0: the first master, 1: its replica (roles change on failover).
    data: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    confs: Vec<PathBuf>,
    auth: Option<Auth>,
    /// With TLS: the TLS ports of the data nodes and of the sentinels (what the
    /// sentinels report and what clients use), and the certificates.
    tls: Option<(Vec<u16>, Vec<u16>, Arc<Certs>)>,
}

/// Passwords of a [`Sentinels::start_with_auth`] setup.
#[derive(Debug, Clone)]
pub struct Auth {
    /// `requirepass` (and `masterauth`) of the master and the replica; the sentinels'
    /// `auth-pass`.
    pub data: String,
    /// `requirepass` of the sentinels (also what they use with each other).
    pub sentinel: String,
}

impl Sentinels {
    /// Starts everything and waits until every sentinel sees the replica and the two
    /// other sentinels. `down_after_ms`: how long a master must be unreachable before
    /// the sentinels call it down.
    pub fn start(down_after_ms: u64) -> Sentinels {
        Self::start_with_auth(down_after_ms, None)
    }

    /// As [`start`](Self::start), every process with a password when `auth` is set.
    pub fn start_with_auth(down_after_ms: u64, auth: Option<Auth>) -> Sentinels {
        Self::start_with(down_after_ms, auth, None)
    }

    /// As [`start`](Self::start), every process with a password when `auth` is set, and
    /// with `tls`, a TLS port on every process (with these certificates) that is the
    /// one used: between the sentinels, to the instances, for replication, and what the
    /// sentinels report. The plain ports stay, for the harness only.
    pub fn start_with(
        down_after_ms: u64,
        auth: Option<Auth>,
        tls: Option<Arc<Certs>>,
    ) -> Sentinels {
        let mut data_args: Vec<String> = vec!["--repl-diskless-sync-delay".into(), "0".into()];
        if let Some(a) = &auth {
            data_args
                .extend(["--requirepass", &a.data, "--masterauth", &a.data].map(str::to_owned));
        }
        // A fresh TLS port per start attempt (another process may take a free port).
        let tls_port = Cell::new(0);
        let with_tls = |args: &[String]| {
            let mut args = args.to_vec();
            if let Some(certs) = &tls {
                tls_port.set(free_port());
                args.extend(certs.redis_args(tls_port.get()));
            }
            args
        };
        let master = RedisServer::start_with(|| with_tls(&data_args));
        let master_tls = tls_port.get();
        // The address everyone uses: the TLS port with TLS.
        let master_addr = if tls.is_some() {
            master_tls
        } else {
            master.port()
        };
        let mut replica_args = data_args.clone();
        replica_args.extend(["--replicaof".into(), format!("127.0.0.1 {master_addr}")]);
        let replica = RedisServer::start_with(|| with_tls(&replica_args));
        let replica_tls = tls_port.get();
        let mut contents = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {master_addr} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n\
             sentinel failover-timeout {MASTER_NAME} 10000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n"
        );
        if let Some(a) = &auth {
            contents.push_str(&format!(
                "sentinel auth-pass {MASTER_NAME} {}\nrequirepass {}\n",
                a.data, a.sentinel
            ));
        }
        static N: AtomicUsize = AtomicUsize::new(0);
        let mut confs = Vec::new();
        let mut sentinels = Vec::new();
        let mut sentinel_tls = Vec::new();
        for _ in 0..3 {
            let conf = std::env::temp_dir().join(format!(
                "socketioxide-cluster-test-sentinel-{}-{}.conf",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            sentinels.push(RedisServer::start_sentinel_with(&conf, &contents, || {
                with_tls(&[])
            }));
            sentinel_tls.push(tls_port.get());
            confs.push(conf);
        }
        let s = Sentinels {
            data: vec![master, replica],
            sentinels,
            confs,
            auth,
            tls: tls.map(|certs| (vec![master_tls, replica_tls], sentinel_tls, certs)),
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for s in &self.sentinels {
            loop {
                let info = self.sentinel_cli(s.port(), &["sentinel", "master", MASTER_NAME]);
                let num = |field: &str| {
                    let lines: Vec<&str> = info.lines().collect();
                    lines
                        .iter()
                        .position(|l| *l == field)
                        .and_then(|i| lines.get(i + 1))
                        .and_then(|v| v.parse::<u32>().ok())
                        .unwrap_or(0)
                };
                if num("num-slaves") >= 1 && num("num-other-sentinels") >= 2 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "sentinel {} not ready within {READY_TIMEOUT:?}:\n{info}",
                    s.port()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `redis-cli` on sentinel `port`, with the sentinels' password if any.
    fn sentinel_cli(&self, port: u16, args: &[&str]) -> String {
        cli_as(port, self.auth.as_ref().map(|a| a.sentinel.as_str()), args)
    }

    /// `redis-cli` on data node `port`, with its password if any.
    pub fn data_cli(&self, port: u16, args: &[&str]) -> String {
        cli_as(port, self.auth.as_ref().map(|a| a.data.as_str()), args)
    }

    /// `redis://127.0.0.1:PORT` of every sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The master and the replica (as started: index 0 was the master).
    pub fn data_nodes(&self) -> &[RedisServer] {
        &self.data
    }

    /// The port the sentinels currently report for the master.
    pub fn master_port(&self) -> u16 {
        let out = self.sentinel_cli(
            self.sentinels[0].port(),
            &["sentinel", "get-master-addr-by-name", MASTER_NAME],
        );
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no master address from the sentinels: {out:?}"))
    }

    /// The data node the sentinels currently report as master.
    pub fn master(&self) -> &RedisServer {
        let port = self.master_port();
        let i = match &self.tls {
            Some((data_tls, _, _)) => data_tls.iter().position(|p| *p == port),
            None => self.data.iter().position(|n| n.port() == port),
        };
        &self.data[i.expect("the reported master is one of ours")]
    }

    /// With TLS: `rediss://127.0.0.1:TLS_PORT` of every sentinel, and the CA (PEM).
    pub fn sentinel_tls_urls(&self) -> Option<(Vec<String>, String)> {
        let (_, sentinel_tls, certs) = self.tls.as_ref()?;
        let urls = sentinel_tls
            .iter()
            .map(|p| format!("rediss://127.0.0.1:{p}"))
            .collect();
        Some((urls, certs.ca_pem.clone()))
    }

    /// Waits (bounded by `timeout`) until the sentinels report a master other than
    /// `old_port`; returns the new port and how long it took.
    pub fn wait_switch(&self, old_port: u16, timeout: Duration) -> (u16, Duration) {
        let started = Instant::now();
        loop {
            let port = self.master_port();
            if port != old_port {
                return (port, started.elapsed());
            }
            assert!(
                started.elapsed() < timeout,
                "no failover from port {old_port} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Subscribes to `+switch-master` on the first sentinel; the receiver gets the
    /// instant the announcement arrived and its text (`<name> <old-ip> <old-port>
    /// <new-ip> <new-port>`). Subscribed when this returns.
    pub async fn on_switch(&self) -> tokio::sync::oneshot::Receiver<(Instant, String)> {
        use futures_util::StreamExt;
        let client = redis::Client::open(self.sentinels[0].url()).expect("sentinel URL");
        let mut pubsub = client.get_async_pubsub().await.expect("sentinel pubsub");
        pubsub
            .subscribe("+switch-master")
            .await
            .expect("subscribe +switch-master");
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            if let Some(msg) = messages.next().await {
                let at = Instant::now();
                let _ = tx.send((at, msg.get_payload::<String>().unwrap_or_default()));
            }
        });
        rx
    }

    /// `SENTINEL FAILOVER <master>` on the first sentinel.
    pub fn failover(&self) -> String {
        self.sentinel_cli(
            self.sentinels[0].port(),
            &["sentinel", "failover", MASTER_NAME],
        )
    }
}

/// The client connections of `port` (`CLIENT LIST`, one line each) that this process
/// opened: the adapter's and the emitter's (a sentinel's connection is not counted even
/// in the instant before it names itself).
pub fn application_clients(port: u16) -> Vec<String> {
    let ours = own_tcp_connections();
    cli(port, &["client", "list"])
        .lines()
        .filter(|l| {
            // A client is ours when this process holds a socket from its port to this
            // server's port: the local port alone is not enough (Linux reuses an
            // ephemeral port for connections to different destinations, so a
            // sentinel's connection can share one with ours).
            let peer = l
                .split(' ')
                .find_map(|f| f.strip_prefix("addr="))
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok());
            peer.is_some_and(|p| ours.contains(&(p, port)))
        })
        .map(str::to_owned)
        .collect()
}

/// `(local port, remote port)` of this process's TCP sockets (`/proc/self/fd` and
/// `/proc/self/net/tcp`).
fn own_tcp_connections() -> std::collections::HashSet<(u16, u16)> {
    let inodes: std::collections::HashSet<u64> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    l.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    let tcp = std::fs::read_to_string("/proc/self/net/tcp").unwrap_or_default();
    let port = |col: &str| u16::from_str_radix(col.split(':').nth(1)?, 16).ok();
    tcp.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = cols.get(9)?.parse().ok()?;
            if !inodes.contains(&inode) {
                return None;
            }
            Some((port(cols.get(1)?)?, port(cols.get(2)?)?))
        })
        .collect()
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for n in self.sentinels.iter().chain(&self.data) {
            n.kill();
        }
        for c in &self.confs {
            std::fs::remove_file(c).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_master_is_replaced_by_its_replica() {
        let s = Sentinels::start(500);
        let old = s.master_port();
        assert_eq!(old, s.data_nodes()[0].port());
        s.master().kill();
        let (new, took) = s.wait_switch(old, Duration::from_secs(20));
        assert_eq!(new, s.data_nodes()[1].port());
        eprintln!("kill -9 of the master: new master reported after {took:?}");
        assert!(cli(new, &["role"]).starts_with("master"));
    }
}
