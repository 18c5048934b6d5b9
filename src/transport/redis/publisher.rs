//! The publisher task: the one writer of the command connection. It drains the bounded
//! queue into pipelines of PUBLISH and tells each confirmed caller how its command ended.

use super::{MAX_BATCH, Outgoing, RETRY_DELAY, Shared};
use crate::error::Error;
use crate::stats::Counters;
use redis::aio::ConnectionManager;
use std::sync::Arc;
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
            }
        };
        if n == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        for m in &batch {
            pipe.cmd("PUBLISH")
                .arg(&m.channel)
                .arg(&m.payload[..])
                .ignore();
        }
        let mut result = pipe.query_async::<()>(&mut conn).await;
        // The connection manager reports a dropped connection on the first command after
        // the drop and reconnects in the background: retry the pipeline on the new
        // connection (twice at most) instead of losing it. A pipeline Redis executed just
        // before its connection died may then be delivered twice (rare; see PROTOCOL.md).
        // Not after a response timeout: the connection is still the same, and Redis may
        // yet execute what it was sent.
        for delay in [RETRY_DELAY, RETRY_DELAY * 4] {
            match &result {
                Err(e)
                    if !e.is_timeout()
                        && (e.is_io_error()
                            || e.is_connection_dropped()
                            || e.is_connection_refusal()) =>
                {
                    tokio::time::sleep(delay).await;
                    result = pipe.query_async::<()>(&mut conn).await;
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
        for (i, m) in batch.drain(..).enumerate() {
            if let Some(done) = m.done {
                // The caller may have given up waiting; nothing to tell then.
                let _ = done.send(outcome.of_command(i));
            }
        }
    }
}

/// How one pipeline of PUBLISHes ended.
#[derive(Debug)]
enum Outcome {
    Published,
    /// Redis refused some commands (by index; e.g. an ACL without PUBLISH on a channel):
    /// the others were executed.
    Refused(Vec<(usize, redis::RedisError)>),
    /// The connection failed: none was executed.
    Failed(redis::RedisError),
    /// No answer within the response timeout: each may or may not be executed.
    Unknown(redis::RedisError),
}

impl Outcome {
    fn of(result: redis::RedisResult<()>) -> Outcome {
        match result {
            Ok(()) => Outcome::Published,
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
            Outcome::Published => 0,
            Outcome::Refused(errors) => errors.len().min(n),
            Outcome::Failed(_) | Outcome::Unknown(_) => n,
        }
    }

    /// What the caller of the `i`-th command is told.
    fn of_command(&self, i: usize) -> Result<(), Error> {
        match self {
            Outcome::Published => Ok(()),
            Outcome::Refused(errors) => match errors.iter().find(|(k, _)| *k == i) {
                Some((_, e)) => Err(Error::NotPublished(e.clone())),
                None => Ok(()),
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
        assert_eq!(Outcome::Published.failed(5), 0);
        assert!(Outcome::Published.of_command(4).is_ok());
    }

    #[test]
    fn redis_errors_are_classified() {
        let timeout = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(Outcome::of(Err(timeout)), Outcome::Unknown(_)));
        let dropped = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(matches!(Outcome::of(Err(dropped)), Outcome::Failed(_)));
        assert!(matches!(Outcome::of(Ok(())), Outcome::Published));
    }
}
