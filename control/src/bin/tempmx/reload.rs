//! SIGHUP: re-read the configuration and apply what can change while running (the log
//! filter); every other changed section is logged as taking effect at the next restart.

use serde_json::Value;
use tempmx::Config;
use tempmx::logging::LogHandle;
use tracing::{error, info, warn};

/// Remembers the configuration in force, so each reload compares against what runs.
pub struct Reloader {
    running: Config,
    log: LogHandle,
}

impl Reloader {
    /// A reloader for an appliance started on `running`.
    pub fn new(running: Config, log: LogHandle) -> Self {
        Self { running, log }
    }

    /// Applies a freshly loaded configuration; a file that does not load or validate is
    /// logged and changes nothing.
    pub fn reload(&mut self, loaded: anyhow::Result<Config>) {
        let next = match loaded {
            Ok(c) => c,
            Err(e) => {
                error!(error = %format!("{e:#}"), "reload: configuration not loaded; nothing changed");
                return;
            }
        };
        if next.log.filter != self.running.log.filter {
            if tempmx::logging::env_filter_set() {
                warn!("reload: log.filter changed but RUST_LOG is set and wins; not applied");
            } else {
                match self.log.set_filter(&next.log.filter) {
                    Ok(()) => {
                        info!(filter = %next.log.filter, "reload: log.filter applied");
                        self.running.log.filter = next.log.filter.clone();
                    }
                    Err(e) => error!(error = %e, "reload: log.filter not applied"),
                }
            }
        }
        let restart = changed_sections(&self.running, &next);
        if restart.is_empty() {
            info!("reload: done");
        } else {
            warn!(sections = %restart.join(", "),
                  "reload: these settings changed and take effect at the next restart");
        }
    }
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
