//! The sharded protocol's room channels (dynamic modes): `<key>#<nsp>#<room>#` for each
//! local room that has one in the mode, kept subscribed while the room exists here.
//!
//! socketioxide gives an adapter no callback when a socket joins or leaves a room
//! (`socket.join` writes the local maps directly), so one task per namespace compares
//! the local rooms with the channels subscribed every `room_sync_interval` and
//! subscribes or unsubscribes the difference. Node compat: the sets are Node's —
//! `dynamic`: every room with a channel (not 20 UTF-16 units long), which includes the
//! 16-character ids of our own sockets (Node sends `to(<our socket id>)` on that room's
//! channel); `dynamic-private`: every room and every socket id.

use super::ClusterAdapter;
use crate::router::{NsOps, Route, RouteKind};
use crate::transport::Sub;
use futures_util::StreamExt;
use socketioxide_core::adapter::{BroadcastFlags, BroadcastOptions, SocketEmitter};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use tokio::task::JoinHandle;

/// Subscriptions at once when many rooms appear together (a server's first sockets).
const CONCURRENT_SUBSCRIBES: usize = 64;

/// The room channels of one namespace adapter.
#[derive(Default)]
pub(super) struct RoomChannels {
    /// Rooms whose channel is subscribed.
    current: Mutex<HashSet<String>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RoomChannels {
    /// Starts the namespace's sync task (dynamic modes only; it ends with the adapter).
    pub(super) fn start<E: SocketEmitter>(adapter: &Arc<ClusterAdapter<E>>, ops: Weak<dyn NsOps>) {
        let Some((_, mode)) = adapter.core.sharded() else {
            return;
        };
        if *mode == crate::wire::cluster_format::SubscriptionMode::Static {
            return;
        }
        let every = adapter.core.shared().config.room_sync_interval();
        let weak = Arc::downgrade(adapter);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(adapter) = weak.upgrade() else {
                    return;
                };
                sync(&adapter, &ops).await;
            }
        });
        *lock(&adapter.room_channels.task) = Some(task);
    }

    /// Stops the task; the channels that were subscribed (to unsubscribe).
    pub(super) fn stop(&self) -> Vec<String> {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
        lock(&self.current).drain().collect()
    }
}

/// Subscribes the channels of the rooms that appeared, unsubscribes those of the rooms
/// that went away.
async fn sync<E: SocketEmitter>(adapter: &ClusterAdapter<E>, ops: &Weak<dyn NsOps>) {
    let Some((channels, mode)) = adapter.core.sharded() else {
        return;
    };
    let mut all = BroadcastOptions::default();
    all.add_flag(BroadcastFlags::Broadcast);
    let wanted: HashSet<String> = adapter
        .local
        .rooms(all.clone())
        .into_iter()
        .map(|r| r.to_string())
        .chain(adapter.local.sockets(all).iter().map(|s| s.to_string()))
        .filter(|r| mode.room_has_channel(r))
        .collect();
    let (added, removed): (Vec<String>, Vec<String>) = {
        let current = lock(&adapter.room_channels.current);
        (
            wanted.difference(&current).cloned().collect(),
            current.difference(&wanted).cloned().collect(),
        )
    };
    if added.is_empty() && removed.is_empty() {
        return;
    }
    let transport = &adapter.core.shared().transport;
    let routes: Vec<Route> = added
        .iter()
        .map(|room| Route {
            name: channels.room(room),
            kind: RouteKind::Cluster,
        })
        .collect();
    adapter.router.add_routes(adapter.id, ops, &routes);
    let subscribed: Vec<String> = futures_util::stream::iter(added.into_iter().zip(routes))
        .map(|(room, route)| async move {
            match transport.subscribe(route.sub()).await {
                Ok(()) => Some(room),
                Err(e) => {
                    tracing::debug!(room = %room, error = %e, "room channel not subscribed yet; retried");
                    None
                }
            }
        })
        .buffer_unordered(CONCURRENT_SUBSCRIBES)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let gone: Vec<String> = removed.iter().map(|room| channels.room(room)).collect();
    for ch in &gone {
        let _ = transport.unsubscribe(Sub::Channel(ch.clone())).await;
    }
    adapter.router.remove_routes(adapter.id, &gone);
    let mut current = lock(&adapter.room_channels.current);
    current.extend(subscribed);
    for room in &removed {
        current.remove(room);
    }
}
