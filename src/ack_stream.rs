//! The stream returned by a cluster-wide `emit_with_ack`: this server's acknowledgements
//! merged with those other servers send back (BROADCAST_CLIENT_COUNT, then one
//! BROADCAST_ACK per client).
//!
//! It ends when this server's sockets all answered or timed out and every other server
//! reported its client count and forwarded that many acks, or at the timeout.

use crate::correlation::Pending;
use crate::packet::ParserKind;
use crate::wire::request::kind;
use futures_core::{FusedStream, Stream};
use socketioxide_core::Sid;
use socketioxide_core::adapter::{AckStreamItem, SocketEmitter};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::Sleep;

/// Acknowledgements from the whole cluster, each with the id of the socket that
/// answered: our servers say it in their replies; a Node server's ack carries the
/// targeted socket's id when one socket was targeted (a `RemoteSocket`), else
/// `Sid::ZERO` (Node's BROADCAST_ACK replies do not say which socket answered).
pub struct AckStream<E: SocketEmitter> {
    local: Pin<Box<E::AckStream>>,
    remote: Option<Remote>,
    done: bool,
    /// One socket was targeted: it is on one server only, so its ack is the last one
    /// and the stream ends with it (without waiting for other servers' counts of 0).
    single: bool,
}

impl<E: SocketEmitter> std::fmt::Debug for AckStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckStream")
            .field(
                "remote_servers_left",
                &self.remote.as_ref().map(|r| r.servers_left),
            )
            .field(
                "remote_acks_left",
                &self.remote.as_ref().map(|r| r.acks_left),
            )
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

struct Remote {
    pending: Pending,
    deadline: Pin<Box<Sleep>>,
    servers_left: usize,
    acks_left: u64,
    parser: ParserKind,
    /// The one socket targeted, if only one was.
    single: Option<Sid>,
}

impl<E: SocketEmitter> AckStream<E> {
    pub(crate) fn local(local: E::AckStream, single: bool) -> Self {
        Self {
            local: Box::pin(local),
            remote: None,
            done: false,
            single,
        }
    }

    pub(crate) fn cluster(
        local: E::AckStream,
        pending: Pending,
        servers: usize,
        timeout: std::time::Duration,
        parser: ParserKind,
        single: Option<Sid>,
    ) -> Self {
        Self {
            local: Box::pin(local),
            remote: (servers > 0).then(|| Remote {
                pending,
                deadline: Box::pin(tokio::time::sleep(timeout)),
                servers_left: servers,
                acks_left: 0,
                parser,
                single,
            }),
            done: false,
            single: single.is_some(),
        }
    }
}

impl<E: SocketEmitter> Stream for AckStream<E> {
    type Item = AckStreamItem<E::AckError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.local.is_terminated()
            && let Poll::Ready(Some(item)) = self.local.as_mut().poll_next(cx)
        {
            if self.single {
                self.remote = None;
                self.done = true;
            }
            return Poll::Ready(Some(item));
        }
        if let Some(remote) = self.remote.as_mut() {
            let mut lost = false;
            let mut last = None;
            loop {
                let mut res = match remote.pending.poll_recv(cx) {
                    Poll::Ready(Some(res)) => res,
                    // The connection dropped: no more acks can arrive.
                    Poll::Ready(None) => {
                        lost = true;
                        break;
                    }
                    Poll::Pending => break,
                };
                match res.kind {
                    Some(kind::BROADCAST_CLIENT_COUNT) => {
                        remote.servers_left = remote.servers_left.saturating_sub(1);
                        remote.acks_left += res
                            .get("clientCount")
                            .and_then(rmpv::Value::as_u64)
                            .unwrap_or(0);
                    }
                    Some(kind::BROADCAST_ACK) => {
                        remote.acks_left = remote.acks_left.saturating_sub(1);
                        let arg = res.take("packet").unwrap_or(rmpv::Value::Nil);
                        // Ours only: the socket that answered (Node's replies lack it).
                        let sid = res
                            .get("sid")
                            .and_then(rmpv::Value::as_str)
                            .and_then(|s| s.parse::<Sid>().ok())
                            .or(remote.single)
                            .unwrap_or(Sid::ZERO);
                        match remote.parser.ack_value(arg) {
                            Ok(v) if remote.single.is_some() => {
                                last = Some((sid, Ok(v)));
                                break;
                            }
                            Ok(v) => return Poll::Ready(Some((sid, Ok(v)))),
                            Err(e) => {
                                tracing::warn!(error = %e, "remote ack could not be re-encoded")
                            }
                        }
                    }
                    _ => {}
                }
            }
            if last.is_some() {
                self.remote = None;
                self.done = true;
                return Poll::Ready(last);
            }
            let all_in = remote.servers_left == 0 && remote.acks_left == 0;
            if lost || all_in || remote.deadline.as_mut().poll(cx).is_ready() {
                self.remote = None;
            }
        }
        if self.local.is_terminated() && self.remote.is_none() {
            self.done = true;
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl<E: SocketEmitter> FusedStream for AckStream<E> {
    fn is_terminated(&self) -> bool {
        self.done || (self.remote.is_none() && self.local.is_terminated())
    }
}
