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

use crate::emitter::{BoxFuture, Publish};
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
        let msg = ClusterMessage::decode(&payload);
        let stream = match &msg {
            Ok(m) if channel == format!("{}#{}#", self.key, m.nsp) && !is_ephemeral(m) => Some(
                stream_name(&self.target.stream_name, self.target.stream_count, &m.nsp),
            ),
            _ => None,
        };
        let max_len = self.target.max_len;
        let (publish, numsub) = if self.target.sharded_pub_sub {
            ("SPUBLISH", "SHARDNUMSUB")
        } else {
            ("PUBLISH", "NUMSUB")
        };
        let cluster = self.cluster;
        Box::pin(async move {
            let Ok(msg) = msg else {
                // Not ours to encode (cannot happen for what the emitter builds).
                return redis::cmd(publish)
                    .arg(&channel)
                    .arg(payload)
                    .query_async(&mut conn)
                    .await;
            };
            match stream {
                Some(stream) => {
                    let mut xadd = redis::cmd("XADD");
                    xadd.arg(&stream)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(max_len)
                        .arg("*");
                    for (k, v) in msg.to_stream_fields(false) {
                        xadd.arg(k).arg(v);
                    }
                    let mut count = redis::cmd("PUBSUB");
                    count.arg(numsub).arg(&channel);
                    let counts: Vec<(String, usize)> = if cluster {
                        xadd.query_async::<String>(&mut conn).await?;
                        count.query_async(&mut conn).await?
                    } else {
                        let (_id, counts): (String, _) = redis::pipe()
                            .add_command(xadd)
                            .add_command(count)
                            .query_async(&mut conn)
                            .await?;
                        counts
                    };
                    Ok(counts.first().map_or(0, |(_, n)| *n))
                }
                None => {
                    redis::cmd(publish)
                        .arg(&channel)
                        .arg(msg.encode_msgpack())
                        .query_async(&mut conn)
                        .await
                }
            }
        })
    }
}
