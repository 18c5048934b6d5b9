//! The generated inputs: broadcast messages in every shape issue 9 lists, then seeded
//! random combinations of the same variations.

use crate::wire::{IntFmt, StrFmt, W, int, map, s};

/// Replaced by each side's target socket id (the socket in room `a`, see the oracle).
pub(crate) const TARGET: &str = "TARGETSOCKETID";
const PRODUCER: &str = "differential-producer";

/// One input: a message on a channel (the part after the key).
#[derive(Clone)]
pub(crate) struct Case {
    pub(crate) name: String,
    /// For the shape matrix: the field varied (`opts.rooms`) and its shape (`""`);
    /// both `-` otherwise. PROTOCOL.md's table is checked against these.
    pub(crate) field: &'static str,
    pub(crate) shape: &'static str,
    pub(crate) channel: String,
    pub(crate) bytes: Vec<u8>,
    /// The message as a tree (`None` for raw bytes): the sharded cases wrap it.
    pub(crate) tree: Option<W>,
}

/// `[producer, {type: 2, data: ["case", "x", 1], nsp: "/"}, {rooms: [], except: [], flags: {}}]`.
fn base() -> W {
    W::Arr(vec![
        s(PRODUCER),
        map(vec![
            ("type", int(2)),
            ("data", W::Arr(vec![s("case"), s("x"), int(1)])),
            ("nsp", s("/")),
        ]),
        map(vec![
            ("rooms", W::Arr(vec![])),
            ("except", W::Arr(vec![])),
            ("flags", map(vec![])),
        ]),
    ])
}

type Edit = Box<dyn Fn(&mut W)>;

fn part(m: &mut W, i: usize) -> &mut W {
    let W::Arr(items) = m else {
        panic!("not an array")
    };
    &mut items[i]
}

fn packet(m: &mut W) -> &mut W {
    part(m, 1)
}

fn opts(m: &mut W) -> &mut W {
    part(m, 2)
}

fn set_data(m: &mut W, data: Vec<W>) {
    packet(m).set("data", Some(W::Arr(data)));
}

/// An edit replacing the event's arguments.
fn with_args(args: Vec<W>) -> Edit {
    Box::new(move |m| {
        let mut data = vec![s("case")];
        data.extend(args.clone());
        set_data(m, data);
    })
}

fn rooms(v: W) -> Edit {
    Box::new(move |m| opts(m).set("rooms", Some(v.clone())))
}

fn except(v: W) -> Edit {
    Box::new(move |m| opts(m).set("except", Some(v.clone())))
}

fn flags(v: W) -> Edit {
    Box::new(move |m| opts(m).set("flags", Some(v.clone())))
}

fn arr(items: Vec<W>) -> W {
    W::Arr(items)
}

/// The shapes every field is tried in (`None`: the field is missing).
fn shapes() -> Vec<(&'static str, Option<W>)> {
    vec![
        ("missing", None),
        ("nil", Some(W::Nil)),
        ("\"\"", Some(s(""))),
        ("[]", Some(arr(vec![]))),
        ("{}", Some(W::Map(vec![]))),
        ("5", Some(int(5))),
        ("true", Some(W::Bool(true))),
        ("\"a\"", Some(s("a"))),
    ]
}

/// The matrix: every field of the message in every shape.
fn matrix() -> Vec<(String, &'static str, &'static str, W)> {
    let mut out = Vec::new();
    for (field, top) in [("uid", 0), ("packet", 1), ("opts", 2)] {
        for (shape, v) in shapes() {
            let mut m = base();
            let W::Arr(items) = &mut m else {
                unreachable!()
            };
            match v {
                // A missing item ends the array there.
                None => items.truncate(top),
                Some(v) => items[top] = v,
            }
            out.push((format!("{field} {shape}"), field, shape, m));
        }
    }
    for (field, at, key) in [
        ("packet.type", 1, "type"),
        ("packet.data", 1, "data"),
        ("packet.nsp", 1, "nsp"),
        ("packet.id", 1, "id"),
        ("opts.rooms", 2, "rooms"),
        ("opts.except", 2, "except"),
        ("opts.flags", 2, "flags"),
        ("opts.flags.volatile", 3, "volatile"),
    ] {
        for (shape, v) in shapes() {
            let mut m = base();
            let target = if at == 3 {
                opts(&mut m).get_mut("flags").expect("flags")
            } else {
                part(&mut m, at)
            };
            target.set(key, v);
            out.push((format!("{field} {shape}"), field, shape, m));
        }
    }
    out
}

/// Named variations beyond the matrix; also the pool the random cases draw from.
fn variations() -> Vec<(&'static str, Edit)> {
    let edits: Vec<(&'static str, Edit)> = vec![
        // Extra keys and items, other orders, bin keys and strings.
        (
            "extra top-level item",
            Box::new(|m| {
                let W::Arr(items) = m else { return };
                items.push(s("extra"));
            }),
        ),
        (
            "extra packet key",
            Box::new(|m| packet(m).set("extra", Some(int(1)))),
        ),
        (
            "extra opts key",
            Box::new(|m| opts(m).set("extra", Some(s("x")))),
        ),
        ("extra flags key", flags(map(vec![("unknown", int(1))]))),
        (
            "packet keys reversed",
            Box::new(|m| {
                if let W::Map(e) = packet(m) {
                    e.reverse()
                }
            }),
        ),
        (
            "opts keys reversed",
            Box::new(|m| {
                if let W::Map(e) = opts(m) {
                    e.reverse()
                }
            }),
        ),
        (
            "packet keys as bin",
            Box::new(|m| packet(m).strings_as(StrFmt::Bin, true, false)),
        ),
        (
            "opts keys as bin",
            Box::new(|m| opts(m).strings_as(StrFmt::Bin, true, false)),
        ),
        (
            "every string as bin",
            Box::new(|m| m.strings_as(StrFmt::Bin, true, true)),
        ),
        (
            "every string as str8",
            Box::new(|m| m.strings_as(StrFmt::Str8, true, true)),
        ),
        (
            "every string as str16",
            Box::new(|m| m.strings_as(StrFmt::Str16, true, true)),
        ),
        (
            "every string as str32",
            Box::new(|m| m.strings_as(StrFmt::Str32, true, true)),
        ),
        (
            "uid as bin",
            Box::new(|m| *part(m, 0) = W::Str(PRODUCER.into(), StrFmt::Bin)),
        ),
        (
            "nsp as bin",
            Box::new(|m| packet(m).set("nsp", Some(W::Str("/".into(), StrFmt::Bin)))),
        ),
        (
            "event as bin",
            Box::new(|m| set_data(m, vec![W::Str("case".into(), StrFmt::Bin), int(1)])),
        ),
        (
            "room as bin",
            rooms(arr(vec![W::Str("a".into(), StrFmt::Bin)])),
        ),
        (
            "except as bin",
            Box::new(|m| {
                opts(m).set("rooms", Some(arr(vec![s("a")])));
                opts(m).set("except", Some(arr(vec![W::Str("b".into(), StrFmt::Bin)])));
            }),
        ),
        // Namespaces.
        (
            "nsp without leading slash",
            Box::new(|m| packet(m).set("nsp", Some(s("")))),
        ),
        (
            "nsp other namespace on the root channel",
            Box::new(|m| packet(m).set("nsp", Some(s("/admin")))),
        ),
        (
            "nsp unknown",
            Box::new(|m| packet(m).set("nsp", Some(s("/nowhere")))),
        ),
        // Rooms and except.
        ("rooms a", rooms(arr(vec![s("a")]))),
        ("rooms a b", rooms(arr(vec![s("a"), s("b")]))),
        ("rooms duplicated", rooms(arr(vec![s("b"), s("b")]))),
        ("rooms number", rooms(arr(vec![int(5)]))),
        ("rooms number and a", rooms(arr(vec![int(5), s("a")]))),
        ("rooms float", rooms(arr(vec![W::F64(5.0)]))),
        ("rooms boolean", rooms(arr(vec![W::Bool(true)]))),
        ("rooms nil item", rooms(arr(vec![W::Nil]))),
        ("rooms nested array", rooms(arr(vec![arr(vec![s("a")])]))),
        ("rooms map item", rooms(arr(vec![map(vec![("a", int(1))])]))),
        ("rooms unknown", rooms(arr(vec![s("nobody")]))),
        ("rooms target id", rooms(arr(vec![s(TARGET)]))),
        ("rooms target id and b", rooms(arr(vec![s(TARGET), s("b")]))),
        ("except a", except(arr(vec![s("a")]))),
        ("except target id", except(arr(vec![s(TARGET)]))),
        (
            "except the target room",
            Box::new(|m| {
                opts(m).set("rooms", Some(arr(vec![s("a")])));
                opts(m).set("except", Some(arr(vec![s("a")])));
            }),
        ),
        ("except number", except(arr(vec![int(5)]))),
        ("except nested", except(arr(vec![arr(vec![s("b")])]))),
        ("except string b", except(s("b"))),
        // Flags.
        ("volatile 1", flags(map(vec![("volatile", int(1))]))),
        (
            "volatile \"true\"",
            flags(map(vec![("volatile", s("true"))])),
        ),
        ("volatile 0", flags(map(vec![("volatile", int(0))]))),
        (
            "volatile false",
            flags(map(vec![("volatile", W::Bool(false))])),
        ),
        (
            "compress false",
            flags(map(vec![("compress", W::Bool(false))])),
        ),
        ("local true", flags(map(vec![("local", W::Bool(true))]))),
        (
            "broadcast true",
            flags(map(vec![("broadcast", W::Bool(true))])),
        ),
        ("timeout flag", flags(map(vec![("timeout", int(1000))]))),
        // Packet types.
        ("type 0", Box::new(|m| packet(m).set("type", Some(int(0))))),
        ("type 1", Box::new(|m| packet(m).set("type", Some(int(1))))),
        ("type 3", Box::new(|m| packet(m).set("type", Some(int(3))))),
        ("type 4", Box::new(|m| packet(m).set("type", Some(int(4))))),
        ("type 5", Box::new(|m| packet(m).set("type", Some(int(5))))),
        ("type 6", Box::new(|m| packet(m).set("type", Some(int(6))))),
        ("type 7", Box::new(|m| packet(m).set("type", Some(int(7))))),
        (
            "type 25",
            Box::new(|m| packet(m).set("type", Some(int(25)))),
        ),
        (
            "type -1",
            Box::new(|m| packet(m).set("type", Some(int(-1)))),
        ),
        (
            "type 258",
            Box::new(|m| packet(m).set("type", Some(int(258)))),
        ),
        (
            "type \"2\"",
            Box::new(|m| packet(m).set("type", Some(s("2")))),
        ),
        (
            "type 2 as i64",
            Box::new(|m| packet(m).set("type", Some(W::Int(2, IntFmt::I64)))),
        ),
        (
            "type 2 as u8",
            Box::new(|m| packet(m).set("type", Some(W::Int(2, IntFmt::U8)))),
        ),
        (
            "type 2 as u16",
            Box::new(|m| packet(m).set("type", Some(W::Int(2, IntFmt::U16)))),
        ),
        (
            "type 2 as u32",
            Box::new(|m| packet(m).set("type", Some(W::Int(2, IntFmt::U32)))),
        ),
        (
            "type 2 as u64",
            Box::new(|m| packet(m).set("type", Some(W::Int(2, IntFmt::U64)))),
        ),
        (
            "type 2 as i8",
            Box::new(|m| packet(m).set("type", Some(W::Int(2, IntFmt::I8)))),
        ),
        (
            "type 2 as i16",
            Box::new(|m| packet(m).set("type", Some(W::Int(2, IntFmt::I16)))),
        ),
        (
            "type 2 as i32",
            Box::new(|m| packet(m).set("type", Some(W::Int(2, IntFmt::I32)))),
        ),
        (
            "type 2.0",
            Box::new(|m| packet(m).set("type", Some(W::F64(2.0)))),
        ),
        (
            "type 2.0 float32",
            Box::new(|m| packet(m).set("type", Some(W::F32(2.0)))),
        ),
        (
            "type 2.5",
            Box::new(|m| packet(m).set("type", Some(W::F64(2.5)))),
        ),
        (
            "type [2]",
            Box::new(|m| packet(m).set("type", Some(arr(vec![int(2)])))),
        ),
        (
            "type 2 as bin",
            Box::new(|m| packet(m).set("type", Some(W::Str("2".into(), StrFmt::Bin)))),
        ),
        (
            "packet id 7",
            Box::new(|m| packet(m).set("id", Some(int(7)))),
        ),
        (
            "packet id 7, binary argument",
            Box::new(|m| {
                packet(m).set("id", Some(int(7)));
                set_data(m, vec![s("case"), W::Bin(vec![1, 2])]);
            }),
        ),
        (
            "packet attachments",
            Box::new(|m| packet(m).set("attachments", Some(int(1)))),
        ),
        // Data.
        ("data []", Box::new(|m| set_data(m, vec![]))),
        (
            "data event only",
            Box::new(|m| set_data(m, vec![s("case")])),
        ),
        (
            "event a number",
            Box::new(|m| set_data(m, vec![int(5), s("x")])),
        ),
        (
            "event a float",
            Box::new(|m| set_data(m, vec![W::F64(5.5)])),
        ),
        ("event true", Box::new(|m| set_data(m, vec![W::Bool(true)]))),
        ("event nil", Box::new(|m| set_data(m, vec![W::Nil, s("x")]))),
        (
            "event an array",
            Box::new(|m| set_data(m, vec![arr(vec![s("case")])])),
        ),
        (
            "event a map",
            Box::new(|m| set_data(m, vec![W::Map(vec![])])),
        ),
        (
            "event empty string",
            Box::new(|m| set_data(m, vec![s(""), int(1)])),
        ),
        (
            "event unicode",
            Box::new(|m| set_data(m, vec![s("événement ✓"), int(1)])),
        ),
        (
            "event connect",
            Box::new(|m| set_data(m, vec![s("connect")])),
        ),
        (
            "event connect_error",
            Box::new(|m| set_data(m, vec![s("connect_error")])),
        ),
        (
            "event disconnect",
            Box::new(|m| set_data(m, vec![s("disconnect")])),
        ),
        (
            "event disconnecting",
            Box::new(|m| set_data(m, vec![s("disconnecting")])),
        ),
        (
            "event newListener",
            Box::new(|m| set_data(m, vec![s("newListener")])),
        ),
        (
            "event removeListener",
            Box::new(|m| set_data(m, vec![s("removeListener")])),
        ),
        // Arguments.
        ("arg nil", with_args(vec![W::Nil])),
        (
            "arg booleans",
            with_args(vec![W::Bool(true), W::Bool(false)]),
        ),
        ("args negative fixint", with_args(vec![int(-1), int(-32)])),
        (
            "args every int width",
            with_args(vec![
                W::Int(7, IntFmt::U8),
                W::Int(7, IntFmt::U16),
                W::Int(7, IntFmt::U32),
                W::Int(7, IntFmt::U64),
                W::Int(-7, IntFmt::I8),
                W::Int(-7, IntFmt::I16),
                W::Int(-7, IntFmt::I32),
                W::Int(-7, IntFmt::I64),
                W::Int(7, IntFmt::I64),
            ]),
        ),
        (
            "args int limits",
            with_args(vec![
                int(255),
                int(65535),
                int(u32::MAX.into()),
                int(u64::MAX.into()),
                int(i64::MIN.into()),
                int(-129),
                int(-40000),
                int(-3_000_000_000),
            ]),
        ),
        ("arg 2^53+1", with_args(vec![int((1 << 53) + 1)])),
        (
            "args floats",
            with_args(vec![W::F64(1.0), W::F64(-0.0), W::F64(2.5), W::F64(1e300)]),
        ),
        (
            "args float32",
            with_args(vec![W::F32(0.1), W::F32(1.5), W::F32(3.0)]),
        ),
        (
            "args NaN and infinities",
            with_args(vec![
                W::F64(f64::NAN),
                W::F64(f64::INFINITY),
                W::F32(f32::NEG_INFINITY),
            ]),
        ),
        ("arg binary", with_args(vec![W::Bin(vec![1, 2, 3])])),
        ("arg empty binary", with_args(vec![W::Bin(vec![])])),
        (
            "args binary nested",
            with_args(vec![
                map(vec![("a", arr(vec![W::Bin(vec![9]), s("t")]))]),
                W::Bin(vec![0xff]),
            ]),
        ),
        (
            "arg string as bin",
            with_args(vec![W::Str("abc".into(), StrFmt::Bin)]),
        ),
        ("arg empty string", with_args(vec![s("")])),
        ("arg unicode", with_args(vec![s("日本語 ✓ 🎉")])),
        ("arg long string", with_args(vec![s(&"y".repeat(300))])),
        (
            "arg map int key",
            with_args(vec![W::Map(vec![(int(1), s("x")), (s("b"), int(2))])]),
        ),
        (
            "arg map negative and float keys",
            with_args(vec![W::Map(vec![(int(-1), s("x")), (W::F64(1.5), s("y"))])]),
        ),
        (
            "arg map bin key",
            with_args(vec![W::Map(vec![(W::Bin(b"k".to_vec()), int(1))])]),
        ),
        (
            "arg map nil key",
            with_args(vec![W::Map(vec![(W::Nil, int(1))])]),
        ),
        (
            "arg map bool key",
            with_args(vec![W::Map(vec![(W::Bool(true), int(1))])]),
        ),
        (
            "arg map array key",
            with_args(vec![W::Map(vec![(arr(vec![int(1), int(2)]), int(1))])]),
        ),
        (
            "arg map duplicate keys",
            with_args(vec![W::Map(vec![(s("a"), int(1)), (s("a"), int(2))])]),
        ),
        (
            "arg nested 40 deep",
            with_args(vec![(0..40).fold(int(1), |v, _| arr(vec![v]))]),
        ),
        (
            "arg nested 70 deep",
            with_args(vec![(0..70).fold(int(1), |v, _| arr(vec![v]))]),
        ),
        ("args 20 items", with_args((0..20).map(int).collect())),
        (
            "arg fixext1 type 0",
            with_args(vec![W::Raw(vec![0xd4, 0x00, 0x00])]),
        ),
        (
            "arg fixext1 type -1",
            with_args(vec![W::Raw(vec![0xd4, 0xff, 0x00])]),
        ),
        (
            "arg ext8 type 0",
            with_args(vec![W::Raw(vec![0xc7, 0x01, 0x00, 0xff])]),
        ),
        (
            "arg timestamp32",
            with_args(vec![W::Raw(vec![0xd6, 0xff, 0, 0, 0, 1])]),
        ),
    ];
    edits
}

/// Variations that agree with Node alone but not in every combination, left as known
/// divergences (PROTOCOL.md lists them): kept out of the random combinations.
const KNOWN: &[(&str, &str)] = &[(
    "arg ext8 type 0",
    "an ArrayBuffer (notepack 2's ext 8 type 0) in a packet whose type is not the number 2 \
     reaches Node's clients as `{}` (JSON.stringify of an ArrayBuffer), ours as a Buffer's \
     JSON: the decoder reads both kinds of binary as one",
)];

/// Messages whose bytes are not a well-formed msgpack broadcast at all.
fn raw_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let good = base().encode();
    vec![
        ("empty payload", vec![]),
        ("truncated by one byte", good[..good.len() - 1].to_vec()),
        ("one trailing byte", [good.as_slice(), &[0xc0]].concat()),
        ("reserved marker 0xc1", vec![0xc1]),
        ("array32 declaring 4 billion items", vec![0xdd, 0xff, 0xff, 0xff, 0xff]),
        ("str32 declaring 4 GB", vec![0x93, 0xdb, 0xff, 0xff, 0xff, 0xff]),
        (
            "JSON text",
            br#"["differential-producer",{"type":2,"data":["case","x",1],"nsp":"/"},{"rooms":[],"except":[],"flags":{}}]"#.to_vec(),
        ),
        ("a map at top level", map(vec![("uid", s("x"))]).encode()),
        ("a string at top level", s("abc").encode()),
        ("nested 1000 deep", [vec![0x91; 1000], vec![0xc0]].concat()),
    ]
}

/// Room channels: the room in the channel name and in `opts.rooms` may disagree.
fn room_channels() -> Vec<(&'static str, &'static str, Edit)> {
    vec![
        (
            "room channel a, rooms [a]",
            "#/#a#",
            rooms(arr(vec![s("a")])),
        ),
        ("room channel a, rooms []", "#/#a#", rooms(arr(vec![]))),
        (
            "room channel a, rooms [b]",
            "#/#a#",
            rooms(arr(vec![s("b")])),
        ),
        (
            "room channel of nobody, rooms []",
            "#/#nobody#",
            rooms(arr(vec![])),
        ),
        (
            "room channel 5, rooms [\"5\"]",
            "#/#5#",
            rooms(arr(vec![s("5")])),
        ),
        (
            "room channel 5, rooms [5]",
            "#/#5#",
            rooms(arr(vec![int(5)])),
        ),
        (
            "admin channel",
            "#/admin#",
            Box::new(|m| packet(m).set("nsp", Some(s("/admin")))),
        ),
        (
            "admin channel, nsp \"admin\"",
            "#/admin#",
            Box::new(|m| packet(m).set("nsp", Some(s("admin")))),
        ),
        (
            "admin channel, nsp missing",
            "#/admin#",
            Box::new(|m| packet(m).set("nsp", None)),
        ),
        (
            "admin room channel a",
            "#/admin#a#",
            Box::new(|m| {
                packet(m).set("nsp", Some(s("/admin")));
                opts(m).set("rooms", Some(arr(vec![s("a")])));
            }),
        ),
    ]
}

/// A small deterministic generator (xorshift64*), so the case list is fixed per seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// Every case: the matrix, the named variations, raw inputs, room channels, then
/// `random` combinations of two to four variations drawn with `seed`.
pub(crate) fn all(random: usize, seed: u64) -> Vec<Case> {
    let mut out = Vec::new();
    let plain = |name: String, m: W| Case {
        name,
        field: "-",
        shape: "-",
        channel: "#/#".into(),
        bytes: m.encode(),
        tree: Some(m),
    };
    for (name, field, shape, m) in matrix() {
        out.push(Case {
            field,
            shape,
            ..plain(name, m)
        });
    }
    let pool = variations();
    for (name, edit) in &pool {
        let mut m = base();
        edit(&mut m);
        out.push(plain((*name).to_owned(), m));
    }
    for (name, bytes) in raw_inputs() {
        out.push(Case {
            bytes,
            tree: None,
            ..plain(name.to_owned(), W::Nil)
        });
    }
    for (name, channel, edit) in room_channels() {
        let mut m = base();
        edit(&mut m);
        out.push(Case {
            channel: channel.into(),
            ..plain(name.to_owned(), m)
        });
    }
    // Numeric rooms differ from Node on purpose (see the oracle's DELIBERATE), and one
    // known divergence is left (KNOWN): not mixed into the random cases, where no
    // exemption could name them.
    let pool: Vec<_> = pool
        .into_iter()
        .filter(|(name, _)| !crate::oracle::DELIBERATE.iter().any(|(d, ..)| d == name))
        .filter(|(name, _)| !KNOWN.iter().any(|(k, _)| k == name))
        .collect();
    let mut rng = Rng(seed.max(1));
    for _ in 0..random {
        let mut m = base();
        let mut names = Vec::new();
        for _ in 0..2 + rng.below(3) {
            let (name, edit) = &pool[rng.below(pool.len())];
            edit(&mut m);
            names.push(*name);
        }
        out.push(plain(format!("random: {}", names.join(" + ")), m));
    }
    out
}
