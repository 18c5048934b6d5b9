//! The replies of one request, and how they become the caller's result: complete, or
//! an error that says who is missing and keeps what did arrive.

use super::NsCore;
use crate::correlation::End;
use crate::error::{Error, Partial};
use crate::wire::request::Response;

/// The replies of one request.
pub(crate) struct Gathered {
    replies: Vec<Response>,
    expected: usize,
    /// Hung peers that were not waited for.
    hung: Vec<String>,
    end: End,
}

impl Gathered {
    pub(super) fn new(
        replies: Vec<Response>,
        expected: usize,
        hung: Vec<String>,
        end: End,
    ) -> Self {
        Self {
            replies,
            expected,
            hung,
            end,
        }
    }

    /// No other server to ask.
    pub(super) fn nothing_to_wait_for() -> Self {
        Self::new(Vec::new(), 0, Vec::new(), End::Complete)
    }

    /// `Ok(converted replies)` when complete, else the error of how it ended, holding
    /// `partial` of what arrived.
    pub(crate) fn into_result<T>(
        self,
        operation: &'static str,
        core: &NsCore,
        convert: impl FnOnce(Vec<Response>) -> T,
        partial: impl FnOnce(&T) -> Partial,
    ) -> Result<T, Error> {
        let received = self.replies.len();
        let out = convert(self.replies);
        match self.end {
            End::Complete if self.hung.is_empty() => Ok(out),
            End::Complete => Err(Error::Unresponsive {
                operation,
                servers: self.hung,
                received,
                partial: partial(&out),
            }),
            End::Lost => Err(core.lost_error()),
            End::TimedOut => Err(Error::Timeout {
                operation,
                expected: self.expected,
                received,
                timeout: core.timeout(),
                partial: partial(&out),
            }),
        }
    }
}
