//! The one place that makes things durable on a real filesystem.
//!
//! Every crate in the workspace calls these helpers instead of calling
//! `sync_all` or `rename` inline, so that the ordering rules live in one spot:
//!
//! * [`fsync_file`] makes a file's data and metadata durable.
//! * [`fsync_dir`] makes a directory's entries durable: a create, rename or
//!   unlink inside it survives a power cut only after this returns;
//!   [`fsync_parent`] does it for the directory holding a given path.
//! * [`rewrite_atomic`] replaces a file's whole content so that a crash leaves
//!   either the old or the new content, never a mix or nothing.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Makes `file`'s data and metadata durable (`fsync(2)`).
pub fn fsync_file(file: &File) -> io::Result<()> {
    file.sync_all()
}

/// Makes only `file`'s data and size durable (`fdatasync(2)`).
pub fn fdatasync_file(file: &File) -> io::Result<()> {
    file.sync_data()
}

/// Makes the entries of directory `dir` durable (`fsync(2)` on the directory).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    d.sync_all()
}

/// Makes `path`'s entry in its directory durable: [`fsync_dir`] of its
/// parent (`.` for a bare file name).
pub fn fsync_parent(path: &Path) -> io::Result<()> {
    fsync_dir(parent_dir(path)?)
}

/// As [`fsync_dir`], on a directory already open (for reading): the
/// backing store reaches its directories through descriptors, never paths.
pub fn fsync_dir_handle(dir: &File) -> io::Result<()> {
    dir.sync_all()
}

/// Atomically replaces `path` with `contents`, durably.
///
/// Order: write `path.tmp`, fsync it, rename over `path`, fsync the parent
/// directory. After a crash at any instant, `path` holds the old or the new
/// content in full.
pub fn rewrite_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    rewrite_atomic_with(path, contents, fsync_file, fsync_dir)
}

/// [`rewrite_atomic`] with its two fsyncs made by `sync_file` and
/// `sync_dir` (an engine that decides what a failed fsync leads to passes
/// its own). The order is the same.
pub fn rewrite_atomic_with(
    path: &Path,
    contents: &[u8],
    sync_file: impl FnOnce(&File) -> io::Result<()>,
    sync_dir: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let parent = parent_dir(path)?;
    let mut tmp_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_os_string();
    tmp_name.push(".tmp");
    let tmp = parent.join(tmp_name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(contents)?;
        // IMPORTANT: the new content is durable before its name replaces
        // the old one.
        sync_file(&f)?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(parent)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no parent directory",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_atomic_replaces_content_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta");
        rewrite_atomic(&p, b"one").unwrap();
        rewrite_atomic(&p, b"two!").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two!");
        assert!(!dir.path().join("meta.tmp").exists());
    }

    #[test]
    fn fsync_parent_syncs_the_directory_holding_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        fsync_parent(&dir.path().join("f")).unwrap();
        let err = fsync_parent(&dir.path().join("missing/f")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn fsync_dir_reports_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = fsync_dir(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
