//! Redis Sentinel: which node is the master now (`ClusterOptions::sentinel`).
//!
//! The redis crate resolves a master only when asked (redis-rs #1438): a connection
//! built from the client it returns reconnects to the same address, which after a
//! failover is a replica that still accepts `SUBSCRIBE` and `PUBLISH` — a server stuck
//! there half-works silently. So the standalone transport asks [`Sentinel::master`] on
//! every reconnect of each of its connections (`SENTINEL MASTERS` on the sentinels,
//! then `ROLE` on the address found, through the redis crate's `SentinelClient`), and a
//! watcher task ([`run_watcher`]) moves both connections as soon as the sentinels
//! announce another master:
//! * it subscribes to `+switch-master` on one sentinel (Node compat: ioredis'
//!   `failoverDetector`), and
//! * every [`CHECK_EVERY`] it asks that sentinel `SENTINEL get-master-addr-by-name`, in
//!   case an announcement was missed (its connection dropped, or a sentinel restarted).

use super::connect::root_certs;
use crate::error::Error;
pub(crate) use crate::wire::sentinel::SentinelSpec;
use futures_util::StreamExt;
use redis::sentinel::SentinelClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the watcher asks the sentinels which node is the master.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Wait before reconnecting the watcher to a sentinel after losing it.
const WATCHER_RETRY: Duration = Duration::from_millis(200);

/// Asks the sentinels for the master (one lookup at a time).
pub(crate) struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    name: String,
    /// The sentinel URLs without credentials, for errors.
    urls: Vec<String>,
    timeout: Duration,
}

/// Every check of `spec` that needs no connection (see [`SentinelSpec::builder`]), and
/// its root certificate.
pub(crate) fn validate(spec: &SentinelSpec) -> Result<(), Error> {
    spec.builder().map_err(Error::config)?;
    if let Some(pem) = &spec.tls_root_cert {
        root_certs(pem)?;
    }
    Ok(())
}

impl Sentinel {
    pub(crate) fn new(spec: &SentinelSpec, timeout: Duration) -> Result<Self, Error> {
        validate(spec)?;
        let client = spec
            .builder()
            .map_err(Error::config)?
            .build()
            .map_err(|e| Error::config_from("invalid sentinel options", e))?;
        if spec.master_tls || spec.sentinels.iter().any(|u| u.starts_with("rediss:")) {
            // As for `rediss://` URLs (see `connect::open_client`).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(Self {
            client: tokio::sync::Mutex::new(client),
            name: spec.master_name.clone(),
            urls: spec.redacted(),
            timeout,
        })
    }

    /// The master now: a client for it and its `host:port`. The sentinels name it and
    /// it answered `ROLE` as a master, within the connect timeout.
    pub(crate) async fn master(&self) -> Result<(redis::Client, String), Error> {
        let ask = async {
            let client = self
                .client
                .lock()
                .await
                .async_get_client()
                .await
                .map_err(|source| Error::NoMaster {
                    master: self.name.clone(),
                    sentinels: self.urls.clone(),
                    source,
                })?;
            let url = host_port(client.get_connection_info().addr());
            Ok::<_, Error>((client, url))
        };
        match tokio::time::timeout(self.timeout, ask).await {
            Ok(res) => res,
            Err(_) => Err(Error::ConnectTimeout {
                url: format!("sentinels of {}", self.name),
                timeout: self.timeout,
            }),
        }
    }

    /// A client for one sentinel that answers (`ROLE` is `sentinel`).
    async fn sentinel(&self) -> Result<redis::Client, Error> {
        let ask = async { Ok(self.client.lock().await.async_get_sentinel_client().await?) };
        tokio::time::timeout(self.timeout, ask)
            .await
            .unwrap_or(Err(Error::Disconnected))
    }
}

/// `host:port` of a node, for logs and comparisons.
pub(crate) fn host_port(addr: &redis::ConnectionAddr) -> String {
    match addr {
        redis::ConnectionAddr::Tcp(h, p)
        | redis::ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            format!("{h}:{p}")
        }
        other => other.to_string(),
    }
}

/// What the watcher needs from the transport.
pub(crate) trait Follow: Send + Sync + 'static {
    /// The sentinels may name another master than `current`: asks them again (with the
    /// `ROLE` check) and moves the connections when they do.
    fn follow(&self) -> super::BoxFuture<'_, ()>;
    /// `host:port` of the node the connections use now.
    fn current(&self) -> String;
}

/// Watches one sentinel at a time for another master (see the module docs) and calls
/// `follow` when one is announced or found; returns on shutdown.
pub(crate) async fn run_watcher(
    sentinel: Arc<Sentinel>,
    follow: Arc<dyn Follow>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = watch_one(&sentinel, &*follow, &mut shutdown).await {
            tracing::debug!(error = %e, "sentinel watcher lost its sentinel; trying another");
        }
        tokio::select! {
            _ = tokio::time::sleep(WATCHER_RETRY) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

async fn watch_one(
    sentinel: &Sentinel,
    follow: &dyn Follow,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Error> {
    let client = sentinel.sentinel().await?;
    let open = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe("+switch-master").await?;
        let cmd = client.get_multiplexed_async_connection().await?;
        Ok::<_, Error>((pubsub, cmd))
    };
    let (pubsub, mut cmd) = tokio::time::timeout(sentinel.timeout, open)
        .await
        .unwrap_or(Err(Error::Disconnected))?;
    let mut messages = pubsub.into_on_message();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { return Err(Error::Disconnected) };
                // "<name> <old-ip> <old-port> <new-ip> <new-port>"
                let text: String = msg.get_payload().unwrap_or_default();
                if text.split(' ').next() == Some(sentinel.name.as_str()) {
                    tracing::info!(switch = %text, "sentinel announced a new master");
                    follow.follow().await;
                }
            }
            _ = tick.tick() => {
                let mut ask = redis::cmd("SENTINEL");
                ask.arg("get-master-addr-by-name").arg(&sentinel.name);
                let named = tokio::time::timeout(sentinel.timeout, ask.query_async::<Option<(String, u16)>>(&mut cmd))
                    .await
                    .map_err(|_| Error::Disconnected)??;
                if let Some((host, port)) = named
                    && format!("{host}:{port}") != follow.current()
                {
                    follow.follow().await;
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}
