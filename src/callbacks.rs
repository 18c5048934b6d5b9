//! The registry of the application's callbacks: server-side event handlers,
//! custom-request hooks, one-shot waiters (`wait_server_side`) and socket describers,
//! per namespace. One place, so that [`Callbacks::clear`] drops them all on close.
//!
//! Callbacks that run on the subscriber task (handlers, waiter matchers, describers) are
//! [`guarded`]: a panic in application code must not stop the server from receiving.
//! Custom-request hooks are async and run on a task of their own.

use crate::server_side::{CUSTOM_REQUEST_EVENT, ServerSideEvent};
use crate::socket_info::{Describer, SocketDetails};
use crate::transport::BoxFuture;
use dashmap::DashMap;
use rmpv::Value;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

/// A server-side event handler.
pub(crate) type Handler = Arc<dyn Fn(&ServerSideEvent) + Send + Sync>;
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

/// Every callback of the application, per namespace: server-side event handlers,
/// custom-request hooks, one-shot waiters and socket describers.
#[derive(Default)]
pub(crate) struct Callbacks {
    handlers: DashMap<(String, String), Vec<Handler>>,
    hooks: DashMap<String, Hook>,
    waiters: Mutex<Vec<Waiter>>,
    describers: DashMap<String, Describer>,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Callbacks {
    pub(crate) fn on(&self, nsp: &str, event: &str, f: Handler) {
        self.handlers
            .entry((nsp.to_owned(), event.to_owned()))
            .or_default()
            .push(f);
    }

    pub(crate) fn set_hook(&self, nsp: &str, hook: Hook) {
        self.hooks.insert(nsp.to_owned(), hook);
    }

    pub(crate) fn hook(&self, nsp: &str) -> Option<Hook> {
        self.hooks.get(nsp).map(|h| h.clone())
    }

    /// Registers a waiter; the receiver gets the arguments of the first match.
    pub(crate) fn wait(
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

    pub(crate) fn cancel_wait(&self, id: u64) {
        lock(&self.waiters).retain(|w| w.id != id);
    }

    pub(crate) fn waiter_count(&self) -> usize {
        lock(&self.waiters).len()
    }

    /// Delivers an event to waiters and handlers.
    pub(crate) fn dispatch(&self, ev: ServerSideEvent) {
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

    /// Sets how this server describes its sockets of `nsp` to `fetchSockets`.
    pub(crate) fn set_describer(&self, nsp: &str, describe: Describer) {
        self.describers.insert(nsp.to_owned(), describe);
    }

    /// How this server describes its sockets of `nsp`: looked up once per fetch, then
    /// called per socket through [`describe`].
    pub(crate) fn describer(&self, nsp: &str) -> Option<Describer> {
        self.describers.get(nsp).map(|d| d.clone())
    }

    /// Drops every callback at once (on close: they may hold the `SocketIo`, which holds
    /// the cluster; waiters then end with `Error::Closed`).
    pub(crate) fn clear(&self) {
        self.handlers.clear();
        self.hooks.clear();
        self.describers.clear();
        lock(&self.waiters).clear();
    }
}

/// The [`SocketDetails`] of local socket `id`: what `describer` says (guarded: a panic
/// gives the defaults), or the defaults without one.
pub(crate) fn describe(describer: Option<&Describer>, id: &str) -> SocketDetails {
    describer
        .and_then(|d| guarded("describe_sockets", || d(id)))
        .unwrap_or_default()
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
