//! Every generated input through `oracle.js`: what each socket received from the Node
//! server against what the same socket received from the Rust server.

use crate::T;
use crate::cases::{self, Case};
use crate::requests::RequestCase;
use socketioxide_cluster_test_support as common;

use common::cluster::{Node, node_with, shared_opts};
use common::node::NodeProcess;
use common::{Parser, unique_key};
use serde_json::{Value, json};
use socketioxide_cluster::SubscriptionMode;
use std::collections::BTreeMap;

/// Node's outcome for one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// At least one socket received something, every socket stayed connected.
    Delivered,
    /// Nothing received, nothing thrown, nobody cut off (another namespace, a room
    /// nobody is in...).
    Ignored,
    /// Node threw in its listener, or sent a packet its own clients reject (they
    /// disconnect with "parse error"). Ours must skip the input and count it.
    Skipped,
}

impl Outcome {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Ignored => "ignored",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Inputs on which ours deliberately differs from Node: the case, the socket exempt
/// from the comparison (`None`: every socket), and why. PROTOCOL.md says the same.
pub(crate) const DELIBERATE: &[(&str, Option<&str>, &str)] = &[
    (
        "packet.type 5",
        None,
        "socket.io 2-era emitters send binary events as type 5; Node 4 re-encodes them as \
         `5undefined-[..]`, which its clients reject; ours delivers the event",
    ),
    ("type 5", None, "as `packet.type 5`"),
    (
        "arg nested 70 deep",
        None,
        "ours bounds nesting at 64 levels (skipped, counted); Node delivers it",
    ),
    ("rooms number", Some(NUMERIC), NUMBERS),
    ("rooms number and a", Some(NUMERIC), NUMBERS),
    ("rooms float", Some(NUMERIC), NUMBERS),
    ("except number", Some(NUMERIC), NUMBERS),
    ("room channel 5, rooms [5]", Some(NUMERIC), NUMBERS),
    (
        "envelope: to the target socket's room, on its channel",
        Some(r#"/ ["a"]"#),
        "sharded, dynamic: ours listens on the channel of each of its 16-character socket \
         ids, because Node's publishers put `to(<id>)` there (Node only keeps 20-character \
         ids on the namespace channel); a Node server listens on no socket id's channel",
    ),
];

/// The socket in room `"5"`.
const NUMERIC: &str = r#"/ ["5"]"#;
const NUMBERS: &str = "a Rust socket can only join names: a numeric room matches the room \
     named by its decimal text (Node matches only sockets that joined the number)";

/// Namespaces and room sets of the sockets on each side; role 1 is the target socket.
const NAMESPACES: &str = "/,/admin";
const ROLES: &str = r#"[[],["a"],["b"],["a","b"],["5"]]"#;

/// One input's result.
pub(crate) struct Judged {
    pub(crate) outcome: Outcome,
    /// Node's outcome, what it threw, and what the first socket got, for the report.
    pub(crate) detail: String,
    pub(crate) divergences: Vec<String>,
}

fn broke(side: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (client, r) in side.as_object().into_iter().flatten() {
        for why in r["broke"].as_array().into_iter().flatten() {
            out.push(format!("{client}: {why}"));
        }
    }
    out
}

fn events(side: &Value) -> BTreeMap<String, Value> {
    side.as_object()
        .into_iter()
        .flatten()
        .map(|(client, r)| (client.clone(), r["events"].clone()))
        .collect()
}

/// Compares one reply of `oracle.js` and the Rust server's malformed count for it.
pub(crate) fn judge(case: &Case, reply: &Value, malformed: u64) -> Judged {
    let mut divergences = Vec::new();
    let node_broke = broke(&reply["node"]);
    let rust_broke = broke(&reply["rust"]);
    let (from_node, from_rust) = (events(&reply["node"]), events(&reply["rust"]));
    let threw = reply["threw"].as_str();
    // Node sends an event without a usable name (`data` missing or not an array): the
    // client emits it with `undefined` as the name, which only a catch-all listener sees.
    let nameless = from_node
        .values()
        .flat_map(|e| e.as_array().into_iter().flatten())
        .any(|ev| !matches!(ev.get(0), Some(Value::String(_) | Value::Number(_))));
    let outcome = if threw.is_some() || !node_broke.is_empty() || nameless {
        Outcome::Skipped
    } else if from_node
        .values()
        .any(|e| e.as_array().is_some_and(|a| !a.is_empty()))
    {
        Outcome::Delivered
    } else {
        Outcome::Ignored
    };
    if !rust_broke.is_empty() {
        divergences.push(format!("the Rust server cut clients off: {rust_broke:?}"));
    }
    // The sharded cases are the classic ones with the encoding after a comma.
    let base = case
        .name
        .strip_suffix(", msgpack")
        .or_else(|| case.name.strip_suffix(", JSON"))
        .unwrap_or(&case.name);
    let deliberate = DELIBERATE.iter().find(|(name, ..)| *name == base);
    match outcome {
        _ if deliberate.is_some_and(|(_, socket, _)| socket.is_none()) => {}
        Outcome::Skipped => {
            let got: Vec<_> = from_rust
                .iter()
                .filter(|(_, e)| e.as_array().is_some_and(|a| !a.is_empty()))
                .collect();
            if !got.is_empty() {
                divergences.push(format!(
                    "Node skipped it (threw {threw:?}, cut off {node_broke:?}, nameless {nameless}); \
                 Rust delivered {got:?}"
                ));
            }
            if malformed == 0 {
                divergences.push("Node skipped it; Rust did not count it as malformed".into());
            }
        }
        Outcome::Delivered | Outcome::Ignored => {
            for (client, n) in &from_node {
                if deliberate.is_some_and(|(_, socket, _)| *socket == Some(client.as_str())) {
                    continue;
                }
                let r = from_rust.get(client).unwrap_or(&Value::Null);
                if n != r {
                    divergences.push(format!("socket {client}: Node {n}, Rust {r}"));
                }
            }
        }
    }
    let first = from_node
        .values()
        .find(|e| e.as_array().is_some_and(|a| !a.is_empty()));
    let detail = format!(
        "{}{}{}; Rust malformed +{malformed}",
        outcome.word(),
        threw.map(|t| format!(" (threw: {t})")).unwrap_or_default(),
        first.map(|e| format!(" e.g. {e}")).unwrap_or_default(),
    );
    Judged {
        outcome,
        detail,
        divergences,
    }
}

/// Runs `cases` through a Rust server and `oracle.js` on the shared Redis, then
/// `requests`; returns each broadcast case's judgement and each request's differences.
/// `sharded`: both servers speak the sharded protocol in that subscription mode.
pub(crate) async fn run(
    cases: &[Case],
    requests: &[RequestCase],
    sharded: Option<SubscriptionMode>,
) -> (Vec<Judged>, Vec<Vec<String>>) {
    let key = unique_key("oracle");
    let mut opts = shared_opts(&key);
    let mut mode_arg = Vec::new();
    if let Some(mode) = sharded {
        opts = opts.sharded(mode);
        mode_arg.push(format!("--sharded={}", mode.as_str()));
    }
    let rust: Node = node_with(opts, Parser::Json).await;
    // The server-side event the requests' `serverSideEmit` cases send; acks "pong" as
    // the oracle's Node server does.
    for nsp in NAMESPACES.split(',') {
        rust.cluster
            .of(nsp)
            .on_server_side("ping-ss", |ev| ev.ack("pong"));
    }
    let redis = common::shared().url();
    let node_key = format!("{key}-node");
    let mut oracle = NodeProcess::spawn(
        "oracle.js",
        [
            format!("--redis={redis}"),
            format!("--rust-key={key}"),
            format!("--node-key={node_key}"),
            format!("--rust-url={}", rust.url()),
            format!("--namespaces={NAMESPACES}"),
            format!("--roles={ROLES}"),
        ]
        .into_iter()
        .chain(mode_arg),
        &[],
    );
    oracle.wait_ready(T).await;
    let uid = rust.cluster.uid().to_string();
    oracle
        .request(json!({"cmd": "rustUid", "uid": uid}), T)
        .await;
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        let before = rust.cluster.stats().malformed;
        let reply = oracle
            .request(
                json!({"cmd": "case", "channel": case.channel, "hex": hex(&case.bytes)}),
                T,
            )
            .await;
        let malformed = rust.cluster.stats().malformed - before;
        out.push(judge(case, &reply, malformed));
    }
    let mut diffs = Vec::with_capacity(requests.len());
    for r in requests {
        let cmd = json!({"cmd": "request", "channel": r.channel, "hex": hex(&r.bytes)});
        diffs.push(crate::requests::judge(r, &oracle.request(cmd, T).await));
    }
    oracle.shutdown(T).await;
    (out, diffs)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The number of random cases and the seed: `DIFFERENTIAL_RANDOM` / `DIFFERENTIAL_SEED`
/// (defaults: 150 and a fixed seed, the list CI runs).
pub(crate) fn settings() -> (usize, u64) {
    let get = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    (
        get("DIFFERENTIAL_RANDOM").map_or(150, |n: u64| n as usize),
        get("DIFFERENTIAL_SEED").unwrap_or(0x5eed_0009),
    )
}

/// The case list for `settings()`.
pub(crate) fn case_list() -> Vec<Case> {
    let (random, seed) = settings();
    cases::all(random, seed)
}
