//! What a reload (SIGHUP, `systemctl reload`) changes in a running appliance: the STARTTLS
//! certificate, the edit of the `[pool]` section and the `[blocklists]` settings. The
//! binary re-reads the file, applies the log filter, calls [`Reloadable::apply`] and logs
//! one report; every other changed setting takes effect at the next restart.
//!
//! A part that fails (a certificate that does not load, a policy edit the rules refuse)
//! keeps what is in force and is reported as failed; the process never exits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use tempmx_ingress::tls::ServerTls;
use tracing::{error, info, warn};

use crate::blocklist::BlocklistCycle;
use crate::config::Config;
use crate::metrics::control::ProcessFacts;
use crate::pool::{ControlPlane, PoolEdit};

/// What one reload did, by dotted setting name.
#[derive(Debug, Default)]
pub struct Applied {
    /// Settings now in force.
    pub applied: Vec<&'static str>,
    /// Settings that changed but could not be applied (the old ones stay; see the log).
    pub failed: Vec<&'static str>,
}

/// Reloads by result since start, for `tempmx_config_reloads_total`.
#[derive(Debug, Default)]
pub struct ReloadCounts {
    /// Reloads that applied every reloadable change.
    pub ok: AtomicU64,
    /// Reloads whose file did not load or of which a part failed.
    pub failed: AtomicU64,
}

impl ReloadCounts {
    /// The counts labelled by result, for the metrics table.
    pub fn by_result(&self) -> [(&'static str, u64); 2] {
        [
            ("ok", self.ok.load(Ordering::Relaxed)),
            ("failed", self.failed.load(Ordering::Relaxed)),
        ]
    }
}

/// The parts of a running appliance a reload can change. Cheap to clone.
#[derive(Clone)]
pub struct Reloadable {
    pub(crate) tls: Option<ServerTls>,
    pub(crate) plane: Arc<ControlPlane>,
    pub(crate) blocklists: Arc<BlocklistCycle>,
    pub(crate) facts: Arc<RwLock<ProcessFacts>>,
    pub(crate) counts: Arc<ReloadCounts>,
}

impl Reloadable {
    /// Applies what can change at runtime from `next` and copies each applied setting into
    /// `running`, so that what still differs afterwards is what needs a restart (or failed).
    pub fn apply(&self, running: &mut Config, next: &Config) -> Applied {
        let mut out = Applied::default();
        self.apply_tls(running, next, &mut out);
        self.apply_pool(running, next, &mut out);
        self.apply_blocklists(running, next, &mut out);
        out
    }

    /// Counts one reload as succeeded or failed.
    pub fn count(&self, ok: bool) {
        let counter = if ok {
            &self.counts.ok
        } else {
            &self.counts.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Re-reads the certificate files (a renewal rewrites them in place) or switches to the
    /// newly configured ones; new STARTTLS sessions get the new certificate. Turning TLS on
    /// or off changes what EHLO offers and needs a restart, as does the generated
    /// certificate's host name.
    fn apply_tls(&self, running: &mut Config, next: &Config, out: &mut Applied) {
        let (old, new) = (&running.ingress.tls, &next.ingress.tls);
        let Some(tls) = &self.tls else { return };
        if new.disabled || (old == new && new.cert_path.is_none()) {
            return;
        }
        match tls.reload(new, &running.ingress.hostname) {
            Ok(()) => {
                let expiry = new
                    .cert_path
                    .as_deref()
                    .and_then(crate::metrics::control::certificate_expiry_secs);
                self.facts.write().certificate_expiry_secs = expiry;
                info!(cert = ?new.cert_path, expiry_unix_secs = ?expiry,
                      "reload: STARTTLS certificate loaded; new sessions use it");
                running.ingress.tls = new.clone();
                out.applied.push("ingress.tls");
            }
            Err(e) => {
                error!(error = %e, "reload: STARTTLS certificate not loaded; the one in force stays");
                out.failed.push("ingress.tls");
            }
        }
    }

    /// Replaces the blocklist settings; the next cycle starts within `jitter_secs` and
    /// uses them (a cycle under way finishes with the old ones).
    fn apply_blocklists(&self, running: &mut Config, next: &Config, out: &mut Applied) {
        if running.blocklists == next.blocklists {
            return;
        }
        match self
            .blocklists
            .blocklists()
            .replace(next.blocklists.clone())
        {
            Ok(()) => {
                let lists = self.blocklists.blocklists().list_names();
                info!(lists = ?lists, interval_secs = next.blocklists.interval_secs,
                      "reload: blocklist settings applied from the next cycle");
                running.blocklists = next.blocklists.clone();
                out.applied.push("blocklists");
            }
            Err(e) => {
                error!(error = %e, "reload: blocklist settings not applied; the old ones stay");
                out.failed.push("blocklists");
            }
        }
    }

    /// Applies the edit of `pool.domains` and `pool.policy` since the last load (see
    /// [`PoolEdit`]): all of it, or nothing when the plane refuses it.
    fn apply_pool(&self, running: &mut Config, next: &Config, out: &mut Applied) {
        let edit = PoolEdit::between(
            (&running.pool.domains, &running.pool.policy),
            (&next.pool.domains, &next.pool.policy),
        );
        let fields = |out: &mut Vec<&'static str>| {
            if running.pool.domains != next.pool.domains {
                out.push("pool.domains");
            }
            if running.pool.policy != next.pool.policy {
                out.push("pool.policy");
            }
        };
        if edit.is_empty() {
            // Only spelling or order changed: nothing to do, nothing to report.
            running.pool.domains.clone_from(&next.pool.domains);
            return;
        }
        match self.plane.apply_edit(&edit) {
            Ok(outcomes) => {
                let added: Vec<&str> = outcomes
                    .iter()
                    .filter(|o| o.added)
                    .map(|o| o.name.as_str())
                    .collect();
                info!(added = ?added, policy = ?edit.policy, "reload: pool edit applied");
                if !edit.removed.is_empty() {
                    warn!(removed = ?edit.removed,
                          "reload: domains removed from pool.domains stay in the pool; \
                           retire them with `tempmx domains retire` (their mail drains first)");
                }
                fields(&mut out.applied);
                running.pool.domains.clone_from(&next.pool.domains);
                running.pool.policy = next.pool.policy.clone();
            }
            Err(e) => {
                error!(error = %e, "reload: pool edit not applied; the pool and policy stay as they are");
                fields(&mut out.failed);
            }
        }
    }
}
