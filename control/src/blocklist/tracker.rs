//! Per-(domain, list) results with hysteresis: a listing counts only after N consecutive
//! listed answers, and ends only after N consecutive clean ones. Errors change neither.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::verdict::Outcome;

/// Which kind of answer the current streak is made of.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Streak {
    /// Clean answers.
    Clean,
    /// Listed answers.
    Listed,
}

/// What we know about one domain on one list.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct ListStatus {
    /// The list (a DNSBL zone or `file:<name>`).
    pub list: String,
    /// The last answer, errors included.
    pub last: Outcome,
    /// Unix seconds of the last check.
    pub last_checked: u64,
    /// Kind of the current run of non-error answers.
    pub streak: Streak,
    /// Length of that run.
    pub consecutive: u32,
    /// Unix seconds when the run started (first seen).
    pub first_seen: u64,
    /// Unix seconds of the run's latest answer (last seen).
    pub last_seen: u64,
    /// Errors in a row (reset by any listed or clean answer).
    pub errors: u32,
    /// Whether the listing is confirmed.
    pub confirmed: bool,
}

/// What an observation changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing that matters to the pool.
    None,
    /// The listing is now confirmed.
    Confirmed {
        /// The list's reason.
        reason: String,
        /// When the listed run started.
        since: u64,
    },
    /// A confirmed listing is over.
    Cleared,
}

impl ListStatus {
    /// A record for `list` with no answer yet.
    pub fn new(list: &str, now: u64) -> Self {
        Self {
            list: list.to_owned(),
            last: Outcome::Clean,
            last_checked: now,
            streak: Streak::Clean,
            consecutive: 0,
            first_seen: now,
            last_seen: now,
            errors: 0,
            confirmed: false,
        }
    }

    /// Records one answer; `confirmations` is the policy's N.
    pub fn observe(&mut self, outcome: Outcome, now: u64, confirmations: u32) -> Change {
        self.last_checked = now;
        let kind = match &outcome {
            Outcome::Error { .. } => {
                self.errors = self.errors.saturating_add(1);
                self.last = outcome;
                return Change::None;
            }
            Outcome::Clean => Streak::Clean,
            Outcome::Listed { .. } => Streak::Listed,
        };
        self.errors = 0;
        if kind == self.streak {
            self.consecutive = self.consecutive.saturating_add(1);
        } else {
            self.streak = kind;
            self.consecutive = 1;
            self.first_seen = now;
        }
        self.last_seen = now;
        self.last = outcome;
        self.decide(confirmations)
    }

    fn decide(&mut self, confirmations: u32) -> Change {
        if self.consecutive < confirmations {
            return Change::None;
        }
        match (self.streak, self.confirmed, &self.last) {
            (Streak::Listed, false, Outcome::Listed { reason }) => {
                self.confirmed = true;
                Change::Confirmed {
                    reason: reason.clone(),
                    since: self.first_seen,
                }
            }
            (Streak::Clean, true, _) => {
                self.confirmed = false;
                Change::Cleared
            }
            _ => Change::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed() -> Outcome {
        Outcome::Listed {
            reason: "spam domain".into(),
        }
    }

    fn error() -> Outcome {
        Outcome::Error {
            detail: "timeout".into(),
        }
    }

    // Goal: N consecutive listed answers confirm; a clean answer in between restarts the count;
    // errors neither confirm nor reset.
    #[test]
    fn hysteresis() {
        let mut s = ListStatus::new("dbl.test", 0);
        assert_eq!(s.observe(listed(), 1, 3), Change::None);
        assert_eq!(s.observe(Outcome::Clean, 2, 3), Change::None);
        assert_eq!(s.observe(listed(), 3, 3), Change::None);
        assert_eq!(s.observe(error(), 4, 3), Change::None);
        assert_eq!(s.observe(listed(), 5, 3), Change::None);
        assert_eq!(s.errors, 0);
        assert_eq!(
            s.observe(listed(), 6, 3),
            Change::Confirmed {
                reason: "spam domain".into(),
                since: 3
            }
        );
        assert_eq!(s.observe(listed(), 7, 3), Change::None, "confirmed once");
        assert_eq!((s.first_seen, s.last_seen, s.consecutive), (3, 7, 4));
        assert_eq!(s.observe(Outcome::Clean, 8, 3), Change::None);
        assert_eq!(s.observe(Outcome::Clean, 9, 3), Change::None);
        assert_eq!(s.observe(Outcome::Clean, 10, 3), Change::Cleared);
    }

    // Goal: with N = 1 the first listed answer confirms (no hysteresis).
    #[test]
    fn single_confirmation() {
        let mut s = ListStatus::new("dbl.test", 0);
        assert!(matches!(
            s.observe(listed(), 1, 1),
            Change::Confirmed { .. }
        ));
    }
}
