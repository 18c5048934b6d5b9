//! Liveness between our servers, so a hung server (process stopped, its Redis connection
//! still open) does not cost every request the full timeout.
//!
//! Each server publishes `{"uid":"<uid>"}` on `<key>-heartbeat` every
//! `heartbeat_interval`; a channel Node servers neither publish nor subscribe to. A peer
//! not heard from for `heartbeat_timeout` is *stale*. Before a request, the requester asks
//! Redis, in the same `PUBSUB NUMSUB` as the request channel, whether each stale peer is
//! still subscribed to its own response channel (`<key>-response#<nsp>#<uid>#`): those are
//! hung (subscribed but silent) and are not waited for; the call ends as soon as the
//! others answered, with [`Error::Unresponsive`](crate::Error::Unresponsive) naming them.
//! A peer that heartbeats again counts again at once. A peer that closes sends
//! `{"uid":"<uid>","leave":true}`.
//!
//! An emitter that needs to know the servers (named requests) publishes
//! `{"uid":"<its uid>","probe":true}` there: not a peer; every server heartbeats at once.
//!
//! A heartbeat also lists the namespaces its server serves (`"nsps":["/",…]`): with the
//! receiver counts PUBLISH returns, that tells when a message reached fewer of our
//! servers than are alive (`ClusterStats::under_delivered`).

use dashmap::DashMap;
use std::time::{Duration, Instant};

/// How long a stale peer is remembered before it is forgotten (bounded memory).
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Default)]
pub(crate) struct Liveness {
    peers: DashMap<String, Peer>,
    /// Emitters with names (`{"uid","names","emitter":true}`): members of their names,
    /// never peers (they serve no namespace and answer no request).
    emitters: DashMap<String, (Instant, Vec<String>)>,
}

struct Peer {
    seen: Instant,
    /// The namespaces it serves; `None` from a heartbeat without the list.
    nsps: Option<Vec<String>>,
    /// The names it announces (`ClusterOptions::name`).
    names: Vec<String>,
}

/// Namespaces listed in one heartbeat, at most (a bound on what a peer makes us keep).
const MAX_NSPS: usize = 1024;
/// Named emitters remembered, at most.
const MAX_EMITTERS: usize = 4096;

/// The valid names of a heartbeat.
fn names_of(v: &serde_json::Value) -> Vec<String> {
    v.get("names")
        .and_then(|n| n.as_array())
        .map(|n| {
            n.iter()
                .take(crate::wire::named::MAX_NAMES)
                .filter_map(|s| s.as_str())
                .filter(|s| crate::wire::named::valid_name(s))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Liveness {
    /// A heartbeat payload arrived; `true` when it is an emitter's probe
    /// (`{"uid":"…","probe":true}`), to answer with a heartbeat at once.
    pub(crate) fn on_heartbeat(&self, own_uid: &str, payload: &[u8]) -> Result<bool, String> {
        let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let uid = v
            .get("uid")
            .and_then(|u| u.as_str())
            .ok_or("heartbeat without uid")?;
        if uid == own_uid || uid.len() > 64 {
            return Ok(false);
        }
        // An emitter asking who is there: not a peer; answered by a heartbeat at once.
        if v.get("probe").and_then(|p| p.as_bool()) == Some(true) {
            return Ok(true);
        }
        let emitter = v.get("emitter").and_then(|p| p.as_bool()) == Some(true);
        if v.get("leave").and_then(|l| l.as_bool()) == Some(true) {
            self.peers.remove(uid);
            self.emitters.remove(uid);
        } else if emitter {
            let names = names_of(&v);
            self.emitters
                .retain(|_, (seen, _)| seen.elapsed() < FORGET_AFTER);
            if self.emitters.len() < MAX_EMITTERS || self.emitters.contains_key(uid) {
                self.emitters
                    .insert(uid.to_owned(), (Instant::now(), names));
            }
        } else {
            let nsps = v.get("nsps").and_then(|n| n.as_array()).map(|n| {
                n.iter()
                    .take(MAX_NSPS)
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            });
            let names = names_of(&v);
            let peer = Peer {
                seen: Instant::now(),
                nsps,
                names,
            };
            self.peers.insert(uid.to_owned(), peer);
        }
        Ok(false)
    }

    /// Live peers (heard from within `timeout`) that serve namespace `nsp`.
    pub(crate) fn live_serving(&self, nsp: &str, timeout: Duration) -> usize {
        let now = Instant::now();
        self.peers
            .iter()
            .filter(|e| now.duration_since(e.seen) < timeout)
            .filter(|e| e.nsps.as_ref().is_some_and(|n| n.iter().any(|x| x == nsp)))
            .count()
    }

    /// Peers not heard from for `timeout`.
    pub(crate) fn stale(&self, timeout: Duration) -> Vec<String> {
        let now = Instant::now();
        self.peers
            .retain(|_, p| now.duration_since(p.seen) < FORGET_AFTER);
        self.peers
            .iter()
            .filter(|e| now.duration_since(e.seen) >= timeout)
            .map(|e| e.key().clone())
            .collect()
    }

    /// Peers currently known (live or stale).
    #[cfg(test)]
    pub(crate) fn known(&self) -> usize {
        self.peers.len()
    }

    /// Live peers (heard from within `timeout`) that announce `name`, or whose uid is
    /// `name`; sorted.
    pub(crate) fn members(&self, name: &str, timeout: Duration) -> Vec<String> {
        let now = Instant::now();
        let mut out: Vec<String> = self
            .peers
            .iter()
            .filter(|e| now.duration_since(e.seen) < timeout)
            .filter(|e| e.key() == name || e.names.iter().any(|n| n == name))
            .map(|e| e.key().clone())
            .collect();
        out.extend(
            self.emitters
                .iter()
                .filter(|e| now.duration_since(e.0) < timeout)
                .filter(|e| e.key() == name || e.1.iter().any(|n| n == name))
                .map(|e| e.key().clone()),
        );
        out.sort();
        out
    }

    /// Peers heard from within `timeout`.
    pub(crate) fn live(&self, timeout: Duration) -> Vec<String> {
        let now = Instant::now();
        self.peers
            .iter()
            .filter(|e| now.duration_since(e.seen) < timeout)
            .map(|e| e.key().clone())
            .collect()
    }
}

/// `{"uid":"<uid>","nsps":[…]}`, with `"names":[…]` when the server has names.
pub(crate) fn heartbeat(uid: &str, nsps: &[String], names: &[String]) -> Vec<u8> {
    let v = if names.is_empty() {
        serde_json::json!({ "uid": uid, "nsps": nsps })
    } else {
        serde_json::json!({ "uid": uid, "nsps": nsps, "names": names })
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// `{"uid":"<uid>","leave":true}`.
pub(crate) fn leave(uid: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "uid": uid, "leave": true })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_go_stale_and_leave() {
        let l = Liveness::default();
        l.on_heartbeat("me", &heartbeat("other", &["/".into()], &["api".into()]))
            .unwrap();
        l.on_heartbeat("me", &heartbeat("me", &[], &[])).unwrap();
        assert_eq!(
            l.members("api", Duration::from_secs(60)),
            vec!["other".to_owned()]
        );
        assert_eq!(
            l.members("other", Duration::from_secs(60)),
            vec!["other".to_owned()]
        );
        assert!(l.members("api", Duration::ZERO).is_empty());
        let t = Duration::from_secs(60);
        assert_eq!(
            (l.live_serving("/", t), l.live_serving("/admin", t)),
            (1, 0)
        );
        assert_eq!(l.live_serving("/", Duration::ZERO), 0);
        assert_eq!(l.known(), 1);
        assert!(l.stale(Duration::from_secs(60)).is_empty());
        assert_eq!(l.stale(Duration::ZERO), vec!["other".to_owned()]);
        l.on_heartbeat("me", &leave("other")).unwrap();
        assert_eq!(l.known(), 0);
        assert!(l.on_heartbeat("me", b"garbage").is_err());
        assert!(l.on_heartbeat("me", br#"{"nouid":1}"#).is_err());
    }
}
