//! Limits of the filesystem under `BACKING`, probed once at open, so that
//! durafs refuses what the backing store could never make durable (a write
//! the model accepted and fsync then failed would be a lie).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

/// The largest file size the filesystem holding `dir` accepts: a binary
/// search with `ftruncate` on a scratch file in `dir` (sparse: no space is
/// used), which is removed again. ext4 with 4 KiB blocks answers
/// 2^44 - 4096; xfs and tmpfs answer 2^63 - 1.
pub fn max_file_size(dir: &Path) -> io::Result<u64> {
    let path = dir.join("size-probe");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    // Invariant: `lo` is accepted, `hi` is refused (`off_t` is signed).
    let (mut lo, mut hi) = (0u64, 1u64 << 63);
    let mut result = Ok(());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match f.set_len(mid) {
            Ok(()) => lo = mid,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EFBIG | libc::EINVAL)) => hi = mid,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(f);
    let removed = fs::remove_file(&path);
    result?;
    removed?;
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_finds_a_size_the_filesystem_accepts_and_leaves_nothing() {
        let d = tempfile::tempdir().expect("tempdir");
        let max = max_file_size(d.path()).expect("probe");
        assert!(max >= 1 << 32, "{max}");
        let f = fs::File::create(d.path().join("f")).expect("create");
        f.set_len(max).expect("the probed size is accepted");
        if max < i64::MAX as u64 {
            assert!(f.set_len(max + 1).is_err(), "one more byte is refused");
        }
        drop(f);
        fs::remove_file(d.path().join("f")).expect("rm");
        assert_eq!(fs::read_dir(d.path()).expect("ls").count(), 0);
    }
}
