//! The periodic blocklist cycle: checks every pool domain that is not retired on its own
//! schedule (interval plus jitter) and feeds the answers to the pool, whose tracker
//! confirms listings and whose rules rotate listed domains out.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::info;

use super::{BlocklistConfig, BlocklistError, Blocklists, Observation, Outcome};
use crate::pool::ControlPlane;

/// Summary of the last blocklist cycle.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CycleReport {
    /// Unix seconds when it finished.
    pub at: u64,
    /// Domains checked.
    pub domains: usize,
    /// Listed answers.
    pub listed: usize,
    /// Error answers.
    pub errors: usize,
}

/// The checker with the pool it reports to. Share it as `Arc<BlocklistCycle>`.
pub struct BlocklistCycle {
    blocklists: Blocklists,
    plane: Arc<ControlPlane>,
    last: Mutex<Option<CycleReport>>,
}

impl BlocklistCycle {
    /// Builds the checker (needs a runtime context when zones are configured: the resolver
    /// is created here) reporting to `plane`.
    pub fn new(config: BlocklistConfig, plane: Arc<ControlPlane>) -> Result<Self, BlocklistError> {
        Ok(Self {
            blocklists: Blocklists::new(config)?,
            plane,
            last: Mutex::new(None),
        })
    }

    /// The checker.
    pub fn blocklists(&self) -> &Blocklists {
        &self.blocklists
    }

    /// The last cycle, if one ran.
    pub fn last_cycle(&self) -> Option<CycleReport> {
        self.last.lock().clone()
    }

    /// Checks `domain` on every list now. Results for pool domains feed the tracker (and
    /// may rotate the domain); for other names, and in fleet mode on a node without the
    /// rotation lease, they are only returned.
    pub async fn check_now(&self, domain: &tempmx_store::Domain) -> Vec<Observation> {
        let name = domain.to_string();
        let observations = self.blocklists.check(std::slice::from_ref(&name)).await;
        self.plane.observe(&observations);
        observations
    }

    /// One cycle over every pool domain that is not retired. In fleet mode only the
    /// holder of the rotation lease checks; other nodes skip their cycles.
    pub async fn check_cycle(&self) {
        if !self.plane.acting() {
            return;
        }
        let names = self.plane.unretired();
        let observations = self.blocklists.check(&names).await;
        let count = |f: fn(&Outcome) -> bool| observations.iter().filter(|o| f(&o.outcome)).count();
        let report = CycleReport {
            at: self.plane.now(),
            domains: names.len(),
            listed: count(|o| matches!(o, Outcome::Listed { .. })),
            errors: count(|o| matches!(o, Outcome::Error { .. })),
        };
        info!(
            domains = report.domains,
            listed = report.listed,
            errors = report.errors,
            "blocklist cycle done"
        );
        self.plane.observe(&observations);
        *self.last.lock() = Some(report);
    }

    /// Runs the cycles until `shutdown` turns true; the first cycle starts after one
    /// jitter. With nothing to check it waits: a reload may configure lists
    /// ([`Blocklists::replace`]), and the next cycle then starts within one jitter.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut next_check = tokio::time::Instant::now() + self.jitter();
        loop {
            let checking = !self.blocklists.is_empty();
            tokio::select! {
                r = shutdown.wait_for(|s| *s) => { let _ = r; break; }
                () = tokio::time::sleep_until(next_check), if checking => {}
                () = self.blocklists.replaced() => {
                    next_check = tokio::time::Instant::now() + self.jitter();
                    continue;
                }
            }
            tokio::select! {
                r = shutdown.wait_for(|s| *s) => { let _ = r; break; }
                () = self.check_cycle() => {}
            }
            let interval = Duration::from_secs(self.blocklists.config().interval_secs);
            next_check = tokio::time::Instant::now() + interval + self.jitter();
        }
        info!("blocklist cycle stopped");
    }

    fn jitter(&self) -> Duration {
        use rand::Rng;
        let max = self.blocklists.config().jitter_secs.saturating_mul(1000);
        Duration::from_millis(rand::rng().random_range(0..=max))
    }
}
