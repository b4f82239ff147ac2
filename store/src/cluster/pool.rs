//! The fleet's shared domain pool and its rotation lease, all in one slot (`{fleet}`):
//! each domain's lifecycle state and record, the rotation policy, the audit log and a
//! version counter bumped by every write, so a node can tell by one GET whether anything
//! changed. Writes go through `tempmx_pool_write`, which refuses a rotation write whose
//! lease epoch is not the current one (the fence). The records are the control plane's
//! JSON; this module only stores them.

use std::collections::HashMap;

use super::functions::{Function, fcall};
use super::{Cluster, ClusterError};
use crate::clock::{Clock, SystemClock};

/// The rotation lease: `<node> <epoch>`, with a PX expiry.
const LEASE_KEY: &str = "tmx:{fleet}:lease";
/// Bumped by every take-over of the lease.
const EPOCH_KEY: &str = "tmx:{fleet}:lease:epoch";
/// Domain -> state name (or `deleted`).
const POOL_KEY: &str = "tmx:{fleet}:pool";
/// Bumped by every write of the pool.
const VERSION_KEY: &str = "tmx:{fleet}:pool:v";
/// Domain -> the domain's record (JSON).
const RECORDS_KEY: &str = "tmx:{fleet}:pool:d";
/// The rotation policy (JSON).
const POLICY_KEY: &str = "tmx:{fleet}:policy";
/// The audit log: JSON entries, oldest first, capped.
const AUDIT_KEY: &str = "tmx:{fleet}:audit";
/// The last audit entry's id.
const AUDIT_ID_KEY: &str = "tmx:{fleet}:audit:id";
/// The state name the pool hash keeps for a deleted domain.
pub const DELETED: &str = "deleted";

/// The lease as one attempt to take or renew it left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHold {
    /// Whether this node holds it now.
    pub held: bool,
    /// The holder's epoch.
    pub epoch: u64,
    /// The holder's node name.
    pub holder: String,
}

/// One write of the pool: what changed, made by an operator (no epoch) or by the rotation
/// planner and blocklist checks of the lease holder (its epoch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolWrite {
    /// The writer's lease epoch; `None` for an operator's change, which is never fenced.
    pub epoch: Option<u64>,
    /// Changed domains: (name, state, record JSON).
    pub domains: Vec<(String, String, String)>,
    /// Deleted domains.
    pub deleted: Vec<String>,
    /// The new rotation policy (JSON), if it changed.
    pub policy: Option<String>,
    /// Audit entries (JSON objects; the cluster adds `id` and `node`).
    pub audit: Vec<String>,
}

/// Everything the pool holds but the audit log, read at one version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolView {
    /// The version read.
    pub version: u64,
    /// Domain -> state name ([`DELETED`] for a deleted domain).
    pub states: HashMap<String, String>,
    /// Domain -> record JSON.
    pub records: HashMap<String, String>,
    /// The rotation policy (JSON), once one was written.
    pub policy: Option<String>,
}

impl Cluster {
    /// Takes the rotation lease for `ttl_ms` when nobody holds it, or renews it when this
    /// node does; says who holds it after the attempt.
    pub async fn lease_take(&self, ttl_ms: u64) -> Result<LeaseHold, ClusterError> {
        let node = self.opts.node.clone();
        self.run(move |mut c| async move {
            let (held, epoch, holder): (i64, u64, String) = fcall(Function::Lease)
                .arg(2)
                .arg(LEASE_KEY)
                .arg(EPOCH_KEY)
                .arg(&node)
                .arg(ttl_ms.max(1))
                .query_async(&mut c)
                .await?;
            Ok(LeaseHold {
                held: held == 1,
                epoch,
                holder,
            })
        })
        .await
    }

    /// Gives the lease up if this node still holds it at `epoch` (a stopping node, so
    /// another takes over at once); whether it did.
    pub async fn lease_release(&self, epoch: u64) -> Result<bool, ClusterError> {
        let node = self.opts.node.clone();
        self.run(move |mut c| async move {
            let released: i64 = fcall(Function::LeaseRelease)
                .arg(1)
                .arg(LEASE_KEY)
                .arg(&node)
                .arg(epoch)
                .query_async(&mut c)
                .await?;
            Ok(released == 1)
        })
        .await
    }

    /// The lease's holder and epoch, if anyone holds it.
    pub async fn lease_holder(&self) -> Result<Option<(String, u64)>, ClusterError> {
        self.run(move |mut c| async move {
            let v: Option<String> = redis::cmd("GET").arg(LEASE_KEY).query_async(&mut c).await?;
            Ok(v.and_then(|v| {
                let (node, epoch) = v.rsplit_once(' ')?;
                Some((node.to_owned(), epoch.parse().ok()?))
            }))
        })
        .await
    }

    /// Writes `w` to the pool, keeping the newest `audit_max` audit entries; the pool's new
    /// version. [`ClusterError::Fenced`] when `w` carries an epoch that is not the lease's.
    pub async fn pool_write(&self, w: &PoolWrite, audit_max: usize) -> Result<u64, ClusterError> {
        let node = self.opts.node.clone();
        let now_secs = SystemClock.now_ms() / 1000;
        let mut cmd = fcall(Function::PoolWrite);
        cmd.arg(7);
        for key in [
            LEASE_KEY,
            VERSION_KEY,
            POOL_KEY,
            RECORDS_KEY,
            POLICY_KEY,
            AUDIT_KEY,
            AUDIT_ID_KEY,
        ] {
            cmd.arg(key);
        }
        match w.epoch {
            Some(e) => cmd.arg(e),
            None => cmd.arg("-"),
        };
        cmd.arg(&node)
            .arg(audit_max.max(1))
            .arg(now_secs)
            .arg(w.domains.len());
        for (name, state, record) in &w.domains {
            cmd.arg(name).arg(state).arg(record);
        }
        cmd.arg(w.deleted.len()).arg(&w.deleted);
        cmd.arg(w.policy.as_deref().unwrap_or(""));
        for entry in &w.audit {
            cmd.arg(entry);
        }
        let epoch = w.epoch;
        self.run(move |mut c| async move {
            match cmd.query_async::<u64>(&mut c).await {
                Ok(v) => Ok(v),
                Err(e) if e.code() == Some("FENCED") => {
                    Err(ClusterError::Fenced(epoch.unwrap_or(0)))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// The pool's version (0 before the first write).
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

    /// The pool's version, states, records and policy, read together.
    pub async fn pool_view(&self) -> Result<PoolView, ClusterError> {
        self.run(move |mut c| async move {
            type Read = (
                Option<u64>,
                HashMap<String, String>,
                HashMap<String, String>,
                Option<String>,
            );
            let (v, states, records, policy): Read = redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(VERSION_KEY)
                .cmd("HGETALL")
                .arg(POOL_KEY)
                .cmd("HGETALL")
                .arg(RECORDS_KEY)
                .cmd("GET")
                .arg(POLICY_KEY)
                .query_async(&mut c)
                .await?;
            Ok(PoolView {
                version: v.unwrap_or(0),
                states,
                records,
                policy,
            })
        })
        .await
    }

    /// The fleet's audit log (JSON entries with `id` and `node`), oldest first.
    pub async fn pool_audit(&self) -> Result<Vec<String>, ClusterError> {
        self.run(move |mut c| async move {
            let entries: Vec<String> = redis::cmd("LRANGE")
                .arg(AUDIT_KEY)
                .arg(0)
                .arg(-1)
                .query_async(&mut c)
                .await?;
            Ok(entries)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::TestCluster;
    use super::*;
    use crate::cluster::ClusterOptions;

    fn connect(tc: &TestCluster, node: &str) -> Cluster {
        Cluster::connect(ClusterOptions::new(tc.seeds(), node.to_owned())).expect("connects")
    }

    #[test]
    fn one_node_holds_the_lease_and_a_stale_holder_is_fenced() {
        // Goal: the lease goes to one node at a time, is renewed only by its holder, moves
        // to another node (with a new epoch) once it lapses, and a write made with the old
        // epoch is refused while operator writes and the new holder's go through, each
        // bumping the version. Method: a real 6-node cluster, two connections with
        // different node names calling the Redis functions directly; the lapse is a real
        // 300 ms PX expiry.
        let tc = TestCluster::start().expect("cluster starts");
        let a = connect(&tc, "mx-a");
        let b = connect(&tc, "mx-b");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let first = a.lease_take(300).await.expect("take");
            assert!(first.held, "{first:?}");
            let other = b.lease_take(300).await.expect("try");
            assert_eq!(
                other,
                LeaseHold {
                    held: false,
                    epoch: first.epoch,
                    holder: "mx-a".into()
                }
            );
            let renewed = a.lease_take(300).await.expect("renew");
            assert_eq!(renewed, first, "renewal keeps the epoch");
            assert_eq!(
                a.lease_holder().await.expect("read"),
                Some(("mx-a".into(), first.epoch))
            );

            let write = |epoch, domain: &str| PoolWrite {
                epoch,
                domains: vec![(domain.into(), "active".into(), "{}".into())],
                audit: vec![format!(r#"{{"domain":"{domain}","at":1765000000}}"#)],
                ..PoolWrite::default()
            };
            let v1 = a
                .pool_write(&write(Some(first.epoch), "x.test"), 10)
                .await
                .expect("holder writes");

            // A lapses (no renewal for longer than 300 ms); B takes over with a new epoch.
            tokio::time::sleep(std::time::Duration::from_millis(450)).await;
            let taken = b.lease_take(300).await.expect("take over");
            assert!(taken.held && taken.epoch > first.epoch, "{taken:?}");
            let stale = a.lease_take(300).await.expect("try again");
            assert!(!stale.held && stale.holder == "mx-b", "{stale:?}");

            let refused = a.pool_write(&write(Some(first.epoch), "y.test"), 10).await;
            assert!(
                matches!(refused, Err(ClusterError::Fenced(e)) if e == first.epoch),
                "{refused:?}"
            );
            let v2 = a
                .pool_write(&write(None, "z.test"), 10)
                .await
                .expect("operator writes");
            let v3 = b
                .pool_write(&write(Some(taken.epoch), "w.test"), 10)
                .await
                .expect("new holder writes");
            assert!(v1 < v2 && v2 < v3, "{v1} {v2} {v3}");
            assert!(
                v1 > 1_700_000_000,
                "the version starts at the unix time: {v1}"
            );

            let view = b.pool_view().await.expect("view");
            assert_eq!(view.version, v3);
            assert!(
                !view.states.contains_key("y.test"),
                "the fenced write left nothing"
            );
            for d in ["x.test", "z.test", "w.test"] {
                assert_eq!(
                    view.states.get(d).map(String::as_str),
                    Some("active"),
                    "{d}"
                );
            }
            let audit = a.pool_audit().await.expect("audit");
            let nodes: Vec<(u64, String)> = audit
                .iter()
                .map(|e| {
                    let v: serde_json::Value = serde_json::from_str(e).expect("json");
                    (
                        v["id"].as_u64().expect("id"),
                        v["node"].as_str().expect("node").to_owned(),
                    )
                })
                .collect();
            assert_eq!(
                nodes,
                [(1, "mx-a".into()), (2, "mx-a".into()), (3, "mx-b".into())]
            );

            let delete = PoolWrite {
                deleted: vec!["z.test".into()],
                ..PoolWrite::default()
            };
            b.pool_write(&delete, 2).await.expect("delete");
            let view = a.pool_view().await.expect("view");
            assert_eq!(view.states.get("z.test").map(String::as_str), Some(DELETED));
            assert!(!view.records.contains_key("z.test"));
            assert_eq!(a.pool_audit().await.expect("audit").len(), 2, "capped");

            assert!(!a.lease_release(first.epoch).await.expect("release"));
            assert!(b.lease_release(taken.epoch).await.expect("release"));
            assert_eq!(a.lease_holder().await.expect("read"), None);
        });
    }
}
