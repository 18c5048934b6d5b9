//! The publisher task: drains the bounded queue and sends one pipeline of `SPUBLISH`
//! per owner, retrying once what failed after a topology read.

use super::slots::{Addr, slot};
use super::{Inner, MAX_BATCH, Outgoing, lock};
use crate::error::Error;
use crate::stats::Counters;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

pub(super) async fn run_publisher(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Outgoing>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
            _ = shutdown.changed() => { rx.close(); rx.recv_many(&mut batch, MAX_BATCH).await }
        };
        if n == 0 {
            return;
        }
        let mut todo: Vec<Outgoing> = std::mem::take(&mut batch);
        for attempt in 0..2 {
            let failed = publish_round(&inner, &mut todo, attempt > 0).await;
            if failed.is_empty() {
                break;
            }
            todo = failed;
            if attempt == 1 {
                Counters::add(&inner.counters.publish_failed, todo.len() as u64);
                for m in todo.drain(..) {
                    if let Some(done) = m.done {
                        let _ = done.send(Err(Error::Disconnected));
                    }
                }
            }
        }
    }
}

/// Sends `todo` grouped by owner; returns what failed (to retry).
async fn publish_round(inner: &Inner, todo: &mut Vec<Outgoing>, fresh: bool) -> Vec<Outgoing> {
    let Ok(topology) = inner.topology(fresh).await else {
        return std::mem::take(todo);
    };
    let mut groups: HashMap<Addr, Vec<Outgoing>> = HashMap::new();
    let mut failed = Vec::new();
    for m in todo.drain(..) {
        match topology.owner(slot(&m.channel)) {
            Some(owner) => groups.entry(owner.clone()).or_default().push(m),
            None => failed.push(m),
        }
    }
    let down = lock(&inner.down).clone();
    let (lost, groups): (Vec<_>, Vec<_>) = groups.into_iter().partition(|(a, _)| down.contains(a));
    // Owned by a master known down: fail now (counted by the caller), not after a
    // connect timeout.
    failed.extend(lost.into_iter().flat_map(|(_, msgs)| msgs));
    let sends = groups.into_iter().map(|(addr, msgs)| async move {
        let mut pipe = redis::pipe();
        for m in &msgs {
            if m.count {
                pipe.cmd("PUBSUB").arg("SHARDNUMSUB").arg(&m.channel);
            }
            match &m.xadd {
                Some(x) => x.add_to(&mut pipe, &m.channel),
                None => {
                    pipe.cmd("SPUBLISH").arg(&m.channel).arg(&m.payload[..]);
                }
            }
        }
        // `Some` once the pipeline was sent: its error leaves each command's fate
        // unknown.
        let mut sent = None;
        let res = match inner.command(&addr).await {
            Ok(mut conn) => pipe
                .query_async::<Vec<redis::Value>>(&mut conn)
                .await
                .map_err(|e| {
                    sent = Some(e.clone());
                    Error::from(e)
                }),
            Err(e) => Err(e),
        };
        if res.is_err() {
            lock(&inner.commands).remove(&addr);
            lock(&inner.down).insert(addr.clone());
            inner.wake.notify_one();
        }
        (msgs, res, sent)
    });
    for (msgs, res, sent) in futures_util::future::join_all(sends).await {
        // A stream entry whose XADD may have been executed is not sent again: a reader
        // would get it twice. It fails (counted) instead.
        let msgs = match (&res, sent) {
            (Err(_), Some(e)) => {
                let (unknown, retry): (Vec<_>, Vec<_>) =
                    msgs.into_iter().partition(|m| m.xadd.is_some());
                Counters::add(&inner.counters.publish_failed, unknown.len() as u64);
                for m in unknown {
                    if let Some(done) = m.done {
                        let _ = done.send(Err(Error::Unconfirmed(e.clone())));
                    }
                }
                retry
            }
            _ => msgs,
        };
        let replies = msgs.len() + msgs.iter().filter(|m| m.count).count();
        match res {
            Ok(values) if values.len() == replies => {
                let mut values = values.into_iter();
                for m in msgs {
                    let counted = if m.count {
                        values.next().and_then(|v| shard_count(&v))
                    } else {
                        None
                    };
                    match values.next() {
                        // XADD answers the entry's id.
                        Some(redis::Value::BulkString(_) | redis::Value::SimpleString(_))
                            if m.xadd.is_some() =>
                        {
                            Counters::add(&inner.counters.published, 1);
                            if let Some(done) = m.done {
                                let _ = done.send(Ok(None));
                            }
                        }
                        Some(redis::Value::Int(n)) if !m.count || counted.is_some() => {
                            Counters::add(&inner.counters.published, 1);
                            let reached = usize::try_from(n).unwrap_or(0);
                            if reached < m.expect {
                                inner
                                    .counters
                                    .under_delivered(&m.channel, m.expect, reached);
                            }
                            if let Some(done) = m.done {
                                let _ = done.send(Ok(counted.or(Some(reached))));
                            }
                        }
                        // MOVED, ASK, CLUSTERDOWN…: once more after a topology read.
                        _ => failed.push(m),
                    }
                }
            }
            _ => failed.extend(msgs),
        }
    }
    failed
}

/// The count of a `PUBSUB SHARDNUMSUB <channel>` reply (`[channel, n]`, or a map in RESP3).
fn shard_count(v: &redis::Value) -> Option<usize> {
    match v {
        redis::Value::Array(items) => match items.get(1)? {
            redis::Value::Int(n) => usize::try_from(*n).ok(),
            _ => None,
        },
        redis::Value::Map(pairs) => match &pairs.first()?.1 {
            redis::Value::Int(n) => usize::try_from(*n).ok(),
            _ => None,
        },
        _ => None,
    }
}
