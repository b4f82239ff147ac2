//! SMTP command line parsing (RFC 5321 §4.1, RFC 6531 for SMTPUTF8).
//!
//! Input is one command line without its CRLF. Verbs are case-insensitive; paths follow the
//! RFC 5321 §4.1.2 grammar (dot-string or quoted local part, domain or address literal,
//! optional source route). Non-ASCII in an address is allowed only with SMTPUTF8.

use thiserror::Error;
// The store's limits, so the wire and the mailbox rule agree on what fits.
use tempmx_store::address::{DOMAIN_BYTES_MAX, LABEL_BYTES_MAX, LOCAL_PART_BYTES_MAX};

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// EHLO with the client's name.
    Ehlo(String),
    /// HELO with the client's name.
    Helo(String),
    /// MAIL FROM.
    Mail(MailCommand),
    /// RCPT TO.
    Rcpt(RcptPath),
    /// DATA.
    Data,
    /// BDAT with chunk size and LAST flag.
    Bdat {
        /// Chunk size in octets.
        size: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
    /// VRFY (answered without lookup).
    Vrfy,
    /// HELP.
    Help,
    /// STARTTLS.
    StartTls,
    /// A known command we do not implement (AUTH, EXPN, TURN, ...).
    NotImplemented,
}

/// Why a command line was refused; the session maps each to a reply.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum CommandError {
    /// Unknown verb (500 5.5.2).
    #[error("unrecognized command")]
    Unknown,
    /// Bad arguments (501 5.5.4).
    #[error("syntax error in arguments")]
    Syntax,
    /// Unknown MAIL/RCPT parameter (555 5.5.4).
    #[error("unknown parameter")]
    UnknownParameter,
    /// Non-ASCII address without SMTPUTF8 (553 5.6.7).
    #[error("non-ASCII address without SMTPUTF8")]
    NeedsSmtputf8,
}

/// MAIL FROM with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailCommand {
    /// The reverse path; `None` for the null sender `<>`.
    pub from: Option<Mailbox>,
    /// SIZE= value; saturates at `u64::MAX` for absurd values.
    pub size: Option<u64>,
    /// BODY=8BITMIME was given.
    pub body_8bit: bool,
    /// SMTPUTF8 was given.
    pub smtputf8: bool,
}

/// The argument of RCPT TO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptPath {
    /// `<postmaster>` without a domain.
    Postmaster,
    /// A mailbox, possibly with a source route (`<@a,@b:user@x>`).
    Mailbox {
        /// The mailbox.
        mailbox: Mailbox,
        /// A source route was present (never honoured).
        source_route: bool,
    },
}

/// `local@domain` as given, syntax-checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// The local part exactly as given (quotes kept).
    pub local: String,
    /// The domain part.
    pub domain: Domain,
}

/// The domain part of a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A host name (ASCII or, with SMTPUTF8, U-labels) as given.
    Name(String),
    /// An address literal including the brackets.
    Literal(String),
}

impl Mailbox {
    /// `local@domain` as given.
    pub fn to_address(&self) -> String {
        let d = match &self.domain {
            Domain::Name(d) | Domain::Literal(d) => d,
        };
        // Once per MAIL: pushed, not formatted (the formatter's cost showed in profiles).
        let mut address = String::with_capacity(self.local.len() + 1 + d.len());
        address.push_str(&self.local);
        address.push('@');
        address.push_str(d);
        address
    }
}

/// Parses one command line (without CRLF). `rcpt_utf8` says whether the current transaction
/// used SMTPUTF8 (it governs RCPT; MAIL carries its own flag).
pub fn parse(line: &[u8], rcpt_utf8: bool) -> Result<Command, CommandError> {
    let line = trim_end(line);
    let (verb, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &line[line.len()..]),
    };
    let is = |name: &str| verb.eq_ignore_ascii_case(name.as_bytes());
    if is("EHLO") || is("HELO") {
        let name = client_name(rest)?.to_owned();
        return Ok(if is("EHLO") {
            Command::Ehlo(name)
        } else {
            Command::Helo(name)
        });
    }
    if is("MAIL") {
        return parse_mail(rest).map(Command::Mail);
    }
    if is("RCPT") {
        return parse_rcpt(rest, rcpt_utf8).map(Command::Rcpt);
    }
    if is("BDAT") {
        return parse_bdat(rest);
    }
    if is("NOOP") {
        return Ok(Command::Noop);
    }
    if is("HELP") {
        return Ok(Command::Help);
    }
    if is("VRFY") {
        return if rest.is_empty() {
            Err(CommandError::Syntax)
        } else {
            Ok(Command::Vrfy)
        };
    }
    let bare = [
        ("DATA", Command::Data),
        ("RSET", Command::Rset),
        ("QUIT", Command::Quit),
        ("STARTTLS", Command::StartTls),
    ];
    for (name, cmd) in bare {
        if is(name) {
            return if rest.is_empty() {
                Ok(cmd)
            } else {
                Err(CommandError::Syntax)
            };
        }
    }
    let unimplemented = [
        "AUTH", "EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML", "BURL",
    ];
    if unimplemented.iter().any(|n| is(n)) {
        return Ok(Command::NotImplemented);
    }
    Err(CommandError::Unknown)
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [head @ .., b' ' | b'\t'] = s {
        s = head;
    }
    s
}

/// EHLO/HELO argument: one token of host-name-ish characters, so it is safe to put in the
/// Received header (no spaces, parentheses, semicolons or control characters).
fn client_name(rest: &[u8]) -> Result<&str, CommandError> {
    let s = std::str::from_utf8(rest).map_err(|_| CommandError::Syntax)?;
    let ok = |c: char| c.is_ascii_alphanumeric() || ".-_:[]".contains(c) || !c.is_ascii();
    if s.is_empty() || !s.chars().all(ok) || s.chars().any(char::is_control) {
        return Err(CommandError::Syntax);
    }
    Ok(s)
}

/// Strips `keyword:` (case-insensitive) and optional spaces after the colon.
fn strip_keyword<'a>(rest: &'a [u8], keyword: &str) -> Result<&'a str, CommandError> {
    let k = keyword.len();
    if rest.len() < k || !rest[..k].eq_ignore_ascii_case(keyword.as_bytes()) {
        return Err(CommandError::Syntax);
    }
    let s = std::str::from_utf8(&rest[k..]).map_err(|_| CommandError::Syntax)?;
    Ok(s.trim_start_matches(' '))
}

fn parse_mail(rest: &[u8]) -> Result<MailCommand, CommandError> {
    let s = strip_keyword(rest, "FROM:")?;
    let close = path_end(s)?;
    let mut cmd = MailCommand {
        from: None,
        size: None,
        body_8bit: false,
        smtputf8: false,
    };
    parse_mail_params(&s[close..], &mut cmd)?;
    let inner = &s[1..close - 1];
    if !inner.is_empty() {
        let (_, mb) = parse_routed_mailbox(inner, cmd.smtputf8)?;
        cmd.from = Some(mb);
    }
    Ok(cmd)
}

fn parse_mail_params(params: &str, cmd: &mut MailCommand) -> Result<(), CommandError> {
    let (mut seen_size, mut seen_body) = (false, false);
    for p in params.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        if key.eq_ignore_ascii_case("SIZE") && !seen_size {
            seen_size = true;
            cmd.size = Some(parse_size(value.ok_or(CommandError::Syntax)?)?);
        } else if key.eq_ignore_ascii_case("BODY") && !seen_body {
            seen_body = true;
            let v = value.ok_or(CommandError::Syntax)?;
            if v.eq_ignore_ascii_case("8BITMIME") {
                cmd.body_8bit = true;
            } else if !v.eq_ignore_ascii_case("7BIT") {
                return Err(CommandError::Syntax);
            }
        } else if key.eq_ignore_ascii_case("SMTPUTF8") && !cmd.smtputf8 && value.is_none() {
            cmd.smtputf8 = true;
        } else if ["SIZE", "BODY", "SMTPUTF8"]
            .iter()
            .any(|k| key.eq_ignore_ascii_case(k))
        {
            // A repeated or malformed known parameter.
            return Err(CommandError::Syntax);
        } else {
            return Err(CommandError::UnknownParameter);
        }
    }
    Ok(())
}

/// SIZE value: 1 to 20 digits; values beyond u64 saturate (they are over any limit anyway).
fn parse_size(v: &str) -> Result<u64, CommandError> {
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax);
    }
    Ok(v.parse::<u64>().unwrap_or(u64::MAX))
}

fn parse_bdat(rest: &[u8]) -> Result<Command, CommandError> {
    let s = std::str::from_utf8(rest).map_err(|_| CommandError::Syntax)?;
    let mut parts = s.split(' ');
    let size = parts.next().unwrap_or_default();
    // 19 digits always fit in u64.
    if size.is_empty() || size.len() > 19 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax);
    }
    let size = size.parse::<u64>().map_err(|_| CommandError::Syntax)?;
    let last = match parts.next() {
        None => false,
        Some(l) if l.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    if parts.next().is_some() {
        return Err(CommandError::Syntax);
    }
    Ok(Command::Bdat { size, last })
}

fn parse_rcpt(rest: &[u8], utf8: bool) -> Result<RcptPath, CommandError> {
    let s = strip_keyword(rest, "TO:")?;
    let close = path_end(s)?;
    // RCPT parameters (DSN etc.) are not advertised.
    if !s[close..].trim_matches(' ').is_empty() {
        return Err(CommandError::UnknownParameter);
    }
    let inner = &s[1..close - 1];
    if inner.eq_ignore_ascii_case("postmaster") {
        return Ok(RcptPath::Postmaster);
    }
    let (source_route, mailbox) = parse_routed_mailbox(inner, utf8)?;
    Ok(RcptPath::Mailbox {
        mailbox,
        source_route,
    })
}

/// Index just past the `>` closing the path that starts at `s[0] == '<'`; quoted local parts
/// may contain `>`, so quotes and backslash pairs are skipped.
fn path_end(s: &str) -> Result<usize, CommandError> {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') {
        return Err(CommandError::Syntax);
    }
    let (mut i, mut quoted) = (1, false);
    while i < b.len() {
        match (b[i], quoted) {
            (b'\\', true) => i += 1,
            (b'"', _) => quoted = !quoted,
            (b'>', false) => {
                let end = i + 1;
                // Parameters must be separated from the path by a space.
                return match b.get(end) {
                    None | Some(b' ') => Ok(end),
                    _ => Err(CommandError::Syntax),
                };
            }
            _ => {}
        }
        i += 1;
    }
    Err(CommandError::Syntax)
}

/// `[A-d-l ":"] Mailbox`; returns whether a source route was present.
fn parse_routed_mailbox(s: &str, utf8: bool) -> Result<(bool, Mailbox), CommandError> {
    if s.starts_with('@') {
        let (route, mailbox) = s.split_once(':').ok_or(CommandError::Syntax)?;
        for hop in route.split(',') {
            let d = hop.strip_prefix('@').ok_or(CommandError::Syntax)?;
            parse_domain(d, utf8)?;
        }
        return Ok((true, parse_mailbox(mailbox, utf8)?));
    }
    Ok((false, parse_mailbox(s, utf8)?))
}

/// `Local-part "@" ( Domain / address-literal )`.
pub fn parse_mailbox(s: &str, utf8: bool) -> Result<Mailbox, CommandError> {
    let local_len = local_part_len(s, utf8)?;
    let local = &s[..local_len];
    let domain = s[local_len..]
        .strip_prefix('@')
        .ok_or(CommandError::Syntax)?;
    if local.len() > LOCAL_PART_BYTES_MAX {
        return Err(CommandError::Syntax);
    }
    Ok(Mailbox {
        local: local.to_owned(),
        domain: parse_domain(domain, utf8)?,
    })
}

fn check_non_ascii(c: u8, utf8: bool) -> Result<bool, CommandError> {
    if c.is_ascii() {
        return Ok(false);
    }
    if utf8 {
        Ok(true)
    } else {
        Err(CommandError::NeedsSmtputf8)
    }
}

/// Length of the local part at the start of `s` (dot-string or quoted string).
fn local_part_len(s: &str, utf8: bool) -> Result<usize, CommandError> {
    let b = s.as_bytes();
    if b.first() == Some(&b'"') {
        return quoted_len(b, utf8);
    }
    let mut i = 0;
    let mut prev_dot = true; // forbids a leading dot and ".."
    while i < b.len() && b[i] != b'@' {
        let c = b[i];
        if c == b'.' {
            if prev_dot {
                return Err(CommandError::Syntax);
            }
            prev_dot = true;
        } else if is_atext(c) || check_non_ascii(c, utf8)? {
            prev_dot = false;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    if i == 0 || prev_dot {
        return Err(CommandError::Syntax);
    }
    Ok(i)
}

fn quoted_len(b: &[u8], utf8: bool) -> Result<usize, CommandError> {
    let mut i = 1;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' => return Ok(i + 1),
            b'\\' => {
                let next = b.get(i + 1).copied().ok_or(CommandError::Syntax)?;
                if !(32..=126).contains(&next) {
                    return Err(CommandError::Syntax);
                }
                i += 2;
                continue;
            }
            32..=126 => {}
            _ => {
                if !check_non_ascii(c, utf8)? {
                    return Err(CommandError::Syntax);
                }
            }
        }
        i += 1;
    }
    Err(CommandError::Syntax)
}

fn is_atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c)
}

/// A domain name or an address literal.
pub fn parse_domain(s: &str, utf8: bool) -> Result<Domain, CommandError> {
    if s.starts_with('[') {
        return parse_literal(s).map(|()| Domain::Literal(s.to_owned()));
    }
    if s.is_empty() || s.len() > DOMAIN_BYTES_MAX {
        return Err(CommandError::Syntax);
    }
    for label in s.split('.') {
        check_label(label.as_bytes(), utf8)?;
    }
    Ok(Domain::Name(s.to_owned()))
}

fn check_label(l: &[u8], utf8: bool) -> Result<(), CommandError> {
    if l.is_empty() || l.len() > LABEL_BYTES_MAX || l[0] == b'-' || l[l.len() - 1] == b'-' {
        return Err(CommandError::Syntax);
    }
    for &c in l {
        if !(c.is_ascii_alphanumeric() || c == b'-' || check_non_ascii(c, utf8)?) {
            return Err(CommandError::Syntax);
        }
    }
    Ok(())
}

/// `[IPv4]`, `[IPv6:addr]` or a general literal `[tag:content]` (RFC 5321 §4.1.3).
fn parse_literal(s: &str) -> Result<(), CommandError> {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(CommandError::Syntax)?;
    if inner.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    if let Some(v6) = inner.strip_prefix("IPv6:") {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| CommandError::Syntax);
    }
    let (tag, content) = inner.split_once(':').ok_or(CommandError::Syntax)?;
    let tag_ok = !tag.is_empty() && tag.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    let dcontent_ok = |c: u8| (33..=90).contains(&c) || (94..=126).contains(&c);
    if tag_ok && !content.is_empty() && content.bytes().all(dcontent_ok) {
        return Ok(());
    }
    Err(CommandError::Syntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(local: &str, domain: &str) -> Mailbox {
        Mailbox {
            local: local.into(),
            domain: Domain::Name(domain.into()),
        }
    }

    fn mail(from: Option<Mailbox>, size: Option<u64>, body_8bit: bool, smtputf8: bool) -> Command {
        Command::Mail(MailCommand {
            from,
            size,
            body_8bit,
            smtputf8,
        })
    }

    fn rcpt(local: &str, domain: &str) -> Command {
        Command::Rcpt(RcptPath::Mailbox {
            mailbox: mb(local, domain),
            source_route: false,
        })
    }

    // Goal: verbs are case-insensitive and argument rules hold; method: (line, expected) table.
    #[test]
    fn verbs() {
        use CommandError::*;
        let cases: Vec<(&str, Result<Command, CommandError>)> = vec![
            (
                "EHLO client.example",
                Ok(Command::Ehlo("client.example".into())),
            ),
            ("ehlo [192.0.2.1]", Ok(Command::Ehlo("[192.0.2.1]".into()))),
            ("HeLo x", Ok(Command::Helo("x".into()))),
            ("EHLO", Err(Syntax)),
            ("EHLO a b", Err(Syntax)),
            ("EHLO a(b)", Err(Syntax)),
            ("EHLO a;b", Err(Syntax)),
            ("data", Ok(Command::Data)),
            ("DATA x", Err(Syntax)),
            ("RSET", Ok(Command::Rset)),
            ("NOOP whatever", Ok(Command::Noop)),
            ("QUIT", Ok(Command::Quit)),
            ("QUIT now", Err(Syntax)),
            ("VRFY root", Ok(Command::Vrfy)),
            ("VRFY", Err(Syntax)),
            ("HELP", Ok(Command::Help)),
            ("StartTLS", Ok(Command::StartTls)),
            ("AUTH PLAIN", Ok(Command::NotImplemented)),
            ("EXPN list", Ok(Command::NotImplemented)),
            ("TURN", Ok(Command::NotImplemented)),
            ("FOO", Err(Unknown)),
            ("", Err(Unknown)),
            (" NOOP", Err(Unknown)),
            ("NOOP  ", Ok(Command::Noop)),
            (
                "BDAT 100",
                Ok(Command::Bdat {
                    size: 100,
                    last: false,
                }),
            ),
            (
                "bdat 0 last",
                Ok(Command::Bdat {
                    size: 0,
                    last: true,
                }),
            ),
            ("BDAT", Err(Syntax)),
            ("BDAT -1", Err(Syntax)),
            ("BDAT 1 FIRST", Err(Syntax)),
            ("BDAT 99999999999999999999", Err(Syntax)),
            ("BDAT 1 LAST x", Err(Syntax)),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line.as_bytes(), false), want, "{line:?}");
        }
    }

    // Goal: MAIL paths and parameters per RFC 5321 §4.1.2 and the advertised extensions.
    #[test]
    fn mail_from() {
        use CommandError::*;
        let cases: Vec<(&str, Result<Command, CommandError>)> = vec![
            (
                "MAIL FROM:<a@b.example>",
                Ok(mail(Some(mb("a", "b.example")), None, false, false)),
            ),
            ("mail from:<>", Ok(mail(None, None, false, false))),
            (
                "MAIL FROM: <a@b.example>",
                Ok(mail(Some(mb("a", "b.example")), None, false, false)),
            ),
            (
                "MAIL FROM:<a@b.example> SIZE=1000",
                Ok(mail(Some(mb("a", "b.example")), Some(1000), false, false)),
            ),
            (
                "MAIL FROM:<> size=5 body=8bitmime",
                Ok(mail(None, Some(5), true, false)),
            ),
            ("MAIL FROM:<> BODY=7BIT", Ok(mail(None, None, false, false))),
            ("MAIL FROM:<> BODY=BINARYMIME", Err(Syntax)),
            (
                "MAIL FROM:<> SIZE=99999999999999999999",
                Ok(mail(None, Some(u64::MAX), false, false)),
            ),
            ("MAIL FROM:<> SIZE=", Err(Syntax)),
            ("MAIL FROM:<> SIZE=1x", Err(Syntax)),
            ("MAIL FROM:<> SIZE=1 SIZE=2", Err(Syntax)),
            ("MAIL FROM:<> SMTPUTF8=yes", Err(Syntax)),
            ("MAIL FROM:<> RET=FULL", Err(UnknownParameter)),
            ("MAIL FROM:<> XFOO", Err(UnknownParameter)),
            ("MAIL FROM:<>SIZE=1", Err(Syntax)),
            ("MAIL FROM:a@b.example", Err(Syntax)),
            ("MAIL FROM:<a@b.example", Err(Syntax)),
            ("MAIL TO:<a@b.example>", Err(Syntax)),
            ("MAIL", Err(Syntax)),
            (
                "MAIL FROM:<@relay.example:a@b.example>",
                Ok(mail(Some(mb("a", "b.example")), None, false, false)),
            ),
            (
                "MAIL FROM:<\"a b\"@b.example>",
                Ok(mail(Some(mb("\"a b\"", "b.example")), None, false, false)),
            ),
            (
                "MAIL FROM:<\"a>b\"@b.example>",
                Ok(mail(Some(mb("\"a>b\"", "b.example")), None, false, false)),
            ),
            ("MAIL FROM:<ü@b.example>", Err(NeedsSmtputf8)),
            (
                "MAIL FROM:<ü@b.example> SMTPUTF8",
                Ok(mail(Some(mb("ü", "b.example")), None, false, true)),
            ),
            (
                "MAIL FROM:<a@bü.example> SMTPUTF8",
                Ok(mail(Some(mb("a", "bü.example")), None, false, true)),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line.as_bytes(), false), want, "{line:?}");
        }
        assert_eq!(parse(b"MAIL FROM:<\xff@b>", false), Err(Syntax));
    }

    // Goal: RCPT path forms, including the ones the relay policy must see (source routes,
    // literals) and the ones the grammar itself refuses (trailing dots, empty labels).
    #[test]
    fn rcpt_to() {
        use CommandError::*;
        let routed = Command::Rcpt(RcptPath::Mailbox {
            mailbox: mb("u", "x.test"),
            source_route: true,
        });
        let literal = Command::Rcpt(RcptPath::Mailbox {
            mailbox: Mailbox {
                local: "u".into(),
                domain: Domain::Literal("[127.0.0.1]".into()),
            },
            source_route: false,
        });
        let cases: Vec<(&str, bool, Result<Command, CommandError>)> = vec![
            ("RCPT TO:<u@pool.test>", false, Ok(rcpt("u", "pool.test"))),
            (
                "rcpt to:<U.V+tag@Pool.Test>",
                false,
                Ok(rcpt("U.V+tag", "Pool.Test")),
            ),
            (
                "RCPT TO:<postmaster>",
                false,
                Ok(Command::Rcpt(RcptPath::Postmaster)),
            ),
            (
                "RCPT TO:<PostMaster>",
                false,
                Ok(Command::Rcpt(RcptPath::Postmaster)),
            ),
            ("RCPT TO:<@a.test,@b.test:u@x.test>", false, Ok(routed)),
            ("RCPT TO:<u@[127.0.0.1]>", false, Ok(literal)),
            (
                "RCPT TO:<u@[IPv6:::1]>",
                false,
                Ok(Command::Rcpt(RcptPath::Mailbox {
                    mailbox: Mailbox {
                        local: "u".into(),
                        domain: Domain::Literal("[IPv6:::1]".into()),
                    },
                    source_route: false,
                })),
            ),
            ("RCPT TO:<u@[IPv6:zz]>", false, Err(Syntax)),
            ("RCPT TO:<u@[300.1.1.1]>", false, Err(Syntax)),
            (
                "RCPT TO:<u%evil@pool.test>",
                false,
                Ok(rcpt("u%evil", "pool.test")),
            ),
            ("RCPT TO:<u@pool.test.>", false, Err(Syntax)),
            ("RCPT TO:<u@pool..test>", false, Err(Syntax)),
            ("RCPT TO:<u@-pool.test>", false, Err(Syntax)),
            ("RCPT TO:<.u@pool.test>", false, Err(Syntax)),
            ("RCPT TO:<u.@pool.test>", false, Err(Syntax)),
            ("RCPT TO:<u..v@pool.test>", false, Err(Syntax)),
            ("RCPT TO:<u@v@pool.test>", false, Err(Syntax)),
            ("RCPT TO:<@pool.test>", false, Err(Syntax)),
            ("RCPT TO:<u>", false, Err(Syntax)),
            ("RCPT TO:<>", false, Err(Syntax)),
            (
                "RCPT TO:<u@pool.test> NOTIFY=NEVER",
                false,
                Err(UnknownParameter),
            ),
            (
                "RCPT TO:<\"u@evil\"@pool.test>",
                false,
                Ok(rcpt("\"u@evil\"", "pool.test")),
            ),
            (
                "RCPT TO:<\"u\\\"q\"@pool.test>",
                false,
                Ok(rcpt("\"u\\\"q\"", "pool.test")),
            ),
            ("RCPT TO:<\"unterminated@pool.test>", false, Err(Syntax)),
            ("RCPT TO:<jöran@pool.test>", false, Err(NeedsSmtputf8)),
            (
                "RCPT TO:<jöran@pool.test>",
                true,
                Ok(rcpt("jöran", "pool.test")),
            ),
            (
                "RCPT TO:<u@bücher.test>",
                true,
                Ok(rcpt("u", "bücher.test")),
            ),
        ];
        for (line, utf8, want) in cases {
            assert_eq!(parse(line.as_bytes(), utf8), want, "{line:?}");
        }
        let long_local = format!("RCPT TO:<{}@pool.test>", "a".repeat(65));
        assert_eq!(parse(long_local.as_bytes(), false), Err(Syntax));
        let max_local = format!("RCPT TO:<{}@pool.test>", "a".repeat(64));
        assert!(parse(max_local.as_bytes(), false).is_ok());
        let long_label = format!("RCPT TO:<u@{}.test>", "a".repeat(64));
        assert_eq!(parse(long_label.as_bytes(), false), Err(Syntax));
        // The store's domain limit (RFC 1035, 253 octets) holds on the wire too.
        let max_domain = format!("{}.tests", vec!["a".repeat(61); 4].join("."));
        assert_eq!(max_domain.len(), DOMAIN_BYTES_MAX);
        let at_max = format!("RCPT TO:<u@{max_domain}>");
        assert!(parse(at_max.as_bytes(), false).is_ok());
        let over = format!("RCPT TO:<u@{max_domain}s>");
        assert_eq!(parse(over.as_bytes(), false), Err(Syntax));
    }

    proptest::proptest! {
        // Goal: no panic on any line, in either SMTPUTF8 mode.
        #[test]
        fn never_panics(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), utf8: bool) {
            let _ = parse(&line, utf8);
            let mut prefixed = b"RCPT TO:<".to_vec();
            prefixed.extend_from_slice(&line);
            let _ = parse(&prefixed, utf8);
            let mut prefixed = b"MAIL FROM:<".to_vec();
            prefixed.extend_from_slice(&line);
            let _ = parse(&prefixed, utf8);
        }
    }
}
