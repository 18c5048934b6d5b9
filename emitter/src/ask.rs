//! The emitter's requests: [`Emitter::fetch_sockets`], [`Emitter::all_rooms`],
//! [`Emitter::server_count`], [`Emitter::server_side_emit_with_ack`] and
//! [`BroadcastOperator::emit_with_ack`] (see `requests.rs` for the machinery).

use crate::args::to_args;
use crate::emitter::{BroadcastOperator, Emitter, RESERVED_EVENTS};
use crate::requests::{
    Asker, Dialect, Incomplete, Partial, RemoteSocket, random_hex, rooms_of, sockets_of,
};
use crate::{Error, RESERVED_SERVER_SIDE_EVENTS};
use rmpv::Value;
use serde::Serialize;
use socketioxide_cluster_wire::cluster_format::ClusterMessage;
use socketioxide_cluster_wire::message::{EVENT, NodePacket, WireOptions};
use socketioxide_cluster_wire::request::{Request, RequestId, Response, kind};
use std::time::Duration;
use tokio::time::Instant;

/// How a round of answers went.
struct Round {
    expected: usize,
    answered: usize,
    complete: bool,
}

impl Emitter {
    fn asker(&self) -> Result<&Asker, Error> {
        self.shared.asker.as_ref().ok_or_else(|| {
            Error::Config("requests need Emitter::connect (not from_connection, for now)".into())
        })
    }

    /// How many servers serve this namespace: `PUBSUB NUMSUB <key>-request#<nsp>#`,
    /// as Node's `serverCount()` (summed over every node of a Redis Cluster). The emitter
    /// itself is not counted.
    pub async fn server_count(&self) -> Result<usize, Error> {
        let asker = self.asker()?;
        asker.count(&asker.request_channel(&self.nsp)).await
    }

    /// The uids of our servers (socketioxide-cluster) heard from recently, from their
    /// heartbeats (twice at least, so that their interval is known): known once the
    /// emitter made its first request (it listens from then on). Node servers send no
    /// heartbeats and are not listed.
    pub fn live_servers(&self) -> Vec<String> {
        self.shared
            .asker
            .as_ref()
            .map(Asker::live)
            .unwrap_or_default()
    }

    /// The sockets of the namespace on every server (Node: `fetchSockets()`), as each
    /// server describes them. Returns as soon as every server answered; after the
    /// requests timeout, [`Error::Incomplete`] with what arrived.
    pub async fn fetch_sockets(&self) -> Result<Vec<RemoteSocket>, Error> {
        self.operator().fetch_sockets().await
    }

    /// Emits `event` to every client of the namespace and collects their
    /// acknowledgements; see [`BroadcastOperator::emit_with_ack`].
    pub async fn emit_with_ack<T: ?Sized + Serialize>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        self.operator().emit_with_ack(event, args, timeout).await
    }

    /// Every room of the namespace, on every server (Node: `adapter.allRooms()`):
    /// sorted, each once; sockets' own ids are rooms too.
    pub async fn all_rooms(&self) -> Result<Vec<String>, Error> {
        if self.asker()?.dialect != Dialect::Classic {
            // No such request in the ClusterAdapter protocol (Node's allRooms is local
            // there): the rooms of every socket, which is the same set.
            return match self.fetch_sockets().await {
                Ok(sockets) => Ok(union(sockets)),
                Err(Error::Incomplete(mut inc)) => {
                    if let Partial::Sockets(s) = &inc.partial {
                        inc.partial = Partial::Rooms(union(s.clone()));
                    }
                    inc.operation = "all_rooms";
                    Err(Error::Incomplete(inc))
                }
                Err(e) => Err(e),
            };
        }
        let mut rooms = Vec::new();
        let round = self
            .round(
                self.shared.requests_timeout,
                |uid, id| Request::AllRooms {
                    uid: Some(uid.to_owned()),
                    request_id: id.clone(),
                },
                |resp, round| {
                    rooms.extend(rooms_of(&resp));
                    round.answered += 1;
                    round.answered >= round.expected
                },
            )
            .await?;
        rooms.sort();
        rooms.dedup();
        self.finish("all_rooms", round, None, Partial::Rooms(rooms.clone()))
            .map(|()| rooms)
    }

    /// A server-side event to every server of the namespace, each answering once with
    /// its first acknowledgement argument (Node: `serverSideEmit(ev, ...args, cb)`).
    /// One reply per server; after the requests timeout, [`Error::Incomplete`] with the
    /// replies received.
    pub async fn server_side_emit_with_ack<T: ?Sized + Serialize>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<Vec<Value>, Error> {
        if RESERVED_SERVER_SIDE_EVENTS.contains(&event) {
            return Err(Error::ReservedEvent(event.to_owned()));
        }
        let mut data = vec![Value::from(event)];
        data.extend(to_args(args)?);
        let mut replies = Vec::new();
        let round = self
            .round(
                self.shared.requests_timeout,
                |uid, id| Request::ServerSideEmit {
                    uid: Some(uid.to_owned()),
                    request_id: Some(id.clone()),
                    data,
                },
                |mut resp, round| {
                    if resp.kind == Some(kind::SERVER_SIDE_EMIT) {
                        replies.push(resp.take("data").unwrap_or(Value::Nil));
                        round.answered += 1;
                    }
                    round.answered >= round.expected
                },
            )
            .await?;
        self.finish(
            "server_side_emit_with_ack",
            round,
            None,
            Partial::Replies(replies.clone()),
        )
        .map(|()| replies)
    }

    /// One request: registered, published behind what is queued, answered until `on`
    /// says complete or `timeout`.
    async fn round(
        &self,
        timeout: Duration,
        build: impl FnOnce(&str, &RequestId) -> Request,
        mut on: impl FnMut(Response, &mut Round) -> bool,
    ) -> Result<Round, Error> {
        let asker = self.asker()?;
        let nsp = self.nsp.to_string();
        asker.listen(&nsp).await?;
        let channel = asker.request_channel(&nsp);
        let expected = asker.count(&channel).await?;
        let mut round = Round {
            expected,
            answered: 0,
            complete: expected == 0,
        };
        if round.complete {
            return Ok(round);
        }
        let id = random_hex(16);
        let mut answers = asker.register(&id);
        let req = build(&asker.uid, &RequestId::new(id.clone()));
        let bytes = match asker.dialect {
            Dialect::Classic => req.encode(),
            Dialect::ClusterFormat | Dialect::Sharded => {
                match ClusterMessage::from_request(&req, &asker.uid, &nsp) {
                    Some(m) => m.encode(),
                    None => {
                        asker.done(&id);
                        return Err(Error::Config("no such request in this protocol".into()));
                    }
                }
            }
        };
        let mut sent = self
            .shared
            .writer()
            .confirmed(channel.clone(), bytes.clone())
            .await;
        // A connection lost since the last call (the connection manager reconnects on
        // the next command): once more.
        if let Err(Error::Redis(e)) = &sent
            && crate::publish::is_connection_error(e)
        {
            sent = self.shared.writer().confirmed(channel, bytes).await;
        }
        if let Err(e) = sent {
            asker.done(&id);
            return Err(e);
        }
        let deadline = Instant::now() + timeout;
        while !round.complete {
            match tokio::time::timeout_at(deadline, answers.recv()).await {
                Ok(Some(resp)) => round.complete = on(resp, &mut round),
                Ok(None) | Err(_) => break,
            }
        }
        asker.done(&id);
        Ok(round)
    }

    /// `Ok` for a complete round, else the timeout with what arrived.
    fn finish(
        &self,
        operation: &'static str,
        round: Round,
        acks: Option<(u64, usize)>,
        partial: Partial,
    ) -> Result<(), Error> {
        if round.complete {
            return Ok(());
        }
        let missing = self
            .shared
            .asker
            .as_ref()
            .map(|a| a.silent(&self.nsp))
            .unwrap_or_default();
        Err(Error::Incomplete(Box::new(Incomplete {
            operation,
            expected: round.expected,
            answered: round.answered,
            acks,
            missing,
            partial,
        })))
    }
}

impl BroadcastOperator {
    /// The targeted sockets (rooms, except) on every server; see
    /// [`Emitter::fetch_sockets`].
    pub async fn fetch_sockets(&self) -> Result<Vec<RemoteSocket>, Error> {
        let e = &self.emitter;
        let opts = self.selector();
        let mut sockets = Vec::new();
        let round = e
            .round(
                e.shared.requests_timeout,
                |uid, id| Request::Fetch {
                    uid: Some(uid.to_owned()),
                    request_id: id.clone(),
                    opts,
                },
                |resp, round| {
                    sockets.extend(sockets_of(&resp));
                    round.answered += 1;
                    round.answered >= round.expected
                },
            )
            .await?;
        e.finish(
            "fetch_sockets",
            round,
            None,
            Partial::Sockets(sockets.clone()),
        )
        .map(|()| sockets)
    }

    /// Emits `event` to the targeted clients on every server and collects each
    /// client's acknowledgement (its first argument), as Node's
    /// `io.timeout(t).emit(ev, ...args, cb)`: every server first reports how many
    /// clients it asked, then forwards their acks. Returns once every server reported
    /// and every announced ack arrived; after `timeout`, [`Error::Incomplete`] with the
    /// acks received (a client that does not answer is not waited for beyond it).
    pub async fn emit_with_ack<T: ?Sized + Serialize>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
    ) -> Result<Vec<Value>, Error> {
        if RESERVED_EVENTS.contains(&event) {
            return Err(Error::ReservedEvent(event.to_owned()));
        }
        let mut data = vec![Value::from(event)];
        data.extend(to_args(args)?);
        let e = &self.emitter;
        let sel = self.selector();
        let mut flags = self.flags.clone();
        let ms = Value::from(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        match flags.iter_mut().find(|(k, _)| k == "timeout") {
            Some((_, v)) => *v = ms,
            None => flags.push(("timeout".into(), ms)),
        }
        let mut opts = WireOptions::default();
        opts.rooms = sel.rooms;
        opts.except = Some(sel.except);
        opts.flags = flags;
        let packet = NodePacket {
            kind: EVENT,
            data,
            nsp: Some(e.nsp.to_string()),
            id: None,
        };
        let (mut announced, mut acks) = (0u64, Vec::new());
        let round = e
            .round(
                timeout,
                |uid, id| Request::Broadcast {
                    uid: Some(uid.to_owned()),
                    request_id: id.clone(),
                    packet,
                    opts,
                },
                |mut resp, round| {
                    match resp.kind {
                        Some(kind::BROADCAST_CLIENT_COUNT) => {
                            announced +=
                                resp.get("clientCount").and_then(Value::as_u64).unwrap_or(0);
                            round.answered += 1;
                        }
                        Some(kind::BROADCAST_ACK) => {
                            acks.push(resp.take("packet").unwrap_or(Value::Nil));
                        }
                        _ => {}
                    }
                    round.answered >= round.expected && acks.len() as u64 >= announced
                },
            )
            .await?;
        let got = acks.len();
        e.finish(
            "emit_with_ack",
            round,
            Some((announced, got)),
            Partial::Replies(acks.clone()),
        )
        .map(|()| acks)
    }
}

/// Every room of `sockets`, sorted, each once.
fn union(sockets: Vec<RemoteSocket>) -> Vec<String> {
    let mut rooms: Vec<String> = sockets.into_iter().flat_map(|s| s.rooms).collect();
    rooms.sort();
    rooms.dedup();
    rooms
}
