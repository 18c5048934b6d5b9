//! What the publisher task sends: one PUBLISH, or one XADD (the Streams transport), and
//! how a caller queues it ([`Mode`]).

use super::held::Kept;
use super::{RedisTransport, lock};
use crate::error::Error;
use crate::stats::Counters;
use crate::transport::{Mode, queue_as};
use bytes::Bytes;

/// One message for the publisher task.
pub(super) struct Outgoing {
    /// The channel (PUBLISH) or the stream (XADD).
    pub(super) channel: String,
    pub(super) payload: Bytes,
    /// Subscriber connections this message should reach (0: not checked).
    pub(super) expect: usize,
    /// [`Mode::Counted`]: ask `PUBSUB NUMSUB` of the channel just before publishing.
    pub(super) count_subscribers: bool,
    /// Set: an `XADD` of these fields instead of a PUBLISH of `payload`.
    pub(super) xadd: Option<Xadd>,
    /// Set for [`Mode::Confirmed`]: told how the pipeline holding this message ended,
    /// and how many subscribers it reached.
    pub(super) done: Option<crate::transport::Done>,
}

/// `XADD <stream> MAXLEN ~ <max_len> * <fields…>`.
#[derive(Debug)]
pub(crate) struct Xadd {
    /// Node's `maxLen`: the stream is trimmed to about this many entries.
    pub(crate) max_len: usize,
    /// Field names and values, in order.
    pub(crate) fields: Vec<(&'static str, Vec<u8>)>,
}

impl Xadd {
    /// Appends `XADD <stream> MAXLEN ~ <max_len> * <fields…>` to `pipe`.
    pub(crate) fn add_to(&self, pipe: &mut redis::Pipeline, stream: &str) {
        pipe.cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*");
        for (k, v) in &self.fields {
            pipe.arg(*k).arg(&v[..]);
        }
    }
}

impl Outgoing {
    pub(super) fn new(channel: String, payload: Bytes, expect: usize, mode: Mode) -> Self {
        Outgoing {
            channel,
            payload,
            expect,
            count_subscribers: mode == Mode::Counted,
            xadd: None,
            done: None,
        }
    }
}

impl RedisTransport {
    /// Queues `msg` as `mode` says (see [`Mode`]); refused at once (and counted) while
    /// the publishing connection is known down.
    pub(super) async fn enqueue(&self, msg: Outgoing, mode: Mode) -> Result<Option<usize>, Error> {
        if let Some(e) = self.refusal() {
            // A stream entry nobody waits on is kept while Redis is down (bounded).
            if matches!(e, Error::Disconnected) && mode == Mode::Queued && msg.xadd.is_some() {
                let shared = &self.shared;
                let kept = lock(&shared.held).keep(msg, &shared.publishing);
                match kept {
                    Kept::Yes => {
                        Counters::add(&shared.counters.stream_held, 1);
                        return Ok(None);
                    }
                    Kept::Up(m) => {
                        self.queue.send(m).await.map_err(|_| Error::Closed)?;
                        return Ok(None);
                    }
                    Kept::No(_) => {}
                }
            }
            if matches!(e, Error::Disconnected) {
                Counters::add(&self.shared.counters.refused, 1);
                if mode == Mode::Volatile {
                    Counters::add(&self.shared.counters.volatile_dropped, 1);
                }
            }
            return Err(e);
        }
        queue_as(
            &self.queue,
            msg,
            mode,
            &self.shared.counters.volatile_dropped,
            |m| &mut m.done,
        )
        .await
    }

    /// `XADD` on `stream`, queued with the PUBLISHes (one order for both, one pipeline):
    /// resolves as [`publish`](crate::transport::Transport::publish) does for `mode`
    /// (with `None`: XADD answers an id, not a count).
    pub(crate) async fn xadd(
        &self,
        stream: String,
        entry: Xadd,
        mode: Mode,
    ) -> Result<Option<usize>, Error> {
        let mut msg = Outgoing::new(stream, Bytes::new(), 0, mode);
        msg.count_subscribers = false;
        msg.xadd = Some(entry);
        self.enqueue(msg, mode).await
    }
}
