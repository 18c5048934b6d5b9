//! Two socketioxide servers, one cluster: a chat where a message typed on a page served
//! by one server reaches the pages served by the other, through Redis.
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

use socketioxide::{
    SocketIo,
    extract::{Data, SocketRef},
};
use socketioxide_cluster::{Cluster, ClusterAdapter, ClusterOptions, InProcessBus};
use std::time::Duration;

type Adapter = ClusterAdapter<socketioxide::adapter::Emitter>;

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
    io.ns("/", async move |s: SocketRef<Adapter>| {
        s.join("chat");
        s.on(
            "chat",
            move |s: SocketRef<Adapter>, Data(text): Data<String>| async move {
                let line = format!("[{name}] {}: {text}", &s.id.to_string()[..6]);
                // Everyone in the room on every server, sender included.
                if let Err(e) = s.within("chat").emit("chat", &line).await {
                    eprintln!("{name}: broadcast failed: {e}");
                }
            },
        );
    })
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

/// A page with a tiny socket.io v4 client over websocket (no CDN, no bundle).
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>socketioxide-cluster chat</title>
<style>body{font:15px system-ui;margin:2em}#log{white-space:pre-wrap;border:1px solid #ccc;height:20em;overflow:auto;padding:.5em}</style>
<h1>socketioxide-cluster chat on <span id="host"></span></h1>
<div id="log"></div>
<form id="f"><input id="msg" autocomplete="off" placeholder="say something" autofocus> <button>send</button></form>
<script>
const log = t => { const d = document.getElementById('log'); d.textContent += t + '\n'; d.scrollTop = 1e9; };
document.getElementById('host').textContent = location.host;
const ws = new WebSocket(`ws://${location.host}/socket.io/?EIO=4&transport=websocket`);
ws.onmessage = ({data}) => {
  if (data[0] === '0') ws.send('40');                  // engine.io open -> socket.io connect
  else if (data === '2') ws.send('3');                 // ping -> pong
  else if (data.startsWith('40')) log('connected');
  else if (data.startsWith('42')) { const [ev, text] = JSON.parse(data.slice(2)); if (ev === 'chat') log(text); }
};
ws.onclose = () => log('disconnected');
document.getElementById('f').onsubmit = e => {
  e.preventDefault(); const m = document.getElementById('msg');
  if (m.value) ws.send('42' + JSON.stringify(['chat', m.value])); m.value = '';
};
</script>
"#;
