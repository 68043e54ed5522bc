//! Where a backing file holds data: the ranges `SEEK_DATA` and `SEEK_HOLE`
//! find, so that a reader of a sparse file skips its holes (the starting
//! tree of a trace, `crate::fs::DuraFs::start_trace`).

use super::Backing;
use crate::model::Ino;
use std::io;
use std::os::fd::AsRawFd;

impl Backing {
    /// The ranges `(offset, len)` of the first `size` bytes of `ino` that
    /// may hold data, ascending; everything else reads as zeros. A
    /// filesystem that cannot tell holes gives one range over all of it.
    pub fn data_ranges(&self, ino: Ino, size: u64) -> io::Result<Vec<(u64, u64)>> {
        let Some(file) = self.stored_file(ino)? else {
            return Ok(Vec::new());
        };
        let fd = file.as_raw_fd();
        let seek = |pos: u64, whence: libc::c_int| -> io::Result<Option<u64>> {
            let pos = libc::off_t::try_from(pos)
                .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
            // SAFETY: lseek on a descriptor `file` keeps open; no memory is passed.
            let r = unsafe { libc::lseek(fd, pos, whence) };
            if r >= 0 {
                return Ok(Some(r as u64));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // No data at or after `pos`.
                Some(libc::ENXIO) => Ok(None),
                _ => Err(e),
            }
        };
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < size {
            let start = match seek(pos, libc::SEEK_DATA) {
                Ok(Some(s)) if s < size => s,
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(vec![(0, size)]),
                Err(e) => return Err(e),
            };
            let end = seek(start, libc::SEEK_HOLE)?.unwrap_or(size).min(size);
            if end <= start {
                break;
            }
            out.push((start, end - start));
            pos = end;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::BackingOptions;
    use super::*;
    use crate::model::{Attrs, Effect, Kind, NewInode, ROOT};
    use bytes::Bytes;

    #[test]
    fn the_ranges_of_a_sparse_file_cover_its_data_and_skip_its_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = Backing::open(dir.path(), BackingOptions::default()).unwrap();
        let ino = 2;
        let init = NewInode {
            kind: Kind::File,
            attrs: Attrs::default(),
            target: None,
        };
        let far = 1u64 << 32;
        b.apply(&[
            Effect::Link {
                dir: ROOT,
                name: b"f".to_vec(),
                ino,
                init,
            },
            Effect::Write {
                ino,
                offset: 0,
                data: Bytes::from_static(b"head"),
            },
            Effect::Write {
                ino,
                offset: far,
                data: Bytes::from_static(b"tail"),
            },
        ])
        .unwrap();
        let size = far + 4;
        let ranges = b.data_ranges(ino, size).unwrap();
        let covered: u64 = ranges.iter().map(|r| r.1).sum();
        assert!(covered < 1 << 24, "holes skipped: {ranges:?}");
        let holds = |at: u64| ranges.iter().any(|(o, l)| (*o..o + l).contains(&at));
        assert!(holds(0) && holds(far) && holds(far + 3), "{ranges:?}");
        assert!(ranges.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
        assert_eq!(b.data_ranges(ino, 2).unwrap(), vec![(0, 2)], "cut at size");
        assert!(b.data_ranges(99, 10).unwrap().is_empty(), "unknown inode");
    }
}
