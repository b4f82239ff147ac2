//! Records as cluster values: the same frame as on a shard's arena (16-byte header with
//! CRC32C, then the archived [`MessageRecord`]), and the same checks on the way back in as
//! recovery applies to a frame read from disk.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use rkyv::ser::allocator::Arena;
use rkyv::util::AlignedVec;

use super::ClusterError;
use super::parts::{self, Part};
use crate::frame::{self, FrameKind, HEADER_BYTES, Header};
use crate::mime::{self, Scan};
use crate::record::AuthResult;
use crate::record::{self, ArchivedChunk, ChunkPlan, MessageRecord, RecordSource};
use crate::sink::{MessageId, NewMessage, TlsSummary};
use crate::view::{MessageRef, MessageSummary, MessageView};

/// Per-core encoder state kept between messages, so a warm write path reuses its buffers.
#[derive(Default)]
pub(crate) struct Encoder {
    rec: MessageRecord,
    scan: Scan,
    plan: Vec<ChunkPlan>,
    payload: AlignedVec<16>,
    ser: Arena,
    /// Length of the last frame's payload in `payload`.
    last_len: usize,
    /// Smallest MIME part stored as a shared part (0: none).
    part_min: usize,
}

impl Encoder {
    /// An encoder sharing MIME parts of at least `part_min` bytes (0: none).
    pub(crate) fn new(part_min: usize) -> Self {
        Self {
            part_min,
            ..Self::default()
        }
    }

    /// Encodes `msg` as record `id` expiring at `expires_at_ms` into one frame (header +
    /// payload, unpadded). Large MIME parts, and with several recipients the body's long
    /// inline runs, become references to shared parts, which go to `parts` (see
    /// [`parts::plan`]); the rest is inline.
    pub(crate) fn frame(
        &mut self,
        msg: &NewMessage<'_>,
        id: MessageId,
        expires_at_ms: u64,
        parts: &mut Vec<Part>,
    ) -> Result<Vec<u8>, ClusterError> {
        mime::scan_into(msg.body, self.part_min, &mut self.scan);
        crate::writer::fill(&mut self.rec, msg, &mut self.scan);
        self.rec.id = id.0;
        self.rec.expires_at_ms = expires_at_ms;
        self.rec.client_ip.clear();
        // Writing to a String cannot fail.
        let _ = write!(self.rec.client_ip, "{}", msg.client_ip);
        parts::plan(
            msg.body,
            &self.scan.pieces,
            !msg.trace_headers.is_empty(),
            // `part_min` 0 shares nothing, bodies of several recipients included.
            self.part_min > 0 && msg.recipients.len() > 1,
            &mut self.plan,
            parts,
        )?;
        let src = RecordSource {
            rec: &self.rec,
            trace: msg.trace_headers,
            body: msg.body,
            plan: &self.plan,
        };
        self.payload.clear();
        self.payload.resize(src.encoded_bound(), 0);
        let len = src
            .encode_into(&mut self.payload, &mut self.ser)
            .map_err(|e| ClusterError::Encode(format!("record {id}: {e}")))?;
        self.last_len = len;
        let payload = &self.payload[..len];
        let header = frame::encode(&Header {
            len: len as u32,
            crc: frame::checksum(payload),
            kind: FrameKind::Record,
            version: frame::FORMAT_VERSION,
        });
        let mut out = Vec::with_capacity(HEADER_BYTES + len);
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        Ok(out)
    }
}

impl Encoder {
    /// The listing fields of the last frame encoded (for its index entry), without the
    /// mailbox and expiry, which each index entry has of its own.
    pub(crate) fn last_summary(&self) -> MessageSummary {
        // SAFETY: these are the bytes `frame` just encoded, unchanged.
        let a = unsafe { record::access_trusted(&self.payload[..self.last_len]) };
        MessageSummary::from_frame(a, frame::FORMAT_VERSION, "")
    }
}

/// The listing fields as an index entry carries them: a JSON array of from, subject,
/// date, Message-ID, received ms, size, has-attachments and `[method, result, props]`
/// triples (the mailbox, id and expiry are the entry's own).
pub(crate) fn encode_summary(s: &MessageSummary) -> String {
    let auth: Vec<[&str; 3]> = s
        .auth
        .iter()
        .map(|a| [a.method.as_str(), a.result.as_str(), a.props.as_str()])
        .collect();
    serde_json::json!([
        s.from,
        s.subject,
        s.date,
        s.message_id,
        s.received_at_ms,
        s.size,
        s.has_attachments,
        auth
    ])
    .to_string()
}

/// The summary an index entry carries, as shown for `mailbox`; `None` if unreadable
/// (the reader then fetches the record).
pub(crate) fn decode_summary(
    text: &str,
    id: MessageId,
    mailbox: &str,
    expires_at_ms: u64,
) -> Option<MessageSummary> {
    type Fields = (
        String,
        String,
        String,
        String,
        u64,
        u64,
        bool,
        Vec<(String, String, String)>,
    );
    let (from, subject, date, message_id, received_at_ms, size, has_attachments, auth): Fields =
        serde_json::from_str(text).ok()?;
    Some(MessageSummary {
        id,
        mailbox: mailbox.to_owned(),
        from,
        subject,
        date,
        message_id,
        received_at_ms,
        expires_at_ms,
        size,
        has_attachments,
        auth: auth
            .into_iter()
            .map(|(method, result, props)| AuthResult {
                method,
                result,
                props,
            })
            .collect(),
    })
}

/// A frame read back from the cluster, checked: header, length, CRC and archive; with
/// the data of the shared parts it names once [`Checked::attach`] fetched them.
pub(crate) struct Checked {
    payload: AlignedVec<16>,
    version: u16,
    /// Shared parts' data by content key.
    parts: HashMap<u64, Vec<u8>>,
}

impl Checked {
    /// Checks the value `bytes` read from `key`; anything that fails is [`ClusterError::Corrupt`].
    pub(crate) fn new(bytes: &[u8], key: &str) -> Result<Self, ClusterError> {
        let corrupt = || ClusterError::Corrupt {
            key: key.to_owned(),
        };
        let (head, body) = bytes.split_at_checked(HEADER_BYTES).ok_or_else(corrupt)?;
        let head: &[u8; HEADER_BYTES] = head.try_into().map_err(|_| corrupt())?;
        let h = frame::decode(head, frame::pad16(body.len())).map_err(|_| corrupt())?;
        if h.kind != FrameKind::Record || h.len as usize != body.len() {
            return Err(corrupt());
        }
        // rkyv reads in place and needs the payload 16-aligned, which a reply buffer is not.
        let mut payload = AlignedVec::<16>::with_capacity(body.len());
        payload.extend_from_slice(body);
        if record::validate(&payload, h.crc).is_none() {
            return Err(corrupt());
        }
        Ok(Self {
            payload,
            version: h.version,
            parts: HashMap::new(),
        })
    }

    fn archived(&self) -> &record::ArchivedMessageRecord {
        // SAFETY: `new` validated these exact bytes (CRC and rkyv's checker) and they are
        // not changed after.
        unsafe { record::access_trusted(&self.payload) }
    }

    /// The shared parts the record names, `(content key, length)`, each once.
    pub(crate) fn shared(&self) -> Vec<(u64, u32)> {
        let mut out: Vec<(u64, u32)> = Vec::new();
        for c in self.archived().raw.iter() {
            if let ArchivedChunk::Shared { key, len } = c {
                let k = (key.to_native(), len.to_native());
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        out
    }

    /// Hands over the data of shared part `key` (checked by the caller).
    pub(crate) fn attach(&mut self, key: u64, data: Vec<u8>) {
        self.parts.insert(key, data);
    }

    /// The raw message: inline chunks borrowed when there is one and nothing else, else
    /// joined with the attached parts; a part not attached is [`ClusterError::PartMissing`].
    fn raw(&self) -> Result<Cow<'_, [u8]>, ClusterError> {
        let r = self.archived();
        if let [ArchivedChunk::Inline(b)] = r.raw.as_slice() {
            return Ok(Cow::Borrowed(b.as_slice()));
        }
        let mut out = Vec::new();
        for c in r.raw.iter() {
            match c {
                ArchivedChunk::Inline(b) => out.extend_from_slice(b),
                ArchivedChunk::Shared { key, .. } => {
                    let key = key.to_native();
                    let data = self
                        .parts
                        .get(&key)
                        .ok_or_else(|| ClusterError::PartMissing {
                            key: parts::part_key(key),
                        })?;
                    out.extend_from_slice(data);
                }
            }
        }
        Ok(Cow::Owned(out))
    }

    /// The message id.
    pub(crate) fn id(&self) -> MessageId {
        MessageId(self.archived().id.to_native())
    }

    /// The listing fields, as shown for `mailbox`, with the expiry the cluster applies.
    pub(crate) fn summary(&self, mailbox: &str, expires_at_ms: u64) -> MessageSummary {
        let mut s = MessageSummary::from_frame(self.archived(), self.version, mailbox);
        s.expires_at_ms = expires_at_ms;
        s
    }

    /// Runs `f` on the message as shown for `mailbox`, with the expiry the cluster
    /// applies; the raw bytes are borrowed from the value (one inline chunk, as most
    /// records are) or joined with the shared parts.
    pub(crate) fn with_ref<R>(
        &self,
        mailbox: &str,
        expires_at_ms: u64,
        f: impl FnOnce(&MessageRef<'_>) -> R,
    ) -> Result<R, ClusterError> {
        let raw = self.raw()?;
        let mut m = MessageRef::new(self.archived(), self.version, mailbox, raw);
        m.set_expires_at_ms(expires_at_ms);
        Ok(f(&m))
    }

    /// The whole message, as shown for `mailbox`, with the expiry the cluster applies.
    pub(crate) fn view(
        &self,
        mailbox: &str,
        expires_at_ms: u64,
    ) -> Result<MessageView, ClusterError> {
        let r = self.archived();
        let raw = self.raw()?.into_owned();
        Ok(MessageView {
            summary: self.summary(mailbox, expires_at_ms),
            mailboxes: r.mailboxes.iter().map(|m| m.to_string()).collect(),
            mail_from: r.mail_from.to_string(),
            client_ip: r.client_ip.to_string(),
            helo: r.helo.to_string(),
            tls: r.tls.as_ref().map(|t| TlsSummary {
                version: t.version.to_string(),
                cipher: t.cipher.to_string(),
            }),
            raw,
        })
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    #[test]
    fn summaries_round_trip_through_index_text() {
        // Goal: every listing field survives the index entry's encoding, including
        // authentication results and text with ':' and quotes; junk decodes to `None`.
        // Method: encode a full summary, decode it for another mailbox and expiry.
        let s = MessageSummary {
            id: MessageId(42),
            mailbox: String::new(),
            from: "A \"B\" <a@b.example>".into(),
            subject: "re: x:y".into(),
            date: "Mon, 7 Dec 2026 05:00:00 +0000".into(),
            message_id: "<m@b.example>".into(),
            received_at_ms: 1_795_000_000_000,
            expires_at_ms: 0,
            size: 1234,
            has_attachments: true,
            auth: vec![AuthResult {
                method: "spf".into(),
                result: "pass".into(),
                props: "smtp.mailfrom=b.example".into(),
            }],
        };
        let text = encode_summary(&s);
        let back = decode_summary(&text, MessageId(42), "u@x.test", 9).expect("decodes");
        assert_eq!(
            back,
            MessageSummary {
                mailbox: "u@x.test".into(),
                expires_at_ms: 9,
                ..s
            }
        );
        assert_eq!(decode_summary("[1,2]", MessageId(1), "u@x.test", 9), None);
        assert_eq!(decode_summary("", MessageId(1), "u@x.test", 9), None);
    }
}
