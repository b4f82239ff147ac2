//! The vocabulary every crate shares: a pool [`Domain`] and a pool [`Mailbox`].
//!
//! # The rule (written once, here)
//! - **Domain**: the name is mapped to ASCII with IDNA (UTS 46, which also lower-cases),
//!   must not end in a dot, is at most [`DOMAIN_BYTES_MAX`] octets with labels of at most
//!   [`LABEL_BYTES_MAX`] (RFC 1035 §2.3.4), has at least two labels of letters, digits and
//!   inner hyphens, and its last label is not all digits, so it is never an IP address
//!   (RFC 3696 §2); bracketed address literals fail the label rule.
//! - **Mailbox**: `local@domain` with a [`Domain`] as above and the local part
//!   case-folded, because temp-mail addresses are case-insensitive for their owners: the
//!   local part is NFC-normalised and mapped to lower case (ASCII and, with SMTPUTF8,
//!   Unicode). A quoted local part whose content is a plain dot-atom is the same mailbox as
//!   that dot-atom, so the quotes are dropped. It is at most [`LOCAL_PART_BYTES_MAX`]
//!   octets (RFC 5321 §4.5.3.1.1) and the whole address at most [`ADDRESS_BYTES_MAX`]
//!   (the RFC 5321 §4.5.3.1.3 path limit less the angle brackets), both after folding.
//!
//! Two spellings that fold to the same text are one mailbox everywhere: at RCPT, in the
//! registry, in the store index, in API paths, in greylisting and in the fleet's keys.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::str::FromStr;

use icu_normalizer::ComposingNormalizerBorrowed;

/// Longest domain name in presentation form without the root dot (RFC 1035 §2.3.4).
pub const DOMAIN_BYTES_MAX: usize = 253;
/// Longest label of a domain name (RFC 1035 §2.3.4).
pub const LABEL_BYTES_MAX: usize = 63;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const LOCAL_PART_BYTES_MAX: usize = 64;
/// Longest address: the RFC 5321 §4.5.3.1.3 path limit (256) less the angle brackets.
pub const ADDRESS_BYTES_MAX: usize = 254;

/// Why a text is not a pool domain or mailbox.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The address has no `@`.
    #[error("an address needs an `@`")]
    NoAt,
    /// IDNA refused the name.
    #[error("not a valid internationalised domain name")]
    Idna,
    /// The domain is empty, ends in a dot, or is longer than the limit.
    #[error("a domain is 1 to {DOMAIN_BYTES_MAX} octets without a trailing dot")]
    DomainLength,
    /// A label is empty, too long, or has a character a host name cannot have.
    #[error("a domain label is 1 to {LABEL_BYTES_MAX} letters, digits or inner hyphens")]
    Label,
    /// The name has a single label.
    #[error("a domain needs at least two labels")]
    SingleLabel,
    /// The name is an IP address or an address literal.
    #[error("an IP address is not a domain")]
    IpLiteral,
    /// The local part is empty or longer than the limit.
    #[error("a local part is 1 to {LOCAL_PART_BYTES_MAX} octets")]
    LocalLength,
    /// The local part has a control character, a space outside quotes, or an unbalanced
    /// quote.
    #[error("the local part has a control character, a space outside quotes or a stray quote")]
    LocalSyntax,
    /// The whole address is longer than the limit.
    #[error("an address is at most {ADDRESS_BYTES_MAX} octets")]
    AddressLength,
}

/// A pool domain name, normalised by the rule in the module docs; valid by construction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(Box<str>);

impl Domain {
    /// Normalises `name` (U-labels or A-labels, any case) into a domain.
    pub fn parse(name: &str) -> Result<Self, AddressError> {
        if name.starts_with('[') {
            return Err(AddressError::IpLiteral);
        }
        let ascii = idna::domain_to_ascii(name).map_err(|_| AddressError::Idna)?;
        if ascii.is_empty() || ascii.len() > DOMAIN_BYTES_MAX || ascii.ends_with('.') {
            return Err(AddressError::DomainLength);
        }
        let mut labels = 0;
        let mut last = "";
        for label in ascii.split('.') {
            if !label_is_host(label) {
                return Err(AddressError::Label);
            }
            labels += 1;
            last = label;
        }
        if labels < 2 {
            return Err(AddressError::SingleLabel);
        }
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::IpLiteral);
        }
        // IDNA lower-cases already; this only guards the invariant.
        debug_assert!(!ascii.bytes().any(|b| b.is_ascii_uppercase()));
        Ok(Self(ascii.into_boxed_str()))
    }

    /// The ASCII form, e.g. `xn--bcher-kva.test`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Letters, digits and inner hyphens, 1 to 63 octets (RFC 1035 §2.3.1 as relaxed by
/// RFC 1123 §2.1, which allows a leading digit).
fn label_is_host(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= LABEL_BYTES_MAX
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A pool mailbox `local@domain`, normalised by the rule in the module docs; valid by
/// construction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mailbox {
    /// The whole address, `local@domain`.
    text: Box<str>,
    /// Byte index of the `@` that separates local part and domain.
    at: usize,
}

impl Mailbox {
    /// Builds the mailbox of `local` (as given on the wire or in a request) at `domain`.
    pub fn new(local: &str, domain: &Domain) -> Result<Self, AddressError> {
        let local = fold_local_part(local)?;
        let len = local.len() + 1 + domain.as_str().len();
        if len > ADDRESS_BYTES_MAX {
            return Err(AddressError::AddressLength);
        }
        let mut text = String::with_capacity(len);
        text.push_str(&local);
        text.push('@');
        text.push_str(domain.as_str());
        Ok(Self {
            text: text.into_boxed_str(),
            at: local.len(),
        })
    }

    /// Parses `local@domain`, splitting at the last `@` (a quoted local part may hold one).
    pub fn parse(address: &str) -> Result<Self, AddressError> {
        let (local, domain) = address.rsplit_once('@').ok_or(AddressError::NoAt)?;
        Self::new(local, &Domain::parse(domain)?)
    }

    /// The whole address, `local@domain`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The case-folded local part.
    pub fn local(&self) -> &str {
        &self.text[..self.at]
    }

    /// The domain's ASCII form.
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// The domain as a [`Domain`].
    pub fn to_domain(&self) -> Domain {
        Domain(self.domain().into())
    }
}

/// The folded form of a recipient as a record or the journal holds it. Text written
/// before the rule folded local parts may be another spelling of a mailbox; it maps to
/// that mailbox. Text that is already folded (the common case, checked without
/// allocating) or is no valid mailbox is returned as it is.
pub fn fold_stored(stored: &str) -> Cow<'_, str> {
    let plain = stored
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase() && b != b'"');
    if plain {
        return Cow::Borrowed(stored);
    }
    match Mailbox::parse(stored) {
        Ok(m) if m.as_str() != stored => Cow::Owned(m.text.into_string()),
        _ => Cow::Borrowed(stored),
    }
}

impl Mailbox {
    /// Whether `stored`, a recipient as a record holds it, names this mailbox (see
    /// [`fold_stored`]).
    pub fn matches_stored(&self, stored: &str) -> bool {
        stored == self.as_str() || fold_stored(stored) == self.as_str()
    }
}

/// Folds a local part by the module rule: quotes around a plain dot-atom dropped, NFC,
/// lower case; refuses control characters and lengths out of range.
fn fold_local_part(raw: &str) -> Result<String, AddressError> {
    let unquoted = unquote_dot_atom(raw)?;
    if unquoted.is_empty() {
        return Err(AddressError::LocalLength);
    }
    let quoted = unquoted.starts_with('"');
    if unquoted.chars().any(char::is_control) || (!quoted && unquoted.contains(' ')) {
        return Err(AddressError::LocalSyntax);
    }
    let folded = if unquoted.is_ascii() {
        unquoted.to_ascii_lowercase()
    } else {
        // Lower-casing can leave a string that is no longer composed, so compose again.
        let nfc = ComposingNormalizerBorrowed::new_nfc();
        let lower = nfc.normalize(unquoted).to_lowercase();
        nfc.normalize(&lower).into_owned()
    };
    if folded.len() > LOCAL_PART_BYTES_MAX {
        return Err(AddressError::LocalLength);
    }
    Ok(folded)
}

/// `"abc.def"` -> `abc.def` when the quoted content is a plain dot-atom (so both spellings
/// are one mailbox); other quoted local parts stay quoted; unquoted ones are returned as
/// they are.
fn unquote_dot_atom(raw: &str) -> Result<&str, AddressError> {
    let Some(inner) = raw.strip_prefix('"') else {
        if raw.contains('"') {
            return Err(AddressError::LocalSyntax);
        }
        return Ok(raw);
    };
    let inner = inner.strip_suffix('"').ok_or(AddressError::LocalSyntax)?;
    let dot_atom = !inner.is_empty()
        && !inner.starts_with('.')
        && !inner.ends_with('.')
        && !inner.contains("..")
        && inner
            .chars()
            .all(|c| !c.is_ascii() || is_atext(c) || c == '.');
    Ok(if dot_atom { inner } else { raw })
}

/// RFC 5322 §3.2.3 `atext` (ASCII part).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Domain {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl FromStr for Mailbox {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Mailbox {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

// Hash and Eq are those of the text, so maps keyed by these types can be searched by `&str`.
impl Borrow<str> for Domain {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Mailbox {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl serde::Serialize for Domain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl serde::Serialize for Mailbox {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Domain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
    }
}

impl<'de> serde::Deserialize<'de> for Mailbox {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: every spelling of one domain gives one value and every non-domain is refused
    // with its reason. Method: (input, expected) table through `Domain::parse`.
    #[test]
    fn domain_table() {
        let ok = [
            ("tempmx.test", "tempmx.test"),
            ("TempMX.Test", "tempmx.test"),
            ("bücher.test", "xn--bcher-kva.test"),
            ("XN--BCHER-KVA.test", "xn--bcher-kva.test"),
            ("BÜCHER.TEST", "xn--bcher-kva.test"),
            ("1and1.example", "1and1.example"),
            ("a-b.c-d.example", "a-b.c-d.example"),
        ];
        for (input, want) in ok {
            assert_eq!(Domain::parse(input).map(|d| d.to_string()), Ok(want.into()));
        }
        let long_label = format!("{}.test", "a".repeat(64));
        let long_name = format!("{}test", "abcdefghi.".repeat(25));
        let max_name = format!("{}.tests", vec!["a".repeat(61); 4].join("."));
        assert_eq!(max_name.len(), DOMAIN_BYTES_MAX);
        assert!(Domain::parse(&max_name).is_ok());
        let bad = [
            ("", AddressError::DomainLength),
            ("tempmx.test.", AddressError::DomainLength),
            (long_name.as_str(), AddressError::DomainLength),
            (long_label.as_str(), AddressError::Label),
            ("localhost", AddressError::SingleLabel),
            ("127.0.0.1", AddressError::IpLiteral),
            ("10.1.2.3", AddressError::IpLiteral),
            ("[127.0.0.1]", AddressError::IpLiteral),
            ("[IPv6:::1]", AddressError::IpLiteral),
            ("-a.test", AddressError::Label),
            ("a-.test", AddressError::Label),
            ("a..test", AddressError::Label),
            ("a_b.test", AddressError::Label),
            ("a b.test", AddressError::Idna),
        ];
        for (input, want) in bad {
            let got = Domain::parse(input);
            assert!(got.is_err(), "{input:?} -> {got:?}");
            if want != AddressError::Idna {
                assert_eq!(got, Err(want), "{input:?}");
            }
        }
    }

    // Goal: every case, quoting and Unicode-composition variant of one address is one
    // mailbox, and limits hold after folding. Method: table through `Mailbox::parse`.
    #[test]
    fn mailbox_table() {
        let one = Mailbox::parse("vrwmpat7xeer9w@tempmx.test").expect("valid");
        for variant in [
            "VRWMPAT7XEER9W@tempmx.test",
            "VrWmPat7xEER9w@TEMPMX.TEST",
            "\"vrwmpat7xeer9w\"@tempmx.test",
            "\"VRWMPAT7XEER9W\"@TempMX.test",
        ] {
            assert_eq!(Mailbox::parse(variant).as_ref(), Ok(&one), "{variant}");
        }
        assert_eq!(one.local(), "vrwmpat7xeer9w");
        assert_eq!(one.domain(), "tempmx.test");
        assert_eq!(one.to_domain().as_str(), "tempmx.test");

        // SMTPUTF8: composed and decomposed forms, upper and lower case, are one mailbox.
        let composed = Mailbox::parse("j\u{f6}rg@b\u{fc}cher.test").expect("valid");
        assert_eq!(composed.as_str(), "j\u{f6}rg@xn--bcher-kva.test");
        for variant in ["jo\u{308}rg@bücher.test", "J\u{d6}RG@BÜCHER.test"] {
            assert_eq!(Mailbox::parse(variant).as_ref(), Ok(&composed), "{variant}");
        }
        assert_eq!(
            Mailbox::parse("ЮЛИЯ@tempmx.test").map(|m| m.to_string()),
            Ok("юлия@tempmx.test".into())
        );

        // Quoted content that is not a dot-atom keeps its quotes (and is still folded).
        assert_eq!(
            Mailbox::parse("\"A B\"@tempmx.test").map(|m| m.to_string()),
            Ok("\"a b\"@tempmx.test".into())
        );
        // The last `@` separates, so a quoted `@` stays in the local part.
        assert_eq!(
            Mailbox::parse("\"a@b\"@tempmx.test").map(|m| m.local().to_owned()),
            Ok("\"a@b\"".into())
        );

        let at_max = format!("{}@tempmx.test", "a".repeat(LOCAL_PART_BYTES_MAX));
        assert!(Mailbox::parse(&at_max).is_ok());
        let over = format!("{}@tempmx.test", "a".repeat(LOCAL_PART_BYTES_MAX + 1));
        assert_eq!(Mailbox::parse(&over), Err(AddressError::LocalLength));
        let long_domain = format!("{}.test", vec!["a".repeat(61); 4].join("."));
        let too_long = format!("{}@{long_domain}", "a".repeat(10));
        assert_eq!(Mailbox::parse(&too_long), Err(AddressError::AddressLength));
        assert_eq!(Mailbox::parse("tempmx.test"), Err(AddressError::NoAt));
        assert_eq!(
            Mailbox::parse("@tempmx.test"),
            Err(AddressError::LocalLength)
        );
        assert_eq!(
            Mailbox::parse("a\u{7}b@tempmx.test"),
            Err(AddressError::LocalSyntax)
        );
        assert_eq!(
            Mailbox::parse("a\"b@tempmx.test"),
            Err(AddressError::LocalSyntax)
        );
        assert_eq!(
            Mailbox::parse("a b@tempmx.test"),
            Err(AddressError::LocalSyntax)
        );
        assert_eq!(Mailbox::parse("u@127.0.0.1"), Err(AddressError::IpLiteral));
    }

    // Goal: a mailbox's text is a fixed point of parsing, so a stored key parses back to
    // itself. Method: parse, print, parse again on the table's valid inputs.
    #[test]
    fn folding_is_idempotent() {
        for input in [
            "Mixed.Case@TempMX.test",
            "\"Q.Uoted\"@tempmx.test",
            "\"a b\"@tempmx.test",
            "ǅemal@bücher.test",
            "STRASSE.ß@tempmx.test",
        ] {
            let once = Mailbox::parse(input).expect(input);
            let twice = Mailbox::parse(once.as_str()).expect(input);
            assert_eq!(once, twice, "{input}");
        }
    }

    // Goal: recipients stored before local parts were folded map to their mailbox, and
    // folded or foreign text is left alone. Method: table through `fold_stored`.
    #[test]
    fn stored_text_folds() {
        let one = Mailbox::parse("vrwmpat7xeer9w@tempmx.test").expect("valid");
        for stored in [
            "VRWMPAT7XEER9W@tempmx.test",
            "\"vrwmpat7xeer9w\"@tempmx.test",
            "vrwmpat7xeer9w@tempmx.test",
        ] {
            assert!(one.matches_stored(stored), "{stored}");
        }
        assert!(!one.matches_stored("other@tempmx.test"));
        assert!(matches!(fold_stored("a@b.test"), Cow::Borrowed("a@b.test")));
        assert_eq!(fold_stored("ЮЛИЯ@tempmx.test"), "юлия@tempmx.test");
        assert_eq!(fold_stored("NOT AN ADDRESS"), "NOT AN ADDRESS");
    }

    // Goal: the serde forms validate, so a config or JSON field cannot hold an IP as a
    // domain. Method: round trip through serde_json.
    #[test]
    fn serde_validates() {
        let d: Domain = serde_json::from_str("\"Pool.Test\"").expect("valid");
        assert_eq!(serde_json::to_string(&d).expect("ser"), "\"pool.test\"");
        let err = serde_json::from_str::<Domain>("\"127.0.0.1\"").expect_err("ip");
        assert!(err.to_string().contains("IP address"), "{err}");
        let m: Mailbox = serde_json::from_str("\"A@Pool.Test\"").expect("valid");
        assert_eq!(m.as_str(), "a@pool.test");
    }
}
