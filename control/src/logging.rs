//! Structured logs with `tracing`, as text or JSON lines on stderr. Colour codes only go to
//! a terminal: under systemd (journald), a container runtime or a pipe the lines are plain.
//! The filter can be replaced while running (`SIGHUP` re-reads `log.filter`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Why a new log filter was not applied.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The filter text does not parse.
    #[error("log.filter `{filter}`: {reason}")]
    Filter {
        /// The text.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The subscriber this handle belongs to is gone or was never installed.
    #[error("log filter not replaced: {0}")]
    Reload(String),
}

type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Replaces the filter of the installed subscriber.
pub struct LogHandle {
    set: SetFilter,
}

impl LogHandle {
    /// Applies `filter` (a `tracing` filter such as `info,tempmx=debug`) from now on.
    pub fn set_filter(&self, filter: &str) -> Result<(), LogError> {
        let parsed = EnvFilter::try_new(filter).map_err(|e| LogError::Filter {
            filter: filter.to_owned(),
            reason: e.to_string(),
        })?;
        (self.set)(parsed).map_err(LogError::Reload)
    }
}

/// Whether `RUST_LOG` is set, which then wins over `log.filter` (at start and on reload).
pub fn env_filter_set() -> bool {
    std::env::var_os(EnvFilter::DEFAULT_ENV).is_some_and(|v| !v.is_empty())
}

/// Installs the global subscriber; `RUST_LOG` overrides the configured filter.
pub fn init(config: &LogConfig) -> LogHandle {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // A second init (tests starting several apps in one process) is harmless, so its error
    // is ignored; the handle then changes nothing that is installed.
    match config.format {
        LogFormat::Text => {
            let builder = builder.with_env_filter(filter).with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = builder.try_init();
            LogHandle {
                set: Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())),
            }
        }
        LogFormat::Json => {
            let builder = builder
                .json()
                .flatten_event(true)
                .with_env_filter(filter)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = builder.try_init();
            LogHandle {
                set: Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())),
            }
        }
    }
}
