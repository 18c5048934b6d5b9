//! The publisher task: the one writer of the command connection. It drains the bounded
//! queue into pipelines of PUBLISH, tells each confirmed caller how its command ended
//! and how many subscribers it reached, and counts messages that reached fewer than
//! expected. When the connection fails it marks publishing down (new messages are
//! refused at once) and probes with PING until Redis answers again.

use super::node::{ATTEMPTS_PER_NODE, command_connection};
use super::queue::Outgoing;
use super::{BACKOFF_MAX, BACKOFF_MIN, MAX_BATCH, RETRY_DELAY, Shared};
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
    // As in the subscriber: the node generation `conn` is on.
    let mut moved = shared.moved.subscribe();
    let mut on = *moved.borrow_and_update();
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
                    if !alive && wait_until_back(&shared, &mut conn, &mut on, &mut rx, &mut shutdown).await {
                        closing = true;
                        rx.close();
                    }
                    continue;
                }
                _ = moved.changed() => {
                    // Another master: move now. Messages queued meanwhile wait (bounded
                    // by the queue) and go to the new one.
                    let (client, url, now) = shared.node();
                    if now != on {
                        match command_connection(&client, &url, shared.connect_timeout).await {
                            Ok(c) => {
                                shared.set_command_connection(&c);
                                conn = c;
                                on = now;
                                tracing::info!(url = %url, "publishing connection moved");
                            }
                            Err(_) if wait_until_back(&shared, &mut conn, &mut on, &mut rx, &mut shutdown).await => {
                                closing = true;
                                rx.close();
                            }
                            Err(_) => {}
                        }
                    }
                    continue;
                }
            }
        };
        if n == 0 {
            return;
        }
        let (pipe, plan) = Plan::of(&batch);
        let mut result = pipe.query_async::<Vec<redis::Value>>(&mut conn).await;
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
                    result = pipe.query_async::<Vec<redis::Value>>(&mut conn).await;
                }
                _ => break,
            }
        }
        let outcome = Outcome::of(result);
        let failed = outcome.failed(&plan);
        Counters::add(&shared.counters.published, (n - failed) as u64);
        if failed > 0 {
            Counters::add(&shared.counters.publish_failed, failed as u64);
            tracing::warn!(url = %shared.url(), outcome = ?outcome, failed, "PUBLISH failed");
        }
        for (i, m) in batch.iter().enumerate() {
            if let Some(n) = outcome.reached(&plan, i)
                && n < m.expect
            {
                shared.counters.under_delivered(&m.channel, m.expect, n);
            }
        }
        for (i, m) in batch.drain(..).enumerate() {
            if let Some(done) = m.done {
                // The caller may have given up waiting; nothing to tell then.
                let _ = done.send(outcome.of_message(&plan, i, m.count_subscribers));
            }
        }
        if matches!(outcome, Outcome::Failed(_))
            && !closing
            && wait_until_back(&shared, &mut conn, &mut on, &mut rx, &mut shutdown).await
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
    generation: &mut u64,
    rx: &mut mpsc::Receiver<Outgoing>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    shared.publishing.store(false, Ordering::Release);
    tracing::warn!(url = %shared.url(), "redis publishing connection lost; probing");
    let mut delay = Duration::ZERO;
    let mut failures = 0;
    loop {
        // Also what slipped in before publishing was marked down.
        fail_queued(shared, rx);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return true,
        }
        // The subscriber may have moved to another node (or this one stays down; with
        // Sentinel, the master may be another now): the connection follows.
        shared.follow_master().await;
        let (client, url, now) = shared.node();
        if now != *generation
            && let Ok(moved) = command_connection(&client, &url, shared.connect_timeout).await
        {
            shared.set_command_connection(&moved);
            *conn = moved;
            *generation = now;
        }
        if redis::cmd("PING").query_async::<()>(conn).await.is_ok() {
            break;
        }
        delay = (delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        failures += 1;
        if failures % ATTEMPTS_PER_NODE == 0 {
            shared.move_on(*generation);
        }
    }
    shared.publishing.store(true, Ordering::Release);
    tracing::info!(url = %shared.url(), "redis publishing connection restored");
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

/// Where each message's commands sit in its pipeline: its PUBLISH, and the
/// `PUBSUB NUMSUB` before it for [`Mode::Counted`](crate::transport::Mode::Counted).
struct Plan {
    publish_at: Vec<usize>,
    numsub_at: Vec<Option<usize>>,
}

impl Plan {
    fn of(batch: &[Outgoing]) -> (redis::Pipeline, Plan) {
        let mut pipe = redis::pipe();
        let mut plan = Plan {
            publish_at: Vec::with_capacity(batch.len()),
            numsub_at: Vec::with_capacity(batch.len()),
        };
        let mut at = 0;
        for m in batch {
            if m.count_subscribers {
                pipe.cmd("PUBSUB").arg("NUMSUB").arg(&m.channel);
                plan.numsub_at.push(Some(at));
                at += 1;
            } else {
                plan.numsub_at.push(None);
            }
            match &m.xadd {
                Some(x) => x.add_to(&mut pipe, &m.channel),
                None => {
                    pipe.cmd("PUBLISH").arg(&m.channel).arg(&m.payload[..]);
                }
            }
            plan.publish_at.push(at);
            at += 1;
        }
        (pipe, plan)
    }
}

/// How one pipeline ended.
#[derive(Debug)]
enum Outcome {
    /// Every command executed: their replies, by command index.
    Published(Vec<redis::Value>),
    /// Redis refused some commands (by command index; e.g. an ACL without PUBLISH on a
    /// channel): the others were executed.
    Refused(Vec<(usize, redis::RedisError)>),
    /// The connection failed: none was executed.
    Failed(redis::RedisError),
    /// No answer within the response timeout: each may or may not be executed.
    Unknown(redis::RedisError),
}

impl Outcome {
    fn of(result: redis::RedisResult<Vec<redis::Value>>) -> Outcome {
        match result {
            Ok(replies) => Outcome::Published(replies),
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

    /// Messages of the pipeline not known to be published.
    fn failed(&self, plan: &Plan) -> usize {
        match self {
            Outcome::Published(_) => 0,
            Outcome::Refused(errors) => plan
                .publish_at
                .iter()
                .filter(|at| errors.iter().any(|(k, _)| k == *at))
                .count(),
            Outcome::Failed(_) | Outcome::Unknown(_) => plan.publish_at.len(),
        }
    }

    fn reply(&self, at: usize) -> Option<&redis::Value> {
        match self {
            Outcome::Published(replies) => replies.get(at),
            _ => None,
        }
    }

    /// How many subscribers message `i`'s PUBLISH reached, when known.
    fn reached(&self, plan: &Plan, i: usize) -> Option<usize> {
        let v = self.reply(*plan.publish_at.get(i)?)?;
        redis::from_redis_value_ref::<usize>(v).ok()
    }

    /// The channel's subscriber count asked before message `i`, when known.
    fn subscribers(&self, plan: &Plan, i: usize) -> Option<usize> {
        let v = self.reply((*plan.numsub_at.get(i)?)?)?;
        let counts: Vec<(String, usize)> = redis::from_redis_value_ref(v).ok()?;
        Some(counts.first().map_or(0, |(_, n)| *n))
    }

    /// What the caller of message `i` is told: the subscriber count it asked for, or how
    /// many its PUBLISH reached.
    fn of_message(&self, plan: &Plan, i: usize, counted: bool) -> Result<Option<usize>, Error> {
        let refused = |at: Option<usize>| match (self, at) {
            (Outcome::Refused(errors), Some(at)) => errors.iter().find(|(k, _)| *k == at),
            _ => None,
        };
        if let Some((_, e)) = refused(plan.publish_at.get(i).copied()) {
            return Err(Error::NotPublished(e.clone()));
        }
        if let Some((_, e)) = refused(plan.numsub_at.get(i).copied().flatten()) {
            // Published, but the count asked for was refused (an ACL without PUBSUB).
            return Err(Error::Redis(e.clone()));
        }
        match self {
            Outcome::Published(_) if counted => Ok(self.subscribers(plan, i)),
            Outcome::Published(_) => Ok(self.reached(plan, i)),
            Outcome::Refused(_) => Ok(None),
            Outcome::Failed(e) => Err(Error::NotPublished(e.clone())),
            Outcome::Unknown(e) => Err(Error::Unconfirmed(e.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn io(kind: std::io::ErrorKind) -> redis::RedisError {
        redis::RedisError::from(std::io::Error::from(kind))
    }

    fn message(count_subscribers: bool) -> Outgoing {
        let mut m = Outgoing::new(
            "c".into(),
            Bytes::from_static(b"x"),
            0,
            crate::transport::Mode::Queued,
        );
        m.count_subscribers = count_subscribers;
        m
    }

    /// Three messages, the second counted: commands PUBLISH, NUMSUB, PUBLISH, PUBLISH.
    fn plan() -> Plan {
        Plan::of(&[message(false), message(true), message(false)]).1
    }

    #[test]
    fn a_refused_command_fails_only_its_caller() {
        let refused = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm),
            "NOPERM",
        ));
        let plan = plan();
        // Command 2 is the second message's PUBLISH.
        let o = Outcome::Refused(vec![(2, refused)]);
        assert_eq!(o.failed(&plan), 1);
        assert!(o.of_message(&plan, 0, false).is_ok());
        let err = o.of_message(&plan, 1, true).unwrap_err();
        assert!(matches!(&err, Error::NotPublished(_)), "{err}");
        // The Redis error is the source, not only text.
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.to_string().contains("NOPERM"), "{source}");
        assert!(o.of_message(&plan, 2, false).is_ok());
    }

    #[test]
    fn a_failed_pipeline_fails_everyone_and_a_timeout_is_unconfirmed() {
        let plan = plan();
        let o = Outcome::Failed(io(std::io::ErrorKind::BrokenPipe));
        assert_eq!(o.failed(&plan), 3);
        assert!(matches!(
            o.of_message(&plan, 2, false),
            Err(Error::NotPublished(_))
        ));
        let o = Outcome::Unknown(io(std::io::ErrorKind::TimedOut));
        assert_eq!(o.failed(&plan), 3);
        assert!(matches!(
            o.of_message(&plan, 0, false),
            Err(Error::Unconfirmed(_))
        ));
    }

    #[test]
    fn counts_are_read_per_message() {
        use redis::Value as V;
        let plan = plan();
        let numsub = V::Array(vec![V::BulkString(b"c".to_vec()), V::Int(3)]);
        let o = Outcome::Published(vec![V::Int(1), numsub, V::Int(4), V::Int(0)]);
        assert_eq!(o.failed(&plan), 0);
        assert_eq!(o.of_message(&plan, 0, false).unwrap(), Some(1));
        // The counted message gets NUMSUB's answer; its PUBLISH reached 4.
        assert_eq!(o.of_message(&plan, 1, true).unwrap(), Some(3));
        assert_eq!(o.reached(&plan, 1), Some(4));
        assert_eq!(o.reached(&plan, 2), Some(0));
    }

    #[test]
    fn redis_errors_are_classified() {
        let timeout = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(Outcome::of(Err(timeout)), Outcome::Unknown(_)));
        let dropped = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(matches!(Outcome::of(Err(dropped)), Outcome::Failed(_)));
        assert!(matches!(Outcome::of(Ok(vec![])), Outcome::Published(_)));
    }
}
