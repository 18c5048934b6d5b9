//! Answering the requests of other servers (Node or Rust) and of emitters.
//!
//! Node compat: join/leave/disconnect requests carry no request id and expect no reply;
//! every server applies them, the sender included (Node's sender relies on receiving
//! its own request). We publish ours, wait until Redis accepted them, then apply them
//! locally ourselves, so we skip requests carrying our uid. Requests for which we would
//! answer our own question are skipped the same way.
//!
//! Every reply goes through the reply queue (`replies.rs`): this runs on the subscriber
//! task and never waits.

use super::local;
use crate::packet::{self, ParserKind};
use crate::requests::NsCore;
use crate::server_side::{self, Acker};
use crate::wire::codec;
use crate::wire::message::WireOptions;
use crate::wire::request::{Request, RequestId, Response, Selector, kind};
use futures_util::StreamExt;
use serde_json::json;
use socketioxide_core::adapter::{CoreLocalAdapter, SocketEmitter};
use std::time::Duration;

/// A message on the namespace's request channel.
pub(super) fn on_request<E: SocketEmitter>(
    core: &NsCore,
    local: &CoreLocalAdapter<E>,
    parser: ParserKind,
    payload: &[u8],
) {
    let req = match Request::decode(payload) {
        Ok(req) => req,
        Err(e) => {
            return core
                .shared()
                .counters
                .malformed(core.channels().request(), &e.0);
        }
    };
    handle(core, local, parser, req);
}

/// Acts on, or answers, a decoded request (classic, or read from the sharded protocol's
/// format).
pub(super) fn handle<E: SocketEmitter>(
    core: &NsCore,
    local: &CoreLocalAdapter<E>,
    parser: ParserKind,
    req: Request,
) {
    let mine = |uid: &Option<String>| uid.as_deref() == Some(core.uid());
    // Node compat: Node skips only its own pending requests (by requestId); a request
    // carrying our uid but no id of ours is answered.
    let asked_by_us = |id: &RequestId| id.as_str().is_some_and(|id| core.pending().contains(id));
    match req {
        Request::Sockets { request_id, rooms } => {
            if asked_by_us(&request_id) {
                return;
            }
            let sel = Selector {
                rooms,
                except: vec![],
            };
            let ids = local::ids(local, &sel);
            core.reply(
                None,
                Response::encode_json(&request_id, vec![("sockets", json!(ids))]),
            );
        }
        Request::AllRooms { uid, request_id } => {
            if asked_by_us(&request_id) {
                return;
            }
            let rooms = local::all_rooms(local);
            core.reply(
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
            let rooms: Vec<String> = rooms.iter().filter_map(codec::room_name).collect();
            local::join_leave(local, &opts, &rooms, join);
        }
        Request::Disconnect { uid, opts, .. } if !mine(&uid) => local::disconnect(local, &opts),
        Request::Legacy {
            request_id,
            kind: k,
            sid,
            room,
            ..
        } => {
            let sel = Selector::new(vec![sid.clone()], vec![]);
            if local::ids(local, &sel).is_empty() {
                return; // another server has it
            }
            match k {
                kind::REMOTE_DISCONNECT => local::disconnect(local, &sel),
                _ => {
                    let room: Vec<String> = room.iter().filter_map(codec::room_name).collect();
                    local::join_leave(local, &sel, &room, k == kind::REMOTE_JOIN);
                }
            }
            core.reply(None, Response::encode_json(&request_id, vec![]));
        }
        Request::Fetch {
            uid,
            request_id,
            opts,
        } => {
            if asked_by_us(&request_id) {
                return;
            }
            let callbacks = &core.shared().callbacks;
            let reply = local::fetch_reply(local, callbacks, &opts, &request_id);
            core.reply(uid.as_deref(), reply);
        }
        Request::ServerSideEmit {
            uid,
            request_id,
            data,
        } => {
            if mine(&uid) {
                return;
            }
            let shared = core.shared();
            let ack = request_id.map(|request_id| {
                // Node compat: classic acks go to the shared response channel, sharded
                // ones to the requester's.
                let channel = match core.sharded() {
                    Some((c, _)) => c.response_for(uid.as_deref().unwrap_or_default()),
                    None => core.channels().response().to_owned(),
                };
                Acker::new(
                    shared.replies.clone(),
                    channel,
                    request_id,
                    core.reply_encoder(),
                )
            });
            if let Some(ev) = server_side::event(core.nsp(), data, ack) {
                shared.callbacks.dispatch(ev);
            }
        }
        Request::Broadcast {
            uid,
            request_id,
            packet,
            opts,
        } => {
            // Deliberate difference: Node skips only a pending request of its own; ours
            // also skips its uid, because an ack stream the application dropped early is
            // no longer pending, and answering its echo would deliver the broadcast twice.
            if mine(&uid) || asked_by_us(&request_id) {
                return;
            }
            answer_broadcast_with_ack(core, local, parser, uid, request_id, packet.data, opts);
        }
        _ => {}
    }
}

/// BROADCAST: deliver with acks locally, report the client count, then forward each
/// client's first ack argument as it comes (through the ack forwarder of `replies.rs`,
/// until the last ack or the requester's ack timeout).
fn answer_broadcast_with_ack<E: SocketEmitter>(
    core: &NsCore,
    local: &CoreLocalAdapter<E>,
    parser: ParserKind,
    requester: Option<String>,
    request_id: RequestId,
    data: Vec<rmpv::Value>,
    opts: WireOptions,
) {
    let sel = Selector {
        rooms: opts.rooms.clone(),
        except: opts.except.clone().unwrap_or_default(),
    };
    // Node compat: only rooms and except apply remotely; flags.timeout bounds the wait.
    let Some(local_opts) = local::selector_options(local, &sel) else {
        // Rooms nobody here can be in: no client to ask.
        let none = Response::encode_client_count(&request_id, 0);
        return core.reply(requester.as_deref(), none);
    };
    let timeout = opts
        .flag("timeout")
        .and_then(rmpv::Value::as_u64)
        .map(Duration::from_millis);
    let packet = match packet::sio_event(local.parser(), local.path().clone(), &data) {
        Ok(p) => p,
        Err(e) => {
            return core
                .shared()
                .counters
                .malformed(core.channels().request(), &e);
        }
    };
    let channel = core.reply_channel(requester.as_deref());
    let replies = &core.shared().replies;
    // Reserved before answering: without a slot the acks could not be forwarded, so the
    // requester is told 0 clients rather than left waiting for them (counted).
    let slot = replies.reserve_forward(&channel);
    let (stream, count) = local.broadcast_with_ack(packet, local_opts, timeout);
    let announced = if slot.is_some() { count } else { 0 };
    core.reply(
        requester.as_deref(),
        Response::encode_client_count(&request_id, u64::from(announced)),
    );
    let Some(slot) = slot.filter(|_| count > 0) else {
        return;
    };
    // Node compat: only the first ack argument is forwarded.
    // Ours only: the reply also names the socket that answered (Node ignores `sid`).
    let encoder = core.reply_encoder();
    let acks = stream.filter_map(move |(sid, res)| {
        let ack = res.ok().and_then(|mut value| {
            let first = parser.first_arg(&mut value).unwrap_or(rmpv::Value::Nil);
            encoder.encode(Response::encode_broadcast_ack(
                &request_id,
                &first,
                Some(sid.as_str()),
            ))
        });
        std::future::ready(ack)
    });
    slot.forward(channel, Box::pin(acks));
}
