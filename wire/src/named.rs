//! Messages between named servers (ours only; Node servers never subscribe to these
//! channels): requests to one or every member of a name, fire-and-forget events, and
//! replies. One channel per server or emitter, `<key>-named#<uid>#`; JSON objects.
//!
//! ```text
//! {"t":"req","id":"<16 hex>","from":"<uid>","nsp":"/","ev":"job","args":[..],"dl":<µs>}
//! {"t":"emit","from":"<uid>","nsp":"/","ev":"reload","args":[..],"dl":<µs>}
//! {"t":"res","id":"<16 hex>","from":"<uid>","ok":<value>}
//! {"t":"res","id":"<16 hex>","from":"<uid>","err":"<message>"}
//! ```
//!
//! `dl` is the deadline in microseconds since the Unix epoch (0: none): a member that
//! reads the message after it drops it instead of doing late work. Heartbeats list each
//! server's names (`"names":["api"]`); a uid is always its own server's name.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `<key>-named#<uid>#`: where messages for server (or emitter) `uid` go.
pub fn channel(key: &str, uid: &str) -> String {
    format!("{key}-named#{uid}#")
}

/// Longest name accepted (in heartbeats and options).
pub const MAX_NAME: usize = 64;
/// Most names one server announces.
pub const MAX_NAMES: usize = 8;

/// Whether `name` can be announced: 1 to [`MAX_NAME`] bytes, no `#`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.contains('#')
}

/// A request or event a handler receives (a server's or a named emitter's).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NamedRequest {
    /// The sender's uid (a server's, or an emitter's).
    pub from: String,
    /// The event.
    pub event: String,
    /// Its arguments, as JSON.
    pub args: Vec<serde_json::Value>,
}

/// One member's reply.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NamedReply {
    /// The member's uid.
    pub from: String,
    /// What its handler returned, or why there is nothing (no handler for the event
    /// there, the handler failed, busy).
    pub result: Result<serde_json::Value, String>,
}

/// How long to wait for replies, and how long a request stays worth doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ask {
    timeout: Option<Duration>,
    ttl: Option<Duration>,
}

impl Ask {
    /// Wait at most `t` for the replies (default: the requester's `requests_timeout`).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// A member that reads the request later than `t` after it was sent drops it
    /// (counted by servers in `stats().named_expired`). Default: no deadline.
    pub fn ttl(mut self, t: Duration) -> Self {
        self.ttl = Some(t);
        self
    }

    /// The timeout, or `default` when none was set.
    pub fn timeout_or(&self, default: Duration) -> Duration {
        self.timeout.unwrap_or(default)
    }

    /// The `dl` of a message sent now: 0 without a ttl.
    pub fn deadline(&self) -> u64 {
        self.ttl.map_or(0, |t| {
            now_us().saturating_add(u64::try_from(t.as_micros()).unwrap_or(u64::MAX))
        })
    }
}

/// The arguments of a request as JSON values: a tuple or array spreads into several,
/// `()` is none, anything else is one.
pub fn args_of(args: &impl Serialize) -> Result<Vec<serde_json::Value>, serde_json::Error> {
    Ok(match serde_json::to_value(args)? {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Null => Vec::new(),
        other => vec![other],
    })
}

/// A [`NamedMessage`] as its receiver handles it ([`NamedMessage::into_incoming`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A reply to request `id`.
    Reply {
        /// The request's id.
        id: String,
        /// The reply.
        reply: NamedReply,
    },
    /// A request (`id` set: a reply is expected) or an event, for namespace `nsp`.
    Request {
        /// The request's id; `None` for an event.
        id: Option<String>,
        /// The namespace whose handler runs.
        nsp: String,
        /// What the handler gets.
        req: NamedRequest,
    },
}

/// One message on a named channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum NamedMessage {
    /// A request: one reply expected.
    Req {
        /// Correlation id.
        id: String,
        /// The requester's uid (where the reply goes).
        from: String,
        /// The namespace whose handler answers.
        nsp: String,
        /// The event (handler) name.
        ev: String,
        /// Arguments.
        #[serde(default)]
        args: Vec<serde_json::Value>,
        /// Deadline, µs since the Unix epoch; 0: none.
        #[serde(default)]
        dl: u64,
    },
    /// An event without reply.
    Emit {
        /// The sender's uid.
        from: String,
        /// The namespace.
        nsp: String,
        /// The event.
        ev: String,
        /// Arguments.
        #[serde(default)]
        args: Vec<serde_json::Value>,
        /// Deadline, µs since the Unix epoch; 0: none.
        #[serde(default)]
        dl: u64,
    },
    /// A reply: `ok` with the handler's value, or `err` with why there is none.
    Res {
        /// The request's id.
        id: String,
        /// The replier's uid.
        from: String,
        /// The value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<serde_json::Value>,
        /// Why there is no value (no handler, the handler failed, busy).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        err: Option<String>,
    },
}

impl NamedMessage {
    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads one message.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The reply of `from` to request `id`: `ok` with the value, or `err`.
    pub fn reply(id: String, from: String, res: Result<serde_json::Value, String>) -> Self {
        let (ok, err) = match res {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        NamedMessage::Res { id, from, ok, err }
    }

    /// What it is for its receiver: a reply, or a request (an event has no id).
    pub fn into_incoming(self) -> Incoming {
        match self {
            NamedMessage::Res { id, from, ok, err } => Incoming::Reply {
                id,
                reply: NamedReply {
                    from,
                    result: match (ok, err) {
                        (_, Some(e)) => Err(e),
                        (v, None) => Ok(v.unwrap_or(serde_json::Value::Null)),
                    },
                },
            },
            NamedMessage::Req {
                id,
                from,
                nsp,
                ev,
                args,
                ..
            } => Incoming::Request {
                id: Some(id),
                nsp,
                req: NamedRequest {
                    from,
                    event: ev,
                    args,
                },
            },
            NamedMessage::Emit {
                from,
                nsp,
                ev,
                args,
                ..
            } => Incoming::Request {
                id: None,
                nsp,
                req: NamedRequest {
                    from,
                    event: ev,
                    args,
                },
            },
        }
    }

    /// Whether its deadline passed at `now_us` (µs since the epoch).
    pub fn expired(&self, now_us: u64) -> bool {
        match self {
            NamedMessage::Req { dl, .. } | NamedMessage::Emit { dl, .. } => {
                *dl != 0 && now_us >= *dl
            }
            NamedMessage::Res { .. } => false,
        }
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_the_documented_bytes() {
        let req = NamedMessage::Req {
            id: "0123456789abcdef".into(),
            from: "srvA".into(),
            nsp: "/".into(),
            ev: "job".into(),
            args: vec![serde_json::json!(42)],
            dl: 1_700_000_000_000_000,
        };
        let bytes = req.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"t":"req","id":"0123456789abcdef","from":"srvA","nsp":"/","ev":"job","args":[42],"dl":1700000000000000}"#
        );
        assert_eq!(NamedMessage::decode(&bytes).unwrap(), req);
        assert!(req.expired(1_700_000_000_000_000));
        assert!(!req.expired(1_699_999_999_999_999));
        let res = NamedMessage::Res {
            id: "0123456789abcdef".into(),
            from: "srvB".into(),
            ok: Some(serde_json::json!({"done": true})),
            err: None,
        };
        assert_eq!(
            String::from_utf8(res.encode()).unwrap(),
            r#"{"t":"res","id":"0123456789abcdef","from":"srvB","ok":{"done":true}}"#
        );
        assert!(NamedMessage::decode(br#"{"t":"other"}"#).is_err());
        assert!(NamedMessage::decode(b"garbage").is_err());
        assert_eq!(channel("k", "u1"), "k-named#u1#");
        assert!(valid_name("api") && !valid_name("") && !valid_name("a#b"));
    }
}
