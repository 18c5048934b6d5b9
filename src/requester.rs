//! Issuing cluster-wide requests for one namespace and collecting their replies.
//!
//! Node compat: the number of replies to wait for is `PUBSUB NUMSUB
//! <key>-request#<nsp>#` minus this server (every server, Node or Rust, subscribes to that
//! channel), so a call returns as soon as every server answered and only waits for the
//! timeout when one does not.

use crate::Cluster;
use crate::channel::Channels;
use crate::correlation::{End, Pending, PendingTable};
use crate::error::{Error, Partial};
use crate::stats::Counters;
use crate::transport::Mode;
use crate::wire::request::{Request, Response};
use bytes::Bytes;
use std::sync::Arc;

/// The non-generic half of a namespace adapter: channels, pending requests, publishing.
pub(crate) struct Requester {
    pub cluster: Cluster,
    pub channels: Channels,
    pub nsp: String,
    pub pending: Arc<PendingTable>,
    /// `<key>-response#<nsp>#<uid>#`.
    pub own_response: String,
    /// This server's uid as text (compared against every received message).
    uid: String,
}

/// The replies of one request.
pub(crate) struct Gathered {
    pub replies: Vec<Response>,
    pub expected: usize,
    /// Hung peers that were not waited for.
    pub hung: Vec<String>,
    pub end: End,
}

impl Gathered {
    /// `Ok(replies)` when complete, else the timeout error with `partial`.
    pub fn into_result<T>(
        self,
        operation: &'static str,
        req: &Requester,
        convert: impl FnOnce(Vec<Response>) -> T,
        partial: impl FnOnce(&T) -> Partial,
    ) -> Result<T, Error> {
        let received = self.replies.len();
        let out = convert(self.replies);
        match self.end {
            End::Complete if self.hung.is_empty() => Ok(out),
            End::Complete => Err(Error::Unresponsive {
                operation,
                servers: self.hung,
                received,
                partial: partial(&out),
            }),
            End::Lost if req.cluster.is_closed() => Err(Error::Closed),
            End::Lost => Err(Error::Disconnected),
            End::TimedOut => Err(Error::Timeout {
                operation,
                expected: self.expected,
                received,
                timeout: req.timeout(),
                partial: partial(&out),
            }),
        }
    }
}

impl Requester {
    pub fn new(cluster: Cluster, nsp: &str) -> Self {
        let channels = Channels::new(cluster.options().get_key(), nsp);
        let uid = cluster.uid().to_string();
        let own_response = channels.response_for(&uid);
        Self {
            uid,
            cluster,
            channels,
            nsp: nsp.to_owned(),
            pending: Arc::new(PendingTable::default()),
            own_response,
        }
    }

    pub fn uid(&self) -> String {
        self.uid.clone()
    }

    pub fn uid_str(&self) -> &str {
        &self.uid
    }

    pub fn timeout(&self) -> std::time::Duration {
        self.cluster.options().get_requests_timeout()
    }

    /// Queues a request on the namespace's request channel (its replies tell whether it
    /// arrived).
    pub async fn send(&self, req: &Request) -> Result<(), Error> {
        self.publish(req, Mode::Queued).await
    }

    /// Publishes a request that gets no reply (join, leave, disconnect, server-side emit)
    /// and waits until Redis accepted it: a lost command is an error for the caller, and
    /// every request published after this returns is ordered after it on all servers.
    pub async fn send_confirmed(&self, req: &Request) -> Result<(), Error> {
        self.publish(req, Mode::Confirmed).await
    }

    async fn publish(&self, req: &Request, mode: Mode) -> Result<(), Error> {
        let channel = self.channels.request().to_owned();
        let bytes = Bytes::from(req.encode());
        self.cluster.transport().publish(channel, bytes, mode).await
    }

    /// Servers subscribed to this namespace's request channel, this one included.
    pub async fn server_count(&self) -> Result<usize, Error> {
        let n = self
            .cluster
            .transport()
            .num_sub(vec![self.channels.request().to_owned()])
            .await?;
        Ok(n.first().copied().unwrap_or(0).max(1))
    }

    /// How many other servers to wait for, and which of our peers are hung: stale
    /// (no heartbeat) yet still subscribed, asked in the same `PUBSUB NUMSUB`.
    pub async fn others(&self) -> Result<(usize, Vec<String>), Error> {
        let opts = self.cluster.options();
        let liveness = &self.cluster.inner.liveness;
        let stale = liveness.stale(opts.heartbeat_timeout);
        let live = if opts.count_peers_only {
            liveness.live(opts.heartbeat_timeout)
        } else {
            Vec::new()
        };
        let mut channels = vec![self.channels.request().to_owned()];
        channels.extend(
            stale
                .iter()
                .chain(&live)
                .map(|uid| self.channels.response_for(uid)),
        );
        let counts = self.cluster.transport().num_sub(channels).await?;
        let subscribed = |i: usize| counts.get(1 + i).copied().unwrap_or(0) > 0;
        let hung: Vec<String> = (0..stale.len())
            .filter(|&i| subscribed(i))
            .map(|i| stale[i].clone())
            .collect();
        let expected = if opts.count_peers_only {
            // Live peers of ours that have this namespace.
            (0..live.len())
                .filter(|&i| subscribed(stale.len() + i))
                .count()
        } else {
            // Node's rule: every subscriber of the request channel but us, minus hung peers.
            counts
                .first()
                .copied()
                .unwrap_or(0)
                .saturating_sub(1 + hung.len())
        };
        Ok((expected, hung))
    }

    /// Registers a request, publishes it and gathers one counted reply per other server.
    pub async fn ask(
        &self,
        build: impl FnOnce(String) -> Request,
        counts: impl Fn(&Response) -> bool,
    ) -> Result<Gathered, Error> {
        let (expected, hung) = self.others().await?;
        if expected == 0 && hung.is_empty() {
            return Ok(Gathered {
                replies: Vec::new(),
                expected,
                hung,
                end: End::Complete,
            });
        }
        let mut pending = self.pending.register();
        self.send(&build(pending.id.clone())).await?;
        let (replies, end) = pending.gather(expected, self.timeout(), counts).await;
        Ok(Gathered {
            replies,
            expected,
            hung,
            end,
        })
    }

    /// Registers a request id without sending anything (broadcast with acks).
    pub fn register(&self) -> Pending {
        self.pending.register()
    }

    /// A reply arrived on one of our response channels.
    pub fn on_response(&self, payload: &[u8]) {
        match Response::decode(payload) {
            // Replies to other servers' requests also arrive on the shared channel.
            Ok(res) => {
                self.pending.route(res);
            }
            Err(e) => {
                Counters::add(&self.cluster.inner.counters.malformed, 1);
                crate::adapter::log_malformed(self.channels.response(), &e.0);
            }
        }
    }

    /// Sends a reply to `requester` (a uid, when the request carried one).
    pub fn respond(&self, requester: Option<&str>, bytes: Vec<u8>) {
        let channel = match requester {
            Some(uid) if self.cluster.options().specific_response_channel => {
                self.channels.response_for(uid)
            }
            _ => self.channels.response().to_owned(),
        };
        self.respond_on(channel, bytes);
    }

    /// Sends a reply on `channel` without blocking the subscriber task.
    pub fn respond_on(&self, channel: String, bytes: Vec<u8>) {
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            if let Err(e) = cluster
                .transport()
                .publish(channel, Bytes::from(bytes), Mode::Queued)
                .await
            {
                tracing::warn!(error = %e, "cluster adapter: reply not sent");
            }
        });
    }
}
