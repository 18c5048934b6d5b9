//! Server-side events: messages between servers, wire-compatible with Node's
//! `io.serverSideEmit(event, ...args)` and `io.on(event, (...args, ack) => ...)`.
//!
//! socketioxide has no server-side events; handlers are registered on the cluster handle
//! per namespace (`cluster.of("/").on_server_side(..)`) and kept in the callback
//! registry (`callbacks.rs`). This module holds the event and its acknowledgement.

use crate::error::Error;
use crate::replies::{Replies, ReplyEncoder};
use crate::wire::codec;
use crate::wire::request::{RequestId, Response};
use rmpv::Value;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    pub(crate) ack: Option<Acker>,
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
        rmpv::ext::from_value(v).map_err(|e| Error::Decode(Box::new(e)))
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
                .and_then(|b| codec::decode(&b).map_err(|e| e.0));
            match encoded {
                Ok(v) => acker.send(&v),
                Err(e) => tracing::warn!(error = %e, "server-side ack could not be encoded"),
            }
        }
    }
}

/// Sends the one acknowledgement of a server-side emit, through the reply queue.
#[derive(Clone)]
pub(crate) struct Acker {
    replies: Replies,
    /// Node compat: server-side acks always go to the shared response channel.
    channel: String,
    request_id: RequestId,
    encoder: ReplyEncoder,
    sent: Arc<AtomicBool>,
}

impl Acker {
    pub(crate) fn new(
        replies: Replies,
        channel: String,
        request_id: RequestId,
        encoder: ReplyEncoder,
    ) -> Self {
        Self {
            replies,
            channel,
            request_id,
            encoder,
            sent: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sends `v` unless an acknowledgement was sent already (Node: only the first counts).
    pub(crate) fn send(&self, v: &Value) {
        if self.sent.swap(true, Ordering::AcqRel) {
            return;
        }
        let bytes = Response::encode_server_side_ack(&self.request_id, v);
        if let Some(bytes) = self.encoder.encode(bytes) {
            self.replies.send(self.channel.clone(), bytes);
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
