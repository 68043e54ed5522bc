//! Where a file's bytes lie on its device: the `FS_IOC_FIEMAP` ioctl
//! (`Documentation/filesystems/fiemap.rst`). Only extents whose bytes are
//! plain device bytes are returned as such: an unwritten (reads as zeros),
//! delayed, inline, encoded or unaligned extent has no device range whose
//! content is the file's.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// One extent: file bytes `[logical, logical + length)` are device bytes
/// `[physical, physical + length)` when `plain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub length: u64,
    pub plain: bool,
}

impl Extent {
    /// The device offset of file offset `off` if this extent maps it to
    /// plain device bytes.
    pub fn device(&self, off: u64) -> Option<u64> {
        (self.plain && self.logical <= off && off < self.logical + self.length)
            .then(|| self.physical + (off - self.logical))
    }
}

/// `struct fiemap_extent` of `<linux/fiemap.h>`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

/// Extents asked for per call.
const BATCH: usize = 32;

/// `struct fiemap` with room for [`BATCH`] extents.
#[repr(C)]
struct Request {
    start: u64,
    length: u64,
    flags: u32,
    mapped: u32,
    count: u32,
    reserved: u32,
    extents: [RawExtent; BATCH],
}

/// `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const LAST: u32 = 0x1;
/// UNKNOWN, DELALLOC, ENCODED, DATA_ENCRYPTED, NOT_ALIGNED, DATA_INLINE,
/// DATA_TAIL, UNWRITTEN: the device range does not hold the file's bytes.
const NOT_PLAIN: u32 = 0x2 | 0x4 | 0x8 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800;

/// The extents of the file at `path`, in file order.
pub fn extents(path: &Path) -> std::io::Result<Vec<Extent>> {
    let f = File::open(path)?;
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let mut req = Request {
            start,
            length: u64::MAX - start,
            flags: 0,
            mapped: 0,
            count: BATCH as u32,
            reserved: 0,
            extents: [RawExtent::default(); BATCH],
        };
        // SAFETY: `req` is a `struct fiemap` followed by room for `count`
        // extents, as the ioctl expects; it lives across the call.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FIEMAP, &mut req as *mut Request) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let got = &req.extents[..(req.mapped as usize).min(BATCH)];
        for e in got {
            out.push(Extent {
                logical: e.logical,
                physical: e.physical,
                length: e.length,
                plain: e.flags & NOT_PLAIN == 0,
            });
        }
        match got.last() {
            Some(e) if e.flags & LAST == 0 && got.len() == BATCH => {
                start = e.logical + e.length;
            }
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_has_its_bytes_in_extents_and_a_hole_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        {
            use std::os::unix::fs::FileExt;
            let f = File::create(&p).unwrap();
            f.write_all_at(&[7u8; 8192], 1 << 20).unwrap();
            f.sync_all().unwrap();
        }
        let ex = extents(&p).expect("FIEMAP on the temp directory's filesystem");
        assert!(ex.iter().all(|e| e.logical >= 1 << 20), "{ex:?}");
        assert!(ex.iter().any(|e| e.device(1 << 20).is_some()), "{ex:?}");
        assert!(ex.iter().all(|e| e.device(0).is_none()));
    }
}
