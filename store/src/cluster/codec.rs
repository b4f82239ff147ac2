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
    /// Whether frames are compressed where that saves memory.
    compress: bool,
}

/// Smallest record or shared part worth compressing: below it the saving is within one
/// allocation size class.
const COMPRESS_BYTES_MIN: usize = 512;
/// Least saving (bytes) for a compressed value to be stored instead of the plain one.
const COMPRESS_SAVING_MIN: usize = 64;
/// Most a value may expand from its compressed form (LZ4's own limit is about 255x); a
/// damaged length beyond it is refused before anything is allocated.
const EXPANSION_MAX: usize = 255;
/// Largest record or part a compressed value may expand to, far above any message the
/// ingress takes.
const RECORD_RAW_BYTES_MAX: usize = 256 << 20;

impl Encoder {
    /// An encoder sharing MIME parts of at least `part_min` bytes (0: none), compressing
    /// frames with `compress`.
    pub(crate) fn new(part_min: usize, compress: bool) -> Self {
        Self {
            part_min,
            compress,
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
            self.compress,
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
        // The header goes in front once the body's kind and length are known; a compressed
        // body (the record's length, u32 LE, then its LZ4 block) is written in place.
        // Room for the LZ4 block's worst case, so compressing in place never reallocates.
        let mut out =
            Vec::with_capacity(HEADER_BYTES + 4 + lz4_flex::block::get_maximum_output_size(len));
        out.resize(HEADER_BYTES, 0);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        let kind = if self.compress && append_block(payload, &mut out) {
            FrameKind::Compressed
        } else {
            out.truncate(HEADER_BYTES);
            out.extend_from_slice(payload);
            FrameKind::Record
        };
        let header = frame::encode(&Header {
            len: (out.len() - HEADER_BYTES) as u32,
            crc: frame::checksum(payload),
            kind,
            version: frame::FORMAT_VERSION,
        });
        out[..HEADER_BYTES].copy_from_slice(&header);
        Ok(out)
    }
}

/// Appends `raw`'s LZ4 block to `out` when `raw` is worth compressing (records and shared
/// parts alike: at least [`COMPRESS_BYTES_MIN`], at most what readers expand, and a block
/// at least [`COMPRESS_SAVING_MIN`] smaller); false, with `out` as it was, otherwise.
pub(crate) fn append_block(raw: &[u8], out: &mut Vec<u8>) -> bool {
    // Readers refuse to expand past RECORD_RAW_BYTES_MAX: larger values stay plain.
    if raw.len() < COMPRESS_BYTES_MIN || raw.len() > RECORD_RAW_BYTES_MAX {
        return false;
    }
    let start = out.len();
    out.resize(
        start + lz4_flex::block::get_maximum_output_size(raw.len()),
        0,
    );
    match lz4_flex::block::compress_into(raw, &mut out[start..]) {
        Ok(n) if n + COMPRESS_SAVING_MIN <= raw.len() => {
            out.truncate(start + n);
            true
        }
        _ => {
            out.truncate(start);
            false
        }
    }
}

/// Whether a value of `len` bytes may come out of an LZ4 block of `block_len` bytes:
/// checked before anything is allocated for it, so a damaged length costs nothing.
pub(crate) fn expandable(len: usize, block_len: usize) -> bool {
    len <= block_len.saturating_mul(EXPANSION_MAX) && len <= RECORD_RAW_BYTES_MAX
}

/// Decompresses `block` into all of `out`; false unless it fills `out` exactly.
pub(crate) fn expand_into(block: &[u8], out: &mut [u8]) -> bool {
    lz4_flex::block::decompress_into(block, out).is_ok_and(|n| n == out.len())
}

/// The record a compressed frame's `body` holds, 16-aligned for rkyv; `None` when the
/// length is implausible or the block does not decompress to exactly that length.
fn unpack(body: &[u8]) -> Option<AlignedVec<16>> {
    let (len, block) = body.split_at_checked(4)?;
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    if !expandable(len, block.len()) {
        return None;
    }
    let mut raw = AlignedVec::<16>::with_capacity(len);
    raw.resize(len, 0);
    expand_into(block, &mut raw).then_some(raw)
}

impl Encoder {
    /// Bytes of the last frame encoded before compression (header and record).
    pub(crate) fn last_record_bytes(&self) -> usize {
        HEADER_BYTES + self.last_len
    }

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
        if h.len as usize != body.len() {
            return Err(corrupt());
        }
        let payload = match h.kind {
            FrameKind::Record => {
                // rkyv reads in place and needs the payload 16-aligned, which a reply
                // buffer is not.
                let mut payload = AlignedVec::<16>::with_capacity(body.len());
                payload.extend_from_slice(body);
                payload
            }
            FrameKind::Compressed => unpack(body).ok_or_else(corrupt)?,
            FrameKind::Deleted => return Err(corrupt()),
        };
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

#[cfg(test)]
mod frame_tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::Mailbox;

    /// The frame of a message with body `body`, compressed where worth it with `compress`.
    fn encode(body: &[u8], compress: bool) -> Vec<u8> {
        let to = [Mailbox::parse("u@x.test").expect("valid")];
        let msg = NewMessage {
            received_at_ms: 1,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            helo: "client.test",
            mail_from: "s@y.test",
            recipients: &to,
            tls: None,
            trace_headers: b"Received: from client.test\r\n",
            auth: &[],
            body,
        };
        let mut parts = Vec::new();
        Encoder::new(0, compress)
            .frame(&msg, MessageId(7), 9, &mut parts)
            .expect("encodes")
    }

    fn text(lines: usize) -> Vec<u8> {
        let mut b = b"From: s@y.test\r\nSubject: your code\r\n\r\n".to_vec();
        for i in 0..lines {
            b.extend_from_slice(
                format!("Line {i} of a message, as mail text goes.\r\n").as_bytes(),
            );
        }
        b
    }

    #[test]
    fn compressed_frames_read_back_and_damage_is_caught() {
        // Goal: a text record is stored compressed (smaller than the plain frame) and
        // reads back byte for byte; a small record stays plain; a damaged block or an
        // implausible length is a corrupt value, never a panic or a huge allocation.
        // Method: encode the same message both ways, read each with `Checked`, then
        // damage the compressed frame.
        let body = text(100);
        let plain = encode(&body, false);
        let packed = encode(&body, true);
        assert_eq!(plain[14], FrameKind::Record as u8);
        assert_eq!(packed[14], FrameKind::Compressed as u8);
        assert!(
            packed.len() * 2 < plain.len(),
            "{} vs {}",
            packed.len(),
            plain.len()
        );
        let mut want = b"Received: from client.test\r\n".to_vec();
        want.extend_from_slice(&body);
        for f in [&plain, &packed] {
            let rec = Checked::new(f, "k").expect("valid frame");
            assert_eq!(rec.id(), MessageId(7));
            assert_eq!(rec.raw().expect("raw").as_ref(), &want[..]);
        }
        let small = encode(&text(1), true);
        assert_eq!(small[14], FrameKind::Record as u8);

        let mut flipped = packed.clone();
        let mid = HEADER_BYTES + (packed.len() - HEADER_BYTES) / 2;
        flipped[mid] ^= 0x5a;
        assert!(Checked::new(&flipped, "k").is_err());
        let mut huge = packed.clone();
        huge[HEADER_BYTES..HEADER_BYTES + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Checked::new(&huge, "k").is_err());
        let mut short = packed;
        short.truncate(HEADER_BYTES + 2);
        assert!(Checked::new(&short, "k").is_err());
    }
}
