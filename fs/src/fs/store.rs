//! The durable store's contract, and the two stores that keep it: the
//! backing directory ([`Backing`], a mounted volume) and memory
//! ([`MemoryStore`], unit tests of the volume without a disk).
//!
//! The effects and their semantics are stated once, at the top of
//! `model/op.rs`; a [`Store`] applies them in order, makes them durable
//! before `apply` returns `Ok`, reads durable bytes back, settles after a
//! crash, and keeps unnamed inodes as orphans until the volume, which asks
//! the model, says nothing can link them again.

use super::{DuraFs, FsOptions};
use crate::backing::{Backing, BackingError, Orphan};
use crate::model::{Attrs, Config, Effect, Ino, MemStore, Model};
use parking_lot::Mutex;
use std::fmt;
use std::io;
use std::path::Path;

/// A durable store ([`super::DuraFs`] holds one).
pub(crate) trait Store: Send + Sync + fmt::Debug {
    /// Applies `effects` in order; `Ok` means they are durable. On an
    /// error the store's logical view is as before the batch.
    fn apply(&self, effects: &[Effect]) -> io::Result<()>;
    /// After a cut: keeps what a remount shows (orphans dropped, each
    /// directory at one entry).
    fn after_crash(&self) -> io::Result<()>;
    /// Appends `len` durable bytes of `ino` at `offset` to `out` (zeros
    /// past its end).
    fn read(&self, ino: Ino, offset: u64, len: u64, out: &mut Vec<u8>) -> io::Result<()>;
    /// Ranges of `ino`'s first `size` bytes that may hold data (the rest
    /// reads as zeros).
    fn data_ranges(&self, ino: Ino, size: u64) -> io::Result<Vec<(u64, u64)>>;
    /// Inodes only the orphans hold.
    fn orphans(&self) -> Vec<Orphan>;
    /// True when only the orphans hold `ino`.
    fn is_orphan(&self, ino: Ino) -> bool;
    /// Deletes orphan `ino` and what it takes.
    fn delete_orphan(&self, ino: Ino) -> io::Result<()>;
    /// Lets go of the store after a cut (a remount may take it over).
    fn release(&self);
    /// fsyncs the store made of its own files (`--real-fsync`).
    fn fsyncs(&self) -> u64;
    /// The directory it lives in, if any.
    fn root(&self) -> Option<&Path>;
}

impl Store for Backing {
    fn apply(&self, effects: &[Effect]) -> io::Result<()> {
        Backing::apply(self, effects)
    }
    fn after_crash(&self) -> io::Result<()> {
        Backing::after_crash(self)
    }
    fn read(&self, ino: Ino, offset: u64, len: u64, out: &mut Vec<u8>) -> io::Result<()> {
        Backing::read(self, ino, offset, len, out)
    }
    fn data_ranges(&self, ino: Ino, size: u64) -> io::Result<Vec<(u64, u64)>> {
        Backing::data_ranges(self, ino, size)
    }
    fn orphans(&self) -> Vec<Orphan> {
        Backing::orphans(self)
    }
    fn is_orphan(&self, ino: Ino) -> bool {
        Backing::is_orphan(self, ino)
    }
    fn delete_orphan(&self, ino: Ino) -> io::Result<()> {
        Backing::delete_orphan(self, ino)
    }
    fn release(&self) {
        Backing::release(self)
    }
    fn fsyncs(&self) -> u64 {
        Backing::fsyncs(self)
    }
    fn root(&self) -> Option<&Path> {
        Some(Backing::root(self))
    }
}

/// A [`MemStore`] as a volume's store: the same effects, in memory.
#[derive(Debug)]
pub(crate) struct MemoryStore(Mutex<MemStore>);

impl Store for MemoryStore {
    fn apply(&self, effects: &[Effect]) -> io::Result<()> {
        self.0.lock().apply_all(effects);
        Ok(())
    }
    fn after_crash(&self) -> io::Result<()> {
        let mut s = self.0.lock();
        *s = s.after_crash();
        Ok(())
    }
    fn read(&self, ino: Ino, offset: u64, len: u64, out: &mut Vec<u8>) -> io::Result<()> {
        self.0.lock().read(ino, offset, len, out);
        Ok(())
    }
    fn data_ranges(&self, _ino: Ino, size: u64) -> io::Result<Vec<(u64, u64)>> {
        Ok(if size == 0 {
            Vec::new()
        } else {
            vec![(0, size)]
        })
    }
    fn orphans(&self) -> Vec<Orphan> {
        self.0
            .lock()
            .orphans()
            .into_iter()
            .map(|(ino, takes)| Orphan { ino, takes })
            .collect()
    }
    fn is_orphan(&self, ino: Ino) -> bool {
        self.0.lock().orphans().iter().any(|(o, _)| *o == ino)
    }
    fn delete_orphan(&self, ino: Ino) -> io::Result<()> {
        if self.0.lock().delete_orphan(ino) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("#{ino} is not an orphan"),
            ))
        }
    }
    fn release(&self) {}
    fn fsyncs(&self) -> u64 {
        0
    }
    fn root(&self) -> Option<&Path> {
        None
    }
}

impl DuraFs {
    /// A volume kept in memory: an empty root directory with `root`'s
    /// attributes, every extended attribute namespace, no disk. For unit
    /// tests of the volume (hooks, writeback, reclaim, cut) without a
    /// backing directory; `statfs` reports a fixed empty filesystem.
    pub fn in_memory(opts: FsOptions, root: Attrs) -> Result<DuraFs, BackingError> {
        let store = MemStore::new(root);
        let cfg = Config {
            persistence: opts.persistence,
            ..Config::default()
        };
        let model =
            Model::from_image(cfg, &store.image()).map_err(|what| BackingError::Unsupported {
                path: "<memory>".into(),
                what,
            })?;
        let support = crate::backing::xattrs::Support {
            user: true,
            trusted: true,
            max_entry: 64 * 1024,
        };
        Ok(DuraFs::over(
            model,
            Box::new(MemoryStore(Mutex::new(store))),
            opts,
            support,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tests::attrs;
    use crate::model::crash::{CrashOptions, Policy};
    use crate::model::{Kind, ROOT};
    use crate::trace::TraceOp;

    fn volume(dirty_limit: u64) -> DuraFs {
        let opts = FsOptions {
            dirty_limit,
            ..FsOptions::default()
        };
        DuraFs::in_memory(opts, attrs()).unwrap()
    }

    #[test]
    fn a_volume_in_memory_writes_back_past_its_dirty_limit_and_reads_it_back() {
        let fs = volume(4096);
        let f = fs
            .create(ROOT, b"f", Kind::File, attrs(), None)
            .unwrap()
            .ino;
        fs.write(f, 0, &[7u8; 10_000]).unwrap();
        let info = fs.info();
        assert!(info.writebacks >= 1, "{info:?}");
        assert!(info.dirty_bytes <= 4096, "{info:?}");
        assert_eq!(info.backing, "<memory>");
        assert_eq!(fs.backing_root(), None);
        assert_eq!(fs.read(f, 0, 10_000).unwrap(), vec![7u8; 10_000]);
        assert_eq!(fs.statfs().unwrap().bsize, 4096);
    }

    #[test]
    fn a_volume_in_memory_traces_and_cuts_what_the_model_drops() {
        let fs = volume(1 << 30);
        fs.start_trace(true, None).unwrap();
        let a = fs
            .create(ROOT, b"a", Kind::File, attrs(), None)
            .unwrap()
            .ino;
        fs.write(a, 0, b"synced").unwrap();
        fs.fsync(a, false).unwrap();
        fs.fsyncdir(ROOT).unwrap();
        let b = fs
            .create(ROOT, b"b", Kind::File, attrs(), None)
            .unwrap()
            .ino;
        fs.write(b, 0, b"lost").unwrap();
        let trace = fs.finish_trace().unwrap().unwrap();
        let ops: Vec<&str> = trace.events.iter().map(|e| e.op.name()).collect();
        assert_eq!(
            ops,
            ["create", "write", "fsync", "fsyncdir", "create", "write"]
        );
        assert!(matches!(trace.events[4].op, TraceOp::Create { ino, .. } if ino == b));
        let cut = fs
            .cut(CrashOptions {
                policy: Policy::DropAll,
                ..CrashOptions::default()
            })
            .unwrap();
        assert_eq!((cut.ops_lost, cut.bytes_lost), (2, 4));
        assert!(
            fs.read(a, 0, 6).is_err(),
            "the volume answers EIO after the cut"
        );
        let mut out = Vec::new();
        fs.store.read(a, 0, 6, &mut out).unwrap();
        assert_eq!(out, b"synced");
        assert!(fs.store.orphans().is_empty(), "settled: nothing unnamed");
    }
}
