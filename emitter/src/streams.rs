//! Writing to the Redis streams of servers on the Streams protocol
//! ([`EmitterOptions::streams`]: Node's `@socket.io/redis-streams-adapter` 0.3.x, or
//! `ClusterOptions::streams`).
//!
//! Messages are encoded as for the sharded protocol (the ClusterAdapter envelope, uid
//! `"emitter"`), then: broadcasts, joins, leaves and disconnects are appended to the
//! namespace's stream (`XADD <stream> MAXLEN ~ <maxLen> * uid … nsp … type … data …`),
//! the rest (server-side emits) is `PUBLISH`ed as msgpack on `<key>#<nsp>#`. An XADD is
//! pipelined with `PUBSUB NUMSUB <key>#<nsp>#`, whose answer is the count returned:
//! the servers of the namespace, which all read the stream.
//!
//! Node's own streams emitter (not on the registry) writes only to the base stream; this
//! one follows `stream_count` as the servers do.
//!
//! [`EmitterOptions::streams`]: crate::EmitterOptions::streams

use crate::publish::{BoxFuture, Publish, count_of, one_by_one, pipelined};
use socketioxide_cluster_wire::cluster_format::ClusterMessage;
use socketioxide_cluster_wire::streams::{is_ephemeral, stream_name};

/// The streams settings of an emitter (Node: `streamName`, `maxLen`; ours also
/// `streamCount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamTarget {
    pub(crate) stream_name: String,
    pub(crate) stream_count: u32,
    pub(crate) max_len: usize,
    /// Node's `useShardedPubSub`: `SPUBLISH` and `PUBSUB SHARDNUMSUB`.
    pub(crate) sharded_pub_sub: bool,
}

/// [`Publish`] for the Streams protocol over any async connection.
pub(crate) struct StreamsPublisher<C> {
    pub(crate) conn: C,
    pub(crate) key: String,
    pub(crate) target: StreamTarget,
    /// A Redis Cluster connection: the `XADD` and the count go apart (a pipeline must
    /// stay in one slot; the count is summed over the nodes by the cluster connection).
    pub(crate) cluster: bool,
}

/// What one emitter message becomes on the Streams protocol.
pub(crate) enum StreamWrite {
    /// `XADD` of the entry, and the count of the namespace's servers.
    Entry { xadd: redis::Cmd, count: redis::Cmd },
    /// A `PUBLISH` (or `SPUBLISH`) answering the subscribers reached.
    Publish(redis::Cmd),
}

impl StreamTarget {
    /// Where `payload` (a ClusterAdapter message the emitter encoded for `channel`) goes:
    /// the namespace's stream when it is a stream type on the namespace's channel, else
    /// pub/sub as msgpack (Node's subscriber reads msgpack only).
    pub(crate) fn write(&self, key: &str, channel: &str, payload: Vec<u8>) -> StreamWrite {
        let (publish, numsub) = if self.sharded_pub_sub {
            ("SPUBLISH", "SHARDNUMSUB")
        } else {
            ("PUBLISH", "NUMSUB")
        };
        let msg = match ClusterMessage::decode(&payload) {
            Ok(m) => m,
            // Not ours to encode (cannot happen for what the emitter builds).
            Err(_) => {
                let mut cmd = redis::cmd(publish);
                cmd.arg(channel).arg(payload);
                return StreamWrite::Publish(cmd);
            }
        };
        let main = channel
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|r| r.strip_suffix('#'))
            == Some(msg.nsp.as_str());
        if !main || is_ephemeral(&msg) {
            let mut cmd = redis::cmd(publish);
            cmd.arg(channel).arg(msg.encode_msgpack());
            return StreamWrite::Publish(cmd);
        }
        let stream = stream_name(&self.stream_name, self.stream_count, &msg.nsp);
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*");
        for (k, v) in msg.to_stream_fields(false) {
            xadd.arg(k).arg(v);
        }
        let mut count = redis::cmd("PUBSUB");
        count.arg(numsub).arg(channel);
        StreamWrite::Entry { xadd, count }
    }
}

impl StreamWrite {
    /// Its commands, in order (the count is the last one's reply).
    pub(crate) fn commands(self) -> Vec<redis::Cmd> {
        match self {
            StreamWrite::Publish(cmd) => vec![cmd],
            StreamWrite::Entry { xadd, count } => vec![xadd, count],
        }
    }

    /// Runs it on `conn`: the count it answers. `split`: the XADD and the count apart
    /// (a Redis Cluster connection; a pipeline there must stay in one slot).
    pub(crate) async fn run<C>(self, conn: &mut C, split: bool) -> redis::RedisResult<usize>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        match self {
            StreamWrite::Publish(cmd) => cmd.query_async(conn).await,
            StreamWrite::Entry { xadd, count } => {
                let counts: Vec<(String, usize)> = if split {
                    xadd.query_async::<String>(conn).await?;
                    count.query_async(conn).await?
                } else {
                    let (_id, counts): (String, _) = redis::pipe()
                        .add_command(xadd)
                        .add_command(count)
                        .query_async(conn)
                        .await?;
                    counts
                };
                Ok(counts.first().map_or(0, |(_, n)| *n))
            }
        }
    }
}

impl<C> Publish for StreamsPublisher<C>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    fn publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<usize, redis::RedisError>> {
        let mut conn = self.conn.clone();
        let write = self.target.write(&self.key, &channel, payload);
        let split = self.cluster;
        Box::pin(async move { write.run(&mut conn, split).await })
    }

    fn publish_batch(
        &self,
        batch: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'static, Vec<Result<usize, redis::RedisError>>> {
        if self.cluster {
            // An entry's XADD and its count go to different nodes: one by one.
            return one_by_one(self, batch);
        }
        let mut conn = self.conn.clone();
        let groups: Vec<Vec<redis::Cmd>> = batch
            .into_iter()
            .map(|(channel, payload)| self.target.write(&self.key, &channel, payload).commands())
            .collect();
        Box::pin(async move { pipelined(&mut conn, groups, &[], count_of).await })
    }
}
