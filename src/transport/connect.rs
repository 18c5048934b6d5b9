//! Opening the Redis connections: the client (URL, TLS roots) and the subscriber
//! connection, which is opened here rather than by the redis crate so that its reads go
//! through the read-ahead [`Gate`].

use super::MessageSink;
use super::gate::{Gate, GatedStream};
use super::screen::ScreenedStream;
use crate::error::Error;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;

/// A Redis URL and the TLS material to reach it with.
#[derive(Clone)]
pub(crate) struct RedisEndpoint {
    pub(crate) url: String,
    /// PEM root certificate(s) trusted for `rediss://` instead of the system's.
    pub(crate) tls_root_cert: Option<Arc<[u8]>>,
}

/// The settings of `base` (credentials, TLS) at another node of a Redis Cluster.
pub(super) fn info_at(
    base: &redis::ConnectionInfo,
    host: &str,
    port: u16,
) -> redis::ConnectionInfo {
    let addr = match base.addr().clone() {
        redis::ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => redis::ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure,
            tls_params,
        },
        _ => redis::ConnectionAddr::Tcp(host.to_owned(), port),
    };
    base.clone().set_addr(addr)
}

/// `host:port` of a Redis Cluster seed (a TCP address).
pub(super) fn host_port(addr: &redis::ConnectionAddr) -> Result<(String, u16), Error> {
    match addr {
        redis::ConnectionAddr::Tcp(h, p)
        | redis::ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => Ok((h.clone(), *p)),
        _ => Err(Error::config("a Redis Cluster seed must be a TCP address")),
    }
}

/// The certificates of a `tls_root_cert` PEM: at least one, all valid.
pub(crate) fn root_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    match CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(Error::config(
            "tls_root_cert holds no PEM CERTIFICATE block",
        )),
        Err(e) => Err(Error::config_from("tls_root_cert: invalid PEM", e)),
    }
}

/// Opens the subscriber connection through a [`ScreenedStream`] (unusable messages are
/// dropped as they arrive, asking `screen`) inside a [`GatedStream`] (the driver cannot
/// read without bound ahead of the router): plain TCP, TLS (with `tls`) and Unix sockets
/// alike.
/// Only `rediss://…#insecure` (no certificate check) is left to the redis crate, ungated;
/// it needs redis' `tls-rustls-insecure` feature, which this crate does not enable (without
/// it, `connect` fails with the redis crate's error).
pub(super) async fn open_pubsub(
    client: &redis::Client,
    tls: Option<&TlsConnector>,
    url: &str,
    timeout: Duration,
    screen: Arc<dyn MessageSink>,
) -> Result<(redis::aio::PubSub, Option<Arc<Gate>>), Error> {
    let info = client.get_connection_info();
    let settings = info.redis_settings();
    let gate = Arc::new(Gate::default());
    let open = async {
        let pubsub = match (info.addr(), tls) {
            (redis::ConnectionAddr::Tcp(host, port), _) => {
                let tcp = connect_tcp(host, *port).await?;
                redis::aio::PubSub::new(settings, layers(tcp, &screen, &gate)).await?
            }
            (
                redis::ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: false,
                    ..
                },
                Some(tls),
            ) => {
                let name = ServerName::try_from(host.clone()).map_err(|e| {
                    Error::config_from(format!("invalid TLS server name {host:?}"), e)
                })?;
                let tcp = connect_tcp(host, *port).await?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(redis::RedisError::from)?;
                redis::aio::PubSub::new(settings, layers(stream, &screen, &gate)).await?
            }
            #[cfg(unix)]
            (redis::ConnectionAddr::Unix(path), _) => {
                let unix = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(redis::RedisError::from)?;
                redis::aio::PubSub::new(settings, layers(unix, &screen, &gate)).await?
            }
            _ => return Ok((client.get_async_pubsub().await?, None)),
        };
        Ok::<_, Error>((pubsub, Some(gate.clone())))
    };
    match tokio::time::timeout(timeout, open).await {
        Ok(res) => res,
        Err(_) => Err(Error::ConnectTimeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

/// The subscriber's stream as the redis crate reads it: screened, then gated.
fn layers<S>(
    stream: S,
    screen: &Arc<dyn MessageSink>,
    gate: &Arc<Gate>,
) -> GatedStream<ScreenedStream<S>> {
    GatedStream::new(ScreenedStream::new(stream, screen.clone()), gate.clone())
}

async fn connect_tcp(host: &str, port: u16) -> Result<tokio::net::TcpStream, Error> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(redis::RedisError::from)?;
    tcp.set_nodelay(true).map_err(redis::RedisError::from)?;
    Ok(tcp)
}

/// The TLS client of the subscriber connection: the roots the redis crate would use
/// (the system's, or the endpoint's own CA), no client certificate.
pub(super) fn tls_connector(endpoint: &RedisEndpoint) -> Result<TlsConnector, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match &endpoint.tls_root_cert {
        Some(pem) => {
            for cert in root_certs(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| Error::config_from("tls_root_cert", e))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0
                && let Some(e) = native.errors.into_iter().next()
            {
                return Err(Error::config_from(
                    "no usable system TLS root certificates",
                    e,
                ));
            }
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

pub(super) fn open_client(endpoint: &RedisEndpoint) -> redis::RedisResult<redis::Client> {
    let url = endpoint.url.as_str();
    let client = match &endpoint.tls_root_cert {
        None => redis::Client::open(url)?,
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        )?,
    };
    if let redis::ConnectionAddr::TcpTls { .. } = client.get_connection_info().addr() {
        // What rustls would pick by itself with only the `ring` feature; installed here
        // (before any TLS connection is made, by redis or by us) so that an application
        // that also enables rustls' `aws_lc_rs` does not panic. No-op when the
        // application installed a provider already.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Ok(client)
}
