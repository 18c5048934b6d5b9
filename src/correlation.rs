//! Pending requests: every reply is routed to the call that waits for it by `requestId`.
//!
//! A [`Pending`] guard owns one table entry and removes it when dropped, so an entry
//! never outlives its call, whether the call succeeded, failed, timed out or was
//! cancelled.

use crate::wire::request::Response;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Replies to one request. Unbounded because the count is bounded by the request itself
/// (one reply per server, or one per acknowledging client); the subscriber task must
/// never wait on a slow caller.
type ReplyTx = mpsc::UnboundedSender<Response>;

/// The table of one namespace.
#[derive(Default)]
pub(crate) struct PendingTable {
    entries: DashMap<String, ReplyTx>,
}

impl PendingTable {
    /// Registers a new request id; the returned guard receives its replies.
    pub(crate) fn register(self: &Arc<Self>) -> Pending {
        let id = new_request_id();
        let (tx, rx) = mpsc::unbounded_channel();
        self.entries.insert(id.clone(), tx);
        Pending {
            id,
            rx,
            table: self.clone(),
        }
    }

    /// Hands a reply to its request; false when nobody waits for that id (a late reply,
    /// or one meant for another server).
    pub(crate) fn route(&self, res: Response) -> bool {
        match self.entries.get(&res.request_id) {
            Some(tx) => tx.send(res).is_ok(),
            None => false,
        }
    }

    /// Ends every request in flight: their replies can no longer arrive (the subscriber
    /// connection dropped, or the handle closed).
    pub(crate) fn fail_all(&self) {
        self.entries.clear();
    }

    /// Whether `id` is one of our requests in flight.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Number of requests in flight.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// How gathering replies ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Every expected reply arrived.
    Complete,
    /// The timeout elapsed first.
    TimedOut,
    /// The connection dropped: the missing replies cannot arrive any more.
    Lost,
}

/// One request in flight.
pub(crate) struct Pending {
    pub id: String,
    rx: mpsc::UnboundedReceiver<Response>,
    table: Arc<PendingTable>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.table.entries.remove(&self.id);
    }
}

impl Pending {
    /// Collects replies until `expected` arrived (those for which `counts` is true),
    /// `timeout` elapsed, or the request was ended by [`PendingTable::fail_all`].
    pub(crate) async fn gather(
        &mut self,
        expected: usize,
        timeout: Duration,
        counts: impl Fn(&Response) -> bool,
    ) -> (Vec<Response>, End) {
        let mut out = Vec::with_capacity(expected);
        if expected == 0 {
            return (out, End::Complete);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(res)) => {
                    if counts(&res) {
                        out.push(res);
                        if out.len() >= expected {
                            return (out, End::Complete);
                        }
                    }
                }
                Ok(None) => return (out, End::Lost),
                Err(_) => return (out, End::TimedOut),
            }
        }
    }

    /// Polls for the next reply (used by the ack stream).
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Response>> {
        self.rx.poll_recv(cx)
    }
}

/// A fresh request id: 16 url-safe characters (Node uses 6; any string works).
pub(crate) fn new_request_id() -> String {
    socketioxide_core::Sid::new().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: &str) -> Response {
        Response::decode(format!(r#"{{"requestId":"{id}","rooms":[]}}"#).as_bytes()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn replies_reach_their_request_and_entries_never_leak() {
        let table = Arc::new(PendingTable::default());
        let mut a = table.register();
        let mut b = table.register();
        assert_eq!(table.len(), 2);
        assert!(table.route(reply(&b.id)));
        assert!(table.route(reply(&a.id)));
        assert!(!table.route(reply("unknown")));
        let (ra, end_a) = a.gather(1, Duration::from_secs(5), |_| true).await;
        assert_eq!(end_a, End::Complete);
        assert_eq!(ra[0].request_id, a.id);
        // b expects two replies, gets one: times out at the deadline with the partial reply.
        let started = tokio::time::Instant::now();
        let (rb, end_b) = b.gather(2, Duration::from_secs(5), |_| true).await;
        assert_eq!(end_b, End::TimedOut);
        assert_eq!(rb.len(), 1);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(a);
        drop(b);
        assert_eq!(table.len(), 0, "success and timeout both clean up");
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_requests_clean_up() {
        let table = Arc::new(PendingTable::default());
        let mut p = table.register();
        let fut = async move { p.gather(3, Duration::from_secs(60), |_| true).await };
        // Cancel before completion (the caller's future is dropped).
        assert!(
            tokio::time::timeout(Duration::from_millis(10), fut)
                .await
                .is_err()
        );
        assert_eq!(table.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_connection_ends_requests_at_once() {
        let table = Arc::new(PendingTable::default());
        let mut p = table.register();
        table.fail_all();
        let started = tokio::time::Instant::now();
        let (_, end) = p.gather(2, Duration::from_secs(60), |_| true).await;
        assert_eq!(end, End::Lost);
        assert_eq!(started.elapsed(), Duration::ZERO);
        drop(p);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn request_ids_are_unique() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
