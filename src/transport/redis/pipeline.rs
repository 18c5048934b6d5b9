//! One pipeline of the publisher: which command of it belongs to which message
//! ([`Plan`]), and how it ended for each ([`Outcome`]).

use super::queue::Outgoing;
use crate::error::Error;

/// Where each message's commands sit in its pipeline: its PUBLISH, and the
/// `PUBSUB NUMSUB` before it for [`Mode::Counted`](crate::transport::Mode::Counted).
pub(super) struct Plan {
    publish_at: Vec<usize>,
    numsub_at: Vec<Option<usize>>,
}

impl Plan {
    pub(super) fn of(batch: &[Outgoing]) -> (redis::Pipeline, Plan) {
        let mut pipe = redis::pipe();
        let mut plan = Plan {
            publish_at: Vec::with_capacity(batch.len()),
            numsub_at: Vec::with_capacity(batch.len()),
        };
        let mut at = 0;
        for m in batch {
            if m.count_subscribers {
                pipe.cmd("PUBSUB").arg("NUMSUB").arg(&m.channel);
                plan.numsub_at.push(Some(at));
                at += 1;
            } else {
                plan.numsub_at.push(None);
            }
            match &m.xadd {
                Some(x) => x.add_to(&mut pipe, &m.channel),
                None => {
                    pipe.cmd("PUBLISH").arg(&m.channel).arg(&m.payload[..]);
                }
            }
            plan.publish_at.push(at);
            at += 1;
        }
        (pipe, plan)
    }
}

/// How one pipeline ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Every command executed: their replies, by command index.
    Published(Vec<redis::Value>),
    /// Redis refused some commands (by command index; e.g. an ACL without PUBLISH on a
    /// channel): the others were executed.
    Refused(Vec<(usize, redis::RedisError)>),
    /// The connection failed: none was executed.
    Failed(redis::RedisError),
    /// No answer within the response timeout: each may or may not be executed.
    Unknown(redis::RedisError),
}

impl Outcome {
    pub(super) fn of(result: redis::RedisResult<Vec<redis::Value>>) -> Outcome {
        match result {
            Ok(replies) => Outcome::Published(replies),
            Err(e) if e.is_timeout() => Outcome::Unknown(e),
            // Cloned: `into_server_errors` consumes the error even when it holds none.
            Err(e) => match e.clone().into_server_errors() {
                Some(errors) => Outcome::Refused(
                    errors
                        .iter()
                        .map(|(i, e)| (*i, redis::RedisError::from(e.clone())))
                        .collect(),
                ),
                None => Outcome::Failed(e),
            },
        }
    }

    /// Messages of the pipeline not known to be published.
    pub(super) fn failed(&self, plan: &Plan) -> usize {
        match self {
            Outcome::Published(_) => 0,
            Outcome::Refused(errors) => plan
                .publish_at
                .iter()
                .filter(|at| errors.iter().any(|(k, _)| k == *at))
                .count(),
            Outcome::Failed(_) | Outcome::Unknown(_) => plan.publish_at.len(),
        }
    }

    fn reply(&self, at: usize) -> Option<&redis::Value> {
        match self {
            Outcome::Published(replies) => replies.get(at),
            _ => None,
        }
    }

    /// How many subscribers message `i`'s PUBLISH reached, when known.
    pub(super) fn reached(&self, plan: &Plan, i: usize) -> Option<usize> {
        let v = self.reply(*plan.publish_at.get(i)?)?;
        redis::from_redis_value_ref::<usize>(v).ok()
    }

    /// The channel's subscriber count asked before message `i`, when known.
    fn subscribers(&self, plan: &Plan, i: usize) -> Option<usize> {
        let v = self.reply((*plan.numsub_at.get(i)?)?)?;
        let counts: Vec<(String, usize)> = redis::from_redis_value_ref(v).ok()?;
        Some(counts.first().map_or(0, |(_, n)| *n))
    }

    /// What the caller of message `i` is told: the subscriber count it asked for, or how
    /// many its PUBLISH reached.
    pub(super) fn of_message(
        &self,
        plan: &Plan,
        i: usize,
        counted: bool,
    ) -> Result<Option<usize>, Error> {
        let refused = |at: Option<usize>| match (self, at) {
            (Outcome::Refused(errors), Some(at)) => errors.iter().find(|(k, _)| *k == at),
            _ => None,
        };
        if let Some((_, e)) = refused(plan.publish_at.get(i).copied()) {
            return Err(Error::NotPublished(e.clone()));
        }
        if let Some((_, e)) = refused(plan.numsub_at.get(i).copied().flatten()) {
            // Published, but the count asked for was refused (an ACL without PUBSUB).
            return Err(Error::Redis(e.clone()));
        }
        match self {
            Outcome::Published(_) if counted => Ok(self.subscribers(plan, i)),
            Outcome::Published(_) => Ok(self.reached(plan, i)),
            Outcome::Refused(_) => Ok(None),
            Outcome::Failed(e) => Err(Error::NotPublished(e.clone())),
            Outcome::Unknown(e) => Err(Error::Unconfirmed(e.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn io(kind: std::io::ErrorKind) -> redis::RedisError {
        redis::RedisError::from(std::io::Error::from(kind))
    }

    fn message(count_subscribers: bool) -> Outgoing {
        let mut m = Outgoing::new(
            "c".into(),
            Bytes::from_static(b"x"),
            0,
            crate::transport::Mode::Queued,
        );
        m.count_subscribers = count_subscribers;
        m
    }

    /// Three messages, the second counted: commands PUBLISH, NUMSUB, PUBLISH, PUBLISH.
    fn plan() -> Plan {
        Plan::of(&[message(false), message(true), message(false)]).1
    }

    #[test]
    fn a_refused_command_fails_only_its_caller() {
        let refused = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm),
            "NOPERM",
        ));
        let plan = plan();
        // Command 2 is the second message's PUBLISH.
        let o = Outcome::Refused(vec![(2, refused)]);
        assert_eq!(o.failed(&plan), 1);
        assert!(o.of_message(&plan, 0, false).is_ok());
        let err = o.of_message(&plan, 1, true).unwrap_err();
        assert!(matches!(&err, Error::NotPublished(_)), "{err}");
        // The Redis error is the source, not only text.
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.to_string().contains("NOPERM"), "{source}");
        assert!(o.of_message(&plan, 2, false).is_ok());
    }

    #[test]
    fn a_failed_pipeline_fails_everyone_and_a_timeout_is_unconfirmed() {
        let plan = plan();
        let o = Outcome::Failed(io(std::io::ErrorKind::BrokenPipe));
        assert_eq!(o.failed(&plan), 3);
        assert!(matches!(
            o.of_message(&plan, 2, false),
            Err(Error::NotPublished(_))
        ));
        let o = Outcome::Unknown(io(std::io::ErrorKind::TimedOut));
        assert_eq!(o.failed(&plan), 3);
        assert!(matches!(
            o.of_message(&plan, 0, false),
            Err(Error::Unconfirmed(_))
        ));
    }

    #[test]
    fn counts_are_read_per_message() {
        use redis::Value as V;
        let plan = plan();
        let numsub = V::Array(vec![V::BulkString(b"c".to_vec()), V::Int(3)]);
        let o = Outcome::Published(vec![V::Int(1), numsub, V::Int(4), V::Int(0)]);
        assert_eq!(o.failed(&plan), 0);
        assert_eq!(o.of_message(&plan, 0, false).unwrap(), Some(1));
        // The counted message gets NUMSUB's answer; its PUBLISH reached 4.
        assert_eq!(o.of_message(&plan, 1, true).unwrap(), Some(3));
        assert_eq!(o.reached(&plan, 1), Some(4));
        assert_eq!(o.reached(&plan, 2), Some(0));
    }

    #[test]
    fn redis_errors_are_classified() {
        let timeout = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(Outcome::of(Err(timeout)), Outcome::Unknown(_)));
        let dropped = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(matches!(Outcome::of(Err(dropped)), Outcome::Failed(_)));
        assert!(matches!(Outcome::of(Ok(vec![])), Outcome::Published(_)));
    }
}
