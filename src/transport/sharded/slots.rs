//! Which master of a Redis Cluster owns a channel: the key slot (CRC16/XMODEM of the
//! channel, or of its `{hash tag}`, modulo 16384, as Redis computes it) and the slot
//! ranges `CLUSTER SLOTS` reports.

/// Slots in a Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;

/// The key slot of `channel` (sharded pub/sub routes channels like keys).
pub(crate) fn slot(channel: &str) -> u16 {
    let key = channel.as_bytes();
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        // An empty tag `{}` does not count: the whole key is hashed.
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS
}

/// One node, as `host:port`.
pub(crate) type Addr = (String, u16);

/// The masters of a cluster and the slots each owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Topology {
    /// `(first slot, last slot, master)`, sorted by first slot.
    ranges: Vec<(u16, u16, Addr)>,
}

impl Topology {
    /// Reads a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ..], replicas..], ..]`.
    /// An empty host (a node that does not know its address yet) is `seed_host`.
    pub(crate) fn from_cluster_slots(reply: &redis::Value, seed_host: &str) -> Option<Self> {
        let redis::Value::Array(entries) = reply else {
            return None;
        };
        let mut ranges = Vec::with_capacity(entries.len());
        for e in entries {
            let redis::Value::Array(fields) = e else {
                return None;
            };
            let int = |v: &redis::Value| match v {
                redis::Value::Int(i) => u16::try_from(*i).ok(),
                _ => None,
            };
            let (start, end) = (int(fields.first()?)?, int(fields.get(1)?)?);
            let redis::Value::Array(master) = fields.get(2)? else {
                return None;
            };
            let host = match master.first()? {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                redis::Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let host = if host.is_empty() {
                seed_host.to_owned()
            } else {
                host
            };
            ranges.push((start, end, (host, int(master.get(1)?)?)));
        }
        ranges.sort();
        Some(Topology { ranges })
    }

    /// A standalone Redis: every slot on `addr` (sharded pub/sub works there too).
    pub(crate) fn whole(addr: Addr) -> Self {
        Topology {
            ranges: vec![(0, SLOTS - 1, addr)],
        }
    }

    /// The master that owns `slot`, if any does.
    pub(crate) fn owner(&self, slot: u16) -> Option<&Addr> {
        let i = self.ranges.partition_point(|(start, _, _)| *start <= slot);
        let (start, end, addr) = self.ranges.get(i.checked_sub(1)?)?;
        (*start <= slot && slot <= *end).then_some(addr)
    }

    /// Every master, once each.
    pub(crate) fn masters(&self) -> Vec<Addr> {
        let mut out: Vec<Addr> = self.ranges.iter().map(|(_, _, a)| a.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether every slot has an owner.
    pub(crate) fn is_complete(&self) -> bool {
        let mut next = 0u32;
        for (start, end, _) in &self.ranges {
            if u32::from(*start) != next {
                return false;
            }
            next = u32::from(*end) + 1;
        }
        next == u32::from(SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_slots() {
        // Measured on Redis 7.0.15 (CLUSTER KEYSLOT), see the Redis Cluster reference.
        assert_eq!(slot("socket.io#/#"), 13868);
        assert_eq!(slot("socket.io#/admin#"), 4375);
        assert_eq!(slot("socket.io#/#room1#"), 9640);
        // Hash tags: only what is between the first `{` and the next `}`.
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }

    #[test]
    fn cluster_slots_reply_gives_owners() {
        use redis::Value as V;
        let node = |host: &str, port: i64| {
            V::Array(vec![
                V::BulkString(host.as_bytes().to_vec()),
                V::Int(port),
                V::BulkString(b"id".to_vec()),
            ])
        };
        let reply = V::Array(vec![
            V::Array(vec![V::Int(5461), V::Int(10922), node("127.0.0.1", 7002)]),
            V::Array(vec![
                V::Int(0),
                V::Int(5460),
                node("", 7001),
                node("127.0.0.1", 7004),
            ]),
            V::Array(vec![V::Int(10923), V::Int(16383), node("127.0.0.1", 7003)]),
        ]);
        let t = Topology::from_cluster_slots(&reply, "10.0.0.9").unwrap();
        assert!(t.is_complete());
        assert_eq!(t.owner(0), Some(&("10.0.0.9".to_owned(), 7001)));
        assert_eq!(t.owner(5461), Some(&("127.0.0.1".to_owned(), 7002)));
        assert_eq!(t.owner(16383), Some(&("127.0.0.1".to_owned(), 7003)));
        assert_eq!(t.masters().len(), 3);
        let partial = V::Array(vec![V::Array(vec![V::Int(0), V::Int(10), node("a", 1)])]);
        let t = Topology::from_cluster_slots(&partial, "x").unwrap();
        assert!(!t.is_complete());
        assert_eq!(t.owner(11), None);
        assert!(Topology::from_cluster_slots(&V::Nil, "x").is_none());
    }
}
