//! Publishing to the master of a Redis Sentinel setup ([`EmitterOptions::sentinel`]).
//!
//! The redis crate resolves a master only when asked (redis-rs #1438), and a connection
//! that reconnects by itself goes back to the same address — after a failover, a
//! replica that accepts `PUBLISH` and delivers it to nobody of the master's. So this
//! publisher holds a plain connection to the master the sentinels name (checked with
//! `ROLE`), drops it when a `PUBLISH` fails on the connection or when the sentinels
//! announce another master, and asks them again for the next operation:
//! * a failed `PUBLISH` is retried once, at once, on the master asked anew (a master
//!   that died is noticed on the first message after);
//! * a watcher task subscribed to `+switch-master` on one sentinel drops the connection
//!   on the announcement (a master demoted on purpose keeps accepting `PUBLISH` for
//!   about ten seconds: without the watcher those messages would reach no server that
//!   followed the switch). Whenever the watcher has to reconnect to a sentinel, it drops
//!   the connection as well: an announcement may have been missed meanwhile.
//!
//! With [`EmitterOptions::streams`] the same connection writes the stream entries (see
//! `streams.rs`).
//!
//! [`EmitterOptions::sentinel`]: crate::EmitterOptions::sentinel
//! [`EmitterOptions::streams`]: crate::EmitterOptions::streams

use crate::publish::{BoxFuture, Publish, count_of, is_connection_error, pipelined};
use crate::streams::StreamTarget;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::sentinel::SentinelClient;
use socketioxide_cluster_wire::sentinel::SentinelSpec;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Wait before the watcher tries a sentinel again after losing one.
const WATCH_RETRY: Duration = Duration::from_millis(200);

struct Inner {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    name: String,
    /// The connection to the master in use; `None`: ask the sentinels first.
    master: Mutex<Option<MultiplexedConnection>>,
    connect_timeout: Duration,
    publish_timeout: Duration,
    /// The Streams protocol: the namespace key and the streams (see `streams.rs`).
    streams: Option<(String, StreamTarget)>,
}

/// [`Publish`] through the master the sentinels name (see the module docs).
pub(crate) struct SentinelPublisher {
    inner: Arc<Inner>,
    watcher: JoinHandle<()>,
}

impl Drop for SentinelPublisher {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

impl SentinelPublisher {
    /// Connects to the master now (so that a wrong name or unreachable sentinels fail
    /// `Emitter::connect`), and starts the watcher.
    pub(crate) async fn connect(
        spec: &SentinelSpec,
        connect_timeout: Duration,
        publish_timeout: Duration,
        streams: Option<(String, StreamTarget)>,
    ) -> Result<Self, crate::Error> {
        let sentinels = spec
            .builder()
            .and_then(|b| b.build().map_err(|e| e.to_string()))
            .map_err(crate::Error::Config)?;
        let inner = Arc::new(Inner {
            sentinels: tokio::sync::Mutex::new(sentinels),
            name: spec.master_name.clone(),
            master: Mutex::new(None),
            connect_timeout,
            publish_timeout,
            streams,
        });
        inner
            .connection()
            .await
            .map_err(|source| crate::Error::Connect {
                url: format!(
                    "the master {:?} of sentinels {:?}",
                    spec.master_name,
                    spec.redacted()
                ),
                source,
            })?;
        let watcher = tokio::spawn(watch(Arc::downgrade(&inner)));
        Ok(Self { inner, watcher })
    }
}

impl SentinelPublisher {
    /// The master as the emitter's requests find it (asked of the sentinels each time).
    pub(crate) fn master(&self) -> Arc<dyn crate::requests::Master> {
        self.inner.clone()
    }
}

impl crate::requests::Master for Inner {
    fn client(&self) -> BoxFuture<'_, redis::RedisResult<redis::Client>> {
        Box::pin(async move { self.sentinels.lock().await.async_get_client().await })
    }
}

impl Inner {
    /// The connection to the master, asking the sentinels for it when there is none.
    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(c) = lock(&self.master).clone() {
            return Ok(c);
        }
        let open = async {
            let client = self.sentinels.lock().await.async_get_client().await?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.publish_timeout));
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
        };
        let conn = tokio::time::timeout(self.connect_timeout, open)
            .await
            .map_err(|_| timed_out())??;
        *lock(&self.master) = Some(conn.clone());
        Ok(conn)
    }

    async fn publish_once(&self, channel: &str, payload: &[u8]) -> redis::RedisResult<usize> {
        let mut conn = self.connection().await?;
        let res = match &self.streams {
            Some((key, target)) => {
                target
                    .write(key, channel, payload.to_vec())
                    .run(&mut conn, false)
                    .await
            }
            None => {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<usize>(&mut conn)
                    .await
            }
        };
        if let Err(e) = &res
            && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal())
        {
            // Not after a timeout: the master may yet execute it.
            lock(&self.master).take();
        }
        res
    }
}

impl Publish for SentinelPublisher {
    fn publish_batch(
        &self,
        batch: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'static, Vec<Result<usize, redis::RedisError>>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let out = inner.publish_batch_once(&batch).await;
            // The whole pipeline failed on the connection (a master that died is noticed
            // by the first batch after): once more, on the master the sentinels name now.
            if !out.is_empty()
                && out
                    .iter()
                    .all(|r| matches!(r, Err(e) if is_connection_error(e)))
            {
                return inner.publish_batch_once(&batch).await;
            }
            out
        })
    }

    fn publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<usize, redis::RedisError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            match inner.publish_once(&channel, &payload).await {
                Err(e) if !e.is_timeout() && lock(&inner.master).is_none() => {
                    // The connection failed before Redis executed the PUBLISH: once more,
                    // on the master the sentinels name now (this error is replaced by the
                    // retry's outcome).
                    drop(e);
                    inner.publish_once(&channel, &payload).await
                }
                res => res,
            }
        })
    }
}

impl Inner {
    /// One pipeline of `batch` on the master connection (asked of the sentinels when
    /// there is none); the connection is dropped when it failed.
    async fn publish_batch_once(
        &self,
        batch: &[(String, Vec<u8>)],
    ) -> Vec<Result<usize, redis::RedisError>> {
        let mut conn = match self.connection().await {
            Ok(c) => c,
            Err(e) => return batch.iter().map(|_| Err(e.clone())).collect(),
        };
        let groups: Vec<Vec<redis::Cmd>> = batch
            .iter()
            .map(|(channel, payload)| match &self.streams {
                Some((key, target)) => target.write(key, channel, payload.clone()).commands(),
                None => {
                    let mut cmd = redis::cmd("PUBLISH");
                    cmd.arg(channel).arg(&payload[..]);
                    vec![cmd]
                }
            })
            .collect();
        let out = pipelined(&mut conn, groups, &[], count_of).await;
        if out
            .iter()
            .any(|r| matches!(r, Err(e) if is_connection_error(e)))
        {
            lock(&self.master).take();
        }
        out
    }
}

/// Drops the master connection whenever the sentinels announce a new master for our
/// name, or the watcher had to (re)connect to a sentinel. Ends with the publisher.
async fn watch(inner: std::sync::Weak<Inner>) {
    let mut first = true;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let subscribed = async {
            let client = strong
                .sentinels
                .lock()
                .await
                .async_get_sentinel_client()
                .await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(strong.connect_timeout, subscribed).await;
        let name = strong.name.clone();
        drop(strong);
        if let Ok(Ok(pubsub)) = pubsub {
            if !first && let Some(i) = inner.upgrade() {
                // Subscribed again: a switch may have happened while we were not.
                lock(&i.master).take();
            }
            first = false;
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                // "<name> <old-ip> <old-port> <new-ip> <new-port>"
                let text: String = msg.get_payload().unwrap_or_default();
                if text.split(' ').next() == Some(name.as_str()) {
                    let Some(i) = inner.upgrade() else { return };
                    lock(&i.master).take();
                }
            }
        }
        tokio::time::sleep(WATCH_RETRY).await;
    }
}
