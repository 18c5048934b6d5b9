//! Redis channel names, exactly as `@socket.io/redis-adapter` 8.x builds them.
//!
//! | channel | use |
//! | --- | --- |
//! | `<key>#<nsp>#` | broadcast to all, or to two or more rooms |
//! | `<key>#<nsp>#<room>#` | broadcast to exactly one room |
//! | `<key>-request#<nsp>#` | requests (cluster-wide operations) |
//! | `<key>-response#<nsp>#` | responses, shared |
//! | `<key>-response#<nsp>#<uid>#` | responses addressed to one server |
//!
//! Channel names are not escaped (Node compat): a room may contain `#`, and the room is
//! whatever lies between the broadcast prefix and the final `#`.

/// The channel names of one namespace under one key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    broadcast: String,
    pattern: String,
    request: String,
    response: String,
}

impl Channels {
    /// Channels for namespace `nsp` (e.g. `/` or `/admin`) under prefix `key`.
    pub fn new(key: &str, nsp: &str) -> Self {
        let broadcast = format!("{key}#{nsp}#");
        Self {
            pattern: format!("{}*", escape_glob(&broadcast)),
            broadcast,
            request: format!("{key}-request#{nsp}#"),
            response: format!("{key}-response#{nsp}#"),
        }
    }

    /// `<key>#<nsp>#`: broadcasts to everyone or to several rooms.
    pub fn broadcast(&self) -> &str {
        &self.broadcast
    }

    /// `<key>#<nsp>#<room>#`: broadcasts to exactly one room.
    pub fn room(&self, room: &str) -> String {
        format!("{}{room}#", self.broadcast)
    }

    /// Where a broadcast for `rooms` goes: the room channel when there is exactly one room.
    pub fn for_rooms<S: AsRef<str>>(&self, rooms: &[S]) -> String {
        match rooms {
            [room] => self.room(room.as_ref()),
            _ => self.broadcast.clone(),
        }
    }

    /// The glob pattern this server `PSUBSCRIBE`s to for broadcasts.
    ///
    /// Node subscribes to `<key>#<nsp>#*` without escaping; we escape glob characters in the
    /// prefix so that a namespace such as `/a*` does not also receive `/ab`'s traffic.
    /// The channels published on are identical, so this is invisible to Node peers.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// `<key>-request#<nsp>#`.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// `<key>-response#<nsp>#`.
    pub fn response(&self) -> &str {
        &self.response
    }

    /// `<key>-response#<nsp>#<uid>#`.
    pub fn response_for(&self, uid: &str) -> String {
        format!("{}{uid}#", self.response)
    }

    /// What a message on `channel` targets: `Some(None)` for the main broadcast channel,
    /// `Some(Some(room))` for a room channel, `None` when the channel is not a broadcast
    /// channel of this namespace.
    pub fn parse_broadcast<'c>(&self, channel: &'c str) -> Option<Option<&'c str>> {
        let rest = channel.strip_prefix(self.broadcast.as_str())?;
        if rest.is_empty() {
            return Some(None);
        }
        // Node compat: `channel.slice(prefix.length, -1)` keeps inner `#`.
        rest.strip_suffix('#').map(Some)
    }
}

/// Escapes the characters Redis glob patterns treat specially.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `channel` matches a pattern produced by [`Channels::pattern`] (a literal,
/// possibly escaped, prefix followed by `*`). Used by the in-process transport.
pub fn pattern_matches(pattern: &str, channel: &str) -> bool {
    let Some(prefix) = pattern.strip_suffix('*') else {
        return pattern == channel;
    };
    let mut lit = String::with_capacity(prefix.len());
    let mut chars = prefix.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                lit.push(n);
            }
        } else {
            lit.push(c);
        }
    }
    channel.starts_with(&lit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_node() {
        let c = Channels::new("socket.io", "/");
        assert_eq!(c.broadcast(), "socket.io#/#");
        assert_eq!(c.pattern(), "socket.io#/#*");
        assert_eq!(c.room("room1"), "socket.io#/#room1#");
        assert_eq!(c.request(), "socket.io-request#/#");
        assert_eq!(c.response(), "socket.io-response#/#");
        assert_eq!(c.response_for("zvx_1S"), "socket.io-response#/#zvx_1S#");
        let admin = Channels::new("socket.io", "/admin");
        assert_eq!(admin.room("adminroom"), "socket.io#/admin#adminroom#");
    }

    #[test]
    fn single_room_uses_room_channel() {
        let c = Channels::new("k", "/");
        assert_eq!(c.for_rooms::<&str>(&[]), "k#/#");
        assert_eq!(c.for_rooms(&["a"]), "k#/#a#");
        assert_eq!(c.for_rooms(&["a", "b"]), "k#/#");
    }

    #[test]
    fn parses_rooms_with_hash() {
        let c = Channels::new("socket.io", "/");
        assert_eq!(c.parse_broadcast("socket.io#/#"), Some(None));
        assert_eq!(
            c.parse_broadcast("socket.io#/#room#hash#"),
            Some(Some("room#hash"))
        );
        assert_eq!(c.parse_broadcast("socket.io#/#42#"), Some(Some("42")));
        assert_eq!(c.parse_broadcast("socket.io#/admin#"), None);
        assert_eq!(c.parse_broadcast("socket.io#/#noterminator"), None);
    }

    #[test]
    fn glob_characters_are_escaped() {
        let c = Channels::new("socket.io", "/a*");
        assert_eq!(c.pattern(), "socket.io#/a\\*#*");
        assert!(pattern_matches(c.pattern(), "socket.io#/a*#room#"));
        assert!(!pattern_matches(c.pattern(), "socket.io#/ab#"));
        assert!(pattern_matches("socket.io#/#*", "socket.io#/#"));
        assert!(!pattern_matches("socket.io#/#*", "socket.io#/admin#"));
    }
}
