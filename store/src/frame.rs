//! Framing of records inside a segment.
//!
//! Every frame starts 16-aligned with a 16-byte header, followed by the payload and zero
//! padding to the next multiple of 16:
//!
//! ```text
//! 0..4   magic  b"TMXR"
//! 4..8   payload length (u32 LE, unpadded)
//! 8..12  CRC32C of the payload
//! 12..14 format version (u16 LE)
//! 14     kind (1 = record, 2 = deleted: payload zeroed)
//! 15     reserved, 0
//! ```
//!
//! An all-zero header marks the end of a segment's data (segments are zeroed before use).

/// Size of a frame header; also the alignment of frames.
pub const HEADER_BYTES: usize = 16;
/// Magic at the start of every header.
pub const MAGIC: [u8; 4] = *b"TMXR";
/// Record format version written: bump on any schema or rkyv format change.
/// 3: the header summary's `from` and `subject` are decoded at ingest (see `summary`).
pub const FORMAT_VERSION: u16 = 3;
/// Oldest record format version read. 2 has the schema of 3 with `from` and `subject`
/// as received; readers decode them (so records from before stay readable in place).
pub const FORMAT_VERSION_MIN: u16 = 2;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A live record.
    Record = 1,
    /// A deleted record; its payload is zero but for the message id (see [`tombstone`]).
    Deleted = 2,
    /// A live record compressed (fleet mode's cluster values only, never on a shard's
    /// arena): the payload is the record's length (u32 LE) and its LZ4 block; the CRC is
    /// the record's, checked after decompression.
    Compressed = 3,
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Unpadded payload length.
    pub len: u32,
    /// CRC32C of the payload.
    pub crc: u32,
    /// Record or tombstone.
    pub kind: FrameKind,
    /// Format version, [`FORMAT_VERSION_MIN`] to [`FORMAT_VERSION`].
    pub version: u16,
}

/// Why a header could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// All zero: end of the segment's data.
    End,
    /// Anything else that is not a valid header.
    Corrupt,
}

/// Rounds `n` up to the frame alignment.
pub const fn pad16(n: usize) -> usize {
    (n + 15) & !15
}

/// Total bytes a frame with `payload` bytes occupies.
pub const fn frame_bytes(payload: usize) -> usize {
    HEADER_BYTES + pad16(payload)
}

/// Encodes a header.
pub fn encode(h: &Header) -> [u8; HEADER_BYTES] {
    let mut b = [0u8; HEADER_BYTES];
    b[0..4].copy_from_slice(&MAGIC);
    b[4..8].copy_from_slice(&h.len.to_le_bytes());
    b[8..12].copy_from_slice(&h.crc.to_le_bytes());
    b[12..14].copy_from_slice(&h.version.to_le_bytes());
    b[14] = h.kind as u8;
    b
}

/// Decodes a header; `room` is the space left in the segment after the header.
pub fn decode(b: &[u8; HEADER_BYTES], room: usize) -> Result<Header, HeaderError> {
    if b.iter().all(|&x| x == 0) {
        return Err(HeaderError::End);
    }
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let version = u16::from_le_bytes([b[12], b[13]]);
    let kind = match b[14] {
        1 => FrameKind::Record,
        2 => FrameKind::Deleted,
        3 => FrameKind::Compressed,
        _ => return Err(HeaderError::Corrupt),
    };
    let len = word(4);
    if b[0..4] != MAGIC
        || !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&version)
        || b[15] != 0
        || pad16(len as usize) > room
    {
        return Err(HeaderError::Corrupt);
    }
    Ok(Header {
        len,
        crc: word(8),
        kind,
        version,
    })
}

/// Turns the frame at the start of `frame` (payload length `len`) into a tombstone: the
/// payload is zeroed except its first 8 bytes, which keep the deleted message's `id` (0
/// when unknown) so recovery can place the deletion among the records; the header's CRC
/// covers those 8 bytes. An id tells when mail arrived, nothing of what it said.
pub fn tombstone(frame: &mut [u8], len: u32, id: u64) {
    let end = frame_bytes(len as usize).min(frame.len());
    frame[HEADER_BYTES..end].fill(0);
    let mut crc = 0;
    if len >= 8 && id != 0 {
        frame[HEADER_BYTES..HEADER_BYTES + 8].copy_from_slice(&id.to_le_bytes());
        crc = checksum(&id.to_le_bytes());
    }
    let h = Header {
        len,
        crc,
        kind: FrameKind::Deleted,
        version: FORMAT_VERSION,
    };
    frame[..HEADER_BYTES].copy_from_slice(&encode(&h));
}

/// The message id a tombstone with header CRC `crc` keeps (None when it has none or the
/// bytes do not match their CRC).
pub fn tombstone_id(payload: &[u8], crc: u32) -> Option<u64> {
    let b: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    let id = u64::from_le_bytes(b);
    (id != 0 && checksum(&b) == crc).then_some(id)
}

/// CRC32C of a payload.
pub fn checksum(payload: &[u8]) -> u32 {
    crate::crc::crc32c(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstone_keeps_only_a_checked_id() {
        // Goal: a tombstone zeroes the payload but for the id, which reads back only while
        // its CRC matches; without an id nothing is kept.
        let mut f = [0xAAu8; 64];
        f[..HEADER_BYTES].copy_from_slice(&encode(&Header {
            len: 40,
            crc: 1,
            kind: FrameKind::Record,
            version: FORMAT_VERSION,
        }));
        tombstone(&mut f, 40, 0x1234_5678_9abc);
        let h = decode(f[..HEADER_BYTES].try_into().expect("16"), 48).expect("header");
        assert_eq!(h.kind, FrameKind::Deleted);
        let payload = &f[HEADER_BYTES..];
        assert_eq!(tombstone_id(payload, h.crc), Some(0x1234_5678_9abc));
        assert!(payload[8..].iter().all(|&b| b == 0));
        let mut bad = payload.to_vec();
        bad[3] ^= 1;
        assert_eq!(tombstone_id(&bad, h.crc), None);
        tombstone(&mut f, 40, 0);
        let h = decode(f[..HEADER_BYTES].try_into().expect("16"), 48).expect("header");
        assert_eq!(tombstone_id(&f[HEADER_BYTES..], h.crc), None);
        assert!(f[HEADER_BYTES..].iter().all(|&b| b == 0));
    }

    #[test]
    fn header_round_trips_and_rejects_garbage() {
        // Goal: encode/decode agree; zero is End; any bad field is Corrupt; length bound holds.
        let h = Header {
            len: 100,
            crc: 0xdead_beef,
            kind: FrameKind::Record,
            version: FORMAT_VERSION,
        };
        let b = encode(&h);
        assert_eq!(decode(&b, 112), Ok(h));
        assert_eq!(decode(&b, 111), Err(HeaderError::Corrupt));
        assert_eq!(decode(&[0; 16], 1000), Err(HeaderError::End));
        let old = Header {
            version: FORMAT_VERSION_MIN,
            ..h
        };
        assert_eq!(decode(&encode(&old), 112), Ok(old));
        for v in [FORMAT_VERSION_MIN - 1, FORMAT_VERSION + 1] {
            let too = encode(&Header { version: v, ..h });
            assert_eq!(decode(&too, 112), Err(HeaderError::Corrupt), "version {v}");
        }
        for i in [0usize, 12, 14, 15] {
            let mut bad = b;
            bad[i] ^= 0x40;
            assert_eq!(decode(&bad, 1000), Err(HeaderError::Corrupt), "byte {i}");
        }
        assert_eq!(frame_bytes(0), 16);
        assert_eq!(frame_bytes(1), 32);
        assert_eq!(frame_bytes(16), 32);
    }
}
