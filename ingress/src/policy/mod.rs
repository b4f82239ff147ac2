//! Recipient policy: which recipients this MX accepts, decided from the published pool snapshot.

mod accept;
mod snapshot;

pub use accept::{RecipientVerdict, check_recipient};
pub use snapshot::{DomainStatus, MailboxRegistry, Policy, PoolSnapshot, RecipientMode};
