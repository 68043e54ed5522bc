//! `statfs`: the backing directory's filesystem statistics.

use super::{DuraFs, Error, Result, backing_err};
use crate::model::FsError;
use std::io;

/// Filesystem statistics of the backing directory.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

impl StatFs {
    /// What a volume in memory reports: an empty filesystem of 4 KiB blocks.
    pub const EMPTY: StatFs = StatFs {
        blocks: 0,
        bfree: 0,
        bavail: 0,
        files: 0,
        ffree: 0,
        bsize: 4096,
        namelen: 255,
        frsize: 4096,
    };
}

impl DuraFs {
    /// Statistics of the backing directory's filesystem.
    pub fn statfs(&self) -> Result<StatFs> {
        if self.model.is_cut() {
            return Err(FsError::Cut.into());
        }
        let Some(root) = self.store.root() else {
            return Ok(StatFs::EMPTY);
        };
        let c = crate::sys::cstring(root).map_err(|_| Error::Fs(FsError::Invalid))?;
        // SAFETY: an all-zero statvfs is a valid value to be overwritten.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid path and a valid out-pointer.
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return Err(backing_err("statfs", io::Error::last_os_error()));
        }
        Ok(StatFs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: u32::try_from(s.f_bsize).unwrap_or(4096),
            namelen: u32::try_from(s.f_namemax).unwrap_or(255),
            frsize: u32::try_from(s.f_frsize).unwrap_or(4096),
        })
    }
}
