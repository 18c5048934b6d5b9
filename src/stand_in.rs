//! Node sockets in socketioxide's own API: a stand-in `Sid` for every socket id that
//! socketioxide's `Sid` cannot hold.
//!
//! socketioxide's `RemoteSocket` (what `io.fetch_sockets()` returns) carries a `Sid`:
//! exactly 16 url-safe characters. Node socket ids have 20 (and a custom `generateId` may
//! return anything). A socket of a Node server therefore gets a *stand-in*:
//!
//! * its own id when that already is a valid `Sid`;
//! * otherwise 16 url-safe characters taken from the 128-bit xxh3 hash of the namespace
//!   and the id. The hash is fixed, so every server of ours derives the same stand-in for
//!   the same socket, and a server that does not know a stand-in (evicted, or handed over
//!   from another server) finds its socket again by asking the cluster and hashing the
//!   ids it gets back.
//!
//! A stand-in is 96 bits like socketioxide's random ids, so it collides with a real one
//! as rarely as two real ones collide with each other. Even then nothing is misrouted: a
//! remote-socket operation is translated only when its `server_id` says the socket is on
//! a Node server ([`NODE_SERVER`]), and a room that equals a stand-in is sent under both
//! names.
//!
//! The table from stand-ins back to ids is bounded (`max_node_stand_ins` entries over
//! all namespaces, in two generations: a full generation is retired whole, entries used
//! since are carried over). A complete `io.fetch_sockets()` of the whole namespace also drops
//! the stand-ins of sockets that are gone.

use socketioxide_core::{Sid, Uid};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// `server_id` of a `RemoteSocket` that lives on a server that is not one of ours (a
/// Node server): its replies do not say which server it is. `Uid::ZERO`.
pub(crate) const NODE_SERVER: Uid = Uid::ZERO;

/// The url-safe alphabet of socketioxide ids.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The stand-in `Sid` of socket `id` of namespace `nsp` (the id itself when it is one).
pub(crate) fn stand_in(nsp: &str, id: &str) -> Sid {
    if let Ok(sid) = Sid::from_str(id) {
        return sid;
    }
    let mut input = Vec::with_capacity(nsp.len() + 1 + id.len());
    input.extend_from_slice(nsp.as_bytes());
    input.push(0);
    input.extend_from_slice(id.as_bytes());
    let hash = xxhash_rust::xxh3::xxh3_128(&input);
    let mut text = [0u8; 16];
    for (i, c) in text.iter_mut().enumerate() {
        *c = ALPHABET[((hash >> (6 * i)) & 63) as usize];
    }
    // Only alphabet characters, 16 of them: always a valid `Sid`.
    std::str::from_utf8(&text)
        .ok()
        .and_then(|t| Sid::from_str(t).ok())
        .unwrap_or(Sid::ZERO)
}

/// Tells namespaces apart in the table without storing their names per entry.
fn nsp_key(nsp: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(nsp.as_bytes())
}

type Key = (Sid, u64);

/// Stand-ins back to socket ids, bounded.
#[derive(Debug)]
pub(crate) struct StandIns {
    gens: Mutex<Generations>,
    /// Entries of one generation at most (half the capacity).
    generation: usize,
    /// Skips the lock on the broadcast path while no Node socket was ever seen.
    used: AtomicBool,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<Key, String>,
    previous: HashMap<Key, String>,
}

impl StandIns {
    /// A table of at most `capacity` entries (rounded down to even; at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            gens: Mutex::default(),
            generation: (capacity / 2).max(1),
            used: AtomicBool::new(false),
        }
    }

    fn gens(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.gens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records socket `id` of `nsp` (on a server that is not ours); its stand-in.
    pub(crate) fn record(&self, nsp: &str, id: &str) -> Sid {
        let sid = stand_in(nsp, id);
        let key = (sid, nsp_key(nsp));
        let mut g = self.gens();
        if g.current.get(&key).is_none_or(|known| known != id) {
            g.previous.remove(&key);
            g.insert(key, id.to_owned(), self.generation);
        }
        self.used.store(true, Ordering::Release);
        sid
    }

    /// The socket id `sid` stands for in `nsp`, if known.
    pub(crate) fn real_id(&self, nsp: &str, sid: Sid) -> Option<String> {
        if !self.used.load(Ordering::Acquire) {
            return None;
        }
        let key = (sid, nsp_key(nsp));
        let mut g = self.gens();
        if let Some(id) = g.current.get(&key) {
            return Some(id.clone());
        }
        // Used again: carried over into the current generation.
        let id = g.previous.remove(&key)?;
        g.insert(key, id.clone(), self.generation);
        Some(id)
    }

    /// [`real_id`](Self::real_id) of a room name that is a stand-in, if it is one.
    pub(crate) fn real_id_of_room(&self, nsp: &str, room: &str) -> Option<String> {
        if !self.used.load(Ordering::Acquire) {
            return None;
        }
        let sid = Sid::from_str(room).ok()?;
        self.real_id(nsp, sid).filter(|id| id != room)
    }

    /// After a complete listing of every socket of `nsp` on the other servers: drops the
    /// stand-ins of that namespace whose socket was not in it.
    pub(crate) fn retain_present(&self, nsp: &str, present: &HashSet<Sid>) {
        let n = nsp_key(nsp);
        let mut g = self.gens();
        let keep = |(sid, k): &Key, _: &mut String| *k != n || present.contains(sid);
        g.current.retain(keep);
        g.previous.retain(keep);
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        let g = self.gens();
        g.current.len() + g.previous.len()
    }
}

impl Generations {
    fn insert(&mut self, key: Key, id: String, generation: usize) {
        if self.current.len() >= generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPACITY: usize = 65_536;
    const NODE_ID: &str = "Yx2_lW1zL-2kGn4kAAAB";

    #[test]
    fn a_node_id_gets_a_stable_valid_stand_in_per_namespace() {
        let a = stand_in("/", NODE_ID);
        assert_eq!(a, stand_in("/", NODE_ID), "deterministic");
        assert_eq!(a.as_str().len(), 16);
        assert!(Sid::from_str(a.as_str()).is_ok());
        assert_ne!(a, stand_in("/admin", NODE_ID), "namespaces differ");
        assert_ne!(a, stand_in("/", "Yx2_lW1zL-2kGn4kAAAC"));
        // Golden value: every server (and every version) must derive the same one.
        assert_eq!(a.as_str(), "NjvvwbIvlPw_JU3Z");
        // An id that already is a Sid stands for itself.
        assert_eq!(
            stand_in("/", "AAAAAAAAAAAAAAAA").as_str(),
            "AAAAAAAAAAAAAAAA"
        );
        // Anything at all gets one: empty, long, not url-safe.
        for id in ["", "x", "user:42/é", &"z".repeat(1000)] {
            assert!(Sid::from_str(stand_in("/", id).as_str()).is_ok(), "{id}");
        }
    }

    #[test]
    fn stand_ins_map_back_within_their_namespace() {
        let t = StandIns::new(CAPACITY);
        assert_eq!(t.real_id("/", Sid::new()), None);
        let sid = t.record("/", NODE_ID);
        assert_eq!(t.real_id("/", sid).as_deref(), Some(NODE_ID));
        assert_eq!(t.real_id("/admin", sid), None);
        assert_eq!(
            t.real_id_of_room("/", sid.as_str()).as_deref(),
            Some(NODE_ID)
        );
        assert_eq!(t.real_id_of_room("/", "lobby"), None);
        // An id that is its own stand-in is known, but is not translated as a room.
        let own = t.record("/", "BBBBBBBBBBBBBBBB");
        assert_eq!(t.real_id("/", own).as_deref(), Some("BBBBBBBBBBBBBBBB"));
        assert_eq!(t.real_id_of_room("/", "BBBBBBBBBBBBBBBB"), None);
    }

    #[test]
    fn the_table_is_bounded_and_keeps_what_is_used() {
        let t = StandIns::new(CAPACITY);
        let first = t.record("/", "first-node-socket-id");
        for i in 0..CAPACITY * 2 {
            t.record("/", &format!("node-socket-{i:014}"));
            if i % 1000 == 0 {
                assert!(t.real_id("/", first).is_some(), "used, so kept (at {i})");
            }
        }
        assert!(t.len() <= CAPACITY, "{} entries", t.len());
        let evicted = stand_in("/", "node-socket-00000000000001");
        assert_eq!(t.real_id("/", evicted), None, "unused entries are retired");
    }

    #[test]
    fn a_complete_listing_drops_the_gone() {
        let t = StandIns::new(CAPACITY);
        let a = t.record("/", "node-socket-aaaaaaaa");
        let b = t.record("/", "node-socket-bbbbbbbb");
        let other = t.record("/admin", "node-socket-bbbbbbbb");
        t.retain_present("/", &HashSet::from([a]));
        assert!(t.real_id("/", a).is_some());
        assert_eq!(t.real_id("/", b), None);
        assert!(
            t.real_id("/admin", other).is_some(),
            "other namespaces untouched"
        );
    }
}
