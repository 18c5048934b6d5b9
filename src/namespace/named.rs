//! Named servers from the namespace handle: handlers, and requests to one or every
//! member of a name (see [`crate::named`]).

use crate::error::Error;
use crate::named::{Ask, Named, NamedReply, NamedRequest};
use crate::namespace::Namespace;
use crate::wire::named::NamedMessage;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;

impl Namespace {
    fn named(&self) -> Result<Arc<Named>, Error> {
        self.router().named().ok_or(Error::Closed)
    }

    /// Answers named requests (and events) `event` sent to this server, in this
    /// namespace: `handler` runs on a task of its own and its value (JSON) is the reply;
    /// an `Err` is sent back as the member's error. One handler per event (a second
    /// replaces the first).
    pub fn on_named<F, Fut>(&self, event: &str, handler: F)
    where
        F: Fn(NamedRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, String>> + Send + 'static,
    {
        if let Ok(named) = self.named() {
            named.on(
                self.name(),
                event,
                Arc::new(move |req| Box::pin(handler(req))),
            );
        }
    }

    /// The live members of `name` (uids, sorted; this server included when it has the
    /// name). A uid is its server's name.
    pub fn members(&self, name: &str) -> Vec<String> {
        self.named().map(|n| n.members(name)).unwrap_or_default()
    }

    /// Asks one live member of `name` (round robin over the members, one step per call)
    /// and returns its reply. [`Error::NoSuchServer`] at once when no live server has the
    /// name; [`Error::NoAnswer`] naming the member when it did not answer in time (the
    /// next call asks the next member).
    pub async fn ask_one(
        &self,
        name: &str,
        event: &str,
        args: &impl Serialize,
        ask: Ask,
    ) -> Result<NamedReply, Error> {
        let named = self.named()?;
        let members = named.members(name);
        let Some(member) = named.pick(&members, name) else {
            return Err(Error::NoSuchServer(name.to_owned()));
        };
        let mut replies = self
            .gather(&named, name, event, args, ask, &[member], "ask_one")
            .await?;
        Ok(replies.remove(0))
    }

    /// Asks every live member of `name`; one reply each, in no particular order. On
    /// timeout, [`Error::NoAnswer`] with the replies received and the uids that did not
    /// answer.
    pub async fn ask_all(
        &self,
        name: &str,
        event: &str,
        args: &impl Serialize,
        ask: Ask,
    ) -> Result<Vec<NamedReply>, Error> {
        let named = self.named()?;
        let members = named.members(name);
        if members.is_empty() {
            return Err(Error::NoSuchServer(name.to_owned()));
        }
        self.gather(&named, name, event, args, ask, &members, "ask_all")
            .await
    }

    /// Sends event `event` to every live member of `name`, without replies: how many
    /// members it was sent to.
    pub async fn tell_all(
        &self,
        name: &str,
        event: &str,
        args: &impl Serialize,
        ask: Ask,
    ) -> Result<usize, Error> {
        let named = self.named()?;
        let members = named.members(name);
        if members.is_empty() {
            return Err(Error::NoSuchServer(name.to_owned()));
        }
        let msg = NamedMessage::Emit {
            from: named.uid.clone(),
            nsp: self.name().to_owned(),
            ev: event.to_owned(),
            args: json_args(args)?,
            dl: ask.deadline(),
        };
        for m in &members {
            named.send(m, &msg).await?;
        }
        Ok(members.len())
    }

    #[allow(clippy::too_many_arguments)]
    async fn gather(
        &self,
        named: &Named,
        name: &str,
        event: &str,
        args: &impl Serialize,
        ask: Ask,
        members: &[String],
        operation: &'static str,
    ) -> Result<Vec<NamedReply>, Error> {
        let id = crate::correlation::new_request_id();
        let msg = NamedMessage::Req {
            id: id.clone(),
            from: named.uid.clone(),
            nsp: self.name().to_owned(),
            ev: event.to_owned(),
            args: json_args(args)?,
            dl: ask.deadline(),
        };
        let timeout = ask.timeout_or(named.requests_timeout);
        let mut rx = named.register(&id, members.len());
        let sent = async {
            for m in members {
                named.send(m, &msg).await?;
            }
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = sent {
            named.done(&id);
            return Err(e);
        }
        let mut replies: Vec<NamedReply> = Vec::with_capacity(members.len());
        let deadline = tokio::time::Instant::now() + timeout;
        while replies.len() < members.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r))
                    if members.contains(&r.from) && !replies.iter().any(|x| x.from == r.from) =>
                {
                    replies.push(r)
                }
                Ok(Some(_)) => {} // not asked, or twice: ignored
                Ok(None) | Err(_) => break,
            }
        }
        named.done(&id);
        if replies.len() == members.len() {
            return Ok(replies);
        }
        let missing = members
            .iter()
            .filter(|m| !replies.iter().any(|r| &r.from == *m))
            .cloned()
            .collect();
        Err(Error::NoAnswer {
            operation,
            name: name.to_owned(),
            missing,
            replies,
            timeout,
        })
    }
}

/// The arguments as JSON values (a tuple spreads, as for server-side events).
fn json_args(args: &impl Serialize) -> Result<Vec<serde_json::Value>, Error> {
    crate::wire::named::args_of(args).map_err(|e| Error::Encode(Box::new(e)))
}
