//! Record framing shared by every engine's logs and tables.
//!
//! # Byte layout
//!
//! ```text
//! +----------------+------------------+----------------------------+
//! | len: u32 LE    | body: len bytes  | crc: u32 LE                |
//! +----------------+------------------+----------------------------+
//!   crc = crc32(len bytes ++ body)    (crc32 = IEEE, crc32fast)
//! ```
//!
//! A frame is *complete* when all `8 + len` bytes are present. While scanning
//! a log from the start, the first frame that is incomplete or fails its
//! checksum ends the valid prefix:
//!
//! * if no complete, valid frame follows it, it is a **torn tail**: the bytes
//!   of a write that the crash interrupted. Recovery truncates them.
//! * if a complete, valid frame follows it, the log is **corrupt**: durable
//!   data was damaged. Recovery reports [`crate::Error::Corrupt`].
//!
//! This is the rule real write-ahead logs use (RocksDB's
//! `kTolerateCorruptedTailRecords`): a crash can only damage the records
//! written after the last fsync, and those are always at the tail.

/// Bytes of framing around each body.
pub const OVERHEAD: usize = 8;

/// Largest body a frame may carry (guards allocation on a corrupt length).
pub const MAX_BODY: usize = 64 << 20;

/// Appends one frame holding `body` to `out`.
pub fn encode(body: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let len_bytes = len.to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len_bytes);
    h.update(body);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(body);
    out.extend_from_slice(&h.finalize().to_le_bytes());
}

/// Encodes one frame into a fresh buffer.
pub fn encode_one(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + OVERHEAD);
    encode(body, &mut v);
    v
}

/// Tries to decode the frame starting at `buf[0]`.
/// Returns the body and the frame's total length, or `None` when the frame is
/// incomplete or its checksum fails.
pub fn decode_at(buf: &[u8]) -> Option<(&[u8], usize)> {
    if buf.len() < OVERHEAD {
        return None;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_BODY || buf.len() < OVERHEAD + len {
        return None;
    }
    let body = &buf[4..4 + len];
    let stored = u32::from_le_bytes([buf[4 + len], buf[5 + len], buf[6 + len], buf[7 + len]]);
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[0..4]);
    h.update(body);
    if h.finalize() != stored {
        return None;
    }
    Some((body, OVERHEAD + len))
}

/// The result of scanning a framed log.
#[derive(Debug)]
pub struct Scan<'a> {
    /// Bodies of the valid frames, in order, with each frame's start offset.
    pub records: Vec<(u64, &'a [u8])>,
    /// Length of the valid prefix; bytes past it are a torn tail.
    pub valid_len: u64,
}

impl Scan<'_> {
    /// True when bytes past the valid prefix must be truncated.
    pub fn has_torn_tail(&self, file_len: u64) -> bool {
        self.valid_len < file_len
    }
}

/// Scans `buf` as a sequence of frames, stopping at a torn tail.
///
/// Returns [`crate::Error::Corrupt`] when a damaged frame is followed by a
/// valid one (see the module documentation).
pub fn scan<'a>(buf: &'a [u8], what: &str) -> crate::Result<Scan<'a>> {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        match decode_at(&buf[pos..]) {
            Some((body, n)) => {
                records.push((pos as u64, body));
                pos += n;
            }
            None => {
                if let Some(at) = valid_frame_after(buf, pos + 1) {
                    return Err(crate::Error::Corrupt(format!(
                        "{what}: damaged record at byte {pos} followed by a valid record at byte {at}"
                    )));
                }
                break;
            }
        }
    }
    Ok(Scan {
        records,
        valid_len: pos as u64,
    })
}

/// Finds the first offset `>= from` where a complete, valid frame with a
/// non-empty body starts.
fn valid_frame_after(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len().saturating_sub(OVERHEAD - 1))
        .find(|&p| matches!(decode_at(&buf[p..]), Some((body, _)) if !body.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(bodies: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for b in bodies {
            encode(b, &mut v);
        }
        v
    }

    #[test]
    fn roundtrip() {
        let buf = log(&[b"a", b"", b"hello world"]);
        let s = scan(&buf, "t").unwrap();
        let bodies: Vec<&[u8]> = s.records.iter().map(|r| r.1).collect();
        assert_eq!(bodies, vec![&b"a"[..], b"", b"hello world"]);
        assert_eq!(s.valid_len, buf.len() as u64);
    }

    #[test]
    fn truncation_at_every_offset_of_last_record_is_a_torn_tail() {
        let buf = log(&[b"first", b"second record"]);
        let first_len = OVERHEAD + 5;
        for cut in first_len..buf.len() {
            let s = scan(&buf[..cut], "t").unwrap();
            assert_eq!(s.records.len(), 1, "cut at {cut}");
            assert_eq!(s.valid_len, first_len as u64);
        }
    }

    #[test]
    fn flipped_byte_before_a_valid_record_is_corruption() {
        let mut buf = log(&[b"first", b"second", b"third"]);
        buf[5] ^= 0x40;
        assert!(matches!(scan(&buf, "t"), Err(crate::Error::Corrupt(_))));
    }

    #[test]
    fn flipped_byte_in_last_record_is_dropped_not_returned() {
        let mut buf = log(&[b"first", b"second"]);
        let n = buf.len();
        buf[n - 6] ^= 1;
        let s = scan(&buf, "t").unwrap();
        assert_eq!(s.records.len(), 1);
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let mut buf = log(&[b"first"]);
        buf.extend_from_slice(&[0u8; 600]);
        let s = scan(&buf, "t").unwrap();
        assert_eq!(s.records.len(), 1);
    }
}
