//! The archived record: one per stored message, read in place with rkyv.

use std::ops::Range;

use rkyv::rancor::{self, Fallible};
use rkyv::ser::allocator::Arena;
use rkyv::ser::sharing::Unshare;
use rkyv::ser::writer::Buffer;
use rkyv::ser::{Positional, Serializer, Writer};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{Archive, Deserialize, Place, Serialize};

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
use source::RecordOut;

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
    let inline: usize = rec
        .raw
        .iter()
        .map(|c| match c {
            Chunk::Inline(b) => b.len(),
            Chunk::Shared { .. } => 0,
        })
        .sum();
    bound_with(rec, rec.raw.len(), inline)
}

/// [`encoded_bound`] with the raw chunks given by count and inline bytes (`rec.raw` unused).
fn bound_with(rec: &MessageRecord, chunks: usize, inline: usize) -> usize {
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
    let fields = 16 + rec.mailboxes.len() + 3 * rec.auth.len() + chunks;
    // Every field or element costs at most 16 bytes of header/pointer plus 16 of alignment.
    strings + inline + 32 * fields + 256
}

/// Where one raw chunk of a message comes from: the write path plans the chunks as ranges
/// of the message and the encoder copies the bytes once, straight into the arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkPlan {
    /// Inline bytes: the trace headers if `trace`, then `body[body]`.
    Inline {
        /// Whether the trace headers come first.
        trace: bool,
        /// Range of the body that follows.
        body: Range<usize>,
    },
    /// A deduplicated part, as [`Chunk::Shared`].
    Shared {
        /// Content key in the part table.
        key: u64,
        /// Length of the part.
        len: u32,
    },
}

/// A record to encode whose raw chunks are read from the message's bytes by a plan.
/// It archives byte for byte as the [`MessageRecord`] with those chunks as `raw` would.
#[derive(Clone, Copy, Debug)]
pub struct RecordSource<'a> {
    /// Every field but `raw`, which is ignored.
    pub rec: &'a MessageRecord,
    /// Trace headers, which precede the body.
    pub trace: &'a [u8],
    /// The message body the plan's ranges index.
    pub body: &'a [u8],
    /// The raw chunks in order; every inline range must lie within `body`.
    pub plan: &'a [ChunkPlan],
}

impl RecordSource<'_> {
    /// Upper bound of the archived size, as [`encoded_bound`].
    pub fn encoded_bound(&self) -> usize {
        let inline = self
            .plan
            .iter()
            .map(|p| match p {
                ChunkPlan::Inline { trace, body } => {
                    usize::from(*trace) * self.trace.len() + body.len()
                }
                ChunkPlan::Shared { .. } => 0,
            })
            .sum();
        bound_with(self.rec, self.plan.len(), inline)
    }

    /// Serialises into `out` (which must start 16-aligned) as [`encode_into`] does;
    /// `arena` is the serializer's scratch memory, kept by the caller between records.
    /// A plan range outside the body is an error.
    pub fn encode_into(&self, out: &mut [u8], arena: &mut Arena) -> Result<usize, rancor::Error> {
        let outside = |p: &ChunkPlan| match p {
            ChunkPlan::Inline { body, .. } => self.body.get(body.clone()).is_none(),
            ChunkPlan::Shared { .. } => false,
        };
        if self.plan.iter().any(outside) {
            return Err(<rancor::Error as rancor::Source>::new(PlanOutsideBody));
        }
        let r = self.rec;
        let value = RecordOut {
            id: r.id,
            received_at_ms: r.received_at_ms,
            expires_at_ms: r.expires_at_ms,
            mailboxes: &r.mailboxes,
            mail_from: &r.mail_from,
            client_ip: &r.client_ip,
            helo: &r.helo,
            tls: &r.tls,
            auth: &r.auth,
            headers: &r.headers,
            raw: RawSrc(*self),
        };
        // The records hold no shared pointers, so nothing needs the sharing map.
        let mut ser = Serializer::new(Buffer::from(out), arena.acquire(), Unshare);
        rkyv::api::serialize_using::<_, rancor::Error>(&value, &mut ser)?;
        Ok(ser.writer.pos())
    }
}

/// A [`ChunkPlan`] range does not lie within the body it indexes.
#[derive(Debug, thiserror::Error)]
#[error("chunk plan range outside the message body")]
struct PlanOutsideBody;

/// Inline chunk bytes as two borrowed pieces; archives as the `Vec<u8>` of their
/// concatenation.
#[derive(Clone, Copy)]
struct InlineSrc<'a>(&'a [u8], &'a [u8]);

impl Archive for InlineSrc<'_> {
    type Archived = ArchivedVec<u8>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: VecResolver, out: Place<ArchivedVec<u8>>) {
        ArchivedVec::resolve_from_len(self.0.len() + self.1.len(), resolver, out);
    }
}

impl<S: Fallible + Writer + ?Sized> Serialize<S> for InlineSrc<'_> {
    fn serialize(&self, s: &mut S) -> Result<VecResolver, S::Error> {
        // As rkyv's copy path for `[u8]`: bytes need no alignment and go in as they are.
        let pos = s.pos();
        s.write(self.0)?;
        s.write(self.1)?;
        Ok(VecResolver::from_pos(pos))
    }
}

/// The `raw` field of a [`RecordSource`]: archives as `Vec<Chunk>`.
struct RawSrc<'a>(RecordSource<'a>);

impl RawSrc<'_> {
    fn chunks(&self) -> impl ExactSizeIterator<Item = source::ChunkSrc<'_>> + Clone {
        let RecordSource {
            trace, body, plan, ..
        } = self.0;
        plan.iter().map(move |p| match p {
            ChunkPlan::Inline { trace: t, body: r } => {
                source::ChunkSrc::Inline(InlineSrc(if *t { trace } else { &[] }, &body[r.clone()]))
            }
            ChunkPlan::Shared { key, len } => source::ChunkSrc::Shared {
                key: *key,
                len: *len,
            },
        })
    }
}

impl Archive for RawSrc<'_> {
    type Archived = ArchivedVec<ArchivedChunk>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: VecResolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_len(self.0.plan.len(), resolver, out);
    }
}

impl<S> Serialize<S> for RawSrc<'_>
where
    S: Fallible + rkyv::ser::Allocator + Writer + ?Sized,
    for<'b> source::ChunkSrc<'b>: Serialize<S, Archived = ArchivedChunk>,
{
    fn serialize(&self, s: &mut S) -> Result<VecResolver, S::Error> {
        ArchivedVec::serialize_from_iter::<source::ChunkSrc<'_>, _, S>(self.chunks(), s)
    }
}

// Borrowing twins of `Chunk` and `MessageRecord` that archive as them: they write the same
// archived types in the same order, so the bytes match the owned types' encoding.
// The derived resolver has no docs to inherit, hence the module.
mod source {
    #![allow(missing_docs)]
    use rkyv::munge::munge;
    use rkyv::rancor::{Fallible, Source};
    use rkyv::ser::{Allocator, Writer};
    use rkyv::string::StringResolver;
    use rkyv::vec::VecResolver;
    use rkyv::{Archive, Place, Serialize};

    use super::{
        ArchivedChunk, ArchivedMessageRecord, AuthResult, HeaderSummary, HeaderSummaryResolver,
        InlineSrc, RawSrc, TlsRecord,
    };

    #[derive(Archive, Serialize)]
    #[rkyv(as = ArchivedChunk)]
    pub(super) enum ChunkSrc<'a> {
        Inline(InlineSrc<'a>),
        Shared { key: u64, len: u32 },
    }

    /// `MessageRecord` with every field borrowed and `raw` planned.
    pub(super) struct RecordOut<'a> {
        pub(super) id: u64,
        pub(super) received_at_ms: u64,
        pub(super) expires_at_ms: u64,
        pub(super) mailboxes: &'a Vec<String>,
        pub(super) mail_from: &'a String,
        pub(super) client_ip: &'a String,
        pub(super) helo: &'a String,
        pub(super) tls: &'a Option<TlsRecord>,
        pub(super) auth: &'a Vec<AuthResult>,
        pub(super) headers: &'a HeaderSummary,
        pub(super) raw: RawSrc<'a>,
    }

    pub(super) struct RecordOutResolver {
        mailboxes: VecResolver,
        mail_from: StringResolver,
        client_ip: StringResolver,
        helo: StringResolver,
        tls: <Option<TlsRecord> as Archive>::Resolver,
        auth: VecResolver,
        headers: HeaderSummaryResolver,
        raw: VecResolver,
    }

    // Written by hand: the derive's `as` cannot see through the borrowed fields' types.
    impl Archive for RecordOut<'_> {
        type Archived = ArchivedMessageRecord;
        type Resolver = RecordOutResolver;

        fn resolve(&self, r: RecordOutResolver, out: Place<ArchivedMessageRecord>) {
            munge!(let ArchivedMessageRecord {
                id, received_at_ms, expires_at_ms, mailboxes, mail_from, client_ip, helo, tls,
                auth, headers, raw,
            } = out);
            self.id.resolve((), id);
            self.received_at_ms.resolve((), received_at_ms);
            self.expires_at_ms.resolve((), expires_at_ms);
            self.mailboxes.resolve(r.mailboxes, mailboxes);
            self.mail_from.resolve(r.mail_from, mail_from);
            self.client_ip.resolve(r.client_ip, client_ip);
            self.helo.resolve(r.helo, helo);
            self.tls.resolve(r.tls, tls);
            self.auth.resolve(r.auth, auth);
            self.headers.resolve(r.headers, headers);
            self.raw.resolve(r.raw, raw);
        }
    }

    impl<S> Serialize<S> for RecordOut<'_>
    where
        S: Fallible + Allocator + Writer + ?Sized,
        S::Error: Source,
    {
        // Same order as the derive for `MessageRecord`: fields in declaration order.
        fn serialize(&self, s: &mut S) -> Result<RecordOutResolver, S::Error> {
            Ok(RecordOutResolver {
                mailboxes: self.mailboxes.serialize(s)?,
                mail_from: self.mail_from.serialize(s)?,
                client_ip: self.client_ip.serialize(s)?,
                helo: self.helo.serialize(s)?,
                tls: self.tls.serialize(s)?,
                auth: self.auth.serialize(s)?,
                headers: self.headers.serialize(s)?,
                raw: self.raw.serialize(s)?,
            })
        }
    }
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

    /// The owned chunks a plan stands for, built as the write path used to: copied.
    fn owned_raw(trace: &[u8], body: &[u8], plan: &[ChunkPlan]) -> Vec<Chunk> {
        plan.iter()
            .map(|p| match p {
                ChunkPlan::Inline { trace: t, body: r } => {
                    let mut b = if *t { trace.to_vec() } else { Vec::new() };
                    b.extend_from_slice(&body[r.clone()]);
                    Chunk::Inline(b)
                }
                ChunkPlan::Shared { key, len } => Chunk::Shared {
                    key: *key,
                    len: *len,
                },
            })
            .collect()
    }

    #[test]
    fn planned_encoding_matches_owned_encoding() {
        // Goal: a record encoded from a plan is byte-identical to the owned record with the
        // copied chunks, validates, and decodes to it; the bound holds. Cases: shared parts
        // between and after inline bytes, no trace headers, one and several recipients.
        let body: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let trace = b"Received: from a by b\r\n";
        let plans: [(&[u8], Vec<ChunkPlan>); 5] = [
            (
                trace,
                vec![ChunkPlan::Inline {
                    trace: true,
                    body: 0..3000,
                }],
            ),
            (
                b"",
                vec![ChunkPlan::Inline {
                    trace: false,
                    body: 0..3000,
                }],
            ),
            (
                b"",
                vec![ChunkPlan::Inline {
                    trace: false,
                    body: 0..0,
                }],
            ),
            (
                trace,
                vec![
                    ChunkPlan::Inline {
                        trace: true,
                        body: 0..100,
                    },
                    ChunkPlan::Shared { key: 9, len: 1000 },
                    ChunkPlan::Inline {
                        trace: false,
                        body: 1100..1200,
                    },
                    ChunkPlan::Shared { key: 10, len: 1800 },
                ],
            ),
            (
                b"",
                vec![
                    ChunkPlan::Shared { key: 9, len: 1000 },
                    ChunkPlan::Inline {
                        trace: false,
                        body: 1000..3000,
                    },
                ],
            ),
        ];
        let mut arena = Arena::new();
        for (i, (trace, plan)) in plans.iter().enumerate() {
            let mut rec = sample();
            if i % 2 == 0 {
                rec.mailboxes = vec!["only@x.test".into()];
                rec.tls = None;
                rec.auth.clear();
            }
            rec.raw.clear();
            let src = RecordSource {
                rec: &rec,
                trace,
                body: &body,
                plan,
            };
            let mut fast = Aligned([0xAA; 4096]);
            let n = src.encode_into(&mut fast.0, &mut arena).expect("fits");
            assert!(n <= src.encoded_bound(), "case {i}");
            let mut owned = rec.clone();
            owned.raw = owned_raw(trace, &body, plan);
            assert_eq!(src.encoded_bound(), encoded_bound(&owned), "case {i}");
            let mut slow = Aligned([0x55; 4096]);
            let m = encode_into(&owned, &mut slow.0).expect("fits");
            assert_eq!(fast.0[..n], slow.0[..m], "case {i}: bytes differ");
            let payload = &fast.0[..n];
            let a = validate(payload, frame::checksum(payload)).expect("valid");
            assert_eq!(to_owned(a), Some(owned), "case {i}");
        }
    }

    #[test]
    fn planned_encoding_reports_overflow() {
        // Goal: a slot too small for the planned record, or a plan range outside the body,
        // is an error, not a panic.
        let rec = sample();
        let plan = [ChunkPlan::Inline {
            trace: false,
            body: 0..5,
        }];
        let src = RecordSource {
            rec: &rec,
            trace: b"",
            body: b"hello",
            plan: &plan,
        };
        let mut slot = Aligned([0; 4096]);
        assert!(
            src.encode_into(&mut slot.0[..64], &mut Arena::new())
                .is_err()
        );
    }
}
