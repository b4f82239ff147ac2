//! The public API's mailbox registry in fleet mode: the cluster's registry (atomic
//! create-if-absent, so two nodes never hand out one address) behind the same token rules
//! as the local [`Registry`](crate::mailboxes::Registry): only a SHA-256 of the token is kept
//! and compared in constant time.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tempmx_store::Mailbox;
use tempmx_store::cluster::{Cluster, ClusterError, Registration};

use crate::mailboxes::{Registered, hash, new_token};

/// The fleet's mailbox registry, as the handlers use it.
#[derive(Clone)]
pub struct FleetRegistry(pub Arc<Cluster>);

impl FleetRegistry {
    /// Registers `address` until `expires_at_ms` with message TTL `ttl_secs`; `None` when
    /// the address is taken (on any node). Mail the address got before goes.
    pub async fn register(
        &self,
        address: &Mailbox,
        expires_at_ms: u64,
        ttl_secs: u64,
    ) -> Result<Option<Registered>, ClusterError> {
        let token = new_token();
        let reg = Registration {
            token_hash: hash(&token),
            expires_at_ms,
            ttl_secs: Some(ttl_secs),
            cap: None,
        };
        let created = self.0.create_mailbox(address, &reg).await?;
        if created {
            self.count(address, vec![(expires_at_ms, 1)]).await;
        }
        Ok(created.then_some(Registered {
            token,
            expires_at_ms,
        }))
    }

    /// The expiry of `address` if `token` opens it now; `None` for unknown, expired and
    /// wrong-token alike.
    pub async fn verify(
        &self,
        address: &Mailbox,
        token: &str,
    ) -> Result<Option<u64>, ClusterError> {
        let given = hash(token);
        let reg = self.0.mailbox(address).await?;
        let stored = reg.as_ref().map_or([0u8; 32], |r| r.token_hash);
        let same: bool = stored[..].ct_eq(&given[..]).into();
        Ok(reg.filter(|_| same).map(|r| r.expires_at_ms))
    }

    /// Expiry of a live registered mailbox.
    pub async fn expires_at(&self, address: &Mailbox) -> Result<Option<u64>, ClusterError> {
        Ok(self.0.mailbox(address).await?.map(|r| r.expires_at_ms))
    }

    /// Moves a live mailbox's expiry to `expires_at_ms` (never earlier); the expiry in force.
    pub async fn extend(
        &self,
        address: &Mailbox,
        expires_at_ms: u64,
    ) -> Result<Option<u64>, ClusterError> {
        let Some(moved) = self.0.extend_mailbox(address, expires_at_ms).await? else {
            return Ok(None);
        };
        // The step's own before and after: two nodes extending at once each move the
        // count by what their call changed.
        if moved.before_ms != moved.after_ms {
            self.count(address, vec![(moved.before_ms, -1), (moved.after_ms, 1)])
                .await;
        }
        Ok(Some(moved.after_ms))
    }

    /// Deletes the mailbox's registration and mail; how many messages it listed.
    pub async fn remove(&self, address: &Mailbox) -> Result<usize, ClusterError> {
        let dropped = self.0.delete_mailbox(address).await?;
        // Only the call that removed the registration uncounts it.
        if let Some(exp) = dropped.expires_at_ms {
            self.count(address, vec![(exp, -1)]).await;
        }
        Ok(dropped.messages)
    }

    /// Keeps the domain's fleet-wide live-mailbox count in step with a change; a failure
    /// is logged, not the request's (the count is for operators, and each bucket it
    /// leaves off ends with its minute).
    async fn count(&self, address: &Mailbox, changes: Vec<(u64, i64)>) {
        let domain = address.domain();
        if let Err(e) = self.0.change_domain_mailboxes(domain, changes).await {
            tracing::warn!(error = %e, "fleet mailbox count not updated");
        }
    }
}
