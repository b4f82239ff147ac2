//! Fleet-wide per-domain counts. Messages: every node adds what its cores accepted to one
//! small hash per domain, and reads the fleet's totals back, so the admin API, the domain
//! listings and the rotation rules (`messages_max`) see every node's mail. Blocklist
//! checks: the lease holder (the one node that checks) writes each domain's tracker state
//! (per list: streak, consecutive answers, errors) and bumps a version; the others read
//! it when the version moves, so every node lists the same checks and a new holder
//! continues the streaks. Live mailboxes: each registration adds one to its domain's
//! bucket of its expiry minute (an extension moves it, a deletion takes it out), and a
//! bucket is dropped when its minute comes, so the live count needs no sweep and the
//! hash holds at most one field per minute of the longest mailbox life. A running sum
//! makes each change or read cost only the minutes since the last call, not the whole
//! hash (every node reads every domain's count each second); the buckets are summed afresh
//! once an hour, as nodes of a build before the sum change them without it.
//!
//! | key | type | holds | expiry |
//! |---|---|---|---|
//! | `tmx:{d:<domain>}:n` | hash | `m` messages received, `at` newest receipt (unix s) | [`COUNT_TTL_SECS`] after its last addition |
//! | `tmx:{d:<domain>}:mb` | hash | expiry minute -> mailboxes expiring in it | its latest bucket's end |
//! | `tmx:{d:<domain>}:mbs` | hash | `t` the buckets' sum, `lo` the first minute not yet dropped | as `:mb` |
//! | `tmx:{d:<domain>}:bl` | string | the tracker's state per list (JSON) | [`CHECKS_TTL_SECS`] after its last write |
//! | `tmx:{fleet}:checks:v` | string | bumped by every write of checks | none |
//!
//! The domain is the hash tag, so its counts have a slot of their own and nodes adding to
//! different domains meet no single hot key. One addition is one `FCALL tempmx_count`
//! (in `share.lua`): the add, the newest time and the expiry in one atomic step. Memory
//! is one hash per domain that got mail in the last [`COUNT_TTL_SECS`].

use futures_util::future::join_all;
use redis::cluster_async::ClusterConnection;

use super::functions::{Function, fcall};
use super::{Cluster, ClusterError};
use crate::clock::{Clock, SystemClock};

/// A domain's counts lapse this long after its last message (a domain silent that long
/// counts from zero again), so deleted domains leave nothing behind.
pub const COUNT_TTL_SECS: u64 = 90 * 86_400;

/// A domain's blocklist checks lapse this long after the lease holder last wrote them
/// (it rewrites them every check cycle).
pub const CHECKS_TTL_SECS: u64 = 7 * 86_400;

/// The version of the fleet's blocklist checks.
const CHECKS_VERSION_KEY: &str = "tmx:{fleet}:checks:v";

/// Messages received for one domain across the fleet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainCount {
    /// Messages with at least one recipient on the domain.
    pub messages: u64,
    /// Receipt time of the newest of them (unix seconds), if any.
    pub last_at: Option<u64>,
}

impl Cluster {
    /// Adds `counts` (domain, messages, newest receipt in unix seconds) to the fleet's,
    /// one call per domain, all at once. An error may leave some added: the caller that
    /// retries them may count a few twice, never none.
    pub async fn add_domain_counts(
        &self,
        counts: Vec<(String, u64, u64)>,
    ) -> Result<(), ClusterError> {
        self.run(move |conn| async move {
            let calls = counts.into_iter().map(|(domain, messages, at)| {
                let mut c = conn.clone();
                async move {
                    fcall(Function::Count)
                        .arg(1)
                        .arg(count_key(&domain))
                        .arg(messages)
                        .arg(at)
                        .arg(COUNT_TTL_SECS)
                        .query_async::<i64>(&mut c)
                        .await
                }
            });
            for r in join_all(calls).await {
                r?;
            }
            Ok(())
        })
        .await
    }

    /// The fleet's counts of `domains`, in their order (zero for a domain without mail).
    pub async fn domain_counts(
        &self,
        domains: Vec<String>,
    ) -> Result<Vec<DomainCount>, ClusterError> {
        self.run(move |conn| async move {
            let read = each_domain::<(Option<u64>, Option<u64>)>(conn, &domains, |d| {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(count_key(d)).arg("m").arg("at");
                cmd
            });
            Ok(read
                .await?
                .into_iter()
                .map(|(messages, last_at)| DomainCount {
                    messages: messages.unwrap_or(0),
                    last_at,
                })
                .collect())
        })
        .await
    }
}

impl Cluster {
    /// Writes the blocklist checks of each domain (`(domain, JSON)`), all at once, then
    /// bumps the checks' version; the new version.
    pub async fn put_domain_checks(
        &self,
        checks: Vec<(String, String)>,
    ) -> Result<u64, ClusterError> {
        self.run(move |conn| async move {
            let writes = checks.into_iter().map(|(domain, json)| {
                let mut c = conn.clone();
                async move {
                    redis::cmd("SET")
                        .arg(domain_key(&domain, "bl"))
                        .arg(json)
                        .arg("EX")
                        .arg(CHECKS_TTL_SECS)
                        .query_async::<()>(&mut c)
                        .await
                }
            });
            for r in join_all(writes).await {
                r?;
            }
            let mut c = conn;
            Ok(redis::cmd("INCR")
                .arg(CHECKS_VERSION_KEY)
                .query_async::<u64>(&mut c)
                .await?)
        })
        .await
    }

    /// The version of the fleet's blocklist checks (0 before the first write).
    pub async fn checks_version(&self) -> Result<u64, ClusterError> {
        self.run(move |mut c| async move {
            Ok(redis::cmd("GET")
                .arg(CHECKS_VERSION_KEY)
                .query_async::<Option<u64>>(&mut c)
                .await?
                .unwrap_or(0))
        })
        .await
    }

    /// The blocklist checks (JSON) of `domains`, in their order; `None` for a domain the
    /// holder has not checked (or whose checks lapsed).
    pub async fn domain_checks(
        &self,
        domains: Vec<String>,
    ) -> Result<Vec<Option<String>>, ClusterError> {
        self.run(move |conn| async move {
            each_domain(conn, &domains, |d| {
                let mut cmd = redis::cmd("GET");
                cmd.arg(domain_key(d, "bl"));
                cmd
            })
            .await
        })
        .await
    }
}

impl Cluster {
    /// Applies `changes` (a mailbox's expiry in ms, +1 or -1) to `domain`'s live
    /// mailboxes; the live mailboxes after them. A mailbox counts until the end of the
    /// minute it expires in. The registry's extend and drop answer the expiry they
    /// replaced, so concurrent changes of one mailbox on two nodes each move the count by
    /// what their own step changed.
    pub async fn change_domain_mailboxes(
        &self,
        domain: &str,
        changes: Vec<(u64, i64)>,
    ) -> Result<u64, ClusterError> {
        let (key, sum) = (domain_key(domain, "mb"), domain_key(domain, "mbs"));
        let now = SystemClock.now_ms();
        let last = changes.iter().map(|(at, _)| *at).max().unwrap_or(now);
        // The key outlives its latest bucket by a minute.
        let life_secs = last.saturating_sub(now) / 1000 + 120;
        self.run(move |mut c| async move {
            let mut cmd = fcall(Function::Mailboxes);
            cmd.arg(2).arg(key).arg(sum).arg(minute(now)).arg(life_secs);
            for (expires_at_ms, delta) in changes {
                // The minute the mailbox ends in (it is live until then).
                cmd.arg(minute(expires_at_ms.saturating_add(59_999)))
                    .arg(delta);
            }
            Ok(cmd.query_async::<u64>(&mut c).await?)
        })
        .await
    }

    /// Live mailboxes of each of `domains`, in their order.
    pub async fn domain_mailboxes(&self, domains: Vec<String>) -> Result<Vec<u64>, ClusterError> {
        let now = minute(SystemClock.now_ms());
        self.run(move |conn| async move {
            each_domain(conn, &domains, |d| {
                let mut cmd = fcall(Function::Mailboxes);
                cmd.arg(2)
                    .arg(domain_key(d, "mb"))
                    .arg(domain_key(d, "mbs"))
                    .arg(now)
                    .arg(0);
                cmd
            })
            .await
        })
        .await
    }
}

/// Sends the command `cmd` builds for each of `domains`, all at once over `conn` (each
/// to its domain's slot); the replies in their order.
async fn each_domain<T: redis::FromRedisValue + Send + 'static>(
    conn: ClusterConnection,
    domains: &[String],
    cmd: impl Fn(&str) -> redis::Cmd,
) -> Result<Vec<T>, ClusterError> {
    let calls = domains.iter().map(|d| {
        let mut c = conn.clone();
        let cmd = cmd(d);
        async move { cmd.query_async::<T>(&mut c).await }
    });
    Ok(join_all(calls)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?)
}

/// The minute (since the epoch) of time `ms`.
fn minute(ms: u64) -> u64 {
    ms / 60_000
}

/// The count hash of `domain`.
fn count_key(domain: &str) -> String {
    domain_key(domain, "n")
}

/// Key `name` of `domain` (a pool domain name: bounded and brace-free), in the domain's
/// own slot.
fn domain_key(domain: &str, name: &str) -> String {
    format!("{}{{d:{domain}}}:{name}", super::PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn a_domains_counts_have_the_domain_as_hash_tag() {
        // Goal: each domain's counts are one key whose slot follows the domain alone.
        // Method: compute the keys and their slots with redis-rs's slot function.
        assert_eq!(count_key("x.test"), "tmx:{d:x.test}:n");
        assert_eq!(
            Slot::for_key(count_key("x.test").as_bytes()),
            Slot::for_key(b"{d:x.test}")
        );
        assert_ne!(count_key("x.test"), count_key("y.test"));
        assert_eq!(
            Slot::for_key(domain_key("x.test", "bl").as_bytes()),
            Slot::for_key(b"{d:x.test}")
        );
    }
}
