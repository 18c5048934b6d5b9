//! Socket ids between the handle's strings and socketioxide's `Sid`s: the stand-ins of
//! Node sockets (see `stand_in`).

use super::Namespace;
use crate::error::Error;
use crate::requests::remote_fetch;
use crate::router::NsOps;
use crate::stand_in;
use crate::wire::request::Selector;
use socketioxide_core::Sid;
use std::borrow::Cow;
use std::sync::Arc;

impl Namespace {
    /// The `Sid` that socketioxide's own API (`io.fetch_sockets()`, `RemoteSocket`) uses
    /// for socket `id`: the id itself when it is a valid `Sid` (every socketioxide
    /// socket), else its stand-in (a Node socket; the same on every server of ours).
    pub fn sid_for(&self, id: &str) -> Sid {
        stand_in::stand_in(&self.nsp, id)
    }

    /// The id of the socket `sid` stands for: a Node socket's real id for its stand-in
    /// (as `io.fetch_sockets()` returns it), the `Sid`'s own text for a socketioxide
    /// socket. Asks the cluster when this server does not know `sid`;
    /// [`Error::SocketNotFound`] when no server has such a socket.
    pub async fn socket_id(&self, sid: Sid) -> Result<String, Error> {
        let ops = self.ops()?;
        let stand_ins = &ops.core().shared().stand_ins;
        if let Some(id) = stand_ins.real_id(&self.nsp, sid) {
            return Ok(id);
        }
        let text = sid.to_string();
        let own = Selector::new(vec![text.clone()], vec![]);
        if !ops.local_ids(&own).is_empty() {
            return Ok(text);
        }
        let everyone = Selector::new(vec![], vec![]);
        let found = remote_fetch(ops.core(), everyone).await?;
        let id = found
            .into_iter()
            .map(|s| s.id)
            .find(|id| stand_in::stand_in(&self.nsp, id) == sid)
            .ok_or(Error::SocketNotFound(text))?;
        if id.len() != 16 {
            stand_ins.record(&self.nsp, &id);
        }
        Ok(id)
    }

    /// `id`, or the Node socket id it is the stand-in of.
    pub(super) fn real_id<'a>(&self, ops: &Arc<dyn NsOps>, id: &'a str) -> Cow<'a, str> {
        match ops.core().shared().stand_ins.real_id_of_room(&self.nsp, id) {
            Some(real) => Cow::Owned(real),
            None => Cow::Borrowed(id),
        }
    }
}
