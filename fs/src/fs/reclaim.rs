//! Freeing the backing space of durably deleted inodes while mounted.
//!
//! The store keeps an inode whose last durable entry went as an orphan
//! (`crate::backing` module `reclaim`); the model says when nothing can link
//! it again ([`crate::model::Model::referenced`]). Checked after every
//! durability point that can remove entries and when the kernel forgets an
//! orphan, always alone with the store (`order`), so no effect the model
//! has handed out is on its way to the store while the two are compared.

use super::DuraFs;
use crate::model::Ino;

impl DuraFs {
    /// The kernel forgot `ino` and the model dropped it: if the store holds
    /// it only as an orphan, it may go now.
    pub(super) fn reclaim_forgotten(&self, ino: Ino) {
        if self.store.is_orphan(ino) {
            let _g = self.store_order.applying();
            self.reclaim_orphans();
        }
    }

    /// Deletes every orphan the model can no longer link (the caller is
    /// alone with the store: `order`). A failure is logged, not returned: an orphan
    /// left behind costs space, never data, and goes at the next cut or
    /// open.
    pub(super) fn reclaim_orphans(&self) {
        if self.model.is_cut() {
            return;
        }
        let orphans = self.store.orphans();
        if orphans.is_empty() {
            return;
        }
        let all: Vec<Ino> = orphans
            .iter()
            .flat_map(|o| o.takes.iter().copied())
            .collect();
        let referenced = self.model.referenced(&all);
        for o in orphans {
            if o.takes.iter().any(|i| referenced.contains(i)) {
                continue;
            }
            match self.store.delete_orphan(o.ino) {
                Ok(()) => log::debug!("durafs: deleted orphan #{} from the backing store", o.ino),
                Err(e) => log::warn!(
                    "durafs: could not delete orphan #{} from the backing store (it goes at the next cut or mount): {e}",
                    o.ino
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::attrs;
    use super::super::{DuraFs, FsOptions};
    use crate::model::crash::CrashState;
    use crate::model::{Kind, ROOT, Survival};

    fn durable_file(fs: &DuraFs, name: &[u8], data: &[u8]) -> u64 {
        let f = fs
            .create(ROOT, name, Kind::File, attrs(), None)
            .unwrap()
            .ino;
        fs.write(f, 0, data).unwrap();
        fs.fsync(f, false).unwrap();
        fs.fsyncdir(ROOT).unwrap();
        f
    }

    /// A volume on disk and one in memory (the same contract: `store`).
    fn volumes() -> Vec<(Option<tempfile::TempDir>, DuraFs)> {
        let dir = tempfile::tempdir().unwrap();
        let disk = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        let memory = DuraFs::in_memory(FsOptions::default(), attrs()).unwrap();
        vec![(Some(dir), disk), (None, memory)]
    }

    #[test]
    fn a_durably_deleted_file_is_deleted_once_the_kernel_forgets_it() {
        for (_dir, fs) in volumes() {
            let f = durable_file(&fs, b"a", b"0123456789");
            fs.unlink(ROOT, b"a").unwrap();
            fs.fsyncdir(ROOT).unwrap();
            // Still open (the kernel has not forgotten it): it may be linked
            // again (linkat of /proc/self/fd) or fsynced, so it stays.
            assert!(fs.store.is_orphan(f));
            assert_eq!(fs.read(f, 0, 10).unwrap(), b"0123456789");
            fs.forget(f);
            assert!(!fs.store.is_orphan(f));
            assert!(fs.store.orphans().is_empty());
        }
    }

    #[test]
    fn a_forgotten_file_is_deleted_at_the_fsyncdir_that_removes_it() {
        for (_dir, fs) in volumes() {
            let f = durable_file(&fs, b"a", b"data");
            fs.unlink(ROOT, b"a").unwrap();
            fs.forget(f);
            assert!(!fs.store.is_orphan(f), "the name is still durable");
            fs.fsyncdir(ROOT).unwrap();
            assert!(fs.store.orphans().is_empty());
        }
    }

    /// The unsafe case: the inode is gone from the live view, but a pending
    /// create still names it, and a crash that keeps the create (not the
    /// unlink) shows the file with its fsynced bytes.
    #[test]
    fn an_orphan_a_pending_create_names_survives_until_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        let f = fs
            .create(ROOT, b"x", Kind::File, attrs(), None)
            .unwrap()
            .ino;
        fs.write(f, 0, b"fsynced").unwrap();
        fs.fsync(f, false).unwrap();
        fs.unlink(ROOT, b"x").unwrap();
        fs.forget(f);
        // Another durability point (posix: a file's fsync commits no name).
        let g = fs
            .create(ROOT, b"y", Kind::File, attrs(), None)
            .unwrap()
            .ino;
        fs.fsync(g, false).unwrap();
        assert!(fs.store.is_orphan(f), "a pending create still names it");
        fs.cut_with("the create of x only", |p| CrashState {
            seed: 0,
            kept: vec![(0, Survival::Full)],
            total: p.len(),
            description: "the create of x".into(),
        })
        .unwrap();
        drop(fs);
        let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
        let st = fs.lookup(ROOT, b"x").unwrap();
        assert_eq!(fs.read(st.ino, 0, 100).unwrap(), b"fsynced");
        assert!(fs.lookup(ROOT, b"y").is_err());
    }
}
