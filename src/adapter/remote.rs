//! Sockets of other servers as socketioxide sees them (`RemoteSocketData`): a socket of
//! one of our servers keeps its id and gets its server's uid; a socket of a Node server
//! gets a stand-in `Sid` (see `stand_in`) and [`NODE_SERVER`].

use super::broadcast::{Ids, single_socket};
use crate::error::Error;
use crate::requests::{NsCore, remote_fetch};
use crate::socket_info::SocketInfo;
use crate::stand_in::{self, NODE_SERVER};
use crate::wire::request::Selector;
use socketioxide_core::{
    Sid, Str,
    adapter::{BroadcastOptions, RemoteSocketData},
};
use std::collections::HashSet;
use std::str::FromStr;

/// How the socket ids of `opts` go on the wire. A remote-socket operation on a socket
/// of a Node server needs the socket's real id: when its stand-in is not in the table
/// (dropped, or listed by another server), the cluster is asked again; a stand-in no
/// server has any more is an error, never an operation that silently reaches nobody.
pub(super) async fn ids<'a>(core: &'a NsCore, opts: &BroadcastOptions) -> Result<Ids<'a>, Error> {
    let ids = Ids::of(core);
    let Some(sid) = single_socket(opts).filter(|_| opts.server_id == Some(NODE_SERVER)) else {
        return Ok(ids);
    };
    let (nsp, stand_ins) = (core.nsp(), &core.shared().stand_ins);
    if let Some(id) = stand_ins.real_id(nsp, sid) {
        return Ok(ids.pin(sid, id));
    }
    let everyone = Selector::new(vec![], vec![]);
    let found = remote_fetch(core, everyone).await?;
    let id = found
        .iter()
        .find(|s| stand_in::stand_in(nsp, &s.id) == sid)
        .map(|s| s.id.clone());
    // Every socket of the namespace was listed: the table is brought up to date.
    sockets(core, &Str::from(nsp.to_owned()), found, true);
    match id {
        Some(id) => {
            stand_ins.record(nsp, &id);
            Ok(ids.pin(sid, id))
        }
        None => Err(Error::UnknownSocket {
            sid: sid.to_string(),
            nsp: nsp.to_owned(),
        }),
    }
}

/// `found` (from a REMOTE_FETCH) as socketioxide's remote sockets of namespace `ns`;
/// the stand-ins are recorded. `complete`: `found` lists every socket of the namespace
/// on the other servers, so the stand-ins not in it are dropped.
pub(super) fn sockets(
    core: &NsCore,
    ns: &Str,
    found: Vec<SocketInfo>,
    complete: bool,
) -> Vec<RemoteSocketData> {
    let nsp = core.nsp();
    let stand_ins = &core.shared().stand_ins;
    let mut on_node = HashSet::new();
    let out = found
        .into_iter()
        .map(|s| {
            let ours = Sid::from_str(&s.id).ok().zip(s.server_id);
            let (id, server_id) = ours.unwrap_or_else(|| {
                let sid = stand_ins.record(nsp, &s.id);
                on_node.insert(sid);
                (sid, NODE_SERVER)
            });
            RemoteSocketData {
                id,
                server_id,
                ns: ns.clone(),
            }
        })
        .collect();
    if complete {
        stand_ins.retain_present(nsp, &on_node);
    }
    out
}
