//! Backpressure for the subscriber connection.
//!
//! The redis crate's pub/sub driver reads the socket eagerly into an unbounded in-process
//! queue. Left alone, a server that cannot fan out as fast as messages arrive would grow
//! in memory. The gate wraps the stream (TCP, TLS or unix) handed to the driver and
//! stops reading once [`READ_AHEAD`] bytes were read that the router has not consumed
//! yet: then the kernel buffers fill, Redis keeps the backlog in its output buffer, and
//! Redis' `client-output-buffer-limit pubsub` decides (it cuts the subscriber off; we
//! reconnect and count it in `ClusterStats::reconnects`). Memory in this process stays
//! bounded.
//!
//! Consumption is estimated per message (payload, names and protocol overhead); whenever
//! the queue is found empty the count is reset to what was read, so estimation errors do
//! not accumulate, and it never exceeds what was read (so the reset cannot be counted
//! twice). What the screen (`screen.rs`, inside the gate) drops is never counted: a flood
//! of garbage takes no room here.

use futures_util::task::AtomicWaker;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How far the subscriber connection may read ahead of the router, in bytes.
pub(crate) const READ_AHEAD: u64 = 16 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct Gate {
    read: AtomicU64,
    consumed: AtomicU64,
    waker: AtomicWaker,
}

impl Gate {
    fn over(&self) -> bool {
        let read = self.read.load(Ordering::Acquire);
        read.saturating_sub(self.consumed.load(Ordering::Acquire)) > READ_AHEAD
    }

    /// The router handled a message of about `bytes` bytes.
    ///
    /// Never counts more than was read: [`caught_up`](Self::caught_up) may already have
    /// credited bytes the driver had read but not yet queued (they were in its parse
    /// buffer when the queue looked empty); counting them again when they are consumed
    /// used to push `consumed` past `read` for good, and each such surplus let the reader
    /// run that much further ahead, so under a sustained flood the bound could be lost
    /// (heaptrack on the flood bench without Redis' output limit, before this clamp and
    /// the screen: 177 MB of parsed messages held behind the 16 MiB bound).
    pub(super) fn consumed(&self, bytes: u64) {
        let read = self.read.load(Ordering::Acquire);
        let _ = self
            .consumed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.saturating_add(bytes).min(read.max(c)))
            });
        if !self.over() {
            self.waker.wake();
        }
    }

    /// The queue is empty: everything read so far was consumed.
    pub(super) fn caught_up(&self) {
        self.consumed
            .store(self.read.load(Ordering::Acquire), Ordering::Release);
        self.waker.wake();
    }

    /// Bytes read and not yet consumed (for tests and stats).
    #[cfg(test)]
    pub(super) fn backlog(&self) -> u64 {
        self.read
            .load(Ordering::Acquire)
            .saturating_sub(self.consumed.load(Ordering::Acquire))
    }
}

/// A stream whose reads pause while the gate is over its limit.
pub(crate) struct GatedStream<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> GatedStream<S> {
    pub(super) fn new(inner: S, gate: Arc<Gate>) -> Self {
        Self { inner, gate }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GatedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.gate.over() {
            this.gate.waker.register(cx.waker());
            // Re-check after registering, so a concurrent wake is not lost.
            if this.gate.over() {
                return Poll::Pending;
            }
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let n = (buf.filled().len() - before) as u64;
            this.gate.read.fetch_add(n, Ordering::AcqRel);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GatedStream<S> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_reset_is_not_counted_twice() {
        let gate = Gate::default();
        gate.read.store(1000, Ordering::Release);
        // The queue looked empty while 1000 bytes were still in the driver's buffer …
        gate.caught_up();
        // … then they are queued and consumed: no surplus.
        gate.consumed(600);
        gate.consumed(600);
        assert_eq!(gate.consumed.load(Ordering::Acquire), 1000);
        // So the next READ_AHEAD + 1 bytes read close the gate again.
        gate.read.fetch_add(READ_AHEAD + 1, Ordering::AcqRel);
        assert!(gate.over());
    }

    #[tokio::test]
    async fn reads_pause_over_the_limit_and_resume_when_consumed() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        let gate = Arc::new(Gate::default());
        let mut gated = GatedStream::new(rx, gate.clone());
        tx.write_all(&[1u8; 512]).await.unwrap();
        let mut buf = vec![0u8; 512];
        gated.read_exact(&mut buf).await.unwrap();
        assert_eq!(gate.backlog(), 512);
        // Pretend the limit was reached.
        gate.read.store(READ_AHEAD + 1, Ordering::Release);
        gate.consumed.store(0, Ordering::Release);
        tx.write_all(&[2u8; 16]).await.unwrap();
        let mut small = [0u8; 16];
        let paused = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            gated.read_exact(&mut small),
        )
        .await;
        assert!(paused.is_err(), "read must pause over the limit");
        gate.caught_up();
        gated.read_exact(&mut small).await.unwrap();
        assert_eq!(small, [2u8; 16]);
    }
}
