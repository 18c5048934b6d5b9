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
use crate::wire::redact_url;
use futures_util::StreamExt;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the watcher asks the sentinels which node is the master.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Wait before reconnecting the watcher to a sentinel after losing it.
const WATCHER_RETRY: Duration = Duration::from_millis(200);

/// What `ClusterOptions::sentinel` and its `master_*` options set.
#[derive(Clone)]
pub(crate) struct SentinelSpec {
    /// Sentinel URLs: `redis://[user:password@]host:port` (`rediss://` for TLS); the
    /// credentials are the sentinels' own (`sentinelUsername`/`sentinelPassword`).
    pub(crate) sentinels: Vec<String>,
    /// The master's name in the sentinels' configuration (ioredis: `name`).
    pub(crate) master_name: String,
    /// Credentials of the Redis leg (ioredis: `username`, `password`).
    pub(crate) master_username: Option<String>,
    pub(crate) master_password: Option<String>,
    /// TLS on the Redis leg (ioredis: `tls`).
    pub(crate) master_tls: bool,
    /// PEM root certificate(s) trusted on both legs instead of the system's.
    pub(crate) tls_root_cert: Option<Arc<[u8]>>,
}

impl SentinelSpec {
    /// The sentinel URLs, passwords hidden.
    pub(crate) fn redacted(&self) -> Vec<String> {
        self.sentinels.iter().map(|u| redact_url(u)).collect()
    }

    /// Every check that needs no connection: at least one URL, each a TCP address,
    /// one set of sentinel credentials, a usable root certificate.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        self.builder().map(|_| ())
    }

    fn builder(&self) -> Result<SentinelClientBuilder, Error> {
        if self.sentinels.is_empty() {
            return Err(Error::config("at least one sentinel URL is required"));
        }
        if self.master_name.is_empty() {
            return Err(Error::config("the sentinel master name must not be empty"));
        }
        let mut addrs = Vec::with_capacity(self.sentinels.len());
        let mut credentials = None;
        let mut sentinel_tls = false;
        let mut protocol = redis::ProtocolVersion::RESP2;
        for url in &self.sentinels {
            let info =
                redis::IntoConnectionInfo::into_connection_info(url.as_str()).map_err(|e| {
                    Error::config_from(format!("invalid sentinel URL {}", redact_url(url)), e)
                })?;
            let settings = info.redis_settings();
            let these = (
                settings.username().map(str::to_owned),
                settings.password().map(str::to_owned),
            );
            // One set of credentials for every sentinel, as the redis crate (and ioredis'
            // `sentinelPassword`) has it: a URL that differs would be silently ignored.
            match &credentials {
                None => credentials = Some(these),
                Some(first) if *first != these => {
                    return Err(Error::config(
                        "every sentinel URL must carry the same credentials",
                    ));
                }
                Some(_) => {}
            }
            protocol = settings.protocol();
            match info.addr() {
                redis::ConnectionAddr::Tcp(..) => {}
                redis::ConnectionAddr::TcpTls { .. } => sentinel_tls = true,
                _ => return Err(Error::config("a sentinel URL must be a TCP address")),
            }
            addrs.push(info.addr().clone());
        }
        if self.tls_root_cert.is_some() && !sentinel_tls && !self.master_tls {
            return Err(Error::config(
                "tls_root_cert is set but neither the sentinel URLs (rediss://) nor the master (master_tls) use TLS",
            ));
        }
        let certs = match &self.tls_root_cert {
            Some(pem) => {
                root_certs(pem)?;
                Some(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                })
            }
            None => None,
        };
        let mut b =
            SentinelClientBuilder::new(addrs, &self.master_name, SentinelServerType::Master)
                .map_err(|e| Error::config_from("invalid sentinel options", e))?
                .set_client_to_redis_protocol(protocol);
        if let Some((user, password)) = credentials {
            if let Some(user) = user {
                b = b.set_client_to_sentinel_username(user);
            }
            if let Some(password) = password {
                b = b.set_client_to_sentinel_password(password);
            }
        }
        if let Some(user) = &self.master_username {
            b = b.set_client_to_redis_username(user);
        }
        if let Some(password) = &self.master_password {
            b = b.set_client_to_redis_password(password);
        }
        if self.master_tls {
            b = b.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
        }
        if let Some(certs) = certs {
            if self.master_tls {
                b = b.set_client_to_redis_certificates(certs.clone());
            }
            if sentinel_tls {
                b = b.set_client_to_sentinel_certificates(certs);
            }
        }
        Ok(b)
    }
}

/// Asks the sentinels for the master (one lookup at a time).
pub(crate) struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    name: String,
    timeout: Duration,
}

impl Sentinel {
    pub(crate) fn new(spec: &SentinelSpec, timeout: Duration) -> Result<Self, Error> {
        let client = spec
            .builder()?
            .build()
            .map_err(|e| Error::config_from("invalid sentinel options", e))?;
        if spec.master_tls || spec.sentinels.iter().any(|u| u.starts_with("rediss:")) {
            // As for `rediss://` URLs (see `connect::open_client`).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(Self {
            client: tokio::sync::Mutex::new(client),
            name: spec.master_name.clone(),
            timeout,
        })
    }

    /// The master now: a client for it and its `host:port`. The sentinels name it and
    /// it answered `ROLE` as a master, within the connect timeout.
    pub(crate) async fn master(&self) -> Result<(redis::Client, String), Error> {
        let ask = async {
            let client = self.client.lock().await.async_get_client().await?;
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
