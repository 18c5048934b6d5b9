//! Drive the Node.js interop scripts of `tests/interop/` (`server.js`,
//! `legacy_server.js`, `client.js`, `emit.js`) from Rust integration tests.
//!
//! Each script is a long-lived process speaking JSON lines: commands on its
//! stdin, replies and unsolicited reports on its stdout (one JSON object per
//! line), logs on its stderr (forwarded to the test's stderr with a prefix).
//! The protocol of every script is documented in `tests/interop/README.md`.
//!
//! * Every command gets an `id` (assigned here) and is answered by exactly one
//!   reply line `{"id":N,"ok":true,...}` or `{"id":N,"error":"..."}`.
//! * Every other line (`{"event":..}`, `{"serverSideEvent":..}`,
//!   `{"connection":..}`, ...) is an *event*: it is buffered until a test takes
//!   it with [`NodeProcess::next_event`] / [`NodeProcess::next_matching`].
//! * Every wait is bounded; on timeout the helpers panic with what was awaited
//!   and the last lines seen.
//!
//! Binary values are written `{"$bin": "<standard base64>"}` in both
//! directions (a Node `Buffer`); see [`bin`], [`as_bin`]. Non-Buffer binary
//! received by Node is reported with an extra `"$kind"` key (e.g.
//! `{"$bin":"AQI=","$kind":"ArrayBuffer"}`), so `== bin(..)` also asserts
//! "arrived as a Buffer". Inputs may also use [`u8array`] (`{"$u8": b64}` ->
//! `Uint8Array`), [`array_buffer`] (`{"$ab": b64}` -> `ArrayBuffer`) and
//! [`undefined`] (`{"$undefined": true}` -> `undefined`).
//!
//! Requires `node` (20) and `npm ci` in `tests/interop`: without them the
//! helpers panic with [`INSTALL_HINT`] (tests are never skipped silently).

use std::{
    collections::{HashMap, VecDeque},
    ffi::OsStr,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
    time::Instant,
};

/// The message of every panic caused by a missing Node.js setup.
pub const INSTALL_HINT: &str = "install Node.js 20 and run `npm ci` in tests/interop";

/// A reasonable bound for one step of an interop test (startup, a request, an event).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How many raw stdout lines are kept for diagnostics.
const RECENT_LINES: usize = 30;

/// npm packages that must be present in `tests/interop/node_modules`.
const REQUIRED_PACKAGES: &[&str] = &[
    "socket.io",
    "socket.io-client",
    "@socket.io/redis-adapter",
    "@socket.io/redis-emitter",
    "socket.io-emitter",
    "redis",
    // legacy_server.js: socket.io-redis 6.1.1 on socket.io 4.0.2 and redis 3.1.2 (aliases)
    "socket.io-redis",
    "socket.io-4.0",
    "redis3",
];

/// `tests/interop/` of the root crate, where the Node scripts and their `package.json`
/// live (this crate sits in `test-support/` of the same repository).
///
/// Panics if the directory or the scripts are missing.
pub fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop");
    assert!(
        dir.join("server.js").is_file(),
        "the Node interop scripts are not at {}: the test-support crate must stay in \
         `test-support/` of the repository, next to `tests/interop/` ({INSTALL_HINT})",
        dir.display()
    );
    dir
}

/// The Node.js binary: `$INTEROP_NODE` if set, else `node` from `PATH`.
pub fn node_binary() -> String {
    std::env::var("INTEROP_NODE").unwrap_or_else(|_| "node".to_string())
}

/// Panics (with [`INSTALL_HINT`]) unless `node` runs and `tests/interop/node_modules`
/// holds the pinned packages. Checked once per test binary; returns `node --version`.
pub fn ensure_node() -> &'static str {
    static CHECK: OnceLock<Result<String, String>> = OnceLock::new();
    let res = CHECK.get_or_init(|| {
        let node = node_binary();
        let output = std::process::Command::new(&node)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `{node} --version`: {e}"))?;
        if !output.status.success() {
            return Err(format!("`{node} --version` failed: {}", output.status));
        }
        let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 18 {
            return Err(format!("Node.js {version} is too old"));
        }
        let modules = interop_dir().join("node_modules");
        for pkg in REQUIRED_PACKAGES {
            let manifest = modules.join(pkg).join("package.json");
            if !manifest.is_file() {
                return Err(format!("{} is missing", manifest.display()));
            }
        }
        Ok(version)
    });
    match res {
        Ok(v) => v,
        Err(e) => panic!("Node.js interop tests cannot run ({e}): {INSTALL_HINT}"),
    }
}

#[derive(Debug)]
enum Incoming {
    Line(String),
    Eof,
}

/// One running Node interop script. Killed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::UnboundedReceiver<Incoming>,
    /// unsolicited lines not consumed yet, in arrival order
    events: VecDeque<Value>,
    /// replies that arrived while waiting for something else
    replies: HashMap<u64, Value>,
    /// last raw stdout lines, for diagnostics
    recent: VecDeque<String>,
    next_id: u64,
    eof: bool,
    ready: Option<Value>,
}

impl NodeProcess {
    /// Spawn `node tests/interop/<script> <args..>` with extra environment
    /// variables. The name used in logs and panics is the script stem plus a
    /// counter, or the value of a `--name` argument. Must be called inside a
    /// tokio runtime.
    pub fn spawn<I, S>(script: &str, args: I, env: &[(&str, &str)]) -> NodeProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let stem = script.trim_end_matches(".js");
        let name = args
            .iter()
            .position(|a| a == "--name")
            .and_then(|i| args.get(i + 1))
            .map(|n| n.to_string_lossy().into_owned())
            .or_else(|| {
                args.iter()
                    .filter_map(|a| a.to_str())
                    .find_map(|a| a.strip_prefix("--name=").map(str::to_string))
            })
            .unwrap_or_else(|| format!("{stem}#{}", COUNTER.fetch_add(1, Ordering::Relaxed)));
        Self::spawn_named(&name, script, args, env)
    }

    /// Like [`spawn`](Self::spawn) with an explicit log name.
    pub fn spawn_named<I, S>(name: &str, script: &str, args: I, env: &[(&str, &str)]) -> NodeProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        ensure_node();
        let dir = interop_dir();
        let script_path = dir.join(script);
        assert!(
            script_path.is_file(),
            "{} does not exist",
            script_path.display()
        );
        let mut cmd = Command::new(node_binary());
        cmd.arg(&script_path)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn node {script} ({e}): {INSTALL_HINT}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(Incoming::Line(line)).is_err() {
                    return;
                }
            }
            tx.send(Incoming::Eof).ok();
        });
        let prefix = format!("[node:{name}]");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{prefix} {line}");
            }
        });

        NodeProcess {
            name: name.to_string(),
            child,
            stdin: Some(stdin),
            rx,
            events: VecDeque::new(),
            replies: HashMap::new(),
            recent: VecDeque::new(),
            next_id: 1,
            eof: false,
            ready: None,
        }
    }

    /// The name used in logs and panics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Wait for the `{"ready": ...}` line and return it (also kept, see
    /// [`ready_info`](Self::ready_info)). Panics on a `{"fatal": ...}` line, on
    /// exit, or on timeout. Lines before it stay buffered as events.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Value {
        if let Some(r) = &self.ready {
            return r.clone();
        }
        let v = self
            .take_event_where(
                |v| v.get("ready").is_some() || v.get("fatal").is_some(),
                timeout,
                "the {\"ready\"} line",
            )
            .await;
        if let Some(f) = v.get("fatal") {
            panic!(
                "node {} failed to start: {f}\nlast lines:\n{}",
                self.name,
                self.recent_lines()
            );
        }
        if v["ready"] != json!(true) {
            panic!("node {} reported not ready: {v}", self.name);
        }
        self.ready = Some(v.clone());
        v
    }

    /// The `ready` line, once [`wait_ready`](Self::wait_ready) returned.
    pub fn ready_info(&self) -> &Value {
        self.ready
            .as_ref()
            .unwrap_or_else(|| panic!("node {}: wait_ready() was not called", self.name))
    }

    /// `server.js`: the HTTP port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        let p = &self.ready_info()["port"];
        p.as_u64()
            .unwrap_or_else(|| panic!("node {}: no port in ready line {p}", self.name))
            as u16
    }

    /// `server.js`: `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// `client.js`: the socket id it connected with.
    pub fn sid(&self) -> String {
        let s = &self.ready_info()["connected"];
        s.as_str()
            .unwrap_or_else(|| panic!("node {}: no sid in ready line {s}", self.name))
            .to_string()
    }

    /// Send a command without waiting; an `id` is assigned (any `id` in `cmd`
    /// is replaced) and returned for [`wait_reply`](Self::wait_reply).
    pub async fn send(&mut self, mut cmd: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        match cmd.as_object_mut() {
            Some(obj) => {
                obj.insert("id".into(), json!(id));
            }
            None => panic!("node command must be a JSON object, got {cmd}"),
        }
        let mut line = serde_json::to_string(&cmd).expect("serialize command");
        line.push('\n');
        let name = self.name.clone();
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("node {name}: stdin already closed"));
        if let Err(e) = stdin.write_all(line.as_bytes()).await {
            panic!(
                "node {name}: cannot write command {cmd} ({e}); last lines:\n{}",
                self.recent_lines()
            );
        }
        stdin.flush().await.ok();
        id
    }

    /// Wait for the reply to command `id` (`ok` or `error`), buffering other lines.
    pub async fn wait_reply(&mut self, id: u64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.replies.remove(&id) {
                return r;
            }
            if !self.pump(deadline).await {
                self.fail_wait(&format!("the reply to command id {id}"), timeout);
            }
        }
    }

    /// Send `cmd` and wait for its reply; panics if the reply is an error.
    /// Returns the whole reply object (`{"id":..,"ok":true,...}`).
    pub async fn request(&mut self, cmd: Value, timeout: Duration) -> Value {
        let shown = cmd.to_string();
        match self.try_request(cmd, timeout).await {
            Ok(v) => v,
            Err(e) => panic!("node {}: command {shown} failed: {e}", self.name),
        }
    }

    /// Send `cmd` and wait for its reply: `Ok(reply)` or `Err(error message)`.
    pub async fn try_request(&mut self, cmd: Value, timeout: Duration) -> Result<Value, String> {
        let id = self.send(cmd).await;
        let reply = self.wait_reply(id, timeout).await;
        match reply.get("error") {
            Some(e) => Err(e
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string())),
            None => Ok(reply),
        }
    }

    /// The next unsolicited line (oldest first).
    pub async fn next_event(&mut self, timeout: Duration) -> Value {
        self.take_event_where(|_| true, timeout, "any event line")
            .await
    }

    /// The first unsolicited line (buffered or new) for which `pred` holds; the
    /// others stay buffered in order.
    pub async fn next_matching<F>(&mut self, pred: F, timeout: Duration) -> Value
    where
        F: FnMut(&Value) -> bool,
    {
        self.take_event_where(pred, timeout, "an event line matching the predicate")
            .await
    }

    /// Like [`next_matching`](Self::next_matching) with a description for the
    /// timeout panic.
    pub async fn next_matching_described<F>(
        &mut self,
        pred: F,
        timeout: Duration,
        what: &str,
    ) -> Value
    where
        F: FnMut(&Value) -> bool,
    {
        self.take_event_where(pred, timeout, what).await
    }

    /// Client lines `{"event": name, "args": [...]}`: the next one named `name`.
    pub async fn next_client_event(&mut self, name: &str, timeout: Duration) -> Value {
        let what = format!("client event {name:?}");
        self.take_event_where(|v| v["event"] == name, timeout, &what)
            .await
    }

    /// Panics if a line matching `pred` is buffered or arrives within `within`.
    /// This waits the whole `within`: prefer an ordering argument (e.g. send a
    /// marker event after the one that must not arrive, wait for the marker,
    /// then check [`buffered_events`](Self::buffered_events)).
    pub async fn assert_no_matching<F>(&mut self, mut pred: F, within: Duration)
    where
        F: FnMut(&Value) -> bool,
    {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = self.events.iter().find(|v| pred(v)) {
                panic!(
                    "node {}: got an unexpected line {v}\nlast lines:\n{}",
                    self.name,
                    self.recent_lines()
                );
            }
            if !self.pump(deadline).await {
                return;
            }
        }
    }

    /// Panics if a line matching `pred` is buffered or has already arrived
    /// (no waiting). Use after waiting for a marker event sent later on the
    /// same path, so that ordering proves absence.
    pub fn assert_none_received<F>(&mut self, mut pred: F)
    where
        F: FnMut(&Value) -> bool,
    {
        while let Ok(inc) = self.rx.try_recv() {
            self.handle(inc);
        }
        if let Some(v) = self.events.iter().find(|v| pred(v)) {
            panic!(
                "node {}: got an unexpected line {v}\nlast lines:\n{}",
                self.name,
                self.recent_lines()
            );
        }
    }

    /// Every unsolicited line received so far (buffered plus already arrived),
    /// without waiting.
    pub fn drain_events(&mut self) -> Vec<Value> {
        while let Ok(inc) = self.rx.try_recv() {
            self.handle(inc);
        }
        self.events.drain(..).collect()
    }

    /// The buffered unsolicited lines (not consumed).
    pub fn buffered_events(&self) -> &VecDeque<Value> {
        &self.events
    }

    /// Ask the script to exit (`{"cmd":"exit"}` + stdin EOF) and wait for it up
    /// to `timeout`; kill it otherwise. Returns its exit status.
    pub async fn shutdown(mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"{\"id\":0,\"cmd\":\"exit\"}\n").await;
            let _ = stdin.flush().await;
            drop(stdin);
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                eprintln!(
                    "[node:{}] did not exit within {timeout:?}, killing it",
                    self.name
                );
                self.child.kill().await.ok();
                None
            }
        }
    }

    /// Waits up to `timeout` for the process to exit on its own (nothing is sent to it);
    /// `None` if it is still running then.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => None,
        }
    }

    /// SIGKILL the process now (it is also killed on drop).
    pub async fn kill(&mut self) {
        self.child.kill().await.ok();
    }

    /// The last raw stdout lines, one per line.
    pub fn recent_lines(&self) -> String {
        if self.recent.is_empty() {
            return "  <none>".to_string();
        }
        self.recent
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn take_event_where<F>(&mut self, mut pred: F, timeout: Duration, what: &str) -> Value
    where
        F: FnMut(&Value) -> bool,
    {
        let deadline = Instant::now() + timeout;
        let mut checked = 0;
        loop {
            if let Some(pos) = self.events.iter().skip(checked).position(&mut pred) {
                return self.events.remove(checked + pos).expect("index in range");
            }
            checked = self.events.len();
            if !self.pump(deadline).await {
                self.fail_wait(what, timeout);
            }
        }
    }

    /// Receive one stdout line (or EOF) before `deadline`. Returns false on
    /// timeout or once the process has closed its stdout.
    async fn pump(&mut self, deadline: Instant) -> bool {
        if self.eof {
            return false;
        }
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(inc)) => {
                self.handle(inc);
                true
            }
            Ok(None) => {
                self.eof = true;
                false
            }
            Err(_) => false,
        }
    }

    fn handle(&mut self, inc: Incoming) {
        let line = match inc {
            Incoming::Line(l) => l,
            Incoming::Eof => {
                self.eof = true;
                return;
            }
        };
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(line.clone());
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                eprintln!("[node:{}] non-JSON stdout line: {line}", self.name);
                return;
            }
        };
        if v.get("uncaught").is_some() {
            eprintln!("[node:{}] reported {line}", self.name);
        }
        let is_reply = v.get("ok").is_some() || v.get("error").is_some();
        match v.get("id").and_then(Value::as_u64) {
            Some(id) if is_reply => {
                self.replies.insert(id, v);
            }
            _ => self.events.push_back(v),
        }
    }

    fn fail_wait(&mut self, what: &str, timeout: Duration) -> ! {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!("exited with {s}"),
            Ok(None) if self.eof => "closed its stdout".to_string(),
            Ok(None) => "still running".to_string(),
            Err(e) => format!("status unknown ({e})"),
        };
        let why = if self.eof {
            "the process ended".to_string()
        } else {
            format!("timed out after {timeout:?}")
        };
        panic!(
            "node {}: {why} waiting for {what} (process {status}; {} buffered events)\nlast lines:\n{}",
            self.name,
            self.events.len(),
            self.recent_lines()
        );
    }
}

// ---------------------------------------------------------------------------
// Convenience starters (each waits for the ready line, DEFAULT_TIMEOUT)

/// Start `server.js` (socket.io 4.8.4 + @socket.io/redis-adapter 8.3.0) on
/// 127.0.0.1:0. `extra_args` e.g. `&["--requests-timeout", "1000"]`.
pub async fn start_server(
    name: &str,
    redis_url: &str,
    key: &str,
    extra_args: &[&str],
) -> NodeProcess {
    let mut args = vec!["--name", name, "--redis", redis_url, "--key", key];
    args.extend_from_slice(extra_args);
    let mut p = NodeProcess::spawn_named(name, "server.js", args, &[]);
    p.wait_ready(DEFAULT_TIMEOUT).await;
    p
}

/// Start `legacy_server.js` (socket.io 4.0.2 + socket.io-redis 6.1.1, the previous
/// generation of Node servers) on 127.0.0.1:0. `extra_args` e.g. `&["--tap"]`.
pub async fn start_legacy_server(
    name: &str,
    redis_url: &str,
    key: &str,
    extra_args: &[&str],
) -> NodeProcess {
    let mut args = vec!["--name", name, "--redis", redis_url, "--key", key];
    args.extend_from_slice(extra_args);
    let mut p = NodeProcess::spawn_named(name, "legacy_server.js", args, &[]);
    p.wait_ready(DEFAULT_TIMEOUT).await;
    p
}

/// Start `client.js` connected to `url` (`http://127.0.0.1:PORT`, a Node or a
/// Rust server) on namespace `nsp`, after joining `rooms` (a JSON array, may be
/// `json!([])`) through the server's `"join"` event.
pub async fn start_client(
    name: &str,
    url: &str,
    nsp: &str,
    rooms: Value,
    extra_args: &[&str],
) -> NodeProcess {
    let rooms = rooms.to_string();
    let mut args = vec![
        "--name",
        name,
        "--url",
        url,
        "--nsp",
        nsp,
        "--rooms",
        rooms.as_str(),
    ];
    args.extend_from_slice(extra_args);
    let mut p = NodeProcess::spawn_named(name, "client.js", args, &[]);
    p.wait_ready(DEFAULT_TIMEOUT).await;
    p
}

/// Start `emit.js` (@socket.io/redis-emitter 5.1.0 and socket.io-emitter 3.2.0).
pub async fn start_emitter(name: &str, redis_url: &str, key: &str) -> NodeProcess {
    let args = ["--name", name, "--redis", redis_url, "--key", key];
    let mut p = NodeProcess::spawn_named(name, "emit.js", args, &[]);
    p.wait_ready(DEFAULT_TIMEOUT).await;
    p
}

// ---------------------------------------------------------------------------
// Value markers

/// `{"$bin": base64}`: a Node `Buffer` (input and output).
pub fn bin(bytes: &[u8]) -> Value {
    json!({ "$bin": base64_encode(bytes) })
}

/// `{"$u8": base64}`: a Node `Uint8Array` (input only).
pub fn u8array(bytes: &[u8]) -> Value {
    json!({ "$u8": base64_encode(bytes) })
}

/// `{"$ab": base64}`: a Node `ArrayBuffer` (input only).
pub fn array_buffer(bytes: &[u8]) -> Value {
    json!({ "$ab": base64_encode(bytes) })
}

/// `{"$undefined": true}`: JS `undefined`.
pub fn undefined() -> Value {
    json!({ "$undefined": true })
}

/// The bytes of a `{"$bin": ..}` value that Node saw as a `Buffer` (exactly
/// one key). `None` for anything else, including non-Buffer binary (which
/// carries a `"$kind"`).
pub fn as_bin(v: &Value) -> Option<Vec<u8>> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    base64_decode(obj.get("$bin")?.as_str()?)
}

/// The bytes of any binary value (`{"$bin": .., "$kind"?: ..}`), whatever its JS type.
pub fn as_any_bin(v: &Value) -> Option<Vec<u8>> {
    base64_decode(v.as_object()?.get("$bin")?.as_str()?)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what Node's `buf.toString("base64")` gives).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Decodes standard base64 (padding optional). `None` if malformed.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None; // a single dangling character
    }
    Some(out)
}
