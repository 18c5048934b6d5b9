//! Answering the requests of other servers (Node or Rust) and of emitters.
//!
//! Node compat: join/leave/disconnect requests carry no request id and expect no reply;
//! every server applies them, the sender included (Node's sender relies on receiving
//! its own request). We publish ours, wait until Redis accepted them, then apply them
//! locally ourselves, so we skip requests carrying our uid. Requests for which we would
//! answer our own question are skipped the same way.

use crate::adapter::ClusterAdapter;
use crate::broadcast::log_malformed;
use crate::cluster::NsOps;
use crate::server_side::{self, Acker};
use crate::stats::Counters;
use crate::transport::Mode;
use crate::wire::request::{Request, Response, Selector, kind, value_to_json};
use crate::{SocketInfo, packet};
use futures_util::StreamExt;
use serde_json::json;
use socketioxide_core::adapter::SocketEmitter;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

impl<E: SocketEmitter> ClusterAdapter<E> {
    pub(crate) fn receive_request(&self, payload: &[u8]) {
        let req = match Request::decode(payload) {
            Ok(req) => req,
            Err(e) => {
                Counters::add(&self.req.cluster.inner.counters.malformed, 1);
                log_malformed(self.req.channels.request(), &e.0);
                return;
            }
        };
        let mine = |uid: &Option<String>| uid.as_deref() == Some(self.req.uid_str());
        match req {
            Request::Sockets { request_id, rooms } => {
                if self.req.pending.contains(&request_id) {
                    return;
                }
                let sel = Selector {
                    rooms,
                    except: vec![],
                };
                let ids = self.local_ids(&sel);
                self.req.respond(
                    None,
                    Response::encode_json(&request_id, vec![("sockets", json!(ids))]),
                );
            }
            Request::AllRooms { uid, request_id } => {
                if mine(&uid) || self.req.pending.contains(&request_id) {
                    return;
                }
                let rooms = self.local_all_rooms();
                self.req.respond(
                    uid.as_deref(),
                    Response::encode_json(&request_id, vec![("rooms", json!(rooms))]),
                );
            }
            Request::JoinLeave {
                uid,
                join,
                opts,
                rooms,
            } if !mine(&uid) => {
                let rooms: Vec<String> = rooms.iter().filter_map(crate::codec::room_name).collect();
                self.apply_join_leave(&opts, &rooms, join);
            }
            Request::Disconnect { uid, opts, .. } if !mine(&uid) => self.apply_disconnect(&opts),
            Request::Legacy {
                request_id,
                kind: k,
                sid,
                room,
                ..
            } => {
                let sel = Selector::new(vec![sid.clone()], vec![]);
                if self.local_ids(&sel).is_empty() {
                    return; // another server has it
                }
                match k {
                    kind::REMOTE_DISCONNECT => self.apply_disconnect(&sel),
                    _ => {
                        let room: Vec<String> =
                            room.iter().filter_map(crate::codec::room_name).collect();
                        self.apply_join_leave(&sel, &room, k == kind::REMOTE_JOIN);
                    }
                }
                self.req
                    .respond(None, Response::encode_json(&request_id, vec![]));
            }
            Request::Fetch {
                uid,
                request_id,
                opts,
            } => {
                if mine(&uid) || self.req.pending.contains(&request_id) {
                    return;
                }
                let sockets: Vec<serde_json::Value> = self
                    .local_fetch(&opts)
                    .iter()
                    .map(SocketInfo::to_node_json)
                    .collect();
                self.req.respond(
                    uid.as_deref(),
                    Response::encode_json(&request_id, vec![("sockets", json!(sockets))]),
                );
            }
            Request::ServerSideEmit {
                uid,
                request_id,
                data,
            } => {
                if mine(&uid) {
                    return;
                }
                let ack = request_id.map(|request_id| Acker {
                    cluster: self.req.cluster.clone(),
                    channel: self.req.channels.response().to_owned(),
                    request_id,
                    sent: Arc::new(AtomicBool::new(false)),
                });
                if let Some(ev) = server_side::event(&self.req.nsp, data, ack) {
                    self.req.cluster.inner.server_side.dispatch(ev);
                }
            }
            Request::Broadcast {
                uid,
                request_id,
                packet,
                opts,
            } => {
                if mine(&uid) || self.req.pending.contains(&request_id) {
                    return;
                }
                self.answer_broadcast_with_ack(uid, request_id, packet.data, opts);
            }
            _ => {}
        }
    }

    /// BROADCAST: deliver with acks locally, report the client count, then forward each
    /// client's first ack argument.
    fn answer_broadcast_with_ack(
        &self,
        requester: Option<String>,
        request_id: String,
        data: Vec<rmpv::Value>,
        opts: crate::message::WireOptions,
    ) {
        let sel = Selector {
            rooms: opts.rooms.clone(),
            except: opts.except.clone().unwrap_or_default(),
        };
        // Node compat: only rooms and except apply remotely; flags.timeout bounds the wait.
        let local_opts = self.selector_options(&sel);
        let timeout = opts
            .flag("timeout")
            .and_then(rmpv::Value::as_u64)
            .map(Duration::from_millis);
        let packet = match packet::sio_event(self.local.parser(), self.local.path().clone(), &data)
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "broadcast-with-ack request could not be translated");
                return;
            }
        };
        let (stream, count) = self.local.broadcast_with_ack(packet, local_opts, timeout);
        self.req.respond(
            requester.as_deref(),
            Response::encode_client_count(&request_id, u64::from(count)),
        );
        if count == 0 {
            return;
        }
        let req_channel = match requester.as_deref() {
            Some(uid) if self.req.cluster.options().specific_response_channel => {
                self.req.channels.response_for(uid)
            }
            _ => self.req.channels.response().to_owned(),
        };
        let cluster = self.req.cluster.clone();
        let parser = self.parser_kind;
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some((_sid, res)) = stream.next().await {
                let Ok(mut value) = res else { continue };
                // Node compat: only the first ack argument is forwarded.
                let first = parser.first_arg(&mut value).unwrap_or(rmpv::Value::Nil);
                let bytes = Response::encode_broadcast_ack(&request_id, &first);
                if let Err(e) = cluster
                    .transport()
                    .publish(req_channel.clone(), bytes::Bytes::from(bytes), Mode::Queued)
                    .await
                {
                    tracing::warn!(error = %e, "broadcast ack not forwarded");
                }
            }
        });
    }
}

impl SocketInfo {
    /// Node's fetchSockets entry `{id, handshake, rooms, data}`.
    pub(crate) fn to_node_json(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "handshake": self.handshake,
            "rooms": self.rooms,
            "data": self.data,
        })
    }

    pub(crate) fn from_node(v: &rmpv::Value) -> Option<Self> {
        let rmpv::Value::Map(m) = v else { return None };
        let get = |k| crate::codec::map_get(m, k);
        Some(SocketInfo {
            id: get("id").and_then(crate::codec::room_name)?,
            rooms: match get("rooms") {
                Some(rmpv::Value::Array(r)) => {
                    r.iter().filter_map(crate::codec::room_name).collect()
                }
                _ => Vec::new(),
            },
            data: get("data")
                .map(value_to_json)
                .unwrap_or(serde_json::Value::Null),
            handshake: get("handshake")
                .map(value_to_json)
                .unwrap_or(serde_json::Value::Null),
        })
    }
}
