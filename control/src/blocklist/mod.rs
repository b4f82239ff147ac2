//! Blocklist tracking: DNS blocklist zones and offline list files, checked periodically
//! with bounded concurrency ([`BlocklistCycle`]); results feed the rotation policy
//! through [`tracker`].

mod config;
mod cycle;
mod dnsbl;
mod files;
pub mod tracker;
mod verdict;

use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::warn;
use utoipa::ToSchema;

pub use config::{BlocklistConfig, DnsblZone};
pub use cycle::{BlocklistCycle, CycleReport};
pub use dnsbl::Dnsbl;
pub use files::{ListFile, parse as parse_list};
pub use verdict::{Outcome, classify};

/// One answer: a domain on a list.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct Observation {
    /// The domain checked.
    pub domain: String,
    /// The list.
    pub list: String,
    /// The answer.
    pub outcome: Outcome,
}

/// Why the blocklist checker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BlocklistError {
    /// The resolver could not be set up (e.g. no system resolver configuration).
    #[error("blocklist resolver: {0}")]
    Resolver(String),
    /// The configuration is invalid.
    #[error("invalid blocklist configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// All configured lists. A reload replaces them whole ([`Blocklists::replace`]): a check
/// under way finishes with the lists it started with, the next one uses the new.
pub struct Blocklists {
    lists: ArcSwap<Lists>,
    replaced: Notify,
}

/// One generation of lists: the settings and what was built from them.
struct Lists {
    config: BlocklistConfig,
    dnsbl: Option<Arc<Dnsbl>>,
    files: Arc<Mutex<Vec<ListFile>>>,
}

impl Lists {
    /// Builds the lists; the resolver is only set up when zones are configured.
    fn new(config: BlocklistConfig) -> Result<Self, BlocklistError> {
        config.validate().map_err(BlocklistError::Invalid)?;
        let dnsbl = if config.zones.is_empty() {
            None
        } else {
            Some(Arc::new(
                Dnsbl::new(&config).map_err(|e| BlocklistError::Resolver(e.to_string()))?,
            ))
        };
        let files = config.files.iter().cloned().map(ListFile::new).collect();
        Ok(Self {
            config,
            dnsbl,
            files: Arc::new(Mutex::new(files)),
        })
    }
}

impl Blocklists {
    /// Builds the checker; the resolver is only set up when zones are configured.
    pub fn new(config: BlocklistConfig) -> Result<Self, BlocklistError> {
        Ok(Self {
            lists: ArcSwap::from_pointee(Lists::new(config)?),
            replaced: Notify::new(),
        })
    }

    /// Replaces the lists and settings with `config` (a reload); on error the old stay.
    pub fn replace(&self, config: BlocklistConfig) -> Result<(), BlocklistError> {
        self.lists.store(Arc::new(Lists::new(config)?));
        self.replaced.notify_one();
        Ok(())
    }

    /// Resolves once the lists were replaced since the last time it resolved (the cycle
    /// reschedules on it).
    pub async fn replaced(&self) {
        self.replaced.notified().await;
    }

    /// The configuration in force.
    pub fn config(&self) -> BlocklistConfig {
        self.lists.load().config.clone()
    }

    /// Names of every list: zones, then `file:<name>`.
    pub fn list_names(&self) -> Vec<String> {
        let lists = self.lists.load();
        let zones = lists.config.zones.iter().map(|z| z.zone.clone());
        zones
            .chain(lists.files.lock().iter().map(|f| f.name().to_owned()))
            .collect()
    }

    /// Whether there is anything to check.
    pub fn is_empty(&self) -> bool {
        let lists = self.lists.load();
        lists.config.zones.is_empty() && lists.config.files.is_empty()
    }

    /// Checks every domain on every list; at most `concurrency_max` DNS queries in flight.
    pub async fn check(&self, domains: &[String]) -> Vec<Observation> {
        let lists = self.lists.load_full();
        let mut out = lists.check_files(domains).await;
        let Some(dnsbl) = &lists.dnsbl else {
            return out;
        };
        let permits = Arc::new(Semaphore::new(lists.config.concurrency_max));
        let mut tasks = JoinSet::new();
        for domain in domains {
            for zone in &lists.config.zones {
                let (dnsbl, permits, domain, zone) =
                    (dnsbl.clone(), permits.clone(), domain.clone(), zone.clone());
                tasks.spawn(async move {
                    // The semaphore is never closed, so acquire only fails if it were; treat as an error answer.
                    let outcome = match permits.acquire().await {
                        Ok(_permit) => dnsbl.query(&domain, &zone).await,
                        Err(e) => Outcome::Error {
                            detail: e.to_string(),
                        },
                    };
                    Observation {
                        domain,
                        list: zone.zone,
                        outcome,
                    }
                });
            }
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(o) => out.push(o),
                Err(e) => warn!(error = %e, "blocklist query task failed"),
            }
        }
        out
    }
}

impl Lists {
    /// Checks every domain on every list file.
    async fn check_files(&self, domains: &[String]) -> Vec<Observation> {
        if self.config.files.is_empty() {
            return Vec::new();
        }
        let (files, domains, bytes_max) = (
            self.files.clone(),
            domains.to_vec(),
            self.config.file_bytes_max,
        );
        // Reading a big list file is blocking I/O: keep it off the async workers.
        let job = tokio::task::spawn_blocking(move || {
            let mut files = files.lock();
            let mut out = Vec::new();
            for f in files.iter_mut() {
                f.refresh(bytes_max);
                for d in &domains {
                    out.push(Observation {
                        domain: d.clone(),
                        list: f.name().to_owned(),
                        outcome: f.check(d),
                    });
                }
            }
            out
        });
        job.await.unwrap_or_else(|e| {
            warn!(error = %e, "list file check failed");
            Vec::new()
        })
    }
}
