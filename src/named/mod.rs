//! Named servers: requests to one or every live member of a name, from a server or an
//! emitter, answered by handlers the application registers per event
//! ([`Namespace::on_named`](crate::Namespace::on_named)).
//!
//! * **Members**: each server announces its names (`ClusterOptions::name`) in its
//!   heartbeats; the live members of a name are the servers heard from within the
//!   heartbeat timeout that announce it (this one included). A uid is always its own
//!   server's name.
//! * **Wire** (`wire::named`): one channel per server, `<key>-named#<uid>#`, JSON; Node
//!   servers never subscribe to it. A request goes to the chosen member's channel, its
//!   reply to the requester's.
//! * **One of a name**: round robin over the live members (sorted by uid), one step per
//!   call; a member that stopped heartbeating drops out after the heartbeat timeout. A
//!   member that does not answer within the timeout is reported
//!   ([`Error::NoAnswer`](crate::Error::NoAnswer)); the next call goes to the next one.
//! * **Deadlines**: a request or event may carry a time to live; a member that reads it
//!   after its deadline drops it (`stats().named_expired`) instead of doing late work.
//!   Deadlines are wall-clock microseconds of the sender: keep clocks in sync (NTP).
//! * **Handlers** run on tasks of their own, at most [`MAX_RUNNING`] at once per server
//!   (then requests are answered "busy" and counted in `stats().named_dropped`), never on
//!   the subscriber task.

pub use crate::wire::named::{Ask, NamedReply, NamedRequest};

use crate::liveness::Liveness;
use crate::stats::Counters;
use crate::transport::{BoxFuture, Mode, Transport};
use crate::wire::named::{Incoming, NamedMessage, channel, now_us};
use dashmap::DashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Handlers running at once on one server.
pub const MAX_RUNNING: usize = 256;

type Handler = Arc<
    dyn Fn(NamedRequest) -> BoxFuture<'static, Result<serde_json::Value, String>> + Send + Sync,
>;

pub(crate) struct Named {
    key: String,
    pub(crate) uid: String,
    names: Vec<String>,
    transport: Arc<dyn Transport>,
    liveness: Arc<Liveness>,
    counters: Arc<Counters>,
    heartbeat_timeout: Duration,
    pub(crate) requests_timeout: Duration,
    handlers: DashMap<(String, String), Handler>,
    pending: DashMap<String, mpsc::Sender<NamedReply>>,
    /// Per name, the next member to ask.
    next: Mutex<std::collections::HashMap<String, usize>>,
    running: Arc<Semaphore>,
}

impl Named {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key: &str,
        uid: &str,
        names: &[String],
        transport: Arc<dyn Transport>,
        liveness: Arc<Liveness>,
        counters: Arc<Counters>,
        heartbeat_timeout: Duration,
        requests_timeout: Duration,
    ) -> Named {
        Named {
            key: key.to_owned(),
            uid: uid.to_owned(),
            names: names.to_vec(),
            transport,
            liveness,
            counters,
            heartbeat_timeout,
            requests_timeout,
            handlers: DashMap::new(),
            pending: DashMap::new(),
            next: Mutex::default(),
            running: Arc::new(Semaphore::new(MAX_RUNNING)),
        }
    }

    /// This server's channel.
    pub(crate) fn own_channel(&self) -> String {
        channel(&self.key, &self.uid)
    }

    /// The live members of `name`, sorted (this server included when it has the name).
    pub(crate) fn members(&self, name: &str) -> Vec<String> {
        let mut m = self.liveness.members(name, self.heartbeat_timeout);
        if self.uid == name || self.names.iter().any(|n| n == name) {
            m.push(self.uid.clone());
            m.sort();
        }
        m
    }

    /// The member the next one-of call to `name` goes to.
    pub(crate) fn pick(&self, members: &[String], name: &str) -> Option<String> {
        if members.is_empty() {
            return None;
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let i = next.entry(name.to_owned()).or_insert(0);
        let chosen = members[*i % members.len()].clone();
        *i = i.wrapping_add(1);
        Some(chosen)
    }

    pub(crate) fn on(&self, nsp: &str, event: &str, h: Handler) {
        self.handlers.insert((nsp.to_owned(), event.to_owned()), h);
    }

    /// A message on this server's channel (the subscriber task: never waits).
    pub(crate) fn on_message(self: &Arc<Self>, payload: &[u8]) {
        let msg = match NamedMessage::decode(payload) {
            Ok(m) => m,
            Err(e) => return self.counters.malformed(&self.own_channel(), &e),
        };
        if msg.expired(now_us()) {
            Counters::add(&self.counters.named_expired, 1);
            return;
        }
        let (id, nsp, req) = match msg.into_incoming() {
            Incoming::Reply { id, reply } => {
                if let Some(tx) = self.pending.get(&id).map(|t| t.clone()) {
                    let _ = tx.try_send(reply);
                }
                return;
            }
            Incoming::Request { id, nsp, req } => (id, nsp, req),
        };
        let ev = req.event.clone();
        let handler = self.handlers.get(&(nsp, ev.clone())).map(|h| h.clone());
        let reply_to = channel(&self.key, &req.from);
        let Some(handler) = handler else {
            if let Some(id) = id {
                self.reply(reply_to, id, Err(format!("no handler for {ev:?} here")));
            }
            return;
        };
        let Ok(permit) = self.running.clone().try_acquire_owned() else {
            Counters::add(&self.counters.named_dropped, 1);
            if let Some(id) = id {
                self.reply(reply_to, id, Err("busy".into()));
            }
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let res = handler(req).await;
            drop(permit);
            if let Some(id) = id {
                this.reply(reply_to, id, res);
            }
        });
    }

    fn reply(
        self: &Arc<Self>,
        channel: String,
        id: String,
        res: Result<serde_json::Value, String>,
    ) {
        let bytes = NamedMessage::reply(id, self.uid.clone(), res).encode();
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this
                .transport
                .publish(channel.clone(), bytes.into(), Mode::Queued, 0)
                .await
            {
                this.counters.reply_dropped(&channel, &e);
            }
        });
    }

    /// Publishes `msg` to `uid`'s channel.
    pub(crate) async fn send(&self, uid: &str, msg: &NamedMessage) -> Result<(), crate::Error> {
        self.transport
            .publish(
                channel(&self.key, uid),
                msg.encode().into(),
                Mode::Confirmed,
                0,
            )
            .await
            .map(|_| ())
    }

    pub(crate) fn register(&self, id: &str, capacity: usize) -> mpsc::Receiver<NamedReply> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.pending.insert(id.to_owned(), tx);
        rx
    }

    pub(crate) fn done(&self, id: &str) {
        self.pending.remove(id);
    }
}
