//! The Redis Streams transport (`ClusterOptions::streams`), wire-compatible with Node's
//! `@socket.io/redis-streams-adapter` 0.3.1.
//!
//! The messages are the ClusterAdapter ones of the sharded protocol (static mode: one
//! channel per namespace, one response channel per server). What changes is where they
//! travel:
//! * broadcasts without an ack, joins, leaves and disconnects are appended to the
//!   namespace's stream (`XADD … MAXLEN ~ maxLen`), pipelined with everything else by the
//!   standalone transport's publisher (one order, one bounded queue);
//! * every other message, and every response, is `PUBLISH`ed as msgpack (Node's
//!   subscriber reads msgpack only) on `<key>#<nsp>#` or `<key>#<nsp>#<uid>#`, through
//!   the standalone transport's pub/sub connection; servers are counted with
//!   `PUBSUB NUMSUB <key>#<nsp>#`, as Node does;
//! * one reader task per server, on a connection of its own, blocks in `XREAD` on every
//!   stream from the last id it read (see [`reader`]). The offset survives reconnects,
//!   so a server that lost its connection reads what was appended meanwhile; a reader
//!   that fell behind the stream's trimming counts what it missed.

mod parse;
mod reader;

use super::redis::{RedisTransport, Xadd};
use super::sharded::ShardedTransport;
use super::{BoxFuture, MessageSink, Mode, Sub, Transport, TryPublish};
use crate::error::Error;
use crate::stats::Counters;
use crate::wire::cluster_format::ClusterMessage;
use crate::wire::streams::{is_ephemeral, stream_name, stream_names};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Node's streams options (`ClusterOptions::streams` and its setters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsOptions {
    /// Node: `streamName`. Default `socket.io`.
    pub stream_name: String,
    /// Node: `streamCount`. Default 1.
    pub stream_count: u32,
    /// Node: `maxLen`: each stream is trimmed to about this many entries. Default 10,000.
    pub max_len: usize,
    /// Node: `readCount`: entries read per `XREAD`. Default 100.
    pub read_count: usize,
    /// Node: `blockTimeInMs`. Default 5 s.
    pub block_time: Duration,
    /// Node: `onlyPlaintext`: entries hold JSON even for binary. Default false.
    pub only_plaintext: bool,
    /// Node: `useShardedPubSub`: the pub/sub part (requests, responses) over sharded
    /// pub/sub (`SPUBLISH`, `SSUBSCRIBE`, servers counted with `PUBSUB SHARDNUMSUB`), on
    /// a Redis Cluster or one Redis 7. Default false (`PUBLISH`). Every server of the
    /// cluster must use the same setting.
    pub use_sharded_pub_sub: bool,
    /// Broadcasts emitted while Redis is unreachable that are kept (at most this many)
    /// and appended once it answers again, before anything newer: the stream has room
    /// for late entries, every server reads them from its offset. 0: refused at once,
    /// as pub/sub broadcasts are. Default 10,000. One Redis or Sentinel (over a Redis
    /// Cluster, an entry for a master that is down is refused). Node: node-redis and
    /// ioredis queue commands while disconnected, without a bound.
    pub offline_queue: usize,
    /// Held entries older than this when Redis answers again are dropped (counted in
    /// `publish_failed`) rather than delivered that late. Default 30 s.
    pub offline_max_age: Duration,
}

impl Default for StreamsOptions {
    fn default() -> Self {
        StreamsOptions {
            stream_name: "socket.io".into(),
            stream_count: 1,
            max_len: 10_000,
            read_count: 100,
            block_time: Duration::from_secs(5),
            only_plaintext: false,
            use_sharded_pub_sub: false,
            offline_queue: 10_000,
            offline_max_age: Duration::from_secs(30),
        }
    }
}

pub(crate) struct StreamsTransport {
    /// The pub/sub part: requests, responses, server counts, heartbeats.
    pubsub: Arc<dyn Transport>,
    /// Where the entries are written.
    store: Store,
    key: String,
    opts: StreamsOptions,
    shutdown: watch::Sender<bool>,
    readers: Mutex<Vec<JoinHandle<()>>>,
}

/// Where the stream entries are written.
enum Store {
    /// One node (a standalone Redis, the Sentinel master): the pub/sub transport itself,
    /// so entries and PUBLISHes share one order and one pipeline.
    Node(Arc<RedisTransport>),
    /// Each stream on its slot's master; `own` when it is not also the pub/sub part
    /// (then it has no subscriptions and is closed with the transport).
    Slots {
        writer: Arc<ShardedTransport>,
        own: bool,
    },
}

impl StreamsTransport {
    /// Streams over `inner`, the standalone transport (to one Redis, or to the master of
    /// a Sentinel setup), which carries the pub/sub part and writes the entries.
    pub(crate) async fn over(
        inner: RedisTransport,
        key: &str,
        opts: &StreamsOptions,
        connect_timeout: Duration,
        sink: Arc<dyn MessageSink>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        // The reader follows the node the other connections use (with Sentinel, the
        // master; it moves when they move).
        let (node, moved) = inner.node_in_use();
        let streams = stream_names(&opts.stream_name, opts.stream_count);
        // Where each stream ends now: what is appended from here on is read.
        let start = reader::Reader::start(
            reader::Locate::Follow(node, moved),
            streams,
            key,
            opts,
            connect_timeout,
            sink,
            counters,
        )
        .await?;
        inner.hold_stream_entries(opts.offline_queue, opts.offline_max_age);
        let inner = Arc::new(inner);
        Ok(Self::with(
            inner.clone(),
            Store::Node(inner),
            key,
            opts,
            vec![start],
        ))
    }

    /// Streams over a Redis Cluster (or, sharded, one Redis 7): `writer` writes each
    /// entry on its stream's master; `pubsub` carries the rest (`writer` itself when
    /// `opts.use_sharded_pub_sub`). One reader per stream, on that stream's master.
    #[allow(clippy::too_many_arguments)] // the two transports, and what `over` takes
    pub(crate) async fn over_slots(
        pubsub: Arc<dyn Transport>,
        writer: Arc<ShardedTransport>,
        own: bool,
        key: &str,
        opts: &StreamsOptions,
        connect_timeout: Duration,
        sink: Arc<dyn MessageSink>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        let mut readers = Vec::new();
        for stream in stream_names(&opts.stream_name, opts.stream_count) {
            let start = reader::Reader::start(
                reader::Locate::Slot(writer.clone()),
                vec![stream],
                key,
                opts,
                connect_timeout,
                sink.clone(),
                counters.clone(),
            )
            .await;
            match start {
                Ok(r) => readers.push(r),
                Err(e) => {
                    if own {
                        writer.close().await;
                    }
                    pubsub.close().await;
                    return Err(e);
                }
            }
        }
        Ok(Self::with(
            pubsub,
            Store::Slots { writer, own },
            key,
            opts,
            readers,
        ))
    }

    fn with(
        pubsub: Arc<dyn Transport>,
        store: Store,
        key: &str,
        opts: &StreamsOptions,
        readers: Vec<reader::Reader>,
    ) -> Self {
        let (shutdown, rx) = watch::channel(false);
        let readers = readers
            .into_iter()
            .map(|r| tokio::spawn(r.run(rx.clone())))
            .collect();
        Self {
            pubsub,
            store,
            key: key.to_owned(),
            opts: opts.clone(),
            shutdown,
            readers: Mutex::new(readers),
        }
    }

    /// The bytes and where they go: `(stream, entry)` for the stream, or the payload
    /// for pub/sub (msgpack for ClusterAdapter messages; anything else, e.g. our
    /// heartbeats, unchanged).
    fn route(&self, channel: &str, payload: Bytes) -> Result<(String, Xadd), Bytes> {
        // `<key>#<rest>`: ours; anything else (our heartbeats) goes as it is.
        let Some(rest) = channel
            .strip_prefix(self.key.as_str())
            .and_then(|r| r.strip_prefix('#'))
        else {
            return Err(payload);
        };
        let Ok(msg) = ClusterMessage::decode(&payload) else {
            return Err(payload);
        };
        // The namespace's own channel `<key>#<nsp>#` (not a response channel).
        let main = rest.strip_suffix('#') == Some(msg.nsp.as_str());
        if main && !is_ephemeral(&msg) {
            let entry = Xadd {
                max_len: self.opts.max_len,
                fields: msg.to_stream_fields(self.opts.only_plaintext),
            };
            return Ok((
                stream_name(&self.opts.stream_name, self.opts.stream_count, &msg.nsp),
                entry,
            ));
        }
        Err(Bytes::from(msg.encode_msgpack()))
    }
}

impl Transport for StreamsTransport {
    fn publish(
        &self,
        channel: String,
        payload: Bytes,
        mode: Mode,
        expect: usize,
    ) -> BoxFuture<'_, Result<Option<usize>, Error>> {
        Box::pin(async move {
            match self.route(&channel, payload) {
                Ok((stream, entry)) => match &self.store {
                    Store::Node(node) => node.xadd(stream, entry, mode).await,
                    Store::Slots { writer, .. } => writer.xadd(stream, entry, mode).await,
                },
                Err(payload) => self.pubsub.publish(channel, payload, mode, expect).await,
            }
        })
    }

    fn try_publish(&self, channel: String, payload: Bytes) -> TryPublish {
        match self.route(&channel, payload) {
            // Replies never go to the stream; nothing else takes this path.
            Ok(_) => TryPublish::Failed(
                Error::Unsupported("a stream entry on the replies' path"),
                channel,
            ),
            Err(payload) => self.pubsub.try_publish(channel, payload),
        }
    }

    fn subscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        self.pubsub.subscribe(sub)
    }

    fn unsubscribe(&self, sub: Sub) -> BoxFuture<'_, Result<(), Error>> {
        self.pubsub.unsubscribe(sub)
    }

    fn num_sub(&self, channels: Vec<String>) -> BoxFuture<'_, Result<Vec<usize>, Error>> {
        self.pubsub.num_sub(channels)
    }

    fn is_connected(&self) -> bool {
        self.pubsub.is_connected()
    }

    fn is_publishing(&self) -> bool {
        self.pubsub.is_publishing()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let _ = self.shutdown.send(true);
        let readers: Vec<_> = self
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        Box::pin(async move {
            for r in readers {
                let _ = r.await;
            }
            self.pubsub.close().await;
            if let Store::Slots { writer, own: true } = &self.store {
                writer.close().await;
            }
        })
    }
}
