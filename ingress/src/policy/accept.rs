//! The recipient check: pool membership, domain status and recipient mode.
//!
//! We are a final destination, never a relay, so every form that asks us to forward mail
//! elsewhere is refused as relaying: source routes, address literals, `%` and `!` routing in
//! the local part, and `@` inside a quoted local part. The domain must match a pool domain
//! exactly after [`Domain::parse`] (IDNA to ASCII, lower case); suffix tricks like
//! `pool.test.evil.example` and trailing dots therefore never match. An accepted recipient
//! is a [`Mailbox`], folded by the store's one rule, so every spelling reaches one mailbox.

use tempmx_store::{Domain, Mailbox};

use super::{DomainStatus, Policy, RecipientMode};
use crate::proto::command;

/// Outcome of checking one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientVerdict {
    /// Accepted; carries the mailbox.
    Accept(Mailbox),
    /// Domain not in the pool (or a routing form): relaying denied.
    RelayDenied,
    /// Domain is retired.
    DomainRetired,
    /// Registered-only mode and the mailbox does not exist, or the local part cannot name
    /// a mailbox.
    UnknownMailbox,
}

/// Checks a recipient from a parsed forward path.
pub fn check_recipient(
    policy: &Policy,
    path: &command::Mailbox,
    source_route: bool,
) -> RecipientVerdict {
    let command::Domain::Name(name) = &path.domain else {
        return RecipientVerdict::RelayDenied;
    };
    if source_route || path.local.contains(['%', '!', '@']) {
        return RecipientVerdict::RelayDenied;
    }
    let Ok(domain) = Domain::parse(name) else {
        return RecipientVerdict::RelayDenied;
    };
    let snapshot = policy.snapshot();
    match snapshot.status(&domain) {
        None => RecipientVerdict::RelayDenied,
        Some(DomainStatus::Retired) => RecipientVerdict::DomainRetired,
        Some(DomainStatus::Pending | DomainStatus::Active | DomainStatus::Draining) => {
            let Ok(mailbox) = Mailbox::new(&path.local, &domain) else {
                return RecipientVerdict::UnknownMailbox;
            };
            match snapshot.mode() {
                RecipientMode::CatchAll => RecipientVerdict::Accept(mailbox),
                // Without a registry nothing is registered: fail closed.
                RecipientMode::RegisteredOnly => match policy.registry() {
                    Some(r) if r.contains(&mailbox) => RecipientVerdict::Accept(mailbox),
                    _ => RecipientVerdict::UnknownMailbox,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::policy::{MailboxRegistry, PoolSnapshot};
    use crate::proto::command::{RcptPath, parse};

    struct Registry(Vec<&'static str>);

    impl MailboxRegistry for Registry {
        fn contains(&self, mailbox: &Mailbox) -> bool {
            self.0.contains(&mailbox.as_str())
        }
    }

    fn pool(mode: RecipientMode) -> PoolSnapshot {
        let domains = [
            ("Pool.Test", DomainStatus::Active),
            ("pending.test", DomainStatus::Pending),
            ("drain.test", DomainStatus::Draining),
            ("old.test", DomainStatus::Retired),
            ("bücher.test", DomainStatus::Active),
        ]
        .map(|(n, s)| (Domain::parse(n).expect("test domain"), s));
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
        let accept = |s: &str| Accept(Mailbox::parse(s).expect("test address"));
        let cases = [
            ("RCPT TO:<u@pool.test>", false, accept("u@pool.test")),
            (
                "RCPT TO:<User.X@POOL.TEST>",
                false,
                accept("user.x@pool.test"),
            ),
            (
                "RCPT TO:<VRWMPAT7XEER9W@pool.test>",
                false,
                accept("vrwmpat7xeer9w@pool.test"),
            ),
            (
                "RCPT TO:<\"Mixed.Case\"@pool.test>",
                false,
                accept("mixed.case@pool.test"),
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

    // Goal: registered-only mode consults the registry with the folded mailbox, and
    // fails closed without one. Method: RCPT lines through the parser and the policy.
    #[test]
    fn registered_only() {
        let registry: Arc<dyn MailboxRegistry> = Arc::new(Registry(vec!["known@pool.test"]));
        let policy = Policy::new(pool(RecipientMode::RegisteredOnly), Some(registry));
        assert_eq!(
            verdict(&policy, "RCPT TO:<KNOWN@Pool.TEST>", false),
            RecipientVerdict::Accept(Mailbox::parse("known@pool.test").expect("valid"))
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
            [(
                Domain::parse("pool.test").expect("valid"),
                DomainStatus::Retired,
            )],
            RecipientMode::CatchAll,
        ));
        assert_eq!(
            verdict(&policy, "RCPT TO:<u@pool.test>", false),
            RecipientVerdict::DomainRetired
        );
        assert_eq!(
            policy
                .snapshot()
                .status(&Domain::parse("pool.test").expect("valid")),
            Some(DomainStatus::Retired)
        );
    }
}
