//! Server-side events: messages between servers, wire-compatible with Node's
//! `io.serverSideEmit(event, ...args)` and `io.on(event, (...args, ack) => ...)`.
//!
//! socketioxide has no server-side events; handlers are registered on the cluster handle
//! per namespace (`cluster.of("/").on_server_side(..)`).

use crate::Cluster;
use crate::error::Error;
use crate::transport::{BoxFuture, Mode};
use crate::wire::request::Response;
use bytes::Bytes;
use dashmap::DashMap;
use rmpv::Value;
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The reserved server-side event that carries `custom_request` (see PROTOCOL.md).
/// A Node server answers it with `io.on(CUSTOM_REQUEST_EVENT, (data, cb) => cb(reply))`.
pub const CUSTOM_REQUEST_EVENT: &str = "socketioxide-cluster:custom-request";

/// One server-side event received from another server (or an emitter).
pub struct ServerSideEvent {
    /// Namespace it was sent on.
    pub nsp: String,
    /// Event name.
    pub event: String,
    /// Arguments after the event name. JSON travels between servers, so binaries arrive
    /// as `{"type":"Buffer","data":[..]}` maps (Node behaves the same).
    pub args: Vec<Value>,
    ack: Option<Acker>,
}

impl std::fmt::Debug for ServerSideEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSideEvent")
            .field("nsp", &self.nsp)
            .field("event", &self.event)
            .field("args", &self.args)
            .field("wants_ack", &self.ack.is_some())
            .finish()
    }
}

impl ServerSideEvent {
    /// Argument `i` deserialized as `T`.
    pub fn arg<T: DeserializeOwned>(&self, i: usize) -> Result<T, Error> {
        let v = self.args.get(i).cloned().unwrap_or(Value::Nil);
        rmpv::ext::from_value(v).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Whether the sender waits for an acknowledgement.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Answers the sender (only the first answer counts, as in Node). Does nothing when
    /// the sender did not ask for one.
    pub fn ack(&self, reply: impl serde::Serialize) {
        if let Some(acker) = &self.ack {
            let encoded = rmp_serde::to_vec_named(&reply)
                .map_err(|e| e.to_string())
                .and_then(|b| crate::codec::decode(&b).map_err(|e| e.0));
            match encoded {
                Ok(v) => acker.send(&v),
                Err(e) => tracing::warn!(error = %e, "server-side ack could not be encoded"),
            }
        }
    }
}

/// Sends the one acknowledgement of a server-side emit.
#[derive(Clone)]
pub(crate) struct Acker {
    pub cluster: Cluster,
    /// Node compat: server-side acks always go to the shared response channel.
    pub channel: String,
    pub request_id: String,
    pub sent: Arc<AtomicBool>,
}

impl Acker {
    pub fn send(&self, v: &Value) {
        if self.sent.swap(true, Ordering::AcqRel) {
            return;
        }
        let bytes = Bytes::from(Response::encode_server_side_ack(&self.request_id, v));
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this
                .cluster
                .transport()
                .publish(this.channel, bytes, Mode::Queued)
                .await
            {
                tracing::warn!(error = %e, "server-side ack not sent");
            }
        });
    }
}

type Handler = Arc<dyn Fn(&ServerSideEvent) + Send + Sync>;
/// An async custom-request hook.
pub(crate) type Hook = Arc<dyn Fn(Value) -> BoxFuture<'static, Value> + Send + Sync>;

/// Which events a waiter wants.
pub(crate) type Matcher = Box<dyn Fn(&[Value]) -> bool + Send + Sync>;

struct Waiter {
    id: u64,
    nsp: String,
    event: String,
    pred: Matcher,
    tx: Option<oneshot::Sender<Vec<Value>>>,
}

/// Handlers, custom-request hooks and one-shot waiters, per namespace.
#[derive(Default)]
pub(crate) struct ServerSide {
    handlers: DashMap<(String, String), Vec<Handler>>,
    hooks: DashMap<String, Hook>,
    waiters: Mutex<Vec<Waiter>>,
    next: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ServerSide {
    pub fn on(&self, nsp: &str, event: &str, f: Handler) {
        self.handlers
            .entry((nsp.to_owned(), event.to_owned()))
            .or_default()
            .push(f);
    }

    pub fn set_hook(&self, nsp: &str, hook: Hook) {
        self.hooks.insert(nsp.to_owned(), hook);
    }

    pub fn hook(&self, nsp: &str) -> Option<Hook> {
        self.hooks.get(nsp).map(|h| h.clone())
    }

    /// Registers a waiter; the receiver gets the arguments of the first match.
    pub fn wait(
        &self,
        nsp: &str,
        event: &str,
        pred: Matcher,
    ) -> (u64, oneshot::Receiver<Vec<Value>>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.waiters).push(Waiter {
            id,
            nsp: nsp.to_owned(),
            event: event.to_owned(),
            pred,
            tx: Some(tx),
        });
        (id, rx)
    }

    pub fn cancel_wait(&self, id: u64) {
        lock(&self.waiters).retain(|w| w.id != id);
    }

    pub fn waiter_count(&self) -> usize {
        lock(&self.waiters).len()
    }

    /// Delivers an event to waiters and handlers.
    pub fn dispatch(&self, ev: ServerSideEvent) {
        {
            let mut waiters = lock(&self.waiters);
            waiters.retain_mut(|w| {
                if w.nsp == ev.nsp
                    && w.event == ev.event
                    && guarded("wait_server_side matcher", || (w.pred)(&ev.args)).unwrap_or(false)
                {
                    if let Some(tx) = w.tx.take() {
                        let _ = tx.send(ev.args.clone());
                    }
                    false
                } else {
                    true
                }
            });
        }
        if ev.event == CUSTOM_REQUEST_EVENT {
            if let Some(ack) = ev.ack.clone() {
                let hook = self.hooks.get(&ev.nsp).map(|h| h.clone());
                let data = ev.args.first().cloned().unwrap_or(Value::Nil);
                tokio::spawn(async move {
                    // Node compat (socket.io-redis 5.x): without a hook the reply is null.
                    let reply = match hook {
                        Some(hook) => hook(data).await,
                        None => Value::Nil,
                    };
                    ack.send(&reply);
                });
            }
            return;
        }
        let handlers = self
            .handlers
            .get(&(ev.nsp.clone(), ev.event.clone()))
            .map(|h| h.clone())
            .unwrap_or_default();
        for h in handlers {
            let _ = guarded("server-side event handler", || h(&ev));
        }
    }

    /// Drops every handler, hook and waiter (on close: they may hold the `SocketIo`,
    /// which holds the cluster; waiters then end with `Error::Closed`).
    pub fn clear(&self) {
        self.handlers.clear();
        self.hooks.clear();
        lock(&self.waiters).clear();
    }
}

/// Runs application code on the subscriber task: a panic there must not end the task
/// (the server would stop receiving for good). Logged; `None` when it panicked.
pub(crate) fn guarded<T>(what: &'static str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::error!("cluster adapter: the application's {what} panicked; skipped");
            None
        }
    }
}

/// Builds the event handed to handlers.
pub(crate) fn event(
    nsp: &str,
    mut data: Vec<Value>,
    ack: Option<Acker>,
) -> Option<ServerSideEvent> {
    if data.is_empty() {
        return None;
    }
    let event = match data.remove(0) {
        Value::String(s) => s.into_str()?,
        _ => return None,
    };
    Some(ServerSideEvent {
        nsp: nsp.to_owned(),
        event,
        args: data,
        ack,
    })
}
