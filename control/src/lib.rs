//! tempmx: the control plane and the appliance binary.
//!
//! Layout: the control plane owns every state change (domain pool, rotation, blocklists,
//! admin API); the data planes (ingress, store, dns) only read the immutable snapshots it
//! publishes. `app` builds and wires all parts; `config` composes each crate's section.
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod blocklist;
pub mod config;
pub mod fleet;
pub mod logging;
pub mod mailboxes;
pub mod metrics;
pub mod pool;
pub mod reload;
pub mod verify;
pub mod webhooks;

pub use app::{App, AppError};
pub use config::{Config, ConfigError, Overrides};
