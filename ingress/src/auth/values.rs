//! Result values and method names in RFC 8601 words, mapped from mail-auth's results.

use mail_auth::{DkimResult, DmarcResult, SpfResult};

/// One authentication result (RFC 8601 §2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthValue {
    /// The identity is authorised / the signature verified.
    Pass,
    /// The check failed.
    Fail,
    /// SPF: weak fail (`~all`).
    SoftFail,
    /// Neither pass nor fail (SPF `?`, DKIM signature that could not be processed).
    Neutral,
    /// Nothing to check (no record, unsigned).
    None,
    /// A transient error (DNS), including a check cut by its timeout.
    TempError,
    /// A permanent error (bad record, over a limit).
    PermError,
}

impl AuthValue {
    /// Every value, in counter index order.
    pub const ALL: [AuthValue; 7] = [
        AuthValue::Pass,
        AuthValue::Fail,
        AuthValue::SoftFail,
        AuthValue::Neutral,
        AuthValue::None,
        AuthValue::TempError,
        AuthValue::PermError,
    ];

    /// The RFC 8601 word.
    pub fn label(self) -> &'static str {
        match self {
            AuthValue::Pass => "pass",
            AuthValue::Fail => "fail",
            AuthValue::SoftFail => "softfail",
            AuthValue::Neutral => "neutral",
            AuthValue::None => "none",
            AuthValue::TempError => "temperror",
            AuthValue::PermError => "permerror",
        }
    }

    /// Maps an SPF result.
    pub fn from_spf(result: SpfResult) -> Self {
        match result {
            SpfResult::Pass => AuthValue::Pass,
            SpfResult::Fail => AuthValue::Fail,
            SpfResult::SoftFail => AuthValue::SoftFail,
            SpfResult::Neutral => AuthValue::Neutral,
            SpfResult::TempError => AuthValue::TempError,
            SpfResult::PermError => AuthValue::PermError,
            SpfResult::None => AuthValue::None,
        }
    }

    /// Maps a DKIM result.
    pub fn from_dkim(result: &DkimResult) -> Self {
        match result {
            DkimResult::Pass => AuthValue::Pass,
            DkimResult::Neutral(_) => AuthValue::Neutral,
            DkimResult::Fail(_) => AuthValue::Fail,
            DkimResult::PermError(_) => AuthValue::PermError,
            DkimResult::TempError(_) => AuthValue::TempError,
            DkimResult::None => AuthValue::None,
        }
    }

    /// Maps an ARC chain result: RFC 8617 knows only none, pass and fail, so any chain
    /// mail-auth could not validate (neutral, permerror) is a fail.
    pub fn from_arc(result: &DkimResult) -> Self {
        match result {
            DkimResult::Pass => AuthValue::Pass,
            DkimResult::None => AuthValue::None,
            DkimResult::TempError(_) => AuthValue::TempError,
            DkimResult::Fail(_) | DkimResult::Neutral(_) | DkimResult::PermError(_) => {
                AuthValue::Fail
            }
        }
    }

    /// Maps a DMARC result.
    pub fn from_dmarc(result: &DmarcResult) -> Self {
        match result {
            DmarcResult::Pass => AuthValue::Pass,
            DmarcResult::Fail(_) => AuthValue::Fail,
            DmarcResult::TempError(_) => AuthValue::TempError,
            DmarcResult::PermError(_) => AuthValue::PermError,
            DmarcResult::None => AuthValue::None,
        }
    }
}

/// An authentication method (RFC 8601 method names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// SPF, RFC 7208.
    Spf,
    /// DKIM, RFC 6376.
    Dkim,
    /// DMARC, RFC 7489.
    Dmarc,
    /// ARC, RFC 8617.
    Arc,
}

impl AuthMethod {
    /// Every method, in counter index order.
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::Spf,
        AuthMethod::Dkim,
        AuthMethod::Dmarc,
        AuthMethod::Arc,
    ];

    /// The RFC 8601 method name.
    pub fn label(self) -> &'static str {
        match self {
            AuthMethod::Spf => "spf",
            AuthMethod::Dkim => "dkim",
            AuthMethod::Dmarc => "dmarc",
            AuthMethod::Arc => "arc",
        }
    }
}
