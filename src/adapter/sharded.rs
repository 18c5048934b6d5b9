//! The sharded protocol's main channel (`<key>#<nsp>#`): every ClusterAdapter message
//! but our responses arrives there, and each is read into the classic types and handed
//! to the path that serves it (`broadcast::deliver`, `respond::handle`, the pending
//! requests).

use super::{broadcast, respond};
use crate::packet::ParserKind;
use crate::requests::NsCore;
use crate::wire::cluster_format::{ClusterMessage, Incoming};
use socketioxide_core::adapter::{CoreLocalAdapter, SocketEmitter};

/// One message of the main channel.
pub(super) fn receive<E: SocketEmitter>(
    core: &NsCore,
    local: &CoreLocalAdapter<E>,
    parser: ParserKind,
    channel: &str,
    payload: &[u8],
) {
    let counters = &core.shared().counters;
    let msg = match ClusterMessage::decode(payload) {
        Ok(msg) => msg,
        Err(e) => return counters.malformed(channel, &e.0),
    };
    // Node compat: a message from ourselves, or for another namespace, is ignored.
    if msg.uid == core.uid() || msg.nsp != core.nsp() {
        return;
    }
    match msg.into_incoming() {
        Ok(Incoming::Broadcast(b)) => {
            crate::stats::Counters::add(&counters.received, 1);
            broadcast::deliver(core, local, channel, b);
        }
        Ok(Incoming::Request(req)) => respond::handle(core, local, parser, req),
        // Node compat: responses arriving on the main channel are responses all the same.
        Ok(Incoming::Response(res)) => {
            core.pending().route(res);
        }
        Ok(Incoming::Ignored(_)) => {}
        Err(e) => counters.malformed(channel, &e.0),
    }
}
