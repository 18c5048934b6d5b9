//! The asking forms of `socketio-emit`: `count`, `rooms`, `fetch-sockets`, and `--ack`
//! on an emit or a server-side event; their output (JSON lines for pipes, a table on a
//! terminal) and exit statuses.

use socketioxide_cluster_emitter::{Error, Partial, RemoteSocket, rmpv::Value};
use std::io::Write;
use std::process::ExitCode;

/// Exit status of a request that timed out: the part that arrived was printed.
pub(crate) const INCOMPLETE: u8 = 3;

/// A request's words (the first positional argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Query {
    Count,
    Rooms,
    FetchSockets,
}

impl Query {
    pub(crate) fn from_word(w: &str) -> Option<Query> {
        match w {
            "count" => Some(Query::Count),
            "rooms" => Some(Query::Rooms),
            "fetch-sockets" => Some(Query::FetchSockets),
            _ => None,
        }
    }
}

/// How results are printed: one JSON value per line, or a table for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Lines,
    Table,
}

/// What one request returned, ready to print.
pub(crate) enum Output {
    Count(usize),
    Rooms(Vec<String>),
    Sockets(Vec<RemoteSocket>),
    Acks(Vec<Value>),
}

fn socket_json(s: &RemoteSocket) -> serde_json::Value {
    serde_json::json!({"id": s.id, "rooms": s.rooms, "data": s.data, "handshake": s.handshake})
}

fn ack_json(v: &Value) -> serde_json::Value {
    socketioxide_cluster_wire::request::value_to_json(v)
}

impl Output {
    pub(crate) fn print(&self, format: Format, out: &mut impl Write) -> std::io::Result<()> {
        match (self, format) {
            (Output::Count(n), Format::Lines) => {
                writeln!(out, "{}", serde_json::json!({"servers": n}))
            }
            (Output::Count(n), Format::Table) => writeln!(out, "{n} server(s)"),
            (Output::Rooms(r), Format::Lines) => {
                for room in r {
                    writeln!(out, "{}", serde_json::json!({"room": room}))?;
                }
                Ok(())
            }
            (Output::Rooms(r), Format::Table) => {
                writeln!(out, "{} room(s)", r.len())?;
                for room in r {
                    writeln!(out, "  {room}")?;
                }
                Ok(())
            }
            (Output::Sockets(s), Format::Lines) => {
                for sock in s {
                    writeln!(out, "{}", socket_json(sock))?;
                }
                Ok(())
            }
            (Output::Sockets(s), Format::Table) => {
                let w = s.iter().map(|x| x.id.len()).max().unwrap_or(2).max(2);
                writeln!(out, "{:<w$}  {:<22}  ROOMS", "ID", "ADDRESS")?;
                for sock in s {
                    let addr = sock.handshake["address"].as_str().unwrap_or("-");
                    let rooms: Vec<&str> = sock
                        .rooms
                        .iter()
                        .map(String::as_str)
                        .filter(|r| *r != sock.id)
                        .collect();
                    writeln!(out, "{:<w$}  {addr:<22}  {}", sock.id, rooms.join(","))?;
                }
                writeln!(out, "{} socket(s)", s.len())
            }
            (Output::Acks(a), Format::Lines) => {
                for v in a {
                    writeln!(out, "{}", ack_json(v))?;
                }
                Ok(())
            }
            (Output::Acks(a), Format::Table) => {
                writeln!(out, "{} acknowledgement(s)", a.len())?;
                for v in a {
                    writeln!(out, "  {}", ack_json(v))?;
                }
                Ok(())
            }
        }
    }
}

/// Prints a request's outcome; its exit status: 0, 3 when it timed out (the part that
/// arrived is printed, the error on stderr), 1 for Redis errors, 2 for a bad request.
pub(crate) fn report(res: Result<Output, Error>, format: Format, what: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match res {
        Ok(o) => {
            let _ = o.print(format, &mut stdout);
            ExitCode::SUCCESS
        }
        Err(Error::Incomplete(inc)) => {
            let part = match &inc.partial {
                Partial::Sockets(s) => Output::Sockets(s.clone()),
                Partial::Rooms(r) => Output::Rooms(r.clone()),
                Partial::Replies(r) => Output::Acks(r.clone()),
                _ => Output::Acks(Vec::new()),
            };
            let _ = part.print(format, &mut stdout);
            eprintln!("socketio-emit: {what}: timeout: {inc}");
            ExitCode::from(INCOMPLETE)
        }
        Err(e @ (Error::ReservedEvent(_) | Error::Config(_))) => {
            eprintln!("socketio-emit: {what}: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("socketio-emit: {what}: {e}");
            ExitCode::from(1)
        }
    }
}
