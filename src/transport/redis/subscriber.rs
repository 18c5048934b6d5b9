//! The subscriber task: the one owner of the pub/sub connection. It hands every message
//! to the sink, and when the connection drops it reconnects (at once, then every 5 to
//! 25 ms; after three failures in a row to another node, when there are others; with
//! Sentinel, to the master the sentinels name) and re-issues every subscription. It
//! also moves when the node in use changes (a new master announced).

use super::node::ATTEMPTS_PER_NODE;
use super::{BACKOFF_MAX, BACKOFF_MIN, Shared, lock};
use crate::error::Error;
use crate::stats::Counters;
use crate::transport::connect::open_pubsub;
use crate::transport::gate::Gate;
use crate::transport::{MessageSink, Sub};
use futures_util::{FutureExt, StreamExt};
use redis::aio::PubSubStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

/// The one task that owns the subscriber connection.
pub(super) async fn run_subscriber(
    shared: Arc<Shared>,
    (mut stream, mut gate): (PubSubStream, Option<Arc<Gate>>),
    sink: Arc<dyn MessageSink>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The node generation the connection is on; another one (a Sentinel failover, see
    // `follow_master`) means moving now, not when the old node drops the connection.
    let mut moved = shared.moved.subscribe();
    let mut on = *moved.borrow_and_update();
    loop {
        let moving = loop {
            if *shutdown.borrow() {
                return;
            }
            let next = match stream.next().now_or_never() {
                Some(next) => next,
                None => {
                    // Nothing queued: everything read was consumed.
                    if let Some(gate) = &gate {
                        gate.caught_up();
                    }
                    tokio::select! {
                        next = stream.next() => next,
                        _ = shutdown.changed() => return,
                        _ = moved.changed() => {
                            if *moved.borrow_and_update() == on {
                                continue;
                            }
                            break true;
                        }
                    }
                }
            };
            let Some(msg) = next else { break false };
            deliver(&*sink, gate.as_deref(), &msg);
        };
        if moving {
            // Make before break: subscribed on the new node first, then what the old one
            // still sends is read to the end, so a planned failover loses nothing here.
            let (client, url, generation) = shared.node();
            match resubscribe(&shared, &client, &url).await {
                Ok((new_stream, new_gate)) => {
                    drain(&mut stream, &*sink, gate.as_deref()).await;
                    (stream, gate, on) = (new_stream, new_gate, generation);
                    tracing::info!(url = %url, "redis subscriber connection moved; subscriptions re-issued");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(url = %url, error = %e, "could not move the subscriber connection")
                }
            }
        }
        Counters::add(&shared.counters.reconnects, 1);
        shared.subscribed.store(false, Ordering::Release);
        tracing::warn!(url = %shared.url(), "redis subscriber connection lost; reconnecting");
        shared.probe.notify_one();
        sink.connection_lost();
        // At once first: a connection killed alone (`CLIENT KILL TYPE pubsub`, a proxy
        // restart) usually finds Redis answering.
        let mut delay = Duration::ZERO;
        let mut failures = 0;
        (stream, gate) = loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            // With Sentinel, every attempt asks for the master (Node compat: ioredis).
            shared.follow_master().await;
            let (client, url, generation) = shared.node();
            match resubscribe(&shared, &client, &url).await {
                Ok(conn) => {
                    on = generation;
                    break conn;
                }
                Err(e) => {
                    tracing::debug!(url = %url, error = %e, "redis reconnect failed");
                    delay = (delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                    failures += 1;
                    if failures % ATTEMPTS_PER_NODE == 0 {
                        shared.move_on(generation);
                    }
                }
            }
        };
        shared.subscribed.store(true, Ordering::Release);
        tracing::info!(url = %shared.url(), "redis subscriber connection restored; subscriptions re-issued");
    }
}

/// Hands one message to the sink (and counts its bytes as consumed).
fn deliver(sink: &dyn MessageSink, gate: Option<&Gate>, msg: &redis::Msg) {
    let pattern: Option<String> = msg.get_pattern().ok().flatten();
    let channel = msg.get_channel_name();
    let payload = msg.get_payload_bytes();
    sink.deliver(channel, pattern.as_deref(), payload);
    if let Some(gate) = gate {
        // RESP framing of a (p)message is ~30-50 bytes.
        let size = payload.len() + channel.len() + pattern.as_ref().map_or(0, String::len) + 48;
        gate.consumed(size as u64);
    }
}

/// Quiet time after which a connection being left is taken as drained.
const DRAIN_IDLE: Duration = Duration::from_millis(50);
/// Longest a connection being left is read.
const DRAIN_MAX: Duration = Duration::from_millis(250);

/// Reads what a connection being left still delivers: until it is quiet for
/// [`DRAIN_IDLE`], at most [`DRAIN_MAX`].
async fn drain(stream: &mut PubSubStream, sink: &dyn MessageSink, gate: Option<&Gate>) {
    let until = tokio::time::Instant::now() + DRAIN_MAX;
    loop {
        let next = match stream.next().now_or_never() {
            Some(next) => next,
            None => {
                if let Some(gate) = gate {
                    gate.caught_up();
                }
                let quiet = (tokio::time::Instant::now() + DRAIN_IDLE).min(until);
                tokio::time::timeout_at(quiet, stream.next())
                    .await
                    .ok()
                    .flatten()
            }
        };
        match next {
            Some(msg) => deliver(sink, gate, &msg),
            None => return,
        }
    }
}

async fn resubscribe(
    shared: &Shared,
    client: &redis::Client,
    url: &str,
) -> Result<(PubSubStream, Option<Arc<Gate>>), Error> {
    let (pubsub, gate) = open_pubsub(
        client,
        shared.tls.as_ref(),
        url,
        shared.connect_timeout,
        shared.screen.clone(),
    )
    .await?;
    let (mut sink, stream) = pubsub.split();
    // Install the new sink before reading the subscription set, so a subscription added
    // concurrently lands on the new connection either way.
    *lock(&shared.sub_sink) = Some(sink.clone());
    let subs: Vec<Sub> = lock(&shared.subs).iter().cloned().collect();
    for sub in subs {
        match sub {
            Sub::Channel(c) => sink.subscribe(c).await?,
            Sub::Pattern(p) => sink.psubscribe(p).await?,
        }
    }
    Ok((stream, gate))
}
