//! The publisher task: the one writer of the command connection. It drains the bounded
//! queue into pipelines of PUBLISH, tells each confirmed caller how its command ended
//! and how many subscribers it reached, and counts messages that reached fewer than
//! expected. When the connection fails it marks publishing down (new messages are
//! refused at once) and probes with PING until Redis answers again.

use super::held::Kept;
use super::node::{ATTEMPTS_PER_NODE, command_connection};
use super::pipeline::{Outcome, Plan};
use super::queue::Outgoing;
use super::{BACKOFF_MAX, BACKOFF_MIN, MAX_BATCH, RETRY_DELAY, Shared, lock};
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
            lock(&shared.held).fail_all(&shared.counters);
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
        settle(&shared, &mut batch, &plan, &outcome);
        if matches!(outcome, Outcome::Failed(_))
            && !closing
            && wait_until_back(&shared, &mut conn, &mut on, &mut rx, &mut shutdown).await
        {
            closing = true;
            rx.close();
        }
    }
}

/// Counts how the pipeline of `batch` ended and tells each waiting caller; empties
/// `batch`.
fn settle(shared: &Shared, batch: &mut Vec<Outgoing>, plan: &Plan, outcome: &Outcome) {
    let failed = outcome.failed(plan);
    Counters::add(&shared.counters.published, (batch.len() - failed) as u64);
    if failed > 0 {
        Counters::add(&shared.counters.publish_failed, failed as u64);
        tracing::warn!(url = %shared.url(), outcome = ?outcome, failed, "PUBLISH failed");
    }
    for (i, m) in batch.iter().enumerate() {
        if let Some(n) = outcome.reached(plan, i)
            && n < m.expect
        {
            shared.counters.under_delivered(&m.channel, m.expect, n);
        }
    }
    for (i, m) in batch.drain(..).enumerate() {
        if let Some(done) = m.done {
            // The caller may have given up waiting; nothing to tell then.
            let _ = done.send(outcome.of_message(plan, i, m.count_subscribers));
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
    let held = lock(&shared.held).resume(&shared.publishing, &shared.counters);
    tracing::info!(url = %shared.url(), "redis publishing connection restored");
    if !held.is_empty() {
        send_held(shared, conn, held).await;
    }
    false
}

/// Fails every message waiting in the queue (counted in `publish_failed`).
/// Stream entries nobody waits on are kept instead, as far as there is room (see
/// `held.rs`).
fn fail_queued(shared: &Shared, rx: &mut mpsc::Receiver<Outgoing>) {
    let mut failed = 0;
    while let Ok(m) = rx.try_recv() {
        let m = match lock(&shared.held).keep(m, &shared.publishing) {
            Kept::Yes => {
                Counters::add(&shared.counters.stream_held, 1);
                continue;
            }
            Kept::Up(m) | Kept::No(m) => m,
        };
        failed += 1;
        if let Some(done) = m.done {
            let _ = done.send(Err(Error::Disconnected));
        }
    }
    Counters::add(&shared.counters.publish_failed, failed);
}

/// Sends what was held while Redis was down, in order, before anything queued since.
async fn send_held(shared: &Shared, conn: &mut ConnectionManager, held: Vec<Outgoing>) {
    let n = held.len();
    let mut held = held.into_iter().peekable();
    while held.peek().is_some() {
        let mut batch: Vec<Outgoing> = held.by_ref().take(MAX_BATCH).collect();
        let (pipe, plan) = Plan::of(&batch);
        let result = pipe.query_async::<Vec<redis::Value>>(conn).await;
        settle(shared, &mut batch, &plan, &Outcome::of(result));
    }
    tracing::info!(
        entries = n,
        "stream entries held while Redis was down: sent"
    );
}
