//! The same oracle over the sharded protocol (`createShardedAdapter`, socket.io-adapter's
//! ClusterAdapter messages): every broadcast case is wrapped in the ClusterAdapter
//! envelope `{uid, nsp, type: 3, data: {packet, opts}}` (msgpack, and JSON where JSON can
//! say it), then the envelope itself is varied, then requests of every ClusterAdapter
//! type with the variations third parties produce.

use crate::cases::{Case, TARGET};
use crate::requests::{RequestCase, TARGET_UID, json_and_msgpack};
use crate::wire::{W, int, map, s};
use serde_json::{Value, json};

const PRODUCER: &str = "differential-producer";

/// The namespace a case channel (`#/#`, `#/admin#a#`) belongs to.
fn nsp_of(channel: &str) -> String {
    channel
        .strip_prefix('#')
        .and_then(|rest| rest.split('#').next())
        .unwrap_or("/")
        .to_owned()
}

/// `[uid, packet, opts]` as `{uid, nsp, type: 3, data: {packet, opts}}`; a message of
/// another shape becomes the `data` of the envelope as it is.
fn envelope(tree: &W, nsp: &str) -> W {
    let data = match tree {
        W::Arr(items) if items.len() >= 2 => {
            let mut data = vec![("packet", items[1].clone())];
            if let Some(opts) = items.get(2) {
                data.push(("opts", opts.clone()));
            }
            map(data)
        }
        other => other.clone(),
    };
    let uid = match tree {
        W::Arr(items) if !items.is_empty() => items[0].clone(),
        _ => s(PRODUCER),
    };
    map(vec![
        ("uid", uid),
        ("nsp", s(nsp)),
        ("type", int(3)),
        ("data", data),
    ])
}

/// Names of the broadcast cases also sent as JSON (the random ones only as msgpack, to
/// keep the run short; the fixed ones cover every shape).
fn also_json(case: &Case) -> bool {
    !case.name.starts_with("random:")
}

/// The broadcast cases of [`crate::cases`], wrapped, plus envelope variations.
pub(crate) fn cases(classic: &[Case]) -> Vec<Case> {
    let mut out = Vec::new();
    for case in classic {
        let Some(tree) = &case.tree else {
            // Raw bytes are not a message in either protocol.
            out.push(case.clone());
            continue;
        };
        let env = envelope(tree, &nsp_of(&case.channel));
        let json = also_json(case).then(|| env.to_json()).flatten();
        out.push(Case {
            name: format!("{}, msgpack", case.name),
            channel: case.channel.clone(),
            bytes: env.encode(),
            tree: Some(env),
            ..*case
        });
        if let Some(json) = json {
            out.push(Case {
                name: format!("{}, JSON", case.name),
                channel: case.channel.clone(),
                bytes: json.to_string().into_bytes(),
                tree: None,
                field: "-",
                shape: "-",
            });
        }
    }
    for (name, channel, v) in envelope_variations() {
        for (encoding, bytes) in json_and_msgpack(&v) {
            out.push(Case {
                name: format!("envelope: {name}, {encoding}"),
                field: "-",
                shape: "-",
                channel: channel.to_owned(),
                bytes,
                tree: None,
            });
        }
    }
    out
}

fn good_broadcast() -> Value {
    json!({"uid": PRODUCER, "nsp": "/", "type": 3, "data": {
        "packet": {"type": 2, "data": ["case", "x", 1], "nsp": "/"},
        "opts": {"rooms": [], "except": [], "flags": {}}}})
}

fn with_field(mut v: Value, key: &str, x: Option<Value>) -> Value {
    match x {
        Some(x) => v[key] = x,
        None => {
            v.as_object_mut().map(|o| o.remove(key));
        }
    }
    v
}

/// Variations of the envelope around a well-formed broadcast: name, channel, message.
fn envelope_variations() -> Vec<(&'static str, &'static str, Value)> {
    let g = good_broadcast;
    let mut out = vec![
        ("control", "#/#", g()),
        ("uid missing", "#/#", with_field(g(), "uid", None)),
        ("uid null", "#/#", with_field(g(), "uid", Some(Value::Null))),
        (
            "uid a number",
            "#/#",
            with_field(g(), "uid", Some(json!(5))),
        ),
        (
            "uid of the server itself",
            "#/#",
            with_field(g(), "uid", Some(json!(TARGET_UID))),
        ),
        ("nsp missing", "#/#", with_field(g(), "nsp", None)),
        ("nsp null", "#/#", with_field(g(), "nsp", Some(Value::Null))),
        (
            "nsp without slash",
            "#/#",
            with_field(g(), "nsp", Some(json!(""))),
        ),
        (
            "nsp /admin on /'s channel",
            "#/#",
            with_field(g(), "nsp", Some(json!("/admin"))),
        ),
        (
            "nsp a number",
            "#/#",
            with_field(g(), "nsp", Some(json!(5))),
        ),
        ("type missing", "#/#", with_field(g(), "type", None)),
        (
            "type as a string",
            "#/#",
            with_field(g(), "type", Some(json!("3"))),
        ),
        ("type 3.5", "#/#", with_field(g(), "type", Some(json!(3.5)))),
        (
            "type unknown",
            "#/#",
            with_field(g(), "type", Some(json!(99))),
        ),
        (
            "type heartbeat",
            "#/#",
            with_field(g(), "type", Some(json!(2))),
        ),
        (
            "type initial heartbeat",
            "#/#",
            with_field(g(), "type", Some(json!(1))),
        ),
        (
            "type adapter close",
            "#/#",
            with_field(g(), "type", Some(json!(13))),
        ),
        ("data missing", "#/#", with_field(g(), "data", None)),
        (
            "data null",
            "#/#",
            with_field(g(), "data", Some(Value::Null)),
        ),
        (
            "data an array",
            "#/#",
            with_field(g(), "data", Some(json!([1]))),
        ),
        (
            "data a string",
            "#/#",
            with_field(g(), "data", Some(json!("x"))),
        ),
        (
            "extra field",
            "#/#",
            with_field(g(), "offset", Some(json!("1-0"))),
        ),
        ("on the response channel of nobody", "#/#nobody-uid#", g()),
        ("on another namespace's channel", "#/admin#", g()),
    ];
    let mut no_packet = g();
    no_packet["data"]
        .as_object_mut()
        .map(|o| o.remove("packet"));
    out.push(("data.packet missing", "#/#", no_packet));
    let mut no_opts = g();
    no_opts["data"].as_object_mut().map(|o| o.remove("opts"));
    out.push(("data.opts missing", "#/#", no_opts));
    let mut target = g();
    target["data"]["opts"]["rooms"] = json!([TARGET]);
    out.push(("to the target socket's room", "#/#", target.clone()));
    out.push((
        "to the target socket's room, on its channel",
        "#/#TARGETSOCKETID#",
        target,
    ));
    out
}

/// The well-formed ClusterAdapter request of each type, from the uid the oracle reads
/// replies for.
fn request_bases() -> Vec<(&'static str, Value)> {
    let r = |t: u64, data: Value| json!({"uid": "marker", "nsp": "/", "type": t, "data": data});
    vec![
        (
            "socketsJoin",
            r(
                4,
                json!({"opts": {"rooms": ["b"], "except": []}, "rooms": ["j2"]}),
            ),
        ),
        (
            "socketsLeave",
            r(
                5,
                json!({"opts": {"rooms": ["b"], "except": []}, "rooms": ["b"]}),
            ),
        ),
        (
            "remoteJoin of the target",
            r(
                4,
                json!({"opts": {"rooms": [TARGET], "except": []}, "rooms": ["j1"]}),
            ),
        ),
        (
            "disconnectSockets of nobody",
            r(
                6,
                json!({"opts": {"rooms": ["nobody"], "except": []}, "close": false}),
            ),
        ),
        (
            "remoteDisconnect of the target",
            r(
                6,
                json!({"opts": {"rooms": [TARGET], "except": []}, "close": false}),
            ),
        ),
        (
            "fetchSockets",
            r(
                7,
                json!({"opts": {"rooms": ["a"], "except": ["b"]}, "requestId": "r7"}),
            ),
        ),
        (
            "serverSideEmit with ack",
            r(9, json!({"requestId": "r9", "packet": ["ping-ss", 1]})),
        ),
        ("serverSideEmit", r(9, json!({"packet": ["ping-ss", 2]}))),
        (
            "broadcastWithAck",
            r(
                3,
                json!({"requestId": "r3",
                "packet": {"type": 2, "data": ["bwa", 1], "nsp": "/"},
                "opts": {"rooms": ["a"], "except": [], "flags": {}}}),
            ),
        ),
    ]
}

type Edit = fn(&Value) -> Option<Value>;

fn data_with(v: &Value, key: &str, x: Option<Value>) -> Option<Value> {
    let mut v = v.clone();
    let data = v.get_mut("data")?.as_object_mut()?;
    data.get(key)?;
    match x {
        Some(x) => data.insert(key.to_owned(), x),
        None => data.remove(key),
    };
    Some(v)
}

fn opts_rooms(v: &Value, x: Value) -> Option<Value> {
    let mut v = v.clone();
    *v.get_mut("data")?.get_mut("opts")?.get_mut("rooms")? = x;
    Some(v)
}

fn request_edits() -> Vec<(&'static str, Edit)> {
    vec![
        ("as sent", |v| Some(v.clone())),
        ("without requestId", |v| data_with(v, "requestId", None)),
        ("requestId a number", |v| {
            data_with(v, "requestId", Some(json!(5)))
        }),
        ("requestId null", |v| {
            data_with(v, "requestId", Some(Value::Null))
        }),
        ("type as a string", |v| {
            Some(with_field(
                v.clone(),
                "type",
                Some(json!(v["type"].to_string())),
            ))
        }),
        ("without uid", |v| Some(with_field(v.clone(), "uid", None))),
        ("uid of the server itself", |v| {
            Some(with_field(v.clone(), "uid", Some(json!(TARGET_UID))))
        }),
        ("nsp missing", |v| Some(with_field(v.clone(), "nsp", None))),
        ("extra field", |v| {
            Some(with_field(v.clone(), "extra", Some(json!({"x": [1]}))))
        }),
        ("data null", |v| {
            Some(with_field(v.clone(), "data", Some(Value::Null)))
        }),
        ("without opts", |v| data_with(v, "opts", None)),
        ("opts null", |v| data_with(v, "opts", Some(Value::Null))),
        ("opts.rooms a string", |v| opts_rooms(v, json!("a"))),
        ("opts.rooms a number", |v| opts_rooms(v, json!(5))),
        ("rooms a string", |v| {
            data_with(v, "rooms", Some(json!("ab")))
        }),
        ("rooms a number", |v| data_with(v, "rooms", Some(json!(5)))),
        ("close true", |v| data_with(v, "close", Some(json!(true)))),
        ("packet not an array", |v| {
            let t = v["type"].as_u64()?;
            (t == 9).then_some(())?;
            data_with(v, "packet", Some(json!("ping-ss")))
        }),
    ]
}

/// Every request under every edit that applies, in JSON and msgpack, on `/`'s channel.
pub(crate) fn requests() -> Vec<RequestCase> {
    let mut out = Vec::new();
    for (base, v) in request_bases() {
        for (edit, f) in request_edits() {
            let Some(v) = f(&v) else { continue };
            for (encoding, bytes) in json_and_msgpack(&v) {
                out.push(RequestCase {
                    name: format!("{base}, {edit}, {encoding}"),
                    channel: "#/#",
                    bytes,
                });
            }
        }
    }
    // Replies nobody asked for, on the requester channel of the server itself.
    for (name, bytes) in [
        (
            "fetch reply to an unknown id",
            br#"{"uid":"x","nsp":"/","type":8,"data":{"requestId":"nope","sockets":[]}}"#.to_vec(),
        ),
        (
            "client count for an unknown id",
            br#"{"uid":"x","nsp":"/","type":11,"data":{"requestId":"nope","clientCount":3}}"#
                .to_vec(),
        ),
        (
            "reply without data",
            br#"{"uid":"x","nsp":"/","type":8}"#.to_vec(),
        ),
        ("garbage reply", vec![0xc1, 0xff]),
    ] {
        out.push(RequestCase {
            name: name.to_owned(),
            channel: "#/#TARGETUID#",
            bytes,
        });
    }
    out
}
