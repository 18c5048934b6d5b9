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
