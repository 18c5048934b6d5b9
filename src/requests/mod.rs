//! The request side of one namespace: its channels and identity, the table of requests
//! in flight, and publishing requests, confirmed commands and replies.
//!
//! Node compat: the number of replies to wait for is `PUBSUB NUMSUB
//! <key>-request#<nsp>#` minus this server (every server, Node or Rust, subscribes to that
//! channel), so a call returns as soon as every server answered and only waits for the
//! timeout when one does not.
//!
//! * `gather`: how the replies of one request end up as a result or an error;
//! * `ops`: the cluster-wide queries built on it (REMOTE_FETCH, ALL_ROOMS).

mod gather;
mod ops;

pub(crate) use gather::Gathered;
pub(crate) use ops::{remote_all_rooms, remote_fetch};

use crate::correlation::{Pending, PendingTable};
use crate::error::Error;
use crate::options::Protocol;
use crate::replies::ReplyEncoder;
use crate::shared::Shared;
use crate::transport::Mode;
use crate::wire::channel::Channels;
use crate::wire::cluster_format::{ClusterMessage, Incoming, ShardedChannels, SubscriptionMode};
use crate::wire::request::{Request, Response};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// The non-generic core of a namespace adapter, shared by its `CoreAdapter` side (what
/// this server asks) and its answering side (what it replies).
pub(crate) struct NsCore {
    nsp: String,
    channels: Channels,
    /// With the sharded protocol: its channels and mode.
    sharded: Option<(ShardedChannels, SubscriptionMode)>,
    /// `<key>-response#<nsp>#<uid>#`.
    own_response: String,
    pending: Arc<PendingTable>,
    shared: Shared,
    /// Live peers serving this namespace, and when that was counted: broadcasts ask
    /// for every message, heartbeats change it every few seconds.
    live_peers: std::sync::Mutex<Option<(std::time::Instant, usize)>>,
}

/// How long a count of live peers is reused.
const LIVE_PEERS_FOR: Duration = Duration::from_millis(100);

impl NsCore {
    pub(crate) fn new(shared: Shared, nsp: &str) -> Self {
        let channels = Channels::new(shared.config.key(), nsp);
        let sharded = match shared.config.protocol() {
            Protocol::Classic => None,
            Protocol::Sharded(mode) => Some((ShardedChannels::new(shared.config.key(), nsp), mode)),
            // The streams adapter's channels are the sharded static ones (on classic
            // pub/sub); the transport puts what belongs there in the stream.
            Protocol::Streams => Some((
                ShardedChannels::new(shared.config.key(), nsp),
                SubscriptionMode::Static,
            )),
        };
        let own_response = match &sharded {
            Some((c, _)) => c.response_for(&shared.uid),
            None => channels.response_for(&shared.uid),
        };
        Self {
            nsp: nsp.to_owned(),
            channels,
            sharded,
            own_response,
            pending: Arc::new(PendingTable::default()),
            shared,
            live_peers: std::sync::Mutex::new(None),
        }
    }

    /// The namespace's path.
    pub(crate) fn nsp(&self) -> &str {
        &self.nsp
    }

    /// This server's uid.
    pub(crate) fn uid(&self) -> &str {
        &self.shared.uid
    }

    /// The namespace's channel names (classic protocol).
    pub(crate) fn channels(&self) -> &Channels {
        &self.channels
    }

    /// The sharded protocol's channels and mode, when it is the one spoken.
    pub(crate) fn sharded(&self) -> Option<&(ShardedChannels, SubscriptionMode)> {
        self.sharded.as_ref()
    }

    /// Where requests go (and what counts servers): `<key>-request#<nsp>#`, or the
    /// sharded main channel `<key>#<nsp>#`.
    pub(crate) fn request_channel(&self) -> &str {
        match &self.sharded {
            Some((c, _)) => c.main(),
            None => self.channels.request(),
        }
    }

    /// How replies are written on the wire (classic bytes, or ClusterAdapter envelopes).
    pub(crate) fn reply_encoder(&self) -> ReplyEncoder {
        ReplyEncoder::new(
            self.sharded
                .as_ref()
                .map(|_| (self.shared.uid.clone(), self.nsp.clone())),
        )
    }

    /// This server's own response channel for the namespace.
    pub(crate) fn own_response(&self) -> &str {
        &self.own_response
    }

    /// The parts of the cluster handle.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Requests of this namespace in flight.
    pub(crate) fn pending(&self) -> &PendingTable {
        &self.pending
    }

    /// How long a request waits for replies.
    pub(crate) fn timeout(&self) -> Duration {
        self.shared.config.requests_timeout()
    }

    /// Publishes a request that gets no reply (join, leave, disconnect, server-side emit)
    /// and waits until Redis accepted it: a lost command is an error for the caller, and
    /// every request published after this returns is ordered after it on all servers.
    pub(crate) async fn send_confirmed(&self, req: &Request) -> Result<(), Error> {
        self.publish(req, Mode::Confirmed).await.map(|_| ())
    }

    /// Publishes a request and waits for Redis' answer. With [`Mode::Counted`]: how many
    /// subscribe to the request channel (this server included), which Node asks with a
    /// `PUBSUB NUMSUB` of its own first; here it travels in the same pipeline.
    async fn publish(&self, req: &Request, mode: Mode) -> Result<usize, Error> {
        let channel = self.request_channel().to_owned();
        let bytes = match &self.sharded {
            None => Bytes::from(req.encode()),
            Some(_) => {
                let msg = ClusterMessage::from_request(req, &self.shared.uid, &self.nsp).ok_or(
                    Error::Unsupported("this request has no counterpart in the sharded protocol"),
                )?;
                Bytes::from(msg.encode())
            }
        };
        let expect = self.live_receivers();
        let n = self
            .shared
            .transport
            .publish(channel, bytes, mode, expect)
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Subscriber connections a message of this namespace should reach: this server's
    /// own (when connected) and every live peer of ours that serves the namespace.
    pub(crate) fn live_receivers(&self) -> usize {
        let mut cached = self.live_peers.lock().unwrap_or_else(|p| p.into_inner());
        let peers = match *cached {
            Some((at, n)) if at.elapsed() < LIVE_PEERS_FOR => n,
            _ => {
                let timeout = self.shared.config.heartbeat_timeout();
                let n = self.shared.liveness.live_serving(&self.nsp, timeout);
                *cached = Some((std::time::Instant::now(), n));
                n
            }
        };
        peers + usize::from(self.shared.transport.is_connected())
    }

    /// Where replies to `requester` go: its own channel when it is known and this server
    /// publishes on specific response channels (Node:
    /// `publishOnSpecificResponseChannel`), else the shared one.
    pub(crate) fn reply_channel(&self, requester: Option<&str>) -> String {
        if let Some((c, _)) = &self.sharded {
            // Node compat: the sharded adapter answers on the requester's own channel.
            return c.response_for(requester.unwrap_or_default());
        }
        match requester {
            Some(uid) if self.shared.config.publish_on_specific_response_channel() => {
                self.channels.response_for(uid)
            }
            _ => self.channels.response().to_owned(),
        }
    }

    /// Queues a reply to `requester` (a uid, when the request carried one) on the reply
    /// queue; never waits (see `replies.rs`).
    pub(crate) fn reply(&self, requester: Option<&str>, bytes: Vec<u8>) {
        if self.sharded.is_some() && requester.is_none() {
            // Nobody to answer: a ClusterAdapter requester always says who it is.
            return self
                .shared
                .counters
                .reply_dropped(self.request_channel(), &"request without uid");
        }
        let Some(bytes) = self.reply_encoder().encode(bytes) else {
            return;
        };
        self.shared
            .replies
            .send(self.reply_channel(requester), bytes);
    }

    /// Servers subscribed to this namespace's request channel, this one included.
    pub(crate) async fn server_count(&self) -> Result<usize, Error> {
        let n = self
            .shared
            .transport
            .num_sub(vec![self.request_channel().to_owned()])
            .await?;
        Ok(n.first().copied().unwrap_or(0).max(1))
    }

    /// Peers of ours that are hung (stale: no heartbeat, yet still subscribed to their
    /// response channel), and with [`count_peers_only`](crate::ClusterOptions::count_peers_only)
    /// the live peers subscribed to this namespace. Asks `PUBSUB NUMSUB` only when there
    /// is something to ask: usually nobody is stale.
    async fn peers(&self) -> Result<(Vec<String>, Option<usize>), Error> {
        let config = &self.shared.config;
        let liveness = &self.shared.liveness;
        let stale = liveness.stale(config.heartbeat_timeout());
        let live = if config.count_peers_only() {
            liveness.live(config.heartbeat_timeout())
        } else {
            Vec::new()
        };
        if stale.is_empty() && !config.count_peers_only() {
            return Ok((Vec::new(), None));
        }
        // A peer subscribes to its own response channel (sharded: `<key>#<nsp>#<uid>#`).
        let channels: Vec<String> = stale
            .iter()
            .chain(&live)
            .map(|uid| match &self.sharded {
                Some((c, _)) => c.response_for(uid),
                None => self.channels.response_for(uid),
            })
            .collect();
        let counts = self.shared.transport.num_sub(channels).await?;
        let subscribed = |i: usize| counts.get(i).copied().unwrap_or(0) > 0;
        let hung: Vec<String> = (0..stale.len())
            .filter(|&i| subscribed(i))
            .map(|i| stale[i].clone())
            .collect();
        let peers_only = config.count_peers_only().then(|| {
            (0..live.len())
                .filter(|&i| subscribed(stale.len() + i))
                .count()
        });
        Ok((hung, peers_only))
    }

    /// Publishes a request (the caller registered `id` before) and says how many other
    /// servers will answer it, and which peers are hung.
    pub(crate) async fn publish_request(
        &self,
        req: &Request,
    ) -> Result<(usize, Vec<String>), Error> {
        // Replies can only arrive on a subscriber connection that is up.
        if !self.shared.transport.is_connected() {
            return Err(self.lost_error());
        }
        let (hung, peers_only) = self.peers().await?;
        let subscribers = self.publish(req, Mode::Counted).await?;
        // Node's rule: every subscriber of the request channel but us, minus hung peers.
        let expected = peers_only.unwrap_or_else(|| subscribers.saturating_sub(1 + hung.len()));
        Ok((expected, hung))
    }

    /// Registers a request, publishes it and gathers one counted reply per other server.
    pub(crate) async fn ask(
        &self,
        build: impl FnOnce(String) -> Request,
        counts: impl Fn(&Response) -> bool,
    ) -> Result<Gathered, Error> {
        let mut pending = self.pending.register();
        let (expected, hung) = self.publish_request(&build(pending.id.clone())).await?;
        if expected == 0 && hung.is_empty() {
            return Ok(Gathered::nothing_to_wait_for());
        }
        let (replies, end) = pending.gather(expected, self.timeout(), counts).await;
        Ok(Gathered::new(replies, expected, hung, end))
    }

    /// Registers a request id without sending anything (broadcast with acks).
    pub(crate) fn register(&self) -> Pending {
        self.pending.register()
    }

    /// A reply arrived on one of our response channels.
    pub(crate) fn on_response(&self, payload: &[u8]) {
        if self.sharded.is_some() {
            return match ClusterMessage::decode(payload).and_then(ClusterMessage::into_incoming) {
                Ok(Incoming::Response(res)) => {
                    self.pending.route(res);
                }
                Ok(_) => {}
                Err(e) => self.shared.counters.malformed(&self.own_response, &e.0),
            };
        }
        // Most replies on the shared channel answer other servers: skip them unread.
        if let Some(id) = Response::peek_request_id(payload)
            && !self.pending.contains(id)
        {
            return;
        }
        match Response::decode(payload) {
            // Replies to other servers' requests also arrive on the shared channel.
            Ok(res) => {
                self.pending.route(res);
            }
            Err(e) => self
                .shared
                .counters
                .malformed(self.channels.response(), &e.0),
        }
    }

    /// Ends this namespace's requests in flight (connection lost, or close).
    pub(crate) fn fail_pending(&self) {
        self.pending.fail_all();
    }

    /// Whether `End::Lost` means closed rather than disconnected.
    pub(crate) fn lost_error(&self) -> Error {
        if self.shared.is_closed() {
            Error::Closed
        } else {
            Error::Disconnected
        }
    }
}

impl std::fmt::Debug for NsCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NsCore")
            .field("nsp", &self.nsp)
            .field("uid", &self.shared.uid)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}
