//! A throw-away `redis-server` process per test binary (or per test), on a free
//! loopback port, with helpers for fault injection (SIGKILL, SIGSTOP/SIGCONT,
//! restart on the same port).
//!
//! Never relies on a Redis at 6379.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

/// How long we wait for a freshly started `redis-server` to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports we try when `redis-server` fails to start (e.g. the port
/// we picked was taken by someone else between our probe and its bind).
const START_ATTEMPTS: usize = 4;

/// A `redis-server` child process listening on `127.0.0.1:port`.
///
/// * Non-shared instances ([`RedisServer::start`]) are killed on `Drop`.
/// * The per-binary [`shared`] instance lives in a static and is never dropped;
///   it dies with the test binary thanks to `PR_SET_PDEATHSIG` (see `spawn_child`).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    /// Before every other argument (a config file must come first).
    leading_args: Vec<String>,
    extra_args: Vec<String>,
    log_path: PathBuf,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Start a new `redis-server` on a free port with the default arguments.
    pub fn start() -> RedisServer {
        Self::start_with_args(&[])
    }

    /// Start a new `redis-server` on a free port. `extra_args` are appended to the
    /// command line, e.g. `&["--client-output-buffer-limit", "pubsub 1mb 1mb 0"]`.
    pub fn start_with_args(extra_args: &[&str]) -> RedisServer {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        Self::start_with(|| extra_args.clone())
    }

    /// Like [`start_with_args`](Self::start_with_args), with the arguments made anew for
    /// each start attempt (e.g. to pick another free port for `--tls-port` as well).
    pub fn start_with(extra_args: impl Fn() -> Vec<String>) -> RedisServer {
        Self::start_attempts(|| (Vec::new(), extra_args()))
    }

    /// A sentinel (`redis-server <conf> --sentinel`) on a free port; `conf` is written
    /// anew for each attempt (sentinel rewrites it as it learns the topology).
    pub fn start_sentinel(conf: &std::path::Path, contents: &str) -> RedisServer {
        Self::start_sentinel_with(conf, contents, Vec::new)
    }

    /// [`start_sentinel`](Self::start_sentinel) with `extra_args`, made anew for each
    /// attempt.
    pub fn start_sentinel_with(
        conf: &std::path::Path,
        contents: &str,
        extra_args: impl Fn() -> Vec<String>,
    ) -> RedisServer {
        Self::start_attempts(|| {
            std::fs::write(conf, contents).expect("write the sentinel config");
            (
                vec![conf.display().to_string(), "--sentinel".into()],
                extra_args(),
            )
        })
    }

    /// Up to `START_ATTEMPTS` starts on a free port each; `args` gives the leading and
    /// the extra arguments of each attempt.
    fn start_attempts(args: impl Fn() -> (Vec<String>, Vec<String>)) -> RedisServer {
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let (leading_args, extra_args) = args();
            let server = RedisServer {
                port,
                leading_args,
                extra_args,
                log_path: log_path(port),
                child: Mutex::new(None),
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start redis-server after {START_ATTEMPTS} attempts: {last_err}");
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The loopback port it listens on (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The pid of the current `redis-server` process (changes after [`restart`](Self::restart)).
    /// Panics if the server was killed and not restarted.
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .expect("redis-server is not running (killed?)")
            .id()
    }

    /// SIGKILL the server and reap it. After this returns the port refuses connections.
    /// No-op if already killed.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// SIGSTOP the server: connections stay open but nothing is answered.
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT a server previously stopped with [`stop`](Self::stop).
    pub fn cont(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kill the server (if running) and start a new one on the same port, with the
    /// same arguments. Returns once it answers `PING`. All data is lost (no persistence).
    pub fn restart(&self) {
        self.kill();
        // Redis sets SO_REUSEADDR on its listener, so re-binding the same port right
        // after a kill is fine; retry a little anyway in case the kernel is slow.
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) => {
                    last_err = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!(
            "could not restart redis-server on port {}: {last_err}",
            self.port
        );
    }

    /// Whether the server currently answers `PING` within `timeout`.
    pub fn answers_ping(&self, timeout: Duration) -> bool {
        ping(self.addr(), timeout).is_ok()
    }

    // Signals and PR_SET_PDEATHSIG need libc; each unsafe block says why it is sound.
    #[allow(unsafe_code)]
    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid();
        // SAFETY: plain kill(2) on a pid we own (our child, not yet reaped).
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The RDB file name of this server (in the temporary directory).
    fn rdb_name(&self) -> String {
        format!(
            "socketioxide-cluster-test-{}-{}.rdb",
            std::process::id(),
            self.port
        )
    }

    fn spawn_and_wait(&self) -> Result<(), String> {
        // Every start is empty, a restart too (a replica may have written its RDB).
        std::fs::remove_file(std::env::temp_dir().join(self.rdb_name())).ok();
        let mut args = self.leading_args.clone();
        args.extend([
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            std::env::temp_dir().display().to_string(),
            // A file of its own: a replica writes the RDB of its full sync, and any other
            // server started in the same directory would load the shared `dump.rdb`.
            "--dbfilename".into(),
            self.rdb_name(),
            "--logfile".into(),
            self.log_path.display().to_string(),
        ]);
        args.extend(self.extra_args.iter().cloned());

        let mut child = spawn_child(args)?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited early with {status}; log:\n{}",
                    self.port,
                    self.read_log()
                ));
            }
            if ping(self.addr(), Duration::from_millis(500)).is_ok() {
                *self.child.lock().unwrap() = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                child.kill().ok();
                child.wait().ok();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {STARTUP_TIMEOUT:?}; log:\n{}",
                    self.port,
                    self.read_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn read_log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("<no log: {e}>"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        std::fs::remove_file(&self.log_path).ok();
        std::fs::remove_file(std::env::temp_dir().join(self.rdb_name())).ok();
    }
}

/// The redis-server shared by every test of this test binary. Tests must isolate
/// themselves with [`unique_key`].
pub fn shared() -> &'static RedisServer {
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    SHARED.get_or_init(RedisServer::start)
}

/// A Redis key prefix unique to this call within this machine (counter + pid), e.g.
/// `unique_key("socket.io")` -> `"socket.io-t3-12345"`. Use it as the adapter's key
/// prefix so tests sharing one redis-server never see each other's messages.
pub fn unique_key(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-t{n}-{}", std::process::id())
}

/// Send `PING` on a fresh TCP connection and expect `+PONG`, all within `timeout`.
pub fn ping(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    stream
        .write_all(b"PING\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed, got {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    // A server with a password answers `-NOAUTH`: it is up, and the test authenticates.
    if got.starts_with(b"+PONG") || got.starts_with(b"-NOAUTH") {
        Ok(())
    } else {
        // e.g. "-LOADING ..." while starting
        Err(format!(
            "unexpected reply {:?}",
            String::from_utf8_lossy(&got)
        ))
    }
}

/// A loopback port that was free a moment ago (bind `127.0.0.1:0`, read the port,
/// release it). Another process may take it before use; [`RedisServer::start`] retries
/// with a fresh one when that happens.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

fn log_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!(
        "socketioxide-cluster-test-redis-{}-{port}.log",
        std::process::id()
    ))
}

type SpawnRequest = (Vec<String>, mpsc::Sender<std::io::Result<Child>>);

/// `redis-cli -p <port> <args>`: its standard output.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_as(port, None, args)
}

/// [`cli`], authenticated with `password` when there is one.
pub fn cli_as(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &port.to_string()]);
    if let Some(pw) = password {
        cmd.args(["-a", pw, "--no-auth-warning"]);
    }
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run redis-cli (install Debian's redis-tools): {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Spawn `redis-server ARGS` so that it can never outlive the test binary.
///
/// `PR_SET_PDEATHSIG` is delivered when the *thread* that forked the child exits,
/// not when the parent process exits. Test harnesses run each test on its own
/// short-lived thread, and `#[tokio::test]` may spawn from runtime worker threads,
/// so spawning from the calling thread would SIGKILL the server as soon as that
/// test (or worker) thread ends, e.g. while a later test is using the `shared()`
/// instance. We therefore fork every child from one dedicated spawner thread that
/// lives for the whole process (it blocks forever in `recv()`, its sender being held
/// in a static), so the signal fires exactly when the test binary dies, including
/// on panic=abort, SIGKILL of the test binary or a timed-out CI run.
fn spawn_child(args: Vec<String>) -> Result<Child, String> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("redis-spawner".into())
            .spawn(move || {
                // `recv` only fails once every sender is gone, which never happens
                // because the sender lives in a static: this thread lives forever.
                while let Ok((args, reply)) = rx.recv() {
                    reply.send(spawn_here(&args)).ok();
                }
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn redis-spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((args, reply_tx))
        .expect("redis-spawner thread is gone");
    match reply_rx.recv().expect("redis-spawner thread dropped reply") {
        Ok(child) => Ok(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("redis-server not found: install it with `apt-get install redis-server`")
        }
        Err(e) => Err(format!("failed to spawn redis-server: {e}")),
    }
}

#[allow(unsafe_code)]
fn spawn_here(args: &[String]) -> std::io::Result<Child> {
    // SAFETY: getpid is always safe.
    let parent_pid = unsafe { libc::getpid() };
    let mut cmd = Command::new("redis-server");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would
            // ever send us the death signal.
            if libc::getppid() != parent_pid {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// A connection for the tests' own Redis commands (fault injection, floods, probes),
/// with 10 s timeouts: redis' defaults (1 s to connect, 500 ms per reply) are too tight
/// for a CI machine running several test binaries on two cores.
pub async fn command_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(url)
        .expect("redis URL")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("redis command connection")
}
