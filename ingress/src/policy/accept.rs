//! The recipient check: pool membership, domain status and recipient mode.
//!
//! We are a final destination, never a relay, so every form that asks us to forward mail
//! elsewhere is refused as relaying: source routes, address literals, `%` and `!` routing in
//! the local part, and `@` inside a quoted local part. The domain must match a pool domain
//! exactly after IDNA (UTS 46) mapping to ASCII, which also lowercases; suffix tricks like
//! `pool.test.evil.example` and trailing dots therefore never match.

use super::{DomainStatus, Policy, RecipientMode};
use crate::proto::command::{Domain, Mailbox};

/// Outcome of checking one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientVerdict {
    /// Accepted; carries the normalised `local@domain`.
    Accept(String),
    /// Domain not in the pool (or a routing form): relaying denied.
    RelayDenied,
    /// Domain is retired.
    DomainRetired,
    /// Registered-only mode and the mailbox does not exist.
    UnknownMailbox,
}

/// Checks a recipient from a parsed forward path.
pub fn check_recipient(policy: &Policy, mailbox: &Mailbox, source_route: bool) -> RecipientVerdict {
    let Domain::Name(name) = &mailbox.domain else {
        return RecipientVerdict::RelayDenied;
    };
    if source_route || mailbox.local.contains(['%', '!', '@']) {
        return RecipientVerdict::RelayDenied;
    }
    let Some(domain) = normalise_domain(name) else {
        return RecipientVerdict::RelayDenied;
    };
    let snapshot = policy.snapshot();
    match snapshot.status(&domain) {
        None => RecipientVerdict::RelayDenied,
        Some(DomainStatus::Retired) => RecipientVerdict::DomainRetired,
        Some(DomainStatus::Pending | DomainStatus::Active | DomainStatus::Draining) => {
            let address = format!("{}@{}", mailbox.local, domain);
            match snapshot.mode() {
                RecipientMode::CatchAll => RecipientVerdict::Accept(address),
                // Without a registry nothing is registered: fail closed.
                RecipientMode::RegisteredOnly => match policy.registry() {
                    Some(r) if r.contains(&address) => RecipientVerdict::Accept(address),
                    _ => RecipientVerdict::UnknownMailbox,
                },
            }
        }
    }
}

/// IDNA to ASCII + lowercase; `None` for names IDNA refuses or that end in a dot.
pub fn normalise_domain(name: &str) -> Option<String> {
    let ascii = idna::domain_to_ascii(name).ok()?;
    if ascii.is_empty() || ascii.ends_with('.') {
        return None;
    }
    Some(ascii.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::policy::{MailboxRegistry, PoolSnapshot};
    use crate::proto::command::{RcptPath, parse};

    struct Registry(Vec<&'static str>);

    impl MailboxRegistry for Registry {
        fn contains(&self, address: &str) -> bool {
            self.0.contains(&address)
        }
    }

    fn pool(mode: RecipientMode) -> PoolSnapshot {
        let domains = [
            ("Pool.Test".to_owned(), DomainStatus::Active),
            ("pending.test".to_owned(), DomainStatus::Pending),
            ("drain.test".to_owned(), DomainStatus::Draining),
            ("old.test".to_owned(), DomainStatus::Retired),
            ("bücher.test".to_owned(), DomainStatus::Active),
        ];
        PoolSnapshot::new(domains, mode)
    }

    fn verdict(policy: &Policy, line: &str, utf8: bool) -> RecipientVerdict {
        match parse(line.as_bytes(), utf8) {
            Ok(crate::proto::command::Command::Rcpt(RcptPath::Mailbox {
                mailbox,
                source_route,
            })) => check_recipient(policy, &mailbox, source_route),
            other => panic!("{line}: {other:?}"),
        }
    }

    // Goal: no open relay and exact domain matching; method: RCPT lines through the real
    // parser and the policy, (line, verdict) table.
    #[test]
    fn catch_all_table() {
        use RecipientVerdict::*;
        let policy = Policy::new(pool(RecipientMode::CatchAll), None);
        let accept = |s: &str| Accept(s.to_owned());
        let cases = [
            ("RCPT TO:<u@pool.test>", false, accept("u@pool.test")),
            (
                "RCPT TO:<User.X@POOL.TEST>",
                false,
                accept("User.X@pool.test"),
            ),
            ("RCPT TO:<u@pending.test>", false, accept("u@pending.test")),
            ("RCPT TO:<u@drain.test>", false, accept("u@drain.test")),
            ("RCPT TO:<u@old.test>", false, DomainRetired),
            ("RCPT TO:<u@evil.example>", false, RelayDenied),
            ("RCPT TO:<u@pool.test.evil.example>", false, RelayDenied),
            ("RCPT TO:<u@sub.pool.test>", false, RelayDenied),
            ("RCPT TO:<u@xpool.test>", false, RelayDenied),
            (
                "RCPT TO:<@pool.test,@other.test:u@pool.test>",
                false,
                RelayDenied,
            ),
            ("RCPT TO:<@pool.test:u@evil.example>", false, RelayDenied),
            ("RCPT TO:<u%evil.example@pool.test>", false, RelayDenied),
            ("RCPT TO:<evil.example!u@pool.test>", false, RelayDenied),
            ("RCPT TO:<\"u@evil.example\"@pool.test>", false, RelayDenied),
            ("RCPT TO:<u@[127.0.0.1]>", false, RelayDenied),
            ("RCPT TO:<u@[IPv6:::1]>", false, RelayDenied),
            (
                "RCPT TO:<\"a b\"@pool.test>",
                false,
                accept("\"a b\"@pool.test"),
            ),
            (
                "RCPT TO:<u@xn--bcher-kva.test>",
                false,
                accept("u@xn--bcher-kva.test"),
            ),
            (
                "RCPT TO:<u@BÜCHER.test>",
                true,
                accept("u@xn--bcher-kva.test"),
            ),
            (
                "RCPT TO:<jö@bücher.test>",
                true,
                accept("jö@xn--bcher-kva.test"),
            ),
        ];
        for (line, utf8, want) in cases {
            assert_eq!(verdict(&policy, line, utf8), want, "{line}");
        }
    }

    // Goal: registered-only mode consults the registry with the normalised address, and
    // fails closed without one.
    #[test]
    fn registered_only() {
        let registry: Arc<dyn MailboxRegistry> = Arc::new(Registry(vec!["known@pool.test"]));
        let policy = Policy::new(pool(RecipientMode::RegisteredOnly), Some(registry));
        assert_eq!(
            verdict(&policy, "RCPT TO:<known@Pool.TEST>", false),
            RecipientVerdict::Accept("known@pool.test".into())
        );
        assert_eq!(
            verdict(&policy, "RCPT TO:<other@pool.test>", false),
            RecipientVerdict::UnknownMailbox
        );
        assert_eq!(
            verdict(&policy, "RCPT TO:<known@evil.example>", false),
            RecipientVerdict::RelayDenied
        );
        let bare = Policy::new(pool(RecipientMode::RegisteredOnly), None);
        assert_eq!(
            verdict(&bare, "RCPT TO:<known@pool.test>", false),
            RecipientVerdict::UnknownMailbox
        );
    }

    // Goal: a published snapshot replaces the old one for the next check.
    #[test]
    fn publish_swaps_snapshot() {
        let policy = Policy::new(pool(RecipientMode::CatchAll), None);
        assert!(matches!(
            verdict(&policy, "RCPT TO:<u@pool.test>", false),
            RecipientVerdict::Accept(_)
        ));
        policy.publish(PoolSnapshot::new(
            [("pool.test.".to_owned(), DomainStatus::Retired)],
            RecipientMode::CatchAll,
        ));
        assert_eq!(
            verdict(&policy, "RCPT TO:<u@pool.test>", false),
            RecipientVerdict::DomainRetired
        );
        assert_eq!(
            policy.snapshot().status("pool.test"),
            Some(DomainStatus::Retired)
        );
    }
}
