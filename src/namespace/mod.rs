//! The classic adapter API of one namespace, cluster-wide: what Node users know as
//! `adapter.allRooms()`, `fetchSockets()`, `remoteJoin`, `serverSideEmit`, `customRequest`…
//!
//! Socket ids are strings here, so Node sockets of a mixed cluster (20-character ids that
//! socketioxide's `Sid` cannot hold) are included. [`Namespace::sid_for`] and
//! [`Namespace::socket_id`] translate between them and the stand-in `Sid`s that
//! socketioxide's own API (`io.fetch_sockets()`) gives Node sockets; the calls taking
//! an id accept a stand-in's text too.

use crate::callbacks::Callbacks;
use crate::error::{Error, Partial};
use crate::packet::{args_of, to_value};
use crate::requests::{remote_all_rooms, remote_fetch};
use crate::router::{NsOps, Router};
use crate::server_side::{CUSTOM_REQUEST_EVENT, ServerSideEvent};
use crate::socket_info::{SocketDetails, SocketInfo};
use crate::wire::request::{Request, Selector, kind};
use rmpv::Value;
use serde::Serialize;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

mod ids;
mod named;

/// Cluster-wide operations on one namespace. Get it with [`Cluster::of`](crate::Cluster::of).
#[derive(Clone)]
pub struct Namespace {
    router: Arc<Router>,
    callbacks: Arc<Callbacks>,
    nsp: String,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace").field("nsp", &self.nsp).finish()
    }
}

impl Namespace {
    pub(crate) fn new(router: Arc<Router>, callbacks: Arc<Callbacks>, nsp: &str) -> Self {
        Self {
            router,
            callbacks,
            nsp: nsp.to_owned(),
        }
    }

    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    fn ops(&self) -> Result<Arc<dyn NsOps>, Error> {
        self.router
            .namespace(&self.nsp)
            .ok_or_else(|| Error::UnknownNamespace(self.nsp.clone()))
    }

    /// The namespace's path.
    pub fn name(&self) -> &str {
        &self.nsp
    }

    /// Servers of the cluster that have this namespace, this one included (Node:
    /// `serverCount()`, `PUBSUB NUMSUB` of the request channel).
    pub async fn server_count(&self) -> Result<usize, Error> {
        self.ops()?.core().server_count().await
    }

    /// Sockets in any of `rooms` (all when empty) minus those in `except`, on every server.
    pub async fn fetch_sockets(
        &self,
        rooms: &[&str],
        except: &[&str],
    ) -> Result<Vec<SocketInfo>, Error> {
        let ops = self.ops()?;
        let sel = Selector::new(to_strings(rooms), to_strings(except));
        let local = ops.local_fetch(&sel);
        match remote_fetch(ops.core(), sel).await {
            Ok(remote) => Ok(concat(local, remote)),
            Err(e) => Err(e.map_partial(|p| match p {
                Partial::Sockets(remote) => Partial::Sockets(concat(local, remote)),
                other => other,
            })),
        }
    }

    /// Ids of the sockets in any of `rooms` (all sockets when empty), on every server
    /// (Node: `clients(rooms)` / `allSockets()`).
    pub async fn clients(&self, rooms: &[&str]) -> Result<Vec<String>, Error> {
        let ids = |s: Vec<SocketInfo>| s.into_iter().map(|s| s.id).collect::<Vec<_>>();
        self.fetch_sockets(rooms, &[]).await.map(ids).map_err(|e| {
            e.map_partial(|p| match p {
                Partial::Sockets(s) => Partial::Names(ids(s)),
                other => other,
            })
        })
    }

    /// Rooms of socket `id`, wherever it is connected (Node: `clientRooms(id)`).
    pub async fn client_rooms(&self, id: &str) -> Result<Vec<String>, Error> {
        let ops = self.ops()?;
        let id = &*self.real_id(&ops, id);
        let sel = Selector::new(vec![id.to_owned()], vec![]);
        if let Some(s) = ops.local_fetch(&sel).into_iter().find(|s| s.id == id) {
            return Ok(s.rooms);
        }
        find_remote(&ops, id)
            .await?
            .map(|s| s.rooms)
            .ok_or_else(|| Error::SocketNotFound(id.to_owned()))
    }

    /// Every room of every server, socket-id rooms included (Node: `allRooms()`).
    pub async fn all_rooms(&self) -> Result<Vec<String>, Error> {
        let ops = self.ops()?;
        let local = ops.local_all_rooms();
        let merge = |remote: Vec<String>| -> Vec<String> {
            let all: BTreeSet<String> = local.iter().cloned().chain(remote).collect();
            all.into_iter().collect()
        };
        match remote_all_rooms(ops.core()).await {
            Ok(remote) => Ok(merge(remote)),
            Err(e) => Err(e.map_partial(|p| match p {
                Partial::Names(remote) => Partial::Names(merge(remote)),
                other => other,
            })),
        }
    }

    /// Makes socket `id` join `room`, wherever it is connected (Node: `remoteJoin`).
    /// [`Error::SocketNotFound`] when no server has it.
    pub async fn remote_join(&self, id: &str, room: &str) -> Result<(), Error> {
        self.remote_op(id, RemoteOp::Join(room.to_owned())).await
    }

    /// Makes socket `id` leave `room` (Node: `remoteLeave`).
    pub async fn remote_leave(&self, id: &str, room: &str) -> Result<(), Error> {
        self.remote_op(id, RemoteOp::Leave(room.to_owned())).await
    }

    /// Disconnects socket `id` (Node: `remoteDisconnect`). `close` is forwarded to Node
    /// servers (close the underlying connection); socketioxide sockets are disconnected
    /// from the namespace either way.
    pub async fn remote_disconnect(&self, id: &str, close: bool) -> Result<(), Error> {
        self.remote_op(id, RemoteOp::Disconnect(close)).await
    }

    async fn remote_op(&self, id: &str, op: RemoteOp) -> Result<(), Error> {
        let ops = self.ops()?;
        let id = &*self.real_id(&ops, id);
        let sel = Selector::new(vec![id.to_owned()], vec![]);
        let apply_local = |ops: &Arc<dyn NsOps>| match &op {
            RemoteOp::Join(room) => ops.apply_join_leave(&sel, std::slice::from_ref(room), true),
            RemoteOp::Leave(room) => ops.apply_join_leave(&sel, std::slice::from_ref(room), false),
            RemoteOp::Disconnect(_) => ops.apply_disconnect(&sel),
        };
        if !ops.local_ids(&sel).is_empty() {
            apply_local(&ops);
            return Ok(());
        }
        if find_remote(&ops, id).await?.is_none() {
            return Err(Error::SocketNotFound(id.to_owned()));
        }
        let uid = Some(ops.core().uid().to_owned());
        let req = match op {
            RemoteOp::Join(room) => Request::JoinLeave {
                uid,
                join: true,
                opts: sel,
                rooms: vec![Value::from(room)],
            },
            RemoteOp::Leave(room) => Request::JoinLeave {
                uid,
                join: false,
                opts: sel,
                rooms: vec![Value::from(room)],
            },
            RemoteOp::Disconnect(close) => Request::Disconnect {
                uid,
                opts: sel,
                close,
            },
        };
        ops.core().send_confirmed(&req).await
    }
}

/// Sends a server-side event, or a custom request, to the other servers.
impl Namespace {
    /// Emits `event` with `args` (a tuple spreads into several arguments) to every other
    /// server (Node: `io.serverSideEmit(event, ...args)`). Arguments travel as JSON.
    pub async fn server_side_emit(&self, event: &str, args: &impl Serialize) -> Result<(), Error> {
        let ops = self.ops()?;
        let mut data = vec![Value::from(event)];
        data.extend(args_of(args)?);
        ops.core()
            .send_confirmed(&Request::ServerSideEmit {
                uid: Some(ops.core().uid().to_owned()),
                request_id: None,
                data,
            })
            .await
    }

    /// Like [`server_side_emit`](Self::server_side_emit), and gathers one acknowledgement
    /// per other server within `requests_timeout` (Node: `serverSideEmit(.., cb)`). On
    /// timeout the error holds the replies that arrived ([`Partial::Replies`]).
    pub async fn server_side_emit_with_ack(
        &self,
        event: &str,
        args: &impl Serialize,
    ) -> Result<Vec<Value>, Error> {
        let ops = self.ops()?;
        let mut data = vec![Value::from(event)];
        data.extend(args_of(args)?);
        let uid = ops.core().uid().to_owned();
        let g = ops
            .core()
            .ask(
                |request_id| Request::ServerSideEmit {
                    uid: Some(uid),
                    request_id: Some(request_id.into()),
                    data,
                },
                |r| r.kind == Some(kind::SERVER_SIDE_EMIT),
            )
            .await?;
        g.into_result(
            "serverSideEmit",
            ops.core(),
            |replies| {
                replies
                    .into_iter()
                    .map(|mut r| r.take("data").unwrap_or(Value::Nil))
                    .collect()
            },
            |r: &Vec<Value>| Partial::Replies(r.clone()),
        )
    }

    /// Registers `handler` for server-side event `event` of this namespace. It receives
    /// the arguments and may [`ack`](ServerSideEvent::ack) when the sender waits for it.
    /// Can be called before the namespace exists.
    pub fn on_server_side(
        &self,
        event: &str,
        handler: impl Fn(&ServerSideEvent) + Send + Sync + 'static,
    ) {
        self.callbacks.on(&self.nsp, event, Arc::new(handler));
    }

    /// Waits for one server-side event named `event` whose arguments satisfy `matches`
    /// (e.g. a job id), at most `timeout`: the "reply when the worker's result arrives,
    /// or fail with a controlled error" pattern. Register before triggering the work.
    pub fn wait_server_side<M>(
        &self,
        event: &str,
        matches: M,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<Value>, Error>> + Send + 'static + use<M>
    where
        M: Fn(&[Value]) -> bool + Send + Sync + 'static,
    {
        let callbacks = self.callbacks.clone();
        let (id, rx) = callbacks.wait(&self.nsp, event, Box::new(matches));
        async move {
            /// Removes the waiter however the wait ends (match, timeout, cancellation).
            struct Cancel(Arc<Callbacks>, u64);
            impl Drop for Cancel {
                fn drop(&mut self) {
                    self.0.cancel_wait(self.1);
                }
            }
            let _cancel = Cancel(callbacks, id);
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(args)) => Ok(args),
                Ok(Err(_)) => Err(Error::Closed),
                Err(_) => Err(Error::Timeout {
                    operation: "waitServerSide",
                    expected: 1,
                    received: 0,
                    timeout,
                    partial: Partial::None,
                }),
            }
        }
    }

    /// Asks every server, this one included, to run its custom-request hook on `data`;
    /// one reply per server (Node 5.x: `customRequest`). Travels as the reserved
    /// server-side event [`CUSTOM_REQUEST_EVENT`] with an ack, so a Node server answers
    /// it with `io.on(CUSTOM_REQUEST_EVENT, (data, cb) => cb(reply))`.
    pub async fn custom_request(&self, data: &impl Serialize) -> Result<Vec<Value>, Error> {
        let data = to_value(data)?;
        let hook = self.callbacks.hook(&self.nsp);
        let own = match hook {
            Some(hook) => hook(data.clone()).await,
            None => Value::Nil,
        };
        match self
            .server_side_emit_with_ack(CUSTOM_REQUEST_EVENT, &(data,))
            .await
        {
            Ok(remote) => Ok(concat(vec![own], remote)),
            Err(e) => Err(e.map_partial(|p| match p {
                Partial::Replies(remote) => Partial::Replies(concat(vec![own], remote)),
                other => other,
            })),
        }
    }

    /// Registers this server's answer to [`custom_request`](Self::custom_request)
    /// (Node 5.x: `customHook`). Without a hook a server answers `null`.
    pub fn on_custom_request<F, Fut>(&self, hook: F)
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Value> + Send + 'static,
    {
        let hook = Arc::new(hook);
        self.callbacks.set_hook(
            &self.nsp,
            Arc::new(move |v| {
                let hook = hook.clone();
                Box::pin(async move { hook(v).await })
            }),
        );
    }
}

/// What this server reports about its own sockets.
impl Namespace {
    /// Sets how this server describes its sockets of this namespace to `fetchSockets`
    /// (Node's `io.fetchSockets()`, this crate's [`fetch_sockets`](Self::fetch_sockets)):
    /// `describe` gets a socket id and returns its `data` and `handshake`. Without it,
    /// `data` is `{}` and the handshake a placeholder.
    ///
    /// `describe` runs on the task that reads Redis: keep it quick and non-blocking (a
    /// panic in it is caught and logged; the socket is then described by the defaults).
    /// It is dropped by [`Cluster::close`](crate::Cluster::close), so it may hold the `SocketIo`.
    ///
    /// ```no_run
    /// # async fn run(cluster: socketioxide_cluster::Cluster,
    /// #   io: socketioxide::SocketIo<socketioxide_cluster::ClusterAdapter<socketioxide::adapter::Emitter>>) {
    /// use socketioxide_cluster::SocketDetails;
    /// cluster.of("/").describe_sockets(move |id| {
    ///     let socket = id.parse().ok().and_then(|sid| io.get_socket(sid));
    ///     let Some(socket) = socket else { return SocketDetails::new() };
    ///     let headers: serde_json::Map<_, _> = socket
    ///         .req_parts()
    ///         .headers
    ///         .iter()
    ///         .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().into()))
    ///         .collect();
    ///     SocketDetails::new()
    ///         .data(serde_json::json!({ "user": "ada" }))
    ///         .handshake(serde_json::json!({
    ///             "headers": headers,
    ///             "url": socket.req_parts().uri.to_string(),
    ///         }))
    /// });
    /// # }
    /// ```
    pub fn describe_sockets(
        &self,
        describe: impl Fn(&str) -> SocketDetails + Send + Sync + 'static,
    ) {
        self.callbacks.set_describer(&self.nsp, Arc::new(describe));
    }
}

enum RemoteOp {
    Join(String),
    Leave(String),
    Disconnect(bool),
}

/// Socket `id` on another server. A timed-out or unresponsive fetch still counts when
/// the server that has the socket answered.
async fn find_remote(ops: &Arc<dyn NsOps>, id: &str) -> Result<Option<SocketInfo>, Error> {
    let sel = Selector::new(vec![id.to_owned()], vec![]);
    let sockets = match remote_fetch(ops.core(), sel).await {
        Ok(s) => s,
        Err(e) => match e.partial() {
            Some(Partial::Sockets(s)) if s.iter().any(|s| s.id == id) => s.clone(),
            _ => return Err(e),
        },
    };
    Ok(sockets.into_iter().find(|s| s.id == id))
}

/// Local results first, then the other servers'.
fn concat<T>(mut local: Vec<T>, remote: Vec<T>) -> Vec<T> {
    local.extend(remote);
    local
}

fn to_strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}
