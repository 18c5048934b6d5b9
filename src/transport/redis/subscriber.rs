//! The subscriber task: the one owner of the pub/sub connection. It hands every message
//! to the sink, and when the connection drops it reconnects (at once, then every 5 to
//! 25 ms; after three failures in a row to another node, when there are others) and
//! re-issues every subscription.

use super::{ATTEMPTS_PER_NODE, BACKOFF_MAX, BACKOFF_MIN, Shared, lock};
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
    loop {
        loop {
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
                    }
                }
            };
            let Some(msg) = next else { break };
            let pattern: Option<String> = msg.get_pattern().ok().flatten();
            let channel = msg.get_channel_name();
            let payload = msg.get_payload_bytes();
            sink.deliver(channel, pattern.as_deref(), payload);
            if let Some(gate) = &gate {
                // RESP framing of a (p)message is ~30-50 bytes.
                let size =
                    payload.len() + channel.len() + pattern.as_ref().map_or(0, String::len) + 48;
                gate.consumed(size as u64);
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
            let (client, url, generation) = shared.node();
            match resubscribe(&shared, &client, &url).await {
                Ok(conn) => break conn,
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
