//! Cluster-wide queries answered by every other server (Node or Rust): REMOTE_FETCH and
//! ALL_ROOMS. Used by the `CoreAdapter` side and by the namespace API alike.

use super::NsCore;
use crate::error::{Error, Partial};
use crate::socket_info::SocketInfo;
use crate::wire::codec;
use crate::wire::request::{Request, Response, Selector};
use rmpv::Value;

/// REMOTE_FETCH: the matching sockets of every other server.
pub(crate) async fn remote_fetch(core: &NsCore, sel: Selector) -> Result<Vec<SocketInfo>, Error> {
    let uid = core.uid().to_owned();
    let g = core
        .ask(
            |request_id| Request::Fetch {
                uid: Some(uid),
                request_id: request_id.into(),
                opts: sel,
            },
            |r| r.get("sockets").is_some(),
        )
        .await?;
    g.into_result(
        "fetchSockets",
        core,
        |replies| {
            let mut out = Vec::new();
            for r in &replies {
                let Some(Value::Array(sockets)) = r.get("sockets") else {
                    continue;
                };
                // Ours only: our servers say who they are (Node's replies do not).
                let server = r
                    .get("serverId")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok());
                for s in sockets {
                    match SocketInfo::from_node(s) {
                        Some(mut info) => {
                            info.server_id = server;
                            out.push(info);
                        }
                        // Node would list it with an undefined id; nobody could reach it.
                        None => core.shared().counters.malformed(
                            core.channels().response(),
                            &"fetchSockets entry without an id",
                        ),
                    }
                }
            }
            out
        },
        |s: &Vec<SocketInfo>| Partial::Sockets(s.clone()),
    )
}

/// ALL_ROOMS: every room of every other server.
pub(crate) async fn remote_all_rooms(core: &NsCore) -> Result<Vec<String>, Error> {
    if core.sharded().is_some() {
        // Node compat: the ClusterAdapter protocol has no ALL_ROOMS; its `allRooms()`
        // is the rooms of every socket, which fetchSockets says (socket ids included).
        let everyone = Selector::new(vec![], vec![]);
        let sockets = remote_fetch(core, everyone).await?;
        let mut rooms: Vec<String> = sockets.into_iter().flat_map(|s| s.rooms).collect();
        rooms.sort();
        rooms.dedup();
        return Ok(rooms);
    }
    let uid = core.uid().to_owned();
    let g = core
        .ask(
            |request_id| Request::AllRooms {
                uid: Some(uid),
                request_id: request_id.into(),
            },
            |r| r.get("rooms").is_some(),
        )
        .await?;
    g.into_result("allRooms", core, names_of("rooms"), |n: &Vec<String>| {
        Partial::Names(n.clone())
    })
}

/// Collects the names in field `field` of every reply.
fn names_of(field: &'static str) -> impl FnOnce(Vec<Response>) -> Vec<String> {
    move |replies| {
        replies
            .iter()
            .filter_map(|r| match r.get(field) {
                Some(Value::Array(a)) => {
                    Some(a.iter().filter_map(codec::room_name).collect::<Vec<_>>())
                }
                _ => None,
            })
            .flatten()
            .collect()
    }
}
