//! Refusing a message from its first bytes, before decoding it.
//!
//! A receiver sees a message's declared length (from the Redis protocol) and its first
//! [`HEAD`] bytes before the rest has arrived. The functions here decide from those alone
//! whether the message can be of any use. They are *sound* with respect to the full
//! decoders ([`codec::decode`](crate::codec::decode), `BroadcastMessage::decode`,
//! `Request::decode`, `Response::decode`): they refuse only what the full decoding would
//! also refuse, so that nothing a Node server or ours would deliver is lost; what they let
//! through is decoded as before. What they refuse is counted by the caller as malformed.
//!
//! * [`broadcast`]: `[uid, packet, opts, …]`: a msgpack array of at least 3 items whose
//!   second item is a map.
//! * [`request`] (requests and responses): JSON (first byte `{`) or a msgpack map.
//! * [`heartbeat`]: a small JSON object.
//!
//! Within the head, the msgpack bytes are walked without allocating (`walk`): an invalid
//! marker (`c1`), a string, binary, extension, array or map claiming more bytes than the
//! message holds, nesting deeper than [`MAX_DEPTH`], invalid UTF-8
//! in a string that ends within the head, and (when the whole message is in the head)
//! truncation or trailing bytes are refused, exactly as the decoder refuses them. A JSON
//! head is scanned for nesting deeper than the decoders accept.

use crate::codec::MAX_DEPTH;

/// How many first bytes of a message the checks look at.
pub const HEAD: usize = 256;

/// Why a message was refused (for the log).
pub type Refusal = &'static str;

/// A message on a broadcast channel (`<key>#<nsp>#…`): `head` is its first bytes (at most
/// [`HEAD`], all of them when it is shorter), `len` its whole length.
pub fn broadcast(head: &[u8], len: usize) -> Result<(), Refusal> {
    let head = &head[..head.len().min(len)];
    // Node compat: `[uid, packet, opts] = decode(msg)`; ours needs an array of at least
    // three items whose packet is a map (anything else is skipped and counted).
    match head.first() {
        None => return Err("empty broadcast"),
        Some(0x90..=0x92) => return Err("broadcast array has fewer than 3 items"),
        Some(0x93..=0x9f | 0xdc | 0xdd) => {}
        Some(_) => return Err("broadcast is not a msgpack array"),
    }
    let mut w = Walker::new(head, len);
    // The array's header.
    if !w.step()? {
        return Ok(());
    }
    let count = w.open[0];
    if count < 3 {
        return Err("broadcast array has fewer than 3 items");
    }
    // The uid, whatever it is (Node compares it only).
    while !(w.depth == 1 && w.open[0] == count - 1) {
        if !w.step()? {
            return Ok(());
        }
    }
    match w.byte(w.pos) {
        // The packet: a map, or nothing to say yet.
        Some(0x80..=0x8f | 0xde | 0xdf) | None => {}
        Some(_) => return Err("broadcast packet is not a map"),
    }
    w.finish()
}

/// A message on a request or response channel (`<key>-request#<nsp>#`,
/// `<key>-response#<nsp>#[<uid>#]`): JSON when it starts with `{`, else a msgpack map.
pub fn request(head: &[u8], len: usize) -> Result<(), Refusal> {
    let head = &head[..head.len().min(len)];
    match head.first() {
        None => Err("empty request"),
        Some(b'{') => json_depth(head, MAX_DEPTH),
        Some(0x80..=0x8f | 0xde | 0xdf) => Walker::new(head, len).finish(),
        Some(_) => Err("request is neither a JSON object nor a msgpack map"),
    }
}

/// Longest heartbeat accepted (ours are about 40 bytes: `{"uid":"<16>","leave":true}`).
pub const HEARTBEAT_MAX: usize = 1024;

/// A message on a named channel (`named.rs`): a JSON object.
pub fn named(head: &[u8], len: usize) -> Result<(), Refusal> {
    json_object(&head[..head.len().min(len)]).ok_or("named message is not a JSON object")?
}

/// `Some` when `head` starts (after JSON whitespace) with `{`: its depth check.
fn json_object(head: &[u8]) -> Option<Result<(), Refusal>> {
    // serde_json skips leading whitespace, and stops at 128 levels (read by serde_json
    // alone, so no `MAX_DEPTH` here).
    let i = head
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    (head[i] == b'{').then(|| json_depth(&head[i..], SERDE_JSON_DEPTH))
}

/// A message on `<key>-heartbeat` (our servers' liveness, JSON).
pub fn heartbeat(head: &[u8], len: usize) -> Result<(), Refusal> {
    if len > HEARTBEAT_MAX {
        return Err("heartbeat larger than 1 KiB");
    }
    json_object(&head[..head.len().min(len)]).ok_or("heartbeat is not a JSON object")?
}

/// Nesting at which serde_json gives up ("recursion limit exceeded").
const SERDE_JSON_DEPTH: usize = 127;

/// Refuses JSON whose brackets, outside strings, open a container deeper than `max`
/// (0 = the top level). `request::decode_any` refuses any value deeper than `MAX_DEPTH`,
/// so a container there is refused as well. Invalid JSON is refused by the decoders
/// anyway, so miscounting it here loses nothing.
fn json_depth(head: &[u8], max: usize) -> Result<(), Refusal> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in head {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                // The container opened here sits at depth `depth`.
                if depth > max {
                    return Err("JSON nested too deep");
                }
                depth += 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Walks msgpack in a message's head without allocating; see the module docs.
struct Walker<'a> {
    head: &'a [u8],
    /// The whole message's length (`>= head.len()`).
    len: usize,
    pos: usize,
    /// Items still to read in each open container (`open[..depth]`, innermost last).
    open: [usize; MAX_DEPTH + 2],
    depth: usize,
}

impl<'a> Walker<'a> {
    fn new(head: &'a [u8], len: usize) -> Self {
        Walker {
            head,
            len: len.max(head.len()),
            pos: 0,
            open: [0; MAX_DEPTH + 2],
            depth: 0,
        }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.head.get(at).copied()
    }

    /// The big-endian length of `n` bytes after the marker, if within the head.
    fn length(&self, n: usize) -> Option<usize> {
        let bytes = self.head.get(self.pos + 1..self.pos + 1 + n)?;
        Some(bytes.iter().fold(0usize, |acc, &b| acc << 8 | b as usize))
    }

    /// Walks the rest of the head.
    fn finish(mut self) -> Result<(), Refusal> {
        while self.step()? {}
        Ok(())
    }

    /// Reads one item's marker (with its length header, and a string's, binary's or
    /// number's bytes); a container's items are the next steps. `Ok(false)` when the head
    /// ends before a verdict (or the whole message was read and is well formed).
    fn step(&mut self) -> Result<bool, Refusal> {
        if self.depth == 0 && self.pos > 0 {
            return if self.pos < self.len {
                Err("trailing bytes")
            } else {
                Ok(false)
            };
        }
        if self.pos >= self.len {
            return Err("truncated");
        }
        let Some(m) = self.byte(self.pos) else {
            return Ok(false);
        };
        if self.depth > MAX_DEPTH {
            return Err("nested too deep");
        }
        // (length-header bytes after the marker, then data bytes, then items); `None`
        // when the length header is cut by the end of the head.
        let lengthed = |n: usize, data: usize| self.length(n).map(|len| (n, len + data, 0));
        let shape: Option<(usize, usize, usize)> = match m {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => Some((0, 0, 0)),
            0x80..=0x8f => Some((0, 0, 2 * (m & 0x0f) as usize)),
            0x90..=0x9f => Some((0, 0, (m & 0x0f) as usize)),
            0xa0..=0xbf => Some((0, (m & 0x1f) as usize, 0)),
            0xc1 => return Err("reserved marker 0xc1"),
            0xc4..=0xc6 => lengthed(1 << (m - 0xc4), 0),
            // The extension's type byte, then its data.
            0xc7..=0xc9 => lengthed(1 << (m - 0xc7), 1),
            0xca => Some((0, 4, 0)),
            0xcb => Some((0, 8, 0)),
            0xcc..=0xcf => Some((0, 1 << (m - 0xcc), 0)),
            0xd0..=0xd3 => Some((0, 1 << (m - 0xd0), 0)),
            0xd4..=0xd8 => Some((0, 1 + (1 << (m - 0xd4)), 0)),
            0xd9..=0xdb => lengthed(1 << (m - 0xd9), 0),
            0xdc | 0xdd => {
                let n = if m == 0xdc { 2 } else { 4 };
                self.length(n).map(|count| (n, 0, count))
            }
            0xde | 0xdf => {
                let n = if m == 0xde { 2 } else { 4 };
                self.length(n).map(|count| (n, 0, count.saturating_mul(2)))
            }
        };
        let header = match m {
            0xc4 | 0xc7 | 0xd9 => 1,
            0xc5 | 0xc8 | 0xda | 0xdc | 0xde => 2,
            0xc6 | 0xc9 | 0xdb | 0xdd | 0xdf => 4,
            _ => 0,
        };
        let after_header = (self.len - self.pos - 1).checked_sub(header);
        let Some(after_header) = after_header else {
            return Err("truncated");
        };
        let Some((_, bytes, items)) = shape else {
            return Ok(false); // the length header continues after the head
        };
        if bytes > after_header {
            return Err("length larger than the message");
        }
        // Every item takes at least one byte (so a map's entry two).
        if items > after_header {
            return Err("more items than bytes in the message");
        }
        let start = self.pos + 1 + header;
        if matches!(m, 0xa0..=0xbf | 0xd9..=0xdb)
            && let Some(s) = self.head.get(start..start + bytes)
            && std::str::from_utf8(s).is_err()
        {
            return Err("invalid UTF-8 in string");
        }
        self.pos = start + bytes;
        if self.depth > 0 {
            self.open[self.depth - 1] -= 1;
        }
        if items > 0 {
            self.open[self.depth] = items;
            self.depth += 1;
        } else if self.depth == 0 {
            // A top-level scalar or empty container: the value is complete.
            return self.step();
        }
        // Close the containers whose items were all read.
        while self.depth > 0 && self.open[self.depth - 1] == 0 {
            self.depth -= 1;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{BroadcastMessage, EVENT, NodePacket, WireOptions};
    use rmpv::Value;

    fn valid_broadcast() -> Vec<u8> {
        BroadcastMessage {
            uid: "zvx_1S".into(),
            packet: NodePacket {
                kind: EVENT,
                data: vec![Value::from("hello"), Value::from("world")],
                nsp: Some("/".into()),
                id: None,
            },
            opts: WireOptions::new(vec![], vec![], vec![]),
        }
        .encode()
    }

    /// The head of `msg` as a receiver sees it.
    fn head(msg: &[u8]) -> &[u8] {
        &msg[..msg.len().min(HEAD)]
    }

    fn b(msg: &[u8]) -> Result<(), Refusal> {
        broadcast(head(msg), msg.len())
    }

    fn r(msg: &[u8]) -> Result<(), Refusal> {
        request(head(msg), msg.len())
    }

    #[test]
    fn valid_broadcasts_pass() {
        let msg = valid_broadcast();
        assert_eq!(b(&msg), Ok(()));
        // Every fixture captured from the real Node packages passes.
        let dir = crate::test_fixtures::fixtures_dir();
        let mut n = 0;
        for sub in [
            "redis-adapter-8.3.0",
            "redis-emitter-5.1.0",
            "socket.io-emitter-3.2.0",
        ] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "bin") {
                    let bytes = std::fs::read(&path).unwrap();
                    if BroadcastMessage::decode(&bytes).is_ok() {
                        assert_eq!(b(&bytes), Ok(()), "{}", path.display());
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 5, "only {n} fixtures");
        // A long message: only its head is looked at.
        let mut long = valid_broadcast();
        long.truncate(40);
        assert_eq!(broadcast(&long, 1_000_000), Ok(()));
        // Node delivers these: uid of any type, more than three items, array16 header.
        let shapes: [&[u8]; 4] = [
            b"\x93\xc0\x81\xa4type\x02\x80",
            b"\x93\x90\x81\xa4type\x02\x80",
            b"\x94\x05\x81\xa4type\x02\x80\x80",
            b"\xdc\x00\x03\xa1a\x81\xa4type\x02\x90",
        ];
        for s in shapes {
            assert_eq!(b(s), Ok(()), "{s:02x?}");
        }
    }

    #[test]
    fn refuses_broadcasts_from_their_first_bytes() {
        let cases: &[&[u8]] = &[
            b"",
            b"{\"uid\":1}",
            b"\x92\xa1a\x80",
            b"\xdc\x00\x02\xa1a\x80",
            // packet not a map
            b"\x93\xa1a\x05\x80",
            b"\x93\xa1a\x90\x80",
            b"\x93\x91\x91\x00\xa1x\x80",
            // a declared length beyond the message, at the top, in the uid, in the packet
            b"\xdd\x7f\xff\xff\xff\x01\x01\x01",
            b"\x93\xdb\x7f\xff\xff\xff\x01\x01\x01",
            b"\x93\xa7garbage\x83\xa4type\x02\xa4data\xdd\x7f\xff\xff\xff\x01",
            b"\x93\xa7garbage\x83\xa4type\x02\xa4data\xc6\x7f\xff\xff\xff\x01",
            // reserved marker, invalid UTF-8, truncated, trailing bytes
            b"\x93\xc1\x80\x80",
            b"\x93\xa2\xff\xfe\x80\x80",
            b"\x93\xa1a\x81\xa4type",
            b"\x93\xa1a\x80\x80\x00",
        ];
        for c in cases {
            assert!(b(c).is_err(), "{c:02x?} passed");
            // The full decoder refuses each too (the check is sound).
            assert!(BroadcastMessage::decode(c).is_err(), "{c:02x?}");
        }
        // Nesting deeper than the decoder accepts, seen within the head of a long message.
        let mut deep = vec![0x93, 0xa1, b'a'];
        deep.extend([0x91; 100]);
        assert!(broadcast(&deep, 100_000).is_err());
        let mut deep = vec![0x93, 0xa1, b'a', 0x81, 0xa4];
        deep.extend(b"data");
        deep.extend([0x91; 70]);
        assert!(broadcast(&deep, 100_000).is_err());
        // 64 levels are fine.
        let mut ok = vec![0x93, 0xa1, b'a', 0x81, 0xa4];
        ok.extend(b"data");
        ok.extend([0x91; 62]);
        assert_eq!(broadcast(&ok, 100_000), Ok(()));
    }

    #[test]
    fn requests_json_or_msgpack_maps() {
        for ok in [
            &br#"{"uid":"a","requestId":"b","type":1}"#[..],
            b"\x83\xa4type\x07\xa3uid\xa1a\xa9requestId\xa1b",
        ] {
            assert_eq!(r(ok), Ok(()));
        }
        let bad: &[&[u8]] = &[
            b"",
            b" {\"type\":1}",
            b"[1,2,3]",
            b"\x93\x01\x02\x03",
            b"\xdf\x7f\xff\xff\xff\x01\x02",
            b"\x81\xa4type\xc1",
        ];
        for c in bad {
            assert!(r(c).is_err(), "{c:02x?} passed");
            assert!(crate::request::Request::decode(c).is_err(), "{c:02x?}");
            assert!(crate::request::Response::decode(c).is_err(), "{c:02x?}");
        }
        let mut deep = br#"{"type":"x","a":"#.to_vec();
        deep.extend([b'['; 200]);
        assert!(request(&deep, 100_000).is_err());
        // The decoder refuses it too (once complete).
        deep.extend([b']'; 200]);
        deep.push(b'}');
        assert!(crate::request::Request::decode(&deep).is_err());
        // Brackets inside strings are text.
        let text = format!(r#"{{"type":1,"s":"{}"}}"#, "[".repeat(200));
        assert_eq!(r(text.as_bytes()), Ok(()));
        let escaped = format!(r#"{{"type":1,"s":"\"{}"}}"#, "[".repeat(200));
        assert_eq!(r(escaped.as_bytes()), Ok(()));
    }

    #[test]
    fn json_depth_matches_the_decoder() {
        // The object is depth 0 and data's array depth 1: `levels` nested arrays reach
        // depth `levels`; both refuse from 65 on.
        for levels in 60..70 {
            let msg = format!(
                r#"{{"type":6,"data":{}{}}}"#,
                "[".repeat(levels),
                "]".repeat(levels)
            );
            let screened = r(msg.as_bytes()).is_ok();
            let decoded = crate::request::decode_any(msg.as_bytes()).is_ok();
            assert_eq!(screened, decoded, "{levels} levels");
            assert_eq!(screened, levels <= MAX_DEPTH, "{levels} levels");
        }
    }

    /// Soundness over mutations of real messages: whatever the screen refuses, the full
    /// decoders refuse too.
    #[test]
    fn never_refuses_what_decodes() {
        let mut seeds = vec![valid_broadcast()];
        let dir = crate::test_fixtures::fixtures_dir();
        for sub in [
            "redis-adapter-8.3.0",
            "redis-emitter-5.1.0",
            "socket.io-emitter-3.2.0",
        ] {
            for e in std::fs::read_dir(dir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.path().extension().is_some_and(|x| x == "bin") {
                    seeds.push(std::fs::read(e.path()).unwrap());
                }
            }
        }
        let (mut tried, mut refused) = (0usize, 0usize);
        let mut check = |m: &[u8]| {
            tried += 1;
            if b(m).is_err() {
                refused += 1;
                assert!(BroadcastMessage::decode(m).is_err(), "{m:02x?}");
            }
            if r(m).is_err() {
                assert!(crate::request::Request::decode(m).is_err(), "{m:02x?}");
                assert!(crate::request::Response::decode(m).is_err(), "{m:02x?}");
            }
        };
        for seed in &seeds {
            for cut in 0..seed.len() {
                check(&seed[..cut]);
            }
            for at in 0..seed.len().min(64) {
                for v in [
                    0x00, 0x01, 0x7f, 0x80, 0x90, 0x93, 0xa0, 0xc0, 0xc1, 0xc4, 0xc6, 0xcc, 0xd9,
                    0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff,
                ] {
                    let mut m = seed.clone();
                    m[at] = v;
                    check(&m);
                    m.push(0);
                    check(&m);
                }
            }
        }
        assert!(refused * 4 > tried, "refused only {refused} of {tried}");
    }

    #[test]
    fn heartbeats() {
        assert_eq!(heartbeat(br#"{"uid":"abc"}"#, 13), Ok(()));
        assert_eq!(heartbeat(b" {\"uid\":\"abc\"}", 14), Ok(()));
        assert!(heartbeat(b"\x93\x01", 2).is_err());
        assert!(heartbeat(b"[1]", 3).is_err());
        assert!(heartbeat(b"{", 5000).is_err());
    }
}
