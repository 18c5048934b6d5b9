//! Defaults, builder and validation of the options.

use super::*;

#[test]
fn defaults_match_node() {
    let o = ClusterOptions::new("redis://127.0.0.1").build().unwrap();
    assert_eq!(o.key(), "socket.io");
    assert_eq!(o.requests_timeout(), Duration::from_millis(5000));
    assert_eq!(o.connect_timeout(), Duration::from_secs(5));
    assert_eq!(o.publish_queue(), 8192);
    assert_eq!(o.max_message_size(), 16 * 1024 * 1024);
    assert!(!o.publish_on_specific_response_channel());
    assert_eq!(o.heartbeat_interval(), Duration::from_secs(2));
    assert_eq!(o.heartbeat_timeout(), Duration::from_secs(8));
    assert!(!o.count_peers_only());
    assert_eq!(o.max_node_stand_ins(), 65_536);
    assert_eq!(o.redis_url().as_deref(), Some("redis://127.0.0.1"));
    assert!(o.tls_root_cert().is_none());
    let d = ClusterOptions::default().build().unwrap();
    assert_eq!(d.redis_url().as_deref(), Some("redis://127.0.0.1:6379"));
}

#[test]
fn debug_hides_password() {
    let o = ClusterOptions::new("redis://alice:s3cret@host:6380/2");
    let dbg = format!("{o:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
    assert!(dbg.contains("redis://alice:***@host:6380/2"), "{dbg}");
    assert!(!format!("{:?}", ClusterOptions::new("rediss://pw@h")).contains("pw@"));
}

/// A syntactically valid certificate (any will do: only the combination is checked).
const PEM_FOR_TEST: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ3g=\n-----END CERTIFICATE-----\n";

#[test]
fn a_config_error_keeps_its_cause() {
    let pem = "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n";
    let err = ClusterOptions::new("rediss://h")
        .tls_root_cert(pem)
        .build()
        .unwrap_err();
    let config = std::error::Error::source(&err).expect("the ConfigError");
    assert!(std::error::Error::source(config).is_some(), "{err}");
}

#[test]
fn invalid_options_fail() {
    let invalid = [
        ClusterOptions::new("redis://h").key(""),
        ClusterOptions::new("redis://h").publish_queue(0),
        ClusterOptions::new("redis://h").requests_timeout(Duration::ZERO),
        ClusterOptions::new("redis://h").heartbeat(Duration::from_secs(2), Duration::from_secs(2)),
        ClusterOptions::new("rediss://h").tls_root_cert("not a pem"),
        ClusterOptions::new("REDISS://h").tls_root_cert("not a pem"),
        ClusterOptions::new("redis://h").tls_root_cert(PEM_FOR_TEST),
    ];
    for o in invalid {
        let dbg = format!("{o:?}");
        assert!(matches!(o.build(), Err(Error::Config(_))), "{dbg}");
    }
}

#[test]
fn sentinel_options_are_checked_and_never_show_a_password() {
    let urls = [
        "redis://:sentinel-pw@127.0.0.1:26379",
        "redis://:sentinel-pw@127.0.0.1:26380",
    ];
    let o = ClusterOptions::sentinel(urls, "mymaster")
        .master_auth(Some("app"), "master-pw")
        .build()
        .unwrap();
    let (sentinels, name) = o.sentinel().unwrap();
    assert_eq!(name, "mymaster");
    assert_eq!(sentinels[0], "redis://:***@127.0.0.1:26379");
    assert_eq!(o.redis_url(), None);
    let dbg = format!("{o:?}");
    assert!(!dbg.contains("-pw"), "{dbg}");
    assert!(dbg.contains("mymaster"), "{dbg}");

    let fails = |o: ClusterOptions, why: &str| {
        let err = o.build().expect_err(why).to_string();
        assert!(err.contains(why), "{err}");
    };
    fails(
        ClusterOptions::sentinel(Vec::<String>::new(), "m"),
        "at least one sentinel",
    );
    fails(ClusterOptions::sentinel(["redis://h:1"], ""), "master name");
    fails(
        ClusterOptions::sentinel(["redis://:a@h:1", "redis://:b@h:2"], "m"),
        "same credentials",
    );
    fails(
        ClusterOptions::sentinel(["redis+unix:///tmp/s"], "m"),
        "TCP",
    );
    fails(
        ClusterOptions::sentinel(["not a url"], "m"),
        "invalid sentinel URL",
    );
    fails(
        ClusterOptions::sentinel(["redis://h:1"], "m").tls_root_cert(b"x".to_vec()),
        "neither",
    );
    fails(
        ClusterOptions::sentinel(["redis://h:1"], "m").sharded(SubscriptionMode::Static),
        "classic and streams protocols only",
    );
    let sharded_streams = StreamsOptions {
        use_sharded_pub_sub: true,
        ..Default::default()
    };
    fails(
        ClusterOptions::sentinel(["redis://h:1"], "m").streams(sharded_streams.clone()),
        "use_sharded_pub_sub is for a Redis Cluster",
    );
    fails(
        ClusterOptions::in_process(&InProcessBus::new()).streams(StreamsOptions::default()),
        "the streams protocol needs Redis",
    );
    // Streams over a Redis Cluster and over one Redis, with either pub/sub part.
    for streams in [StreamsOptions::default(), sharded_streams] {
        ClusterOptions::redis_cluster(["redis://a:1", "redis://b:1"])
            .streams(streams.clone())
            .build()
            .unwrap();
        ClusterOptions::new("redis://h")
            .streams(streams)
            .build()
            .unwrap();
    }
    fails(
        ClusterOptions::new("redis://h").master_auth(None, "pw"),
        "master_auth is an option of ClusterOptions::sentinel",
    );
    fails(
        ClusterOptions::new("redis://h").master_tls(true),
        "master_tls is an option",
    );
}
