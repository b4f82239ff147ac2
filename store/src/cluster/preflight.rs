//! What fleet mode needs of the cluster's configuration, checked at connect: no primary
//! may evict keys under memory pressure. Every record, index and part has an expiry, so
//! any `allkeys-*` or `volatile-*` policy may drop acknowledged mail before its time;
//! with `noeviction` a full primary refuses writes instead, which the ingress answers 451.

use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};

use super::{Cluster, ClusterError};

/// The one eviction policy that never drops a key before its expiry.
pub(crate) const POLICY_SAFE: &str = "noeviction";

/// Reads `maxmemory-policy` on every primary: an error naming the first that may evict;
/// a primary that does not say (`CONFIG` renamed or refused, as managed services do) is
/// logged, not refused.
pub(crate) async fn check_eviction(conn: &mut ClusterConnection) -> Result<(), ClusterError> {
    for (node, policy) in read(conn).await? {
        match policy {
            Some(p) if p == POLICY_SAFE => {}
            Some(p) => return Err(ClusterError::Evicting { node, policy: p }),
            None => tracing::warn!(
                %node,
                "could not read maxmemory-policy on this primary; it must be noeviction, or \
                 memory pressure may drop acknowledged mail"
            ),
        }
    }
    Ok(())
}

/// Each primary's `maxmemory-policy` (`None` where it does not say).
pub(crate) async fn read(
    conn: &mut ClusterConnection,
) -> Result<Vec<(String, Option<String>)>, ClusterError> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg("maxmemory-policy");
    let route = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let reply = conn.route_command(cmd, route).await?;
    Ok(policies(&reply))
}

impl Cluster {
    /// Reads every primary's eviction policy again (for the heartbeat: a policy changed
    /// after start); how many may evict, kept for `/metrics` and logged when it changes.
    pub async fn check_eviction(&self) -> Result<u64, ClusterError> {
        let policies = self.run(|mut c| async move { read(&mut c).await }).await?;
        let evicting: Vec<(String, String)> = policies
            .into_iter()
            .filter_map(|(node, p)| Some((node, p?)))
            .filter(|(_, p)| p != POLICY_SAFE)
            .collect();
        let n = evicting.len() as u64;
        if self.health.set_evicting(n) != n {
            for (node, policy) in &evicting {
                tracing::error!(
                    %node,
                    %policy,
                    "a primary may evict keys: acknowledged mail can be lost before its expiry; \
                     set maxmemory-policy noeviction"
                );
            }
            if n == 0 {
                tracing::info!("every primary is noeviction again");
            }
        }
        Ok(n)
    }
}

/// Per primary of a multi-node `CONFIG GET maxmemory-policy` reply, its policy (`None`
/// when its answer is an error or has no value).
fn policies(reply: &Value) -> Vec<(String, Option<String>)> {
    let Value::Map(nodes) = reply else {
        return Vec::new();
    };
    nodes
        .iter()
        .map(|(node, answer)| {
            (
                redis::from_redis_value_ref(node).unwrap_or_default(),
                policy(answer),
            )
        })
        .collect()
}

/// The value in one node's `CONFIG GET` answer (`[name, value]`, or a map in RESP3).
fn policy(answer: &Value) -> Option<String> {
    match answer {
        Value::Array(f) => redis::from_redis_value_ref(f.get(1)?).ok(),
        Value::Map(f) => redis::from_redis_value_ref(&f.first()?.1).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn each_primarys_policy_is_read_from_the_reply() {
        // Goal: the per-node reply yields each primary's policy, and an error or an
        // empty answer is "unknown", not a policy. Method: replies as redis-rs shapes them.
        let reply = Value::Map(vec![
            (
                bulk("a:1"),
                Value::Array(vec![bulk("maxmemory-policy"), bulk("noeviction")]),
            ),
            (
                bulk("b:2"),
                Value::Map(vec![(bulk("maxmemory-policy"), bulk("allkeys-lru"))]),
            ),
            (bulk("c:3"), Value::Array(vec![])),
        ]);
        assert_eq!(
            policies(&reply),
            vec![
                ("a:1".to_owned(), Some("noeviction".to_owned())),
                ("b:2".to_owned(), Some("allkeys-lru".to_owned())),
                ("c:3".to_owned(), None),
            ]
        );
        assert!(policies(&Value::Nil).is_empty());
    }
}
