//! The stream reader: one task, one connection of its own (a blocking `XREAD` holds up
//! everything behind it on a connection), reading every stream of the cluster from the
//! last id it read.
//!
//! * It starts where each stream ends when the transport connects (`XINFO STREAM`'s
//!   `last-generated-id`; `0-0` for a stream that does not exist yet), so nothing
//!   appended after `connect` returned is missed.
//! * Every entry is handed to the sink as the ClusterAdapter message it holds, on its
//!   namespace's channel, exactly as the sharded transport would deliver it; entries of
//!   namespaces nobody here serves are passed over by the router.
//! * The offsets live as long as the transport: after a lost connection the reader
//!   reconnects (at once, then every 5 to 250 ms) and goes on from them, so what was
//!   appended meanwhile is delivered, once.
//! * Gaps: Redis trims a stream to about `maxLen` entries whether or not anyone read
//!   them (Node's reader then skips them silently). Ours knows how many entries each
//!   stream had when it started (`entries-added`) and how many it read since; after a
//!   reconnect and after every full batch it compares with `XINFO STREAM` and counts the
//!   entries trimmed before it read them (`stats().stream_missed`, logged). A stream
//!   made anew (Redis restarted without persistence) is read from its start.
//! * Where it reads ([`Locate`]): on the node the standalone transport uses (and where
//!   that moves, a new Sentinel master), or, over a Redis Cluster, on the master that
//!   owns the stream's slot, looked up again at every reconnect.

use super::parse::{info, stream_entries};
use crate::error::Error;
use crate::stats::Counters;
use crate::transport::MessageSink;
use crate::transport::redis::NodeInUse;
use crate::transport::sharded::ShardedTransport;
use crate::transport::streams::StreamsOptions;
use crate::wire::cluster_format::ClusterMessage;
use redis::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// One stream's reading state.
struct Cursor {
    stream: String,
    /// The last id read (or where the stream ended at start).
    offset: String,
    /// Entries added to the stream up to and including `offset` (its `entries-added`
    /// at start, plus every entry read since); `None` when Redis does not say.
    added: Option<u64>,
}

/// Where a reader reads.
pub(super) enum Locate {
    /// The node the other connections use now; the receiver is told when they move to
    /// another (a new Sentinel master): the reader follows.
    Follow(NodeInUse, watch::Receiver<u64>),
    /// The master owning the (one) stream's slot, as the sharded transport's topology
    /// says; read afresh after a lost connection or an error (`MOVED`).
    Slot(Arc<ShardedTransport>),
}

impl Locate {
    /// The client to (re)connect with; `fresh`: after a failure, so a cached topology
    /// is not trusted.
    async fn client(&self, key: &str, fresh: bool) -> Result<redis::Client, Error> {
        match self {
            Locate::Follow(node, _) => Ok(node()),
            Locate::Slot(slots) => slots.client_for_key(key, fresh).await,
        }
    }

    /// Resolves when the other connections moved (never, over a Redis Cluster: the
    /// reader finds out from its own errors).
    async fn moved(&mut self) {
        match self {
            Locate::Follow(_, moved) => {
                if moved.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            Locate::Slot(_) => std::future::pending().await,
        }
    }

    /// Whether the other connections moved since this was last asked.
    fn has_moved(&mut self) -> bool {
        match self {
            Locate::Follow(_, moved) => {
                let changed = moved.has_changed().unwrap_or(false);
                moved.borrow_and_update();
                changed
            }
            Locate::Slot(_) => false,
        }
    }
}

pub(super) struct Reader {
    locate: Locate,
    client: redis::Client,
    cursors: Vec<Cursor>,
    key: String,
    read_count: usize,
    block: Duration,
    connect_timeout: Duration,
    sink: Arc<dyn MessageSink>,
    counters: Arc<Counters>,
}

impl Reader {
    /// Connects and notes where every stream ends now.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start(
        locate: Locate,
        streams: Vec<String>,
        key: &str,
        opts: &StreamsOptions,
        connect_timeout: Duration,
        sink: Arc<dyn MessageSink>,
        counters: Arc<Counters>,
    ) -> Result<Reader, Error> {
        let first = streams.first().cloned().unwrap_or_default();
        let mut this = Reader {
            client: locate.client(&first, false).await?,
            locate,
            cursors: streams
                .into_iter()
                .map(|stream| Cursor {
                    stream,
                    offset: "0-0".into(),
                    added: Some(0),
                })
                .collect(),
            key: key.to_owned(),
            read_count: opts.read_count,
            block: opts.block_time,
            connect_timeout,
            sink,
            counters,
        };
        let mut conn = this.connection().await?;
        for i in 0..this.cursors.len() {
            if let Some(info) = info(&mut conn, &this.cursors[i].stream).await? {
                let c = &mut this.cursors[i];
                c.offset = info.last_id;
                c.added = info.entries_added;
            }
        }
        Ok(this)
    }

    /// A connection whose response timeout outlasts the blocking read.
    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, Error> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.block + self.connect_timeout));
        match tokio::time::timeout(
            self.connect_timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(res) => Ok(res?),
            Err(_) => Err(Error::ConnectTimeout {
                url: crate::wire::redact_url(&self.client.get_connection_info().addr().to_string()),
                timeout: self.connect_timeout,
            }),
        }
    }

    /// Reads until shutdown.
    pub(super) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut delay = Duration::ZERO;
        let mut first = true;
        // Set when the connection must be made anew, perhaps elsewhere: the other
        // connections moved, or (over a Redis Cluster) the read failed.
        let mut relocate = false;
        loop {
            if relocate || self.locate.has_moved() {
                let stream = self.cursors[0].stream.clone();
                match self.locate.client(&stream, true).await {
                    Ok(client) => self.client = client,
                    Err(e) => {
                        tracing::debug!(error = %e, "stream reader: where to read is unknown yet");
                        delay = (delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => continue,
                            _ = shutdown.changed() => return,
                        }
                    }
                }
            }
            let mut conn = match self.connection().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "stream reader: reconnect failed");
                    relocate = matches!(self.locate, Locate::Slot(_));
                    delay = (delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = shutdown.changed() => return,
                    }
                }
            };
            if !first {
                tracing::info!("stream reader reconnected; reading on from its offsets");
                self.check_gaps(&mut conn).await;
            }
            first = false;
            delay = Duration::ZERO;
            loop {
                let mut cmd = redis::cmd("XREAD");
                cmd.arg("BLOCK")
                    .arg(self.block.as_millis() as u64)
                    .arg("COUNT")
                    .arg(self.read_count)
                    .arg("STREAMS");
                for c in &self.cursors {
                    cmd.arg(&c.stream);
                }
                for c in &self.cursors {
                    cmd.arg(&c.offset);
                }
                let reply = tokio::select! {
                    r = cmd.query_async::<Value>(&mut conn) => r,
                    _ = shutdown.changed() => return,
                    // Another master: read there from the same offsets (its replicated
                    // copy of the stream holds the same ids).
                    _ = self.locate.moved() => {
                        tracing::info!("stream reader follows the connections to another node");
                        relocate = true;
                        break;
                    }
                };
                match reply {
                    Ok(v) => {
                        if self.deliver(v) {
                            self.check_gaps(&mut conn).await;
                        }
                    }
                    Err(e) => {
                        Counters::add(&self.counters.reconnects, 1);
                        tracing::warn!(error = %e, "stream reader connection lost; reconnecting");
                        relocate = matches!(self.locate, Locate::Slot(_));
                        break;
                    }
                }
            }
        }
    }

    /// Hands every entry of an `XREAD` reply to the sink; `true` when a stream
    /// returned a full batch (the reader may be behind: check for a gap).
    fn deliver(&mut self, reply: Value) -> bool {
        let mut full = false;
        for (stream, entries) in stream_entries(reply) {
            let Some(c) = self.cursors.iter_mut().find(|c| c.stream == stream) else {
                continue;
            };
            full |= entries.len() >= self.read_count;
            for (id, fields) in entries {
                match ClusterMessage::from_stream_fields(
                    fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
                ) {
                    Ok(msg) => {
                        let channel = format!("{}#{}#", self.key, msg.nsp);
                        self.sink.deliver(&channel, None, &msg.encode());
                    }
                    Err(e) => self.counters.malformed(&stream, &e),
                }
                c.offset = id;
                c.added = c.added.map(|n| n + 1);
            }
        }
        full
    }

    /// Counts (and logs) entries trimmed before this reader got to them.
    async fn check_gaps(&mut self, conn: &mut redis::aio::MultiplexedConnection) {
        for c in &mut self.cursors {
            let Ok(Some(info)) = info(conn, &c.stream).await else {
                continue;
            };
            let (Some(read), Some(added)) = (c.added, info.entries_added) else {
                continue;
            };
            if added < read {
                // Fewer entries ever added than this reader read: the stream was made
                // anew (Redis restarted without persistence, or it was deleted). Its ids
                // are newer than the offset, so all of it is still to be read.
                tracing::info!(stream = %c.stream, "stream was created anew; reading all of it");
                c.added = Some(added.saturating_sub(info.length));
                continue;
            }
            // The first entry still there is number `added - length + 1`; ours is `read`.
            let first = added.saturating_sub(info.length) + 1;
            if first > read + 1 {
                let missed = first - read - 1;
                Counters::add(&self.counters.stream_missed, missed);
                tracing::warn!(
                    stream = %c.stream,
                    missed,
                    "stream entries were trimmed (maxLen) before this server read them: lost"
                );
                // Counted once: go on from the first entry still there.
                c.added = Some(first - 1);
            }
        }
    }
}
