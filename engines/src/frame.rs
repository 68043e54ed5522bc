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
//! checksum ends the valid prefix. That *damaged* frame starts at a real
//! record boundary, and what follows decides what it is:
//!
//! * **corruption** ([`crate::Error::Corrupt`]) when a *later record* is
//!   present: a valid frame with a non-empty body that starts where the
//!   damaged frame ends. Either it starts at or after the end its length
//!   field claims (the damage is in its body or checksum), or the bytes
//!   between the two verify as one frame once the length field is replaced by
//!   their actual length (the damage is in the length field).
//! * otherwise a **torn tail**: the bytes of the last write, which the crash
//!   interrupted. Recovery truncates them and never reports them.
//!
//! Valid-looking frames *inside* the damaged frame's claimed extent are not
//! later records: a torn record's partial body is user data, which may hold
//! anything, including encoded frames. So a record cut anywhere (its length
//! field intact, its end past the end of the file) is always a torn tail, and
//! one flipped byte anywhere in a complete record followed by another record
//! is always corruption. One case stays ambiguous: when the damaged frame's
//! own length field is unreadable (zeroed or garbage) yet claims an end
//! inside the file, every valid frame past that end counts as a later
//! record, so a torn write that lost the first sector of the last record but
//! kept a later sector holding frame-like user bytes is reported as
//! corruption (refusing to open rather than silently dropping records).
//!
//! This follows real write-ahead logs (RocksDB's
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
/// later record (see the module documentation).
pub fn scan<'a>(buf: &'a [u8], what: &str) -> crate::Result<Scan<'a>> {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while let Some(rest) = buf.get(pos..).filter(|r| !r.is_empty()) {
        match decode_at(rest) {
            Some((body, n)) => {
                records.push((pos as u64, body));
                pos += n;
            }
            None => {
                if let Some(at) = later_record(rest) {
                    return Err(crate::Error::Corrupt(format!(
                        "{what}: damaged record at byte {pos} followed by a valid record at byte {}",
                        pos + at
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

/// `buf` starts with a damaged frame; returns the offset of the first later
/// record (see the module documentation), if any.
fn later_record(buf: &[u8]) -> Option<usize> {
    // The end the damaged frame's length field claims; `None` when the field
    // is unreadable or past any frame, so that the claimed end is past EOF.
    let claimed_end = buf
        .first_chunk::<4>()
        .map(|len| u32::from_le_bytes(*len) as usize)
        .filter(|&len| len <= MAX_BODY)
        .map(|len| OVERHEAD + len);
    // CRC of the damaged frame's body bytes `buf[4..fed]`, grown as the
    // candidates move right, for the repaired-length test.
    let mut body_crc = crc32fast::Hasher::new();
    let mut fed = 4;
    // A later record needs `OVERHEAD + 1` bytes and cannot overlap the
    // damaged frame's own length and checksum fields.
    let last = buf.len().checked_sub(OVERHEAD + 1)?;
    for q in OVERHEAD..=last {
        if !matches!(decode_at(&buf[q..]), Some((body, _)) if !body.is_empty()) {
            continue;
        }
        if claimed_end.is_some_and(|end| q >= end) {
            return Some(q);
        }
        // Does `buf[..q]` verify as one frame with its length field set to
        // the length it really has?
        let crc_at = q - 4;
        body_crc.update(&buf[fed..crc_at]);
        fed = crc_at;
        let real_len = u32::try_from(q - OVERHEAD).ok()?;
        let mut h = crc32fast::Hasher::new();
        h.update(&real_len.to_le_bytes());
        h.combine(&body_crc);
        let stored = buf.get(crc_at..q)?.first_chunk::<4>()?;
        if h.finalize() == u32::from_le_bytes(*stored) {
            return Some(q);
        }
    }
    None
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

    /// A body that is itself two encoded frames, as a user value may be.
    fn frames_inside() -> Vec<u8> {
        let mut inner = b"value: ".to_vec();
        encode(b"inner one", &mut inner);
        encode(b"inner two", &mut inner);
        inner.extend_from_slice(b" end");
        inner
    }

    /// Regression (found by review of issue 4): a torn last record whose
    /// partial body held a valid-looking frame was reported as corruption, so
    /// a store refused to open after an ordinary crash.
    #[test]
    fn torn_record_holding_frames_in_its_body_is_a_torn_tail_at_every_cut() {
        let body = frames_inside();
        let buf = log(&[b"first", &body]);
        let start = OVERHEAD + 5;
        for cut in start..buf.len() {
            let s = scan(&buf[..cut], "t").unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            let bodies: Vec<&[u8]> = s.records.iter().map(|r| r.1).collect();
            assert_eq!(bodies, vec![&b"first"[..]], "cut at {cut}");
            assert_eq!(s.valid_len, start as u64, "cut at {cut}");
        }
        // The same bytes in a file cut mid-record and then zero-extended (the
        // size reached the disk, the data did not) are torn as well.
        for cut in start + 4..buf.len() {
            let mut b = buf[..cut].to_vec();
            b.resize(buf.len(), 0);
            let s = scan(&b, "t").unwrap_or_else(|e| panic!("zeroed from {cut}: {e}"));
            assert_eq!(s.valid_len, start as u64, "zeroed from {cut}");
        }
    }

    #[test]
    fn flipped_byte_anywhere_in_a_complete_record_followed_by_another_is_corruption() {
        let body = frames_inside();
        let buf = log(&[b"first", &body, b"third"]);
        let (start, end) = (OVERHEAD + 5, 2 * OVERHEAD + 5 + body.len());
        for at in start..end {
            for mask in [0x01, 0x10, 0x80, 0xff] {
                let mut bad = buf.clone();
                bad[at] ^= mask;
                assert!(
                    matches!(scan(&bad, "t"), Err(crate::Error::Corrupt(_))),
                    "byte {at} ^ {mask:#x}"
                );
            }
        }
    }

    #[test]
    fn damaged_length_field_is_corruption_whatever_end_it_claims() {
        let buf = log(&[b"first", b"second record", b"third"]);
        let start = OVERHEAD + 5;
        let real = 13u32;
        for len in [0, 1, real - 1, real + 1, real + 9, 1 << 20, u32::MAX] {
            let mut bad = buf.clone();
            bad[start..start + 4].copy_from_slice(&len.to_le_bytes());
            assert!(
                matches!(scan(&bad, "t"), Err(crate::Error::Corrupt(_))),
                "length {len}"
            );
        }
    }

    #[test]
    fn zeroed_span_across_records_is_corruption() {
        let buf = log(&[b"first", b"second", b"third", b"fourth"]);
        let mut bad = buf.clone();
        // From inside "second" through the header of "third".
        bad[OVERHEAD + 5 + 6..3 * OVERHEAD + 5 + 6 + 2].fill(0);
        assert!(matches!(scan(&bad, "t"), Err(crate::Error::Corrupt(_))));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Cutting the last record anywhere is a torn tail and flipping a
        /// byte of an earlier record is corruption, even when bodies hold
        /// encoded frames.
        #[test]
        fn cuts_are_torn_and_flips_are_corrupt(
            bodies in proptest::collection::vec(
                (proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
                 proptest::prelude::any::<bool>()),
                2..6,
            ),
            cut_seed in proptest::prelude::any::<usize>(),
            flip_seed in proptest::prelude::any::<usize>(),
            mask in 1u8..,
        ) {
            let bodies: Vec<Vec<u8>> = bodies
                .into_iter()
                .map(|(b, nest)| if nest { encode_one(&b) } else { b })
                .collect();
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            let buf = log(&refs);
            let last_len = OVERHEAD + bodies[bodies.len() - 1].len();
            let last_start = buf.len() - last_len;
            let cut = last_start + cut_seed % last_len;
            let s = scan(&buf[..cut], "t").unwrap();
            proptest::prop_assert_eq!(s.records.len(), bodies.len() - 1);
            proptest::prop_assert_eq!(s.valid_len, last_start as u64);
            let mut bad = buf.clone();
            bad[flip_seed % last_start] ^= mask;
            proptest::prop_assert!(matches!(scan(&bad, "t"), Err(crate::Error::Corrupt(_))));
        }
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let mut buf = log(&[b"first"]);
        buf.extend_from_slice(&[0u8; 600]);
        let s = scan(&buf, "t").unwrap();
        assert_eq!(s.records.len(), 1);
    }
}
