//! Fleet membership: each node heartbeats, and any node can list who is up.
//!
//! Two keys in one slot (hash tag `{fleet}`), written in one pipeline per heartbeat:
//! `tmx:{fleet}:up:<node>` (a string with a TTL: the node is up while it exists) and the
//! hash `tmx:{fleet}:nodes` (node -> `<version> <last heartbeat ms>`, kept after a node
//! stops, so a stopped node shows as gone rather than vanishing). Entries not refreshed
//! for [`FORGET_AFTER_MS`] are dropped by the next heartbeat of any node.

use std::collections::HashMap;

use serde::Serialize;

use super::{Cluster, ClusterError};
use crate::clock::{Clock, SystemClock};

/// The hash of every node's last heartbeat.
const NODES_KEY: &str = "tmx:{fleet}:nodes";
/// Prefix of each node's up key.
const UP_PREFIX: &str = "tmx:{fleet}:up:";
/// A node not heard from for a day is forgotten.
pub const FORGET_AFTER_MS: u64 = 24 * 3600 * 1000;

/// One node as the fleet sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The node's `[fleet] node` name.
    pub node: String,
    /// The tempmx version it runs.
    pub version: String,
    /// Its last heartbeat (ms since epoch).
    pub last_seen_ms: u64,
    /// Whether its heartbeat key is still alive (it heartbeat within its TTL).
    pub up: bool,
}

impl Cluster {
    /// Records this node's heartbeat: up for `ttl_ms` from now, running `version`.
    pub async fn heartbeat(&self, version: &str, ttl_ms: u64) -> Result<(), ClusterError> {
        let node = self.opts.node.clone();
        let value = format!("{version} {}", SystemClock.now_ms());
        self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(format!("{UP_PREFIX}{node}"))
                .arg(&value)
                .arg("PX")
                .arg(ttl_ms.max(1))
                .ignore()
                .cmd("HSET")
                .arg(NODES_KEY)
                .arg(&node)
                .arg(&value)
                .ignore()
                .query_async::<()>(&mut c)
                .await?;
            Ok(())
        })
        .await
    }

    /// Every node heard from in the last day, by name, with whether it is up now.
    pub async fn members(&self) -> Result<Vec<Member>, ClusterError> {
        self.run(move |mut c| async move {
            let all: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(NODES_KEY)
                .query_async(&mut c)
                .await?;
            let now = SystemClock.now_ms();
            let mut members: Vec<Member> = all
                .iter()
                .filter_map(|(node, v)| {
                    let (version, seen) = v.split_once(' ')?;
                    Some(Member {
                        node: node.clone(),
                        version: version.to_owned(),
                        last_seen_ms: seen.parse().ok()?,
                        up: false,
                    })
                })
                .collect();
            let stale: Vec<&String> = members
                .iter()
                .filter(|m| now.saturating_sub(m.last_seen_ms) > FORGET_AFTER_MS)
                .map(|m| &m.node)
                .collect();
            if !stale.is_empty() {
                redis::cmd("HDEL")
                    .arg(NODES_KEY)
                    .arg(&stale)
                    .query_async::<()>(&mut c)
                    .await?;
            }
            members.retain(|m| now.saturating_sub(m.last_seen_ms) <= FORGET_AFTER_MS);
            members.sort_by(|a, b| a.node.cmp(&b.node));
            if members.is_empty() {
                return Ok(members);
            }
            let keys: Vec<String> = members
                .iter()
                .map(|m| format!("{UP_PREFIX}{}", m.node))
                .collect();
            let up: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
            for (m, u) in members.iter_mut().zip(up) {
                m.up = u.is_some();
            }
            Ok(members)
        })
        .await
    }
}
