//! A minimal, real socket.io v4 client (engine.io v4 over a websocket, no polling)
//! for integration tests. It speaks both socketioxide parsers:
//!
//! * [`Parser::Json`] — socket.io's default parser. Each websocket *text* message is one
//!   engine.io packet: `0{..}` open, `2`/`3` ping/pong, `4<socket.io packet>` message,
//!   where the socket.io packet is `<type>[<attachments>-][/<nsp>,][<ack id>][json]`,
//!   e.g. `42["ev",1]`, `42/admin,12["ev"]`, `43/admin,12["ok"]`. Binary payloads
//!   (types 5/6, `451-["ev",{"_placeholder":true,"num":0}]`) are followed by one
//!   websocket *binary* message per attachment.
//! * [`Parser::MsgPack`] — socket.io-msgpack-parser. Each socket.io packet is ONE websocket
//!   binary message holding the raw msgpack map `{type, nsp, data?, id?}` — no engine.io
//!   `4` prefix, no base64 (engine.io v4 sends binary packets as raw binary frames).
//!   Binaries are plain msgpack `bin` values inside `data`; type is always 2/3 (never 5/6)
//!   when produced by socketioxide. Engine.io control packets (open, ping) are still text.
//!
//! Arguments are represented as [`Arg`] = [`rmpv::Value`] for BOTH parsers, normalised so
//! the same data compares equal whatever the parser: map entries are sorted by key, f32
//! become f64, JSON binary placeholders are replaced by [`rmpv::Value::Binary`].
//!
//! Acks requested by the server (an event carrying an ack id) are delivered like any other
//! event with [`Event::ack_id`] set. By default they are NOT answered: call
//! [`Client::ack`], or enable automatic replies with [`Client::set_auto_ack`].
//!
//! Every wait is bounded and panics with a message naming the client on timeout.

use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::{Instant, timeout_at},
};
use tokio_tungstenite::{connect_async, tungstenite::Message};

/// One event argument. Binary data is [`rmpv::Value::Binary`].
pub type Arg = rmpv::Value;

/// Bound for the websocket handshake + engine.io open + namespace connect ack.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which socket.io parser the server uses (the client must match it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parser {
    /// socket.io's default parser (text packets, binary attachments).
    Json,
    /// socket.io-msgpack-parser (one binary message per packet).
    MsgPack,
}

impl Parser {
    /// Both parsers, for tests that run once per parser.
    pub const ALL: [Parser; 2] = [Parser::Json, Parser::MsgPack];
}

/// An event received from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// Its arguments, normalised (see the module docs).
    pub args: Vec<Arg>,
    /// Set when the server expects an ack (it used `emit_with_ack`).
    pub ack_id: Option<i64>,
}

impl Event {
    /// Build an expected event (no ack id) for comparisons.
    pub fn new(name: &str, args: Vec<Arg>) -> Event {
        Event {
            name: name.to_string(),
            args,
            ack_id: None,
        }
    }

    /// Argument `i` (panics if there is none).
    pub fn arg(&self, i: usize) -> &Arg {
        self.args
            .get(i)
            .unwrap_or_else(|| panic!("event {self:?} has no argument #{i}"))
    }

    /// Argument `i` as JSON (panics if it contains binary data).
    pub fn json(&self, i: usize) -> serde_json::Value {
        to_json(self.arg(i))
    }

    /// Argument `i` as a string (panics if it is not one).
    pub fn str_arg(&self, i: usize) -> &str {
        self.arg(i)
            .as_str()
            .unwrap_or_else(|| panic!("argument #{i} of {self:?} is not a string"))
    }

    /// Argument `i` as an integer (panics if it is not one).
    pub fn i64_arg(&self, i: usize) -> i64 {
        self.arg(i)
            .as_i64()
            .unwrap_or_else(|| panic!("argument #{i} of {self:?} is not an integer"))
    }

    /// Argument `i` as binary data (panics if it is not binary).
    pub fn bin_arg(&self, i: usize) -> &[u8] {
        self.arg(i)
            .as_slice()
            .unwrap_or_else(|| panic!("argument #{i} of {self:?} is not binary"))
    }
}

/// How the client answers server ack requests automatically.
#[derive(Debug, Clone, PartialEq)]
pub enum AutoAck {
    /// Reply with the event's own arguments.
    Echo,
    /// Reply with these arguments.
    With(Vec<Arg>),
}

/// The server refused the namespace connection (`connect_error` packet, e.g. a middleware
/// returned an error, or the namespace does not exist).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// The server's message (the `message` of the `connect_error` data).
    pub message: String,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connect_error: {}", self.message)
    }
}

// ===== Arg helpers =====

/// Convert JSON to an [`Arg`] (normalised the same way received arguments are).
pub fn arg(v: serde_json::Value) -> Arg {
    json_to_arg(&v, None).expect("json_to_arg without attachments cannot fail")
}

/// A binary [`Arg`].
pub fn bin(b: impl AsRef<[u8]>) -> Arg {
    Arg::Binary(b.as_ref().to_vec())
}

/// Convert JSON values to [`Arg`]s.
pub fn args(v: Vec<serde_json::Value>) -> Vec<Arg> {
    v.into_iter().map(arg).collect()
}

/// Convert an [`Arg`] to JSON. Panics on binary data (and non-string map keys, ext types).
pub fn to_json(a: &Arg) -> serde_json::Value {
    let mut bins = Vec::new();
    let v = arg_to_json(a, &mut bins);
    assert!(
        bins.is_empty(),
        "to_json: argument contains binary data, compare it as an Arg instead: {a:?}"
    );
    v
}

fn json_to_arg(v: &serde_json::Value, bins: Option<&[Vec<u8>]>) -> Result<Arg, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Arg::Nil,
        J::Bool(b) => Arg::Boolean(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                Arg::from(u)
            } else if let Some(i) = n.as_i64() {
                Arg::from(i)
            } else {
                Arg::F64(n.as_f64().expect("json number"))
            }
        }
        J::String(s) => Arg::from(s.as_str()),
        J::Array(a) => Arg::Array(
            a.iter()
                .map(|v| json_to_arg(v, bins))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(o) => {
            if let Some(bins) = bins
                && o.len() == 2
                && o.get("_placeholder") == Some(&J::Bool(true))
                && let Some(num) = o.get("num").and_then(J::as_u64)
            {
                let bin = bins.get(num as usize).ok_or_else(|| {
                    format!("placeholder num {num} but only {} attachments", bins.len())
                })?;
                return Ok(Arg::Binary(bin.clone()));
            }
            let mut entries = o
                .iter()
                .map(|(k, v)| Ok((Arg::from(k.as_str()), json_to_arg(v, bins)?)))
                .collect::<Result<Vec<_>, String>>()?;
            sort_map(&mut entries);
            Arg::Map(entries)
        }
    })
}

/// JSON with binaries replaced by `{"_placeholder":true,"num":N}` and pushed to `bins`.
fn arg_to_json(a: &Arg, bins: &mut Vec<Vec<u8>>) -> serde_json::Value {
    use serde_json::Value as J;
    match a {
        Arg::Nil => J::Null,
        Arg::Boolean(b) => J::Bool(*b),
        Arg::Integer(i) => {
            if let Some(u) = i.as_u64() {
                J::from(u)
            } else {
                J::from(i.as_i64().expect("integer"))
            }
        }
        Arg::F32(f) => J::from(*f as f64),
        Arg::F64(f) => J::from(*f),
        Arg::String(s) => J::String(
            s.as_str()
                .unwrap_or_else(|| panic!("non utf-8 string {s:?}"))
                .to_string(),
        ),
        Arg::Binary(b) => {
            bins.push(b.clone());
            serde_json::json!({ "_placeholder": true, "num": bins.len() - 1 })
        }
        Arg::Array(a) => J::Array(a.iter().map(|v| arg_to_json(v, bins)).collect()),
        Arg::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    let k = k
                        .as_str()
                        .unwrap_or_else(|| panic!("map key {k:?} is not a string"))
                        .to_string();
                    (k, arg_to_json(v, bins))
                })
                .collect(),
        ),
        Arg::Ext(..) => panic!("msgpack ext values are not representable in JSON: {a:?}"),
    }
}

fn sort_map(entries: &mut [(Arg, Arg)]) {
    entries.sort_by(|(a, _), (b, _)| match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => a.cmp(b),
        _ => format!("{a:?}").cmp(&format!("{b:?}")),
    });
}

/// Normalise a msgpack-decoded value: sorted maps, f32 -> f64.
fn normalize(a: Arg) -> Arg {
    match a {
        Arg::F32(f) => Arg::F64(f as f64),
        Arg::Array(a) => Arg::Array(a.into_iter().map(normalize).collect()),
        Arg::Map(m) => {
            let mut m: Vec<_> = m
                .into_iter()
                .map(|(k, v)| (normalize(k), normalize(v)))
                .collect();
            sort_map(&mut m);
            Arg::Map(m)
        }
        a => a,
    }
}

// ===== wire packets =====

/// A decoded socket.io packet received from the server.
#[derive(Debug)]
enum Packet {
    Connect {
        nsp: String,
        data: Option<Arg>,
    },
    Disconnect {
        nsp: String,
    },
    Event {
        nsp: String,
        event: Event,
    },
    Ack {
        nsp: String,
        id: i64,
        args: Vec<Arg>,
    },
    ConnectError {
        nsp: String,
        data: Arg,
    },
}

/// A socket.io packet to send.
enum Out<'a> {
    Connect(Option<&'a Arg>),
    Disconnect,
    Event(&'a str, &'a [Arg], Option<i64>),
    Ack(i64, &'a [Arg]),
}

fn encode(parser: Parser, nsp: &str, out: Out<'_>) -> Vec<Message> {
    match parser {
        Parser::Json => encode_json(nsp, out),
        Parser::MsgPack => vec![encode_msgpack(nsp, out)],
    }
}

fn encode_json(nsp: &str, out: Out<'_>) -> Vec<Message> {
    let mut bins = Vec::new();
    let (ty, id, payload) = match out {
        Out::Connect(auth) => (0, None, auth.map(|a| arg_to_json(a, &mut bins))),
        Out::Disconnect => (1, None, None),
        Out::Event(name, args, id) => {
            let mut data = vec![serde_json::Value::from(name)];
            data.extend(args.iter().map(|a| arg_to_json(a, &mut bins)));
            (2, id, Some(serde_json::Value::Array(data)))
        }
        Out::Ack(id, args) => {
            let data = args.iter().map(|a| arg_to_json(a, &mut bins)).collect();
            (3, Some(id), Some(serde_json::Value::Array(data)))
        }
    };
    // "4" = engine.io message, then the socket.io packet type.
    let mut s = String::from("4");
    if bins.is_empty() {
        s.push_str(&ty.to_string());
    } else {
        assert!(
            ty == 2 || ty == 3,
            "binary data only allowed in events/acks"
        );
        s.push_str(&format!("{}{}-", ty + 3, bins.len()));
    }
    if nsp != "/" {
        s.push_str(nsp);
        s.push(',');
    }
    if let Some(id) = id {
        s.push_str(&id.to_string());
    }
    if let Some(payload) = payload {
        s.push_str(&payload.to_string());
    }
    let mut msgs = vec![Message::text(s)];
    msgs.extend(bins.into_iter().map(Message::binary));
    msgs
}

fn encode_msgpack(nsp: &str, out: Out<'_>) -> Message {
    let (ty, id, data) = match out {
        Out::Connect(auth) => (0, None, auth.cloned()),
        Out::Disconnect => (1, None, None),
        Out::Event(name, args, id) => {
            let mut data = vec![Arg::from(name)];
            data.extend(args.iter().cloned());
            (2, id, Some(Arg::Array(data)))
        }
        Out::Ack(id, args) => (3, Some(id), Some(Arg::Array(args.to_vec()))),
    };
    let mut map = vec![
        (Arg::from("type"), Arg::from(ty)),
        (Arg::from("nsp"), Arg::from(nsp)),
    ];
    if let Some(data) = data {
        map.push((Arg::from("data"), data));
    }
    if let Some(id) = id {
        map.push((Arg::from("id"), Arg::from(id)));
    }
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, &Arg::Map(map)).expect("msgpack encode");
    Message::binary(buf)
}

/// Split `[name, ...args]` event data.
fn split_event(data: Arg, id: Option<i64>) -> Result<Event, String> {
    let Arg::Array(mut items) = data else {
        return Err(format!("event data is not an array: {data:?}"));
    };
    if items.is_empty() {
        return Err("event data is an empty array".into());
    }
    let name = match items.remove(0) {
        Arg::String(s) => s
            .into_str()
            .ok_or_else(|| "non utf-8 event name".to_string())?,
        other => return Err(format!("event name is not a string: {other:?}")),
    };
    Ok(Event {
        name,
        args: items,
        ack_id: id,
    })
}

fn ack_args(data: Arg) -> Result<Vec<Arg>, String> {
    match data {
        Arg::Array(items) => Ok(items),
        other => Err(format!("ack data is not an array: {other:?}")),
    }
}

/// Header of a JSON-parser socket.io packet (the text after the engine.io `4`).
struct JsonHeader<'a> {
    ty: u8,
    attachments: usize,
    nsp: String,
    id: Option<i64>,
    payload: &'a str,
}

fn parse_json_header(s: &str) -> Result<JsonHeader<'_>, String> {
    let bytes = s.as_bytes();
    let ty = match bytes.first() {
        Some(c @ b'0'..=b'6') => c - b'0',
        _ => return Err(format!("bad socket.io packet type in {s:?}")),
    };
    let mut i = 1;
    let mut attachments = 0;
    if ty == 5 || ty == 6 {
        let start = i;
        while i < bytes.len() && bytes[i] != b'-' {
            i += 1;
        }
        attachments = s[start..i]
            .parse()
            .map_err(|e| format!("bad attachment count in {s:?}: {e}"))?;
        i += 1; // '-'
    }
    let mut nsp = "/".to_string();
    if bytes.get(i) == Some(&b'/') {
        let start = i;
        while i < bytes.len() && bytes[i] != b',' {
            i += 1;
        }
        nsp = s[start..i].to_string();
        i += 1; // ','
    }
    let start = i.min(bytes.len());
    let mut end = start;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let id = if end > start {
        Some(
            s[start..end]
                .parse()
                .map_err(|e| format!("bad ack id: {e}"))?,
        )
    } else {
        None
    };
    Ok(JsonHeader {
        ty,
        attachments,
        nsp,
        id,
        payload: &s[end..],
    })
}

fn decode_json_packet(h: &JsonHeader<'_>, bins: &[Vec<u8>]) -> Result<Packet, String> {
    let data = if h.payload.is_empty() {
        None
    } else {
        let v: serde_json::Value = serde_json::from_str(h.payload)
            .map_err(|e| format!("bad json payload {:?}: {e}", h.payload))?;
        Some(json_to_arg(&v, Some(bins))?)
    };
    let nsp = h.nsp.clone();
    Ok(match h.ty {
        0 => Packet::Connect { nsp, data },
        1 => Packet::Disconnect { nsp },
        2 | 5 => Packet::Event {
            nsp,
            event: split_event(data.ok_or("event without data")?, h.id)?,
        },
        3 | 6 => Packet::Ack {
            nsp,
            id: h.id.ok_or("ack without id")?,
            args: ack_args(data.ok_or("ack without data")?)?,
        },
        4 => Packet::ConnectError {
            nsp,
            data: data.unwrap_or(Arg::Nil),
        },
        t => return Err(format!("unexpected socket.io packet type {t}")),
    })
}

fn decode_msgpack_packet(buf: &[u8]) -> Result<Packet, String> {
    let v = rmpv::decode::read_value(&mut &buf[..])
        .map_err(|e| format!("bad msgpack packet {buf:?}: {e}"))?;
    let Arg::Map(entries) = v else {
        return Err(format!("msgpack packet is not a map: {v:?}"));
    };
    let (mut ty, mut nsp, mut data, mut id) = (None, None, None, None);
    for (k, v) in entries {
        match k.as_str() {
            Some("type") => ty = v.as_u64(),
            Some("nsp") => nsp = v.as_str().map(str::to_string),
            Some("data") => data = Some(normalize(v)),
            Some("id") => id = v.as_i64(),
            _ => {}
        }
    }
    let ty = ty.ok_or("msgpack packet without type")?;
    let nsp = nsp.unwrap_or_else(|| "/".to_string());
    Ok(match ty {
        0 => Packet::Connect { nsp, data },
        1 => Packet::Disconnect { nsp },
        2 | 5 => Packet::Event {
            nsp,
            event: split_event(data.ok_or("event without data")?, id)?,
        },
        3 | 6 => Packet::Ack {
            nsp,
            id: id.ok_or("ack without id")?,
            args: ack_args(data.ok_or("ack without data")?)?,
        },
        4 => Packet::ConnectError {
            nsp,
            data: data.unwrap_or(Arg::Nil),
        },
        t => return Err(format!("unexpected socket.io packet type {t}")),
    })
}

// ===== background tasks =====

#[derive(Debug)]
#[expect(
    dead_code,
    reason = "the payloads are read only through Debug, in the panic messages of the waits"
)]
enum Incoming {
    /// engine.io open packet (JSON payload)
    Open(String),
    Connected {
        sid: String,
    },
    ConnectError(ConnectError),
    Event(Event),
    /// socket.io disconnect packet for our namespace
    Disconnected,
    /// websocket / engine.io closed
    Closed(String),
    /// something we could not understand: fails the test at the next receive
    ProtocolError(String),
}

type AckMap = Arc<Mutex<HashMap<i64, oneshot::Sender<Vec<Arg>>>>>;

struct Reader {
    parser: Parser,
    nsp: String,
    out: mpsc::UnboundedSender<Message>,
    incoming: mpsc::UnboundedSender<Incoming>,
    acks: AckMap,
    auto_ack: Arc<Mutex<Option<AutoAck>>>,
    /// JSON parser: a binary packet header waiting for its attachments.
    pending: Option<(String, Vec<Vec<u8>>)>,
}

impl Reader {
    async fn run<S>(mut self, mut stream: S)
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        let reason = loop {
            match stream.next().await {
                None => break "websocket stream ended".to_string(),
                Some(Err(e)) => break format!("websocket error: {e}"),
                Some(Ok(msg)) => {
                    if let Err(e) = self.on_message(msg) {
                        if e.is_empty() {
                            break "engine.io close".to_string();
                        }
                        self.incoming.send(Incoming::ProtocolError(e)).ok();
                    }
                }
            }
        };
        // Fail pending `emit_with_ack` calls now rather than at their timeout.
        self.acks.lock().unwrap().clear();
        self.incoming.send(Incoming::Closed(reason)).ok();
    }

    /// `Err("")` means a clean close.
    fn on_message(&mut self, msg: Message) -> Result<(), String> {
        match msg {
            Message::Text(t) => {
                let t = t.as_str();
                match t.as_bytes().first() {
                    Some(b'0') => {
                        self.incoming.send(Incoming::Open(t[1..].to_string())).ok();
                    }
                    Some(b'1') => return Err(String::new()),
                    Some(b'2') => {
                        // engine.io v4: the server pings, we answer pong.
                        self.out.send(Message::text(format!("3{}", &t[1..]))).ok();
                    }
                    Some(b'3' | b'6') => {}
                    Some(b'4') => {
                        if self.parser != Parser::Json {
                            return Err(format!(
                                "msgpack client received a text socket.io packet {t:?}"
                            ));
                        }
                        if let Some((h, _)) = &self.pending {
                            return Err(format!(
                                "text packet {t:?} while waiting for attachments of {h:?}"
                            ));
                        }
                        let sio = &t[1..];
                        let header = parse_json_header(sio)?;
                        if header.attachments > 0 {
                            self.pending = Some((sio.to_string(), Vec::new()));
                        } else {
                            let packet = decode_json_packet(&header, &[])?;
                            self.on_packet(packet)?;
                        }
                    }
                    _ => return Err(format!("unknown engine.io packet {t:?}")),
                }
            }
            Message::Binary(b) => match self.parser {
                Parser::MsgPack => {
                    let packet = decode_msgpack_packet(&b)?;
                    self.on_packet(packet)?;
                }
                Parser::Json => {
                    let Some((header, bins)) = self.pending.as_mut() else {
                        return Err(format!("unexpected binary frame {b:?}"));
                    };
                    bins.push(b.to_vec());
                    let h = parse_json_header(header)?;
                    if bins.len() == h.attachments {
                        let (header, bins) = self.pending.take().unwrap();
                        let h = parse_json_header(&header)?;
                        let packet = decode_json_packet(&h, &bins)?;
                        self.on_packet(packet)?;
                    }
                }
            },
            Message::Close(_) => return Err(String::new()),
            _ => {}
        }
        Ok(())
    }

    fn check_nsp(&self, nsp: &str) -> Result<(), String> {
        if nsp == self.nsp {
            Ok(())
        } else {
            Err(format!(
                "packet for namespace {nsp:?} on a client connected to {:?}",
                self.nsp
            ))
        }
    }

    fn on_packet(&mut self, packet: Packet) -> Result<(), String> {
        match packet {
            Packet::Connect { nsp, data } => {
                self.check_nsp(&nsp)?;
                let sid = data
                    .as_ref()
                    .and_then(|d| d.as_map())
                    .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("sid")))
                    .and_then(|(_, v)| v.as_str())
                    .ok_or_else(|| format!("connect ack without sid: {data:?}"))?;
                self.incoming
                    .send(Incoming::Connected {
                        sid: sid.to_string(),
                    })
                    .ok();
            }
            Packet::ConnectError { nsp, data } => {
                self.check_nsp(&nsp)?;
                let message = data
                    .as_map()
                    .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("message")))
                    .and_then(|(_, v)| v.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{data:?}"));
                self.incoming
                    .send(Incoming::ConnectError(ConnectError { message }))
                    .ok();
            }
            Packet::Disconnect { nsp } => {
                self.check_nsp(&nsp)?;
                self.incoming.send(Incoming::Disconnected).ok();
            }
            Packet::Event { nsp, event } => {
                self.check_nsp(&nsp)?;
                if let Some(id) = event.ack_id {
                    let auto = self.auto_ack.lock().unwrap().clone();
                    let reply = match auto {
                        Some(AutoAck::Echo) => Some(event.args.clone()),
                        Some(AutoAck::With(args)) => Some(args),
                        None => None,
                    };
                    if let Some(reply) = reply {
                        for m in encode(self.parser, &self.nsp, Out::Ack(id, &reply)) {
                            self.out.send(m).ok();
                        }
                    }
                }
                self.incoming.send(Incoming::Event(event)).ok();
            }
            Packet::Ack { nsp, id, args } => {
                self.check_nsp(&nsp)?;
                let tx = self.acks.lock().unwrap().remove(&id);
                match tx {
                    Some(tx) => {
                        tx.send(args).ok();
                    }
                    None => return Err(format!("ack for unknown id {id}: {args:?}")),
                }
            }
        }
        Ok(())
    }
}

async fn writer<S>(mut sink: S, mut rx: mpsc::UnboundedReceiver<Message>)
where
    S: futures_util::Sink<Message> + Unpin,
{
    'outer: while let Some(msg) = rx.recv().await {
        let mut next = Some(msg);
        // Batch whatever is queued, then flush once.
        while let Some(msg) = next.take() {
            let close = matches!(msg, Message::Close(_));
            if sink.feed(msg).await.is_err() {
                break 'outer;
            }
            if close {
                sink.flush().await.ok();
                break 'outer;
            }
            next = rx.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    sink.close().await.ok();
}

// ===== Client =====

/// A socket.io client connected to one namespace over its own engine.io connection.
pub struct Client {
    sid: String,
    nsp: String,
    parser: Parser,
    addr: SocketAddr,
    out: mpsc::UnboundedSender<Message>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    acks: AckMap,
    auto_ack: Arc<Mutex<Option<AutoAck>>>,
    next_ack_id: AtomicI64,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Client({:?} {} nsp={} sid={})",
            self.parser, self.addr, self.nsp, self.sid
        )
    }
}

impl Client {
    /// Connect to namespace `nsp` (e.g. `"/"`, `"/admin"`) and wait for the connect ack.
    /// Panics on connect_error or timeout.
    pub async fn connect(addr: SocketAddr, nsp: &str, parser: Parser) -> Client {
        Self::connect_with_auth(addr, nsp, parser, None).await
    }

    /// Like [`connect`](Self::connect) with an auth payload (JSON object), as
    /// `io({ auth })` would send.
    pub async fn connect_with_auth(
        addr: SocketAddr,
        nsp: &str,
        parser: Parser,
        auth: Option<serde_json::Value>,
    ) -> Client {
        match Self::try_connect(addr, nsp, parser, auth).await {
            Ok(c) => c,
            Err(e) => panic!("{parser:?} client could not connect to {addr}{nsp}: {e}"),
        }
    }

    /// Connect, returning the server's connect_error instead of panicking on it.
    /// Still panics on timeouts and transport failures.
    pub async fn try_connect(
        addr: SocketAddr,
        nsp: &str,
        parser: Parser,
        auth: Option<serde_json::Value>,
    ) -> Result<Client, ConnectError> {
        assert!(nsp.starts_with('/'), "namespace must start with '/'");
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = match timeout_at(deadline, connect_async(&url)).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => panic!("{parser:?} client: websocket connect to {url} failed: {e}"),
            Err(_) => panic!("{parser:?} client: websocket connect to {url} timed out"),
        };
        let (sink, stream) = ws.split();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let acks: AckMap = Default::default();
        let auto_ack: Arc<Mutex<Option<AutoAck>>> = Default::default();
        let writer = tokio::spawn(writer(sink, out_rx));
        let reader = tokio::spawn(
            Reader {
                parser,
                nsp: nsp.to_string(),
                out: out_tx.clone(),
                incoming: in_tx,
                acks: acks.clone(),
                auto_ack: auto_ack.clone(),
                pending: None,
            }
            .run(stream),
        );
        let mut client = Client {
            sid: String::new(),
            nsp: nsp.to_string(),
            parser,
            addr,
            out: out_tx,
            incoming: in_rx,
            acks,
            auto_ack,
            next_ack_id: AtomicI64::new(0),
            reader,
            writer: Some(writer),
        };

        match client.next_incoming_until(deadline, "engine.io open").await {
            Incoming::Open(_) => {}
            other => panic!("{client:?}: expected engine.io open packet, got {other:?}"),
        }
        let auth = auth.map(arg);
        client.send(Out::Connect(auth.as_ref()));
        match client
            .next_incoming_until(deadline, "namespace connect ack")
            .await
        {
            Incoming::Connected { sid } => {
                client.sid = sid;
                Ok(client)
            }
            Incoming::ConnectError(e) => Err(e),
            other => panic!("{client:?}: expected connect ack, got {other:?}"),
        }
    }

    /// The socket.io socket id (from the connect ack).
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The namespace this client connected to.
    pub fn nsp(&self) -> &str {
        &self.nsp
    }

    /// The parser this client speaks.
    pub fn parser(&self) -> Parser {
        self.parser
    }

    fn send(&self, out: Out<'_>) {
        for m in encode(self.parser, &self.nsp, out) {
            self.out
                .send(m)
                .unwrap_or_else(|_| panic!("{self:?}: connection writer is closed"));
        }
    }

    /// Emit an event with JSON arguments (queued, does not wait).
    pub fn emit(&self, event: &str, args: Vec<serde_json::Value>) {
        self.emit_args(event, self::args(args));
    }

    /// Emit an event with arbitrary arguments, binaries included (queued, does not wait).
    pub fn emit_args(&self, event: &str, args: Vec<Arg>) {
        self.send(Out::Event(event, &args, None));
    }

    /// Emit an event asking for an ack and wait for it; returns the ack arguments.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<serde_json::Value>,
        timeout: Duration,
    ) -> Vec<Arg> {
        self.emit_args_with_ack(event, self::args(args), timeout)
            .await
    }

    /// [`emit_with_ack`](Self::emit_with_ack) with arbitrary (e.g. binary) arguments.
    pub async fn emit_args_with_ack(
        &self,
        event: &str,
        args: Vec<Arg>,
        timeout: Duration,
    ) -> Vec<Arg> {
        let id = self.next_ack_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks.lock().unwrap().insert(id, tx);
        self.send(Out::Event(event, &args, Some(id)));
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(args)) => args,
            Ok(Err(_)) => panic!("{self:?}: connection closed while waiting for ack of {event:?}"),
            Err(_) => {
                self.acks.lock().unwrap().remove(&id);
                panic!("{self:?}: no ack for {event:?} (id {id}) within {timeout:?}")
            }
        }
    }

    /// Answer a server ack request.
    pub fn ack(&self, event: &Event, args: Vec<Arg>) {
        let id = event
            .ack_id
            .unwrap_or_else(|| panic!("{self:?}: event {event:?} did not request an ack"));
        self.send(Out::Ack(id, &args));
    }

    /// Automatically answer server ack requests (`None`: don't, the default).
    pub fn set_auto_ack(&self, mode: Option<AutoAck>) {
        *self.auto_ack.lock().unwrap() = mode;
    }

    async fn next_incoming_until(&mut self, deadline: Instant, what: &str) -> Incoming {
        match timeout_at(deadline, self.incoming.recv()).await {
            Ok(Some(i)) => i,
            Ok(None) => panic!("{self:?}: reader task is gone while waiting for {what}"),
            Err(_) => panic!("{self:?}: timed out waiting for {what}"),
        }
    }

    /// Next event before `deadline`, `None` on timeout. Panics on disconnect / protocol error.
    async fn next_event_until(&mut self, deadline: Instant) -> Option<Event> {
        match timeout_at(deadline, self.incoming.recv()).await {
            Err(_) => None,
            Ok(None) => panic!("{self:?}: reader task is gone"),
            Ok(Some(Incoming::Event(e))) => Some(e),
            Ok(Some(other)) => panic!("{self:?}: expected an event, got {other:?}"),
        }
    }

    /// The next event. Panics after `timeout`, or if the connection reports anything else
    /// (disconnect, close, protocol error).
    pub async fn recv_event(&mut self, timeout: Duration) -> Event {
        match self.next_event_until(Instant::now() + timeout).await {
            Some(e) => e,
            None => panic!("{self:?}: no event received within {timeout:?}"),
        }
    }

    /// The next event, or `None` if nothing arrived within `timeout`. Prefer
    /// [`expect_no_event_before`](Self::expect_no_event_before) to prove absence.
    pub async fn try_recv_event(&mut self, timeout: Duration) -> Option<Event> {
        self.next_event_until(Instant::now() + timeout).await
    }

    /// The next event, which must be named `name` (panics showing it otherwise).
    pub async fn recv_event_named(&mut self, name: &str, timeout: Duration) -> Event {
        let ev = match self.next_event_until(Instant::now() + timeout).await {
            Some(e) => e,
            None => panic!("{self:?}: no event {name:?} received within {timeout:?}"),
        };
        assert_eq!(
            ev.name, name,
            "{self:?}: expected event {name:?}, got {ev:?}"
        );
        ev
    }

    /// Read events until one named `marker` arrives (returned); panics if any other event
    /// arrives first, or on timeout. Use a marker emitted after the operation under test
    /// to prove that something was NOT delivered (ordering per connection is preserved).
    pub async fn expect_no_event_before(&mut self, marker: &str, timeout: Duration) -> Event {
        let ev = match self.next_event_until(Instant::now() + timeout).await {
            Some(e) => e,
            None => panic!("{self:?}: marker event {marker:?} not received within {timeout:?}"),
        };
        assert_eq!(
            ev.name, marker,
            "{self:?}: received unexpected event {ev:?} before marker {marker:?}"
        );
        ev
    }

    /// Receive up to `n` events named `name` until `timeout` elapses (overall); returns
    /// those received. Panics if an event with another name arrives.
    pub async fn collect_events(&mut self, name: &str, n: usize, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            match self.next_event_until(deadline).await {
                Some(ev) if ev.name == name => events.push(ev),
                Some(ev) => panic!(
                    "{self:?}: unexpected event {ev:?} while collecting {name:?} ({} of {n} so far)",
                    events.len()
                ),
                None => break,
            }
        }
        events
    }

    /// How many of `n` events named `name` arrived within `timeout`.
    pub async fn count_events(&mut self, name: &str, n: usize, timeout: Duration) -> usize {
        self.collect_events(name, n, timeout).await.len()
    }

    /// Like [`count_events`](Self::count_events) but also checks ordering: the k-th event
    /// received must have the integer k as its first argument (0-based, no gap, no dup).
    pub async fn count_events_in_order(
        &mut self,
        name: &str,
        n: usize,
        timeout: Duration,
    ) -> usize {
        let events = self.collect_events(name, n, timeout).await;
        for (k, ev) in events.iter().enumerate() {
            assert_eq!(
                ev.args.first().and_then(Arg::as_i64),
                Some(k as i64),
                "{self:?}: event #{k} out of order: {ev:?}"
            );
        }
        events.len()
    }

    /// Wait until the server disconnects this socket (socket.io disconnect packet, or the
    /// transport closes). Panics if an event arrives first, or on timeout.
    pub async fn expect_disconnect(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        match self.next_incoming_until(deadline, "disconnect").await {
            Incoming::Disconnected | Incoming::Closed(_) => {}
            other => panic!("{self:?}: expected disconnect, got {other:?}"),
        }
    }

    /// Gracefully leave the namespace and close the websocket; waits (bounded) until the
    /// close frame is written.
    pub async fn disconnect(mut self) {
        self.send(Out::Disconnect);
        self.out.send(Message::Close(None)).ok();
        if let Some(w) = self.writer.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The writer task sends the close frame and exits by itself; the reader would
        // otherwise wait for the server's close reply.
        self.out.send(Message::Close(None)).ok();
        self.reader.abort();
    }
}
