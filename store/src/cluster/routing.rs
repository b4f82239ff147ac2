//! Which primary holds which hash slot, as the write path groups a batch: redis-rs keeps
//! its own slot map private, so the write path reads `CLUSTER SLOTS` itself (at start and
//! after any failed write pipeline) and sends one pipeline per primary of a batch.
//!
//! The map only groups commands; redis-rs still routes each pipeline and follows
//! redirects. A stale map costs a failed pipeline and one retry, never a wrong answer:
//! every command runs only on the primary that owns its slot (Redis answers `MOVED`
//! otherwise).

use std::collections::HashMap;

use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};

use super::ClusterError;

/// The primary of each hash slot the cluster has assigned.
#[derive(Clone, Debug, Default)]
pub(crate) struct SlotMap {
    /// The primaries, `host:port`.
    primaries: Vec<String>,
    /// Slot -> index in `primaries` (redis-rs's [`Slot`] has no public number, so the
    /// map is keyed by the slot itself: 16 384 entries at most, rebuilt only on a refresh).
    slots: HashMap<Slot, usize>,
}

impl SlotMap {
    /// Reads the map from any primary (`CLUSTER SLOTS`).
    pub(crate) async fn fetch(conn: &mut ClusterConnection) -> Result<Self, ClusterError> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
        let reply = conn.route_command(cmd, route).await?;
        Ok(Self::parse(&reply))
    }

    /// The map in a `CLUSTER SLOTS` reply; malformed entries are skipped (their slots
    /// then have no known primary and are written one slot at a time).
    pub(crate) fn parse(reply: &Value) -> Self {
        let Value::Array(entries) = reply else {
            return Self::default();
        };
        let mut map = Self::default();
        let ranges = entries.iter().filter_map(|e| {
            let Value::Array(f) = e else { return None };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(node))) =
                (f.first(), f.get(1), f.get(2))
            else {
                return None;
            };
            let host: String = redis::from_redis_value_ref(node.first()?).ok()?;
            let Some(Value::Int(port)) = node.get(1) else {
                return None;
            };
            Some((
                u16::try_from(*first).ok()?,
                u16::try_from(*last).ok()?,
                format!("{host}:{port}"),
            ))
        });
        for (first, last, node) in ranges {
            let i = match map.primaries.iter().position(|p| *p == node) {
                Some(i) => i,
                None => {
                    map.primaries.push(node);
                    map.primaries.len() - 1
                }
            };
            for slot in (first..=last).filter_map(Slot::new) {
                map.slots.insert(slot, i);
            }
        }
        map
    }

    /// The primary (`host:port`) holding `slot`, if the map knows one.
    pub(crate) fn primary(&self, slot: Slot) -> Option<&str> {
        self.slots
            .get(&slot)
            .and_then(|&i| self.primaries.get(i))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: i64, last: i64, host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ]),
        ])
    }

    #[test]
    fn slots_map_to_the_primary_of_their_range_and_gaps_to_none() {
        // Goal: a `CLUSTER SLOTS` reply (ranges in any order, one malformed) maps every
        // slot inside a range to its primary and slots outside every range to none.
        // Method: parse a hand-built reply in the shape Redis 7.0 sends, probe the edges.
        let reply = Value::Array(vec![
            range(10_923, 16_383, "127.0.0.1", 7002),
            range(0, 5_460, "127.0.0.1", 7000),
            Value::Array(vec![Value::Int(5_461)]),
            range(5_462, 10_922, "127.0.0.1", 7001),
        ]);
        let map = SlotMap::parse(&reply);
        let at = |s: u16| map.primary(Slot::new(s).expect("a slot number"));
        assert_eq!(at(0), Some("127.0.0.1:7000"));
        assert_eq!(at(5_460), Some("127.0.0.1:7000"));
        assert_eq!(at(5_461), None, "the malformed range is unknown");
        assert_eq!(at(5_462), Some("127.0.0.1:7001"));
        assert_eq!(at(10_923), Some("127.0.0.1:7002"));
        assert_eq!(at(16_383), Some("127.0.0.1:7002"));
        let one = Slot::new(1).expect("a slot number");
        assert_eq!(SlotMap::parse(&Value::Nil).primary(one), None);
    }
}
