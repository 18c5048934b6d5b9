//! The publisher task: the one writer of the command connection. It drains the bounded
//! queue into pipelines of PUBLISH, tells each confirmed caller how its command ended
//! and how many subscribers it reached, and counts messages that reached fewer than
//! expected. When the connection fails it marks publishing down (new messages are
//! refused at once) and probes with PING until Redis answers again.

use super::{BACKOFF_MAX, BACKOFF_MIN, MAX_BATCH, Outgoing, RETRY_DELAY, Shared};
use crate::error::Error;
use crate::stats::Counters;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The one task that writes to Redis: drains the queue into pipelines.
pub(super) async fn run_publisher(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Outgoing>,
    mut conn: ConnectionManager,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closing = false;
    loop {
        let n = if closing {
            rx.recv_many(&mut batch, MAX_BATCH).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                _ = shutdown.changed() => {
                    // Flush what was accepted before the close, then stop.
                    closing = true;
                    rx.close();
                    continue;
                }
                _ = shared.probe.notified() => {
                    // The subscriber lost its connection: is Redis gone, or only it?
                    let alive = redis::cmd("PING").query_async::<()>(&mut conn).await.is_ok();
                    if !alive && wait_until_back(&shared, &mut conn, &mut rx, &mut shutdown).await {
                        closing = true;
                        rx.close();
                    }
                    continue;
                }
            }
        };
        if n == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        for m in &batch {
            pipe.cmd("PUBLISH").arg(&m.channel).arg(&m.payload[..]);
        }
        let mut result = pipe.query_async::<Vec<usize>>(&mut conn).await;
        // The connection manager reports a dropped connection on the first command after
        // the drop and reconnects in the background: retry the pipeline on the new
        // connection (twice at most) instead of losing it. A pipeline Redis executed just
        // before its connection died may then be delivered twice (rare; see PROTOCOL.md).
        // Not after a response timeout: the connection is still the same, and Redis may
        // yet execute what it was sent.
        for delay in [RETRY_DELAY, RETRY_DELAY * 4] {
            match &result {
                // With the subscriber down as well, Redis itself is gone: failing now
                // (counted) beats accepting more messages while the retries wait.
                Err(e)
                    if !e.is_timeout()
                        && shared.subscribed.load(Ordering::Acquire)
                        && (e.is_io_error()
                            || e.is_connection_dropped()
                            || e.is_connection_refusal()) =>
                {
                    tokio::time::sleep(delay).await;
                    result = pipe.query_async::<Vec<usize>>(&mut conn).await;
                }
                _ => break,
            }
        }
        let outcome = Outcome::of(result);
        let failed = outcome.failed(n);
        Counters::add(&shared.counters.published, (n - failed) as u64);
        if failed > 0 {
            Counters::add(&shared.counters.publish_failed, failed as u64);
            tracing::warn!(url = %shared.url, outcome = ?outcome, failed, "PUBLISH failed");
        }
        if let Outcome::Published(reached) = &outcome {
            for (m, &n) in batch.iter().zip(reached) {
                if n < m.expect {
                    shared.counters.under_delivered(&m.channel, m.expect, n);
                }
            }
        }
        for (i, m) in batch.drain(..).enumerate() {
            if let Some(done) = m.done {
                // The caller may have given up waiting; nothing to tell then.
                let _ = done.send(outcome.of_command(i));
            }
        }
        if matches!(outcome, Outcome::Failed(_))
            && !closing
            && wait_until_back(&shared, &mut conn, &mut rx, &mut shutdown).await
        {
            closing = true;
            rx.close();
        }
    }
}

/// After a failed connection: refuses new messages (publishing down), fails those
/// already queued (counted: they would reach nobody, or arrive late), and probes with
/// PING, at once then every 5 to 25 ms, until Redis answers. Returns `true` when a
/// shutdown was asked meanwhile.
async fn wait_until_back(
    shared: &Shared,
    conn: &mut ConnectionManager,
    rx: &mut mpsc::Receiver<Outgoing>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    shared.publishing.store(false, Ordering::Release);
    tracing::warn!(url = %shared.url, "redis publishing connection lost; probing");
    let mut delay = Duration::ZERO;
    loop {
        // Also what slipped in before publishing was marked down.
        fail_queued(shared, rx);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return true,
        }
        if redis::cmd("PING").query_async::<()>(conn).await.is_ok() {
            break;
        }
        delay = (delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
    }
    shared.publishing.store(true, Ordering::Release);
    tracing::info!(url = %shared.url, "redis publishing connection restored");
    false
}

/// Fails every message waiting in the queue (counted in `publish_failed`).
fn fail_queued(shared: &Shared, rx: &mut mpsc::Receiver<Outgoing>) {
    let mut failed = 0;
    while let Ok(m) = rx.try_recv() {
        failed += 1;
        if let Some(done) = m.done {
            let _ = done.send(Err(Error::Disconnected));
        }
    }
    Counters::add(&shared.counters.publish_failed, failed);
}

/// How one pipeline of PUBLISHes ended.
#[derive(Debug)]
enum Outcome {
    /// Every command executed; how many subscribers each reached.
    Published(Vec<usize>),
    /// Redis refused some commands (by index; e.g. an ACL without PUBLISH on a channel):
    /// the others were executed.
    Refused(Vec<(usize, redis::RedisError)>),
    /// The connection failed: none was executed.
    Failed(redis::RedisError),
    /// No answer within the response timeout: each may or may not be executed.
    Unknown(redis::RedisError),
}

impl Outcome {
    fn of(result: redis::RedisResult<Vec<usize>>) -> Outcome {
        match result {
            Ok(reached) => Outcome::Published(reached),
            Err(e) if e.is_timeout() => Outcome::Unknown(e),
            // Cloned: `into_server_errors` consumes the error even when it holds none.
            Err(e) => match e.clone().into_server_errors() {
                Some(errors) => Outcome::Refused(
                    errors
                        .iter()
                        .map(|(i, e)| (*i, redis::RedisError::from(e.clone())))
                        .collect(),
                ),
                None => Outcome::Failed(e),
            },
        }
    }

    /// Messages of a pipeline of `n` not known to be published.
    fn failed(&self, n: usize) -> usize {
        match self {
            Outcome::Published(_) => 0,
            Outcome::Refused(errors) => errors.len().min(n),
            Outcome::Failed(_) | Outcome::Unknown(_) => n,
        }
    }

    /// What the caller of the `i`-th command is told: how many subscribers it reached
    /// when known.
    fn of_command(&self, i: usize) -> Result<Option<usize>, Error> {
        match self {
            Outcome::Published(reached) => Ok(reached.get(i).copied()),
            Outcome::Refused(errors) => match errors.iter().find(|(k, _)| *k == i) {
                Some((_, e)) => Err(Error::NotPublished(e.clone())),
                None => Ok(None),
            },
            Outcome::Failed(e) => Err(Error::NotPublished(e.clone())),
            Outcome::Unknown(e) => Err(Error::Unconfirmed(e.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> redis::RedisError {
        redis::RedisError::from(std::io::Error::from(kind))
    }

    #[test]
    fn a_refused_command_fails_only_its_caller() {
        let refused = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm),
            "NOPERM",
        ));
        let o = Outcome::Refused(vec![(1, refused)]);
        assert_eq!(o.failed(3), 1);
        assert!(o.of_command(0).is_ok());
        let err = o.of_command(1).unwrap_err();
        assert!(matches!(&err, Error::NotPublished(_)), "{err}");
        // The Redis error is the source, not only text.
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.to_string().contains("NOPERM"), "{source}");
        assert!(o.of_command(2).is_ok());
    }

    #[test]
    fn a_failed_pipeline_fails_everyone_and_a_timeout_is_unconfirmed() {
        let o = Outcome::Failed(io(std::io::ErrorKind::BrokenPipe));
        assert_eq!(o.failed(4), 4);
        assert!(matches!(o.of_command(3), Err(Error::NotPublished(_))));
        let o = Outcome::Unknown(io(std::io::ErrorKind::TimedOut));
        assert_eq!(o.failed(2), 2);
        assert!(matches!(o.of_command(0), Err(Error::Unconfirmed(_))));
        let published = Outcome::Published(vec![1, 2, 0, 3, 1]);
        assert_eq!(published.failed(5), 0);
        assert_eq!(published.of_command(3).unwrap(), Some(3));
    }

    #[test]
    fn redis_errors_are_classified() {
        let timeout = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(Outcome::of(Err(timeout)), Outcome::Unknown(_)));
        let dropped = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(matches!(Outcome::of(Err(dropped)), Outcome::Failed(_)));
        assert!(matches!(Outcome::of(Ok(vec![2])), Outcome::Published(_)));
    }
}
