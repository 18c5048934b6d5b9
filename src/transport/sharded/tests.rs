//! The sharded transport against a real Redis Cluster (test-support's throw-away
//! cluster): channels on three shards, a slot migrated away under a subscription, and a
//! master killed with its replica taking over.

use super::slots::slot;
use super::*;
use socketioxide_cluster_test_support::redis_cluster::RedisCluster;

const T: Duration = Duration::from_secs(20);

/// Hands every delivered message to a channel.
struct Collect(mpsc::UnboundedSender<(String, Vec<u8>)>);

impl MessageSink for Collect {
    fn screen(&self, _: &[u8], _: Option<&[u8]>, _: &[u8], _: usize) -> bool {
        true
    }
    fn deliver(&self, channel: &str, _: Option<&str>, payload: &[u8]) {
        let _ = self.0.send((channel.to_owned(), payload.to_vec()));
    }
    fn connection_lost(&self) {}
}

async fn transport(
    cluster: &RedisCluster,
) -> (ShardedTransport, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let urls = cluster.urls();
    let first = RedisEndpoint {
        url: urls[0].clone(),
        tls_root_cert: None,
    };
    let t = ShardedTransport::connect(
        &first,
        &urls[1..],
        Duration::from_secs(2),
        1024,
        Arc::new(Collect(tx)),
        Arc::default(),
    )
    .await
    .unwrap();
    (t, rx)
}

async fn start(masters: usize, replicas: usize) -> RedisCluster {
    tokio::task::spawn_blocking(move || RedisCluster::start(masters, replicas))
        .await
        .unwrap()
}

/// Publishes `payload` on `ch` (confirmed) until it is received, within `T`; how long
/// that took.
async fn until_received(
    t: &ShardedTransport,
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    ch: &str,
) -> Duration {
    until_received_within(t, rx, ch, T).await
}

async fn until_received_within(
    t: &ShardedTransport,
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    ch: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let _ = t
            .publish(
                ch.to_owned(),
                Bytes::from_static(b"probe"),
                Mode::Confirmed,
                0,
            )
            .await;
        if let Ok(Some((got, _))) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
        {
            assert_eq!(got, ch);
            while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            {
            }
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "nothing received on {ch} within {within:?}"
        );
    }
}

/// The node index (in `cluster.nodes()`) listening on `addr`'s port.
fn index_of(cluster: &RedisCluster, addr: &Addr) -> usize {
    cluster
        .nodes()
        .iter()
        .position(|n| n.port() == addr.1)
        .unwrap()
}

fn shard_num_sub_on(cluster: &RedisCluster, i: usize, ch: &str) -> String {
    let out = cluster.cli(i, &["pubsub", "shardnumsub", ch]);
    out.lines().nth(1).unwrap_or_default().to_owned()
}

const CHANNELS: [&str; 3] = ["socket.io#/#", "socket.io#/admin#", "socket.io#/#room1#"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_live_on_their_owners_and_messages_cross_shards() {
    let cluster = start(3, 0).await;
    let (t, mut rx) = transport(&cluster).await;
    for ch in CHANNELS {
        t.subscribe(Sub::Channel(ch.to_owned())).await.unwrap();
    }
    let topology = t.inner.topology(true).await.unwrap();
    let owners: HashSet<Addr> = CHANNELS
        .iter()
        .map(|c| topology.owner(slot(c)).unwrap().clone())
        .collect();
    assert_eq!(owners.len(), 3, "the three channels sit on three shards");
    for ch in CHANNELS {
        let owner = index_of(&cluster, topology.owner(slot(ch)).unwrap());
        for i in 0..3 {
            let want = if i == owner { "1" } else { "0" };
            assert_eq!(shard_num_sub_on(&cluster, i, ch), want, "{ch} on node {i}");
        }
        let reached = t
            .publish(
                ch.to_owned(),
                Bytes::from(ch.as_bytes().to_vec()),
                Mode::Confirmed,
                0,
            )
            .await
            .unwrap();
        assert_eq!(reached, Some(1), "{ch}");
        let (got, payload) = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        assert_eq!((got.as_str(), payload.as_slice()), (ch, ch.as_bytes()));
    }
    let counts = t
        .num_sub(CHANNELS.map(str::to_owned).to_vec())
        .await
        .unwrap();
    assert_eq!(counts, vec![1, 1, 1]);
    // Queued publishes, pipelined per owner, arrive in order per channel.
    for i in 0..300u32 {
        let ch = CHANNELS[(i % 3) as usize];
        t.publish(ch.to_owned(), Bytes::from(i.to_string()), Mode::Queued, 0)
            .await
            .unwrap();
    }
    let mut last: HashMap<String, i64> = HashMap::new();
    for _ in 0..300 {
        let (ch, p) = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        let n: i64 = std::str::from_utf8(&p).unwrap().parse().unwrap();
        let prev = last.insert(ch.clone(), n).unwrap_or(-1);
        assert!(n > prev, "{ch}: {n} after {prev}");
    }
    t.unsubscribe(Sub::Channel(CHANNELS[0].to_owned()))
        .await
        .unwrap();
    assert_eq!(
        t.num_sub(vec![CHANNELS[0].to_owned()]).await.unwrap(),
        vec![0]
    );
    t.close().await;
}

/// `CLUSTER SETSLOT … NODE` moves the slot of a subscribed channel to another master:
/// Redis sends the subscriber an unsolicited `sunsubscribe`; the channel is subscribed
/// again on its new owner, and never on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_slot_is_subscribed_again_on_its_new_owner() {
    let cluster = start(3, 0).await;
    let (t, mut rx) = transport(&cluster).await;
    let ch = CHANNELS[0];
    t.subscribe(Sub::Channel(ch.to_owned())).await.unwrap();
    until_received(&t, &mut rx, ch).await;
    let topology = t.inner.topology(true).await.unwrap();
    let src = index_of(&cluster, topology.owner(slot(ch)).unwrap());
    let dst = (src + 1) % 3;
    let id = |i: usize| cluster.cli(i, &["cluster", "myid"]).trim().to_owned();
    let (src_id, dst_id) = (id(src), id(dst));
    let s = slot(ch).to_string();
    cluster.cli(dst, &["cluster", "setslot", &s, "importing", &src_id]);
    cluster.cli(src, &["cluster", "setslot", &s, "migrating", &dst_id]);
    let migrated = Instant::now();
    for i in [dst, src, (src + 2) % 3] {
        cluster.cli(i, &["cluster", "setslot", &s, "node", &dst_id]);
    }
    // Well before the reconciler's periodic check (15 s): the `sunsubscribe` Redis
    // pushes on migration is what triggers the move.
    let took = until_received_within(&t, &mut rx, ch, CHECK_EVERY / 3).await;
    eprintln!(
        "slot {s} migrated: delivery resumed after {took:?} ({:?} since SETSLOT)",
        migrated.elapsed()
    );
    let deadline = Instant::now() + T;
    while shard_num_sub_on(&cluster, dst, ch) != "1" || shard_num_sub_on(&cluster, src, ch) != "0" {
        assert!(Instant::now() < deadline, "subscription not moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(t.num_sub(vec![ch.to_owned()]).await.unwrap(), vec![1]);
    t.close().await;
}

/// SIGKILL of the master that owns a subscribed channel: its replica is promoted (node
/// timeout 2 s), and the subscription and publishing follow by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_by_its_replica() {
    let cluster = start(3, 1).await;
    let (t, mut rx) = transport(&cluster).await;
    let ch = CHANNELS[1];
    t.subscribe(Sub::Channel(ch.to_owned())).await.unwrap();
    until_received(&t, &mut rx, ch).await;
    let owner = t
        .inner
        .topology(true)
        .await
        .unwrap()
        .owner(slot(ch))
        .unwrap()
        .clone();
    let killed = Instant::now();
    cluster.nodes()[index_of(&cluster, &owner)].kill();
    let took = until_received(&t, &mut rx, ch).await;
    eprintln!("master {owner:?} killed: delivery resumed after {took:?}");
    let new_owner = t
        .inner
        .topology(true)
        .await
        .unwrap()
        .owner(slot(ch))
        .unwrap()
        .clone();
    assert_ne!(new_owner, owner);
    assert_eq!(t.num_sub(vec![ch.to_owned()]).await.unwrap(), vec![1]);
    assert!(killed.elapsed() < T);
    t.close().await;
}
