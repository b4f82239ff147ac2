//! The fleet's shared view of the domain pool: each domain's lifecycle state in one hash
//! with a version counter beside it (one slot, `{fleet}`), so a node can tell by one GET
//! whether anything changed. The states are the control plane's names; this module only
//! stores them.

use std::collections::HashMap;

use super::{Cluster, ClusterError};

/// Domain -> state name.
const POOL_KEY: &str = "tmx:{fleet}:pool";
/// Bumped by every change of the pool hash.
const VERSION_KEY: &str = "tmx:{fleet}:pool:v";

impl Cluster {
    /// Records `domain` in `state`; the pool's new version.
    pub async fn pool_set(&self, domain: &str, state: &str) -> Result<u64, ClusterError> {
        let (domain, state) = (domain.to_owned(), state.to_owned());
        self.run(move |mut c| async move {
            let (version,): (u64,) = redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(POOL_KEY)
                .arg(&domain)
                .arg(&state)
                .ignore()
                .cmd("INCR")
                .arg(VERSION_KEY)
                .query_async(&mut c)
                .await?;
            Ok(version)
        })
        .await
    }

    /// The pool's version (0 before the first change).
    pub async fn pool_version(&self) -> Result<u64, ClusterError> {
        self.run(move |mut c| async move {
            let v: Option<u64> = redis::cmd("GET")
                .arg(VERSION_KEY)
                .query_async(&mut c)
                .await?;
            Ok(v.unwrap_or(0))
        })
        .await
    }

    /// The pool's version and every domain's state, read together.
    pub async fn pool(&self) -> Result<(u64, HashMap<String, String>), ClusterError> {
        self.run(move |mut c| async move {
            let (v, states): (Option<u64>, HashMap<String, String>) = redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(VERSION_KEY)
                .cmd("HGETALL")
                .arg(POOL_KEY)
                .query_async(&mut c)
                .await?;
            Ok((v.unwrap_or(0), states))
        })
        .await
    }
}
