//! The main example in a real browser: `examples/cluster.rs` runs as its own process (two
//! servers through a test `redis-server`), headless Chromium opens the page of each
//! server, and a chat line typed in one page shows in the other, both ways.
//!
//! Chromium is driven over the DevTools protocol (a websocket, JSON commands). Requires
//! `chromium` (Debian: `apt-get install chromium`); `.ci/run` installs it.

use socketioxide_cluster_test_support as common;

use common::{RedisServer, free_port};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

/// Bound of one wait.
const T: Duration = Duration::from_secs(20);
/// Bound of a process' first line (Chromium's DevTools address, the example's ready
/// line): Chromium took 5 s to start on an idle 2-core machine and over 20 s once in CI.
const STARTUP: Duration = Duration::from_secs(90);
const CHROMIUM: &str = "chromium";

/// Kills (and reaps) a child process when dropped, whatever the test outcome.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (on a thread, bounded by [`STARTUP`]) for a line of `reader` that `pick` accepts.
fn wait_for_line<R: Read + Send + 'static>(
    reader: R,
    what: &'static str,
    pick: impl Fn(&str) -> Option<String> + Send + 'static,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Some(found) = pick(&line) {
                let _ = tx.send(Ok(found));
                // Keep draining so the child never blocks on a full pipe.
                continue;
            }
            seen.push(line);
        }
        let _ = tx.send(Err(seen.join("\n")));
    });
    match rx.recv_timeout(STARTUP) {
        Ok(Ok(found)) => found,
        Ok(Err(output)) => panic!("{what}: the process ended first; its output:\n{output}"),
        Err(_) => panic!("{what}: not within {STARTUP:?}"),
    }
}

/// Bound of the `cargo build --example cluster` run by [`example_binary`]: compiling and
/// linking the example alone takes well under a minute, this leaves room for a loaded
/// machine (and for cargo waiting on another build's lock of the target directory).
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The example binary, built by cargo for this very run.
///
/// `cargo test` builds the examples but `cargo test --test browser` does not, and a binary
/// left from an earlier build may be stale (its date says nothing about the library it was
/// linked with). So instead of looking for a file, the test runs `cargo build --example
/// cluster` with the profile, target and target directory it was itself built with: cargo
/// decides whether anything is out of date and its JSON messages name the executable, so
/// no path is guessed.
///
/// The build selects the whole workspace, like the test command of README.md and `.ci/run`
/// (`cargo test --workspace`): features are unified over the selected packages (wire's
/// dev-dependencies change those of redis and tracing-subscriber, among others), so with
/// the same selection the build is a no-op there, while a root-only one would rebuild a
/// dozen crates. `cargo test --test browser` alone pays that once, cargo keeps both sets.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .expect("test binary path");
    // Cargo sets this for integration tests: `<target dir>/tmp`.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .expect("target directory");
    // `<target dir>/[<target triple>/]<profile dir>/deps/<test binary>`
    let layout: Vec<String> = exe
        .strip_prefix(&target_dir)
        .unwrap_or_else(|_| {
            panic!(
                "{} is not under {}: cannot tell how to build the example",
                exe.display(),
                target_dir.display()
            )
        })
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let (triple, profile_dir) = match layout.as_slice() {
        [profile, _deps, _exe] => (None, profile),
        [triple, profile, _deps, _exe] => (Some(triple), profile),
        other => panic!("unexpected test binary layout under the target directory: {other:?}"),
    };
    // The `dev` profile (and `test`, which inherits it) builds into `debug/`; every other
    // profile into a directory of its own name.
    let profile = if profile_dir == "debug" {
        "dev"
    } else {
        profile_dir
    };

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .args(["--workspace", "--example", "cluster", "--profile", profile])
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--message-format=json-render-diagnostics");
    if let Some(triple) = triple {
        cmd.args(["--target", triple]);
    }
    // Cargo gives this test process the variables of the package under test
    // (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...). Build scripts that watch them (ring's
    // does, through `rerun-if-env-changed`) would see them changed and rebuild, with
    // everything above them: the nested cargo gets the environment of the outer one.
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        let set_for_the_test = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"]
            .iter()
            .any(|p| key_str.starts_with(p))
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&key_str.as_ref());
        if set_for_the_test {
            cmd.env_remove(&key);
        }
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cargo to build the example");
    // Both pipes are drained on threads so that cargo never blocks on a full one.
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (stdout, stderr) = (read_all(Box::new(stdout)), read_all(Box::new(stderr)));
    let hint = "build it yourself with `cargo build --example cluster` (same profile) and \
                rerun";
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for cargo") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`cargo build --example cluster` did not finish within {BUILD_TIMEOUT:?}: \
                 {hint}; its output:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        // A process exit has no portable wait-with-timeout in std: poll it.
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    assert!(
        status.success(),
        "`cargo build --example cluster` failed ({status}): {hint}; its output:\n{stderr}"
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "cluster")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.contains(&json!("example")))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| {
            panic!("cargo built no `cluster` example executable: {hint}; its output:\n{stderr}")
        })
}

/// `examples/cluster.rs` on `redis`; returns the process and its two ports.
fn start_example(redis: &RedisServer) -> (Reap, u16, u16) {
    let (a, b) = (free_port(), free_port());
    let mut child = Command::new(example_binary())
        .env("REDIS_URL", redis.url())
        .env("PORT_A", a.to_string())
        .env("PORT_B", b.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the example");
    let stdout = child.stdout.take().expect("stdout");
    let child = Reap(child);
    let ready = wait_for_line(stdout, "the example's ready line", |l| {
        l.starts_with("Open both pages").then(|| l.to_owned())
    });
    assert!(ready.contains("through Redis"), "{ready}");
    (child, a, b)
}

/// Headless Chromium with the DevTools protocol on a free port; its browser websocket.
fn start_chromium(profile: &Path) -> (Reap, String) {
    let child = Command::new(CHROMIUM)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run `{CHROMIUM}` ({e}): install it (Debian: apt-get install chromium); \
             .ci/run does"
        ),
    };
    let stderr = child.stderr.take().expect("stderr");
    let child = Reap(child);
    let ws = wait_for_line(stderr, "Chromium's DevTools address", |l| {
        l.strip_prefix("DevTools listening on ")
            .map(|s| s.trim().to_owned())
    });
    (child, ws)
}

/// A DevTools protocol connection to the browser, with pages attached in flat mode.
struct Cdp {
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let (ws, _) = connect_async(url).await.expect("DevTools websocket");
        Cdp { ws, next_id: 0 }
    }

    /// Sends `method` (to the page of `session`, if any) and returns its `result`.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("DevTools send");
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("DevTools: no reply to {method} within {T:?}"))
                .expect("DevTools connection closed")
                .expect("DevTools read");
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(&text).expect("DevTools JSON");
            // Events (no id) and replies to other calls are skipped.
            if reply["id"] != json!(id) {
                continue;
            }
            if let Some(err) = reply.get("error") {
                panic!("DevTools {method}: {err}");
            }
            return reply["result"].clone();
        }
    }

    /// Opens `url` in a new page; returns the page's session id and target id.
    async fn open(&mut self, url: &str) -> (String, String) {
        let target = self
            .call(None, "Target.createTarget", json!({"url": url}))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        (
            attached["sessionId"]
                .as_str()
                .expect("session id")
                .to_owned(),
            target["targetId"].as_str().expect("target id").to_owned(),
        )
    }

    /// Closes the page of `target`.
    async fn close(&mut self, target: &str) {
        self.call(None, "Target.closeTarget", json!({"targetId": target}))
            .await;
    }

    /// A PNG of the page, saved at `path`.
    async fn screenshot(&mut self, page: &str, path: &Path) {
        let r = self
            .call(
                Some(page),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        let b64 = r["data"].as_str().expect("screenshot data");
        std::fs::write(path, base64_decode(b64)).expect("write the screenshot");
    }

    /// The text of element `id` once `ok` holds for it (polled until `T`).
    async fn wait_text(
        &mut self,
        page: &str,
        id: &str,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            let js = format!(
                "(e => e ? e.innerText : '')(document.getElementById({}))",
                json!(id)
            );
            let text = self
                .eval(page, &js)
                .await
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if ok(&text) {
                return text;
            }
            assert!(
                started.elapsed() < T,
                "#{id} never showed {what} within {T:?}; it holds:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Evaluates `js` in the page; its value.
    async fn eval(&mut self, page: &str, js: &str) -> Value {
        let r = self
            .call(
                Some(page),
                "Runtime.evaluate",
                json!({"expression": js, "returnByValue": true}),
            )
            .await;
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("page script failed: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// The chat log of `page` once it contains `needle` (polled until `T`).
    async fn wait_log(&mut self, page: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let log = self
                .eval(
                    page,
                    "document.getElementById('log') ? document.getElementById('log').textContent : ''",
                )
                .await;
            let log = log.as_str().unwrap_or_default().to_owned();
            if log.contains(needle) {
                return log;
            }
            assert!(
                started.elapsed() < T,
                "page log never showed {needle:?} within {T:?}; it holds:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the page's chat form and submits it.
    async fn say(&mut self, page: &str, text: &str) {
        let js = format!(
            "document.getElementById('msg').value = {}; document.getElementById('f').requestSubmit(); true",
            json!(text)
        );
        assert_eq!(self.eval(page, &js).await, json!(true));
    }
}

/// Standard base64 (what CDP returns screenshots in).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_showcase_shows_the_cluster_in_a_real_browser() {
    common::init_tracing();
    let redis = RedisServer::start();
    let (_example, port_a, port_b) = start_example(&redis);
    let profile = std::env::temp_dir().join(format!(
        "socketioxide-cluster-chromium-{}",
        std::process::id()
    ));
    let (_chromium, ws) = start_chromium(&profile);
    let mut cdp = Cdp::connect(&ws).await;

    let (a, _) = cdp
        .open(&format!("http://127.0.0.1:{port_a}/?name=ada"))
        .await;
    cdp.wait_log(&a, "connected").await;
    // b joins after a is there: a sees the notice.
    let (b, b_target) = cdp
        .open(&format!("http://127.0.0.1:{port_b}/?name=bob"))
        .await;
    cdp.wait_log(&b, "connected").await;
    // Each page says which server it is on; both see both users, each on its server,
    // and two servers.
    cdp.wait_text(&a, "server", "node-a", |t| t == "node-a")
        .await;
    cdp.wait_text(&b, "server", "node-b", |t| t == "node-b")
        .await;
    for page in [&a, &b] {
        cdp.wait_text(page, "users", "both users with their servers", |t| {
            t.contains("ada @ node-a (lobby)") && t.contains("bob @ node-b (lobby)")
        })
        .await;
        cdp.wait_text(page, "servers", "2 servers", |t| t == "2")
            .await;
    }
    cdp.wait_log(&a, "bob joined on node-b").await;

    // A message crosses servers, in the room both are in.
    cdp.say(&a, "hello from a — ünïcode ✓").await;
    let log_b = cdp.wait_log(&b, "hello from a — ünïcode ✓").await;
    assert!(log_b.contains("[lobby] ada (node-a): "), "{log_b}");
    cdp.say(&b, "and back from b").await;
    cdp.wait_log(&a, "[lobby] bob (node-b): and back from b")
        .await;

    // A room switch on b is seen on a.
    assert_eq!(cdp.eval(&b, "room('garden'); true").await, json!(true));
    cdp.wait_text(&a, "users", "bob in the garden", |t| {
        t.contains("bob @ node-b (garden)")
    })
    .await;
    cdp.wait_log(&a, "bob moved to garden").await;
    // Messages stay in their room: a's lobby line does not reach b in the garden.
    cdp.say(&b, "garden only").await;
    cdp.wait_log(&b, "[garden] bob (node-b): garden only").await;
    cdp.say(&a, "lobby marker").await;
    let log_a = cdp.wait_log(&a, "lobby marker").await;
    assert!(!log_a.contains("garden only"), "{log_a}");

    // Screenshots for humans.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let (shot_a, shot_b) = (
        target.join("showcase-node-a.png"),
        target.join("showcase-node-b.png"),
    );
    cdp.screenshot(&a, &shot_a).await;
    cdp.screenshot(&b, &shot_b).await;
    for shot in [&shot_a, &shot_b] {
        let png = std::fs::read(shot).expect("screenshot written");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 1000,
            "{}",
            shot.display()
        );
        eprintln!("screenshot: {}", shot.display());
    }

    // A page closed disappears from the other's list.
    cdp.close(&b_target).await;
    cdp.wait_text(&a, "users", "bob gone", |t| {
        t.contains("ada @ node-a") && !t.contains("bob")
    })
    .await;
    cdp.wait_log(&a, "bob left node-b").await;

    drop(cdp);
    std::fs::remove_dir_all(&profile).ok();
}
