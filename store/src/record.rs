//! The archived record: one per stored message, read in place with rkyv.

use rkyv::rancor;
use rkyv::{Archive, Deserialize, Serialize};

use crate::frame;

/// TLS parameters as stored.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[rkyv(derive(Debug))]
pub struct TlsRecord {
    /// Protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// Cipher suite name.
    pub cipher: String,
}

/// One authentication result, as in an RFC 8601 `Authentication-Results:` resinfo.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[rkyv(derive(Debug))]
pub struct AuthResult {
    /// Method, e.g. `spf`, `dkim`, `dmarc`, `arc`.
    pub method: String,
    /// Result, e.g. `pass`, `fail`, `none`, `temperror`.
    pub result: String,
    /// The properties checked, e.g. `smtp.mailfrom=a.example` or `header.d=a.example`.
    pub props: String,
}

/// Header fields picked at ingest for listings.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[rkyv(derive(Debug))]
pub struct HeaderSummary {
    /// `From:` value as received (not decoded), truncated.
    pub from: String,
    /// `Subject:` value as received (not decoded), truncated.
    pub subject: String,
    /// `Date:` value as received, truncated.
    pub date: String,
    /// `Message-ID:` value as received, truncated.
    pub message_id: String,
    /// Size of the raw message (trace headers + body) in bytes.
    pub size: u64,
    /// Whether a MIME part is marked as an attachment.
    pub has_attachments: bool,
}

pub use chunk::{ArchivedChunk, Chunk, ChunkResolver};

// rkyv's generated resolver for enum variants with named fields has no docs to inherit,
// so the derive lives in its own module with the lint relaxed.
mod chunk {
    #![allow(missing_docs)]
    use rkyv::{Archive, Deserialize, Serialize};

    /// A piece of the raw message: inline bytes, or a part stored once by content.
    #[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[rkyv(derive(Debug))]
    pub enum Chunk {
        /// Bytes stored in this record.
        Inline(Vec<u8>),
        /// A deduplicated part in the shard's part table.
        Shared {
            /// Content key in the part table.
            key: u64,
            /// Length of the part.
            len: u32,
        },
    }
}

/// One stored message.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[rkyv(derive(Debug))]
pub struct MessageRecord {
    /// Time-ordered unique id.
    pub id: u64,
    /// When ingress accepted it (ms since epoch).
    pub received_at_ms: u64,
    /// When it expires (ms since epoch).
    pub expires_at_ms: u64,
    /// Normalised recipient mailboxes.
    pub mailboxes: Vec<String>,
    /// Envelope sender; empty for `<>`.
    pub mail_from: String,
    /// Client IP address in text form.
    pub client_ip: String,
    /// EHLO/HELO name.
    pub helo: String,
    /// TLS parameters, if any.
    pub tls: Option<TlsRecord>,
    /// Authentication results (empty until the auth stage fills them).
    pub auth: Vec<AuthResult>,
    /// Header summary for listings.
    pub headers: HeaderSummary,
    /// The raw RFC 5322 message (trace headers + body) as chunks in order.
    pub raw: Vec<Chunk>,
}

/// Upper bound of the archived size of `rec`, used to pick a segment before encoding.
pub fn encoded_bound(rec: &MessageRecord) -> usize {
    let strings = rec.mail_from.len()
        + rec.client_ip.len()
        + rec.helo.len()
        + rec.headers.from.len()
        + rec.headers.subject.len()
        + rec.headers.date.len()
        + rec.headers.message_id.len()
        + rec
            .tls
            .as_ref()
            .map_or(0, |t| t.version.len() + t.cipher.len())
        + rec.mailboxes.iter().map(String::len).sum::<usize>()
        + rec
            .auth
            .iter()
            .map(|a| a.method.len() + a.result.len() + a.props.len())
            .sum::<usize>();
    let chunks: usize = rec
        .raw
        .iter()
        .map(|c| match c {
            Chunk::Inline(b) => b.len(),
            Chunk::Shared { .. } => 0,
        })
        .sum();
    let fields = 16 + rec.mailboxes.len() + 3 * rec.auth.len() + rec.raw.len();
    // Every field or element costs at most 16 bytes of header/pointer plus 16 of alignment.
    strings + chunks + 32 * fields + 256
}

/// Serialises `rec` into `out` (which must start 16-aligned); returns the bytes used.
pub fn encode_into(rec: &MessageRecord, out: &mut [u8]) -> Result<usize, rancor::Error> {
    let buf = rkyv::api::high::to_bytes_in::<_, rancor::Error>(
        rec,
        rkyv::ser::writer::Buffer::from(out),
    )?;
    Ok(rkyv::ser::Positional::pos(&buf))
}

/// Checked access to untrusted bytes (recovery, fuzzing).
pub fn access_checked(payload: &[u8]) -> Option<&ArchivedMessageRecord> {
    rkyv::access::<ArchivedMessageRecord, rancor::Error>(payload).ok()
}

/// Access to a payload whose frame CRC has been verified by this process or which this
/// process wrote itself.
///
/// # Safety
/// `payload` must be exactly the bytes `encode_into` produced (16-aligned, same length).
pub unsafe fn access_trusted(payload: &[u8]) -> &ArchivedMessageRecord {
    // SAFETY: the caller guarantees these are our own encoder's bytes, unchanged.
    unsafe { rkyv::access_unchecked::<ArchivedMessageRecord>(payload) }
}

/// Deserialises an archived record (tests, fuzzing, tools).
pub fn to_owned(a: &ArchivedMessageRecord) -> Option<MessageRecord> {
    rkyv::deserialize::<MessageRecord, rancor::Error>(a).ok()
}

/// Checks a frame payload against its CRC and rkyv's validator.
pub fn validate(payload: &[u8], crc: u32) -> Option<&ArchivedMessageRecord> {
    if frame::checksum(payload) != crc {
        return None;
    }
    access_checked(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> MessageRecord {
        MessageRecord {
            id: 42,
            received_at_ms: 1,
            expires_at_ms: 2,
            mailboxes: vec!["a@x.test".into(), "b@x.test".into()],
            mail_from: "s@y.test".into(),
            client_ip: "127.0.0.1".into(),
            helo: "mx.y.test".into(),
            tls: Some(TlsRecord {
                version: "TLSv1.3".into(),
                cipher: "X".into(),
            }),
            auth: vec![AuthResult {
                method: "spf".into(),
                result: "pass".into(),
                props: "smtp.mailfrom=y.test".into(),
            }],
            headers: HeaderSummary {
                subject: "hi".into(),
                size: 5,
                ..Default::default()
            },
            raw: vec![
                Chunk::Inline(b"hello".to_vec()),
                Chunk::Shared { key: 7, len: 9 },
            ],
        }
    }

    #[repr(align(16))]
    struct Aligned([u8; 4096]);

    #[test]
    fn encode_validate_decode_round_trip() {
        // Goal: a record encoded into a fixed slot validates and decodes equal; the bound holds.
        let rec = sample();
        let mut slot = Aligned([0; 4096]);
        let n = encode_into(&rec, &mut slot.0).expect("fits");
        assert!(n <= encoded_bound(&rec));
        let payload = &slot.0[..n];
        let a = validate(payload, frame::checksum(payload)).expect("valid");
        assert_eq!(to_owned(a), Some(rec));
        assert!(validate(payload, 0).is_none() || frame::checksum(payload) == 0);
    }

    #[test]
    fn encode_reports_overflow() {
        // Goal: a slot that is too small is an error, not a panic.
        let rec = sample();
        let mut slot = Aligned([0; 4096]);
        assert!(encode_into(&rec, &mut slot.0[..32]).is_err());
    }
}
