//! Requests to named servers from the emitter (servers with `ClusterOptions::name`):
//! to one live member of a name (round robin), to every member, or an event to every
//! member. The emitter learns the members from our servers' heartbeats, which it follows
//! from its first named call on: that call publishes a probe on the heartbeat channel
//! (`{"uid":…,"probe":true}`), which every server of ours answers with a heartbeat at
//! once, and waits until 150 ms pass without a new server heard (at most 2.5 s). An emitter has
//! no names of its own: it asks, it is not asked.

use crate::Error;
use crate::emitter::Emitter;
use crate::requests::{Asker, random_hex};
use serde::Serialize;
use socketioxide_cluster_wire::named::{NamedMessage, channel};
use std::future::Future;

pub use socketioxide_cluster_wire::named::{Ask, NamedReply, NamedRequest};
use std::time::Duration;

/// How long the first named request waits for a heartbeat.
const FIRST_WAIT: Duration = Duration::from_millis(2500);

pub(crate) type Handler = std::sync::Arc<
    dyn Fn(NamedRequest) -> crate::publish::BoxFuture<'static, Result<serde_json::Value, String>>
        + Send
        + Sync,
>;

/// Replies of this emitter's handlers waiting for the writer, at most.
const REPLIES: usize = 1024;

impl Emitter {
    /// Answers named requests (and events) `event` sent to this emitter, in its
    /// namespace, when it has names ([`EmitterOptions::name`](crate::EmitterOptions::name))
    /// or is asked by uid: `handler` runs on a task of its own, its value is the reply.
    pub async fn on_named<F, Fut>(&self, event: &str, handler: F) -> Result<(), Error>
    where
        F: Fn(NamedRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, String>> + Send + 'static,
    {
        let asker = self.named_asker()?;
        asker.on_named(
            &self.nsp,
            event,
            std::sync::Arc::new(move |req| Box::pin(handler(req))),
        );
        self.answer_named().await
    }

    /// Listens on this emitter's named channel and publishes its handlers' replies
    /// (once per emitter: a task forwards them to the writer).
    pub(crate) async fn answer_named(&self) -> Result<(), Error> {
        let asker = self.named_asker()?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(REPLIES);
        if asker.set_replies(tx) {
            let shared = std::sync::Arc::downgrade(&self.shared);
            tokio::spawn(async move {
                while let Some((channel, bytes)) = rx.recv().await {
                    let Some(s) = shared.upgrade() else { return };
                    let _ = s.writer().queue(channel, bytes, false).await;
                }
            });
        }
        let (channel, probe) = asker.probe();
        asker
            .listen_named(FIRST_WAIT, self.shared.writer().confirmed(channel, probe))
            .await
    }

    fn named_asker(&self) -> Result<&Asker, Error> {
        self.shared
            .asker
            .as_ref()
            .ok_or_else(|| Error::Config("named requests need Emitter::connect".into()))
    }

    /// The live members of `name` (uids of our servers, sorted).
    pub async fn members(&self, name: &str) -> Result<Vec<String>, Error> {
        let asker = self.named_asker()?;
        let (channel, probe) = asker.probe();
        let writer = self.shared.writer();
        asker
            .listen_named(FIRST_WAIT, writer.confirmed(channel, probe))
            .await?;
        Ok(asker.members(name))
    }

    /// Asks one live member of `name` (round robin over the members, sorted by uid, one
    /// step per call on this emitter). `Error::NoSuchServer` when no live server has the
    /// name; `Error::NoAnswer` naming the member when it did not answer in time.
    pub async fn ask_one(
        &self,
        name: &str,
        event: &str,
        args: &impl Serialize,
        ask: Ask,
    ) -> Result<NamedReply, Error> {
        let members = self.members(name).await?;
        if members.is_empty() {
            return Err(Error::NoSuchServer(name.to_owned()));
        }
        let i = self.shared.next_named(name);
        let member = members[i % members.len()].clone();
        let mut r = self
            .gather(name, event, args, ask, &[member], "ask_one")
            .await?;
        Ok(r.remove(0))
    }

    /// Asks every live member of `name`: one reply each; on timeout `Error::NoAnswer`
    /// with the replies received and who did not answer.
    pub async fn ask_all(
        &self,
        name: &str,
        event: &str,
        args: &impl Serialize,
        ask: Ask,
    ) -> Result<Vec<NamedReply>, Error> {
        let members = self.members(name).await?;
        if members.is_empty() {
            return Err(Error::NoSuchServer(name.to_owned()));
        }
        self.gather(name, event, args, ask, &members, "ask_all")
            .await
    }

    /// Sends event `event` to every live member of `name`, without replies: how many.
    pub async fn tell_all(
        &self,
        name: &str,
        event: &str,
        args: &impl Serialize,
        ask: Ask,
    ) -> Result<usize, Error> {
        let members = self.members(name).await?;
        if members.is_empty() {
            return Err(Error::NoSuchServer(name.to_owned()));
        }
        let asker = self.named_asker()?;
        let msg = NamedMessage::Emit {
            from: asker.uid.clone(),
            nsp: self.nsp.to_string(),
            ev: event.to_owned(),
            args: json_args(args)?,
            dl: ask.deadline(),
        };
        let bytes = msg.encode();
        for m in &members {
            self.shared
                .writer()
                .confirmed(channel(&self.shared.key, m), bytes.clone())
                .await?;
        }
        Ok(members.len())
    }

    async fn gather(
        &self,
        name: &str,
        event: &str,
        args: &impl Serialize,
        ask: Ask,
        members: &[String],
        operation: &'static str,
    ) -> Result<Vec<NamedReply>, Error> {
        let asker = self.named_asker()?;
        let id = random_hex(16);
        let bytes = NamedMessage::Req {
            id: id.clone(),
            from: asker.uid.clone(),
            nsp: self.nsp.to_string(),
            ev: event.to_owned(),
            args: json_args(args)?,
            dl: ask.deadline(),
        }
        .encode();
        let timeout = ask.timeout_or(self.shared.requests_timeout);
        let mut rx = asker.register_named(&id, members.len());
        for m in members {
            let sent = self
                .shared
                .writer()
                .confirmed(channel(&self.shared.key, m), bytes.clone())
                .await;
            if let Err(e) = sent {
                asker.done_named(&id);
                return Err(e);
            }
        }
        let mut replies: Vec<NamedReply> = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while replies.len() < members.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r))
                    if members.contains(&r.from) && !replies.iter().any(|x| x.from == r.from) =>
                {
                    replies.push(r);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        asker.done_named(&id);
        if replies.len() == members.len() {
            return Ok(replies);
        }
        Err(Error::NoAnswer {
            operation,
            name: name.to_owned(),
            missing: members
                .iter()
                .filter(|m| !replies.iter().any(|r| &r.from == *m))
                .cloned()
                .collect(),
            replies,
            timeout,
        })
    }
}

fn json_args(args: &impl Serialize) -> Result<Vec<serde_json::Value>, Error> {
    socketioxide_cluster_wire::named::args_of(args).map_err(|e| Error::Encode(e.to_string()))
}
