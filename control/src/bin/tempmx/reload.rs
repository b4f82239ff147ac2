//! SIGHUP: re-read the configuration, apply what can change while running (the log filter
//! here; the STARTTLS certificate, the pool edit and the blocklist settings through
//! [`Reloadable`]) and log one report: what was applied, what failed and kept its old
//! value, and which changed settings take effect at the next restart.

use serde_json::Value;
use tempmx::Config;
use tempmx::logging::LogHandle;
use tempmx::reload::Reloadable;
use tracing::{error, info, warn};

/// Remembers the configuration in force, so each reload compares against what runs.
pub struct Reloader {
    running: Config,
    log: LogHandle,
    live: Reloadable,
}

impl Reloader {
    /// A reloader for an appliance started on `running`, changing `live`.
    pub fn new(running: Config, log: LogHandle, live: Reloadable) -> Self {
        Self { running, log, live }
    }

    /// Applies a freshly loaded configuration; a file that does not load or validate is
    /// logged and changes nothing.
    pub fn reload(&mut self, loaded: anyhow::Result<Config>) {
        let next = match loaded {
            Ok(c) => c,
            Err(e) => {
                error!(error = %format!("{e:#}"), "reload: configuration not loaded; nothing changed");
                self.live.count(false);
                return;
            }
        };
        let mut done = self.live.apply(&mut self.running, &next);
        if next.log.filter != self.running.log.filter {
            if tempmx::logging::env_filter_set() {
                warn!("reload: log.filter changed but RUST_LOG is set and wins; not applied");
            } else {
                match self.log.set_filter(&next.log.filter) {
                    Ok(()) => {
                        info!(filter = %next.log.filter, "reload: log.filter applied");
                        self.running.log.filter.clone_from(&next.log.filter);
                        done.applied.push("log.filter");
                    }
                    Err(e) => {
                        error!(error = %e, "reload: log.filter not applied");
                        done.failed.push("log.filter");
                    }
                }
            }
        }
        let mut restart = changed_sections(&self.running, &next);
        restart.retain(|k| !done.failed.iter().any(|f| within(k, f)));
        self.live.count(done.failed.is_empty());
        let (applied, failed) = (done.applied.join(", "), done.failed.join(", "));
        let restart = restart.join(", ");
        if failed.is_empty() && restart.is_empty() {
            info!(%applied, "reload: done; every change applied");
        } else {
            warn!(%applied, %failed, %restart,
                  "reload: done; failed settings keep their old values (errors above), \
                   restart settings take effect at the next restart");
        }
    }
}

/// Whether the dotted path `key` is `part` or inside it.
fn within(key: &str, part: &str) -> bool {
    key.strip_prefix(part)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Dotted paths of the settings that differ, one level into each section.
fn changed_sections(running: &Config, next: &Config) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(running), serde_json::to_value(next)) else {
        return vec!["(configuration not comparable)".to_owned()];
    };
    let mut out = Vec::new();
    diff("", &a, &b, 2, &mut out);
    out
}

fn diff(path: &str, a: &Value, b: &Value, depth: usize, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if depth > 0 => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let null = Value::Null;
                diff(
                    &sub,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    depth - 1,
                    out,
                );
            }
        }
        _ => out.push(path.to_owned()),
    }
}
