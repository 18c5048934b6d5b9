//! Where the encoded messages go: one [`Publish`] per connection type, each sending a
//! batch as pipelines (the writer's batches, see `writer.rs`).

use redis::Value;
use redis::cluster_routing::Slot;
use std::future::Future;
use std::pin::Pin;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends encoded messages. Tests capture instead.
pub(crate) trait Publish: Send + Sync + 'static {
    /// `PUBLISH channel payload` (or what the protocol makes of it): how many
    /// subscribers received it.
    fn publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<usize, redis::RedisError>>;

    /// Every message of `batch`, in order; one outcome each. By default one after the
    /// other; connections pipeline them.
    fn publish_batch(
        &self,
        batch: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'static, Vec<Result<usize, redis::RedisError>>> {
        one_by_one(self, batch)
    }
}

/// Every message of `batch` published by `p`, one after the other.
pub(crate) fn one_by_one<P: Publish + ?Sized>(
    p: &P,
    batch: Vec<(String, Vec<u8>)>,
) -> BoxFuture<'static, Vec<Result<usize, redis::RedisError>>> {
    let sends: Vec<_> = batch
        .into_iter()
        .map(|(channel, payload)| p.publish(channel, payload))
        .collect();
    Box::pin(async move {
        let mut out = Vec::with_capacity(sends.len());
        for s in sends {
            out.push(s.await);
        }
        out
    })
}

/// A connection and the command it publishes with (`PUBLISH`, or `SPUBLISH` for the
/// sharded protocol). `cluster`: a Redis Cluster connection, whose pipelines must stay
/// in one slot.
pub(crate) struct RedisPublisher<C> {
    pub(crate) conn: C,
    pub(crate) command: &'static str,
    pub(crate) cluster: bool,
}

impl<C> Publish for RedisPublisher<C>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    fn publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<usize, redis::RedisError>> {
        let mut conn = self.conn.clone();
        let command = self.command;
        Box::pin(async move {
            redis::cmd(command)
                .arg(channel)
                .arg(payload)
                .query_async::<usize>(&mut conn)
                .await
        })
    }

    fn publish_batch(
        &self,
        batch: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'static, Vec<Result<usize, redis::RedisError>>> {
        let mut conn = self.conn.clone();
        let (command, cluster) = (self.command, self.cluster);
        Box::pin(async move {
            let slots: Vec<Option<Slot>> = batch
                .iter()
                .map(|(c, _)| cluster.then(|| Slot::for_key(c)))
                .collect();
            let groups: Vec<Vec<redis::Cmd>> = batch
                .into_iter()
                .map(|(channel, payload)| {
                    let mut cmd = redis::cmd(command);
                    cmd.arg(channel).arg(payload);
                    vec![cmd]
                })
                .collect();
            pipelined(&mut conn, groups, &slots, count_of).await
        })
    }
}

/// Sends `groups` (each message's commands, in order) as pipelines — one, or one per
/// run of consecutive messages in the same `slots` (a cluster connection) — and reads
/// each message's outcome from its last reply with `parse`.
pub(crate) async fn pipelined<C>(
    conn: &mut C,
    groups: Vec<Vec<redis::Cmd>>,
    slots: &[Option<Slot>],
    parse: fn(Value) -> redis::RedisResult<usize>,
) -> Vec<Result<usize, redis::RedisError>>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut out = Vec::with_capacity(groups.len());
    let mut groups = groups.into_iter().enumerate().peekable();
    while let Some((i, first)) = groups.next() {
        let mut run = vec![first];
        while let Some((j, _)) = groups.peek() {
            if slots.get(*j) != slots.get(i) {
                break;
            }
            run.push(groups.next().map(|(_, g)| g).unwrap_or_default());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let sizes: Vec<usize> = run.iter().map(Vec::len).collect();
        for cmd in run.into_iter().flatten() {
            pipe.add_command(cmd);
        }
        match pipe
            .query_async::<Vec<redis::RedisResult<Value>>>(conn)
            .await
        {
            Ok(replies) => {
                let mut replies = replies.into_iter();
                for n in sizes {
                    // A message succeeds when each of its commands did; its outcome is
                    // its last reply's.
                    let mut res = Err(redis::RedisError::from(std::io::Error::other(
                        "missing pipeline reply",
                    )));
                    let mut failed = None;
                    for _ in 0..n {
                        match replies.next() {
                            Some(Ok(v)) => res = parse(v),
                            Some(Err(e)) => failed = Some(e),
                            None => {}
                        }
                    }
                    out.push(match failed {
                        Some(e) => Err(e),
                        None => res,
                    });
                }
            }
            Err(e) => out.extend(sizes.iter().map(|_| Err(e.clone()))),
        }
    }
    out
}

/// The count a message's last reply gives: a `PUBLISH`'s integer, or the number of a
/// `PUBSUB NUMSUB <channel>` reply (`[channel, n]`).
pub(crate) fn count_of(v: Value) -> redis::RedisResult<usize> {
    match v {
        Value::Int(n) => Ok(usize::try_from(n).unwrap_or(0)),
        other => {
            let counts: Vec<(String, usize)> = redis::from_redis_value(other)?;
            Ok(counts.first().map_or(0, |(_, n)| *n))
        }
    }
}

/// Whether `e` says the connection failed (not that Redis refused the command or was
/// slow): the command was not executed, or not known to be.
pub(crate) fn is_connection_error(e: &redis::RedisError) -> bool {
    !e.is_timeout() && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal())
}
