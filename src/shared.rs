//! The parts of one cluster handle that every namespace shares, handed to each part
//! when it is built (the router, each namespace's core, the namespace API), so that no
//! part reaches into the handle itself.

use crate::callbacks::Callbacks;
use crate::liveness::Liveness;
use crate::options::ClusterConfig;
use crate::replies::Replies;
use crate::stand_in::StandIns;
use crate::stats::Counters;
use crate::transport::Transport;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub(crate) struct Shared {
    /// This server's uid as text: the first element of every message it publishes,
    /// compared against every message it receives.
    pub(crate) uid: Arc<str>,
    pub(crate) config: Arc<ClusterConfig>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) replies: Replies,
    pub(crate) counters: Arc<Counters>,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) callbacks: Arc<Callbacks>,
    /// Stand-in `Sid`s of Node sockets, for socketioxide's `RemoteSocket`s.
    pub(crate) stand_ins: Arc<StandIns>,
    closed: Arc<AtomicBool>,
}

impl Shared {
    pub(crate) fn new(
        uid: &str,
        config: Arc<ClusterConfig>,
        transport: Arc<dyn Transport>,
        replies: Replies,
        counters: Arc<Counters>,
        liveness: Arc<Liveness>,
    ) -> Self {
        let stand_ins = config.max_node_stand_ins();
        Self {
            uid: uid.into(),
            config,
            transport,
            replies,
            counters,
            liveness,
            callbacks: Arc::default(),
            stand_ins: Arc::new(StandIns::new(stand_ins)),
            closed: Arc::default(),
        }
    }

    /// Marks the handle closed; true if it already was.
    pub(crate) fn set_closed(&self) -> bool {
        self.closed.swap(true, Ordering::AcqRel)
    }

    /// Whether the handle was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
