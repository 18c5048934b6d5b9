//! The subscriber connection's screen: skips messages that cannot be of any use as their
//! bytes arrive, before the redis crate buffers, parses and queues them.
//!
//! [`ScreenedStream`] sits between the socket (TCP, TLS or unix) and the
//! [`GatedStream`](super::gate::GatedStream) the redis crate reads. It follows the RESP
//! framing of what Redis sends (RESP2 and RESP3): at the start of every `message` or
//! `pmessage` push it waits for the channel, the pattern, the payload's declared length
//! and its first [`HEAD`] bytes, and asks the [`MessageSink`] (the router, which checks
//! them with `wire::screen` and `max_message_size`, and counts what it refuses as
//! malformed). A refused message's bytes are read from the socket and dropped as they
//! come, never held whole; everything else (passed messages, subscription confirmations,
//! replies) goes through unchanged. So garbage costs no parsing, no allocation and no
//! room in the read-ahead bound: a flood of it is read as fast as the socket delivers and
//! cannot make the subscriber fall behind until Redis cuts it off.
//!
//! Memory: one buffer of [`CHUNK`] bytes per connection. A frame whose head does not fit
//! in it (a channel name longer than about 64 KiB), or bytes that are not RESP as this
//! reader knows it, switch the screen off for the rest of that connection (logged once):
//! everything then passes unscreened, as before, and the router still refuses it on
//! delivery.

use super::MessageSink;
use crate::wire::screen::HEAD;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The screen's buffer: bytes read from the socket at a time, and the most bytes of one
/// frame's head it holds while waiting for a verdict.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Deepest RESP nesting followed (Redis sends 2 levels at most on this connection).
const RESP_DEPTH: usize = 8;

/// Where the screen is in the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a frame.
    Frame,
    /// The next `n` bytes belong to a frame that passed.
    Pass(usize),
    /// The next `n` bytes belong to a refused message: dropped.
    Skip(usize),
    /// Screening stopped on this connection: everything passes.
    Off,
}

/// What [`scan`] found at the start of the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// Not enough bytes yet.
    More,
    /// A frame of this many bytes to pass.
    Pass(usize),
    /// A refused message of this many bytes.
    Skip(usize),
    /// Not RESP as this reader knows it.
    Unknown,
}

/// A stream that drops the bytes of refused messages (see the module docs).
pub(crate) struct ScreenedStream<S> {
    inner: S,
    sink: Arc<dyn MessageSink>,
    /// `buf[start..end]`: read from the socket, not yet handed out or dropped.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    state: State,
}

impl<S> ScreenedStream<S> {
    pub(super) fn new(inner: S, sink: Arc<dyn MessageSink>) -> Self {
        Self {
            inner,
            sink,
            buf: vec![0u8; CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            state: State::Frame,
        }
    }

    fn buffered(&self) -> usize {
        self.end - self.start
    }

    fn off(&mut self, why: &str) {
        tracing::warn!(
            why,
            "cluster adapter: subscriber screen off for this connection (messages are still checked on delivery)"
        );
        self.state = State::Off;
    }

    /// Hands out or drops buffered bytes, and decides frames, as far as the buffer goes.
    /// Returns whether anything was written to `out`.
    fn drain(&mut self, out: &mut ReadBuf<'_>) -> bool {
        let mut wrote = false;
        while self.buffered() > 0 {
            match self.state {
                State::Off | State::Pass(_) => {
                    let want = match self.state {
                        State::Pass(n) => n,
                        _ => usize::MAX,
                    };
                    let k = want.min(self.buffered()).min(out.remaining());
                    if k == 0 {
                        break; // `out` is full
                    }
                    out.put_slice(&self.buf[self.start..self.start + k]);
                    self.start += k;
                    wrote = true;
                    if let State::Pass(n) = self.state {
                        self.state = if n == k {
                            State::Frame
                        } else {
                            State::Pass(n - k)
                        };
                    }
                }
                State::Skip(n) => {
                    let k = n.min(self.buffered());
                    self.start += k;
                    self.state = if n == k {
                        State::Frame
                    } else {
                        State::Skip(n - k)
                    };
                }
                State::Frame => match scan(&self.buf[self.start..self.end], &*self.sink) {
                    Scan::Pass(n) => self.state = State::Pass(n),
                    Scan::Skip(n) => self.state = State::Skip(n),
                    Scan::Unknown => self.off("unknown RESP"),
                    Scan::More if self.buffered() >= CHUNK => self.off("frame head over 64 KiB"),
                    Scan::More => break,
                },
            }
        }
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        wrote
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ScreenedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.drain(out) || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let direct = match this.state {
                State::Off => true,
                // Only when the read cannot go past the passed frame.
                State::Pass(n) => n >= out.remaining(),
                _ => false,
            };
            if this.buffered() == 0 && direct {
                // Straight into the caller's buffer (a passed payload is not copied twice).
                let before = out.filled().len();
                std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
                let got = out.filled().len() - before;
                if let State::Pass(n) = this.state {
                    this.state = if got == n {
                        State::Frame
                    } else {
                        State::Pass(n - got)
                    };
                }
                return Poll::Ready(Ok(()));
            }
            // Read into the screen's buffer (a frame head, or bytes to drop).
            if this.start > 0 {
                this.buf.copy_within(this.start..this.end, 0);
                (this.start, this.end) = (0, this.end - this.start);
            }
            let mut rb = ReadBuf::new(&mut this.buf[this.end..]);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let got = rb.filled().len();
            if got == 0 {
                // End of stream; a partial frame held here dies with the connection.
                return Poll::Ready(Ok(()));
            }
            this.end += got;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ScreenedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A RESP line at `pos` (type byte, text, CRLF): the text and the position after it.
fn line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos + 1..)?;
    let cr = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..cr], pos + 1 + cr + 2))
}

fn number(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Result of reading one element: its end, `None` for "more bytes needed".
type Element = Result<Option<usize>, ()>;

/// The end of the RESP element at `pos`.
fn element(buf: &[u8], pos: usize, depth: usize) -> Element {
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((text, after)) = line(buf, pos) else {
        return Ok(None);
    };
    match t {
        b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => Ok(Some(after)),
        b'$' | b'=' | b'!' => {
            let n = number(text).ok_or(())?;
            if n < 0 {
                return Ok(Some(after)); // null bulk string
            }
            let end = after + n as usize + 2;
            if end > buf.len() {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(());
            }
            Ok(Some(end))
        }
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            if depth >= RESP_DEPTH {
                return Err(());
            }
            let n = number(text).ok_or(())?;
            if n < 0 {
                return Ok(Some(after)); // null array
            }
            let items = match t {
                b'%' => 2 * n as usize,
                // An attribute map, then the value it annotates.
                b'|' => 2 * n as usize + 1,
                _ => n as usize,
            };
            let mut p = after;
            for _ in 0..items {
                match element(buf, p, depth + 1)? {
                    Some(end) => p = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(p))
        }
        _ => Err(()),
    }
}

/// A complete (non-null) bulk string at `pos`: its bytes and the position after it.
fn bulk(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, ()> {
    if buf.get(pos).is_some_and(|&t| t != b'$') {
        return Err(());
    }
    let Some((text, after)) = line(buf, pos) else {
        return Ok(None);
    };
    let n = number(text)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(())?;
    let end = after + n + 2;
    if end > buf.len() {
        return Ok(None);
    }
    if &buf[end - 2..end] != b"\r\n" {
        return Err(());
    }
    Ok(Some((&buf[after..end - 2], end)))
}

/// Decides the frame at the start of `buf`.
fn scan(buf: &[u8], sink: &dyn MessageSink) -> Scan {
    match message(buf, sink) {
        Ok(Some(scan)) => scan,
        // Not a message: any other frame passes whole.
        Ok(None) => match element(buf, 0, 0) {
            Ok(Some(end)) => Scan::Pass(end),
            Ok(None) => Scan::More,
            Err(()) => Scan::Unknown,
        },
        Err(()) => Scan::Unknown,
    }
}

/// A `message` / `pmessage` push at the start of `buf`: `Ok(None)` when the frame is
/// something else.
fn message(buf: &[u8], sink: &dyn MessageSink) -> Result<Option<Scan>, ()> {
    let more = Ok(Some(Scan::More));
    if !matches!(buf.first(), Some(b'*' | b'>')) {
        return Ok(None);
    }
    let Some((count, mut p)) = line(buf, 0) else {
        return more;
    };
    let with_pattern = match count {
        b"3" => false,
        b"4" => true,
        _ => return Ok(None),
    };
    if !matches!(buf.get(p), Some(b'$') | None) {
        return Ok(None);
    }
    let Some((kind, next)) = bulk(buf, p)? else {
        return more;
    };
    match (kind, with_pattern) {
        (b"message", false) | (b"pmessage", true) => {}
        _ => return Ok(None),
    }
    p = next;
    let pattern = if with_pattern {
        let Some((pattern, next)) = bulk(buf, p)? else {
            return more;
        };
        p = next;
        Some(pattern)
    } else {
        None
    };
    let Some((channel, next)) = bulk(buf, p)? else {
        return more;
    };
    p = next;
    // The payload: its length line, then its first bytes.
    if buf.get(p).is_some_and(|&t| t != b'$') {
        return Ok(None);
    }
    let Some((len, payload)) = line(buf, p) else {
        return more;
    };
    let Some(len) = number(len).and_then(|n| usize::try_from(n).ok()) else {
        return Ok(None); // a null payload: not ours to judge
    };
    let frame = payload + len + 2;
    let head = HEAD.min(len);
    if buf.len() < payload + head {
        return more;
    }
    Ok(Some(
        if sink.screen(channel, pattern, &buf[payload..payload + head], len) {
            Scan::Pass(frame)
        } else {
            Scan::Skip(frame)
        },
    ))
}

#[cfg(test)]
mod tests;
