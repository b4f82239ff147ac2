//! The Received: trace header (RFC 5321 §4.4) we prepend to every accepted message.

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Session;
use crate::proto::decimal::Decimal;

impl Session {
    /// Writes the Received header for the current transaction into `self.trace`.
    pub(super) fn write_received(&mut self, now: SystemTime) {
        let helo = self.helo.as_ref().map_or("unknown", |(h, _)| h.as_str());
        let protocol = self.protocol();
        let h = &mut self.trace;
        h.clear();
        h.reserve(256);
        // Straight into the reused trace buffer, in pieces copied as bytes (the formatter
        // cost more than the rest of the header): no String per message.
        h.extend_from_slice(b"Received: from ");
        h.extend_from_slice(helo.as_bytes());
        match self.peer.ip.to_canonical() {
            // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
            IpAddr::V4(v4) => {
                h.extend_from_slice(b" (unknown [");
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        h.push(b'.');
                    }
                    h.extend_from_slice(Decimal::new(u64::from(octet)).as_bytes());
                }
            }
            IpAddr::V6(v6) => {
                // Writing to a Vec cannot fail.
                let _ = write!(h, " (unknown [IPv6:{v6}");
            }
        }
        h.extend_from_slice(b"])\r\n\tby ");
        h.extend_from_slice(self.ctx.hostname.as_bytes());
        h.extend_from_slice(b" (tempmx) with ");
        h.extend_from_slice(protocol.as_bytes());
        h.extend_from_slice(b"\r\n");
        if let Some(tls) = &self.tls {
            let _ = write!(
                h,
                "\t(using {} with cipher {})\r\n",
                tls.version, tls.cipher
            );
        }
        h.extend_from_slice(b"\tid ");
        push_hex(h, self.peer.session_id);
        h.push(b'.');
        h.extend_from_slice(Decimal::new(self.txn.seq).as_bytes());
        if let [only] = self.txn.recipients.as_slice() {
            h.extend_from_slice(b"\r\n\tfor <");
            h.extend_from_slice(only.as_str().as_bytes());
            h.push(b'>');
        }
        h.extend_from_slice(b";\r\n\t");
        write_date(h, now);
        h.extend_from_slice(b"\r\n");
    }

    /// The `with` protocol name (RFC 3848, RFC 6531).
    fn protocol(&self) -> &'static str {
        let extended = self.helo.as_ref().is_some_and(|(_, e)| *e);
        match (extended, self.txn.smtputf8, self.tls.is_some()) {
            (false, _, _) => "SMTP",
            (true, true, true) => "UTF8SMTPS",
            (true, true, false) => "UTF8SMTP",
            (true, false, true) => "ESMTPS",
            (true, false, false) => "ESMTP",
        }
    }
}

/// Appends `v` in lowercase hex without leading zeroes, as `{:x}` does.
fn push_hex(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0; 16];
    // Eight bytes make exactly sixteen digits: the slice always fits.
    let fits = hex::encode_to_slice(v.to_be_bytes(), &mut digits);
    debug_assert!(fits.is_ok());
    let first = digits.iter().position(|&d| d != b'0').unwrap_or(15);
    out.extend_from_slice(&digits[first..]);
}

thread_local! {
    /// The date last written on this thread and its second: under load the messages of one
    /// second share it, so it is formatted once a second rather than once a message.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends [`rfc5322_date`] of `t` to `out`.
fn write_date(out: &mut Vec<u8>, t: SystemTime) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(second, date)| {
        if *second != secs {
            *date = rfc5322_date(t);
            *second = secs;
        }
        out.extend_from_slice(date.as_bytes());
    });
}

/// RFC 5322 date in UTC, e.g. `Mon, 23 Nov 2026 11:34:38 +0000`.
pub(super) fn rfc5322_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Times before 1970 only come from a broken clock; they print as the epoch.
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31); H. Hinnant's civil_from_days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // Goal: the formatter-free hex of the header is what `{:x}` writes; method: values at
    // the edges and in between.
    #[test]
    fn hex_as_the_formatter_writes_it() {
        for v in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            4096,
            1_795_433_678,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut hex = Vec::new();
            push_hex(&mut hex, v);
            assert_eq!(
                String::from_utf8(hex).as_deref(),
                Ok(format!("{v:x}").as_str())
            );
        }
    }

    // Goal: the date format and calendar arithmetic; method: known instants.
    #[test]
    fn dates() {
        let at = |s: u64| rfc5322_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(at(1_795_433_678), "Mon, 23 Nov 2026 11:34:38 +0000");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 +0000");
    }

    // Goal: the per-thread date cache writes the date of the second asked for, also when
    // the second changes back and forth; method: alternate instants against rfc5322_date.
    #[test]
    fn cached_dates() {
        for s in [0, 0, 59, 951_782_400, 59, 951_782_400, 951_782_401] {
            let t = UNIX_EPOCH + Duration::from_millis(s * 1000 + 500);
            let mut out = Vec::new();
            write_date(&mut out, t);
            assert_eq!(out, rfc5322_date(t).into_bytes(), "second {s}");
        }
    }
}
