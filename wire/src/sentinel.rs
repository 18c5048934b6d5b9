//! Redis Sentinel settings (feature `sentinel`), shared by the adapter and the emitter:
//! the sentinels' URLs and credentials (the sentinel leg), the master's name,
//! credentials and TLS (the Redis leg), turned into the redis crate's
//! `SentinelClientBuilder`.

use crate::redact_url;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use std::sync::Arc;

/// Where the sentinels are and how to reach them and the master: what the adapter's
/// `ClusterOptions::sentinel` and the emitter's `EmitterOptions::sentinel` (with their
/// `master_*` options) set.
#[derive(Clone)]
pub struct SentinelSpec {
    /// Sentinel URLs: `redis://[user:password@]host:port` (`rediss://` for TLS); the
    /// credentials are the sentinels' own (`sentinelUsername`/`sentinelPassword`).
    pub sentinels: Vec<String>,
    /// The master's name in the sentinels' configuration (ioredis: `name`).
    pub master_name: String,
    /// ACL user of the Redis leg (ioredis: `username`).
    pub master_username: Option<String>,
    /// Password of the Redis leg (ioredis: `password`).
    pub master_password: Option<String>,
    /// TLS on the Redis leg (ioredis: `tls`).
    pub master_tls: bool,
    /// PEM root certificate(s) trusted on both legs instead of the system's.
    pub tls_root_cert: Option<Arc<[u8]>>,
}

/// Never shows a password (the sentinel URLs' nor the master's).
impl std::fmt::Debug for SentinelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelSpec")
            .field("sentinels", &self.redacted())
            .field("master_name", &self.master_name)
            .field("master_username", &self.master_username)
            .field(
                "master_password",
                &self.master_password.as_ref().map(|_| "***"),
            )
            .field("master_tls", &self.master_tls)
            .field("custom_tls_root_cert", &self.tls_root_cert.is_some())
            .finish()
    }
}

impl SentinelSpec {
    /// The sentinel URLs, passwords hidden.
    pub fn redacted(&self) -> Vec<String> {
        self.sentinels.iter().map(|u| redact_url(u)).collect()
    }

    /// The redis crate's builder for these settings. Fails (with what is wrong) without
    /// a URL or a name, for a URL that is not a TCP address, for URLs with different
    /// credentials, and for a root certificate that no leg uses. The certificate itself
    /// is checked by the caller.
    pub fn builder(&self) -> Result<SentinelClientBuilder, String> {
        if self.sentinels.is_empty() {
            return Err("at least one sentinel URL is required".into());
        }
        if self.master_name.is_empty() {
            return Err("the sentinel master name must not be empty".into());
        }
        let mut addrs = Vec::with_capacity(self.sentinels.len());
        let mut credentials = None;
        let mut sentinel_tls = false;
        let mut protocol = redis::ProtocolVersion::RESP2;
        for url in &self.sentinels {
            let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
                .map_err(|e| format!("invalid sentinel URL {}: {e}", redact_url(url)))?;
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
                    return Err("every sentinel URL must carry the same credentials".into());
                }
                Some(_) => {}
            }
            protocol = settings.protocol();
            match info.addr() {
                redis::ConnectionAddr::Tcp(..) => {}
                redis::ConnectionAddr::TcpTls { .. } => sentinel_tls = true,
                _ => return Err("a sentinel URL must be a TCP address".into()),
            }
            addrs.push(info.addr().clone());
        }
        if self.tls_root_cert.is_some() && !sentinel_tls && !self.master_tls {
            return Err("tls_root_cert is set but neither the sentinel URLs (rediss://) nor the master (master_tls) use TLS".into());
        }
        let certs = self
            .tls_root_cert
            .as_ref()
            .map(|pem| redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            });
        let mut b =
            SentinelClientBuilder::new(addrs, &self.master_name, SentinelServerType::Master)
                .map_err(|e| format!("invalid sentinel options: {e}"))?
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
