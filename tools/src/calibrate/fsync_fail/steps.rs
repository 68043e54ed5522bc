//! Runs one workload's file operations on a mounted filesystem, the real
//! one or a durafs volume: what differs between the two (how the failure
//! is armed and cleared, how the filesystem is remounted, what an eviction
//! does) is a [`Bench`].

use super::workload::{NEW, OLD, PAGE, REWRITE, Workload};
use crate::{Result, err};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The file's name in the filesystem's root.
pub const FILE: &str = "f";

/// What one side does at the points where the two sides differ.
pub trait Bench {
    /// The mounted filesystem's root (the same path after a remount).
    fn root(&self) -> PathBuf;
    /// Arms the failure of the next fsync of the file.
    fn arm(&mut self, w: &Workload, file: &Path) -> Result<()>;
    /// Called right after the failing fsync returned.
    fn failed(&mut self, w: &Workload, file: &Path) -> Result<()>;
    /// Disarms the failure.
    fn clear(&mut self) -> Result<()>;
    /// Called just before a read after `drop_caches`: the byte ranges
    /// whose live bytes an eviction replaces with the durable ones, when
    /// the side does not evict them itself (the model's pages a failed
    /// fsync marked clean).
    fn evicted(&mut self, file: &Path) -> Result<Vec<(u64, u64)>>;
    /// Unmounts cleanly and mounts again.
    fn remount(&mut self) -> Result<()>;
}

/// What one step saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A call's result: `0` or the errno's name.
    Rc(String),
    /// The file read whole: its size and bytes.
    Read { size: u64, bytes: Vec<u8> },
}

/// One step's observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Obs {
    pub step: &'static str,
    pub seen: Seen,
}

fn io(what: &str, e: std::io::Error) -> crate::CliError {
    err(format!("{what}: {e}"))
}

fn rc(r: std::io::Result<()>) -> Seen {
    Seen::Rc(match r {
        Ok(()) => "0".into(),
        Err(e) => e
            .raw_os_error()
            .map_or_else(|| e.to_string(), durafs::faults::args::errno_name),
    })
}

fn sync(f: &File, datasync: bool) -> std::io::Result<()> {
    // SAFETY: a valid descriptor.
    let r = unsafe {
        if datasync {
            libc::fdatasync(f.as_raw_fd())
        } else {
            libc::fsync(f.as_raw_fd())
        }
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn read(f: &File) -> Result<Seen> {
    let size = f.metadata().map_err(|e| io("fstat", e))?.len();
    let mut bytes = vec![0u8; size as usize];
    let mut at = 0usize;
    while at < bytes.len() {
        match f.read_at(&mut bytes[at..], at as u64) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) => return Err(io("reading the file", e)),
        }
    }
    bytes.truncate(at);
    Ok(Seen::Read { size, bytes })
}

/// Drops the kernel's clean caches (`echo 3 > /proc/sys/vm/drop_caches`).
pub fn drop_caches() -> Result<()> {
    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| io("drop_caches", e))
}

/// Creates the file and makes its first `w.pages` pages durable, then
/// dirties the overwritten and appended pages.
fn prepare(w: &Workload, root: &Path) -> Result<File> {
    let path = root.join(FILE);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io("creating the file", e))?;
    for p in 0..w.pages {
        f.write_all_at(&w.page_bytes(OLD, p), p * PAGE)
            .map_err(|e| io("writing the old pages", e))?;
    }
    f.sync_all().map_err(|e| io("fsync of the old pages", e))?;
    File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync of the root", e))?;
    for p in &w.overwrite {
        f.write_all_at(&w.page_bytes(NEW, *p), p * PAGE)
            .map_err(|e| io("overwriting", e))?;
    }
    let mut at = w.pages * PAGE;
    while at < w.size() {
        let page = at / PAGE;
        let len = (w.size() - at).min(PAGE) as usize;
        f.write_all_at(&w.page_bytes(NEW, page)[..len], at)
            .map_err(|e| io("appending", e))?;
        at += len as u64;
    }
    Ok(f)
}

/// Runs `w` on `bench`; the observations in order.
pub fn execute(w: &Workload, bench: &mut dyn Bench) -> Result<Vec<Obs>> {
    let root = bench.root();
    let path = root.join(FILE);
    let f = prepare(w, &root)?;
    let mut obs = Vec::new();
    let mut push = |step, seen| obs.push(Obs { step, seen });
    bench.arm(w, &path)?;
    push("fsync", rc(sync(&f, w.datasync)));
    bench.failed(w, &path)?;
    if w.retry {
        push("retry", rc(sync(&f, w.datasync)));
    }
    push("read", read(&f)?);
    if let Some(r) = w.rewrite {
        bench.clear()?;
        let bytes = &w.page_bytes(REWRITE, r.page)[..r.len as usize];
        f.write_all_at(bytes, r.page * PAGE)
            .map_err(|e| io("rewriting", e))?;
        push("rewrite-fsync", rc(sync(&f, w.datasync)));
        push("read-after-rewrite", read(&f)?);
    }
    let mut evicted = Vec::new();
    if w.drop_caches {
        drop_caches()?;
        evicted = bench.evicted(&path)?;
        push("read-after-drop-caches", read(&f)?);
    }
    drop(f);
    bench.clear()?;
    bench.remount()?;
    let f = File::open(&path).map_err(|e| io("opening the file after the remount", e))?;
    let after = read(&f)?;
    drop(f);
    if let (Some(o), Seen::Read { bytes: durable, .. }) = (
        obs.iter_mut().find(|o| o.step == "read-after-drop-caches"),
        &after,
    ) {
        evict(&mut o.seen, &evicted, durable);
    }
    obs.push(Obs {
        step: "read-after-remount",
        seen: after,
    });
    Ok(obs)
}

/// Replaces the bytes of `ranges` in `seen` (a read) with `durable`'s,
/// zeros past its end.
fn evict(seen: &mut Seen, ranges: &[(u64, u64)], durable: &[u8]) {
    let Seen::Read { bytes, .. } = seen else {
        return;
    };
    for (s, e) in ranges {
        let (s, e) = (*s as usize, (*e as usize).min(bytes.len()));
        for (i, b) in bytes.iter_mut().enumerate().take(e).skip(s) {
            *b = durable.get(i).copied().unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eviction_reads_the_durable_bytes_and_zeros_past_them() {
        let mut seen = Seen::Read {
            size: 6,
            bytes: b"nnnnnn".to_vec(),
        };
        evict(&mut seen, &[(1, 2), (3, 6)], b"oooo");
        assert_eq!(
            seen,
            Seen::Read {
                size: 6,
                bytes: b"nono\0\0".to_vec()
            }
        );
    }
}
