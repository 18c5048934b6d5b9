//! A seeded generator of malformed messages (garbage) for the channels a cluster server
//! listens to, and a pipelined publisher for it: what `benches/flood.rs` and
//! `tests/flood.rs` throw at a server while valid broadcasts flow.
//!
//! Every message is unusable for a server (Node's or ours): it must be skipped and
//! counted in `ClusterStats::malformed`, never delivered, answered or crash anything.
//! Kinds, in turn (message `k` is of kind `k % 5`; sizes are log-uniform between 16 B and
//! [`FloodSpec::max_size`]):
//!
//! 0. **truncated msgpack with huge declared lengths**: a broadcast prefix
//!    (`93 a7 "garbage" 83 a4 "type" 02 a4 "data"`) then an array, string or binary header
//!    claiming up to 2^31 items or bytes, then filler; or a bare `c6`/`dd`/`df` header;
//!    or a JSON request cut off inside a string.
//! 1. **random bytes**.
//! 2. **wrong types**: well-formed msgpack of the wrong shape: a long array of small
//!    integers, a map of integers, a broadcast whose `packet.type` is a string and whose
//!    data is a long list of strings.
//! 3. **JSON**: a well-formed object with `type: "x"` (no request type, no `uid`, no
//!    `requestId`) and a long array, or a long JSON array.
//! 4. **deep nesting**: up to [`FloodSpec::max_depth`] levels (msgpack `91 91 91 …`,
//!    JSON `[[[…]]]` and `{"type":"x","a":[[[…]]]}`).
//!
//! Every [`FloodSpec::huge_every`]-th message is instead [`FloodSpec::huge_size`] random
//! bytes behind a broadcast-like `93` (far larger than any legitimate message).

use std::time::{Duration, Instant};

/// What to generate.
#[derive(Clone, Debug)]
pub struct FloodSpec {
    /// Messages per channel.
    pub per_channel: usize,
    /// Seed of the generator (the same seed gives the same bytes).
    pub seed: u64,
    /// Largest size of an ordinary message, in bytes (sizes are log-uniform from 16 B).
    pub max_size: usize,
    /// Deepest nesting of the deep-nesting kind.
    pub max_depth: usize,
    /// Every `huge_every`-th message is huge (0: none).
    pub huge_every: usize,
    /// Size of a huge message.
    pub huge_size: usize,
}

impl FloodSpec {
    /// The issue's flood: 10,000 messages per channel, about 460 MB over 7 channels.
    pub fn issue() -> FloodSpec {
        FloodSpec {
            per_channel: 10_000,
            seed: 0x5eed_f100d,
            max_size: 20 * 1024,
            max_depth: 100_000,
            huge_every: 2_000,
            huge_size: 2 * 1024 * 1024,
        }
    }
}

/// xorshift64*: small, seeded, good enough for garbage.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Log-uniform in `lo..=hi`.
    pub fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let (l, h) = ((lo.max(1)) as f64, hi.max(lo.max(1)) as f64);
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((l.ln() + u * (h.ln() - l.ln())).exp() as usize).clamp(lo, hi)
    }
    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

const PREFIX: &[u8] = b"\x93\xa7garbage\x83\xa4type\x02\xa4data";

/// Message number `k` of the flood (see the module docs for the kinds).
pub fn message(spec: &FloodSpec, rng: &mut Rng, k: usize) -> Vec<u8> {
    if spec.huge_every > 0 && k % spec.huge_every == spec.huge_every - 1 {
        let mut m = vec![0x93];
        m.extend(rng.bytes(spec.huge_size.saturating_sub(1)));
        return m;
    }
    let size = rng.log_uniform(16, spec.max_size.max(16));
    let variant = rng.below(3);
    match k % 5 {
        0 => truncated(rng, variant, size),
        1 => rng.bytes(size),
        2 => wrong_types(rng, variant, size),
        3 => json(variant, size),
        _ => deep(variant, rng.log_uniform(10, spec.max_depth.max(10))),
    }
}

fn truncated(rng: &mut Rng, variant: usize, size: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(size + 32);
    match variant {
        0 => {
            m.extend_from_slice(PREFIX);
            // An array, str or bin header claiming more than the message holds.
            let header: &[u8] = match rng.below(3) {
                0 => b"\xdd\x7f\xff\xff\xff",
                1 => b"\xdb\x7f\xff\xff\xff",
                _ => b"\xc6\x7f\xff\xff\xff",
            };
            m.extend_from_slice(header);
            m.resize(m.len() + size, 0x01);
        }
        1 => {
            let header: &[u8] = match rng.below(3) {
                0 => b"\xc6\xff\xff\xff\xf0",
                1 => b"\xdd\xff\xff\xff\xf0",
                _ => b"\xdf\xff\xff\xff\xf0",
            };
            m.extend_from_slice(header);
            m.extend(rng.bytes(size));
        }
        _ => {
            m.extend_from_slice(br#"{"uid":"garbage","type":"x","data":""#);
            m.resize(m.len() + size, b'x');
        }
    }
    m
}

fn wrong_types(rng: &mut Rng, variant: usize, size: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(size + 32);
    match variant {
        0 => {
            // [1, 1, 1, ...]: uid 1, packet 1 (a number: Node throws).
            let n = size.max(3) as u32;
            m.push(0xdd);
            m.extend_from_slice(&n.to_be_bytes());
            m.resize(m.len() + n as usize, 0x01);
        }
        1 => {
            // {1: 2, 1: 2, ...}: no request type; as a broadcast, not an array.
            let n = (size / 2).max(1) as u32;
            m.push(0xdf);
            m.extend_from_slice(&n.to_be_bytes());
            for _ in 0..n {
                m.extend_from_slice(&[0x01, 0x02]);
            }
        }
        _ => {
            // A broadcast-shaped message whose packet type is a string: Node writes
            // "x" + data, which its clients reject. Data: many short strings.
            m.extend_from_slice(b"\x93\xa7garbage\x83\xa4type\xa1x\xa4data");
            let n = (size / 4).max(1) as u32;
            m.push(0xdd);
            m.extend_from_slice(&n.to_be_bytes());
            for i in 0..n {
                m.extend_from_slice(&[0xa2, b'a' + (i % 26) as u8, b'z']);
            }
            m.extend_from_slice(b"\xa3nsp\xa1/\x83\xa5rooms\x90\xa6except\x90\xa5flags\x80");
            let _ = rng;
        }
    }
    m
}

fn json(variant: usize, size: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(size + 32);
    if variant == 0 {
        m.extend_from_slice(b"[");
        while m.len() < size {
            m.extend_from_slice(b"1,");
        }
        m.extend_from_slice(b"1]");
    } else {
        m.extend_from_slice(br#"{"type":"x","pad":["#);
        while m.len() < size {
            m.extend_from_slice(br#""abc","#);
        }
        m.extend_from_slice(br#""end"]}"#);
    }
    m
}

fn deep(variant: usize, depth: usize) -> Vec<u8> {
    match variant {
        0 => {
            let mut m = vec![0x91; depth];
            m.push(0x00);
            m
        }
        1 => {
            let mut m = vec![b'['; depth];
            m.resize(depth * 2, b']');
            m
        }
        _ => {
            let mut m = br#"{"type":"x","a":"#.to_vec();
            m.resize(m.len() + depth, b'[');
            m.resize(m.len() + depth, b']');
            m.push(b'}');
            m
        }
    }
}

/// The channels a pair of servers of key `key` listens to for namespace `/` when their
/// sockets are in room `room` (broadcast to all, to the room, requests, both servers'
/// and the shared response channel, heartbeats): the flood's targets.
pub fn channels(key: &str, room: &str, uids: &[&str]) -> Vec<String> {
    let mut c = vec![
        format!("{key}#/#"),
        format!("{key}#/#{room}#"),
        format!("{key}-request#/#"),
        format!("{key}-response#/#"),
    ];
    c.extend(uids.iter().map(|u| format!("{key}-response#/#{u}#")));
    c.push(format!("{key}-heartbeat"));
    c
}

/// What [`publish`] sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    /// Messages published.
    pub messages: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// From the first PUBLISH written to the last reply read.
    pub took: Duration,
}

/// Publishes `spec.per_channel` messages on each of `channels` (message `k` on channel
/// `k % channels.len()`), pipelined over a plain TCP connection of its own (`url` is
/// `redis://host:port`): each message is generated and written as it goes, the replies
/// are read by a second thread, so memory stays at one message plus a 256 KiB write
/// buffer (the huge messages included). Blocking: run it on a thread of its own (or in a
/// process of its own).
pub fn publish(url: &str, channels: &[String], spec: &FloodSpec) -> Sent {
    use std::io::{BufWriter, Read, Write};
    let addr = url
        .strip_prefix("redis://")
        .expect("a redis://host:port URL")
        .trim_end_matches('/');
    let tcp = std::net::TcpStream::connect(addr).expect("flood connection");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let total = spec.per_channel * channels.len();
    let mut reader = tcp.try_clone().unwrap();
    let replies = std::thread::spawn(move || {
        // One line per reply (`:<receivers>\r\n`).
        let (mut lines, mut buf) = (0usize, vec![0u8; 64 * 1024]);
        while lines < total {
            let n = reader.read(&mut buf).expect("flood replies");
            assert!(n > 0, "redis closed the flood connection");
            assert!(buf[0] != b'-', "redis refused a flood PUBLISH");
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        }
    });
    let mut out = BufWriter::with_capacity(256 * 1024, tcp);
    let mut rng = Rng::new(spec.seed);
    let mut sent = Sent::default();
    let started = Instant::now();
    for j in 0..total {
        let m = message(spec, &mut rng, j / channels.len());
        let ch = channels[j % channels.len()].as_bytes();
        write!(out, "*3\r\n$7\r\nPUBLISH\r\n${}\r\n", ch.len()).unwrap();
        out.write_all(ch).unwrap();
        write!(out, "\r\n${}\r\n", m.len()).unwrap();
        out.write_all(&m).unwrap();
        out.write_all(b"\r\n").unwrap();
        sent.bytes += m.len();
        sent.messages += 1;
    }
    out.flush().unwrap();
    replies.join().expect("flood replies");
    sent.took = started.elapsed();
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_flood_is_about_460_mb() {
        let spec = FloodSpec::issue();
        let mut rng = Rng::new(spec.seed);
        let total: usize = (0..spec.per_channel * 7)
            .map(|k| message(&spec, &mut rng, k / 7).len())
            .sum();
        let mb = total as f64 / 1e6;
        assert!((380.0..540.0).contains(&mb), "{mb} MB");
    }
}
