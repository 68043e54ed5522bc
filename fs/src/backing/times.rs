//! Keeping the times in the store what the model says is durable.
//!
//! The host sets a file's mtime whenever the store writes it, and a
//! directory's whenever the store adds or removes an entry in it (also on
//! its way to or from `.durafs/orphans/`). In the model (and `MemStore`)
//! an inode's durable times change only by `Alloc`, the creation of a
//! linked inode and `SetAttrs`. So the store records the times it last gave
//! each inode ([`NodeInfo::times`], read from the host at open), notes each
//! inode whose times the host changed since ([`State::disturbed`]), and
//! gives those back at the end of every batch and of a cut's settling,
//! before anything is fsynced. ctime is the host's and is left alone.
//!
//! [`NodeInfo::times`]: super::NodeInfo
//! [`State::disturbed`]: super::State

use super::State;
use super::loc::{set_file_times, set_times};
use crate::model::{Attrs, Ino};
use std::io;

impl State {
    /// The store gave `ino` the times of `a`.
    pub(super) fn set_times(&mut self, ino: Ino, a: &Attrs) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.times = Some((a.atime, a.mtime));
        }
        self.disturbed.remove(&ino);
    }

    /// Gives every inode whose times the host changed the times the store
    /// last gave it.
    pub(super) fn restore_times(&mut self) -> io::Result<()> {
        for ino in std::mem::take(&mut self.disturbed) {
            let Some((atime, mtime)) = self.nodes.get(&ino).and_then(|n| n.times) else {
                continue;
            };
            match self.files.get(&ino) {
                Some(f) => set_file_times(f, atime, mtime)?,
                None => set_times(&self.loc(ino)?, atime, mtime)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Backing, BackingOptions};
    use crate::model::{Attrs, Effect, Kind, NewInode, ROOT, Timestamp};
    use bytes::Bytes;
    use std::os::unix::fs::MetadataExt;

    fn init(kind: Kind, secs: i64) -> NewInode {
        let t = Timestamp { secs, nanos: 5 };
        NewInode {
            kind,
            attrs: Attrs {
                mode: 0o755,
                atime: t,
                mtime: t,
                ..Attrs::default()
            },
            target: None,
        }
    }

    /// Regression: a batch that added an entry to a directory, or wrote a
    /// file, left the host's time on it where the model keeps the durable
    /// time (here, that of the `Link` that created it).
    #[test]
    fn a_batch_leaves_the_recorded_times_on_what_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = Backing::open(dir.path(), BackingOptions::default()).unwrap();
        let link = |d, name: &[u8], ino, kind, secs| Effect::Link {
            dir: d,
            name: name.to_vec(),
            ino,
            init: init(kind, secs),
        };
        b.apply(&[link(ROOT, b"d", 2, Kind::Dir, 1_000_000_000)])
            .unwrap();
        b.apply(&[
            link(2, b"f", 3, Kind::File, 2_000_000_000),
            Effect::Write {
                ino: 3,
                offset: 0,
                data: Bytes::from_static(b"data"),
            },
        ])
        .unwrap();
        let md = |p: &str| std::fs::symlink_metadata(dir.path().join(p)).unwrap();
        assert_eq!((md("d").mtime(), md("d").mtime_nsec()), (1_000_000_000, 5));
        assert_eq!(
            (md("d/f").mtime(), md("d/f").mtime_nsec()),
            (2_000_000_000, 5)
        );
        assert_eq!(md("d/f").atime(), 2_000_000_000);
    }
}
