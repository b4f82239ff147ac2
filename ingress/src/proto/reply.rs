//! Every SMTP reply the ingress sends, in one table: code, RFC 3463 enhanced status, text.
//!
//! The 220 greeting, the EHLO/HELO 250 lines and 354 carry no enhanced code: RFC 2034 defines
//! enhanced codes for 2xx/4xx/5xx replies to commands, and the greeting precedes EHLO.

use super::decimal::Decimal;

/// A reply kind; its code, enhanced status and text come from [`Reply::entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// 214 to HELP.
    Help,
    /// 220 to STARTTLS.
    TlsReady,
    /// 221 to QUIT.
    Closing,
    /// 250 to NOOP and RSET.
    Ok,
    /// 250 to MAIL.
    SenderOk,
    /// 250 to RCPT.
    RecipientOk,
    /// 250 after a non-final BDAT chunk (detail: octets).
    ChunkOk,
    /// 250 after the store took the message (detail: id).
    Stored,
    /// 252 to VRFY (no enumeration).
    CannotVerify,
    /// 354 to DATA.
    StartData,
    /// 421 when errors_max is exceeded.
    TooManyErrors,
    /// 421 when messages_per_connection_max is reached.
    TooManyMessages,
    /// 421 before the session (connection caps); written by the driver.
    TooManyConnections,
    /// 421 on idle or session timeout.
    Timeout,
    /// 421 when the appliance shuts down.
    ShuttingDown,
    /// 451 when the store failed transiently.
    StoreTemporary,
    /// 452 for a recipient over recipients_max.
    TooManyRecipients,
    /// 451 for a greylisted recipient (detail: the retry hint).
    Greylisted,
    /// 451 for a recipient whose shared greylisting state could not be read (fleet mode).
    GreylistUnavailable,
    /// 500 for an unrecognised command.
    UnknownCommand,
    /// 500 for a command line with a bare CR or LF.
    BareLineEndingCommand,
    /// 500 for a command line over command_line_bytes_max.
    LineTooLong,
    /// 501 for bad arguments.
    SyntaxError,
    /// 502 for AUTH, EXPN, TURN and friends.
    NotImplemented,
    /// 502 to STARTTLS when TLS is not configured.
    TlsUnavailable,
    /// 503 for commands before EHLO/HELO.
    NeedHelo,
    /// 503 for RCPT before MAIL.
    NeedMail,
    /// 503 for DATA/BDAT before a recipient.
    NeedRcpt,
    /// 503 for MAIL inside a transaction.
    NestedMail,
    /// 503 for DATA after BDAT.
    DataAfterBdat,
    /// 503 for RCPT after BDAT.
    RcptAfterBdat,
    /// 503 for STARTTLS on TLS.
    TlsActive,
    /// 503 for STARTTLS inside a transaction.
    TlsInTransaction,
    /// 550 for a domain outside the pool.
    RelayDenied,
    /// 550 to MAIL when SPF fails and authentication enforces (RFC 7372).
    SpfFailed,
    /// 550 after the data when DMARC fails under a `p=reject` policy and authentication enforces.
    DmarcRejected,
    /// 550 for a retired pool domain.
    DomainRetired,
    /// 550 for an unknown mailbox (registered-only mode, postmaster).
    UnknownMailbox,
    /// 550 for a message with a bare CR or LF (SMTP smuggling defence).
    BareLineEndingMessage,
    /// 550 for a message text line over text_line_bytes_max.
    TextLineTooLong,
    /// 552 for a message over message_bytes_max.
    MessageTooLarge,
    /// 553 for a non-ASCII address without SMTPUTF8 (RFC 6531 §3.6.1).
    NeedsSmtputf8,
    /// 554 to a client that talks before the greeting.
    EarlyTalker,
    /// 555 for unknown MAIL/RCPT parameters.
    UnknownParameter,
}

/// One row of the reply table.
struct Entry {
    code: u16,
    enhanced: &'static str,
    text: &'static str,
}

const fn e(code: u16, enhanced: &'static str, text: &'static str) -> Entry {
    Entry {
        code,
        enhanced,
        text,
    }
}

impl Reply {
    /// The one table.
    fn entry(self) -> Entry {
        use Reply::*;
        match self {
            Help => e(
                214,
                "2.0.0",
                "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT",
            ),
            TlsReady => e(220, "2.0.0", "Ready to start TLS"),
            Closing => e(221, "2.0.0", "Bye"),
            Ok => e(250, "2.0.0", "OK"),
            SenderOk => e(250, "2.1.0", "Sender OK"),
            RecipientOk => e(250, "2.1.5", "Recipient OK"),
            ChunkOk => e(250, "2.0.0", "Chunk received, octets:"),
            Stored => e(250, "2.0.0", "OK, stored as"),
            CannotVerify => e(252, "2.5.0", "Cannot VRFY user, but will accept message"),
            StartData => e(354, "", "End data with <CR><LF>.<CR><LF>"),
            TooManyErrors => e(421, "4.7.0", "Too many errors, closing connection"),
            TooManyMessages => e(
                421,
                "4.7.0",
                "Too many messages on this connection, closing",
            ),
            TooManyConnections => e(421, "4.7.0", "Too many connections, try again later"),
            Timeout => e(421, "4.4.2", "Timeout, closing connection"),
            ShuttingDown => e(421, "4.3.2", "Service shutting down, closing connection"),
            StoreTemporary => e(451, "4.3.0", "Temporary storage failure, try again later"),
            TooManyRecipients => e(452, "4.5.3", "Too many recipients"),
            Greylisted => e(451, "4.7.1", "Greylisted, please try again"),
            GreylistUnavailable => e(
                451,
                "4.3.0",
                "Greylisting state unavailable, try again later",
            ),
            UnknownCommand => e(500, "5.5.2", "Command unrecognized"),
            BareLineEndingCommand => e(500, "5.5.2", "Bare CR or LF not allowed in commands"),
            LineTooLong => e(500, "5.5.6", "Line too long"),
            SyntaxError => e(501, "5.5.4", "Syntax error in parameters or arguments"),
            NotImplemented => e(502, "5.5.1", "Command not implemented"),
            TlsUnavailable => e(502, "5.5.1", "STARTTLS not available"),
            NeedHelo => e(503, "5.5.1", "Send EHLO or HELO first"),
            NeedMail => e(503, "5.5.1", "Send MAIL first"),
            NeedRcpt => e(503, "5.5.1", "Send RCPT first"),
            NestedMail => e(503, "5.5.1", "Transaction already in progress"),
            DataAfterBdat => e(503, "5.5.1", "DATA not allowed after BDAT"),
            RcptAfterBdat => e(503, "5.5.1", "RCPT not allowed after BDAT"),
            TlsActive => e(503, "5.5.1", "TLS already active"),
            TlsInTransaction => e(503, "5.5.1", "STARTTLS not allowed inside a transaction"),
            RelayDenied => e(550, "5.7.1", "Relaying denied"),
            SpfFailed => e(550, "5.7.23", "SPF validation failed"),
            DmarcRejected => e(550, "5.7.1", "Rejected by the sender domain's DMARC policy"),
            DomainRetired => e(550, "5.1.2", "Domain no longer accepts mail"),
            UnknownMailbox => e(550, "5.1.1", "Mailbox unknown"),
            BareLineEndingMessage => e(550, "5.6.0", "Bare CR or LF not allowed in message"),
            TextLineTooLong => e(550, "5.6.0", "Message line too long"),
            MessageTooLarge => e(552, "5.3.4", "Message size exceeds fixed maximum"),
            NeedsSmtputf8 => e(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"),
            EarlyTalker => e(554, "5.5.0", "Protocol error: talking before the greeting"),
            UnknownParameter => e(555, "5.5.4", "Parameter not recognized"),
        }
    }

    /// The three-digit reply code.
    pub fn code(self) -> u16 {
        self.entry().code
    }

    /// Appends the reply line.
    pub fn write(self, out: &mut Vec<u8>) {
        self.write_line(out, None);
    }

    /// Appends the reply line with a detail after the text (an id, a count).
    pub fn write_detail(self, out: &mut Vec<u8>, detail: &[u8]) {
        self.write_line(out, Some(detail));
    }

    fn write_line(self, out: &mut Vec<u8>, detail: Option<&[u8]>) {
        let en = self.entry();
        debug_assert!(
            (200..600).contains(&en.code),
            "a reply code has three digits"
        );
        // Pieces copied as bytes: `write!` costs more than the rest of a reply together.
        out.extend_from_slice(Decimal::new(u64::from(en.code)).as_bytes());
        if !en.enhanced.is_empty() {
            out.push(b' ');
            out.extend_from_slice(en.enhanced.as_bytes());
        }
        out.push(b' ');
        out.extend_from_slice(en.text.as_bytes());
        if let Some(d) = detail {
            out.push(b' ');
            out.extend_from_slice(d);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The refusal the driver writes itself when a core or an IP is over its connection cap.
pub fn too_many_connections() -> &'static [u8] {
    b"421 4.7.0 Too many connections, try again later\r\n"
}

/// Appends the 220 greeting.
pub fn write_greeting(out: &mut Vec<u8>, hostname: &str) {
    out.extend_from_slice(b"220 ");
    out.extend_from_slice(hostname.as_bytes());
    out.extend_from_slice(b" ESMTP tempmx\r\n");
}

/// Appends the one-line HELO reply.
pub fn write_helo(out: &mut Vec<u8>, hostname: &str) {
    out.extend_from_slice(b"250 ");
    out.extend_from_slice(hostname.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the multi-line EHLO reply; STARTTLS only when `starttls` is true.
pub fn write_ehlo(out: &mut Vec<u8>, hostname: &str, size_max: usize, starttls: bool) {
    out.extend_from_slice(b"250-");
    out.extend_from_slice(hostname.as_bytes());
    out.extend_from_slice(b"\r\n250-PIPELINING\r\n");
    out.extend_from_slice(b"250-SIZE ");
    out.extend_from_slice(Decimal::new(size_max as u64).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b"250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n");
    out.extend_from_slice(if starttls {
        b"250-CHUNKING\r\n250 STARTTLS\r\n".as_slice()
    } else {
        b"250 CHUNKING\r\n".as_slice()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(r: Reply) -> String {
        let mut v = Vec::new();
        r.write(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    // Goal: the wire form matches the table for representative rows, including the ones the
    // issue names explicitly.
    #[test]
    fn table_rows() {
        let cases = [
            (Reply::CannotVerify, "252 2.5.0 "),
            (Reply::UnknownCommand, "500 5.5.2 "),
            (Reply::LineTooLong, "500 5.5.6 "),
            (Reply::SyntaxError, "501 5.5.4 "),
            (Reply::NeedMail, "503 5.5.1 "),
            (Reply::UnknownParameter, "555 5.5.4 "),
            (Reply::MessageTooLarge, "552 5.3.4 "),
            (Reply::TooManyRecipients, "452 4.5.3 "),
            (Reply::TooManyErrors, "421 4.7.0 "),
            (Reply::EarlyTalker, "554 5.5.0 "),
            (Reply::RelayDenied, "550 5.7.1 "),
            (Reply::DomainRetired, "550 5.1.2 "),
            (Reply::Greylisted, "451 4.7.1 "),
            (Reply::GreylistUnavailable, "451 4.3.0 "),
            (Reply::SpfFailed, "550 5.7.23 "),
            (Reply::DmarcRejected, "550 5.7.1 "),
            (Reply::Timeout, "421 4.4.2 "),
            (Reply::ShuttingDown, "421 4.3.2 "),
            (Reply::StartData, "354 End"),
        ];
        for (r, prefix) in cases {
            let l = line(r);
            assert!(l.starts_with(prefix), "{r:?}: {l}");
            assert!(l.ends_with("\r\n"));
        }
    }

    // Goal: every 2xx/4xx/5xx row has an enhanced code whose class matches the reply code.
    #[test]
    fn enhanced_class_matches_code() {
        use Reply::*;
        let all = [
            Help,
            TlsReady,
            Closing,
            Ok,
            SenderOk,
            RecipientOk,
            ChunkOk,
            Stored,
            CannotVerify,
            TooManyErrors,
            TooManyMessages,
            TooManyConnections,
            Timeout,
            ShuttingDown,
            StoreTemporary,
            TooManyRecipients,
            Greylisted,
            GreylistUnavailable,
            UnknownCommand,
            BareLineEndingCommand,
            LineTooLong,
            SyntaxError,
            NotImplemented,
            TlsUnavailable,
            NeedHelo,
            NeedMail,
            NeedRcpt,
            NestedMail,
            DataAfterBdat,
            RcptAfterBdat,
            TlsActive,
            TlsInTransaction,
            RelayDenied,
            SpfFailed,
            DmarcRejected,
            DomainRetired,
            UnknownMailbox,
            BareLineEndingMessage,
            TextLineTooLong,
            MessageTooLarge,
            NeedsSmtputf8,
            EarlyTalker,
            UnknownParameter,
        ];
        for r in all {
            let en = r.entry();
            let class = en.enhanced.as_bytes().first().copied();
            assert_eq!(class, Some(b'0' + (en.code / 100) as u8), "{r:?}");
        }
        assert_eq!(line(TooManyConnections).as_bytes(), too_many_connections());
    }

    // Goal: EHLO lists the extensions, STARTTLS only on request, last line with a space.
    #[test]
    fn ehlo_lines() {
        let mut v = Vec::new();
        write_ehlo(&mut v, "mx.test", 1000, true);
        let s = String::from_utf8(v).unwrap_or_default();
        assert_eq!(
            s,
            "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 STARTTLS\r\n"
        );
        let mut v = Vec::new();
        write_ehlo(&mut v, "mx.test", 1000, false);
        let s = String::from_utf8(v).unwrap_or_default();
        assert!(s.ends_with("250 CHUNKING\r\n") && !s.contains("STARTTLS"));
    }
}
