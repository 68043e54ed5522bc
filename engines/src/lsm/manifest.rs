//! The manifest: which SSTables make up the tree.
//!
//! # Byte layout (`MANIFEST`)
//!
//! ```text
//! +--------------------------------------------------------------------+
//! | frame(body)                       the whole file is exactly one frame |
//! +--------------------------------------------------------------------+
//! body = magic "DFSLSMM1" (8) | next_id u64 LE | count u32 LE | id u64 LE x count
//! ```
//!
//! Table `id` lives in the file `table_file_name(id)` (`000042.sst`). The ids
//! are listed oldest table first and strictly increase; every id is below
//! `next_id`, the id the next new table gets. A missing `MANIFEST` means an
//! empty tree; a `MANIFEST` that is not exactly one valid frame is
//! [`Error::Corrupt`].
//!
//! # Durability
//!
//! Under [`Durability::Fsync`], [`Manifest::store`] replaces the file with
//! [`durafs::fsio::rewrite_atomic`] (through `MANIFEST.tmp`): after any crash the file
//! holds the old or the new list in full. Under [`Durability::Flush`] it
//! truncates and rewrites the file in place with no fsync: a power cut can
//! leave it empty, zero-filled or holding the old list.

use std::fs;
use std::io;
use std::path::Path;

use crate::sstable::Decoder;
use crate::{Durability, Error, Result, frame};

/// File name of the manifest inside the LSM directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// The temporary file [`durafs::fsio::rewrite_atomic`] writes before its rename.
pub const MANIFEST_TMP_FILE: &str = "MANIFEST.tmp";

const MAGIC: [u8; 8] = *b"DFSLSMM1";

/// The durable list of live tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Id the next new table gets.
    pub next_id: u64,
    /// Live table ids, oldest first (strictly increasing).
    pub tables: Vec<u64>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            next_id: 1,
            tables: Vec::new(),
        }
    }
}

/// File name of table `id`.
pub fn table_file_name(id: u64) -> String {
    format!("{id:06}.sst")
}

/// The id of a table file name, only for names [`table_file_name`] produces.
pub fn parse_table_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".sst")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = digits.parse().ok()?;
    (table_file_name(id) == name).then_some(id)
}

impl Manifest {
    /// Takes a new table id.
    pub fn allocate_id(&mut self) -> Result<u64> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| Error::Invalid("table ids exhausted".into()))?;
        Ok(id)
    }

    /// Encodes the whole file.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(20 + 8 * self.tables.len());
        body.extend_from_slice(&MAGIC);
        body.extend_from_slice(&self.next_id.to_le_bytes());
        let count = u32::try_from(self.tables.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&count.to_le_bytes());
        for id in &self.tables {
            body.extend_from_slice(&id.to_le_bytes());
        }
        frame::encode_one(&body)
    }

    /// Decodes and validates a whole file.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let corrupt = |m: &str| Error::Corrupt(format!("manifest: {m}"));
        let (body, n) =
            frame::decode_at(buf).ok_or_else(|| corrupt("torn or fails its checksum"))?;
        if n != buf.len() {
            return Err(corrupt("trailing bytes after the record"));
        }
        let mut d = Decoder::new(body, "manifest");
        if d.array::<8>()? != MAGIC {
            return Err(corrupt("bad magic number"));
        }
        let next_id = d.u64()?;
        let count = d.u32()?;
        let mut tables: Vec<u64> = Vec::new();
        for _ in 0..count {
            let id = d.u64()?;
            if id >= next_id || tables.last().is_some_and(|&prev| prev >= id) {
                return Err(corrupt("table ids out of order"));
            }
            tables.push(id);
        }
        d.finish()?;
        Ok(Manifest { next_id, tables })
    }

    /// Reads `dir/MANIFEST`; a missing file is an empty tree.
    pub fn load(dir: &Path) -> Result<Self> {
        match fs::read(dir.join(MANIFEST_FILE)) {
            Ok(buf) => Self::decode(&buf),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `dir/MANIFEST` (see the module's Durability section).
    pub fn store(&self, dir: &Path, order: Durability) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = self.encode();
        // IMPORTANT: under Fsync the switch to the new table list is atomic
        // and durable when this returns; callers order their other steps
        // around this single commit point. Vulnerable under Flush (analysis
        // point 4): updated in place, not atomic, not fsynced.
        order.rewrite(&path, &bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            next_id: 9,
            tables: vec![2, 5, 8],
        }
    }

    #[test]
    fn roundtrip_both_ways_of_storing() {
        for order in [Durability::Flush, Durability::FSYNC] {
            let dir = tempfile::tempdir().unwrap();
            assert_eq!(Manifest::load(dir.path()).unwrap(), Manifest::default());
            sample().store(dir.path(), order).unwrap();
            assert_eq!(Manifest::load(dir.path()).unwrap(), sample());
            let one = Manifest {
                next_id: 10,
                tables: vec![9],
            };
            one.store(dir.path(), order).unwrap();
            assert_eq!(Manifest::load(dir.path()).unwrap(), one);
            assert!(!dir.path().join(MANIFEST_TMP_FILE).exists());
        }
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_corruption() {
        let full = sample().encode();
        for cut in 0..full.len() {
            assert!(
                matches!(Manifest::decode(&full[..cut]), Err(Error::Corrupt(_))),
                "cut at {cut}"
            );
        }
        for at in 0..full.len() {
            let mut bad = full.clone();
            bad[at] ^= 0x80;
            assert!(
                matches!(Manifest::decode(&bad), Err(Error::Corrupt(_))),
                "flip at {at}"
            );
        }
        let mut trailing = full.clone();
        trailing.push(0);
        assert!(matches!(
            Manifest::decode(&trailing),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn checksummed_but_inconsistent_lists_are_corruption() {
        for tables in [vec![3, 3], vec![5, 2], vec![9]] {
            let m = Manifest { next_id: 9, tables };
            assert!(matches!(
                Manifest::decode(&m.encode()),
                Err(Error::Corrupt(_))
            ));
        }
    }

    #[test]
    fn table_file_names_roundtrip_strictly() {
        assert_eq!(table_file_name(42), "000042.sst");
        assert_eq!(parse_table_file_name("000042.sst"), Some(42));
        assert_eq!(parse_table_file_name("1234567.sst"), Some(1_234_567));
        for bad in [
            "42.sst",
            "00042.sst",
            "+00042.sst",
            "000042.sst.tmp",
            "x.sst",
            ".sst",
        ] {
            assert_eq!(parse_table_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn allocate_id_advances() {
        let mut m = Manifest::default();
        assert_eq!(m.allocate_id().unwrap(), 1);
        assert_eq!(m.allocate_id().unwrap(), 2);
        assert_eq!(m.next_id, 3);
    }
}
