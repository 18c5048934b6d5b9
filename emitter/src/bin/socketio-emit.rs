//! `socketio-emit`: publish to a socket.io cluster through Redis from scripts and shells,
//! exactly as `@socket.io/redis-emitter` does. Run with `--help`.

use socketioxide_cluster_emitter::{Args, BroadcastOperator, Emitter, EmitterOptions, Error};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
socketio-emit: publish to a socket.io cluster through Redis (the @socket.io/redis-emitter
protocol, understood by Node @socket.io/redis-adapter 8.x and socketioxide-cluster servers)

USAGE:
  socketio-emit [OPTIONS] EVENT [JSON-ARG]...              emit EVENT to clients
  socketio-emit [OPTIONS] --join ROOM [--join ROOM]...     matching sockets join ROOMs
  socketio-emit [OPTIONS] --leave ROOM [--leave ROOM]...   matching sockets leave ROOMs
  socketio-emit [OPTIONS] --disconnect [--close]           disconnect matching sockets
  socketio-emit [OPTIONS] --server-side EVENT [JSON-ARG]...  server-side event to servers

OPTIONS:
  --redis URL        Redis URL (default: $REDIS_URL, else redis://127.0.0.1:6379)
  --key KEY          channel prefix, the servers' key (default: socket.io)
  --nsp NSP          namespace (default: /; a missing leading / is added)
  --to ROOM          only sockets in ROOM (repeatable; --in is the same)
  --except ROOM      not sockets in ROOM (repeatable)
  --volatile         emit only: the event may be dropped for clients not ready for it
  --no-compress      emit only: flags.compress = false
  --close            --disconnect only: also close the underlying connections
  --timeout SECONDS  bound for connecting and for each publish (default: 5)
  -q, --quiet        print nothing on success
  -h, --help         this help
  -V, --version      the version
  --                 everything after it is positional (EVENT, JSON-ARGs)

Each JSON-ARG is one argument, written as JSON: '\"text\"', 42, 1.5, true, null,
'[1,2]', '{\"a\":1}'. Strings need their JSON quotes.

On success, prints how many Redis subscribers (servers of the namespace) received the
message; 0 is reported as a warning on stderr. Exit status: 0 success, 1 Redis
unreachable or failing, 2 bad command line or bad JSON.

EXAMPLES:
  socketio-emit --redis redis://127.0.0.1:6379 --to room1 news '\"hello\"' 42
  socketio-emit --nsp /admin --to staff --except interns alert '{\"level\":2}'
  socketio-emit --to room1 --join room2
  socketio-emit --to banned --disconnect --close
  socketio-emit --server-side job-done '\"job-7\"' '{\"ok\":true}'
";

#[derive(Debug, PartialEq)]
enum Op {
    Emit { event: String, args: Vec<String> },
    Join(Vec<String>),
    Leave(Vec<String>),
    Disconnect { close: bool },
    ServerSide { event: String, args: Vec<String> },
}

#[derive(Debug)]
struct Cli {
    redis: String,
    key: String,
    nsp: String,
    to: Vec<String>,
    except: Vec<String>,
    volatile: bool,
    no_compress: bool,
    timeout: Duration,
    quiet: bool,
    op: Op,
}

enum Parsed {
    Run(Box<Cli>),
    Help,
    Version,
}

fn parse(argv: Vec<String>, env_url: Option<String>) -> Result<Parsed, String> {
    let mut redis = env_url.unwrap_or_else(|| socketioxide_cluster_emitter::DEFAULT_URL.into());
    let mut key = socketioxide_cluster_emitter::DEFAULT_KEY.to_owned();
    let mut nsp = "/".to_owned();
    let (mut to, mut except, mut join, mut leave) = (vec![], vec![], vec![], vec![]);
    let (mut volatile, mut no_compress, mut disconnect, mut close, mut quiet) =
        (false, false, false, false, false);
    let mut server_side = false;
    let mut timeout = Duration::from_secs(5);
    let mut positional = Vec::new();

    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            positional.extend(it.by_ref());
            break;
        }
        if !arg.starts_with("--") && !matches!(arg.as_str(), "-h" | "-V" | "-q") {
            positional.push(arg);
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => Err(format!("{name} needs a value ({what})")),
            }
        };
        let flag = |set: &mut bool| -> Result<(), String> {
            if inline.is_some() {
                return Err(format!("{name} takes no value"));
            }
            *set = true;
            Ok(())
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "--redis" => redis = value("a Redis URL")?,
            "--key" => key = value("the key prefix")?,
            "--nsp" => nsp = value("a namespace")?,
            "--to" | "--in" => to.push(value("a room")?),
            "--except" => except.push(value("a room")?),
            "--join" => join.push(value("a room")?),
            "--leave" => leave.push(value("a room")?),
            "--timeout" => {
                let v = value("seconds")?;
                let secs: f64 = v
                    .parse()
                    .map_err(|_| format!("--timeout: {v:?} is not a number of seconds"))?;
                if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
                    return Err(format!("--timeout: {v} is not in (0, 3600] seconds"));
                }
                timeout = Duration::from_secs_f64(secs);
            }
            "--volatile" => flag(&mut volatile)?,
            "--no-compress" => flag(&mut no_compress)?,
            "--disconnect" => flag(&mut disconnect)?,
            "--close" => flag(&mut close)?,
            "--server-side" => flag(&mut server_side)?,
            "-q" | "--quiet" => flag(&mut quiet)?,
            _ => return Err(format!("unknown option {name}")),
        }
    }

    let modes = [!join.is_empty(), !leave.is_empty(), disconnect, server_side]
        .iter()
        .filter(|m| **m)
        .count();
    if modes > 1 {
        return Err("choose one of --join, --leave, --disconnect, --server-side".into());
    }
    let emit_like = modes == 0 || server_side;
    if close && !disconnect {
        return Err("--close only goes with --disconnect".into());
    }
    if (volatile || no_compress) && modes != 0 {
        return Err("--volatile and --no-compress only go with an emit".into());
    }
    if server_side && (!to.is_empty() || !except.is_empty()) {
        return Err("--server-side goes to every server: --to/--except do not apply".into());
    }
    if !emit_like && !positional.is_empty() {
        return Err(format!(
            "unexpected argument {:?} (EVENT and JSON-ARGs only go with an emit or --server-side)",
            positional[0]
        ));
    }
    let mut positional = positional.into_iter();
    let op = if emit_like {
        let event = positional
            .next()
            .ok_or("missing EVENT (see --help)".to_owned())?;
        if event.is_empty() {
            return Err("EVENT must not be empty".into());
        }
        let args = positional.collect();
        if server_side {
            Op::ServerSide { event, args }
        } else {
            Op::Emit { event, args }
        }
    } else if !join.is_empty() {
        Op::Join(join)
    } else if !leave.is_empty() {
        Op::Leave(leave)
    } else {
        Op::Disconnect { close }
    };
    Ok(Parsed::Run(Box::new(Cli {
        redis,
        key,
        nsp,
        to,
        except,
        volatile,
        no_compress,
        timeout,
        quiet,
        op,
    })))
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

fn describe(cli: &Cli, nsp: &str) -> String {
    let mut target = format!("namespace {nsp}");
    if !cli.to.is_empty() {
        target.push_str(&format!(", rooms {:?}", cli.to));
    }
    if !cli.except.is_empty() {
        target.push_str(&format!(", except {:?}", cli.except));
    }
    let what = match &cli.op {
        Op::Emit { event, .. } => format!("event {event:?}"),
        Op::Join(rooms) => format!("join {rooms:?}"),
        Op::Leave(rooms) => format!("leave {rooms:?}"),
        Op::Disconnect { close } => format!("disconnect (close: {close})"),
        Op::ServerSide { event, .. } => format!("server-side event {event:?}"),
    };
    format!("{what} ({target})")
}

async fn run(cli: Cli) -> ExitCode {
    // Parse the JSON first: a typo must not need a Redis to be reported.
    let args = match &cli.op {
        Op::Emit { args, .. } | Op::ServerSide { args, .. } => match json_args(args) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("socketio-emit: {e}");
                return ExitCode::from(2);
            }
        },
        _ => Args(Vec::new()),
    };
    let opts = EmitterOptions::new(cli.redis.clone())
        .key(cli.key.clone())
        .connect_timeout(cli.timeout)
        .publish_timeout(cli.timeout);
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
    let mut op: BroadcastOperator = emitter.to(cli.to.clone()).except(cli.except.clone());
    if cli.volatile {
        op = op.volatile();
    }
    if cli.no_compress {
        op = op.compress(false);
    }
    let res = match &cli.op {
        Op::Emit { event, .. } => op.emit(event, &args).await,
        Op::Join(rooms) => op.sockets_join(rooms).await,
        Op::Leave(rooms) => op.sockets_leave(rooms).await,
        Op::Disconnect { close } => op.disconnect_sockets(*close).await,
        Op::ServerSide { event, .. } => emitter.server_side_emit(event, &args).await,
    };
    let what = describe(&cli, emitter.nsp());
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
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let env_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    match parse(argv, env_url) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Parsed::Version) => {
            println!("socketio-emit {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(cli)) => run(*cli).await,
        Err(e) => {
            eprintln!("socketio-emit: {e}\nTry `socketio-emit --help`.");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, String> {
        match parse(args.iter().map(|s| s.to_string()).collect(), None)? {
            Parsed::Run(c) => Ok(*c),
            _ => Err("help/version".into()),
        }
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
            (c.to, c.except),
            (vec!["a".into(), "b".into()], vec!["c".into()])
        );
        assert!(c.volatile && c.no_compress);
        assert_eq!(
            c.op,
            Op::Emit {
                event: "ev".into(),
                args: vec!["1".into(), "-2".into(), "\"x\"".into()]
            }
        );
        assert_eq!(
            cli(&["--to", "a", "--join", "b", "--join", "c"])
                .unwrap()
                .op,
            Op::Join(vec!["b".into(), "c".into()])
        );
        assert_eq!(
            cli(&["--leave", "b"]).unwrap().op,
            Op::Leave(vec!["b".into()])
        );
        assert_eq!(
            cli(&["--disconnect", "--close"]).unwrap().op,
            Op::Disconnect { close: true }
        );
        assert_eq!(
            cli(&["--server-side", "--", "--weird", "1"]).unwrap().op,
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
    fn rejects_contradictions_with_a_reason() {
        for (args, needle) in [
            (&["--join", "a", "--leave", "b"][..], "choose one"),
            (&["--close", "e"][..], "--close only"),
            (&["--volatile", "--join", "a"][..], "only go with an emit"),
            (&["--server-side", "--to", "a", "e"][..], "do not apply"),
            (&["--join", "a", "extra"][..], "unexpected argument"),
            (&[][..], "missing EVENT"),
            (&["--bogus"][..], "unknown option"),
            (&["--to"][..], "needs a value"),
            (&["--volatile=yes", "e"][..], "takes no value"),
            (&["--timeout", "abc", "e"][..], "not a number"),
            (&["--timeout", "0", "e"][..], "not in"),
        ] {
            let err = cli(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        assert!(matches!(
            parse(vec!["--help".into()], None),
            Ok(Parsed::Help)
        ));
    }

    #[test]
    fn redis_url_from_env_then_flag() {
        assert_eq!(
            cli(&["e"]).unwrap().redis,
            socketioxide_cluster_emitter::DEFAULT_URL
        );
        let c = match parse(vec!["e".into()], Some("redis://env:2".into())).unwrap() {
            Parsed::Run(c) => c,
            _ => unreachable!(),
        };
        assert_eq!(c.redis, "redis://env:2");
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
