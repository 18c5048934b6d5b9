//! `socketio-emit`: publish to a socket.io cluster through Redis from scripts and shells,
//! exactly as `@socket.io/redis-emitter` does. Run with `--help`.

use clap::builder::NonEmptyStringValueParser;
use clap::parser::ValueSource;
use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser};
use socketioxide_cluster_emitter::{Args, BroadcastOperator, Emitter, EmitterOptions, Error};
use std::ffi::OsString;
use std::io::IsTerminal;

mod query;
use query::{Format, Output, Query};
use std::process::ExitCode;
use std::time::Duration;

const ABOUT: &str = "\
socketio-emit: publish to a socket.io cluster through Redis (the @socket.io/redis-emitter
protocol, understood by Node @socket.io/redis-adapter 8.x and socketioxide-cluster servers)";

/// The forms of the command line; clap prints it after "Usage: ".
const USAGE: &str = "\
socketio-emit [OPTIONS] EVENT [JSON-ARG]...                emit EVENT to clients
       socketio-emit [OPTIONS] --join ROOM [--join ROOM]...       matching sockets join ROOMs
       socketio-emit [OPTIONS] --leave ROOM [--leave ROOM]...     matching sockets leave ROOMs
       socketio-emit [OPTIONS] --disconnect [--close]             disconnect matching sockets
       socketio-emit [OPTIONS] --server-side EVENT [JSON-ARG]...  server-side event to servers
       socketio-emit [OPTIONS] --ack EVENT [JSON-ARG]...          emit, print the clients' acks
       socketio-emit [OPTIONS] --server-side --ack EVENT [..]     print each server's ack
       socketio-emit [OPTIONS] count                              how many servers
       socketio-emit [OPTIONS] rooms                              every room, on every server
       socketio-emit [OPTIONS] fetch-sockets                      every (matching) socket";

const AFTER_HELP: &str = "\
Each JSON-ARG is one argument, written as JSON: '\"text\"', 42, -1.5, true, null,
'[1,2]', '{\"a\":1}'. Strings need their JSON quotes. After `--` everything is
positional (an EVENT or JSON-ARG that starts with `-`).

On success, prints how many Redis subscribers (servers of the namespace) received the
message; 0 is reported as a warning on stderr. `count`, `rooms`, `fetch-sockets` and
`--ack` ask every server (Node and Rust alike) and print what they answer: one JSON
value per line when stdout is a pipe or with --json, a table on a terminal or with
--table; they wait at most --timeout for the answers. (An event named count, rooms or
fetch-sockets cannot be emitted from here.)

Exit status: 0 success, 1 Redis unreachable or failing, 2 bad command line or bad JSON,
3 a request timed out (what did arrive is printed; stderr says how many servers
answered and which of ours went silent).

EXAMPLES:
  socketio-emit --redis redis://127.0.0.1:6379 --to room1 news '\"hello\"' 42
  socketio-emit --sentinel redis://10.0.0.1:26379 --sentinel redis://10.0.0.2:26379 news 1
  socketio-emit --nsp /admin --to staff --except interns alert '{\"level\":2}'
  socketio-emit --to room1 --join room2
  socketio-emit --to banned --disconnect --close
  socketio-emit --server-side job-done '\"job-7\"' '{\"ok\":true}'
  socketio-emit count
  socketio-emit --to room1 fetch-sockets | jq -r .id
  socketio-emit --ack --timeout 2 question '\"ready?\"'";

// The command line as clap checks it. Operations exclude each other through the group
// "op" (emit is the absence of all of them); the emit-only and --disconnect-only flags
// say so with `conflicts_with`/`requires`, so every contradiction is a usage error
// (exit 2) before anything connects.
//
// Value-taking options accept values that start with `-` (a room named "-x"), as the
// next argument is always their value.
#[derive(Debug, Parser)]
#[command(
    name = "socketio-emit",
    version,
    about = ABOUT,
    override_usage = USAGE,
    after_help = AFTER_HELP,
    group(ArgGroup::new("op").args(["join", "leave", "disconnect", "server_side"]).multiple(false)),
)]
struct Cli {
    /// Redis URL (from $REDIS_URL when given and not empty)
    // The environment's value is hidden from --help: it may hold a password.
    #[arg(
        long,
        value_name = "URL",
        env = "REDIS_URL",
        hide_env_values = true,
        default_value = socketioxide_cluster_emitter::DEFAULT_URL,
        allow_hyphen_values = true
    )]
    redis: String,

    /// Redis Sentinel URL (repeatable): publish to the master the sentinels name
    /// instead of --redis
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    sentinel: Vec<String>,

    /// --sentinel only: the master's name in the sentinels' configuration
    #[arg(
        long,
        value_name = "NAME",
        default_value = "mymaster",
        requires = "sentinel",
        allow_hyphen_values = true
    )]
    master_name: String,

    /// --sentinel only: the master's password (from $REDIS_MASTER_PASSWORD)
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "REDIS_MASTER_PASSWORD",
        hide_env_values = true,
        requires = "sentinel",
        allow_hyphen_values = true
    )]
    master_password: Option<String>,

    /// Channel prefix, the servers' key
    #[arg(
        long,
        value_name = "KEY",
        default_value = socketioxide_cluster_emitter::DEFAULT_KEY,
        allow_hyphen_values = true
    )]
    key: String,

    /// Namespace (a missing leading / is added)
    #[arg(
        long,
        value_name = "NSP",
        default_value = "/",
        allow_hyphen_values = true
    )]
    nsp: String,

    /// Only sockets in ROOM (repeatable)
    #[arg(
        long,
        visible_alias = "in",
        value_name = "ROOM",
        allow_hyphen_values = true
    )]
    to: Vec<String>,

    /// Not sockets in ROOM (repeatable)
    #[arg(long, value_name = "ROOM", allow_hyphen_values = true)]
    except: Vec<String>,

    /// Matching sockets join ROOM (repeatable)
    #[arg(long, value_name = "ROOM", allow_hyphen_values = true)]
    join: Vec<String>,

    /// Matching sockets leave ROOM (repeatable)
    #[arg(long, value_name = "ROOM", allow_hyphen_values = true)]
    leave: Vec<String>,

    /// Disconnect matching sockets
    #[arg(long)]
    disconnect: bool,

    /// --disconnect only: also close the underlying connections
    // `requires` alone would let `--close EVENT` through: clap waives a requirement that
    // conflicts with a present argument (here EVENT with --disconnect).
    #[arg(
        long,
        requires = "disconnect",
        conflicts_with_all = ["event", "join", "leave", "server_side"]
    )]
    close: bool,

    /// Send EVENT to every server (not to clients); --to/--except do not apply
    #[arg(long, conflicts_with_all = ["to", "except"])]
    server_side: bool,

    /// Emit only: the event may be dropped for clients not ready for it
    #[arg(long, conflicts_with = "op")]
    volatile: bool,

    /// Emit or --server-side: wait for acknowledgements (each client's, or each
    /// server's) and print them
    #[arg(long, conflicts_with_all = ["join", "leave", "disconnect", "volatile"])]
    ack: bool,

    /// Print one JSON value per line (the default when stdout is not a terminal)
    #[arg(long, conflicts_with = "table")]
    json: bool,

    /// Print a table (the default on a terminal)
    #[arg(long)]
    table: bool,

    /// Emit only: flags.compress = false
    #[arg(long, conflicts_with = "op")]
    no_compress: bool,

    /// Bound for connecting, for each publish, and for the servers' answers
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "5",
        value_parser = parse_timeout,
        allow_hyphen_values = true
    )]
    timeout: Duration,

    /// Print nothing on success
    #[arg(short, long)]
    quiet: bool,

    /// The event to emit (emit and --server-side)
    // Needed unless an operation that takes none is chosen; a negative number is a value.
    #[arg(
        value_name = "EVENT",
        value_parser = NonEmptyStringValueParser::new(),
        required_unless_present_any = ["join", "leave", "disconnect"],
        conflicts_with_all = ["join", "leave", "disconnect"],
        allow_negative_numbers = true
    )]
    event: Option<String>,

    /// The event's arguments, each one JSON value
    // `-2` is a JSON number, not an option.
    #[arg(value_name = "JSON-ARG", allow_negative_numbers = true)]
    args: Vec<String>,
}

fn parse_timeout(v: &str) -> Result<Duration, String> {
    let secs: f64 = v
        .parse()
        .map_err(|_| format!("{v:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err(format!("{v} is not in (0, 3600] seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Debug, PartialEq)]
enum Op {
    Ask(Query),
    Emit { event: String, args: Vec<String> },
    Join(Vec<String>),
    Leave(Vec<String>),
    Disconnect { close: bool },
    ServerSide { event: String, args: Vec<String> },
}

impl Cli {
    /// Parses `argv` (without the program name) with `cmd`, `Cli::command()` but for
    /// tests. `Err` is clap's usage error, or the --help/--version text to print (its
    /// `exit_code` tells which: 2 or 0).
    fn from_argv(
        cmd: clap::Command,
        argv: impl IntoIterator<Item = OsString>,
    ) -> Result<Cli, clap::Error> {
        let matches =
            cmd.try_get_matches_from(std::iter::once(OsString::from("socketio-emit")).chain(argv))?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        // An empty $REDIS_URL counts as unset (`REDIS_URL= socketio-emit ..` uses the
        // default, as the hand-written parser did); an empty --redis stays, and is
        // reported as an invalid URL.
        if cli.redis.is_empty() && matches.value_source("redis") == Some(ValueSource::EnvVariable) {
            cli.redis = socketioxide_cluster_emitter::DEFAULT_URL.to_owned();
        }
        Ok(cli)
    }

    /// The operation; clap's rules leave exactly one possible.
    fn op(&self) -> Op {
        if !self.join.is_empty() {
            Op::Join(self.join.clone())
        } else if !self.leave.is_empty() {
            Op::Leave(self.leave.clone())
        } else if self.disconnect {
            Op::Disconnect { close: self.close }
        } else {
            // `event` is required when none of the above is given.
            let event = self.event.clone().unwrap_or_default();
            let args = self.args.clone();
            if !self.server_side
                && let Some(q) = Query::from_word(&event)
            {
                return Op::Ask(q);
            }
            if self.server_side {
                Op::ServerSide { event, args }
            } else {
                Op::Emit { event, args }
            }
        }
    }
}

/// Each JSON-ARG parsed, or a message naming the bad one.
fn json_args(args: &[String]) -> Result<Args<serde_json::Value>, String> {
    let mut out = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        match serde_json::from_str(a) {
            Ok(v) => out.push(v),
            Err(e) => {
                let hint = if !a.trim_start().starts_with(['"', '{', '[']) {
                    format!(
                        " (to send the text, quote it: '{}')",
                        serde_json::Value::from(a.as_str())
                    )
                } else {
                    String::new()
                };
                return Err(format!(
                    "JSON-ARG {} is not valid JSON: {e}: {a}{hint}",
                    i + 1
                ));
            }
        }
    }
    Ok(Args(out))
}

fn describe(cli: &Cli, op: &Op, nsp: &str) -> String {
    let mut target = format!("namespace {nsp}");
    if !cli.to.is_empty() {
        target.push_str(&format!(", rooms {:?}", cli.to));
    }
    if !cli.except.is_empty() {
        target.push_str(&format!(", except {:?}", cli.except));
    }
    let what = match op {
        Op::Emit { event, .. } => format!("event {event:?}"),
        Op::Join(rooms) => format!("join {rooms:?}"),
        Op::Leave(rooms) => format!("leave {rooms:?}"),
        Op::Disconnect { close } => format!("disconnect (close: {close})"),
        Op::ServerSide { event, .. } => format!("server-side event {event:?}"),
        Op::Ask(q) => format!("{q:?}").to_lowercase(),
    };
    format!("{what} ({target})")
}

async fn run(cli: Cli) -> ExitCode {
    let op = cli.op();
    if let Op::Ask(q) = op
        && (!cli.args.is_empty() || cli.ack || cli.volatile || cli.no_compress)
    {
        eprintln!("socketio-emit: {q:?} takes no JSON-ARG, --ack, --volatile or --no-compress");
        return ExitCode::from(2);
    }
    if let Op::Ask(Query::Count | Query::Rooms) = op
        && (!cli.to.is_empty() || !cli.except.is_empty())
    {
        eprintln!("socketio-emit: count and rooms are for the whole namespace (no --to/--except)");
        return ExitCode::from(2);
    }
    let format = if cli.json {
        Format::Lines
    } else if cli.table || std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Lines
    };
    // Parse the JSON first: a typo must not need a Redis to be reported.
    let args = match &op {
        Op::Emit { args, .. } | Op::ServerSide { args, .. } => match json_args(args) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("socketio-emit: {e}");
                return ExitCode::from(2);
            }
        },
        _ => Args(Vec::new()),
    };
    let opts = if cli.sentinel.is_empty() {
        EmitterOptions::new(cli.redis.clone())
    } else {
        let o = EmitterOptions::sentinel(cli.sentinel.clone(), cli.master_name.clone());
        match &cli.master_password {
            Some(pw) => o.master_auth(None, pw.clone()),
            None => o,
        }
    };
    let opts = opts
        .key(cli.key.clone())
        .connect_timeout(cli.timeout)
        .publish_timeout(cli.timeout)
        .requests_timeout(cli.timeout);
    let emitter = match Emitter::connect(opts).await {
        Ok(e) => e.of(&cli.nsp),
        Err(e @ Error::Config(_)) => {
            eprintln!("socketio-emit: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("socketio-emit: {e}");
            return ExitCode::from(1);
        }
    };
    let mut target: BroadcastOperator = emitter.to(cli.to.clone()).except(cli.except.clone());
    if cli.volatile {
        target = target.volatile();
    }
    if cli.no_compress {
        target = target.compress(false);
    }
    let what = describe(&cli, &op, emitter.nsp());
    let asked = match &op {
        Op::Ask(Query::Count) => Some(emitter.server_count().await.map(Output::Count)),
        Op::Ask(Query::Rooms) => Some(emitter.all_rooms().await.map(Output::Rooms)),
        Op::Ask(Query::FetchSockets) => Some(target.fetch_sockets().await.map(Output::Sockets)),
        Op::Emit { event, .. } if cli.ack => Some(
            target
                .emit_with_ack(event, &args, cli.timeout)
                .await
                .map(Output::Acks),
        ),
        Op::ServerSide { event, .. } if cli.ack => Some(
            emitter
                .server_side_emit_with_ack(event, &args)
                .await
                .map(Output::Acks),
        ),
        _ => None,
    };
    if let Some(res) = asked {
        return query::report(res, format, &what);
    }
    let res = match &op {
        Op::Ask(_) => return ExitCode::from(2), // answered above
        Op::Emit { event, .. } => target.emit(event, &args).confirmed().await,
        Op::Join(rooms) => target.sockets_join(rooms).await,
        Op::Leave(rooms) => target.sockets_leave(rooms).await,
        Op::Disconnect { close } => target.disconnect_sockets(*close).await,
        Op::ServerSide { event, .. } => emitter.server_side_emit(event, &args).await,
    };
    match res {
        Ok(n) => {
            if n == 0 {
                eprintln!(
                    "socketio-emit: warning: {what}: published, but no server listens on \
                     namespace {} with key {:?} (0 subscribers)",
                    emitter.nsp(),
                    emitter.key()
                );
            } else if !cli.quiet {
                println!("{what}: received by {n} subscriber(s)");
            }
            ExitCode::SUCCESS
        }
        Err(e @ Error::ReservedEvent(_)) => {
            eprintln!("socketio-emit: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("socketio-emit: {what}: {e}");
            ExitCode::from(1)
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // args_os: a non-UTF-8 argument is clap's usage error, where env::args would panic.
    match Cli::from_argv(Cli::command(), std::env::args_os().skip(1)) {
        Ok(cli) => run(cli).await,
        // Usage errors go to stderr with status 2; --help and --version to stdout with 0.
        Err(e) => {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses as the binary does, but ignoring this process' $REDIS_URL.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let cmd = Cli::command().mut_arg("redis", |a| a.env(None));
        Cli::from_argv(cmd, args.iter().map(OsString::from))
    }

    fn cli(args: &[&str]) -> Result<Cli, String> {
        parse(args).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_form() {
        let c = cli(&[
            "--redis",
            "redis://h:1",
            "--key=k",
            "--nsp",
            "admin",
            "--to",
            "a",
            "--in=b",
            "--except",
            "c",
            "--volatile",
            "--no-compress",
            "ev",
            "1",
            "-2",
            "\"x\"",
        ])
        .unwrap();
        assert_eq!(c.redis, "redis://h:1");
        assert_eq!((c.key.as_str(), c.nsp.as_str()), ("k", "admin"));
        assert_eq!(
            (&c.to[..], &c.except[..]),
            (&["a".to_owned(), "b".into()][..], &["c".to_owned()][..])
        );
        assert!(c.volatile && c.no_compress);
        assert_eq!(
            c.op(),
            Op::Emit {
                event: "ev".into(),
                args: vec!["1".into(), "-2".into(), "\"x\"".into()]
            }
        );
        assert_eq!(
            cli(&["--to", "a", "--join", "b", "--join", "c"])
                .unwrap()
                .op(),
            Op::Join(vec!["b".into(), "c".into()])
        );
        assert_eq!(
            cli(&["--leave", "b"]).unwrap().op(),
            Op::Leave(vec!["b".into()])
        );
        assert_eq!(
            cli(&["--disconnect", "--close"]).unwrap().op(),
            Op::Disconnect { close: true }
        );
        assert_eq!(
            cli(&["--server-side", "--", "--weird", "1"]).unwrap().op(),
            Op::ServerSide {
                event: "--weird".into(),
                args: vec!["1".into()]
            }
        );
        assert_eq!(
            cli(&["--timeout", "0.5", "e"]).unwrap().timeout,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn options_take_hyphen_values_and_json_args_negative_numbers() {
        let c = cli(&["--to", "-r", "--join=-j", "--key", "-k"]).unwrap();
        assert_eq!((c.to, c.key.as_str()), (vec!["-r".into()], "-k"));
        assert_eq!(
            cli(&["--join=-j"]).unwrap().op(),
            Op::Join(vec!["-j".into()])
        );
        assert_eq!(
            cli(&["ev", "-1.5e3", "-q"]).unwrap().op(),
            Op::Emit {
                event: "ev".into(),
                args: vec!["-1.5e3".into()]
            }
        );
        // Options may follow the positionals.
        let c = cli(&["ev", "1", "--to", "a", "2", "-q"]).unwrap();
        assert!(c.quiet);
        assert_eq!(c.to, ["a"]);
        assert_eq!(c.args, ["1", "2"]);
    }

    #[test]
    fn rejects_contradictions_with_a_reason() {
        use clap::error::ErrorKind::*;
        // One line per case reads better than rustfmt's five.
        #[rustfmt::skip]
        let cases = [
            (&["--join", "a", "--leave", "b"][..], ArgumentConflict, "--leave"),
            (&["--join", "a", "--disconnect"][..], ArgumentConflict, "--disconnect"),
            (&["--disconnect", "--server-side", "e"][..], ArgumentConflict, "--server-side"),
            (&["--leave", "a", "--server-side", "e"][..], ArgumentConflict, "--server-side"),
            (&["--close", "e"][..], ArgumentConflict, "--close"),
            (&["--close"][..], MissingRequiredArgument, "--disconnect"),
            (&["--close", "--join", "a"][..], ArgumentConflict, "--close"),
            (&["--volatile", "--join", "a"][..], ArgumentConflict, "--volatile"),
            (&["--no-compress", "--disconnect"][..], ArgumentConflict, "--no-compress"),
            (&["--volatile", "--server-side", "e"][..], ArgumentConflict, "--volatile"),
            (&["--server-side", "--to", "a", "e"][..], ArgumentConflict, "--to"),
            (&["--server-side", "--except", "a", "e"][..], ArgumentConflict, "--except"),
            (&["--join", "a", "extra"][..], ArgumentConflict, "EVENT"),
            (&["--disconnect", "extra", "1"][..], ArgumentConflict, "EVENT"),
            (&[][..], MissingRequiredArgument, "EVENT"),
            (&["--server-side"][..], MissingRequiredArgument, "EVENT"),
            (&[""][..], InvalidValue, "EVENT"),
            (&["--bogus"][..], UnknownArgument, "--bogus"),
            (&["--to"][..], InvalidValue, "--to"),
            (&["--volatile=yes", "e"][..], TooManyValues, "--volatile"),
            (&["--timeout", "abc", "e"][..], ValueValidation, "not a number"),
            (&["--timeout", "0", "e"][..], ValueValidation, "not in"),
            (&["--timeout", "-1", "e"][..], ValueValidation, "not in"),
        ];
        for (args, kind, needle) in cases {
            let err = parse(args).unwrap_err();
            assert_eq!(err.kind(), kind, "{args:?}: {err}");
            assert_eq!(err.exit_code(), 2, "{args:?}");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{args:?}: {msg}");
        }
        for flag in ["--help", "-h", "--version", "-V"] {
            let err = parse(&[flag]).unwrap_err();
            assert_eq!(err.exit_code(), 0, "{flag}");
        }
    }

    #[test]
    fn redis_url_default_then_env_then_flag() {
        assert_eq!(
            cli(&["e"]).unwrap().redis,
            socketioxide_cluster_emitter::DEFAULT_URL
        );
        // Any variable set in this process stands for $REDIS_URL (cargo sets this one).
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        let with_env = || Cli::command().mut_arg("redis", |a| a.env("CARGO_MANIFEST_DIR"));
        let c = Cli::from_argv(with_env(), ["e".into()]).unwrap();
        assert_eq!(c.redis, dir);
        let c = Cli::from_argv(
            with_env(),
            ["--redis=redis://flag:3", "e"].map(OsString::from),
        )
        .unwrap();
        assert_eq!(c.redis, "redis://flag:3");
        // An empty --redis is kept (and later refused as an invalid URL).
        assert_eq!(cli(&["--redis=", "e"]).unwrap().redis, "");
    }

    #[test]
    fn help_keeps_the_forms_json_explanation_exit_statuses_and_examples() {
        let help = Cli::command().render_help().to_string();
        for needle in [
            "--join ROOM [--join ROOM]...",
            "--server-side EVENT [JSON-ARG]...",
            "Each JSON-ARG is one argument",
            "Exit status: 0 success, 1 Redis",
            "EXAMPLES:",
            "socketio-emit --to banned --disconnect --close",
            "--in",
            "[env: REDIS_URL]",
        ] {
            assert!(help.contains(needle), "{needle:?} not in:\n{help}");
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn json_errors_name_the_argument_and_suggest_quotes() {
        let err = json_args(&["1".into(), "hello".into()]).unwrap_err();
        assert!(err.contains("JSON-ARG 2"), "{err}");
        assert!(err.contains(r#"'"hello"'"#), "{err}");
        let err = json_args(&["{\"a\":".into()]).unwrap_err();
        assert!(
            err.contains("JSON-ARG 1") && !err.contains("quote it"),
            "{err}"
        );
        assert_eq!(
            json_args(&["1".into(), "[true]".into()]).unwrap(),
            Args(vec![serde_json::json!(1), serde_json::json!([true])])
        );
    }
}
