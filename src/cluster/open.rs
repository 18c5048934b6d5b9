//! Opens the transport the options name: the seam's one place that knows every
//! implementation and how they combine (Streams over the standalone transport, over a
//! Redis Cluster or over Sentinel).

use crate::error::Error;
use crate::options::{ClusterConfig, Protocol, TransportKind};
use crate::stats::Counters;
use crate::transport::{
    MessageSink, RedisEndpoint, Transport, cluster_classic::ClassicCluster,
    memory::MemoryTransport, redis::RedisTransport, sharded::ShardedTransport,
    streams::StreamsTransport,
};
use std::sync::Arc;

/// The transport of `config`, connected, delivering to `sink`.
pub(super) async fn transport(
    config: &ClusterConfig,
    sink: Arc<dyn MessageSink>,
    counters: Arc<Counters>,
) -> Result<Arc<dyn Transport>, Error> {
    let transport: Arc<dyn Transport> = match &config.transport {
        TransportKind::Redis { url, cluster }
            if matches!(config.protocol(), Protocol::Sharded(_)) =>
        {
            Arc::new(
                ShardedTransport::connect(
                    url,
                    cluster.as_deref().unwrap_or_default(),
                    config.connect_timeout(),
                    config.publish_queue(),
                    sink.clone(),
                    counters.clone(),
                )
                .await?,
            )
        }
        TransportKind::Redis { url, cluster }
            if config.protocol() == Protocol::Streams
                && (cluster.is_some() || config.streams.use_sharded_pub_sub) =>
        {
            streams_over_slots(
                url,
                cluster.as_deref().unwrap_or_default(),
                config,
                sink.clone(),
                counters.clone(),
            )
            .await?
        }
        TransportKind::Redis {
            url,
            cluster: Some(more),
        } => Arc::new(
            ClassicCluster::connect(
                url,
                more,
                config.connect_timeout(),
                config.publish_queue(),
                sink.clone(),
                counters.clone(),
            )
            .await?,
        ),
        TransportKind::Redis { url, cluster: None } => {
            let inner = RedisTransport::connect(
                url,
                config.connect_timeout(),
                config.publish_queue(),
                sink.clone(),
                counters.clone(),
            )
            .await?;
            standalone(inner, config, sink.clone(), counters.clone()).await?
        }
        TransportKind::Sentinel(spec) => {
            let inner = RedisTransport::connect_sentinel(
                spec,
                config.connect_timeout(),
                config.publish_queue(),
                sink.clone(),
                counters.clone(),
            )
            .await?;
            standalone(inner, config, sink.clone(), counters.clone()).await?
        }
        TransportKind::InProcess(bus) => Arc::new(MemoryTransport::connect(
            bus,
            sink.clone(),
            counters.clone(),
        )),
    };
    Ok(transport)
}

/// The standalone transport as it is (classic protocol), or carrying the Streams one.
async fn standalone(
    inner: RedisTransport,
    config: &ClusterConfig,
    sink: Arc<dyn MessageSink>,
    counters: Arc<Counters>,
) -> Result<Arc<dyn Transport>, Error> {
    if config.protocol() != Protocol::Streams {
        return Ok(Arc::new(inner));
    }
    let streams = StreamsTransport::over(
        inner,
        config.key(),
        &config.streams,
        config.connect_timeout(),
        sink,
        counters,
    )
    .await?;
    Ok(Arc::new(streams))
}

/// The Streams transport over a Redis Cluster (or sharded pub/sub on one Redis): the
/// sharded transport writes the entries on each stream's master; the pub/sub part is
/// that same transport (`use_sharded_pub_sub`) or the classic protocol over the cluster.
async fn streams_over_slots(
    url: &RedisEndpoint,
    more: &[String],
    config: &ClusterConfig,
    sink: Arc<dyn MessageSink>,
    counters: Arc<Counters>,
) -> Result<Arc<dyn Transport>, Error> {
    let writer = Arc::new(
        ShardedTransport::connect(
            url,
            more,
            config.connect_timeout(),
            config.publish_queue(),
            sink.clone(),
            counters.clone(),
        )
        .await?,
    );
    let sharded = config.streams.use_sharded_pub_sub;
    let pubsub: Arc<dyn Transport> = if sharded {
        writer.clone()
    } else {
        match ClassicCluster::connect(
            url,
            more,
            config.connect_timeout(),
            config.publish_queue(),
            sink.clone(),
            counters.clone(),
        )
        .await
        {
            Ok(c) => Arc::new(c),
            Err(e) => {
                writer.close().await;
                return Err(e);
            }
        }
    };
    let streams = StreamsTransport::over_slots(
        pubsub,
        writer,
        !sharded,
        config.key(),
        &config.streams,
        config.connect_timeout(),
        sink,
        counters,
    )
    .await?;
    Ok(Arc::new(streams))
}
