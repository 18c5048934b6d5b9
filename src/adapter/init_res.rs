//! [`InitRes`]: what `io.ns(..)` returns for our adapter.

use crate::error::Error;
use socketioxide_core::adapter::Spawnable;
use std::future::Future;
use std::pin::Pin;

/// Returned by `io.ns(..)`: await it (or let socketioxide spawn it for dynamic
/// namespaces). The namespace exists once its Redis subscriptions are confirmed.
#[must_use = "the namespace is only registered once this future completes"]
pub struct InitRes(pub(super) Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>);

impl std::fmt::Debug for InitRes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitRes").finish_non_exhaustive()
    }
}

impl Future for InitRes {
    type Output = Result<(), Error>;
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl Spawnable for InitRes {
    fn spawn(self) {
        tokio::spawn(async move {
            if let Err(e) = self.await {
                tracing::error!(error = %e, "cluster adapter: namespace initialisation failed");
            }
        });
    }
}
