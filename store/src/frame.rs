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
/// Record format version: bump on any schema or rkyv format change.
pub const FORMAT_VERSION: u16 = 2;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A live record.
    Record = 1,
    /// A record deleted by a user; its payload is zero.
    Deleted = 2,
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
    b[12..14].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
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
        _ => return Err(HeaderError::Corrupt),
    };
    let len = word(4);
    if b[0..4] != MAGIC || version != FORMAT_VERSION || b[15] != 0 || pad16(len as usize) > room {
        return Err(HeaderError::Corrupt);
    }
    Ok(Header {
        len,
        crc: word(8),
        kind,
    })
}

/// CRC32C of a payload.
pub fn checksum(payload: &[u8]) -> u32 {
    crc32c::crc32c(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_garbage() {
        // Goal: encode/decode agree; zero is End; any bad field is Corrupt; length bound holds.
        let h = Header {
            len: 100,
            crc: 0xdead_beef,
            kind: FrameKind::Record,
        };
        let b = encode(&h);
        assert_eq!(decode(&b, 112), Ok(h));
        assert_eq!(decode(&b, 111), Err(HeaderError::Corrupt));
        assert_eq!(decode(&[0; 16], 1000), Err(HeaderError::End));
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
