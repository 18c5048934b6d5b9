//! Two socketioxide servers, one cluster: each page shows the server it is on, everyone
//! online on every server (from a cluster-wide `fetch_sockets` and each server's
//! description of its sockets), the number of servers, join/leave notices, and a chat
//! with two rooms; a line typed on one server's page reaches the other's, through Redis.
//!
//! ```text
//! cargo run --example cluster            # REDIS_URL defaults to redis://127.0.0.1:6379
//! ```
//! Then open http://127.0.0.1:3000 and http://127.0.0.1:3001 side by side.
//! A Node socket.io server using `@socket.io/redis-adapter` with the same Redis and key
//! joins the same chat.
//!
//! Without a reachable Redis the example says how to start one and runs both servers on
//! the in-process bus instead (one process, no Redis: the zero-setup transport).

use serde_json::{Value, json};
use socketioxide::{
    SocketIo,
    extract::{AckSender, Data, SocketRef},
};
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions, InProcessBus, SocketDetails};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Adapter = ClusterAdapter<socketioxide::adapter::Emitter>;
/// The two chat rooms a user can be in.
const ROOMS: [&str; 2] = ["lobby", "garden"];

/// Tells every page of every server that the presence list changed, with a notice.
async fn announce(s: &SocketRef<Adapter>, notice: String) {
    for (ev, arg) in [("notice", json!(notice)), ("presence", json!(null))] {
        if let Err(e) = s.broadcast().emit(ev, &arg).await {
            eprintln!("broadcast failed: {e}");
        }
        let _ = s.emit(ev, &arg);
    }
}

async fn start_node(
    name: &'static str,
    port: u16,
    opts: ClusterOptions,
) -> Result<Cluster, Box<dyn std::error::Error>> {
    let cluster = Cluster::connect(opts).await?;
    let (layer, io) = SocketIo::builder()
        // socketioxide drops packets for a socket whose buffer (default 128) is full:
        // raise it for bursty cluster traffic.
        .max_buffer_size(4096)
        .with_adapter::<Adapter>(cluster.clone())
        .build_layer();
    // The user name of each socket here, for fetch_sockets answers to every server.
    let users: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let described = users.clone();
    cluster.of("/").describe_sockets(move |id| {
        let user = described.lock().map(|u| u.get(id).cloned()).ok().flatten();
        SocketDetails::new().data(json!({ "name": user, "server": name }))
    });
    let ns = cluster.of("/");
    io.ns(
        "/",
        async move |s: SocketRef<Adapter>, Data(auth): Data<Value>| {
            let user = auth["name"]
                .as_str()
                .filter(|n| !n.is_empty() && n.len() <= 32)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("guest-{}", &s.id.to_string()[..4]));
            if let Ok(mut u) = users.lock() {
                u.insert(s.id.to_string(), user.clone());
            }
            s.join(ROOMS[0]);
            let _ = s.emit(
                "hello",
                &json!({ "server": name, "id": s.id.to_string(), "name": user }),
            );
            announce(&s, format!("{user} joined on {name}")).await;

            // The cluster-wide presence list: every socket of every server, as its server
            // describes it, and how many servers there are.
            let ns2 = ns.clone();
            s.on("who", move |ack: AckSender<Adapter>| {
                let ns2 = ns2.clone();
                async move {
                    let sockets = ns2.fetch_sockets(&[], &[]).await.unwrap_or_default();
                    let servers = ns2.server_count().await.unwrap_or(0);
                    let list: Vec<Value> = sockets
                        .into_iter()
                        .map(|x| {
                            let room = ROOMS.iter().find(|r| x.rooms.iter().any(|y| y == *r));
                            json!({
                                "id": x.id,
                                "name": x.data["name"],
                                "server": x.data["server"],
                                "room": room,
                            })
                        })
                        .collect();
                    let _ = ack.send(&json!({ "users": list, "servers": servers }));
                }
            });
            let u2 = user.clone();
            s.on(
                "room",
                move |s: SocketRef<Adapter>, Data(room): Data<String>| async move {
                    if !ROOMS.contains(&room.as_str()) {
                        return;
                    }
                    s.leave(ROOMS.to_vec());
                    s.join(room.clone());
                    announce(&s, format!("{u2} moved to {room}")).await;
                },
            );
            let u3 = user.clone();
            s.on(
                "chat",
                move |s: SocketRef<Adapter>, Data(text): Data<String>| async move {
                    let room = s
                        .rooms()
                        .into_iter()
                        .find(|r| ROOMS.contains(&r.as_ref()))
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| ROOMS[0].to_owned());
                    let line = format!("[{room}] {u3} ({name}): {text}");
                    // Everyone in the room on every server, sender included.
                    if let Err(e) = s.within(room).emit("chat", &line).await {
                        eprintln!("{name}: broadcast failed: {e}");
                    }
                },
            );
            let gone = users.clone();
            s.on_disconnect(move |s: SocketRef<Adapter>| async move {
                if let Ok(mut u) = gone.lock() {
                    u.remove(&s.id.to_string());
                }
                announce(&s, format!("{user} left {name}")).await;
            });
        },
    )
    .await?;
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Html(PAGE) }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "{name}: http://127.0.0.1:{port}  (server uid {})",
        cluster.uid()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(cluster)
}

#[tokio::main]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let port_a = std::env::var("PORT_A")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let port_b = std::env::var("PORT_B")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let redis = ClusterOptions::new(&url).connect_timeout(Duration::from_secs(3));
    let (opts, via) = match Cluster::connect(redis.clone()).await {
        Ok(probe) => {
            probe.close().await;
            (redis, "through Redis")
        }
        Err(e) => {
            eprintln!("Redis at {url} is not usable: {e}");
            eprintln!(
                "To run the two servers through Redis, start one with:\n    \
                 sudo apt-get install -y redis-server && redis-server --port 6379 --save '' --daemonize yes\n\
                 or point REDIS_URL at yours (e.g. REDIS_URL=redis://127.0.0.1:6380).\n\
                 Meanwhile both servers share the in-process bus (this process only)."
            );
            (
                ClusterOptions::in_process(&InProcessBus::new()),
                "through the in-process bus",
            )
        }
    };
    let nodes = async {
        let a = start_node("node-a", port_a, opts.clone()).await?;
        let b = start_node("node-b", port_b, opts).await?;
        Ok::<_, Box<dyn std::error::Error>>((a, b))
    }
    .await;
    let (a, b) = match nodes {
        Ok(nodes) => nodes,
        Err(e) => {
            eprintln!("could not start the cluster: {e}");
            std::process::exit(1);
        }
    };
    println!("Open both pages; type in one, read in the other ({via}). Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    a.close().await;
    b.close().await;
    println!(
        "stats: node-a {:?}\n       node-b {:?}",
        a.stats(),
        b.stats()
    );
}

/// A page with a tiny socket.io v4 client over websocket (no CDN, no bundle): the
/// server it is on, everyone online on every server (and where), the number of servers,
/// two rooms, join/leave notices and a chat.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>socketioxide-cluster</title>
<style>
body{font:15px system-ui;margin:1.5em;display:grid;grid-template-columns:1fr 16em;gap:1em}
#log{white-space:pre-wrap;border:1px solid #ccc;height:20em;overflow:auto;padding:.5em}
#side{border:1px solid #ccc;padding:.5em} #users li.me{font-weight:bold}
.notice{color:#777} button.on{background:#cde}
</style>
<div>
<h1>Chat on <span id="server">…</span> <small id="host"></small></h1>
<p>You are <b id="me"></b> in
<button id="r-lobby" class="on" onclick="room('lobby')">lobby</button>
<button id="r-garden" onclick="room('garden')">garden</button></p>
<div id="log"></div>
<form id="f"><input id="msg" autocomplete="off" placeholder="say something" autofocus> <button>send</button></form>
</div>
<div id="side"><h3><span id="servers">?</span> server(s), <span id="count">0</span> online</h3><ul id="users"></ul></div>
<script>
const $ = id => document.getElementById(id);
const log = (t, cls) => { const d = document.createElement('div'); d.textContent = t; if (cls) d.className = cls; $('log').append(d); $('log').scrollTop = 1e9; };
const me = window.me = new URLSearchParams(location.search).get('name') || 'user-' + Math.random().toString(36).slice(2, 6);
$('me').textContent = me; $('host').textContent = location.host;
let myId = null, nextAck = 1; const acks = {};
const ws = new WebSocket(`ws://${location.host}/socket.io/?EIO=4&transport=websocket`);
const emit = (ev, arg, cb) => { let id = ''; if (cb) { id = nextAck++; acks[id] = cb; } ws.send('42' + id + JSON.stringify(arg === undefined ? [ev] : [ev, arg])); };
const who = () => emit('who', undefined, ({users, servers}) => {
  $('servers').textContent = servers; $('count').textContent = users.length;
  $('users').replaceChildren(...users.sort((a, b) => (a.name || '').localeCompare(b.name || '')).map(u => {
    const li = document.createElement('li'); li.textContent = `${u.name} @ ${u.server} (${u.room})`;
    if (u.id === myId) li.className = 'me'; return li; }));
});
window.room = r => { emit('room', r); for (const x of ['lobby', 'garden']) $('r-' + x).className = x === r ? 'on' : ''; };
ws.onmessage = ({data}) => {
  if (data[0] === '0') ws.send('40' + JSON.stringify({name: me}));   // engine.io open -> connect with auth
  else if (data === '2') ws.send('3');                                 // ping -> pong
  else if (data.startsWith('40')) log('connected', 'notice');
  else if (data.startsWith('43')) { const m = data.slice(2).match(/^(\d+)(.*)$/); const cb = acks[m[1]]; delete acks[m[1]]; if (cb) cb(...JSON.parse(m[2])); }
  else if (data.startsWith('42')) {
    const [ev, arg] = JSON.parse(data.slice(2));
    if (ev === 'hello') { $('server').textContent = arg.server; myId = arg.id; document.title = `${me} on ${arg.server}`; who(); }
    else if (ev === 'chat') log(arg);
    else if (ev === 'notice') log(arg, 'notice');
    else if (ev === 'presence') who();
  }
};
ws.onclose = () => log('disconnected', 'notice');
$('f').onsubmit = e => { e.preventDefault(); const m = $('msg'); if (m.value) emit('chat', m.value); m.value = ''; };
</script>
"#;
